//! Growing a volume: lpp is the external resizer of its own volumes. Pure: what to do with a
//! claim and its PV, the status patches that say so, and the parser of the space measurement.
//!
//! A directory volume has no size of its own, so kube-controller-manager's expand controller
//! finds no plugin for it and only says "waiting for an external controller to expand this
//! PVC". What an external resizer does is kubernetes-csi/external-resizer's
//! `expandAndRecover` (RecoverVolumeExpansionFailure, on by default since v1.32) for a volume
//! that needs no node expansion, step by step:
//!
//! 1. mark the claim (`/status`): `allocatedResourceStatuses[storage]=ControllerResizeInProgress`,
//!    `allocatedResources[storage]=<new size>`, condition `Resizing`; event `Resizing`;
//! 2. resize the volume: here, check the path has room for the growth and run the ConfigMap's
//!    optional `resize` script (a quota's new hard limit);
//! 3. set the PV's `spec.capacity`;
//! 4. finish the claim: `status.capacity=<new size>`, the resize status and conditions cleared;
//!    event `VolumeResizeSuccessful`.
//!
//! A failure records `VolumeResizeFailed` with the cause. One the volume cannot get (no room)
//! is *infeasible*: `allocatedResourceStatuses[storage]=ControllerResizeInfeasible` and a
//! `ControllerResizeError` condition, so `kubectl describe pvc` says why; it is tried again
//! when the user changes the request (lowering it, as v1.33 allows while it stays above
//! `status.capacity`) or something that may free space changes. A failed script is a final
//! error that is not infeasible: the condition, and retries with backoff.
//!
//! Everything is derived from the objects, never from memory, so a resize interrupted by a crash
//! resumes where it stopped: the size in progress is `allocatedResources`, the growth still
//! needed is measured against the PV's capacity (nothing when the PV already has the new size),
//! and the sidecar's in-memory "final error" set is the claim's `ControllerResizeError`
//! condition.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimCondition,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::helper_pod::{Action, VolumeJob};
use super::reclaim::affinity_term;
use super::template::PatternData;
use super::volume::{PROVISIONED_BY, SELECTED_NODE, owner_patterns, quantity_bytes};
use crate::config::{ConfigMapContents, Storage, path};

/// Normal event when the resize starts (external-resizer's `VolumeResizing`); also the
/// condition type of a resize under way.
pub const RESIZING: &str = "Resizing";
/// Warning event when a resize failed, with the cause.
pub const VOLUME_RESIZE_FAILED: &str = "VolumeResizeFailed";
/// Normal event when the resize finished.
pub const VOLUME_RESIZE_SUCCESSFUL: &str = "VolumeResizeSuccessful";
/// `allocatedResourceStatuses[storage]` while the controller resizes.
pub const CONTROLLER_RESIZE_IN_PROGRESS: &str = "ControllerResizeInProgress";
/// `allocatedResourceStatuses[storage]` when the controller cannot give the volume that size
/// (since v1.31; the field's generated docs still say `ControllerResizeFailed`).
pub const CONTROLLER_RESIZE_INFEASIBLE: &str = "ControllerResizeInfeasible";
/// The condition saying why the controller's resize failed.
pub const CONTROLLER_RESIZE_ERROR: &str = "ControllerResizeError";
const NODE_RESIZE_PENDING: &str = "NodeResizePending";
const NODE_RESIZE_IN_PROGRESS: &str = "NodeResizeInProgress";
const NODE_RESIZE_INFEASIBLE: &str = "NodeResizeInfeasible";
const FILE_SYSTEM_RESIZE_PENDING: &str = "FileSystemResizePending";
/// The conditions a resizer owns (external-resizer's `knownResizeConditions`); others are kept.
const RESIZE_CONDITIONS: [&str; 4] = [
    RESIZING,
    FILE_SYSTEM_RESIZE_PENDING,
    CONTROLLER_RESIZE_ERROR,
    "NodeResizeError",
];

/// `Resizing` event text.
pub fn resizing_message(pv_name: &str) -> String {
    format!("External resizer is resizing volume {pv_name}")
}

/// `VolumeResizeSuccessful` event text.
pub const RESIZE_SUCCEEDED_MESSAGE: &str = "Resize volume succeeded";

/// `VolumeResizeFailed` event text, as the sidecar words it.
pub fn resize_failed_message(pv_name: &str, resizer: &str, cause: &str) -> String {
    format!("resize volume \"{pv_name}\" by resizer \"{resizer}\" failed: {cause}")
}

