//! Measuring nodes: which base paths and volume directories each node has (pure), and the
//! probe run on each node through the [`Executor`] (its node agent where one serves the
//! probe's mounts, else a helper pod), concurrently over nodes, each with a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use kube::ResourceExt;

use super::probe::{self, PathReading, VolumeReading};
use crate::config::{Config, ExecutorKind, path};
use crate::executor::Executor;
use crate::provision::helper_pod::{HelperPods, ScriptJob};
use crate::provision::{NodeCapacity, PathUsage, Placed, volume_location};

/// How many nodes are measured at once.
pub const CONCURRENT_NODES: usize = 8;

/// A volume whose directory is on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeOnNode {
    /// The PV's name.
    pub name: String,
    /// Its directory (clean).
    pub path: String,
    /// The base path holding it, when one of the node's does.
    pub base: Option<String>,
    /// Its capacity (the request it was made for).
    pub request_bytes: u64,
    /// Its claim: namespace, name and uid.
    pub claim: Option<(String, String, String)>,
    /// Its StorageClass.
    pub class: String,
}

/// The node-local base paths of `node` over all classes (shared filesystems are not a node's).
pub fn bases_on(config: &Config, node: &str) -> Vec<String> {
    let shared = config.shared_paths();
    config
        .base_paths_on(node)
        .into_iter()
        .filter(|p| !shared.contains(p))
        .collect()
}

/// Whether a PV names `node`: by name, or by one of its label values (a node affinity on
/// `kubernetes.io/hostname` or the class's `nodeAffinityKey`).
fn names_node(named: &str, node: &Node) -> bool {
    node.metadata.name.as_deref() == Some(named) || node.labels().values().any(|v| v == named)
}

