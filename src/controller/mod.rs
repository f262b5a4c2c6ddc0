//! `lpp run`: watchers, the work queue, helper pod execution, events, the Lease, config reload and
//! metrics.

use std::path::PathBuf;

/// Log line format of `lpp run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub namespace: String,
    pub provisioner_name: String,
    pub config_map: String,
    pub config_file: Option<PathBuf>,
    pub helper_pod_file: Option<PathBuf>,
    pub service_account_name: String,
    pub helper_image: Option<String>,
    pub workers: u32,
    pub provisioning_retry_count: Option<u32>,
    pub deletion_retry_count: Option<u32>,
    pub allow_unsafe_helper_pod_template: bool,
    pub metrics_addr: Option<String>,
    pub log_format: LogFormat,
    /// The Lease to hold, or `None` with `--no-leader-election`.
    pub lease_name: Option<String>,
}

/// The Lease name upstream-compatible tooling expects for a provisioner name:
/// `rancher.io/local-path` → `rancher.io-local-path`.
pub fn lease_name_for(provisioner_name: &str) -> String {
    provisioner_name.replace('/', "-")
}
