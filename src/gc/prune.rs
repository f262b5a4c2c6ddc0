//! What `gc prune` removes, re-checked against a fresh PV list, and the script that removes it.

use std::collections::BTreeSet;

use serde::Serialize;

use super::classify::{Orphan, Reason, VolumeRecord, in_use, volume_claim_uid};

/// How one entry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `rm -rf` of a volume directory.
    Delete,
    /// `rmdir` of an empty parent: fails harmlessly if something appeared in it.
    RemoveEmpty,
    /// `mv` into `<base>/.lpp-trash/`.
    Archive,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::RemoveEmpty => "rmdir",
            Action::Archive => "archive",
        }
    }
}

/// One entry to remove on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub node: String,
    pub base: String,
    pub name: String,
    pub path: String,
    pub size_bytes: u64,
    pub action: Action,
}

/// Turns the listed orphans into targets, dropping whatever a PV in `fresh_volumes` now
/// references or a claim in `fresh_pending` is now provisioning: those come back as `kept`,
/// with the reason.
pub fn plan(
    orphans: &[Orphan],
    fresh_volumes: &[VolumeRecord],
    fresh_pending: &BTreeSet<String>,
    archive: bool,
) -> (Vec<Target>, Vec<(Orphan, String)>) {
    let mut targets = Vec::new();
    let mut kept = Vec::new();
    for orphan in orphans.iter().filter(|o| o.prunable) {
        if let Some(volume) = fresh_volumes.iter().find(|v| in_use(&orphan.path, &v.path)) {
            kept.push((
                orphan.clone(),
                format!("PV {} now uses {}", volume.name, volume.path),
            ));
            continue;
        }
        if volume_claim_uid(&orphan.name).is_some_and(|uid| fresh_pending.contains(uid)) {
            kept.push((
                orphan.clone(),
                "its claim is being provisioned again".to_owned(),
            ));
            continue;
        }
        let action = match (orphan.reason, archive) {
            (Reason::EmptyParent, _) => Action::RemoveEmpty,
            (_, true) => Action::Archive,
            (_, false) => Action::Delete,
        };
        targets.push(Target {
            node: orphan.node.clone(),
            base: orphan.base.clone(),
            name: orphan.name.clone(),
            path: orphan.path.clone(),
            size_bytes: orphan.size_bytes,
            action,
        });
    }
    (targets, kept)
}

/// The prune script, run as `sh -c SCRIPT prune ACTION BASE NAME [ACTION BASE NAME ...]`.
/// It acts only on the exact name given, directly under its base, never on a symlink, and prints
/// `R <k> <outcome>` for the k-th target (1-based): done, gone, symlink, not-empty, failed, bad.
/// Like the inventory script it spells `/` as `$s`, naming no absolute path itself.
pub const SCRIPT: &str = r#"s=$(printf '\057')
k=0
while [ $# -ge 3 ]; do
  action=$1; base=$2; name=$3; shift 3
  k=$((k + 1))
  case "$name" in ''|.|..|*$s*|.lpp-trash) echo "R $k bad"; continue;; esac
  p="$base$s$name"
  trash="$base$s.lpp-trash"
  if [ -L "$base" ] || [ ! -d "$base" ]; then echo "R $k bad"; continue; fi
  if [ -L "$p" ]; then echo "R $k symlink"; continue; fi
  if [ ! -e "$p" ]; then echo "R $k gone"; continue; fi
  case $action in
    delete) if rm -rf -- "$p"; then echo "R $k done"; else echo "R $k failed"; fi;;
    rmdir) if rmdir -- "$p" 2>&-; then echo "R $k done"; else echo "R $k not-empty"; fi;;
    archive) if mkdir -p -- "$trash" && mv -- "$p" "$trash$s$name"; then echo "R $k done"; else echo "R $k failed"; fi;;
    *) echo "R $k bad";;
  esac
done
echo END
"#;

/// The script's arguments for `targets`.
pub fn script_args(targets: &[&Target]) -> Vec<String> {
    targets
        .iter()
        .flat_map(|t| [t.action.word().to_owned(), t.base.clone(), t.name.clone()])
        .collect()
}

