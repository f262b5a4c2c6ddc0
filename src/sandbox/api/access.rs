//! Who may do what: RBAC authorization of requests, `selfsubjectaccessreviews` and
//! `subjectaccessreviews`, and service account tokens (`serviceaccounts/<name>/token`).

use http::Response;
use serde_json::{Value, json};

use super::{ApiServer, Body, json_response, parse_body};
use crate::sandbox::auth::{self, Attributes};
use crate::sandbox::resources::{self, RESOURCES, Resource};
use crate::sandbox::status::ApiError;

impl ApiServer {
    /// RBAC: cluster admins pass; anyone else needs a rule bound to them.
    pub(super) fn authorize(
        &self,
        user: &auth::User,
        attrs: &Attributes<'_>,
    ) -> Result<(), ApiError> {
        if auth::allowed(user, attrs, &auth::Policy::default()) {
            return Ok(());
        }
        let load = |plural: &str, ns: Option<&str>| {
            resources::find("rbac.authorization.k8s.io", "v1", plural)
                .map(|r| self.store.list(r.id(), ns).0)
                .unwrap_or_default()
        };
        let policy = auth::Policy {
            cluster_roles: load("clusterroles", None),
            cluster_role_bindings: load("clusterrolebindings", None),
            roles: if attrs.namespace.is_empty() {
                Vec::new()
            } else {
                load("roles", Some(attrs.namespace))
            },
            role_bindings: if attrs.namespace.is_empty() {
                Vec::new()
            } else {
                load("rolebindings", Some(attrs.namespace))
            },
        };
        if auth::allowed(user, attrs, &policy) {
            Ok(())
        } else {
            Err(auth::forbidden(user, attrs))
        }
    }

    /// `selfsubjectaccessreviews` (may the caller …?) and `subjectaccessreviews` (may this user
    /// …?), answered from the same RBAC evaluation as real requests.
    pub(super) fn access_review(
        &self,
        resource: &Resource,
        caller: &auth::User,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        let mut review = parse_body(body)?;
        let spec = review.get("spec").cloned().unwrap_or(Value::Null);
        let user = if resource.kind == "SubjectAccessReview" {
            auth::User {
                name: spec
                    .get("user")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                groups: spec
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|g| {
                        g.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        } else {
            caller.clone()
        };
        let allowed = match spec.get("resourceAttributes") {
            None => true,
            Some(ra) => {
                let field = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or("");
                match RESOURCES
                    .iter()
                    .find(|r| r.group == field("group") && r.plural == field("resource"))
                {
                    Some(target) => {
                        let sub = field("subresource");
                        let name = field("name");
                        let attrs = Attributes {
                            verb: field("verb"),
                            resource: target,
                            subresource: (!sub.is_empty()).then_some(sub),
                            namespace: field("namespace"),
                            name: (!name.is_empty()).then_some(name),
                        };
                        self.authorize(&user, &attrs).is_ok()
                    }
                    None => auth::allowed(
                        &user,
                        &Attributes {
                            verb: "",
                            resource,
                            subresource: None,
                            namespace: "",
                            name: None,
                        },
                        &auth::Policy::default(),
                    ),
                }
            }
        };
        review["apiVersion"] = json!(resource.api_version());
        review["kind"] = json!(resource.kind);
        review["status"] = if allowed {
            json!({"allowed": true, "reason": "RBAC: allowed by the sandbox's roles"})
        } else {
            json!({"allowed": false})
        };
        Ok(json_response(201, &review))
    }

    /// `serviceaccounts/<name>/token`: a TokenRequest answered with a bearer token that this
    /// server maps back to the service account. The body (possibly protobuf from kubectl) only
    /// carries optional settings, so it is read when it is JSON and ignored otherwise.
    pub(super) fn token_request(
        &self,
        resource: &Resource,
        ns: &str,
        name: &str,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        if self.store.get(resource.id(), ns, name).is_none() {
            return Err(ApiError::not_found(resource, name));
        }
        let asked: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let seconds = asked
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        let audiences = asked
            .pointer("/spec/audiences")
            .cloned()
            .unwrap_or_else(|| json!(["https://kubernetes.default.svc"]));
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let token = self.tokens.issue(ns, name);
        Ok(json_response(
            201,
            &json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                    "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
                    "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null},
                    "status": {"token": token, "expirationTimestamp": expires}}),
        ))
    }
}
