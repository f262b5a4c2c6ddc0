//! What to do with a claim: provision (a [`VolumePlan`]), reject (the ProvisioningFailed
//! message), wait, or leave it alone; and the PersistentVolume a plan creates.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, LocalVolumeSource, Node, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::capacity::{self, Ask, Budget, Choice, NodeCapacity, PathSelection};
use super::helper_pod::{Action, VolumeJob};
use super::overlap::{VolumeRef, overlapping};
use super::template::{self, MissingKey, PatternData};
use crate::config::{BasePaths, ConfigMapContents, path};

/// The PV annotation naming the provisioner that made it.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The PV annotation naming the node the volume's directory is on (empty for shared FS).
pub const SELECTED_NODE: &str = "local.path.provisioner/selected-node";
/// The claim annotation the scheduler sets for WaitForFirstConsumer claims.
pub const CLAIM_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The claim annotation the PV controller sets to the provisioner that should serve it.
pub const CLAIM_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// Its older spelling.
pub const CLAIM_PROVISIONER_BETA: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// lpp's claim annotation counting how many times lpp handed the claim back to the scheduler
/// (removed its selected node) because the node could not host it.
pub const RESCHEDULES: &str = "lpp.dev/reschedules";
/// After this many hand-backs, a claim whose selected node cannot host it fails instead.
pub const MAX_RESCHEDULES: u32 = 3;
/// The node label volumes are pinned by, unless the class sets `nodeAffinityKey`.
pub const DEFAULT_NODE_AFFINITY_KEY: &str = "kubernetes.io/hostname";

/// The volume source kind of a PV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeType {
    /// `hostPath` with type `DirectoryOrCreate` (the default).
    HostPath,
    /// A `local` volume.
    Local,
}

impl VolumeType {
    /// Parses upstream's spelling, case-insensitively (`hostPath`, `local`).
    pub fn parse(s: &str) -> Option<VolumeType> {
        match s.to_ascii_lowercase().as_str() {
            "hostpath" => Some(VolumeType::HostPath),
            "local" => Some(VolumeType::Local),
            _ => None,
        }
    }
}

/// Everything a claim decision looks at. The controller gathers it; nothing here does I/O.
#[derive(Debug, Clone, Copy)]
pub struct ClaimInput<'a> {
    /// The claim.
    pub claim: &'a PersistentVolumeClaim,
    /// Its StorageClass (`None` when the class does not exist).
    pub class: Option<&'a StorageClass>,
    /// The node named by the claim's `volume.kubernetes.io/selected-node`, when it exists.
    pub node: Option<&'a Node>,
    /// The loaded ConfigMap.
    pub contents: &'a ConfigMapContents,
    /// Our provisioner name, `rancher.io/local-path` by default.
    pub provisioner: &'a str,
    /// Whether the PV `pvc-<uid>` already exists.
    pub volume_exists: bool,
    /// Picks the base path among several (`choice % count`): pass a random number.
    pub choice: u64,
    /// Every PV's data location (any provisioner): a volume is never made on a path another
    /// one uses, contains or lies inside.
    pub volumes: &'a [VolumeRef],
    /// What is known of the selected node's disks (`None`: nothing measured), for the class's
    /// `pathSelection`, budget and the mount guards.
    pub capacity: Option<&'a NodeCapacity>,
}

/// Why a claim is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Its class is another provisioner's (or missing, or the claim names another provisioner).
    NotOurs,
    /// It is already bound to a volume.
    Bound,
    /// The volume already exists; the PV controller will bind it.
    VolumeExists,
    /// WaitForFirstConsumer and no node selected yet.
    WaitingForNode,
    /// Being deleted.
    Deleting,
}

