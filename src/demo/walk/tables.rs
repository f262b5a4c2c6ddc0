//! `kubectl get pv` and `kubectl get pvc` as the demo shows them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{ObjectMeta, ResourceExt};

use crate::ui::{self};

pub(super) fn age_of(meta: &ObjectMeta) -> String {
    meta.creation_timestamp
        .as_ref()
        .map(|t| {
            let elapsed = jiff::Timestamp::now().duration_since(t.0);
            ui::age(Duration::try_from(elapsed).unwrap_or_default())
        })
        .unwrap_or_else(|| "<unknown>".into())
}

/// `kubectl get pv` for one volume.
pub(super) fn volume_table(volume: &PersistentVolume) -> comfy_table::Table {
    let mut table = ui::table([
        "name",
        "capacity",
        "access modes",
        "reclaim policy",
        "status",
        "claim",
        "storageclass",
        "age",
    ]);
    let spec = volume.spec.clone().unwrap_or_default();
    let claim = spec
        .claim_ref
        .as_ref()
        .map(|c| {
            format!(
                "{}/{}",
                c.namespace.as_deref().unwrap_or(""),
                c.name.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default();
    table.add_row(vec![
        volume.name_any(),
        spec.capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_default(),
        access_modes(spec.access_modes.as_deref()),
        spec.persistent_volume_reclaim_policy.unwrap_or_default(),
        volume
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
        claim,
        spec.storage_class_name.unwrap_or_default(),
        age_of(&volume.metadata),
    ]);
    table
}

/// `kubectl get pvc` for one claim.
pub(super) fn claim_table(claim: &PersistentVolumeClaim) -> comfy_table::Table {
    let mut table = ui::table([
        "name",
        "status",
        "volume",
        "capacity",
        "access modes",
        "storageclass",
        "age",
    ]);
    let spec = claim.spec.clone().unwrap_or_default();
    let status = claim.status.clone().unwrap_or_default();
    table.add_row(vec![
        claim.name_any(),
        status.phase.unwrap_or_default(),
        spec.volume_name.unwrap_or_default(),
        status
            .capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_default(),
        access_modes(status.access_modes.as_deref()),
        spec.storage_class_name.unwrap_or_default(),
        age_of(&claim.metadata),
    ]);
    table
}

/// `RWO,RWX` as kubectl abbreviates access modes.
pub(super) fn access_modes(modes: Option<&[String]>) -> String {
    modes
        .unwrap_or_default()
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_are_abbreviated_as_kubectl_does() {
        let modes = vec!["ReadWriteOnce".to_owned(), "ReadWriteMany".to_owned()];
        assert_eq!(access_modes(Some(&modes)), "RWO,RWX");
        assert_eq!(access_modes(None), "");
    }
}
