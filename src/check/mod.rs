//! `lpp check`: the doctor. It looks for what upstream's users find the hard way — a Pod
//! Security level that refuses hostPath helpers, a base path that is read-only, a file or not
//! where they thought, a taint that keeps helpers off, a hostname label that differs from the
//! node name, an image an air-gapped node cannot pull, two provisioners serving one name, a
//! missing permission, a second default class — and says for each what it saw and what to do.
//!
//! - [`evaluate`]: the checks as pure functions of gathered facts;
//! - [`probe`]: the scripts a helper runs on each node (through the executor) and their strict
//!   parsers;
//! - [`gather`]: the thin layer that reads the cluster, runs the probes and the gc scan, and
//!   hands the facts to [`evaluate`].

pub mod evaluate;
pub mod gather;
pub mod probe;

use std::time::Duration;

use serde::Serialize;

use crate::cluster::{self, Target};
use crate::exit::Exit;
use crate::ui::{self, Report, Ui};

/// What `lpp check` looks at.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The provisioner namespace (or, with `pre`, the one `lpp install` would make).
    pub namespace: String,
    /// The provisioner name whose Lease, classes and volumes are checked.
    pub provisioner_name: String,
    /// The ConfigMap with the base paths and the helper template.
    pub config_map: String,
    /// Only these nodes (all when empty).
    pub nodes: Vec<String>,
    /// `--pre`: before an install, what it would meet.
    pub pre: bool,
    /// `--strict`: warnings fail too (exit 3).
    pub strict: bool,
    /// How long each node's checks may take.
    pub timeout: Duration,
}

/// The groups, in the order they are checked and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Group {
    /// The API server and this account's permissions.
    Cluster,
    /// The installed objects: namespace, ConfigMap, classes, other provisioners.
    Install,
    /// Who provisions, and claims and volumes in trouble.
    Provisioning,
    /// Each node, and through a helper its base paths.
    Nodes,
    /// The volume directories: orphans and missing ones.
    Data,
}

impl Group {
    /// The name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Group::Cluster => "cluster",
            Group::Install => "install",
            Group::Provisioning => "provisioning",
            Group::Nodes => "nodes",
            Group::Data => "data",
        }
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// ✓: as it should be.
    Ok,
    /// !: worth a look; fails only with `--strict`.
    Warning,
    /// ✗: something will not work until it is fixed.
    Failed,
}

impl Status {
    /// ✓, ! or ✗.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warning => "!",
            Status::Failed => "✗",
        }
    }
}

/// One check: what it saw and, unless it is fine, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// The group it belongs to.
    pub group: Group,
    /// A stable name, e.g. `pod-security`, `path`.
    pub name: String,
    /// The node it is about (the nodes group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The base path it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How it came out.
    pub status: Status,
    /// One line of what it saw.
    pub seen: String,
    /// What to do: the command to run or the config key to change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// What the line starts with: the node and the path or the name.
    fn label(&self) -> String {
        let what = self.path.clone().unwrap_or_else(|| self.name.clone());
        match &self.node {
            Some(node) => format!("{node} {what}"),
            None => what,
        }
    }
}

/// How many checks came out each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Checks that are ✓.
    pub ok: usize,
    /// Checks that are !.
    pub warnings: usize,
    /// Checks that are ✗.
    pub failed: usize,
}

/// What `lpp check` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    #[serde(flatten)]
    /// `apiVersion: lpp.dev/v1alpha1`, `kind: CheckReport`.
    pub type_meta: ui::TypeMeta,
    /// The kubeconfig context checked.
    pub context: String,
    /// The API server's URL.
    pub server: String,
    /// Whether it checked before an install (`--pre`).
    pub pre: bool,
    /// Every check, by group.
    pub checks: Vec<Check>,
    /// How many came out each way.
    pub summary: Summary,
}

impl CheckReport {
    /// A report of `checks`, sorted by group (the order within a group is kept).
    pub fn new(context: String, server: String, pre: bool, mut checks: Vec<Check>) -> Self {
        checks.sort_by_key(|c| c.group);
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        let summary = Summary {
            ok: count(Status::Ok),
            warnings: count(Status::Warning),
            failed: count(Status::Failed),
        };
        CheckReport {
            type_meta: ui::TypeMeta::new("CheckReport"),
            context,
            server,
            pre,
            checks,
            summary,
        }
    }

    /// 3 when a check failed, or with `strict` also when one warns; else 0.
    pub fn exit(&self, strict: bool) -> Exit {
        if self.summary.failed > 0 || (strict && self.summary.warnings > 0) {
            Exit::Refused
        } else {
            Exit::Success
        }
    }