/// The decision for a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimDecision {
    /// Nothing to do.
    Skip(Skip),
    /// Make the directory with `plan.helper`, then create `plan.volume`.
    Provision(Box<VolumePlan>),
    /// Refuse, with the ProvisioningFailed event message.
    Reject(String),
    /// The scheduler's node cannot host the claim: remove its selected node so that the
    /// scheduler picks again (as the external-provisioner library's reschedule does).
    Reschedule(Reschedule),
}

/// A claim to hand back to the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reschedule {
    /// The node that cannot host it.
    pub node: String,
    /// Why.
    pub reason: String,
    /// Which hand-back this is (1 for the first), the value [`RESCHEDULES`] gets.
    pub attempt: u32,
}

/// Why [`plan`] made no plan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The claim or the configuration is wrong.
    Reject(String),
    /// The node cannot host the claim (no path for it, none with room, a mount guard failing).
    Unfit(String),
}

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal::Reject(message)
    }
}

/// A decided volume: where it goes and the objects to create.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumePlan {
    /// `pvc-<claim uid>`.
    pub pv_name: String,
    /// The node; `None` on a shared filesystem.
    pub node: Option<String>,
    /// The chosen base path.
    pub base_path: String,
    /// The volume directory.
    pub path: String,
    /// hostPath or local.
    pub volume_type: VolumeType,
    /// The create helper pod's job (`HelperPods::for_volume` turns it into a pod).
    pub helper: VolumeJob,
    /// How the base path was chosen (for the debug log).
    pub path_choice: String,
    /// The PV to create once the helper succeeded.
    pub volume: PersistentVolume,
}

/// The PV name of a claim: `pvc-<uid>`.
pub fn volume_name(claim_uid: &str) -> String {
    format!("pvc-{claim_uid}")
}

/// The directory name a volume gets without `pathPattern`: `<pvName>_<namespace>_<claimName>`.
pub fn folder_name_of(pv_name: &str, namespace: &str, claim_name: &str) -> String {
    format!("{pv_name}_{namespace}_{claim_name}")
}

/// Splits a directory name made by [`folder_name_of`] back into (PV name, namespace, claim
/// name). Unambiguous because Kubernetes names never contain `_`. `None` for anything else.
pub fn parse_folder_name(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('_');
    let (pv, namespace, claim) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    (parts.next().is_none()
        && pv.starts_with("pvc-")
        && valid(pv)
        && valid(namespace)
        && valid(claim))
    .then_some((pv, namespace, claim))
}

/// The node the scheduler selected for a claim (`volume.kubernetes.io/selected-node`): the node
/// the controller looks up before calling [`decide_claim`].
pub fn selected_node(claim: &PersistentVolumeClaim) -> Option<&str> {
    annotation(&claim.metadata, CLAIM_SELECTED_NODE).filter(|n| !n.is_empty())
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Go's `strconv.ParseBool`.
pub fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A class parameter.
pub(crate) fn class_parameter<'a>(class: &'a StorageClass, key: &str) -> Option<&'a str> {
    class
        .parameters
        .as_ref()
        .and_then(|p| p.get(key))
        .map(String::as_str)
}

/// A class setting read as upstream reads it: the parameter, else the annotation of that name.
fn parameter_or_annotation<'a>(class: &'a StorageClass, key: &str) -> Option<&'a str> {
    class_parameter(class, key).or_else(|| annotation(&class.metadata, key))
}

/// Why a claim of ours needs no volume whatever else holds: it is being deleted, it is bound,
/// or its volume exists (`volume_exists`; the PV controller binds it). A claim's deletion and
/// its `spec.volumeName` are never undone, and `volume_exists` comes from the volume store
/// either way, so a watched copy of the claim, however old, decides this as well as a fresh read
/// does (external-provisioner's `shouldProvision` decides on its informer's copy).
pub fn settled(claim: &PersistentVolumeClaim, volume_exists: bool) -> Option<Skip> {
    if claim.metadata.deletion_timestamp.is_some() {
        return Some(Skip::Deleting);
    }
    let bound = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty());
    if bound {
        return Some(Skip::Bound);
    }
    volume_exists.then_some(Skip::VolumeExists)
}

