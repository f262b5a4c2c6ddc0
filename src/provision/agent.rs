//! The node agents: a DaemonSet `local-path-agent` whose pod on each node idles with every base
//! path mounted at the same path, so that setup and teardown scripts (and gc's inventories) run
//! by exec into it instead of a pod per volume. Built from the helper pod template (image,
//! tolerations, priority class, resources, security context), so an agent can do exactly what a
//! helper pod could, no more. Pure: the DaemonSet, and which agent pod may serve a job.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, Pod, PodSpec, PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::helper_pod::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::config::path;

/// The DaemonSet's name, and its pods' `app.kubernetes.io/name`.
pub const AGENT_NAME: &str = "local-path-agent";
/// The label selector of agent pods.
pub const AGENT_SELECTOR: &str = "app.kubernetes.io/name=local-path-agent";
/// The agent container's name, the one exec goes into.
pub const AGENT_CONTAINER: &str = "agent";
/// What the agent runs: nothing, until Kubernetes stops it.
pub const IDLE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), AGENT_NAME.to_owned()),
        ("app.kubernetes.io/component".to_owned(), "agent".to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "lpp".to_owned()),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (
            "app.kubernetes.io/version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ])
}

/// The agent DaemonSet in `namespace` mounting every one of `paths` (each node's base paths and
/// the shared ones: a DaemonSet has one pod template for all nodes), from the helper pod
/// `template` with `image` in place of its image when given.
pub fn daemon_set(
    template: &Pod,
    image: Option<&str>,
    namespace: &str,
    paths: &BTreeSet<String>,
) -> DaemonSet {
    let spec = template.spec.clone().unwrap_or_default();
    let helper = spec.containers.first().cloned().unwrap_or_default();
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, dir) in paths.iter().enumerate() {
        let dir = path::clean(dir);
        let name = format!("base-{i}");
        volumes.push(Volume {
            name: name.clone(),
            host_path: Some(HostPathVolumeSource {
                path: dir.clone(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name,
            mount_path: dir,
            ..VolumeMount::default()
        });
    }
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_owned(), AGENT_NAME.to_owned())]);
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(AGENT_NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    // Without the version: a new lpp alone rolls no agent.
                    labels: Some(
                        labels()
                            .into_iter()
                            .filter(|(k, _)| k != "app.kubernetes.io/version")
                            .collect(),
                    ),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    priority_class_name: spec.priority_class_name.clone(),
                    tolerations: spec.tolerations.clone(),
                    node_selector: spec.node_selector.clone(),
                    affinity: spec.affinity.clone(),
                    security_context: spec.security_context.clone(),
                    image_pull_secrets: spec.image_pull_secrets.clone(),
                    // The agent never talks to the API server.
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(5),
                    containers: vec![Container {
                        name: AGENT_CONTAINER.into(),
                        image: image.map(str::to_owned).or(helper.image),
                        image_pull_policy: helper.image_pull_policy,
                        command: Some(vec!["/bin/sh".into(), "-c".into(), IDLE.into()]),
                        resources: helper.resources,
                        security_context: helper.security_context,
                        volume_mounts: Some(mounts),
                        ..Container::default()
                    }],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DaemonSetSpec::default()
        }),
        status: None,
    }
}

/// The host paths a DaemonSet's pods mount (each at the same path).
pub fn mounted_paths(daemon_set: &DaemonSet) -> BTreeSet<String> {
    daemon_set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(pod_paths)
        .unwrap_or_default()
}

/// The host directories a pod spec mounts at the same path in its agent container.
fn pod_paths(spec: &PodSpec) -> BTreeSet<String> {
    let host: BTreeMap<&str, &str> = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| Some((v.name.as_str(), v.host_path.as_ref()?.path.as_str())))
        .collect();
    spec.containers
        .iter()
        .filter(|c| c.name == AGENT_CONTAINER)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .filter(|m| !m.read_only.unwrap_or(false))
        .filter(|m| {
            host.get(m.name.as_str()).map(|p| path::clean(p)) == Some(path::clean(&m.mount_path))
        })
        .map(|m| path::clean(&m.mount_path))
        .collect()
}

/// An agent pod as far as serving jobs goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPod {
    /// The pod's name.
    pub name: String,
    /// Its node.
    pub node: String,
    /// Running, Ready, not being deleted.
    pub ready: bool,
    /// What it mounts.
    pub paths: BTreeSet<String>,
    /// Its agent container's image.
    pub image: String,
}

