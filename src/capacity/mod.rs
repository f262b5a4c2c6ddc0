//! Capacity: what the disks behind the base paths hold, measured on the nodes, and `lpp usage`.
//!
//! - [`probe`]: the busybox-only script a node agent or helper pod runs on a node to measure
//!   its base paths (size, use, availability, filesystem type, whether each is a mount point of
//!   its own) and volume directories (bytes used), and its strict parser;
//! - [`measure`]: which paths and volumes each node has (pure), and running the probe on each
//!   node through the executor, concurrently, each with a deadline;
//! - this module: `lpp usage`, a table per node and path (size, used, available, the capacity
//!   of the volumes placed there, how many), with `--volumes` each volume's request and real
//!   usage, flagging volumes over their request.
//!
//! `lpp run` measures the same way on an interval (`--usage-interval`) for its path choice,
//! budgets, mount guards, metrics and CSIStorageCapacity objects (see the controller).

pub mod measure;
pub mod probe;

use std::collections::BTreeSet;

use comfy_table::Table;
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use kube::api::{Api, ListParams, ResourceExt};
use serde::Serialize;

use crate::cluster::{self, Target};
use crate::config::Config;
use crate::executor::Executor;
use crate::exit::Exit;
use crate::provision::capacity::guard;
use crate::ui::{self, Report, Ui};
use measure::{Measured, NodeJob, VolumeOnNode};
use probe::PathReading;

/// What `lpp usage` looks at.
#[derive(Debug, Clone)]
pub struct UsageOptions {
    /// Namespace of the provisioner's ConfigMap and helper pods.
    pub namespace: String,
    /// Only these nodes (all when empty).
    pub nodes: Vec<String>,
    /// Also list each volume.
    pub volumes: bool,
    /// Name of the ConfigMap holding `config.json` and `helperPod.yaml`.
    pub config_map: String,
    /// `--helper-image`: overrides the helper pod template's image; `None` keeps it.
    pub helper_image: Option<String>,
}

/// Why `lpp usage` cannot do its job: as gc's (the same configuration, nodes and helpers).
pub use crate::gc::Error;

/// What `lpp usage` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// `apiVersion` and `kind` of the report.
    #[serde(flatten)]
    pub type_meta: ui::TypeMeta,
    /// One entry per node measured.
    pub nodes: Vec<NodeUsage>,
    /// Every base path of every node measured.
    pub paths: Vec<PathRow>,
    /// With `--volumes`: every volume on those nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<VolumeRow>>,
    /// When it was measured.
    pub measured: jiff::Timestamp,
}

/// How one node's measurement went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeUsage {
    /// Node name.
    pub node: String,
    /// Whether the node was measured.
    pub ok: bool,
    /// `measured`, or why it was not.
    pub status: String,
    /// The node's base paths, from the configuration.
    pub base_paths: Vec<String>,
}

/// One base path of one node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathRow {
    /// Node name.
    pub node: String,
    /// Base path on the node.
    pub path: String,
    /// `measured`, `missing` (not a directory), `error` (no answer) or `not measured`.
    pub state: String,
    /// Size of its filesystem in bytes (absent: not measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Bytes used on its filesystem (absent: not measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// Bytes still available on its filesystem (absent: not measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// Filesystem type as `df -T` gives it, such as `ext4` (absent: not known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// Whether it is a mount point of its own (absent: cannot be told).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_point: Option<bool>,
    /// The capacities of the volumes placed there, added up.
    pub requested_bytes: u64,
    /// How many volumes are there.
    pub volumes: usize,
    /// Whether volumes may go there: false when its mount guard (pathOptions) fails.
    pub usable: bool,
    /// Why not, or what else is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One volume on a node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRow {
    /// Node name.
    pub node: String,
    /// PersistentVolume name.
    pub volume: String,
    /// Namespace of its claim.
    pub namespace: String,
    /// Name of its claim.
    pub claim: String,
    /// StorageClass name.
    pub storage_class: String,
    /// Directory of the volume on the node.
    pub path: String,
    /// Capacity the claim requested, in bytes.
    pub request_bytes: u64,
    /// What its directory uses (absent: not measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// Whether it uses more than its request.
    pub over_request: bool,
}

fn size(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_owned(), ui::bytes)
}

