//! Before any work: does this account have the permissions the loop uses? Asked with
//! SelfSubjectAccessReviews, so every missing one is named at once instead of surfacing as a
//! watch that retries forever or an operation that fails per claim.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::{Error, RunOptions};

/// One permission: verb, API group, resource, and whether it is asked in the provisioner
/// namespace (otherwise cluster-wide).
struct Need {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    namespaced: bool,
}

const fn need(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    namespaced: bool,
) -> Need {
    Need {
        verb,
        group,
        resource,
        namespaced,
    }
}

/// What the loop does, cluster-wide and in its namespace: every verb of every request it makes,
/// so that a role missing one is told at start, not found by a watch that retries forever.
const NEEDS: &[Need] = &[
    need("list", "", "persistentvolumeclaims", false),
    need("watch", "", "persistentvolumeclaims", false),
    need("get", "", "persistentvolumeclaims", false),
    need("list", "", "persistentvolumes", false),
    need("watch", "", "persistentvolumes", false),
    need("get", "", "persistentvolumes", false),
    need("create", "", "persistentvolumes", false),
    need("delete", "", "persistentvolumes", false),
    need("list", "storage.k8s.io", "storageclasses", false),
    need("watch", "storage.k8s.io", "storageclasses", false),
    need("get", "storage.k8s.io", "storageclasses", false),
    need("list", "", "nodes", false),
    need("watch", "", "nodes", false),
    need("get", "", "nodes", false),
    need("create", "", "events", false),
    need("create", "", "pods", true),
    need("delete", "", "pods", true),
    need("get", "", "pods", true),
    need("list", "", "pods", true),
    need("watch", "", "pods", true),
];
const CONFIG_MAP: [Need; 3] = [
    need("get", "", "configmaps", true),
    need("list", "", "configmaps", true),
    need("watch", "", "configmaps", true),
];
const AGENTS: [Need; 3] = [
    need("create", "", "pods/exec", true),
    need("get", "apps", "daemonsets", true),
    need("patch", "apps", "daemonsets", true),
];
/// Growing claims (the external resizer's writes). Without them `lpp run` still provisions
/// and reclaims, and says that volume expansion is off: an account set up for an older lpp, or
/// for upstream, keeps working.
const EXPANSION: [Need; 2] = [
    need("patch", "", "persistentvolumeclaims/status", false),
    need("patch", "", "persistentvolumes", false),
];
const LEASE: [Need; 3] = [
    need("get", "coordination.k8s.io", "leases", true),
    need("create", "coordination.k8s.io", "leases", true),
    need("update", "coordination.k8s.io", "leases", true),
];

/// Fails with one line naming every missing permission. When the review API itself cannot be
/// used, says nothing and lets the loop find out. Returns whether claims may be resized: when
/// the [`EXPANSION`] permissions are missing, that is said in one warning and the rest goes on.
pub async fn check(
    client: &kube::Client,
    options: &RunOptions,
    config_map: bool,
) -> Result<bool, Error> {
    let mut needs: Vec<&Need> = NEEDS.iter().chain(EXPANSION.iter()).collect();
    if config_map {
        needs.extend(CONFIG_MAP.iter());
    }
    if options.lease_name.is_some() {
        needs.extend(LEASE.iter());
    }
    if options.executor == Some(crate::config::ExecutorKind::Agent) {
        needs.extend(AGENTS.iter());
    }
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let asks = needs.iter().map(|need| {
        let reviews = reviews.clone();
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(need.verb.into()),
                    group: Some(need.group.into()),
                    resource: Some(
                        need.resource
                            .split_once('/')
                            .map_or(need.resource, |(r, _)| r)
                            .into(),
                    ),
                    subresource: need.resource.split_once('/').map(|(_, s)| s.to_owned()),
                    namespace: need.namespaced.then(|| options.namespace.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        async move { reviews.create(&PostParams::default(), &review).await }
    });
    let answers = futures::future::join_all(asks).await;
    let mut missing = Vec::new();
    let mut expansion = Vec::new();
    for (need, answer) in needs.iter().zip(answers) {
        match answer {
            Ok(review) if review.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => {
                let named = match need.namespaced {
                    true => format!("{} {} in {}", need.verb, need.resource, options.namespace),
                    false => format!("{} {}", need.verb, need.resource),
                };
                if EXPANSION.iter().any(|e| std::ptr::eq(e, *need)) {
                    expansion.push(named);
                } else {
                    missing.push(named);
                }
            }
            Err(e) => {
                tracing::debug!("cannot review access ({e}); skipping the check");
                return Ok(true);
            }
        }
    }
    if missing.is_empty() {
        if !expansion.is_empty() {
            tracing::warn!(
                "volume expansion is off: this account may not {}; claims that grow stay as \
                 they are until it may (`lpp install` grants it)",
                expansion.join(", ")
            );
        }
        return Ok(expansion.is_empty());
    }
    Err(Error::Forbidden(format!(
        "this account may not {}: lpp run needs the Role and ClusterRole \
         local-path-provisioner-role that `lpp install` creates (`lpp manifests` shows them); \
         bind them to this account or use a kubeconfig that has them",
        missing.join(", ")
    )))
}