/// Decides what to do with a claim. Checks run in upstream's order, so the first problem is
/// the one reported.
pub fn decide_claim(input: &ClaimInput<'_>) -> ClaimDecision {
    let claim = input.claim;
    let Some(class) = input.class else {
        return ClaimDecision::Skip(Skip::NotOurs);
    };
    if class.provisioner != input.provisioner {
        return ClaimDecision::Skip(Skip::NotOurs);
    }
    let named = annotation(&claim.metadata, CLAIM_PROVISIONER)
        .or_else(|| annotation(&claim.metadata, CLAIM_PROVISIONER_BETA));
    if named.is_some_and(|p| p != input.provisioner) {
        return ClaimDecision::Skip(Skip::NotOurs);
    }
    if let Some(skip) = settled(claim, input.volume_exists) {
        return ClaimDecision::Skip(skip);
    }
    let Some(uid) = claim.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
        return ClaimDecision::Reject(
            "claim has no metadata.uid: it must come from the API server".into(),
        );
    };
    let selected = selected_node(claim);
    let wait_for_consumer = class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer");
    if wait_for_consumer && selected.is_none() {
        return ClaimDecision::Skip(Skip::WaitingForNode);
    }
    match plan(input, class, uid, selected) {
        Ok(plan) => ClaimDecision::Provision(Box::new(plan)),
        Err(Refusal::Reject(message)) => ClaimDecision::Reject(message),
        Err(Refusal::Unfit(reason)) => match selected {
            // Only the scheduler's choice is handed back: a node named by hand stays.
            Some(node) if wait_for_consumer => {
                let done = reschedules(claim);
                if done >= MAX_RESCHEDULES {
                    ClaimDecision::Reject(format!(
                        "node {node} cannot host the claim: {reason}; given up after the scheduler was asked {done} time(s) to pick another node (annotation {RESCHEDULES}): make room or fix the configuration, then remove that annotation to try again"
                    ))
                } else {
                    ClaimDecision::Reschedule(Reschedule {
                        node: node.to_owned(),
                        reason,
                        attempt: done + 1,
                    })
                }
            }
            _ => ClaimDecision::Reject(reason),
        },
    }
}