impl Report for UsageReport {
    fn tables(&self, wide: bool) -> Vec<Table> {
        let mut headers = vec![
            "node",
            "path",
            "size",
            "used",
            "avail",
            "requested",
            "volumes",
        ];
        if wide {
            headers.extend(["fs", "mount point"]);
        }
        headers.push("note");
        let mut paths = ui::table(headers);
        for p in &self.paths {
            let mut row = vec![
                p.node.clone(),
                crate::gc::classify::shown(&p.path),
                size(p.size_bytes),
                size(p.used_bytes),
                size(p.available_bytes),
                ui::bytes(p.requested_bytes),
                p.volumes.to_string(),
            ];
            if wide {
                row.push(p.fs_type.clone().unwrap_or_else(|| "-".into()));
                row.push(
                    match p.mount_point {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "-",
                    }
                    .to_owned(),
                );
            }
            row.push(p.problem.clone().unwrap_or_default());
            paths.add_row(row);
        }
        for n in self.nodes.iter().filter(|n| n.base_paths.is_empty()) {
            let mut row = vec![n.node.clone(), "-".into()];
            row.extend(std::iter::repeat_n(
                "-".to_owned(),
                if wide { 7 } else { 5 },
            ));
            row.push(n.status.clone());
            paths.add_row(row);
        }
        let mut tables = vec![paths];
        if let Some(volumes) = &self.volumes {
            let mut t = ui::table([
                "node", "volume", "claim", "path", "request", "used", "status",
            ]);
            for v in volumes {
                t.add_row(vec![
                    v.node.clone(),
                    v.volume.clone(),
                    format!("{}/{}", v.namespace, v.claim),
                    crate::gc::classify::shown(&v.path),
                    ui::bytes(v.request_bytes),
                    size(v.used_bytes),
                    if v.over_request {
                        "over request".to_owned()
                    } else {
                        String::new()
                    },
                ]);
            }
            if volumes.is_empty() {
                t.add_row(vec!["(no volumes)".to_owned()]);
            }
            tables.push(t);
        }
        tables
    }
}

/// The report of measured nodes (pure): one row per node and base path, the volumes with
/// `list_volumes`.
pub fn report(
    config: &Config,
    results: &[(NodeJob, Result<Measured, String>)],
    list_volumes: bool,
    now: jiff::Timestamp,
) -> UsageReport {
    let mut nodes = Vec::new();
    let mut paths = Vec::new();
    let mut volumes = Vec::new();
    for (job, result) in results {
        nodes.push(NodeUsage {
            node: job.node.clone(),
            ok: result.is_ok(),
            status: match (result, job.bases.is_empty()) {
                (Err(why), _) => why.clone(),
                (Ok(_), true) => "no base paths configured here".to_owned(),
                (Ok(_), false) => "measured".to_owned(),
            },
            base_paths: job.bases.clone(),
        });
        for base in &job.bases {
            let inside: Vec<&VolumeOnNode> = job
                .volumes
                .iter()
                .filter(|v| v.base.as_deref() == Some(base.as_str()))
                .collect();
            let reading = result
                .as_ref()
                .ok()
                .and_then(|m| m.paths.iter().find(|(p, _)| p == base))
                .map(|(_, r)| r);
            let usage = result.as_ref().ok().and_then(|m| m.usage(base));
            let unmeasured = result.as_ref().err().map(String::as_str);
            let guarded = guard(
                &job.node,
                base,
                config.path_options.get(base),
                usage.as_ref(),
                unmeasured,
            );
            let (state, problem) = match (reading, result) {
                (_, Err(why)) => ("not measured", Some(why.clone())),
                (Some(PathReading::Missing), _) => {
                    ("missing", Some("not a directory on the node".to_owned()))
                }
                (Some(PathReading::Error), _) => {
                    ("error", Some("df gave no usable answer".to_owned()))
                }
                _ => ("measured", None),
            };
            let problem = match &guarded {
                Err(why) if state == "measured" => Some(format!("not used: {why}")),
                _ => problem,
            };
            paths.push(PathRow {
                node: job.node.clone(),
                path: base.clone(),
                state: state.to_owned(),
                size_bytes: usage.as_ref().map(|u| u.capacity_bytes),
                used_bytes: usage.as_ref().map(|u| u.used_bytes),
                available_bytes: usage.as_ref().map(|u| u.available_bytes),
                fs_type: usage.as_ref().and_then(|u| u.fs_type.clone()),
                mount_point: usage.as_ref().and_then(|u| u.mount_point),
                requested_bytes: inside.iter().map(|v| v.request_bytes).sum(),
                volumes: inside.len(),
                usable: guarded.is_ok(),
                problem,
            });
        }
        if list_volumes {
            for v in &job.volumes {
                let used = result.as_ref().ok().and_then(|m| m.used(&v.path));
                let (namespace, claim) = v
                    .claim
                    .as_ref()
                    .map(|(ns, name, _)| (ns.clone(), name.clone()))
                    .unwrap_or_default();
                volumes.push(VolumeRow {
                    node: job.node.clone(),
                    volume: v.name.clone(),
                    namespace,
                    claim,
                    storage_class: v.class.clone(),
                    path: v.path.clone(),
                    request_bytes: v.request_bytes,
                    used_bytes: used,
                    over_request: used.is_some_and(|u| u > v.request_bytes),
                });
            }
        }
    }
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    paths.sort_by(|a, b| (&a.node, &a.path).cmp(&(&b.node, &b.path)));
    volumes.sort_by(|a, b| (&a.node, &a.path).cmp(&(&b.node, &b.path)));
    UsageReport {
        type_meta: ui::TypeMeta::new("UsageReport"),
        nodes,
        paths,
        volumes: list_volumes.then_some(volumes),
        measured: now,
    }
}

