//! Validating admission the sandbox's API server runs after an update passes validation, as
//! kube-apiserver's default admission chain does. Only what lpp's users meet is modelled:
//! `PersistentVolumeClaimResize`.

use serde_json::Value;

use super::node::binding::quantity_bytes;

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