fn storage(map: Option<&BTreeMap<String, Quantity>>) -> Option<&Quantity> {
    map.and_then(|m| m.get("storage"))
}

fn bytes(q: Option<&Quantity>) -> i64 {
    q.and_then(quantity_bytes).unwrap_or(0)
}

/// Whether a claim asks to be resized (external-resizer's `pvcNeedResize`): Bound to a volume,
/// and a storage request above its status capacity. The watch hands only these on.
pub fn wants_resize(claim: &PersistentVolumeClaim) -> bool {
    let spec = claim.spec.as_ref();
    let status = claim.status.as_ref();
    let bound = status.and_then(|s| s.phase.as_deref()) == Some("Bound")
        && spec
            .and_then(|s| s.volume_name.as_deref())
            .is_some_and(|n| !n.is_empty());
    let request = storage(
        spec.and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    );
    let capacity = storage(status.and_then(|s| s.capacity.as_ref()));
    bound && claim.metadata.deletion_timestamp.is_none() && bytes(request) > bytes(capacity)
}

/// What the decision needs.
pub struct ResizeInput<'a> {
    /// The claim asking for more room.
    pub claim: &'a PersistentVolumeClaim,
    /// The claim's PV, when the store has it.
    pub volume: Option<&'a PersistentVolume>,
    /// The claim's StorageClass (for `userPattern` and friends), when it still exists.
    pub class: Option<&'a StorageClass>,
    /// The provisioner's configuration as it is now.
    pub contents: &'a ConfigMapContents,
    /// The provisioner name of the StorageClass that this run serves.
    pub provisioner: &'a str,
    /// The node carrying label `key=value`: for a PV without the `selected-node` annotation,
    /// whose node affinity names a label value, not a node.
    pub node_labelled: &'a dyn Fn(&str, &str) -> Option<String>,
    /// The time written into the conditions.
    pub now: jiff::Timestamp,
}

/// Why a claim is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leave {
    /// It does not ask for more than it has.
    NotAsked,
    /// Its PV is not one of ours.
    NotOurs,
    /// Its PV is bound to another claim (or to none).
    NotBoundHere,
    /// The node finishes this resize (a node state another resizer set).
    NodeResizing,
}

/// What to do with a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum ResizeDecision {
    /// Nothing.
    Leave(Leave),
    /// The claim names a PV the store does not have (yet): look again later.
    NoVolume(String),
    /// The last attempt at this very size was infeasible and nothing in the claim changed:
    /// wait for a change (the request, or something that may free space).
    StillInfeasible,
    /// The volume cannot be resized (no path, no node): the `VolumeResizeFailed` cause.
    Fail(String),
    /// Resize as the plan says.
    Resize(Box<ResizePlan>),
}

/// A resize to carry out, in the order of the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizePlan {
    /// PersistentVolume name.
    pub pv_name: String,
    /// The size the volume gets (a request of the claim, or the one in progress).
    pub new_size: Quantity,
    /// `new_size` in bytes.
    pub new_bytes: i64,
    /// The PV's capacity now.
    pub old_size: Quantity,
    /// How much more room the volume needs: the new size less the PV's capacity (0 when the PV
    /// already has it: a resize interrupted after step 3 needs no room again).
    pub growth: i64,
    /// The merge patch of step 1, for `/status`.
    pub mark: Value,
    /// The node the directory is on (`None`: a shared filesystem).
    pub node: Option<String>,
    /// The volume's directory.
    pub path: String,
    /// The base path the directory lies in (a configured one, else its parent): where the room
    /// is measured.
    pub base_path: String,
    /// The `resize` script to run, when the ConfigMap has one.
    pub job: Option<VolumeJob>,
}

fn condition(type_: &str, message: Option<String>, now: jiff::Timestamp) -> Value {
    let condition = PersistentVolumeClaimCondition {
        type_: type_.into(),
        status: "True".into(),
        last_transition_time: Some(Time(now)),
        message,
        ..PersistentVolumeClaimCondition::default()
    };
    serde_json::to_value(condition).unwrap_or(Value::Null)
}

