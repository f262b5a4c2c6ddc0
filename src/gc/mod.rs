//! `lpp gc`: find volume directories on nodes that no PV references any more, and prune them
//! without ever touching data in use.
//!
//! - [`inventory`]: the script a helper pod runs on each node to list the base paths, and its
//!   strict parser;
//! - [`classify`]: the pure comparison of inventories with every PV and claim — an entry that any
//!   PV (any provisioner, hostPath or local, any node) references, contains or sits in is never
//!   listed;
//! - [`prune`]: the removal plan, re-checked against a fresh PV list right before acting, and
//!   the script that removes only the exact names given, never following a symlink;
//! - [`scan`]: the cluster side (live ConfigMap, one helper pod per node, PVs and claims).

pub mod classify;
pub mod inventory;
pub mod prune;
pub mod scan;

use std::collections::BTreeMap;
use std::time::Duration;

use comfy_table::Table;
use serde::Serialize;

use crate::cluster::{self, Target};
use crate::config::ExecutorKind;
use crate::exit::Exit;
use crate::ui::{self, Report, Ui};
use classify::{Findings, MissingDirectory, Orphan, shown};
use prune::{Outcome, Target as PruneTarget};
use scan::NodeScan;

/// What a scan looks at.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The provisioner's namespace: where its ConfigMap is read and the inventory helper pods
    /// run.
    pub namespace: String,
    /// The nodes to scan (`--node`, each must exist); empty means every node.
    pub nodes: Vec<String>,
    /// Only the base paths of this StorageClass (`--storage-class`); `None` means those of every
    /// class the config serves.
    pub storage_class: Option<String>,
    /// Entries modified more recently than this are not judged (`--older-than`), so that nothing
    /// being provisioned right now is listed; zero judges everything.
    pub older_than: Duration,
    /// The provisioner name: a PV annotated `pv.kubernetes.io/provisioned-by` with it is ours,
    /// and only ours are reported when their directory is missing.
    pub provisioner_name: String,
    /// The name of the ConfigMap that names the base paths and holds the helper pod template.
    pub config_map: String,
    /// The image of the inventory and prune helper pods (`--helper-image`); `None` means the
    /// template's image.
    pub helper_image: Option<String>,
}

/// How `lpp gc` runs.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// What to scan.
    pub scan: ScanOptions,
    /// Exit 1 when orphans or missing directories are found or a node could not be scanned
    /// (`--exit-code`, for cron and CI); otherwise finding them still exits 0.
    pub exit_code: bool,
}

/// How `lpp gc prune` runs.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// What to scan for entries to remove.
    pub scan: ScanOptions,
    /// Only show what would be removed (`--dry-run`): nothing is asked or touched on the nodes.
    pub dry_run: bool,
    /// Move entries into `<base>/.lpp-trash/` instead of deleting them (`--archive`).
    pub archive: bool,
}

/// Why gc (or `lpp usage`) cannot do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line names what is not there: an unknown `--node`, or a `--storage-class`
    /// that the config does not serve or that is not our provisioner's.
    #[error("{0}")]
    Usage(String),
    /// The provisioner's ConfigMap is missing or cannot be used, or its helper pod template
    /// cannot be.
    #[error("{0}")]
    Config(String),
    /// A request to the API server failed (listing nodes, PVs, claims or StorageClasses, reading
    /// the ConfigMap): `<verb> <what>: <the server's message>`, or why the server could not be
    /// reached.
    #[error(transparent)]
    Request(#[from] cluster::RequestError),
    /// The cluster could not be reached.
    #[error(transparent)]
    Connect(#[from] cluster::Error),
    /// Printing or asking on the terminal failed, or the user declined.
    #[error(transparent)]
    Ui(#[from] ui::Error),
}

impl Error {
    /// The process exit code this error ends `lpp gc` with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Ui(e) => e.exit(),
            _ => Exit::Failure,
        }
    }
}

/// What `lpp gc` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// The `apiVersion` and `kind` (`GcReport`) of the printed document.
    #[serde(flatten)]
    pub type_meta: ui::TypeMeta,
    /// The entries no PV references, including those listed but never pruned.
    pub orphans: Vec<OrphanEntry>,
    /// Our PVs whose directory is not on their node.
    pub missing: Vec<MissingDirectory>,
    /// How the scan of each node went, by node name.
    pub nodes: Vec<NodeStatus>,
    /// `--older-than`, in seconds: entries modified more recently were not judged.
    pub older_than_seconds: u64,
    /// How many entries would be listed but are newer than `--older-than`.
    pub too_young: usize,
}