/// The volumes (any provisioner) whose directory is on `node`, with the base path of `bases`
/// holding each.
pub fn volumes_on<'a>(
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    node: &Node,
    bases: &[String],
) -> Vec<VolumeOnNode> {
    let mut out: Vec<VolumeOnNode> = volumes
        .into_iter()
        .filter_map(|pv| {
            let (on, dir) = volume_location(pv)?;
            if !on.as_deref().is_some_and(|n| names_node(n, node)) {
                return None;
            }
            let dir = path::clean(&dir);
            let base = bases
                .iter()
                .filter(|b| path::is_inside(&dir, b))
                .max_by_key(|b| b.len())
                .cloned();
            let spec = pv.spec.as_ref();
            let request_bytes = spec
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .and_then(crate::provision::volume::quantity_bytes)
                .and_then(|b| u64::try_from(b).ok())
                .unwrap_or(0);
            let claim = spec.and_then(|s| s.claim_ref.as_ref()).map(|r| {
                (
                    r.namespace.clone().unwrap_or_default(),
                    r.name.clone().unwrap_or_default(),
                    r.uid.clone().unwrap_or_default(),
                )
            });
            Some(VolumeOnNode {
                name: pv.name_any(),
                path: dir,
                base,
                request_bytes,
                claim,
                class: spec
                    .and_then(|s| s.storage_class_name.clone())
                    .unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.path, &a.name).cmp(&(&b.path, &b.name)));
    out
}

/// What one probe of a node found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Each base path (clean) and what was found there, in order.
    pub paths: Vec<(String, PathReading)>,
    /// Each volume directory measured (clean) and what was found.
    pub volumes: BTreeMap<String, VolumeReading>,
}

impl Measured {
    /// The measurement of a base path, when it was measured.
    pub fn usage(&self, base: &str) -> Option<PathUsage> {
        self.paths
            .iter()
            .find(|(p, _)| p == base)
            .and_then(|(_, r)| match r {
                PathReading::Measured {
                    fs_type,
                    size_bytes,
                    used_bytes,
                    available_bytes,
                    mount_point,
                } => Some(PathUsage {
                    capacity_bytes: *size_bytes,
                    used_bytes: *used_bytes,
                    available_bytes: *available_bytes,
                    fs_type: fs_type.clone(),
                    mount_point: *mount_point,
                }),
                _ => None,
            })
    }

    /// The bytes a volume directory uses, when measured.
    pub fn used(&self, dir: &str) -> Option<u64> {
        match self.volumes.get(dir) {
            Some(VolumeReading::Used(n)) => Some(*n),
            _ => None,
        }
    }
}

/// What a decision knows of a node: its measurement (or why there is none) and its volumes.
pub fn node_capacity(measured: Result<&Measured, &str>, volumes: &[VolumeOnNode]) -> NodeCapacity {
    let (paths, unmeasured) = match measured {
        Ok(m) => (
            m.paths
                .iter()
                .filter_map(|(p, _)| m.usage(p).map(|u| (p.clone(), u)))
                .collect(),
            None,
        ),
        Err(why) => (BTreeMap::new(), Some(why.to_owned())),
    };
    NodeCapacity {
        paths,
        placed: volumes
            .iter()
            .map(|v| Placed {
                path: v.path.clone(),
                request_bytes: v.request_bytes,
                used_bytes: measured.ok().and_then(|m| m.used(&v.path)),
            })
            .collect(),
        unmeasured,
    }
}

/// Whether the node is Ready.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A suffix that makes each probe's helper pod name unique (see [`crate::gc::scan::suffix`]).
fn suffix() -> String {
    crate::gc::scan::suffix()
}

/// Probes `node`'s `bases` and the directories of `volumes` (those inside a base path), within
/// `timeout`; whether each of `mount_checked` is a mount point is told through its parent
/// (see [`probe`]). Err says why nothing was measured.
pub async fn measure_node(
    executor: &Executor,
    helpers: &HelperPods,
    node: &str,
    bases: &[String],
    mount_checked: &BTreeSet<String>,
    volumes: &[VolumeOnNode],
    timeout: Duration,
) -> Result<Measured, String> {
    if bases.is_empty() {
        return Ok(Measured {
            paths: Vec::new(),
            volumes: BTreeMap::new(),
        });
    }
    let dirs: Vec<String> = volumes
        .iter()
        .filter(|v| v.base.is_some())
        .map(|v| v.path.clone())
        .collect();
    let plan = probe::plan(bases, |b| mount_checked.contains(b), &dirs);
    let job = ScriptJob {
        name: format!("lpp-usage-{node}-{}", suffix()),
        action: "usage".into(),
        node: Some(node.to_owned()),
        host_dirs: plan.mounts,
        command: vec!["/bin/sh".into(), "-c".into(), probe::SCRIPT.into()],
        args: std::iter::once("usage".to_owned())
            .chain(plan.args)
            .collect(),
        env: Vec::new(),
    };
    // The executor's own deadline is the script's; this one also bounds a pod that never starts.
    let ran = tokio::time::timeout(
        timeout + Duration::from_secs(30),
        executor.script(helpers, &job, timeout, ExecutorKind::Agent),
    )
    .await
    .map_err(|_| {
        format!(
            "the usage probe gave no answer within {}s",
            (timeout + Duration::from_secs(30)).as_secs()
        )
    })?;
    let output = ran.map_err(|e| e.to_string())?;
    let found = probe::parse(&output, bases.len(), dirs.len())
        .map_err(|e| format!("the usage probe's output is not valid: {e}"))?;
    Ok(Measured {
        paths: bases
            .iter()
            .map(|b| path::clean(b))
            .zip(found.paths)
            .collect(),
        volumes: dirs.into_iter().zip(found.volumes).collect(),
    })
}

/// One node to measure: its name, whether it is Ready, its base paths and volumes.
#[derive(Debug, Clone)]
pub struct NodeJob {
    /// Node name.
    pub node: String,
    /// Whether the node is Ready.
    pub ready: bool,
    /// The node's base paths to measure.
    pub bases: Vec<String>,
    /// The base paths whose parent is mounted to tell a mount point.
    pub mount_checked: BTreeSet<String>,
    /// The volume directories on the node to measure.
    pub volumes: Vec<VolumeOnNode>,
}

/// Measures every node of `jobs`, [`CONCURRENT_NODES`] at a time; `done` is called as each
/// finishes. A node that is not Ready is not probed (its result says so).
pub async fn measure_all(
    executor: &Executor,
    helpers: &HelperPods,
    jobs: Vec<NodeJob>,
    timeout: Duration,
    done: impl Fn(&str) + Sync,
) -> Vec<(NodeJob, Result<Measured, String>)> {
    let done = &done;
    futures::stream::iter(jobs.into_iter().map(|job| async move {
        let result = if job.ready {
            measure_node(
                executor,
                helpers,
                &job.node,
                &job.bases,
                &job.mount_checked,
                &job.volumes,
                timeout,
            )
            .await
        } else {
            Err("not Ready: not measured".to_owned())
        };
        done(&job.node);
        (job, result)
    }))
    .buffer_unordered(CONCURRENT_NODES)
    .collect()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str, node: &str, path: &str, size: &str) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "annotations": {"local.path.provisioner/selected-node": node}},
            "spec": {"capacity": {"storage": size}, "hostPath": {"path": path},
                     "storageClassName": "local-path",
                     "claimRef": {"namespace": "ns", "name": format!("c-{name}"), "uid": "u"}}
        }))
        .unwrap()
    }

    fn node(name: &str, hostname: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": hostname}}
        }))
        .unwrap()
    }

    #[test]
    fn volumes_are_found_on_their_node_and_base_path() {
        let volumes = [
            pv("a", "node-1", "/opt/lpp/a", "1Gi"),
            pv("b", "host-2", "/opt/lpp/b", "2Gi"),
            pv("c", "node-1", "/elsewhere/c", "3Gi"),
        ];
        let bases = vec!["/opt/lpp".to_string()];
        let on1 = volumes_on(&volumes, &node("node-1", "host-1"), &bases);
        let seen: Vec<(&str, Option<&str>, u64)> = on1
            .iter()
            .map(|v| (v.name.as_str(), v.base.as_deref(), v.request_bytes))
            .collect();
        assert_eq!(
            seen,
            [("c", None, 3 << 30), ("a", Some("/opt/lpp"), 1 << 30)]
        );
        let on2 = volumes_on(&volumes, &node("node-2", "host-2"), &bases);
        assert_eq!(on2.len(), 1, "found by the hostname label");
        let measured = Measured {
            paths: vec![(
                "/opt/lpp".into(),
                PathReading::Measured {
                    fs_type: Some("xfs".into()),
                    size_bytes: 10,
                    used_bytes: 4,
                    available_bytes: 6,
                    mount_point: Some(true),
                },
            )],
            volumes: BTreeMap::from([("/opt/lpp/a".into(), VolumeReading::Used(2))]),
        };
        let capacity = node_capacity(Ok(&measured), &on1);
        assert_eq!(capacity.paths["/opt/lpp"].available_bytes, 6);
        assert_eq!(capacity.placed[1].used_bytes, Some(2));
        let none = node_capacity(Err("node-1 is not Ready"), &on1);
        assert!(none.paths.is_empty() && none.unmeasured.is_some());
    }
}