/// external-resizer's `MergeResizeConditionsOfPVC`: conditions a resizer does not own are kept;
/// one of the same type as a new one is replaced by it; other resize conditions are kept only
/// with `keep_old`; the new ones left are added.
fn merge_conditions(claim: &PersistentVolumeClaim, new: Vec<Value>, keep_old: bool) -> Value {
    let mut new: Vec<Option<Value>> = new.into_iter().map(Some).collect();
    let type_of = |v: &Value| v.get("type").and_then(Value::as_str).map(str::to_owned);
    let mut out = Vec::new();
    let old = claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten();
    for c in old {
        if !RESIZE_CONDITIONS.contains(&c.type_.as_str()) {
            out.push(serde_json::to_value(c).unwrap_or(Value::Null));
            continue;
        }
        let same = new
            .iter_mut()
            .find(|n| n.as_ref().and_then(type_of).as_deref() == Some(c.type_.as_str()));
        match same {
            Some(slot) => out.extend(slot.take().map(|mut n| {
                // Unchanged status keeps its transition time (the condition convention): an
                // attempt that changes nothing then writes nothing, and the claim's watch does
                // not wake the retry it is waiting out.
                if n.get("status").and_then(Value::as_str) == Some(c.status.as_str())
                    && let Some(t) = &c.last_transition_time
                {
                    n["lastTransitionTime"] = serde_json::to_value(t).unwrap_or(Value::Null);
                }
                n
            })),
            None if keep_old => out.push(serde_json::to_value(c).unwrap_or(Value::Null)),
            None => {}
        }
    }
    out.extend(new.into_iter().flatten());
    Value::Array(out)
}

/// The claim's resourceVersion, for a patch that must apply to the claim it was computed from
/// (the sidecar's `addResourceVersionCheck`).
fn version(claim: &PersistentVolumeClaim) -> Value {
    json!({"resourceVersion": claim.metadata.resource_version.clone().unwrap_or_default()})
}

fn resize_status(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .status
        .as_ref()?
        .allocated_resource_statuses
        .as_ref()?
        .get("storage")
        .map(String::as_str)
}