/// What happened to one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    /// Already gone when the helper looked.
    Gone,
    /// Became a symlink: left alone.
    Symlink,
    /// An empty parent that is not empty any more: left alone.
    NotEmpty,
    Failed,
    /// Refused by the script's own checks.
    Refused,
    /// The helper did not report on it.
    Unknown,
}

/// Reads the script's output for `count` targets; unreported ones are [`Outcome::Unknown`].
pub fn parse_outcomes(output: &str, count: usize) -> Vec<Outcome> {
    let mut outcomes = vec![Outcome::Unknown; count];
    for line in output.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let ["R", k, word] = fields.as_slice() else {
            continue;
        };
        let Some(slot) = k
            .parse::<usize>()
            .ok()
            .and_then(|k| k.checked_sub(1))
            .and_then(|k| outcomes.get_mut(k))
        else {
            continue;
        };
        *slot = match *word {
            "done" => Outcome::Done,
            "gone" => Outcome::Gone,
            "symlink" => Outcome::Symlink,
            "not-empty" => Outcome::NotEmpty,
            "failed" => Outcome::Failed,
            "bad" => Outcome::Refused,
            _ => Outcome::Unknown,
        };
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::inventory::EntryKind;

    fn orphan(name: &str, reason: Reason, prunable: bool) -> Orphan {
        Orphan {
            node: "node-1".into(),
            base: "/opt/lp".into(),
            name: name.into(),
            path: format!("/opt/lp/{name}"),
            kind: EntryKind::Directory,
            size_bytes: 10,
            modified: 1,
            reason,
            prunable,
        }
    }

    #[test]
    fn a_volume_created_since_the_scan_saves_its_directory() {
        let orphans = [
            orphan("pvc-a", Reason::VolumeDeleted, true),
            orphan("pvc-b", Reason::VolumeDeleted, true),
            orphan("backup", Reason::Foreign, false),
            orphan("empty", Reason::EmptyParent, true),
        ];
        let fresh = [VolumeRecord {
            name: "pvc-b".into(),
            path: "/opt/lp/pvc-b".into(),
            node: None,
            ours: false,
        }];
        let (targets, kept) = plan(&orphans, &fresh, &BTreeSet::new(), false);
        let names: Vec<(&str, Action)> = targets
            .iter()
            .map(|t| (t.name.as_str(), t.action))
            .collect();
        assert_eq!(
            names,
            vec![("pvc-a", Action::Delete), ("empty", Action::RemoveEmpty)]
        );
        assert_eq!(kept.len(), 1);
        assert!(kept[0].1.contains("pvc-b"));
        let (archived, _) = plan(&orphans, &[], &BTreeSet::new(), true);
        assert_eq!(archived[0].action, Action::Archive);
    }

    fn run_script(args: &[String]) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("prune")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_script_removes_archives_and_refuses_exactly_as_told() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(base.join("old/deep")).unwrap();
        std::fs::create_dir_all(base.join("keep-me")).unwrap();
        std::fs::write(base.join("keep-me/data"), b"1").unwrap();
        std::fs::create_dir_all(base.join("now-full")).unwrap();
        std::fs::write(base.join("now-full/x"), b"1").unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), b"1").unwrap();
        std::os::unix::fs::symlink(&outside, base.join("link")).unwrap();
        let b = base.display().to_string();
        let args: Vec<String> = [
            ["delete", &b, "old"],
            ["archive", &b, "keep-me"],
            ["rmdir", &b, "now-full"],
            ["delete", &b, "link"],
            ["delete", &b, ".."],
            ["delete", &b, "never-there"],
        ]
        .iter()
        .flatten()
        .map(|s| s.to_string())
        .collect();
        let outcomes = parse_outcomes(&run_script(&args), 6);
        assert_eq!(
            outcomes,
            vec![
                Outcome::Done,
                Outcome::Done,
                Outcome::NotEmpty,
                Outcome::Symlink,
                Outcome::Refused,
                Outcome::Gone
            ]
        );
        assert!(!base.join("old").exists());
        assert_eq!(
            std::fs::read(base.join(".lpp-trash/keep-me/data")).unwrap(),
            b"1"
        );
        assert!(base.join("now-full/x").exists());
        assert!(
            outside.join("precious").exists(),
            "a symlink is never followed"
        );
    }
}