/// One orphaned entry, as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanEntry {
    /// The node it is on.
    pub node: String,
    /// Its full path on the node: the base path joined with its name.
    pub path: String,
    /// The base path (from the provisioner's config) it sits directly under.
    pub base: String,
    /// Its name under the base path (non-UTF-8 bytes shown lossily).
    pub name: String,
    /// Whether it is a directory, a file, a symlink or something else.
    pub kind: inventory::EntryKind,
    /// Its disk usage in bytes, counted in whole KiB; 0 for a symlink.
    pub size_bytes: u64,
    /// When it was last modified (RFC 3339).
    pub modified: jiff::Timestamp,
    /// Why it is listed.
    pub reason: classify::Reason,
    /// Whether `gc prune` may remove it.
    pub prunable: bool,
    /// Why it is not prunable although its reason would allow it: gc cannot tell where a PV
    /// that may use this node keeps its data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

impl From<&Orphan> for OrphanEntry {
    fn from(o: &Orphan) -> Self {
        OrphanEntry {
            node: o.node.clone(),
            path: o.path.clone(),
            base: o.base.clone(),
            name: o.name.clone(),
            kind: o.kind,
            size_bytes: o.size_bytes,
            modified: jiff::Timestamp::from_second(o.modified)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            reason: o.reason,
            prunable: o.prunable,
            held: o.held.clone(),
        }
    }
}

/// How the scan of one node went, as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node's name.
    pub node: String,
    /// `scanned`, or why it was not.
    pub status: String,
    /// Whether the node's scan is complete: true when it was inventoried or has no base paths
    /// to inventory, false when its orphans may be missing from the report.
    pub ok: bool,
    /// The base paths looked at on the node; empty when the config names none there.
    pub base_paths: Vec<String>,
}

impl From<&NodeScan> for NodeStatus {
    fn from(n: &NodeScan) -> Self {
        NodeStatus {
            node: n.node.clone(),
            status: n.status.clone(),
            ok: n.ok,
            base_paths: n.base_paths.clone(),
        }
    }
}

impl GcReport {
    fn new(findings: Findings, nodes: &[NodeScan], older_than: Duration) -> Self {
        Self {
            type_meta: ui::TypeMeta::new("GcReport"),
            orphans: findings.orphans.iter().map(OrphanEntry::from).collect(),
            missing: findings.missing,
            nodes: nodes.iter().map(NodeStatus::from).collect(),
            older_than_seconds: older_than.as_secs(),
            too_young: findings.too_young,
        }
    }
}

fn age_of(modified: jiff::Timestamp) -> String {
    ui::age_since(modified, jiff::Timestamp::now())
}

fn orphan_table(orphans: &[OrphanEntry], wide: bool) -> Table {
    let mut headers = vec!["node", "path", "size", "age", "reason"];
    if wide {
        headers.push("prunable");
    }
    let mut table = ui::table(headers);
    for o in orphans {
        let mut row = vec![
            o.node.clone(),
            shown(&o.path),
            ui::bytes(o.size_bytes),
            age_of(o.modified),
            o.reason.text().to_owned(),
        ];
        if wide {
            row.push(if o.prunable { "yes" } else { "no" }.to_owned());
        }
        table.add_row(row);
    }
    table
}

impl Report for GcReport {
    fn tables(&self, wide: bool) -> Vec<Table> {
        let mut tables = Vec::new();
        if self.orphans.is_empty() {
            let mut t = ui::table(["orphans"]);
            if self.older_than_seconds > 0 {
                // Entries modified within --older-than are not judged: say so, and how to.
                let newer = match self.too_young {
                    0 => "newer entries are not judged".to_owned(),
                    1 => "1 newer entry was left out".to_owned(),
                    n => format!("{n} newer entries were left out"),
                };
                t.add_row(vec![format!(
                    "none found older than {} ({newer}; `lpp gc --older-than 0` judges them too)",
                    ui::age(Duration::from_secs(self.older_than_seconds))
                )]);
            } else {
                t.add_row(vec!["none found".to_owned()]);
            }
            tables.push(t);
        } else {
            tables.push(orphan_table(&self.orphans, wide));
        }
        if !self.missing.is_empty() {
            let mut t = ui::table(["volume", "node", "missing directory"]);
            for m in &self.missing {
                t.add_row(vec![m.volume.clone(), m.node.clone(), shown(&m.path)]);
            }
            tables.push(t);
        }
        if wide || self.nodes.iter().any(|n| !n.ok) {
            let mut t = ui::table(["node", "scan", "base paths"]);
            for n in &self.nodes {
                t.add_row(vec![
                    n.node.clone(),
                    n.status.clone(),
                    shown(&n.base_paths.join(",")),
                ]);
            }
            tables.push(t);
        }
        tables
    }

    fn names(&self) -> Vec<String> {
        self.orphans
            .iter()
            .map(|o| format!("{}:{}", o.node, shown(&o.path)))
            .collect()
    }
}

