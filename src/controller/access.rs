//! Before any work: does this account have the permissions the loop uses? Asked with
//! SelfSubjectAccessReviews, so every missing one is named at once instead of surfacing as a
//! watch that retries forever or an operation that fails per claim. `lpp check` asks the same
//! list ([`needs`], [`review`]).

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::{Error, RunOptions};

/// One permission: verb, API group, resource (`pods/exec` for a subresource), and whether it
/// is asked in the provisioner namespace (otherwise cluster-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// `get`, `list`, `watch`, `create`, ...
    pub verb: &'static str,
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The resource, `resource/subresource` for a subresource.
    pub resource: &'static str,
    /// Asked in the provisioner namespace; otherwise cluster-wide.
    pub namespaced: bool,
}

impl Need {
    /// As a person says it: `create pods in local-path-storage`, `watch persistentvolumes`.
    pub fn describe(&self, namespace: &str) -> String {
        match self.namespaced {
            true => format!("{} {} in {namespace}", self.verb, self.resource),
            false => format!("{} {}", self.verb, self.resource),
        }
    }
}

/// A [`Need`], in a `const`.
pub const fn need(
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
const CAPACITIES: [Need; 4] = [
    need("list", "storage.k8s.io", "csistoragecapacities", true),
    need("create", "storage.k8s.io", "csistoragecapacities", true),
    need("update", "storage.k8s.io", "csistoragecapacities", true),
    need("delete", "storage.k8s.io", "csistoragecapacities", true),
];
/// Growing claims (the external resizer's writes). Without them `lpp run` still provisions
/// and reclaims, and says that volume expansion is off: an account set up for an older lpp, or
/// for upstream, keeps working.
pub const EXPANSION: [Need; 2] = [
    need("patch", "", "persistentvolumeclaims/status", false),
    need("patch", "", "persistentvolumes", false),
];
const LEASE: [Need; 3] = [
    need("get", "coordination.k8s.io", "leases", true),
    need("create", "coordination.k8s.io", "leases", true),
    need("update", "coordination.k8s.io", "leases", true),
];

/// Everything `lpp run` cannot work without: [`NEEDS`], plus the ConfigMap's when it reads one,
/// the Lease's with leader election, the node agents' with the agent executor, and the
/// CSIStorageCapacity writes with capacity tracking. (Volume expansion's, [`EXPANSION`], are
/// asked apart: without them only expansion is off.)
pub fn needs(config_map: bool, lease: bool, agent: bool, capacity: bool) -> Vec<Need> {
    let mut needs: Vec<Need> = NEEDS.to_vec();
    if config_map {
        needs.extend(CONFIG_MAP);
    }
    if lease {
        needs.extend(LEASE);
    }
    if agent {
        needs.extend(AGENTS);
    }
    if capacity {
        needs.extend(CAPACITIES);
    }
    needs
}

/// Asks the server, one SelfSubjectAccessReview each (all at once), whether this account may do
/// each of `needs` (namespaced ones in `namespace`): one answer per need, in order. Fails when
/// the review API itself cannot be used.
pub async fn review(
    client: &kube::Client,
    needs: &[Need],
    namespace: &str,
) -> Result<Vec<bool>, kube::Error> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let asks = needs.iter().map(|need| {
        let reviews = reviews.clone();
        let (resource, subresource) = match need.resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_owned())),
            None => (need.resource, None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(need.verb.into()),
                    group: Some(need.group.into()),
                    resource: Some(resource.into()),
                    subresource,
                    namespace: need.namespaced.then(|| namespace.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        async move { reviews.create(&PostParams::default(), &review).await }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .map(|answer| answer.map(|r| r.status.as_ref().is_some_and(|s| s.allowed)))
        .collect()
}

/// Fails with one line naming every missing permission. When the review API itself cannot be
/// used, says nothing and lets the loop find out. Returns whether claims may be resized: when
/// the [`EXPANSION`] permissions are missing, that is said in one warning and the rest goes on.
pub async fn check(
    client: &kube::Client,
    options: &RunOptions,
    config_map: bool,
) -> Result<bool, Error> {
    let mut needs = needs(
        config_map,
        options.lease_name.is_some(),
        options.executor == Some(crate::config::ExecutorKind::Agent),
        options
            .extra_provisioner_names
            .iter()
            .any(|p| crate::provision::capacity::trackable(p)),
    );
    needs.extend(EXPANSION);
    let answers = match review(client, &needs, &options.namespace).await {
        Ok(answers) => answers,
        Err(e) => {
            tracing::debug!("cannot review access ({e}); skipping the check");
            return Ok(true);
        }
    };
    let (expansion, missing): (Vec<Need>, Vec<Need>) = needs
        .iter()
        .zip(answers)
        .filter(|(_, allowed)| !allowed)
        .map(|(need, _)| *need)
        .partition(|need| EXPANSION.contains(need));
    let named = |list: &[Need]| -> String {
        list.iter()
            .map(|n| n.describe(&options.namespace))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if missing.is_empty() {
        if !expansion.is_empty() {
            tracing::warn!(
                "volume expansion is off: this account may not {}; claims that grow stay as \
                 they are until it may (`lpp install` grants it)",
                named(&expansion)
            );
        }
        return Ok(expansion.is_empty());
    }
    Err(Error::Forbidden(format!(
        "this account may not {}: lpp run needs the Role and ClusterRole \
         local-path-provisioner-role that `lpp install` creates (`lpp manifests` shows them); \
         bind them to this account or use a kubeconfig that has them",
        named(&missing)
    )))
}
