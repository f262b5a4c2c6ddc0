//! `lpp install`, `manifests`, `uninstall` and `status`: the cluster objects as typed values, applied
//! with server-side apply, inspected and removed.

use std::time::Duration;

/// Where a node's volumes go: `--path` for every node, `--node-path NODE=DIR` for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasePaths {
    /// Per-node base directories; the entry for `None` applies to nodes not listed.
    Nodes(Vec<(Option<String>, String)>),
    /// One filesystem shared by all nodes (`--shared-path`).
    Shared(String),
}

/// What the installed objects look like (`install` and `manifests`).
#[derive(Debug, Clone)]
pub struct ManifestSettings {
    pub namespace: String,
    pub storage_class: String,
    pub provisioner_name: String,
    pub base_paths: BasePaths,
    pub default_class: bool,
    /// `Delete` or `Retain`, as Kubernetes spells it.
    pub reclaim_policy: String,
    /// `WaitForFirstConsumer` or `Immediate`.
    pub binding_mode: String,
    /// `hostPath` or `local`.
    pub volume_type: String,
    pub helper_image: String,
    /// The image of the in-cluster Deployment, when `--in-cluster`.
    pub in_cluster_image: Option<String>,
}

/// `--dry-run` of `install`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    Client,
    Server,
}

#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub manifest: ManifestSettings,
    pub dry_run: Option<DryRun>,
    /// `--wait` with its `--timeout`.
    pub wait: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct UninstallOptions {
    pub namespace: String,
    pub force: bool,
    pub dry_run: bool,
    pub wait: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub namespace: String,
    pub provisioner_name: String,
    pub events_since: Duration,
}
