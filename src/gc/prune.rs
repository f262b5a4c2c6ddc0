//! What `gc prune` removes, re-checked against a fresh PV list, and the script that removes it.

use std::collections::BTreeSet;

use serde::Serialize;

use super::classify::{Orphan, Reason, VolumeRecord, in_use, volume_claim_uid};
use super::inventory;
use crate::provision::helper_pod::{HostDir, HostPathType, ScriptJob};

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
    /// The node it is on.
    pub node: String,
    /// The base path it sits directly under; the script acts only on this base path's entry.
    pub base: String,
    /// Its exact name under the base path.
    pub name: String,
    /// Its full path on the node.
    pub path: String,
    /// Its disk usage in bytes when it was scanned.
    pub size_bytes: u64,
    /// How it goes.
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

/// The prune script, run as
/// `sh -c SCRIPT prune N (ROOT REL)×N (ACTION BASE NAME)…`: the N PV paths that may use the
/// node, reached as [`super::inventory::plan`] says, then the targets.
///
/// Before acting it looks, on the node, where each PV path really is ([`super::inventory`]'s
/// walk), and refuses (`in-use`) a target that is one of those paths or of their ancestors, whose
/// base path is one of those paths, or that holds a PV's walk root (searched with `find -inum`);
/// and every target when a PV path cannot be looked at. It acts only on the exact name given,
/// directly under its base, never on a symlink, and prints `R <k> <outcome>` for the k-th target
/// (1-based): done, gone, symlink, not-empty, in-use, trash-unsafe, failed, bad.
///
/// `archive` never follows `<base>/.lpp-trash`: when it is a symlink or not a directory the
/// target is refused (`trash-unsafe`); it is made with a plain `mkdir` only when absent. An
/// earlier archive of the same name is kept: the new one becomes `<name>.1`, `<name>.2`, ….
pub const SCRIPT: &str = concat!(
    super::inventory::prelude!(),
    r#"inside='want=$1; shift
for p in "$@"; do
  id=$(stat -L -c "%d:%i" "$p" 2>&-) || { echo "?"; continue; }
  case " $want " in *" $id "*) echo "$id";; esac
done
exit 0'
holds() {
  h_want=; h_expr=
  for r in $roots; do
    [ "$r" = "$2" ] && continue
    h_want="$h_want $r"; h_expr="$h_expr${h_expr:+ -o} -inum ${r#*:}"
  done
  [ -n "$h_want" ] || return 1
  h_hit=$(find "$1" -mindepth 1 -type d \( $h_expr \) -exec sh -c "$inside" inside "$h_want" {} +) || return 0
  [ -n "$h_hit" ]
}
np=$1; shift
k=0; unsure=; all=; paths=; roots=
while [ "$k" -lt "$np" ] && [ $# -ge 2 ]; do
  k=$((k + 1)); walk "$1" "$2"; shift 2
  case $st in L|U) unsure=1;; esac
  if [ -n "$ids" ]; then
    all="$all $ids"; roots="$roots ${ids%% *}"
    [ "$st" = I ] && paths="$paths ${ids##* }"
  fi