fn warn_unscanned(ui: &Ui, nodes: &[NodeScan]) {
    for n in nodes.iter().filter(|n| !n.ok) {
        ui.warn(&format!("node {} was not scanned: {}", n.node, n.status));
    }
}

/// `lpp gc`: lists orphans, missing directories and nodes that could not be scanned.
pub async fn list(ui: &Ui, target: &Target, options: ListOptions) -> Result<Exit, Error> {
    let cluster = cluster::connect(target).await?;
    let scan = scan::scan(&cluster.client, ui, &options.scan).await?;
    warn_unscanned(ui, &scan.nodes);
    let incomplete = scan.nodes.iter().any(|n| !n.ok);
    let report = GcReport::new(scan.findings, &scan.nodes, options.scan.older_than);
    ui.print(&report)?;
    let found = !report.orphans.is_empty() || !report.missing.is_empty();
    Ok(if options.exit_code && (found || incomplete) {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// What `lpp gc prune` did to each target.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// The `apiVersion` and `kind` (`PruneReport`) of the printed document.
    #[serde(flatten)]
    pub type_meta: ui::TypeMeta,
    /// Whether this was `--dry-run`: nothing was removed.
    pub dry_run: bool,
    /// One per entry that was to be removed, grouped by node.
    pub results: Vec<PruneResult>,
    /// Listed orphans a fresh look found in use again, with why.
    pub kept: Vec<KeptOrphan>,
    /// How the scan of each node went, by node name.
    pub nodes: Vec<NodeStatus>,
}

/// What `lpp gc prune` did to one entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneResult {
    /// The node it is on.
    pub node: String,
    /// The base path it sits directly under.
    pub base: String,
    /// Its name under the base path.
    pub name: String,
    /// Its full path on the node.
    pub path: String,
    /// Its disk usage in bytes when it was scanned.
    pub size_bytes: u64,
    /// How it was to go: deleted, removed as an empty directory, or archived.
    pub action: prune::Action,
    /// What the node's helper reported for it; `None` in a dry run, or when the helper could not
    /// run (then `error` says why).
    pub outcome: Option<Outcome>,
    /// Why the node's prune helper could not run; `None` when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PruneResult {
    fn new(target: &PruneTarget, outcome: Option<Outcome>, error: Option<String>) -> Self {
        PruneResult {
            node: target.node.clone(),
            base: target.base.clone(),
            name: target.name.clone(),
            path: target.path.clone(),
            size_bytes: target.size_bytes,
            action: target.action,
            outcome,
            error,
        }
    }
}

/// A listed orphan that the last look before pruning found in use, and so kept.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptOrphan {
    /// The node it is on.
    pub node: String,
    /// Its full path on the node.
    pub path: String,
    /// Which PV now uses it, or which claim is now being provisioned into it.
    pub why: String,
}