fn has_condition(claim: &PersistentVolumeClaim, type_: &str) -> bool {
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Decides what to do with a claim that [`wants_resize`] (external-resizer's
/// `expandAndRecover`, see the module docs).
pub fn decide_resize(input: &ResizeInput<'_>) -> ResizeDecision {
    let claim = input.claim;
    if !wants_resize(claim) {
        return ResizeDecision::Leave(Leave::NotAsked);
    }
    let volume_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    let Some(volume) = input.volume else {
        return ResizeDecision::NoVolume(format!(
            "PV {volume_name} bound to the claim is not known yet"
        ));
    };
    let annotations = volume.metadata.annotations.as_ref();
    if annotations
        .and_then(|a| a.get(PROVISIONED_BY))
        .map(String::as_str)
        != Some(input.provisioner)
    {
        return ResizeDecision::Leave(Leave::NotOurs);
    }
    let Some(spec) = volume.spec.as_ref() else {
        return ResizeDecision::Fail(format!("PV {volume_name} has no spec"));
    };
    let bound_here = spec
        .claim_ref
        .as_ref()
        .is_some_and(|r| r.namespace == claim.metadata.namespace && r.uid == claim.metadata.uid);
    if !bound_here {
        return ResizeDecision::Leave(Leave::NotBoundHere);
    }

    let request = storage(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
    .cloned()
    .unwrap_or_default();
    let old_size = storage(spec.capacity.as_ref()).cloned().unwrap_or_default();
    let allocated = storage(
        claim
            .status
            .as_ref()
            .and_then(|s| s.allocated_resources.as_ref()),
    )
    .cloned();
    let status = resize_status(claim);
    let pv_bytes = bytes(Some(&old_size));
    let request_bytes = bytes(Some(&request));
    let allocated_or_request = || allocated.clone().unwrap_or_else(|| request.clone());

    let new_size = if pv_bytes < request_bytes {
        match status {
            Some(NODE_RESIZE_INFEASIBLE) => allocated_or_request(),
            Some(NODE_RESIZE_PENDING | NODE_RESIZE_IN_PROGRESS) => {
                let size = allocated_or_request();
                if pv_bytes >= bytes(Some(&size)) {
                    return ResizeDecision::Leave(Leave::NodeResizing);
                }
                size
            }
            // An earlier attempt may still be uncertain: finish it first. After a final error
            // (the sidecar remembers it in memory; the claim's condition says it here), the
            // request may have come down to what the volume can get: use it.
            Some(CONTROLLER_RESIZE_IN_PROGRESS)
                if !has_condition(claim, CONTROLLER_RESIZE_ERROR) =>
            {
                allocated_or_request()
            }
            _ => request.clone(),
        }
    } else {
        match status {
            Some(NODE_RESIZE_IN_PROGRESS | NODE_RESIZE_PENDING) => {
                return ResizeDecision::Leave(Leave::NodeResizing);
            }
            // The PV has the size already: only the claim is left to update (a resize stopped
            // after step 3), or the request was lowered below what the PV got.
            Some(_) => allocated_or_request(),
            None if allocated.is_some() => allocated_or_request(),
            None if has_condition(claim, FILE_SYSTEM_RESIZE_PENDING) => {
                return ResizeDecision::Leave(Leave::NodeResizing);
            }
            None => request.clone(),
        }
    };
    let new_bytes = bytes(Some(&new_size));
    let same_as_allocated = allocated
        .as_ref()
        .is_some_and(|a| bytes(Some(a)) == new_bytes);
    if same_as_allocated && status == Some(CONTROLLER_RESIZE_INFEASIBLE) {
        return ResizeDecision::StillInfeasible;
    }
    // Asked again for the size already in progress: the status stays, old conditions too.
    let update_status = !same_as_allocated;
    let conditions = merge_conditions(
        claim,
        vec![condition(RESIZING, None, input.now)],
        !update_status,
    );
    let mut status_patch = json!({
        "conditions": conditions,
        "allocatedResources": {"storage": new_size.0},
    });
    if update_status {
        status_patch["allocatedResourceStatuses"] =
            json!({"storage": CONTROLLER_RESIZE_IN_PROGRESS});
    }
    let mark = json!({"metadata": version(claim), "status": status_patch});

    let (node, path) = match where_it_is(volume, input) {
        Ok(found) => found,
        Err(why) => return ResizeDecision::Fail(why),
    };
    let base_path = base_path_of(input.contents, node.as_deref(), &path);
    let job = match &input.contents.resize {
        None => None,
        Some(script) => {
            let pv_name = volume.metadata.name.clone().unwrap_or_default();
            let (user, group, perm) = match input.class {
                Some(class) => {
                    let data = PatternData {
                        pv_name: &pv_name,
                        claim: &claim.metadata,
                    };
                    match owner_patterns(class, data) {
                        Ok(owner) => owner,
                        Err(why) => return ResizeDecision::Fail(why),
                    }
                }
                None => Default::default(),
            };
            Some(VolumeJob {
                action: Action::Resize,
                pv_name,
                node: node.clone(),
                path: path.clone(),
                mode: spec
                    .volume_mode
                    .clone()
                    .unwrap_or_else(|| "Filesystem".into()),
                size_bytes: new_bytes,
                user,
                group,
                perm,
                script: script.clone(),
                shared: node.is_none(),
            })
        }
    };
    ResizeDecision::Resize(Box::new(ResizePlan {
        pv_name: volume_name,
        growth: new_bytes.saturating_sub(pv_bytes).max(0),
        new_size,
        new_bytes,
        old_size,
        mark,
        node,
        path,
        base_path,
        job,
    }))
}

/// The volume's node (`None` for a shared filesystem) and directory.
fn where_it_is(
    volume: &PersistentVolume,
    input: &ResizeInput<'_>,
) -> Result<(Option<String>, String), String> {
    let name = volume.metadata.name.as_deref().unwrap_or_default();
    let spec = volume.spec.as_ref().ok_or("no spec")?;
    let path = match (&spec.host_path, &spec.local) {
        (Some(h), None) => h.path.clone(),
        (None, Some(l)) => l.path.clone(),
        _ => {
            return Err(format!(
                "PV {name} has no path (it needs exactly one of hostPath or local)"
            ));
        }
    };
    let class = spec.storage_class_name.clone().unwrap_or_default();
    let shared = match input.contents.config.storage_for_class(&class) {
        Ok(Storage::Shared(_)) => true,
        Ok(Storage::Nodes(_)) => false,
        _ => spec.node_affinity.is_none(),
    };
    if shared {
        return Ok((None, path));
    }
    let selected = volume
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SELECTED_NODE))
        .filter(|n| !n.is_empty());
    let node = match selected {
        Some(n) => n.clone(),
        None => {
            let (key, value) = affinity_term(volume).map_err(|why| format!("PV {name}: {why}"))?;
            (input.node_labelled)(&key, &value).unwrap_or(value)
        }
    };
    Ok((Some(node), path))
}

/// The configured base path the volume's directory lies in (the deepest, when several
/// contain it), else the directory's parent.
fn base_path_of(contents: &ConfigMapContents, node: Option<&str>, volume_path: &str) -> String {
    let bases = match node {
        Some(node) => contents.config.base_paths_on(node),
        None => contents.config.shared_paths(),
    };
    let clean = path::clean(volume_path);
    bases
        .into_iter()
        .filter(|b| path::is_inside(&clean, b))
        .max_by_key(String::len)
        .or_else(|| path::split_parent(&clean).map(|(parent, _)| parent.to_owned()))
        .unwrap_or(clean)
}

/// The merge patch of step 4: the claim has the new size; the resize status and conditions
/// go.
pub fn finished(claim: &PersistentVolumeClaim, new_size: &Quantity) -> Value {
    let mut statuses = claim
        .status
        .as_ref()
        .and_then(|s| s.allocated_resource_statuses.clone())
        .unwrap_or_default();
    statuses.remove("storage");
    // Other resources' states are someone else's; none left clears the field, as the sidecar
    // leaves it nil.
    let statuses = if statuses.is_empty() {
        Value::Null
    } else {
        let mut keep = serde_json::Map::new();
        keep.insert("storage".into(), Value::Null);
        Value::Object(keep)
    };
    json!({
        "metadata": version(claim),
        "status": {
            "capacity": {"storage": new_size.0},
            "conditions": merge_conditions(claim, Vec::new(), false),
            "allocatedResourceStatuses": statuses,
        }
    })
}

/// How a resize failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The volume cannot get the size (no room): `ControllerResizeInfeasible` and the
    /// condition; tried again when the claim or the space changes.
    Infeasible,
    /// The resize script failed: the condition; retried with backoff.
    Final,
}

