//! Which inventoried entries are orphans, and which volumes lost their directory: a pure function
//! of the inventories, the PVs and the claims being provisioned.
//!
//! The one rule that matters: an entry is in use when **any** PV — of any provisioner, hostPath or
//! local, on any node — has a path equal to it, inside it, or containing it. Such an entry is
//! never listed, whatever its name or age.

use std::collections::BTreeSet;

use serde::Serialize;

use super::inventory::{Entry, EntryKind, Listing};
use crate::config::path;
use crate::provision::volume::parse_folder_name;

/// The directory every prune with `--archive` moves entries into; never listed itself.
pub const TRASH: &str = ".lpp-trash";

/// What the inventory of one base path on one node found.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub node: String,
    pub base: String,
    pub listing: Listing,
}

/// What a PV says about where its data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRecord {
    pub name: String,
    /// The hostPath or local path.
    pub path: String,
    /// Its node (annotation or affinity); `None` for a shared filesystem or no affinity.
    pub node: Option<String>,
    /// Made by our provisioner (then a missing directory is reported).
    pub ours: bool,
}

/// Why an entry is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A volume directory whose PV and claim are both gone.
    VolumeDeleted,
    /// A volume directory whose claim still exists but uses another volume.
    NoVolume,
    /// An empty directory: the parent a nested pathPattern leaves behind.
    EmptyParent,
    /// Not named as a provisioner names volumes (or a symlink, never followed): listed, never
    /// pruned.
    Foreign,
}

impl Reason {
    pub fn text(self) -> &'static str {
        match self {
            Reason::VolumeDeleted => {
                "no PV: its PV was deleted (with Retain, or reclaimed while the node was away)"
            }
            Reason::NoVolume => "no PV: its claim uses another volume",
            Reason::EmptyParent => "empty parent of a nested pathPattern",
            Reason::Foreign => "not made by a provisioner (listed only, never pruned)",
        }
    }
}

/// An entry no PV references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    pub node: String,
    pub base: String,
    /// The name (non-UTF-8 bytes shown lossily; such names are never pruned).
    pub name: String,
    pub path: String,
    pub kind: EntryKind,
    pub size_bytes: u64,
    /// Seconds since the epoch.
    pub modified: i64,
    pub reason: Reason,
    /// Whether `gc prune` may remove it.
    pub prunable: bool,
}

/// A PV of ours whose directory is not on its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingDirectory {
    pub volume: String,
    pub node: String,
    pub path: String,
}

/// Everything the comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub orphans: Vec<Orphan>,
    pub missing: Vec<MissingDirectory>,
}

/// The claim uid in a volume directory name made by upstream's default pattern
/// (`pvc-<uid>_<namespace>_<claim>`) or `{{ .PVName }}` (`pvc-<uid>`); `None` for anything else.
pub fn volume_claim_uid(name: &str) -> Option<&str> {
    let volume = match parse_folder_name(name) {
        Some((volume, _, _)) => volume,
        None if !name.contains('_') => name,
        None => return None,
    };
    let uid = volume.strip_prefix("pvc-")?;
    let groups = uid.split('-').map(str::len);
    let shape_ok = groups.eq([8, 4, 4, 4, 12])
        && uid
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'));
    shape_ok.then_some(uid)
}

/// Whether a PV path keeps `entry` in use: equal, inside it, or containing it.
pub fn in_use(entry: &str, volume_path: &str) -> bool {
    path::overlaps(entry, volume_path)
}

/// Compares the inventories with the PVs. `pending` holds the uids of claims not yet bound (being
/// provisioned); `claims` the uids of every claim; entries modified after `cutoff` (seconds since
/// the epoch) are too fresh to judge.
pub fn classify(
    scanned: &[Scanned],
    volumes: &[VolumeRecord],
    pending: &BTreeSet<String>,
    claims: &BTreeSet<String>,
    cutoff: i64,
) -> Findings {
    let mut findings = Findings::default();
    for scan in scanned {
        let Listing::Entries(entries) = &scan.listing else {
            continue;
        };
        for entry in entries {
            if let Some(orphan) = judge(scan, entry, volumes, pending, claims, cutoff) {
                findings.orphans.push(orphan);
            }
        }
    }
    findings.missing = missing(scanned, volumes);
    findings
}