    /// The report for people: a heading per group, a line per check (`✓ name  what it saw`),
    /// the fix under each ! and ✗, and the counts.
    pub fn text(&self, ui: &Ui) -> String {
        let mut out = String::new();
        let mut group = None;
        for c in &self.checks {
            if group != Some(c.group) {
                if group.is_some() {
                    out.push('\n');
                }
                out.push_str(&ui.bold(c.group.name()));
                out.push('\n');
                group = Some(c.group);
            }
            let width = self
                .checks
                .iter()
                .filter(|o| o.group == c.group)
                .map(|o| o.label().chars().count())
                .max()
                .unwrap_or(0)
                .min(40);
            let mark = match c.status {
                Status::Ok => ui.good(c.status.mark()),
                Status::Warning => ui.caution(c.status.mark()),
                Status::Failed => ui.bad(c.status.mark()),
            };
            let label = c.label();
            let pad = width.saturating_sub(label.chars().count());
            out.push_str(&format!(
                "  {mark} {label}{}   {}\n",
                " ".repeat(pad),
                c.seen
            ));
            if let Some(fix) = &c.fix
                && c.status != Status::Ok
            {
                // The arrow stands under the start of what was seen.
                out.push_str(&format!(
                    "  {}   {} {fix}\n",
                    " ".repeat(width + 2),
                    ui.dim("→")
                ));
            }
        }
        let s = self.summary;
        out.push_str(&format!(
            "\n{} ok, {} {}, {} failed\n",
            s.ok,
            s.warnings,
            if s.warnings == 1 {
                "warning"
            } else {
                "warnings"
            },
            s.failed
        ));
        out
    }
}

impl Report for CheckReport {
    fn tables(&self, _wide: bool) -> Vec<comfy_table::Table> {
        let mut table = ui::table(["", "group", "check", "seen", "fix"]);
        for c in &self.checks {
            table.add_row(vec![
                c.status.mark().to_owned(),
                c.group.name().to_owned(),
                c.label(),
                c.seen.clone(),
                c.fix.clone().unwrap_or_default(),
            ]);
        }
        vec![table]
    }
}

/// Why `lpp check` could not run at all (anything it finds is a check, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    /// The command line names something that is not there (`--node`).
    Usage(String),
    #[error(transparent)]
    /// No client could be made (no kubeconfig, a bad context).
    Connect(#[from] cluster::Error),
    #[error(transparent)]
    /// Printing failed.
    Ui(#[from] ui::Error),
}

impl Error {
    /// The exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Ui(e) => e.exit(),
            Error::Connect(_) => Exit::Failure,
        }
    }
}

/// `lpp check`: gathers, evaluates, prints; exit 0 when every check is ✓ (or, without
/// `--strict`, !), 3 otherwise.
pub async fn check(ui: &Ui, target: &Target, options: CheckOptions) -> Result<Exit, Error> {
    let report = gather::run(ui, target, &options).await?;
    match ui.format() {
        ui::Format::Json | ui::Format::Yaml => ui.print(&report)?,
        _ => ui.write_stdout(&report.text(ui))?,
    }
    Ok(report.exit(options.strict))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(group: Group, name: &str, status: Status) -> Check {
        Check {
            group,
            name: name.into(),
            node: None,
            path: None,
            status,
            seen: format!("{name} seen"),
            fix: (status != Status::Ok).then(|| format!("fix {name}")),
        }
    }

    #[test]
    fn exit_codes_follow_the_worst_check() {
        let ok = CheckReport::new(
            "c".into(),
            "s".into(),
            false,
            vec![c(Group::Cluster, "a", Status::Ok)],
        );
        assert_eq!(ok.exit(true), Exit::Success);
        let warn = CheckReport::new(
            "c".into(),
            "s".into(),
            false,
            vec![
                c(Group::Cluster, "a", Status::Ok),
                c(Group::Install, "b", Status::Warning),
            ],
        );
        assert_eq!(warn.exit(false), Exit::Success);
        assert_eq!(warn.exit(true), Exit::Refused);
        let failed = CheckReport::new(
            "c".into(),
            "s".into(),
            false,
            vec![c(Group::Data, "x", Status::Failed)],
        );
        assert_eq!(failed.exit(false), Exit::Refused);
        assert_eq!(
            failed.summary,
            Summary {
                ok: 0,
                warnings: 0,
                failed: 1
            }
        );
    }

    #[test]
    fn the_text_groups_checks_and_puts_each_fix_under_its_line() {
        let mut path = c(Group::Nodes, "path", Status::Failed);
        path.node = Some("node-1".into());
        path.path = Some("/opt/x".into());
        let report = CheckReport::new(
            "c".into(),
            "s".into(),
            false,
            vec![
                path,
                c(Group::Cluster, "reachable", Status::Ok),
                c(Group::Cluster, "permissions-run", Status::Warning),
            ],
        );
        let ui = Ui::new(ui::UiSettings {
            format: ui::Format::Table,
            color: false,
            color_stdout: false,
            quiet: false,
            yes: false,
        });
        let text = report.text(&ui);
        assert_eq!(
            text,
            "cluster\n  ✓ reachable         reachable seen\n  ! permissions-run   permissions-run seen\n                      → fix permissions-run\n\nnodes\n  ✗ node-1 /opt/x   path seen\n                    → fix path\n\n1 ok, 1 warning, 1 failed\n"
        );
        let json = ui::to_json(&report).unwrap();
        assert!(json.contains("\"kind\": \"CheckReport\""), "{json}");
        assert!(json.contains("\"status\": \"failed\""), "{json}");
        assert!(json.contains("\"node\": \"node-1\""), "{json}");
    }
}