/// How many times lpp handed the claim back to the scheduler ([`RESCHEDULES`]).
pub fn reschedules(claim: &PersistentVolumeClaim) -> u32 {
    annotation(&claim.metadata, RESCHEDULES)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The claim's storage request in bytes, when it has a readable one.
pub fn request_bytes(claim: &PersistentVolumeClaim) -> Option<u64> {
    let request = claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    quantity_bytes(request).and_then(|b| u64::try_from(b).ok())
}

fn plan(
    input: &ClaimInput<'_>,
    class: &StorageClass,
    uid: &str,
    selected: Option<&str>,
) -> Result<VolumePlan, Refusal> {
    let claim = input.claim;
    let spec = claim.spec.clone().unwrap_or_default();
    let class_name = class.metadata.name.clone().unwrap_or_default();
    let config = &input.contents.config;
    let claim_ns = claim.metadata.namespace.clone().unwrap_or_default();
    let claim_name = claim.metadata.name.clone().unwrap_or_default();
    if spec.volume_mode.as_deref() == Some("Block") {
        return Err(format!(
            "{} does not support block volume provisioning: use volumeMode Filesystem",
            input.provisioner
        )
        .into());
    }
    let storage = config
        .storage_for_class(&class_name)
        .map_err(|e| e.to_string())?;
    let shared = match storage {
        crate::config::Storage::Unusable(e) => return Err(e.to_string().into()),
        crate::config::Storage::Shared(_) => true,
        crate::config::Storage::Nodes(_) => false,
    };
    let access_modes = spec.access_modes.clone().unwrap_or_default();
    if access_modes.is_empty() {
        return Err("claim has no spec.accessModes: set ReadWriteOnce"
            .to_owned()
            .into());
    }
    if !shared {
        if spec.selector.is_some() {
            return Err(
                "claim.Spec.Selector is not supported: remove spec.selector from the claim"
                    .to_owned()
                    .into(),
            );
        }
        if let Some(bad) = access_modes
            .iter()
            .find(|m| *m != "ReadWriteOnce" && *m != "ReadWriteOncePod")
        {
            return Err(format!(
                "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes, not {bad}: node-local volumes cannot be shared between nodes (use a sharedFileSystemPath class for RWX)"
            )
            .into());
        }
        if selected.is_none() {
            return Err(format!(
                "configuration error, no node was specified: StorageClass {class_name:?} must use volumeBindingMode WaitForFirstConsumer for node-local volumes"
            )
            .into());
        }
    }
    let node_name = match (selected, input.node) {
        (Some(name), Some(_)) => Some(name.to_string()),
        (Some(name), None) => {
            return Err(format!(
                "selected node {name:?} does not exist: the scheduler will pick another"
            )
            .into());
        }
        (None, _) => None,
    };
    let requested = class
        .parameters
        .as_ref()
        .and_then(|p| p.get("nodePath"))
        .filter(|p| !p.is_empty());
    let (base_path, path_choice) =
        match config.paths_for(&class_name, node_name.as_deref().unwrap_or("")) {
            Ok(BasePaths::Shared(p)) => (p.to_string(), "the shared filesystem".to_owned()),
            Ok(BasePaths::Node(paths)) => {
                let node = node_name.clone().unwrap_or_default();
                let candidates: Vec<String> = match requested {
                    Some(want) => {
                        let want_clean = path::clean(want);
                        let found = paths
                            .iter()
                            .find(|p| **p == want_clean)
                            .cloned()
                            .ok_or_else(|| {
                                crate::config::PathError::NodePathNotConfigured {
                                    requested: want.clone(),
                                    node: node.clone(),
                                    configured: paths.to_vec(),
                                }
                                .to_string()
                            })?;
                        vec![found]
                    }
                    None => paths.to_vec(),
                };
                let selection = PathSelection::of_class(class)?;
                let budget = Budget::of_class(class)?;
                let ask = Ask {
                    node: &node,
                    candidates: &candidates,
                    size: request_bytes(claim).unwrap_or(0),
                    selection,
                    budget,
                    guards: &config.path_options,
                    capacity: input.capacity,
                    choice: input.choice,
                };
                match capacity::choose(&ask) {
                    Choice::Chosen { path, how } => (path, how),
                    Choice::Unfit(why) => return Err(Refusal::Unfit(why)),
                }
            }
            // A node the configuration gives no path is one the scheduler should not have picked.
            Err(
                e @ (crate::config::PathError::NodeNotListed { .. }
                | crate::config::PathError::NoPathsOnNode { .. }),
            ) => return Err(Refusal::Unfit(e.to_string())),
            Err(e) => return Err(e.to_string().into()),
        };
    let pv_name = volume_name(uid);
    let data = PatternData {
        pv_name: &pv_name,
        claim: &claim.metadata,
    };
    let folder = folder_name(class, &pv_name, &claim_ns, &claim_name, data)?;
    let volume_path = path::join(&base_path, &folder);
    if !path::is_inside(&volume_path, &base_path) {
        return Err(format!(
            "volume path {volume_path:?} would be the base path or above it: pathPattern must render a directory below {base_path}"
        )
        .into());
    }

    let (user, group, perm) = owner_patterns(class, data)?;

    let type_text = annotation(&claim.metadata, "volumeType")
        .or_else(|| annotation(&class.metadata, "defaultVolumeType"))
        .unwrap_or("hostPath");
    let volume_type = VolumeType::parse(type_text).ok_or_else(|| {
        format!("\"{type_text}\" is not a recognised volume type: use hostPath or local (claim annotation volumeType, class annotation defaultVolumeType)")
    })?;

    let request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .ok_or_else(|| {
            "claim has no spec.resources.requests.storage: set the size it needs".to_string()
        })?;
    let size_bytes = quantity_bytes(&request).ok_or_else(|| {
        format!(
            "claim storage request {:?} is not a size lpp understands",
            request.0
        )
    })?;

    let affinity_key = class
        .parameters
        .as_ref()
        .and_then(|p| p.get("nodeAffinityKey"))
        .filter(|k| !k.is_empty())
        .map_or(DEFAULT_NODE_AFFINITY_KEY, String::as_str);
    let affinity_value = match (&node_name, input.node, shared) {
        (Some(name), Some(node), false) => Some(
            node.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(affinity_key))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "node {name} has no label {affinity_key:?}, so the volume cannot be pinned to it: label the node, or fix the class's nodeAffinityKey"
                    )
                })?,
        ),
        _ => None,
    };
    let same_node =
        |n: &str| node_name.as_deref() == Some(n) || affinity_value.as_deref() == Some(n);
    if let Some(other) = overlapping(
        input.volumes,
        &pv_name,
        node_name.as_deref(),
        same_node,
        &volume_path,
    ) {
        return Err(format!(
            "volume path {volume_path} is already used by PersistentVolume {} ({}): a volume is never made on a path another volume uses, contains or lies inside",
            other.name, other.path
        )
        .into());
    }
    let affinity = affinity_value.map(|value| node_affinity(affinity_key, &value));

    let volume = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name.clone()),
            annotations: Some(BTreeMap::from([
                (PROVISIONED_BY.to_string(), input.provisioner.to_string()),
                (
                    SELECTED_NODE.to_string(),
                    node_name.clone().unwrap_or_default(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(access_modes),
            capacity: Some(BTreeMap::from([("storage".to_string(), request)])),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(claim_ns.clone()),
                name: Some(claim_name.clone()),
                uid: Some(uid.to_string()),
                resource_version: claim.metadata.resource_version.clone(),
                ..ObjectReference::default()
            }),
            host_path: (volume_type == VolumeType::HostPath).then(|| HostPathVolumeSource {
                path: volume_path.clone(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            local: (volume_type == VolumeType::Local).then(|| LocalVolumeSource {
                path: volume_path.clone(),
                fs_type: None,
            }),
            mount_options: class.mount_options.clone(),
            node_affinity: affinity,
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: Some(class_name),
            volume_mode: Some("Filesystem".into()),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    };
    let helper = VolumeJob {
        action: Action::Create,
        pv_name: pv_name.clone(),
        node: node_name.clone(),
        path: volume_path.clone(),
        mode: "Filesystem".into(),
        size_bytes,
        user,
        group,
        perm,
        script: input.contents.setup.clone(),
        shared,
    };
    Ok(VolumePlan {
        pv_name,
        node: node_name,
        base_path,
        path: volume_path,
        volume_type,
        helper,
        path_choice,
        volume,
    })
}

/// The volume's directory below its base path: relative, clean, no `..` element and no control
/// character; below `<namespace>/<name>/` unless the class opts out with
/// `allowUnsafePathPattern`.
/// `VOL_USER`, `VOL_GROUP` and `VOL_PERM`: the class's `userPattern`, `groupPattern` and
/// `permPattern` rendered over the volume's data (empty when unset). Setup and resize scripts
/// both get them.
pub fn owner_patterns(
    class: &StorageClass,
    data: PatternData<'_>,
) -> Result<(String, String, String), String> {
    let data_value = |key: &str| -> Result<String, String> {
        match parameter_or_annotation(class, key) {
            None => Ok(String::new()),
            Some(pattern) => template::render(pattern, data, MissingKey::Error)
                .map(|s| s.trim().to_string())
                .map_err(|e| {
                    format!(
                        "failed to create {} from pattern {pattern}: {e}",
                        &key[..key.len() - "Pattern".len()]
                    )
                }),
        }
    };
    Ok((
        data_value("userPattern")?,
        data_value("groupPattern")?,
        data_value("permPattern")?,
    ))
}

fn folder_name(
    class: &StorageClass,
    pv_name: &str,
    namespace: &str,
    name: &str,
    data: PatternData<'_>,
) -> Result<String, String> {
    let Some(pattern) = class.parameters.as_ref().and_then(|p| p.get("pathPattern")) else {
        let folder = folder_name_of(pv_name, namespace, name);
        // Kubernetes names never hold `/`; refuse anything that would make several elements.
        if folder.contains('/') || !path::is_local(&folder) || path::clean(&folder) != folder {
            return Err(format!(
                "claim name {namespace}/{name} cannot form a directory name"
            ));
        }
        return Ok(folder);
    };
    // Upstream: the parameter wins even when unparsable (then false); else the annotation.
    let allow_unsafe = match class
        .parameters
        .as_ref()
        .and_then(|p| p.get("allowUnsafePathPattern"))
    {
        Some(v) => go_parse_bool(v).unwrap_or(false),
        None => annotation(&class.metadata, "allowUnsafePathPattern")
            .and_then(go_parse_bool)
            .unwrap_or(false),
    };
    let rendered = template::render(pattern, data, MissingKey::NoValue)
        .map_err(|e| format!("failed to create path from pattern {pattern}: {e}"))?;
    // Judged on the rendered text before any cleaning: a `..` that climbs and comes back down
    // (`ns/claim/../../victim/claim`) would pass a prefix check on the cleaned or raw text alone,
    // and take over another claim's directory.
    if let Some(c) = path::control_character(&rendered) {
        return Err(format!(
            "failed to create path from pattern {pattern}: the rendered path {rendered:?} holds the control character {c:?}"
        ));
    }
    if rendered.starts_with('/') || path::has_parent_element(&rendered) {
        return Err(format!(
            "folder path contains invalid references: {rendered:?} (a pathPattern must render a relative path with no `..` element)"
        ));
    }
    let cleaned = path::clean(&rendered);
    if allow_unsafe {
        return Ok(cleaned);
    }
    let prefix = format!("{}/", path::join(namespace, name));
    if !cleaned.starts_with(&prefix) || path::has_parent_element(&prefix) {
        return Err(format!(
            "failed to create path from pattern {pattern}: pathPattern must start with {{{{ .PVC.Namespace }}}}/{{{{ .PVC.Name }}}}/: {rendered} (or set allowUnsafePathPattern: \"true\" on the class)"
        ));
    }
    Ok(cleaned)
}

fn node_affinity(key: &str, value: &str) -> VolumeNodeAffinity {
    VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: key.to_string(),
                    operator: "In".into(),
                    values: Some(vec![value.to_string()]),
                }]),
                match_fields: None,
            }],
        }),
    }
}

/// The value of a Kubernetes quantity in bytes (rounded up), as Go's `Quantity.Value()`.
pub fn quantity_bytes(q: &Quantity) -> Option<i64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (mantissa, exponent) = match number.find(['e', 'E']) {
        Some(i) if suffix.is_empty() => (&number[..i], number[i + 1..].parse::<i32>().ok()?),
        _ => (number, 0),
    };
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return None,
    };
    let value: f64 = mantissa.parse::<f64>().ok()? * multiplier * 10f64.powi(exponent);
    if !value.is_finite() || value < 0.0 || value > i64::MAX as f64 {
        return None;
    }
    // Integer arithmetic for the exact common case, so large sizes do not lose bytes to floats.
    if exponent == 0
        && multiplier >= 1.0
        && let Ok(n) = mantissa.parse::<i64>()
    {
        return n.checked_mul(multiplier as i64);
    }
    Some(value.ceil() as i64)
}