fn judge(
    scan: &Scanned,
    entry: &Entry,
    volumes: &[VolumeRecord],
    pending: &BTreeSet<String>,
    claims: &BTreeSet<String>,
    cutoff: i64,
) -> Option<Orphan> {
    let shown = String::from_utf8_lossy(&entry.name).into_owned();
    if entry.name == TRASH.as_bytes() || entry.modified > cutoff {
        return None;
    }
    let entry_path = path::join(&scan.base, &shown);
    if volumes.iter().any(|v| in_use(&entry_path, &v.path)) {
        return None;
    }
    // A non-UTF-8 name may have been shown lossily: only a name read exactly can be judged.
    let exact = entry.name_str();
    let uid = exact.and_then(volume_claim_uid);
    if uid.is_some_and(|uid| pending.contains(uid)) {
        return None;
    }
    let (reason, prunable) = match (entry.kind, uid) {
        (EntryKind::Directory, Some(uid)) if claims.contains(uid) => (Reason::NoVolume, true),
        (EntryKind::Directory, Some(_)) => (Reason::VolumeDeleted, true),
        (EntryKind::Directory, None) if entry.children == 0 && exact.is_some() => {
            (Reason::EmptyParent, true)
        }
        _ => (Reason::Foreign, false),
    };
    Some(Orphan {
        node: scan.node.clone(),
        base: scan.base.clone(),
        name: shown,
        path: entry_path,
        kind: entry.kind,
        size_bytes: entry.size_bytes,
        modified: entry.modified,
        reason,
        prunable,
    })
}

