//! `lpp gc`: node inventory through helper pods, orphan detection (a pure core), and prune.

use std::time::Duration;

/// What a scan looks at.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub namespace: String,
    pub nodes: Vec<String>,
    pub storage_class: Option<String>,
    pub older_than: Duration,
    pub provisioner_name: String,
    pub config_map: String,
    pub helper_image: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ListOptions {
    pub scan: ScanOptions,
    pub exit_code: bool,
}

#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub scan: ScanOptions,
    pub dry_run: bool,
    pub archive: bool,
}