impl Report for PruneReport {
    fn tables(&self, _wide: bool) -> Vec<Table> {
        let mut t = ui::table(["node", "path", "size", "action", "result"]);
        for r in &self.results {
            let result = match (&r.outcome, &r.error) {
                (_, Some(e)) => e.clone(),
                (Some(o), None) => serde_json::to_value(o)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                (None, None) => "would be removed (dry run)".to_owned(),
            };
            let action = serde_json::to_value(r.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            t.add_row(vec![
                r.node.clone(),
                shown(&r.path),
                ui::bytes(r.size_bytes),
                action,
                result,
            ]);
        }
        let mut tables = vec![t];
        if !self.kept.is_empty() {
            let mut k = ui::table(["node", "kept", "why"]);
            for o in &self.kept {
                k.add_row(vec![o.node.clone(), shown(&o.path), shown(&o.why)]);
            }
            tables.push(k);
        }
        tables
    }

    fn names(&self) -> Vec<String> {
        self.results
            .iter()
            .map(|r| format!("{}:{}", r.node, shown(&r.path)))
            .collect()
    }
}

/// `lpp gc prune`: scans, confirms, re-checks against a fresh PV list, and removes.
pub async fn prune(ui: &Ui, target: &Target, options: PruneOptions) -> Result<Exit, Error> {
    let cluster = cluster::connect(target).await?;
    let client = &cluster.client;
    let scan = scan::scan(client, ui, &options.scan).await?;
    warn_unscanned(ui, &scan.nodes);
    let candidates: Vec<Orphan> = scan
        .findings
        .orphans
        .iter()
        .filter(|o| o.prunable)
        .cloned()
        .collect();
    let listed_only = scan
        .findings
        .orphans
        .iter()
        .filter(|o| o.reason == classify::Reason::Foreign)
        .count();
    if listed_only > 0 {
        ui.note(&format!(
            "{listed_only} listed entries are not made by a provisioner and are never pruned (see `lpp gc`)"
        ));
    }
    if candidates.is_empty() {
        ui.note("nothing to prune");
        ui.print(&PruneReport {
            type_meta: ui::TypeMeta::new("PruneReport"),
            dry_run: options.dry_run,
            results: Vec::new(),
            kept: Vec::new(),
            nodes: scan.nodes.iter().map(NodeStatus::from).collect(),
        })?;
        return Ok(Exit::Success);
    }
    let total: u64 = candidates.iter().map(|o| o.size_bytes).sum();
    if !options.dry_run {
        let verb = if options.archive { "Archive" } else { "Delete" };
        // What is about to go, by name, before the question.
        for line in listing(
            candidates
                .iter()
                .map(|o| format!("{}:{} ({})", o.node, o.path, ui::bytes(o.size_bytes))),
        ) {
            ui.note(&format!("  {line}"));
        }
        ui.confirm(&format!(
            "{verb} these {} orphaned directories ({}) on nodes of context {}",
            candidates.len(),
            ui::bytes(total),
            cluster.context
        ))?;
    }
    // The last look: anything a PV or a provisioning claim took since the scan is kept.
    let (volumes, pending, _) = scan::read_volumes(client, &options.scan.provisioner_name).await?;
    let (targets, kept) = prune::plan(&candidates, &volumes, &pending, options.archive);
    let kept = kept
        .into_iter()
        .map(|(o, why)| KeptOrphan {
            node: o.node,
            path: o.path,
            why,
        })
        .collect();
    let mut results = Vec::new();
    if options.dry_run {
        results = targets
            .iter()
            .map(|target| PruneResult::new(target, None, None))
            .collect();
    } else {
        let mut by_node: BTreeMap<&str, Vec<&PruneTarget>> = BTreeMap::new();
        for t in &targets {
            by_node.entry(t.node.as_str()).or_default().push(t);
        }
        for (node, on_node) in by_node {
            let outcome = prune_on(&scan, node, &on_node, &volumes).await;
            for (i, t) in on_node.into_iter().enumerate() {
                results.push(match &outcome {
                    Ok(outcomes) => PruneResult::new(t, outcomes.get(i).copied(), None),
                    Err(e) => PruneResult::new(t, None, Some(e.clone())),
                });
            }
        }
    }
    let unsafe_trash: std::collections::BTreeSet<(&str, &str)> = results
        .iter()
        .filter(|r| r.outcome == Some(Outcome::TrashUnsafe))
        .map(|r| (r.node.as_str(), r.base.as_str()))
        .collect();
    for (node, base) in unsafe_trash {
        ui.warn(&prune::trash_unsafe_advice(node, base));
    }
    let failed = results.iter().any(|r| {
        r.error.is_some()
            || matches!(
                r.outcome,
                Some(Outcome::Failed | Outcome::Unknown | Outcome::TrashUnsafe)
            )
    });
    ui.print(&PruneReport {
        type_meta: ui::TypeMeta::new("PruneReport"),
        dry_run: options.dry_run,
        results,
        kept,
        nodes: scan.nodes.iter().map(NodeStatus::from).collect(),
    })?;
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

/// The first 20 lines, and "and N more" for the rest: what a prompt shows of a long list.
pub fn listing(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    const SHOWN: usize = 20;
    let mut all: Vec<String> = lines.into_iter().collect();
    if all.len() > SHOWN {
        let more = all.len() - SHOWN;
        all.truncate(SHOWN);
        all.push(format!("and {more} more"));
    }
    all
}

async fn prune_on(
    scan: &scan::Scan,
    node: &str,
    targets: &[&PruneTarget],
    volumes: &[classify::VolumeRecord],
) -> Result<Vec<Outcome>, String> {
    let on_node = scan::volumes_on(volumes, node, &scan.known_nodes);
    let job = prune::job(node, targets, &on_node, &scan::suffix());
    let output = scan
        .executor
        .script(&scan.helpers, &job, scan.timeout, ExecutorKind::Agent)
        .await
        .map_err(|e| e.to_string())?;
    Ok(prune::parse_outcomes(&output, targets.len()))
}

#[cfg(test)]
mod tests {
    use super::listing;

    #[test]
    fn a_long_listing_shows_twenty_and_counts_the_rest() {
        let short = listing((1..=3).map(|i| format!("p{i}")));
        assert_eq!(short, ["p1", "p2", "p3"]);
        let long = listing((1..=25).map(|i| format!("p{i}")));
        assert_eq!(long.len(), 21);
        assert_eq!(long[19], "p20");
        assert_eq!(long[20], "and 5 more");
    }
}