/// The merge patch recording a failed resize with `cause` (no resourceVersion: a failure is
/// recorded even over a slightly newer claim, as the sidecar does).
pub fn failed(
    claim: &PersistentVolumeClaim,
    failure: Failure,
    cause: &str,
    now: jiff::Timestamp,
) -> Value {
    let error = condition(
        CONTROLLER_RESIZE_ERROR,
        Some(format!("failed to expand pvc with {cause}")),
        now,
    );
    let mut status = json!({"conditions": merge_conditions(claim, vec![error], true)});
    if failure == Failure::Infeasible {
        status["allocatedResourceStatuses"] = json!({"storage": CONTROLLER_RESIZE_INFEASIBLE});
    }
    json!({"status": status})
}

/// The merge patch of step 3: the PV's capacity.
pub fn volume_capacity(new_size: &Quantity) -> Value {
    json!({"spec": {"capacity": {"storage": new_size.0}}})
}

/// Why there is no room, or `None` when `available` bytes hold the growth.
pub fn no_room(plan: &ResizePlan, where_: &str, available: u64) -> Option<String> {
    let growth = u64::try_from(plan.growth).unwrap_or(0);
    (growth > available).then(|| {
        format!(
            "not enough space to grow the volume from {} to {}: it needs {} more, and {where_} has {} available",
            plan.old_size.0,
            plan.new_size.0,
            crate::ui::bytes(growth),
            crate::ui::bytes(available)
        )
    })
}

/// The command that measures the space left on the filesystem holding `dir` (busybox and
/// coreutils alike): POSIX `df` output in KiB.
pub fn df_command(dir: &str) -> Vec<String> {
    vec!["df".into(), "-P".into(), "-k".into(), dir.into()]
}

