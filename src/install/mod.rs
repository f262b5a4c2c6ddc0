//! `lpp install`, `manifests`, `uninstall` and `status`: the cluster objects as typed values, applied
//! with server-side apply, inspected and removed.
//!
//! Here: what the commands are asked to do, their errors, and what applying or deleting one
//! object did. The objects themselves are built in [`objects`]; `install` and `manifests`
//! (render, check, apply, wait) live in `apply.rs`, `uninstall` in `uninstall.rs`, `status` in
//! [`status`](mod@status).

mod apply;
pub mod objects;
pub mod status;
mod uninstall;

use std::time::Duration;

use serde::Serialize;

use crate::cluster;
use crate::exit::Exit;
use crate::ui;

pub use apply::{InstallReport, apply, install, look, manifests, render, validate};
pub use status::{StatusReport, status};
pub use uninstall::{UninstallReport, uninstall};

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
    /// Namespace the provisioner and its objects live in.
    pub namespace: String,
    /// Name of the StorageClass to create.
    pub storage_class: String,
    /// Provisioner name the StorageClass points at (`provisioner:`).
    pub provisioner_name: String,
    /// Where each node's volumes go.
    pub base_paths: BasePaths,
    /// Mark the class as the cluster default (`storageclass.kubernetes.io/is-default-class`).
    pub default_class: bool,
    /// `--allow-expansion`: the class's `allowVolumeExpansion: true`.
    pub allow_expansion: bool,
    /// `Delete` or `Retain`, as Kubernetes spells it.
    pub reclaim_policy: String,
    /// `WaitForFirstConsumer` or `Immediate`.
    pub binding_mode: String,
    /// `hostPath` or `local`.
    pub volume_type: String,
    /// Image of the helper pods that create and delete volume directories.
    pub helper_image: String,
    /// The image of the in-cluster Deployment, when `--in-cluster`.
    pub in_cluster_image: Option<String>,
    /// `--executor`: with `agent`, the node agent DaemonSet and the ConfigMap's `executor` key.
    pub executor: crate::config::ExecutorKind,
    /// `--capacity-tracking`: the class and CSIDriver of lpp's own provisioner name.
    pub capacity_tracking: bool,
}

/// `--dry-run` of `install`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Render the objects locally without sending them.
    Client,
    /// Send the objects with the server's dry run: validated, not stored.
    Server,
}

/// What `lpp install` does.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The objects to apply.
    pub manifest: ManifestSettings,
    /// `--dry-run`; `None` applies for real.
    pub dry_run: Option<DryRun>,
    /// `--wait` with its `--timeout`.
    pub wait: Option<Duration>,
}

/// What `lpp uninstall` does.
#[derive(Debug, Clone)]
pub struct UninstallOptions {
    /// Namespace the provisioner was installed in.
    pub namespace: String,
    /// `--force`: go ahead although PVs of lpp's classes still exist; their data stays on the nodes.
    pub force: bool,
    /// `--dry-run`: report what would be deleted, delete nothing.
    pub dry_run: bool,
    /// `--wait` with its `--timeout`: how long to wait for the namespace to go; `None` returns at once.
    pub wait: Option<Duration>,
}

/// What `lpp status` inspects.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Namespace the provisioner was installed in.
    pub namespace: String,
    /// Provisioner name whose classes and volumes to list.
    pub provisioner_name: String,
    /// How far back to show events.
    pub events_since: Duration,
    /// `-w`: print again on every change until Ctrl-C.
    pub watch: bool,
}

/// The field manager of everything lpp applies.
pub const FIELD_MANAGER: &str = "lpp";

/// Why install cannot do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed: `<verb> <what>: <the server's message>`, or why the server could not
    /// be reached.
    #[error(transparent)]
    Request(#[from] cluster::RequestError),
    /// The cluster is in a state the command will not act on (exit `Refused`).
    #[error("{0}")]
    Refused(String),
    /// The options contradict each other or name something unknown (exit `Usage`).
    #[error("{0}")]
    Usage(String),
    /// `--wait` ran out of time before the objects were ready or gone.
    #[error("{0}")]
    Wait(String),
    /// `--wait` could not watch the object it waits for.
    #[error("watching {what} failed: {source}")]
    Watch {
        /// The object watched: `Deployment <name>`.
        what: String,
        /// Why the watch failed.
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// The objects could not be written out as text.
    #[error("cannot render the manifests: {0}")]
    Render(#[source] serde_json::Error),
    /// No connection to the cluster could be set up.
    #[error(transparent)]
    Connect(#[from] cluster::Error),
    /// The report could not be printed.
    #[error(transparent)]
    Ui(#[from] ui::Error),
}

impl Error {
    /// The process exit status this error maps to.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Ui(e) => e.exit(),
            Error::Refused(_) => Exit::Refused,
            Error::Usage(_) => Exit::Usage,
            _ => Exit::Failure,
        }
    }
}

/// What applying one object did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Kubernetes kind, such as `ConfigMap`.
    pub kind: &'static str,
    /// Object name.
    pub name: String,
    /// Namespace; `None` for cluster-scoped objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `created`, `configured` or `unchanged`, as kubectl says it.
    pub result: &'static str,
}

impl Applied {
    /// The name as `kubectl -o name` spells it: the resource, dot, its API group, slash, the
    /// name (`role.rbac.authorization.k8s.io/x`, `configmap/y`).
    pub fn kubectl_name(&self) -> String {
        let resource = match self.kind {
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => {
                format!("{}.rbac.authorization.k8s.io", self.kind.to_lowercase())
            }
            "StorageClass" => "storageclass.storage.k8s.io".to_owned(),
            "Deployment" => "deployment.apps".to_owned(),
            "DaemonSet" => "daemonset.apps".to_owned(),
            "CSIDriver" => "csidriver.storage.k8s.io".to_owned(),
            "CSIStorageCapacity" => "csistoragecapacity.storage.k8s.io".to_owned(),
            "Lease" => "lease.coordination.k8s.io".to_owned(),
            other => other.to_lowercase(),
        };
        format!("{resource}/{}", self.name)
    }
}
