//! The resource table: every kind the sandbox serves, with what routing, discovery and the
//! object rules need to know about it.

/// One served resource (a plural under a group/version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// The plural used in paths (`persistentvolumeclaims`).
    pub plural: &'static str,
    /// The singular name (`persistentvolumeclaim`).
    pub singular: &'static str,
    /// The kind (`PersistentVolumeClaim`).
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// `kubectl` short names.
    pub short_names: &'static [&'static str],
    /// Subresources served besides the object itself.
    pub subresources: &'static [&'static str],
    /// Discovery categories (`all`).
    pub categories: &'static [&'static str],
}

impl Resource {
    /// `v1` or `group/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The name used in error messages: `pods`, `storageclasses.storage.k8s.io`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether this is an access review: created and answered, never stored.
    pub fn is_review(&self) -> bool {
        self.kind.ends_with("AccessReview")
    }

    /// Whether the object has a `status` subresource (main updates then leave status alone).
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// The storage key of the resource: objects of the same resource share one space.
    pub fn id(&self) -> ResourceId {
        ResourceId {
            group: self.group,
            plural: self.plural,
        }
    }
}

/// Identifies a resource's storage independent of version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    /// API group.
    pub group: &'static str,
    /// Plural.
    pub plural: &'static str,
}

const NONE: &[&str] = &[];

macro_rules! resource {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr, $short:expr, $sub:expr, $cat:expr) => {
        Resource {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            short_names: $short,
            subresources: $sub,
            categories: $cat,
        }
    };
}

/// Every resource the sandbox serves.
pub static RESOURCES: &[Resource] = &[
    resource!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &["status"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        &["status"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        &["status", "log", "exec", "binding"],
        &["all"]
    ),
    resource!(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
        &["status"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        &["status"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        NONE,
        NONE
    ),
    resource!(
        "", "v1", "secrets", "secret", "Secret", true, NONE, NONE, NONE
    ),
    resource!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        &["token"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        NONE,
        NONE
    ),
    resource!(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        true,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        &["sc"],
        NONE,
        NONE
    ),
    resource!(
        "storage.k8s.io",
        "v1",
        "csidrivers",
        "csidriver",
        "CSIDriver",
        false,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "storage.k8s.io",
        "v1",
        "csistoragecapacities",
        "csistoragecapacity",
        "CSIStorageCapacity",
        true,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        &["status"],
        &["all"]
    ),
    resource!(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        &["status"],
        &["all"]
    ),
    resource!(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        true,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        NONE,
        NONE,
        NONE
    ),
    resource!(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
        NONE,
        NONE,
        NONE
    ),
];

/// The resource served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind in an apiVersion (`v1`, `apps/v1`).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The groups served, in discovery order, each with its one version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_is_found_by_path_and_kind() {
        for r in RESOURCES {
            assert_eq!(find(r.group, r.version, r.plural), Some(r));
            assert_eq!(by_kind(&r.api_version(), r.kind), Some(r));
        }
    }

    #[test]
    fn names_in_messages_carry_the_group() {
        let sc = find("storage.k8s.io", "v1", "storageclasses").map(Resource::qualified);
        assert_eq!(sc.as_deref(), Some("storageclasses.storage.k8s.io"));
        let pods = find("", "v1", "pods").map(Resource::qualified);
        assert_eq!(pods.as_deref(), Some("pods"));
    }
}