/// `lpp usage`: measures the nodes and prints the report. Exits 1 when a node could not be
/// measured (it is in the report, with why).
pub async fn usage(ui: &Ui, target: &Target, options: UsageOptions) -> Result<Exit, Error> {
    let cluster = cluster::connect(target).await?;
    let client = &cluster.client;
    let (contents, helpers) = crate::gc::scan::configured(
        client,
        &options.namespace,
        &options.config_map,
        options.helper_image.as_deref(),
    )
    .await?;
    let all: Vec<Node> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(cluster::failed("list", "nodes"))?
        .items;
    let known: BTreeSet<String> = all.iter().map(ResourceExt::name_any).collect();
    if let Some(unknown) = options.nodes.iter().find(|n| !known.contains(*n)) {
        return Err(Error::Usage(format!(
            "--node {unknown}: no such node (nodes: {})",
            known.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let volumes: Vec<PersistentVolume> = Api::<PersistentVolume>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(cluster::failed("list", "persistentvolumes"))?
        .items;
    let jobs: Vec<NodeJob> = all
        .iter()
        .filter(|n| options.nodes.is_empty() || options.nodes.contains(&n.name_any()))
        .map(|n| {
            let bases = measure::bases_on(&contents.config, &n.name_any());
            NodeJob {
                node: n.name_any(),
                ready: measure::is_ready(n),
                volumes: measure::volumes_on(&volumes, n, &bases),
                // People asking want the whole truth: every path's mount point, told through
                // its parent (a helper pod, even where node agents serve).
                mount_checked: bases.iter().cloned().collect(),
                bases,
            }
        })
        .collect();
    let executor = Executor::start(client.clone(), &options.namespace, false);
    let bar = ui.progress(jobs.len() as u64, "measuring nodes");
    let results = measure::measure_all(
        &executor,
        &helpers,
        jobs,
        contents.config.cmd_timeout,
        |_| bar.inc(1),
    )
    .await;
    bar.finish_and_clear();
    let report = report(
        &contents.config,
        &results,
        options.volumes,
        jiff::Timestamp::now(),
    );
    for n in report.nodes.iter().filter(|n| !n.ok) {
        ui.warn(&format!("node {}: not measured: {}", n.node, n.status));
    }
    ui.print(&report)?;
    Ok(if report.nodes.iter().all(|n| n.ok) {
        Exit::Success
    } else {
        Exit::Failure
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_report_adds_up_volumes_per_path_and_flags_overuse_and_guards() {
        let config = Config::parse(
            r#"{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/a","/b"]}],
                "pathOptions":{"/b":{"requireMountPoint":true}}}"#,
        )
        .unwrap();
        let volume = |name: &str, path: &str, request: u64| VolumeOnNode {
            name: name.into(),
            path: path.into(),
            base: Some("/a".into()),
            request_bytes: request,
            claim: Some(("ns".into(), format!("c-{name}"), "uid".into())),
            class: "local-path".into(),
        };
        let job = NodeJob {
            node: "node-1".into(),
            ready: true,
            bases: vec!["/a".into(), "/b".into()],
            mount_checked: BTreeSet::new(),
            volumes: vec![volume("v1", "/a/v1", 100), volume("v2", "/a/v2", 50)],
        };
        let reading = |mount| PathReading::Measured {
            fs_type: Some("ext4".into()),
            size_bytes: 1000,
            used_bytes: 400,
            available_bytes: 600,
            mount_point: Some(mount),
        };
        let measured = Measured {
            paths: vec![("/a".into(), reading(true)), ("/b".into(), reading(false))],
            volumes: BTreeMap::from([
                ("/a/v1".into(), probe::VolumeReading::Used(150)),
                ("/a/v2".into(), probe::VolumeReading::Used(10)),
            ]),
        };
        let failed = NodeJob {
            node: "node-2".into(),
            ready: false,
            bases: vec!["/a".into()],
            mount_checked: BTreeSet::new(),
            volumes: Vec::new(),
        };
        let r = report(
            &config,
            &[
                (job, Ok(measured)),
                (failed, Err("not Ready: not measured".into())),
            ],
            true,
            jiff::Timestamp::UNIX_EPOCH,
        );
        assert_eq!(r.paths.len(), 3);
        let a = &r.paths[0];
        assert_eq!(
            (a.requested_bytes, a.volumes, a.available_bytes, a.usable),
            (150, 2, Some(600), true)
        );
        let b = &r.paths[1];
        assert!(!b.usable);
        assert!(
            b.problem
                .as_deref()
                .is_some_and(|p| p.contains("not a mount point")),
            "{b:?}"
        );
        assert_eq!(r.paths[2].state, "not measured");
        assert!(!r.nodes[1].ok);
        let over: Vec<(&str, bool)> = r
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .map(|v| (v.volume.as_str(), v.over_request))
            .collect();
        assert_eq!(over, [("v1", true), ("v2", false)]);
        let json = ui::to_json(&r).unwrap();
        assert!(json.contains("\"kind\": \"UsageReport\""), "{json}");
        assert!(json.contains("\"requestedBytes\": 150"), "{json}");
        let table = ui::render_table(&r.tables(false)[0]);
        assert!(table.starts_with("NODE"), "{table}");
    }
}
