//! What to do with a volume: leave it, or tear its directory down on the right node before the
//! PV is deleted.

use k8s_openapi::api::core::v1::PersistentVolume;

use super::helper_pod::{Action, VolumeJob};
use super::volume::{PROVISIONED_BY, SELECTED_NODE, quantity_bytes};
use crate::config::{ConfigMapContents, Storage};

/// Where the node of a teardown came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeSource {
    /// The PV's `local.path.provisioner/selected-node` annotation (the node the directory was
    /// made on).
    Annotation,
    /// The PV's node affinity value: only for PVs without the annotation. The value is a label
    /// value (e.g. `kubernetes.io/hostname`), which may differ from the node's name — upstream
    /// always uses it; lpp only falls back to it.
    Affinity,
    /// A shared filesystem: any node will do.
    Shared,
}

/// The decision for a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReclaimDecision {
    /// Not provisioned by us.
    NotOurs,
    /// Not Released yet (or already being deleted): nothing to do.
    InUse,
    /// Reclaim policy Retain: leave the PV and the data.
    Retain,
    /// Run `job` (a delete helper pod), then delete the PV.
    Teardown {
        /// The delete helper job.
        job: VolumeJob,
        /// Where the node of the job came from.
        node_source: NodeSource,
    },
    /// The node is gone: run no helper, delete the PV as upstream does, and put `message` (what
    /// stays on disk, where) in a Warning event; other work is not blocked.
    NodeGone {
        /// The node the PV was on.
        node: String,
        /// Directory of the volume on that node.
        path: String,
        /// The Warning event's message.
        message: String,
    },
    /// Cannot decide (no path, no node, class not served): the VolumeFailedDelete message.
    Fail(String),
}

/// Decides what to do with `pv`. `node_exists` answers from the controller's node cache, and
/// `node_labelled(key, value)` names the node carrying that label (for a PV without the
/// `selected-node` annotation, whose affinity value is a label value, not a node name).
pub fn decide_reclaim(
    pv: &PersistentVolume,
    provisioner: &str,
    contents: &ConfigMapContents,
    node_exists: impl Fn(&str) -> bool,
    node_labelled: impl Fn(&str, &str) -> Option<String>,
) -> ReclaimDecision {
    let annotations = pv.metadata.annotations.as_ref();
    let ann = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    if ann(PROVISIONED_BY) != Some(provisioner) {
        return ReclaimDecision::NotOurs;
    }
    let name = pv.metadata.name.clone().unwrap_or_default();
    let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Released") || pv.metadata.deletion_timestamp.is_some() {
        return ReclaimDecision::InUse;
    }
    let Some(spec) = pv.spec.as_ref() else {
        return ReclaimDecision::Fail(format!("failed to delete volume {name}: it has no spec"));
    };
    if spec.persistent_volume_reclaim_policy.as_deref() == Some("Retain") {
        return ReclaimDecision::Retain;
    }
    let path = match (&spec.host_path, &spec.local) {
        (Some(h), None) => h.path.clone(),
        (None, Some(l)) => l.path.clone(),
        _ => {
            return ReclaimDecision::Fail(format!(
                "failed to delete volume {name}: no path set (it needs exactly one of hostPath or local)"
            ));
        }
    };
    let class = spec.storage_class_name.clone().unwrap_or_default();
    // The class's config says whether the volume is shared; when the class is no longer served
    // (config changed), the PV's own shape does: no node affinity means shared.
    let shared = match contents.config.storage_for_class(&class) {
        Ok(Storage::Shared(_)) => true,
        Ok(Storage::Nodes(_)) => false,
        _ => spec.node_affinity.is_none(),
    };
    let size_bytes = spec
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .and_then(quantity_bytes)
        .unwrap_or(0);
    let job = |node: Option<String>| VolumeJob {
        action: Action::Delete,
        pv_name: name.clone(),
        node,
        path: path.clone(),
        mode: spec
            .volume_mode
            .clone()
            .unwrap_or_else(|| "Filesystem".into()),
        size_bytes,
        user: String::new(),
        group: String::new(),
        perm: String::new(),
        script: contents.teardown.clone(),
        shared,
    };
    if shared {
        return ReclaimDecision::Teardown {
            job: job(None),
            node_source: NodeSource::Shared,
        };
    }
    let (node, node_source) = match ann(SELECTED_NODE).filter(|n| !n.is_empty()) {
        Some(n) => (n.to_string(), NodeSource::Annotation),
        None => match affinity_term(pv) {
            // Where the label value differs from the node name (clouds, a custom
            // nodeAffinityKey), the node is the one carrying the label; a value no node carries
            // may still be an old PV's node name.
            Ok((key, value)) => (
                node_labelled(&key, &value).unwrap_or(value),
                NodeSource::Affinity,
            ),
            Err(why) => {
                return ReclaimDecision::Fail(format!("failed to delete volume {name}: {why}"));
            }
        },
    };
    if !node_exists(&node) {
        let message = format!(
            "node {node} no longer exists: volume {name} was deleted without cleanup, its data stays at {path} on {node} (remove it by hand if the node comes back)"
        );
        return ReclaimDecision::NodeGone {
            node,
            path,
            message,
        };
    }
    ReclaimDecision::Teardown {
        job: job(Some(node)),
        node_source,
    }
}

/// The first `In` value of the PV's required node affinity, as upstream reads it.
/// Where a local-path PV keeps its data: its node (the `local.path.provisioner/selected-node`
/// annotation, else the single value of its node affinity; `None` for a shared filesystem or a
/// PV without either) and its hostPath or local path. `None` when the PV has no such path.
pub fn volume_location(pv: &PersistentVolume) -> Option<(Option<String>, String)> {
    let spec = pv.spec.as_ref()?;
    let path = spec
        .host_path
        .as_ref()
        .map(|h| h.path.clone())
        .or_else(|| spec.local.as_ref().map(|l| l.path.clone()))?;
    let node = pv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SELECTED_NODE))
        .filter(|n| !n.is_empty())
        .cloned()
        .or_else(|| affinity_term(pv).ok().map(|(_, value)| value));
    Some((node, path))
}

/// The key and single value of the PV's first required `In` node affinity term.
pub(crate) fn affinity_term(pv: &PersistentVolume) -> Result<(String, String), String> {
    let required = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .ok_or("no NodeAffinity set")?
        .required
        .as_ref()
        .ok_or("no NodeAffinity.Required set")?;
    for term in &required.node_selector_terms {
        for expression in term.match_expressions.iter().flatten() {
            if expression.operator == "In" {
                let values = expression.values.clone().unwrap_or_default();
                if values.len() != 1 {
                    return Err("multiple values for the node affinity".into());
                }
                return Ok((expression.key.clone(), values[0].clone()));
            }
        }
    }
    Err("cannot find affinited node".into())
}
