//! kube-controller-manager's expand controller (`pkg/controller/volume/expand/
//! expand_controller.go`) as a pure function: which Bound claims ask for more than their
//! volume has, and what the controller says about them.
//!
//! The controller expands a volume itself only through an in-tree expandable plugin, and
//! kube-controller-manager registers none for the volumes the sandbox has (hostPath, local,
//! CSI: its expandable plugins are the legacy cloud providers' and FC). So for every such
//! claim `FindExpandablePluginBySpec` fails, and all the controller does is record a Warning
//! event `ExternalExpanding` "waiting for an external controller to expand this PVC" (Warning
//! because the lookup failed with an error) and leave the claim to an external resizer: no
//! status, condition or volume change. FlexVolume and FC volumes, which it would handle
//! itself, are not modelled.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::binding::quantity_bytes;

/// The event reason (`events.ExternalExpanding`).
pub const EXTERNAL_EXPANDING: &str = "ExternalExpanding";
/// The event message.
pub const WAITING_MESSAGE: &str = "waiting for an external controller to expand this PVC";
/// The volume annotation that keeps a resize going until the node has finished it.
pub const PRE_RESIZE_CAPACITY: &str = "volume.alpha.kubernetes.io/pre-resize-capacity";

/// A claim waiting for an external resizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
    /// The claim's uid.
    pub uid: String,
    /// What the controller's queue would be keyed by: the request and capacity it saw (it
    /// syncs a claim again when either grows).
    pub seen: String,
}

fn storage(
    map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Option<&str> {
    map.and_then(|m| m.get("storage")).map(|q| q.0.as_str())
}

/// The claims the controller would record `ExternalExpanding` for (`syncHandler`): Bound,
/// their volume's `claimRef` naming them (namespace and uid), and a request above
/// `status.capacity` or the volume marked with [`PRE_RESIZE_CAPACITY`].
pub fn waiting(
    claims: &[Arc<PersistentVolumeClaim>],
    volumes: &[Arc<PersistentVolume>],
) -> Vec<Waiting> {
    // The controller's informer handlers enqueue a claim on every change, and its sync returns
    // at once unless the claim asks for more than it has; a pass here runs on every change of
    // any claim or volume, so the few candidates are found first and only they are looked up.
    let marked: HashMap<&str, &PersistentVolume> = volumes
        .iter()
        .filter(|v| {
            v.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(PRE_RESIZE_CAPACITY))
        })
        .filter_map(|v| Some((v.metadata.name.as_deref()?, &**v)))
        .collect();
    let bytes = |q: Option<&str>| q.and_then(quantity_bytes).unwrap_or(0);
    let candidates: Vec<&Arc<PersistentVolumeClaim>> = claims
        .iter()
        .filter(|claim| {
            let status = claim.status.as_ref();
            if status.and_then(|s| s.phase.as_deref()) != Some("Bound") {
                return false;
            }
            let spec = claim.spec.as_ref();
            let requested = storage(
                spec.and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.requests.as_ref()),
            );
            let capacity = storage(status.and_then(|s| s.capacity.as_ref()));
            bytes(requested) > bytes(capacity)
                || spec
                    .and_then(|s| s.volume_name.as_deref())
                    .is_some_and(|n| marked.contains_key(n))
        })
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let by_name: HashMap<&str, &PersistentVolume> = volumes
        .iter()
        .filter_map(|v| Some((v.metadata.name.as_deref()?, &**v)))
        .collect();
    let mut out = Vec::new();
    for claim in candidates {
        let status = claim.status.as_ref();
        let spec = claim.spec.as_ref();
        let Some(volume) = spec
            .and_then(|s| s.volume_name.as_deref())
            .and_then(|n| by_name.get(n))
        else {
            continue;
        };
        let vspec = volume.spec.as_ref();
        let bound_here = vspec.and_then(|s| s.claim_ref.as_ref()).is_some_and(|r| {
            r.namespace == claim.metadata.namespace && r.uid == claim.metadata.uid
        });
        if !bound_here {
            continue;
        }
        let requested = storage(
            spec.and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref()),
        );
        let capacity = storage(status.and_then(|s| s.capacity.as_ref()));
        if vspec.is_some_and(|s| s.flex_volume.is_some() || s.fc.is_some()) {
            continue;
        }
        out.push(Waiting {
            namespace: claim.metadata.namespace.clone().unwrap_or_default(),
            name: claim.metadata.name.clone().unwrap_or_default(),
            uid: claim.metadata.uid.clone().unwrap_or_default(),
            seen: format!(
                "{}/{}",
                requested.unwrap_or_default(),
                capacity.unwrap_or_default()
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn claim(request: &str, capacity: &str, phase: &str) -> Arc<PersistentVolumeClaim> {
        Arc::new(from(json!({
            "metadata": {"name": "c", "namespace": "default", "uid": "u1"},
            "spec": {"volumeName": "pv", "resources": {"requests": {"storage": request}}},
            "status": {"phase": phase, "capacity": {"storage": capacity}}
        })))
    }

    fn volume(uid: &str, annotations: serde_json::Value) -> Arc<PersistentVolume> {
        Arc::new(from(json!({
            "metadata": {"name": "pv", "annotations": annotations},
            "spec": {"hostPath": {"path": "/opt/x"}, "capacity": {"storage": "1Gi"},
                     "claimRef": {"namespace": "default", "name": "c", "uid": uid}}
        })))
    }

    #[test]
    fn a_grown_bound_claim_waits_for_an_external_resizer() {
        let grown = [claim("2Gi", "1Gi", "Bound")];
        let volumes = [volume("u1", json!({}))];
        let w = waiting(&grown, &volumes);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].name.as_str(), w[0].seen.as_str()), ("c", "2Gi/1Gi"));
        // Nothing asked, not bound, or the volume bound to another claim: nothing said.
        assert!(waiting(&[claim("1Gi", "1Gi", "Bound")], &volumes).is_empty());
        assert!(waiting(&[claim("2Gi", "1Gi", "Pending")], &volumes).is_empty());
        assert!(waiting(&grown, &[volume("other", json!({}))]).is_empty());
        // A resize the node has not finished keeps it waiting.
        let marked = [volume("u1", json!({PRE_RESIZE_CAPACITY: "1Gi"}))];
        assert_eq!(waiting(&[claim("1Gi", "1Gi", "Bound")], &marked).len(), 1);
    }
}
