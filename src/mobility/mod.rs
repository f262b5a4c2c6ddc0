//! Data mobility: `lpp adopt` makes a volume of an existing directory on a node, and `lpp move`
//! moves a volume's data to another node and rebinds its claim there.
//!
//! - [`adopt`]: the checks and the PV an adoption makes (pure), and the command;
//! - [`steps`]: a move as recorded steps in annotations of the new PV, what a rerun does with
//!   an interrupted move, the claim as recreated (pure);
//! - [`copy`]: the scripts a move runs on nodes (tar out, tar in, the manifest that verifies
//!   the copy) and their parsers (pure);
//! - [`r#move`]: the command, carrying out the steps through executor sessions.

pub mod adopt;
pub mod copy;
pub mod r#move;
pub mod steps;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolume, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::cluster;
use crate::config::{ConfigMapContents, ExecutorKind};
use crate::executor::Executor;
use crate::exit::Exit;
use crate::provision::helper_pod::HelperPods;
use crate::ui;

/// The PV annotation marking a volume made by `lpp adopt` for a directory that existed.
pub const ADOPTED: &str = "lpp.dev/adopted";

/// Where the provisioner is and how to reach nodes; shared by `adopt` and `move`.
#[derive(Debug, Clone)]
pub struct ProvisionerOptions {
    /// The provisioner namespace (`-n`).
    pub namespace: String,
    /// The provisioner name PVs are annotated with.
    pub provisioner_name: String,
    /// The ConfigMap with config.json, the scripts and the helper pod template.
    pub config_map: String,
    /// Replaces the template's image when set.
    pub helper_image: Option<String>,
}

/// Why `adopt` or `move` did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// A check refused (exit code 3): nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// Something failed on the way; the message says what was left where.
    #[error("{0}")]
    Failed(String),
    /// A request failed.
    #[error(transparent)]
    Request(#[from] cluster::RequestError),
    #[error(transparent)]
    /// The cluster could not be reached.
    Connect(#[from] cluster::Error),
    #[error(transparent)]
    /// Printing or confirming failed.
    Ui(#[from] ui::Error),
}

impl Error {
    /// The exit code.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Refused(_) => Exit::Refused,
            Error::Ui(e) => e.exit(),
            _ => Exit::Failure,
        }
    }
}

/// A request error's constructor: `.map_err(request("get", "node x"))`.
fn request(verb: &'static str, what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let failed = cluster::failed(verb, what);
    move |source| failed(source).into()
}

/// Splits `NAMESPACE/NAME`.
pub fn parse_claim(text: &str, flag: &str) -> Result<(String, String), Error> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    match text.split_once('/') {
        Some((ns, name)) if valid(ns) && valid(name) => Ok((ns.to_owned(), name.to_owned())),
        _ => Err(Error::Usage(format!(
            "{flag} `{text}` must be NAMESPACE/NAME, e.g. default/data"
        ))),
    }
}

/// What both commands read before acting: the configuration and how to run things on nodes.
struct Provisioner {
    contents: ConfigMapContents,
    helpers: HelperPods,
    executor: Executor,
    /// The executor config.json asks for (helper pods unless it says `agent`).
    kind: ExecutorKind,
    /// `cmdTimeoutSeconds`.
    cmd_timeout: Duration,
}

impl Provisioner {
    async fn read(client: &kube::Client, options: &ProvisionerOptions) -> Result<Self, Error> {
        let ns = &options.namespace;
        let map = Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get_opt(&options.config_map)
            .await
            .map_err(request("get", format!("configmap {ns}/{}", options.config_map)))?
            .ok_or_else(|| {
                Error::Failed(format!(
                    "ConfigMap {ns}/{} does not exist: is the provisioner installed (`lpp install`), or is it in another namespace (-n)?",
                    options.config_map
                ))
            })?;
        let contents = ConfigMapContents::from_data(&map.data.unwrap_or_default(), None, None)
            .map_err(|e| Error::Failed(format!("ConfigMap {ns}/{}: {e}", options.config_map)))?;
        let helpers = HelperPods::new(
            contents.helper_pod.clone(),
            false,
            ns,
            crate::upstream::SERVICE_ACCOUNT,
            options.helper_image.as_deref(),
            &options.config_map,
        )
        .map_err(|e| Error::Failed(format!("helperPod.yaml cannot be used: {e}")))?;
        Ok(Provisioner {
            kind: contents.config.executor.unwrap_or(ExecutorKind::HelperPod),
            cmd_timeout: contents.config.cmd_timeout,
            executor: Executor::start(client.clone(), ns, false),
            contents,
            helpers,
        })
    }
}