/// Available bytes from `df -P -k` output: the last line's fourth column. Fields are read from
/// the capacity column (`NN%`) backwards, so a device name with spaces does not shift them.
pub fn parse_df(output: &str) -> Result<u64, String> {
    let line = output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or("df printed nothing")?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let percent = fields
        .iter()
        .enumerate()
        .skip(4)
        .find(|(_, f)| {
            f.strip_suffix('%')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|(i, _)| i)
        .ok_or_else(|| format!("df printed no capacity column: {line:?}"))?;
    let available = fields[percent - 1];
    available
        .parse::<u64>()
        .map(|kib| kib.saturating_mul(1024))
        .map_err(|_| format!("df's available column is not a number: {available:?}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim(request: &str, capacity: &str, status: Value) -> PersistentVolumeClaim {
        let mut c = json!({
            "metadata": {"name": "data", "namespace": "default", "uid": "u1", "resourceVersion": "7"},
            "spec": {"volumeName": "pvc-u1", "storageClassName": "local-path",
                     "resources": {"requests": {"storage": request}}},
            "status": {"phase": "Bound", "capacity": {"storage": capacity}}
        });
        for (k, v) in status.as_object().cloned().unwrap_or_default() {
            c["status"][k] = v;
        }
        serde_json::from_value(c).unwrap()
    }

    fn volume(capacity: &str) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "pvc-u1", "annotations": {
                "pv.kubernetes.io/provisioned-by": "rancher.io/local-path",
                "local.path.provisioner/selected-node": "node-1"}},
            "spec": {"capacity": {"storage": capacity}, "storageClassName": "local-path",
                     "hostPath": {"path": "/opt/local-path-provisioner/pvc-u1_default_data"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}]}},
                     "claimRef": {"namespace": "default", "name": "data", "uid": "u1"}}
        }))
        .unwrap()
    }

    fn decide_with(
        claim: &PersistentVolumeClaim,
        volume: Option<&PersistentVolume>,
        contents: &ConfigMapContents,
    ) -> ResizeDecision {
        decide_resize(&ResizeInput {
            claim,
            volume,
            class: None,
            contents,
            provisioner: "rancher.io/local-path",
            node_labelled: &|_, _| None,
            now: jiff::Timestamp::UNIX_EPOCH,
        })
    }

    fn decide(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> ResizeDecision {
        decide_with(
            claim,
            Some(volume),
            &crate::provision::tests::default_contents(),
        )
    }

    fn plan(d: ResizeDecision) -> ResizePlan {
        match d {
            ResizeDecision::Resize(p) => *p,
            other => panic!("not a resize: {other:?}"),
        }
    }

    #[test]
    fn a_grown_claim_is_marked_and_resized_to_its_request() {
        let p = plan(decide(&claim("5Gi", "1Gi", json!({})), &volume("1Gi")));
        assert_eq!(p.new_size.0, "5Gi");
        assert_eq!(p.growth, 4 << 30);
        assert_eq!(p.node.as_deref(), Some("node-1"));
        assert_eq!(p.base_path, "/opt/local-path-provisioner");
        assert_eq!(p.job, None, "no resize key, no script");
        assert_eq!(p.mark["metadata"]["resourceVersion"], "7");
        assert_eq!(p.mark["status"]["allocatedResources"]["storage"], "5Gi");
        assert_eq!(
            p.mark["status"]["allocatedResourceStatuses"]["storage"],
            CONTROLLER_RESIZE_IN_PROGRESS
        );
        assert_eq!(p.mark["status"]["conditions"][0]["type"], RESIZING);
        assert_eq!(p.mark["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn claims_not_asking_or_not_ours_are_left() {
        let v = volume("1Gi");
        assert_eq!(
            decide(&claim("1Gi", "1Gi", json!({})), &v),
            ResizeDecision::Leave(Leave::NotAsked)
        );
        let mut foreign = v.clone();
        foreign
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(PROVISIONED_BY.into(), "other.io/x".into());
        assert_eq!(
            decide(&claim("2Gi", "1Gi", json!({})), &foreign),
            ResizeDecision::Leave(Leave::NotOurs)
        );
        let mut elsewhere = v.clone();
        elsewhere
            .spec
            .as_mut()
            .unwrap()
            .claim_ref
            .as_mut()
            .unwrap()
            .uid = Some("u2".into());
        assert_eq!(
            decide(&claim("2Gi", "1Gi", json!({})), &elsewhere),
            ResizeDecision::Leave(Leave::NotBoundHere)
        );
        assert!(matches!(
            decide_with(
                &claim("2Gi", "1Gi", json!({})),
                None,
                &crate::provision::tests::default_contents()
            ),
            ResizeDecision::NoVolume(_)
        ));
    }

    #[test]
    fn an_interrupted_resize_resumes_at_the_allocated_size_without_needing_room_twice() {
        // Marked for 5Gi, then the user asked 8Gi: the 5Gi under way finishes first.
        let marked = claim(
            "8Gi",
            "1Gi",
            json!({"allocatedResources": {"storage": "5Gi"},
                   "allocatedResourceStatuses": {"storage": CONTROLLER_RESIZE_IN_PROGRESS},
                   "conditions": [{"type": "Resizing", "status": "True"}]}),
        );
        let p = plan(decide(&marked, &volume("1Gi")));
        assert_eq!(p.new_size.0, "5Gi");
        // The same size again: the status is not written again, old conditions stay.
        assert!(p.mark["status"].get("allocatedResourceStatuses").is_none());
        // Stopped after the PV got 5Gi: only the claim is left, no room needed.
        let p = plan(decide(&marked, &volume("5Gi")));
        assert_eq!((p.new_size.0.as_str(), p.growth), ("5Gi", 0));
    }

    #[test]
    fn an_infeasible_size_waits_until_the_request_changes() {
        let failed = |request: &str| {
            claim(
                request,
                "1Gi",
                json!({"allocatedResources": {"storage": "100Ti"},
                       "allocatedResourceStatuses": {"storage": CONTROLLER_RESIZE_INFEASIBLE},
                       "conditions": [{"type": "ControllerResizeError", "status": "True",
                                       "message": "failed to expand pvc with no room"}]}),
            )
        };
        assert_eq!(
            decide(&failed("100Ti"), &volume("1Gi")),
            ResizeDecision::StillInfeasible
        );
        // Lowered (recovery): the new request, the status written anew, the error dropped.
        let p = plan(decide(&failed("2Gi"), &volume("1Gi")));
        assert_eq!((p.new_size.0.as_str(), p.growth), ("2Gi", 1 << 30));
        assert_eq!(
            p.mark["status"]["allocatedResourceStatuses"]["storage"],
            CONTROLLER_RESIZE_IN_PROGRESS
        );
        let conditions = p.mark["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0]["type"], RESIZING);
    }

    #[test]
    fn after_a_final_error_the_request_decides() {
        let c = claim(
            "3Gi",
            "1Gi",
            json!({"allocatedResources": {"storage": "5Gi"},
                   "allocatedResourceStatuses": {"storage": CONTROLLER_RESIZE_IN_PROGRESS},
                   "conditions": [{"type": "ControllerResizeError", "status": "True"},
                                  {"type": "Other", "status": "True"}]}),
        );
        let p = plan(decide(&c, &volume("1Gi")));
        assert_eq!(p.new_size.0, "3Gi");
        let kept: Vec<&str> = p.mark["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(kept, ["Other", RESIZING]);
    }

    #[test]
    fn an_attempt_that_changes_nothing_writes_the_same_conditions() {
        let c = claim(
            "5Gi",
            "1Gi",
            json!({"allocatedResources": {"storage": "5Gi"},
                   "allocatedResourceStatuses": {"storage": CONTROLLER_RESIZE_IN_PROGRESS},
                   "conditions": [{"type": "Resizing", "status": "True",
                                   "lastTransitionTime": "2020-01-01T00:00:00Z"},
                                  {"type": "ControllerResizeError", "status": "True",
                                   "lastTransitionTime": "2020-01-01T00:00:00Z",
                                   "message": "failed to expand pvc with exit 1"}]}),
        );
        let p = plan(decide(&c, &volume("1Gi")));
        assert_eq!(
            p.mark["status"]["conditions"],
            serde_json::to_value(c.status.as_ref().unwrap().conditions.clone()).unwrap()
        );
        let again = failed(&c, Failure::Final, "exit 1", jiff::Timestamp::now());
        assert_eq!(
            again["status"]["conditions"],
            p.mark["status"]["conditions"]
        );
    }

    #[test]
    fn node_resizes_are_left_to_the_node() {
        let c = claim(
            "5Gi",
            "1Gi",
            json!({"allocatedResources": {"storage": "5Gi"},
                   "allocatedResourceStatuses": {"storage": "NodeResizePending"}}),
        );
        assert_eq!(
            decide(&c, &volume("5Gi")),
            ResizeDecision::Leave(Leave::NodeResizing)
        );
    }

    #[test]
    fn the_resize_script_gets_the_new_size() {
        let mut data = crate::config::default_config_map_data();
        data.insert(crate::config::RESIZE_KEY.into(), "exit 0".into());
        let contents = ConfigMapContents::from_data(&data, None, None).unwrap();
        let p = plan(decide_with(
            &claim("5Gi", "1Gi", json!({})),
            Some(&volume("1Gi")),
            &contents,
        ));
        let job = p.job.unwrap();
        assert_eq!(job.action, Action::Resize);
        assert_eq!(job.size_bytes, 5 << 30);
        assert_eq!(job.node.as_deref(), Some("node-1"));
        assert_eq!(job.path, "/opt/local-path-provisioner/pvc-u1_default_data");
    }

    #[test]
    fn finishing_and_failing_write_what_the_sidecar_writes() {
        let c = claim(
            "5Gi",
            "1Gi",
            json!({"allocatedResources": {"storage": "5Gi"},
                   "allocatedResourceStatuses": {"storage": CONTROLLER_RESIZE_IN_PROGRESS},
                   "conditions": [{"type": "Resizing", "status": "True"},
                                  {"type": "Other", "status": "True"}]}),
        );
        let done = finished(&c, &Quantity("5Gi".into()));
        assert_eq!(done["status"]["capacity"]["storage"], "5Gi");
        assert_eq!(done["status"]["allocatedResourceStatuses"], Value::Null);
        assert_eq!(done["status"]["conditions"].as_array().unwrap().len(), 1);
        assert_eq!(done["metadata"]["resourceVersion"], "7");
        let no = failed(
            &c,
            Failure::Infeasible,
            "no room",
            jiff::Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            no["status"]["allocatedResourceStatuses"]["storage"],
            CONTROLLER_RESIZE_INFEASIBLE
        );
        let conditions = no["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 3, "old resize conditions are kept");
        assert_eq!(conditions[2]["type"], CONTROLLER_RESIZE_ERROR);
        assert_eq!(
            conditions[2]["message"],
            "failed to expand pvc with no room"
        );
        let script = failed(&c, Failure::Final, "exit 1", jiff::Timestamp::UNIX_EPOCH);
        assert!(script["status"].get("allocatedResourceStatuses").is_none());
        assert!(no.get("metadata").is_none());
    }

    #[test]
    fn room_is_compared_with_the_growth() {
        let p = plan(decide(&claim("5Gi", "1Gi", json!({})), &volume("1Gi")));
        assert_eq!(p.growth, 4 << 30);
        assert!(no_room(&p, "node-1:/opt", 4 << 30).is_none());
        let why = no_room(&p, "node-1:/opt", 1 << 30).unwrap();
        assert_eq!(
            why,
            "not enough space to grow the volume from 1Gi to 5Gi: it needs 4.0GiB more, and node-1:/opt has 1.0GiB available"
        );
    }

    #[test]
    fn df_output_is_read_from_its_last_line() {
        let out = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                   /dev/vda         264212084 44015368  51270520      47% /\n";
        assert_eq!(parse_df(out), Ok(51_270_520 * 1024));
        let spaced = "Filesystem 1024-blocks Used Available Capacity Mounted on\n\
                      my disk 100 40 60 40% /mnt/with space\n";
        assert_eq!(parse_df(spaced), Ok(60 * 1024));
        assert!(parse_df("").is_err());
        assert!(parse_df("df: /x: No such file or directory\n").is_err());
    }

    proptest! {
        #[test]
        fn parse_df_never_panics(text in "\\PC{0,200}") {
            let _ = parse_df(&text);
        }

        #[test]
        fn the_new_size_is_never_below_the_capacity_nor_above_what_was_asked(
            capacity in 1i64..64, request in 1i64..64, allocated in proptest::option::of(1i64..64),
            pv in 1i64..64, state in 0usize..4,
        ) {
            let states = ["", CONTROLLER_RESIZE_IN_PROGRESS, CONTROLLER_RESIZE_INFEASIBLE, NODE_RESIZE_PENDING];
            let mut status = json!({});
            if let Some(a) = allocated {
                status["allocatedResources"] = json!({"storage": format!("{a}Gi")});
            }
            if !states[state].is_empty() {
                status["allocatedResourceStatuses"] = json!({"storage": states[state]});
            }
            let c = claim(&format!("{request}Gi"), &format!("{capacity}Gi"), status);
            match decide(&c, &volume(&format!("{pv}Gi"))) {
                ResizeDecision::Resize(p) => {
                    prop_assert!(request > capacity);
                    let asked = request.max(allocated.unwrap_or(0));
                    prop_assert!(p.new_bytes <= asked << 30);
                    prop_assert!(p.growth >= 0);
                    prop_assert!(p.growth <= p.new_bytes);
                }
                ResizeDecision::Leave(Leave::NotAsked) => prop_assert!(request <= capacity),
                _ => prop_assert!(request > capacity),
            }
        }
    }
}
