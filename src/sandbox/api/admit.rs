//! Admission: Pod Security for new pods, no new content in a missing or terminating namespace,
//! the validating admission of updates (`PersistentVolumeClaimResize`), and
//! `fieldValidation=Strict` decoding.

use serde_json::Value;

use super::{ApiServer, meta};
use crate::sandbox::admission;
use crate::sandbox::auth;
use crate::sandbox::objects;
use crate::sandbox::resources::{self, Resource};
use crate::sandbox::status::ApiError;

impl ApiServer {
    /// Pod Security admission for a pod about to be created in `ns`.
    pub(super) fn admit_pod(&self, ns: &str, pod: &Value) -> Result<(), ApiError> {
        let Some(namespaces) = resources::find("", "v1", "namespaces") else {
            return Ok(());
        };
        let Some(namespace) = self.store.get(namespaces.id(), "", ns) else {
            return Ok(());
        };
        let labels = namespace.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let Some(level) = label("pod-security.kubernetes.io/enforce") else {
            return Ok(());
        };
        let violations = auth::pod_security_violations(level, pod);
        if violations.is_empty() {
            return Ok(());
        }
        let version = label("pod-security.kubernetes.io/enforce-version").unwrap_or("latest");
        let name = meta(pod, "name").unwrap_or_default();
        Err(ApiError::forbidden(format!(
            "pods \"{name}\" is forbidden: violates PodSecurity \"{level}:{version}\": {}",
            violations.join(", ")
        )))
    }

    pub(super) fn check_namespace(&self, resource: &Resource, ns: &str) -> Result<(), ApiError> {
        if !resource.namespaced {
            return Ok(());
        }
        let Some(namespaces) = resources::find("", "v1", "namespaces") else {
            return Ok(());
        };
        match self.store.get(namespaces.id(), "", ns) {
            None => Err(ApiError::not_found(namespaces, ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    resource.qualified(),
                    "",
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// What validating admission an update of `resource` (or its `sub`resource) goes
    /// through, with what it reads taken now: the store is locked while an update decides.
    pub(super) fn admit(&self, resource: &Resource, sub: Option<&str>) -> Admit {
        let resize = (resource.group, resource.kind, sub) == ("", "PersistentVolumeClaim", None);
        let classes = resize
            .then(|| resources::find("storage.k8s.io", "v1", "storageclasses"))
            .flatten()
            .map(|sc| self.store.list(sc.id(), None).0);
        Admit { classes }
    }
}

/// The validating admission of one update (see [`ApiServer::admit`]).
pub(super) struct Admit {
    /// The StorageClasses, for `PersistentVolumeClaimResize` (claims only).
    classes: Option<Vec<Value>>,
}

impl Admit {
    /// 403 in the admission plugin's words when the update is refused.
    pub(super) fn check(
        &self,
        resource: &Resource,
        name: &str,
        current: &Value,
        new: &Value,
    ) -> Result<(), ApiError> {
        if let Some(classes) = &self.classes {
            admission::claim_resize(current, new, classes).map_err(|why| {
                ApiError::forbidden(format!(
                    "{} \"{name}\" is forbidden: {why}",
                    resource.qualified()
                ))
            })?;
        }
        Ok(())
    }
}

/// `fieldValidation=Strict`: unknown fields are refused.
pub(super) fn strict_check(input: &Value, decoded: &Value) -> Result<(), ApiError> {
    let unknown = objects::unknown_fields(input, decoded);
    if unknown.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    Err(ApiError::bad_request(format!(
        "strict decoding error: {}",
        text.join(", ")
    )))
}