impl AgentPod {
    /// Reads an agent pod; `None` for a pod that is not bound to a node yet.
    pub fn of(pod: &Pod) -> Option<AgentPod> {
        let spec = pod.spec.as_ref()?;
        let node = spec.node_name.clone().filter(|n| !n.is_empty())?;
        let status = pod.status.as_ref();
        let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Some(AgentPod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            node,
            ready: running && ready && pod.metadata.deletion_timestamp.is_none(),
            paths: pod_paths(spec),
            image: spec
                .containers
                .iter()
                .find(|c| c.name == AGENT_CONTAINER)
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
        })
    }

    /// Whether it mounts a directory at or above `dir`.
    pub fn reaches(&self, dir: &str) -> bool {
        let dir = path::clean(dir);
        self.paths
            .iter()
            .any(|p| *p == dir || path::is_inside(&dir, p))
    }
}

/// Which agent pod serves a job on `node` (`None`: any node, a shared filesystem) that needs
/// `dirs`, or why none can: the caller then uses a helper pod, saying why.
pub fn serving<'a>(
    agents: &'a [AgentPod],
    node: Option<&str>,
    dirs: &[&str],
) -> Result<&'a AgentPod, String> {
    let on_node: Vec<&AgentPod> = agents
        .iter()
        .filter(|a| node.is_none_or(|n| a.node == n))
        .collect();
    let where_ = node.map_or("any node".to_owned(), |n| format!("node {n}"));
    if on_node.is_empty() {
        return Err(format!("no node agent on {where_}"));
    }
    let ready: Vec<&AgentPod> = on_node.into_iter().filter(|a| a.ready).collect();
    let Some(first) = ready.first() else {
        return Err(format!("the node agent on {where_} is not Ready"));
    };
    ready
        .iter()
        .find(|a| dirs.iter().all(|d| a.reaches(d)))
        .copied()
        .ok_or_else(|| {
            let missing: Vec<&str> = dirs.iter().copied().filter(|d| !first.reaches(d)).collect();
            format!(
                "the node agent {} does not mount {} (its DaemonSet is updated to)",
                first.name,
                missing.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Pod {
        crate::config::parse_helper_pod(&crate::config::default_helper_pod_yaml("busybox"))
            .unwrap_or_default()
    }

    #[test]
    fn the_daemon_set_mounts_every_path_and_keeps_the_template_s_reach() {
        let paths = BTreeSet::from(["/opt/a".to_owned(), "/mnt/shared/".to_owned()]);
        let ds = daemon_set(&template(), Some("reg.example/busybox:1"), "ns", &paths);
        insta::assert_yaml_snapshot!("agent_daemon_set", ds);
        assert_eq!(
            mounted_paths(&ds),
            BTreeSet::from(["/opt/a".to_owned(), "/mnt/shared".to_owned()])
        );
    }

    fn agent(name: &str, node: &str, ready: bool, paths: &[&str]) -> AgentPod {
        AgentPod {
            name: name.into(),
            node: node.into(),
            ready,
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            image: "busybox".into(),
        }
    }

    #[test]
    fn a_job_goes_to_a_ready_agent_that_reaches_its_directories() {
        let agents = vec![
            agent("a1", "n1", true, &["/opt/a"]),
            agent("a2", "n2", false, &["/opt/a"]),
        ];
        assert_eq!(
            serving(&agents, Some("n1"), &["/opt/a"]).map(|a| a.name.as_str()),
            Ok("a1")
        );
        assert_eq!(
            serving(&agents, Some("n1"), &["/opt/a/x/y"]).map(|a| a.name.as_str()),
            Ok("a1")
        );
        let e = serving(&agents, Some("n1"), &["/opt/b"]).unwrap_err();
        assert!(e.contains("does not mount /opt/b"), "{e}");
        let e = serving(&agents, Some("n2"), &["/opt/a"]).unwrap_err();
        assert!(e.contains("not Ready"), "{e}");
        let e = serving(&agents, Some("n3"), &["/opt/a"]).unwrap_err();
        assert!(e.contains("no node agent on node n3"), "{e}");
        assert_eq!(
            serving(&agents, None, &["/opt/a"]).map(|a| a.name.as_str()),
            Ok("a1")
        );
        // A path that only shares a prefix is not reached.
        assert!(!agents[0].reaches("/opt/ab"));
    }

    #[test]
    fn an_agent_pod_is_read_from_its_spec_and_status() {
        let ds = daemon_set(
            &template(),
            None,
            "ns",
            &BTreeSet::from(["/opt/a".to_owned()]),
        );
        let mut pod = Pod {
            metadata: ObjectMeta {
                name: Some("local-path-agent-x".into()),
                ..ObjectMeta::default()
            },
            spec: ds.spec.and_then(|s| s.template.spec),
            status: None,
        };
        assert_eq!(AgentPod::of(&pod), None, "not scheduled yet");
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some("n1".into());
        }
        let read = AgentPod::of(&pod);
        assert!(
            read.as_ref()
                .is_some_and(|a| !a.ready && a.reaches("/opt/a"))
        );
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(AgentPod::of(&pod).is_some_and(|a| a.ready && a.image == "busybox"));
    }
}