done
[ "$k" -eq "$np" ] || unsure=1
k=0
while [ $# -ge 3 ]; do
  action=$1; base=$2; name=$3; shift 3
  k=$((k + 1))
  case "$name" in ''|.|..|*/*|.lpp-trash) echo "R $k bad"; continue;; esac
  p="$base/$name"
  trash="$base/.lpp-trash"
  if [ -L "$base" ] || [ ! -d "$base" ]; then echo "R $k bad"; continue; fi
  if [ -L "$p" ]; then echo "R $k symlink"; continue; fi
  if [ ! -e "$p" ]; then echo "R $k gone"; continue; fi
  tid=$(fid "$p") || tid=
  bid=$(fid "$base") || bid=
  if [ -n "$unsure" ] || [ -z "$tid" ] || [ -z "$bid" ] || has "$tid" "$all" || has "$bid" "$paths" || holds "$p" "$bid"; then
    echo "R $k in-use"; continue
  fi
  case $action in
    delete) if rm -rf -- "$p"; then echo "R $k done"; else echo "R $k failed"; fi;;
    rmdir) if rmdir -- "$p" 2>&-; then echo "R $k done"; else echo "R $k not-empty"; fi;;
    archive)
      if [ -L "$trash" ] || { [ -e "$trash" ] && [ ! -d "$trash" ]; }; then echo "R $k trash-unsafe"; continue; fi
      if [ ! -e "$trash" ] && ! mkdir -- "$trash"; then echo "R $k failed"; continue; fi
      dest=$trash/$name; n=0
      while [ -e "$dest" ] || [ -L "$dest" ]; do n=$((n + 1)); dest=$trash/$name.$n; done
      if mv -- "$p" "$dest"; then echo "R $k done"; else echo "R $k failed"; fi;;
    *) echo "R $k bad";;
  esac
done
echo END
"#
);

/// The prune helper pod's job on `node` for `targets`, checking on the node, right before
/// acting, where each of `volumes` (the fresh PVs that may use the node) really is. Base paths
/// are mounted read-write as themselves; PV paths outside them are reached through read-only
/// mounts of their parents. `suffix` keeps the pod's name unique.
pub fn job(node: &str, targets: &[&Target], volumes: &[&VolumeRecord], suffix: &str) -> ScriptJob {
    let bases: Vec<String> = targets
        .iter()
        .map(|t| t.base.clone())
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    let paths: Vec<String> = volumes.iter().map(|v| v.path.clone()).collect();
    let plan = inventory::plan(&bases, &paths);
    let mut args = vec!["prune".to_owned(), paths.len().to_string()];
    args.extend(plan.args());
    args.extend(script_args(targets));
    let mut host_dirs: Vec<HostDir> = bases
        .into_iter()
        .map(|path| HostDir {
            path,
            mount_path: None,
            kind: HostPathType::Directory,
            read_only: false,
        })
        .collect();
    host_dirs.extend(plan.mounts);
    ScriptJob {
        name: format!("lpp-gc-prune-{node}-{suffix}"),
        action: "prune".into(),
        node: Some(node.to_owned()),
        host_dirs,
        command: vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()],
        args,
        env: Vec::new(),
    }
}

/// What to tell the user when `--archive` found `base`'s trash unsafe on `node`.
pub fn trash_unsafe_advice(node: &str, base: &str) -> String {
    format!(
        "node {node}: {} is a symlink or not a directory, so nothing was archived in {base}; \
         remove or rename it (it is never followed), then run `lpp gc prune --archive` again",
        super::classify::shown(&crate::config::path::join(base, super::classify::TRASH)),
        base = super::classify::shown(base),
    )
}

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
    /// Removed, or moved into the trash with `--archive`.
    Done,
    /// Already gone when the helper looked.
    Gone,
    /// Became a symlink: left alone.
    Symlink,
    /// An empty parent that is not empty any more: left alone.
    NotEmpty,
    /// A PV uses it, as seen on the node right before acting (or where a PV is could not be
    /// told there): left alone.
    InUse,
    /// `--archive`, but `<base>/.lpp-trash` is a symlink or not a directory: left alone.
    TrashUnsafe,
    /// The removal or the move was tried and failed (`rm`, `mkdir` or `mv` said no).
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
            "in-use" => Outcome::InUse,
            "trash-unsafe" => Outcome::TrashUnsafe,
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
    use crate::gc::classify::TRASH;
    use crate::gc::inventory::{EntryKind, here};
    use std::os::unix::fs::symlink;

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
            held: None,
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

    /// Runs the script here with no PV to check, then `args` (the targets).
    fn run_script(args: &[String]) -> String {
        let mut all = vec!["0".to_owned()];
        all.extend_from_slice(args);
        here::sh(SCRIPT, "prune", &all)
    }

    /// Runs the script here, checking `volumes` (PV paths) as the job for `bases` would.
    fn run_checked(bases: &[String], volumes: &[String], targets: &[[&str; 3]]) -> String {
        let plan = inventory::plan(bases, volumes);
        let mut args = vec![volumes.len().to_string()];
        args.extend(here::volume_args(&plan));
        args.extend(targets.iter().flatten().map(|s| s.to_string()));
        here::sh(SCRIPT, "prune", &args)
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

    /// Right before acting, the node is asked where each PV really is: a target that a PV uses
    /// through a symlinked spelling (of its parent, deeper inside it, of the whole base) is
    /// refused, whatever the list said.
    #[test]
    fn the_script_refuses_what_a_pv_really_uses() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let base = root.join("base");
        for d in ["aliased", "deep/sub", "free", "empty", "other"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::create_dir_all(root.join("srv")).unwrap();
        symlink("base", root.join("alias")).unwrap();
        symlink("../base/deep/sub", root.join("srv/link")).unwrap();
        let b = base.display().to_string();
        let at = |p: &str| root.join(p).display().to_string();
        let targets = [
            ["delete", b.as_str(), "aliased"],
            ["delete", b.as_str(), "deep"],
            ["rmdir", b.as_str(), "empty"],
            ["delete", b.as_str(), "free"],
        ];
        let volumes = [
            at("alias/aliased"),
            at("srv/link/data"),
            at("alias/empty"),
            at("elsewhere/pv"),
        ];
        let outcomes = parse_outcomes(
            &run_checked(std::slice::from_ref(&b), &volumes, &targets),
            4,
        );
        assert_eq!(
            outcomes,
            vec![
                Outcome::InUse,
                Outcome::InUse,
                Outcome::InUse,
                Outcome::Done
            ]
        );
        assert!(base.join("aliased").is_dir() && base.join("deep/sub").is_dir());
        assert!(base.join("empty").is_dir() && !base.join("free").exists());

        // A PV that is the base (by another spelling) keeps everything in it.
        let outcomes = parse_outcomes(
            &run_checked(
                std::slice::from_ref(&b),
                &[at("alias")],
                &[["delete", &b, "other"]],
            ),
            1,
        );
        assert_eq!(outcomes, vec![Outcome::InUse]);
        // A PV that cannot be looked at keeps everything on its node.
        symlink("../base/other", root.join("srv/current")).unwrap();
        for unsure in [at("srv/current"), "/data".to_owned()] {
            let outcomes = parse_outcomes(
                &run_checked(
                    std::slice::from_ref(&b),
                    &[unsure],
                    &[["delete", &b, "other"]],
                ),
                1,
            );
            assert_eq!(outcomes, vec![Outcome::InUse]);
        }
        assert!(base.join("other").is_dir());
    }

    #[test]
    fn the_job_checks_the_nodes_pvs_through_read_only_parent_mounts() {
        let t = Target {
            node: "node-1".into(),
            base: "/opt/lp".into(),
            name: "pvc-a".into(),
            path: "/opt/lp/pvc-a".into(),
            size_bytes: 1,
            action: Action::Delete,
        };
        let volume = |path: &str| VolumeRecord {
            name: "pv".into(),
            path: path.into(),
            node: None,
            ours: false,
        };
        let (a, b) = (volume("/opt/lp/pvc-b"), volume("/alias/pvc-a"));
        let job = job("node-1", &[&t, &t], &[&a, &b], "abc");
        assert_eq!(job.name, "lpp-gc-prune-node-1-abc");
        assert_eq!(
            job.args,
            [
                "prune",
                "2",
                "/opt/lp",
                "pvc-b",
                "/lpp-gc/0",
                "pvc-a",
                "delete",
                "/opt/lp",
                "pvc-a",
                "delete",
                "/opt/lp",
                "pvc-a"
            ]
        );
        let mounts = here::mount_rows(&job.host_dirs);
        assert_eq!(
            mounts,
            vec![
                ("/opt/lp", None, HostPathType::Directory, false),
                ("/alias", Some("/lpp-gc/0"), HostPathType::Unchecked, true),
            ]
        );
    }

    #[test]
    fn archive_never_follows_the_trash_and_keeps_earlier_archives() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let outside = dir.path().join("outside");
        for d in ["a", "b", "c"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
            std::fs::write(base.join(d).join("data"), d).unwrap();
        }
        std::fs::create_dir_all(&outside).unwrap();
        let b = base.display().to_string();
        let archive = |name: &str| {
            let args: Vec<String> = ["archive", &b, name].map(str::to_owned).to_vec();
            parse_outcomes(&run_script(&args), 1)[0]
        };
        let trash = base.join(TRASH);
        symlink(&outside, &trash).unwrap();
        assert_eq!(archive("a"), Outcome::TrashUnsafe);
        std::fs::remove_file(&trash).unwrap();
        std::fs::write(&trash, b"").unwrap();
        assert_eq!(archive("a"), Outcome::TrashUnsafe);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert!(base.join("a/data").exists());

        std::fs::remove_file(&trash).unwrap();
        assert_eq!(archive("a"), Outcome::Done);
        std::fs::create_dir_all(base.join("a")).unwrap();
        std::fs::write(base.join("a/data"), b"second").unwrap();
        assert_eq!(archive("a"), Outcome::Done);
        assert_eq!(std::fs::read(trash.join("a/data")).unwrap(), b"a");
        assert_eq!(std::fs::read(trash.join("a.1/data")).unwrap(), b"second");
        // A symlink planted inside the trash is not followed either.
        symlink(&outside, trash.join("b")).unwrap();
        assert_eq!(archive("b"), Outcome::Done);
        assert_eq!(std::fs::read(trash.join("b.1/data")).unwrap(), b"b");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
