//! Admission the sandbox's API server runs, as kube-apiserver's default admission chain does.
//! Only what lpp's users meet is modelled: `StorageObjectInUseProtection` (mutating, on
//! create) and `PersistentVolumeClaimResize` (validating, after an update passes validation).

use serde_json::Value;

use super::node::binding::quantity_bytes;

/// `StorageObjectInUseProtection` (plugin/pkg/admission/storage/storageobjectinuse/
/// admission.go, on by default): a claim or volume being created gets its protection
/// finalizer (`kubernetes.io/pvc-protection`, `kubernetes.io/pv-protection`) at once, so the
/// protection controllers have nothing to add to objects made through this server.
pub fn storage_object_in_use(kind: &str, object: &mut Value) {
    let finalizer = match kind {
        "PersistentVolumeClaim" => super::node::binding::CLAIM_PROTECTION,
        "PersistentVolume" => super::node::binding::VOLUME_PROTECTION,
        _ => return,
    };
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = meta
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Value::Array(items) = list
        && !items.iter().any(|f| f.as_str() == Some(finalizer))
    {
        items.push(Value::String(finalizer.to_owned()));
    }
}

/// `PersistentVolumeClaimResize` (plugin/pkg/admission/storage/persistentvolume/resize/
/// admission.go): an update that grows a claim's `spec.resources.requests.storage` is refused
/// unless the claim was Bound and its class (the same before and after) exists with
/// `allowVolumeExpansion: true`. Returns the reason for a 403, worded as the plugin words it.
/// Status updates and updates that do not grow the request pass.
pub fn claim_resize(current: &Value, new: &Value, classes: &[Value]) -> Result<(), String> {
    let size = |v: &Value| {
        v.pointer("/spec/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(quantity_bytes)
            .unwrap_or(0)
    };
    if size(new) <= size(current) {
        return Ok(());
    }
    if current.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
        return Err("Only bound persistent volume claims can be expanded".into());
    }
    // The beta annotation still names a class when the field does not.
    let class = |v: &Value| {
        v.pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .or_else(|| {
                v.pointer("/metadata/annotations")
                    .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
                    .and_then(Value::as_str)
            })
            .unwrap_or("")
            .to_string()
    };
    let (name, old_name) = (class(new), class(current));
    let allowed = !name.is_empty()
        && name == old_name
        && classes.iter().any(|c| {
            c.pointer("/metadata/name").and_then(Value::as_str) == Some(name.as_str())
                && c.get("allowVolumeExpansion").and_then(Value::as_bool) == Some(true)
        });
    if !allowed {
        return Err("only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(size: &str, phase: &str, class: &str) -> Value {
        json!({"spec": {"storageClassName": class, "resources": {"requests": {"storage": size}}},
               "status": {"phase": phase}})
    }

    #[test]
    fn claims_and_volumes_are_created_protected_once() {
        let mut claim = json!({"metadata": {"name": "c"}});
        storage_object_in_use("PersistentVolumeClaim", &mut claim);
        storage_object_in_use("PersistentVolumeClaim", &mut claim);
        assert_eq!(
            claim["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection"])
        );
        let mut volume = json!({"metadata": {"name": "v", "finalizers": ["x/keep"]}});
        storage_object_in_use("PersistentVolume", &mut volume);
        assert_eq!(
            volume["metadata"]["finalizers"],
            json!(["x/keep", "kubernetes.io/pv-protection"])
        );
        let mut pod = json!({"metadata": {"name": "p"}});
        storage_object_in_use("Pod", &mut pod);
        assert!(pod["metadata"].get("finalizers").is_none());
    }

    #[test]
    fn only_bound_claims_of_expandable_classes_grow() {
        let classes = [
            json!({"metadata": {"name": "grows"}, "allowVolumeExpansion": true}),
            json!({"metadata": {"name": "fixed"}}),
        ];
        let ok = claim_resize(
            &claim("1Gi", "Bound", "grows"),
            &claim("2Gi", "Bound", "grows"),
            &classes,
        );
        assert_eq!(ok, Ok(()));
        let refused = claim_resize(
            &claim("1Gi", "Bound", "fixed"),
            &claim("2Gi", "Bound", "fixed"),
            &classes,
        );
        assert!(refused.is_err_and(|e| e.starts_with("only dynamically provisioned pvc")));
        let pending = claim_resize(
            &claim("1Gi", "Pending", "grows"),
            &claim("2Gi", "Pending", "grows"),
            &classes,
        );
        assert_eq!(
            pending,
            Err("Only bound persistent volume claims can be expanded".into())
        );
        let missing = claim_resize(
            &claim("1Gi", "Bound", "gone"),
            &claim("2Gi", "Bound", "gone"),
            &classes,
        );
        assert!(missing.is_err());
        // Not growing: not this plugin's business.
        assert_eq!(
            claim_resize(
                &claim("2Gi", "Bound", "fixed"),
                &claim("1Gi", "Bound", "fixed"),
                &classes
            ),
            Ok(())
        );
        assert_eq!(
            claim_resize(
                &claim("1Gi", "Bound", "fixed"),
                &claim("1024Mi", "Bound", "fixed"),
                &classes
            ),
            Ok(())
        );
    }
}