/// Every PV of the cluster.
async fn all_volumes(client: &kube::Client) -> Result<Vec<PersistentVolume>, Error> {
    Ok(Api::<PersistentVolume>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(request("list", "persistentvolumes"))?
        .items)
}

/// Every node, by name.
async fn all_nodes(client: &kube::Client) -> Result<BTreeMap<String, Node>, Error> {
    Ok(Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(request("list", "nodes"))?
        .items
        .into_iter()
        .map(|n| (n.name_any(), n))
        .collect())
}

/// A pod that uses a claim, and who owns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimUser {
    /// The pod's name.
    pub pod: String,
    /// Its controller, as `Kind/name` (a ReplicaSet's Deployment when it has one).
    pub owner: Option<String>,
}

impl std::fmt::Display for ClaimUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.owner {
            Some(owner) => write!(f, "pod {} ({owner})", self.pod),
            None => write!(f, "pod {}", self.pod),
        }
    }
}

/// Whether a pod that has not ended mounts `claim`.
pub fn uses_claim(pod: &Pod, claim: &str) -> bool {
    let ended = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    !ended
        && pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == claim)
            })
}

/// The pods of `namespace` that use `claim`, each with its owner.
async fn claim_users(
    client: &kube::Client,
    namespace: &str,
    claim: &str,
) -> Result<Vec<ClaimUser>, Error> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(request("list", format!("pods in {namespace}")))?
        .items;
    let mut users = Vec::new();
    for pod in pods.iter().filter(|p| uses_claim(p, claim)) {
        users.push(ClaimUser {
            pod: pod.name_any(),
            owner: owner_of(client, namespace, pod).await,
        });
    }
    Ok(users)
}

/// A pod's controller as `Kind/name`; a ReplicaSet is named by its Deployment, which is what
/// people scale.
async fn owner_of(client: &kube::Client, namespace: &str, pod: &Pod) -> Option<String> {
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| pod.owner_references().first())?;
    if owner.kind == "ReplicaSet" {
        let sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
            Api::namespaced(client.clone(), namespace);
        if let Ok(Some(set)) = sets.get_opt(&owner.name).await
            && let Some(deployment) = set
                .owner_references()
                .iter()
                .find(|o| o.kind == "Deployment")
        {
            return Some(format!("Deployment/{}", deployment.name));
        }
    }
    Some(format!("{}/{}", owner.kind, owner.name))
}

/// One line naming the users of a claim and what to do.
fn in_use_message(namespace: &str, claim: &str, users: &[ClaimUser]) -> String {
    let names: Vec<String> = users.iter().map(ToString::to_string).collect();
    format!(
        "claim {namespace}/{claim} is in use by {}: stop them first (e.g. scale their owner to 0 replicas), or pass --wait to wait until they are gone",
        names.join(", ")
    )
}

/// A fresh volume name in upstream's shape, `pvc-<uuid>`: the uid of no claim, so it never
/// collides with a volume `lpp run` makes.
pub fn fresh_volume_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let keys = std::collections::hash_map::RandomState::new();
    let word = |salt: u64| {
        let mut h = keys.build_hasher();
        h.write_u64(salt);
        h.write_u128(jiff::Timestamp::now().as_nanosecond().unsigned_abs());
        h.write_u32(std::process::id());
        h.finish()
    };
    let (a, b) = (word(1), word(2));
    // A version 4 UUID's layout, so the name looks like every other `pvc-<uid>`.
    format!(
        "pvc-{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        (b >> 48 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_namespace_slash_name() {
        assert_eq!(
            parse_claim("default/data", "--claim").unwrap(),
            ("default".to_owned(), "data".to_owned())
        );
        for bad in ["data", "/data", "default/", "a/b/c", "Default/data", ""] {
            assert!(parse_claim(bad, "--claim").is_err(), "{bad}");
        }
    }

    #[test]
    fn fresh_names_look_like_volume_names_and_differ() {
        let a = fresh_volume_name();
        let b = fresh_volume_name();
        assert_ne!(a, b);
        assert_eq!(a.len(), "pvc-".len() + 36, "{a}");
        assert!(a.starts_with("pvc-"));
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        );
    }

    #[test]
    fn users_are_named_with_their_owners() {
        let message = in_use_message(
            "default",
            "data",
            &[
                ClaimUser {
                    pod: "web-1".into(),
                    owner: Some("StatefulSet/web".into()),
                },
                ClaimUser {
                    pod: "debug".into(),
                    owner: None,
                },
            ],
        );
        assert!(
            message.contains("pod web-1 (StatefulSet/web), pod debug"),
            "{message}"
        );
        assert!(message.contains("--wait"));
    }
}
