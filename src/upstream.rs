//! The names upstream's deploy manifest gives its objects, defined once: a cluster switches
//! between upstream and lpp without touching them, so every command, default and manifest must
//! agree on them.

/// The provisioner name StorageClasses name.
pub const PROVISIONER: &str = "rancher.io/local-path";
/// The provisioner's namespace.
pub const NAMESPACE: &str = "local-path-storage";
/// The StorageClass.
pub const STORAGE_CLASS: &str = "local-path";
/// The ConfigMap holding `config.json`, `setup`, `teardown` and `helperPod.yaml`.
pub const CONFIG_MAP: &str = "local-path-config";
/// The ServiceAccount the provisioner and its helper pods run as.
pub const SERVICE_ACCOUNT: &str = "local-path-provisioner-service-account";
/// The Role and ClusterRole.
pub const ROLE: &str = "local-path-provisioner-role";
/// The RoleBinding and ClusterRoleBinding.
pub const BINDING: &str = "local-path-provisioner-bind";
/// The Deployment upstream runs (lpp's in-cluster one has the same name).
pub const DEPLOYMENT: &str = "local-path-provisioner";