/// PVs of ours whose directory sits directly under a base path that was listed on their node,
/// but is not there.
fn missing(scanned: &[Scanned], volumes: &[VolumeRecord]) -> Vec<MissingDirectory> {
    let mut out = Vec::new();
    for volume in volumes.iter().filter(|v| v.ours) {
        let clean = path::clean(&volume.path);
        let Some((parent, name)) = path::split_parent(&clean) else {
            continue;
        };
        let listed = scanned.iter().find(|s| {
            path::clean(&s.base) == parent
                && volume.node.as_ref().is_none_or(|n| *n == s.node)
                && matches!(s.listing, Listing::Entries(_))
        });
        let Some(scan) = listed else { continue };
        let Listing::Entries(entries) = &scan.listing else {
            continue;
        };
        if !entries.iter().any(|e| e.name == name.as_bytes()) {
            out.push(MissingDirectory {
                volume: volume.name.clone(),
                node: scan.node.clone(),
                path: clean.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UID: &str = "0b6c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21";

    fn dir(name: &str, children: u64) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind: EntryKind::Directory,
            size_bytes: 4096,
            modified: 100,
            children,
        }
    }

    fn scan(entries: Vec<Entry>) -> Scanned {
        Scanned {
            node: "node-1".into(),
            base: "/opt/lp".into(),
            listing: Listing::Entries(entries),
        }
    }

    fn pv(name: &str, path: &str, node: Option<&str>) -> VolumeRecord {
        VolumeRecord {
            name: name.into(),
            path: path.into(),
            node: node.map(str::to_owned),
            ours: true,
        }
    }

    #[test]
    fn volume_directory_names_are_parsed_strictly() {
        assert_eq!(
            volume_claim_uid(&format!("pvc-{UID}_default_data-0")),
            Some(UID)
        );
        assert_eq!(volume_claim_uid(&format!("pvc-{UID}")), Some(UID));
        assert_eq!(
            volume_claim_uid(&format!("pvc-{UID}_default_a.b")),
            Some(UID)
        );
        assert_eq!(volume_claim_uid(&format!("pvc-{UID}_a_b_c")), None);
        assert_eq!(volume_claim_uid(&format!("pvc-{UID}_ns")), None);
        assert_eq!(volume_claim_uid("pvc-1234"), None);
        assert_eq!(volume_claim_uid("backup"), None);
    }

    #[test]
    fn each_kind_of_orphan_is_found() {
        let deleted = format!("pvc-{UID}_ns_gone");
        let other = "1b6c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21";
        let rebound = format!("pvc-{other}_ns_claim");
        let scanned = [scan(vec![
            dir(&deleted, 1),
            dir(&rebound, 1),
            dir("ns-empty", 0),
            dir("manual-backup", 3),
            Entry {
                kind: EntryKind::Symlink,
                ..dir("link", 0)
            },
            dir(TRASH, 2),
        ])];
        let claims = BTreeSet::from([other.to_owned()]);
        let found = classify(&scanned, &[], &BTreeSet::new(), &claims, 1000);
        let reasons: Vec<(&str, Reason, bool)> = found
            .orphans
            .iter()
            .map(|o| (o.name.as_str(), o.reason, o.prunable))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (deleted.as_str(), Reason::VolumeDeleted, true),
                (rebound.as_str(), Reason::NoVolume, true),
                ("ns-empty", Reason::EmptyParent, true),
                ("manual-backup", Reason::Foreign, false),
                ("link", Reason::Foreign, false),
            ]
        );
    }

    #[test]
    fn fresh_entries_and_claims_being_provisioned_are_left_alone() {
        let name = format!("pvc-{UID}_ns_new");
        let scanned = [scan(vec![dir(&name, 0)])];
        let pending = BTreeSet::from([UID.to_owned()]);
        assert!(
            classify(&scanned, &[], &pending, &pending, 1000)
                .orphans
                .is_empty()
        );
        assert!(
            classify(&scanned, &[], &BTreeSet::new(), &BTreeSet::new(), 50)
                .orphans
                .is_empty()
        );
    }

    #[test]
    fn nested_patterns_keep_their_parents_in_use() {
        let scanned = [scan(vec![dir("team-a", 1)])];
        let volumes = [pv("pvc-x", "/opt/lp/team-a/data-0", Some("node-2"))];
        let found = classify(&scanned, &volumes, &BTreeSet::new(), &BTreeSet::new(), 1000);
        assert!(
            found.orphans.is_empty(),
            "any PV on any node protects the path"
        );
    }

    #[test]
    fn missing_directories_are_reported_for_our_volumes_on_their_node() {
        let scanned = [scan(vec![dir("pvc-here", 1)])];
        let volumes = [
            pv("pvc-here", "/opt/lp/pvc-here", Some("node-1")),
            pv("pvc-gone", "/opt/lp/pvc-gone", Some("node-1")),
            pv("pvc-elsewhere", "/opt/lp/pvc-elsewhere", Some("node-2")),
            VolumeRecord {
                ours: false,
                ..pv("pvc-theirs", "/opt/lp/pvc-theirs", Some("node-1"))
            },
        ];
        let found = classify(&scanned, &volumes, &BTreeSet::new(), &BTreeSet::new(), 1000);
        assert_eq!(
            found.missing,
            vec![MissingDirectory {
                volume: "pvc-gone".into(),
                node: "node-1".into(),
                path: "/opt/lp/pvc-gone".into()
            }]
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(format!("pvc-{UID}_ns_a")),
            Just(format!("pvc-{UID}")),
            "[a-z]{1,3}",
            Just("x y".to_owned()),
        ]
    }

    proptest! {
        /// For random layouts of directories and PVs (any node, any depth, equal, inside or
        /// around an entry), no entry a PV references is ever listed.
        #[test]
        fn a_referenced_directory_is_never_listed(
            names in proptest::collection::vec((segment(), 0u64..3, any::<bool>()), 0..8),
            volumes in proptest::collection::vec(
                (proptest::collection::vec(segment(), 0..3), any::<bool>(), any::<bool>()), 0..8),
        ) {
            let entries: Vec<Entry> = names.iter().map(|(n, c, link)| Entry {
                kind: if *link { EntryKind::Symlink } else { EntryKind::Directory },
                ..dir(n, *c)
            }).collect();
            let records: Vec<VolumeRecord> = volumes.iter().enumerate().map(|(i, (segs, other_node, ours))| {
                let mut path = "/opt/lp".to_owned();
                for s in segs { path = format!("{path}/{s}"); }
                VolumeRecord {
                    name: format!("pv-{i}"),
                    path,
                    node: Some(if *other_node { "node-2" } else { "node-1" }.into()),
                    ours: *ours,
                }
            }).collect();
            let found = classify(&[scan(entries)], &records, &BTreeSet::new(), &BTreeSet::new(), 1000);
            for orphan in &found.orphans {
                for v in &records {
                    prop_assert!(!in_use(&orphan.path, &v.path), "{} listed though {} uses {}", orphan.path, v.name, v.path);
                }
            }
        }
    }
}
