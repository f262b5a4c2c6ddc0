//! Which inventoried entries are orphans, and which volumes lost their directory: a pure function
//! of the inventories, the PVs and the claims being provisioned.
//!
//! The one rule that matters: an entry is in use when **any** PV — of any provisioner, hostPath or
//! local, on any node — has a path equal to it, inside it, or containing it. Such an entry is
//! never listed, whatever its name or age.
//!
//! Paths are compared as written, and also as they really are on the node: the inventory
//! reports identities ([`super::inventory`]), and every base path and entry with a known identity
//! is an *anchor* whose path is known. A PV whose own identity is an anchor's is (also) at that
//! anchor's path; a PV with an ancestor whose identity is an anchor's lies at or inside that
//! anchor's path; a PV found inside an entry by the inventory's search lies inside it. Each such
//! place is then compared as a path is. Where the inventory could not tell where a PV is on a node
//! (a symlink below its walk root, an unreadable path, a search that did not finish), that node's
//! entries are listed but not prunable, with the reason.

use std::collections::BTreeSet;

use serde::Serialize;

use super::inventory::{Entry, EntryKind, FileId, Inventory, Listing, Plan, Reach, Seen};
use crate::config::path;
use crate::provision::volume::parse_folder_name;

/// The directory every prune with `--archive` moves entries into; never listed itself.
pub const TRASH: &str = ".lpp-trash";

/// What the inventory of one base path on one node found.
#[derive(Debug, Clone)]
pub struct Scanned {
    /// The node's name.
    pub node: String,
    /// The base path, as the config spells it.
    pub base: String,
    /// What the inventory found there.
    pub listing: Listing,
}

/// What a PV says about where its data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRecord {
    /// The PV's name.
    pub name: String,
    /// The hostPath or local path.
    pub path: String,
    /// Its node (annotation or affinity); `None` for a shared filesystem or no affinity.
    pub node: Option<String>,
    /// Made by our provisioner (then a missing directory is reported).
    pub ours: bool,
}

/// Where one PV is on one node, as its inventory saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// Seen: its own identity (`None`: the path does not exist), those of the ancestors the
    /// inventory could see, and the entries (base path, name) it lies strictly inside.
    Seen {
        /// The identity of the PV's path on the node; `None` when it does not exist there.
        path: Option<FileId>,
        /// The identities of the path's ancestors that exist, from the inventory's walk root
        /// down.
        ancestors: Vec<FileId>,
        /// The entries (base path, name's bytes) the PV lies strictly inside; empty when none.
        inside: Vec<(String, Vec<u8>)>,
    },
    /// Where it is cannot be told, and why.
    Unknown(String),
}

/// A PV as seen on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenVolume {
    /// The PV's name.
    pub name: String,
    /// The PV's hostPath or local path, as its spec spells it.
    pub path: String,
    /// Where the inventory found it on the node.
    pub located: Located,
}

/// What one node's inventory said about the PVs that may use its base paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVolumes {
    /// The node's name.
    pub node: String,
    /// The PVs that may use the node's directories, as the inventory saw them.
    pub volumes: Vec<SeenVolume>,
    /// Why none of the node's entries may be pruned, when the inventory could not finish its
    /// check.
    pub hold: Option<String>,
}

impl NodeVolumes {
    /// Why the node's entries may not be pruned, if so: the hold, or the first PV whose place on
    /// the node is unknown.
    pub fn held(&self) -> Option<String> {
        self.hold.clone().or_else(|| {
            self.volumes.iter().find_map(|v| match &v.located {
                Located::Unknown(why) => Some(format!("PV {} ({}): {why}", v.name, shown(&v.path))),
                Located::Seen { .. } => None,
            })
        })
    }
}

/// Turns one node's inventory into what [`classify`] reads: the listings of `bases`, and where
/// each of `volumes` (the PVs the inventory looked for, reached as `plan` says) is.
pub fn node_view(
    node: &str,
    bases: &[String],
    volumes: &[&VolumeRecord],
    plan: &Plan,
    inventory: Inventory,
) -> (Vec<Scanned>, NodeVolumes) {
    let mut seen_volumes = Vec::new();
    for (k, volume) in volumes.iter().enumerate() {
        let inside: Vec<(String, Vec<u8>)> = inventory
            .inside
            .iter()
            .filter(|f| f.volume == k)
            .filter_map(|f| Some((bases.get(f.base)?.clone(), f.name.clone())))
            .collect();
        let unreachable = matches!(plan.reach.get(k), Some(Reach::Unreachable) | None);
        let located = match inventory.volumes.get(k) {
            _ if unreachable => Located::Unknown(
                "its path is / or directly under /, which gc does not mount to look".into(),
            ),
            Some(Seen::Found(ids)) => match ids.split_last() {
                Some((last, ancestors)) => Located::Seen {
                    path: Some(*last),
                    ancestors: ancestors.to_vec(),
                    inside,
                },
                None => Located::Unknown("the inventory reported no identity".into()),
            },
            Some(Seen::Missing(ids)) => Located::Seen {
                path: None,
                ancestors: ids.clone(),
                inside,
            },
            Some(Seen::Symlink) => Located::Unknown(
                "a symlink on its path cannot be resolved from inside the helper pod".into(),
            ),
            Some(Seen::Unreadable) | None => {
                Located::Unknown("its identity cannot be read on the node".into())
            }
        };
        seen_volumes.push(SeenVolume {
            name: volume.name.clone(),
            path: volume.path.clone(),
            located,
        });
    }
    let hold = inventory.incomplete.first().map(|i| {
        format!(
            "the search of {} for PVs inside its entries did not finish",
            bases
                .get(*i)
                .map_or_else(|| "a base path".to_owned(), |b| shown(b))
        )
    });
    let scanned = bases
        .iter()
        .zip(inventory.listings)
        .map(|(base, listing)| Scanned {
            node: node.to_owned(),
            base: base.clone(),
            listing,
        })
        .collect();
    (
        scanned,
        NodeVolumes {
            node: node.to_owned(),
            volumes: seen_volumes,
            hold,
        },
    )
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
    /// The reason in words, as the table shows it.
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
    /// The node it is on.
    pub node: String,
    /// The base path it sits directly under, as the config spells it.
    pub base: String,
    /// The name (non-UTF-8 bytes shown lossily; such names are never pruned).
    pub name: String,
    /// Its full path on the node: the base path joined with its name.
    pub path: String,
    /// Whether it is a directory, a file, a symlink or something else.
    pub kind: EntryKind,
    /// Its disk usage in bytes, counted in whole KiB; 0 for a symlink.
    pub size_bytes: u64,
    /// When it was last modified, in seconds since the epoch.
    pub modified: i64,
    /// Why it is listed.
    pub reason: Reason,
    /// Whether `gc prune` may remove it.
    pub prunable: bool,
    /// Why it may not be pruned although its reason would allow it: the node's inventory could
    /// not tell where some PV is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// How a path or name is shown in a table or any line of text: control characters (and
/// characters that reorder text) escaped as `ls -b` does — `\n`, `\t`, `\\` for a backslash,
/// octal bytes for the rest — so that every entry keeps one line and reads unambiguously. JSON
/// and YAML keep the exact text.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let escape = match c {
            '\\' => "\\\\",
            '\n' => "\\n",
            '\t' => "\\t",
            '\r' => "\\r",
            '\u{7}' => "\\a",
            '\u{8}' => "\\b",
            '\u{b}' => "\\v",
            '\u{c}' => "\\f",
            c if c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let mut bytes = [0; 4];
                for b in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("\\{b:03o}"));
                }
                continue;
            }
            c => {
                out.push(c);
                continue;
            }
        };
        out.push_str(escape);
    }
    out
}

/// A PV of ours whose directory is not on its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingDirectory {
    /// The PV's name.
    pub volume: String,
    /// The node whose base path was listed without it.
    pub node: String,
    /// The directory the PV names, cleaned.
    pub path: String,
}

/// Everything the comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    /// The entries no PV references, including those listed but never pruned.
    pub orphans: Vec<Orphan>,
    /// Our PVs whose directory is not on their node.
    pub missing: Vec<MissingDirectory>,
    /// Entries that would be listed but were modified within `--older-than`, so not judged.
    pub too_young: usize,
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

/// Whether clean path `inner` is `outer` or lies below it.
fn at_or_inside(inner: &str, outer: &str) -> bool {
    inner == outer || path::is_inside(inner, outer)
}

/// The paths of a node whose identity is known: its listed base paths and their entries.
fn anchors(scanned: &[Scanned], node: &str) -> Vec<(FileId, String)> {
    let mut out = Vec::new();
    for scan in scanned.iter().filter(|s| s.node == node) {
        let Listing::Listed { id, entries } = &scan.listing else {
            continue;
        };
        let base = path::clean(&scan.base);
        if let Some(id) = id {
            out.push((*id, base.clone()));
        }
        for entry in entries {
            if let Some(id) = entry.id {
                let name = String::from_utf8_lossy(&entry.name);
                out.push((id, path::join(&base, &name)));
            }
        }
    }
    out
}

/// Whether the PV seen as `volume` keeps the entry at clean path `entry` (named `name` in base
/// path `base`) in use, by what the node said: the PV is at an anchor's path that overlaps the
/// entry, or lies at or inside an anchor's path that is the entry or below it, or was found
/// inside the entry.
fn in_use_on_node(
    entry: &str,
    base: &str,
    name: &[u8],
    volume: &SeenVolume,
    anchors: &[(FileId, String)],
) -> bool {
    let Located::Seen {
        path: own,
        ancestors,
        inside,
    } = &volume.located
    else {
        return false;
    };
    let is = |id: FileId| {
        anchors
            .iter()
            .filter(move |(a, _)| *a == id)
            .map(|(_, p)| p.as_str())
    };
    own.iter()
        .flat_map(|id| is(*id))
        .any(|at| path::overlaps(at, entry))
        || ancestors
            .iter()
            .flat_map(|id| is(*id))
            .any(|within| at_or_inside(within, entry))
        || inside.iter().any(|(b, n)| {
            let holder = path::clean(b);
            (holder == base && n == name) || at_or_inside(&holder, entry)
        })
}

/// Compares the inventories with the PVs. `nodes` holds what each node's inventory said about
/// its PVs; `pending` the uids of claims not yet bound (being provisioned); `claims` the uids of
/// every claim; entries modified after `cutoff` (seconds since the epoch) are too fresh to judge.
pub fn classify(
    scanned: &[Scanned],
    nodes: &[NodeVolumes],
    volumes: &[VolumeRecord],
    pending: &BTreeSet<String>,
    claims: &BTreeSet<String>,
    cutoff: i64,
) -> Findings {
    let mut findings = Findings::default();
    for scan in scanned {
        let Listing::Listed { id, entries } = &scan.listing else {
            continue;
        };
        let view = nodes.iter().find(|n| n.node == scan.node);
        let anchors = anchors(scanned, &scan.node);
        let hold = match view {
            None => Some("its node's PVs were not looked at".to_owned()),
            Some(_) if id.is_none() => Some("its base path's identity cannot be read".to_owned()),
            Some(view) => view.held(),
        };
        for entry in entries {
            let judged = judge(
                scan, entry, view, &anchors, &hold, volumes, pending, claims, cutoff,
            );
            if let Some(orphan) = judged {
                findings.orphans.push(orphan);
            } else if entry.modified > cutoff
                && judge(
                    scan,
                    entry,
                    view,
                    &anchors,
                    &hold,
                    volumes,
                    pending,
                    claims,
                    i64::MAX,
                )
                .is_some()
            {
                // Counted, so that "none found" can say how many were not judged yet.
                findings.too_young += 1;
            }
        }
    }
    findings.missing = missing(scanned, volumes);
    findings
}

#[allow(clippy::too_many_arguments)]
fn judge(
    scan: &Scanned,
    entry: &Entry,
    view: Option<&NodeVolumes>,
    anchors: &[(FileId, String)],
    hold: &Option<String>,
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
    let base = path::clean(&scan.base);
    if view.is_some_and(|view| {
        view.volumes
            .iter()
            .any(|v| in_use_on_node(&entry_path, &base, &entry.name, v, anchors))
    }) {
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
    let held = match (prunable, hold, entry.id) {
        (false, _, _) => None,
        (true, Some(why), _) => Some(why.clone()),
        (true, None, None) => Some("its identity cannot be read".to_owned()),
        (true, None, Some(_)) => None,
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
        prunable: prunable && held.is_none(),
        held,
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
                && matches!(s.listing, Listing::Listed { .. })
        });
        let Some(scan) = listed else { continue };
        let Listing::Listed { entries, .. } = &scan.listing else {
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

    fn id(ino: u64) -> FileId {
        FileId { dev: 1, ino }
    }

    fn dir(name: &str, children: u64) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind: EntryKind::Directory,
            size_bytes: 4096,
            modified: 100,
            children,
            id: Some(id(1000 + name.len() as u64 + u64::from(name.as_bytes()[0]))),
        }
    }

    fn scan(entries: Vec<Entry>) -> Scanned {
        Scanned {
            node: "node-1".into(),
            base: "/opt/lp".into(),
            listing: Listing::Listed {
                id: Some(id(1)),
                entries,
            },
        }
    }

    /// An inventory of node-1 that saw `volumes`.
    fn seen(volumes: Vec<SeenVolume>) -> Vec<NodeVolumes> {
        vec![NodeVolumes {
            node: "node-1".into(),
            volumes,
            hold: None,
        }]
    }

    /// What [`classify`] finds when node-1's inventory saw `volumes`, no claim is pending or
    /// known, and entries up to time 1000 are old enough to judge.
    fn settled(
        scanned: &[Scanned],
        volumes: Vec<SeenVolume>,
        records: &[VolumeRecord],
    ) -> Findings {
        classify(
            scanned,
            &seen(volumes),
            records,
            &BTreeSet::new(),
            &BTreeSet::new(),
            1000,
        )
    }

    fn at(name: &str, path: &str, located: Located) -> SeenVolume {
        SeenVolume {
            name: name.into(),
            path: path.into(),
            located,
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
        let found = classify(
            &scanned,
            &seen(vec![]),
            &[],
            &BTreeSet::new(),
            &claims,
            1000,
        );
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
            classify(&scanned, &seen(vec![]), &[], &pending, &pending, 1000)
                .orphans
                .is_empty()
        );
        assert!(
            classify(
                &scanned,
                &seen(vec![]),
                &[],
                &BTreeSet::new(),
                &BTreeSet::new(),
                50
            )
            .orphans
            .is_empty()
        );
    }

    #[test]
    fn nested_patterns_keep_their_parents_in_use() {
        let scanned = [scan(vec![dir("team-a", 1)])];
        let volumes = [pv("pvc-x", "/opt/lp/team-a/data-0", Some("node-2"))];
        let found = settled(&scanned, vec![], &volumes);
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
        let found = settled(&scanned, vec![], &volumes);
        assert_eq!(
            found.missing,
            vec![MissingDirectory {
                volume: "pvc-gone".into(),
                node: "node-1".into(),
                path: "/opt/lp/pvc-gone".into()
            }]
        );
    }

    #[test]
    fn a_volume_spelled_through_a_symlink_is_found_by_identity() {
        let gone = format!("pvc-{UID}_ns_gone");
        let aliased = format!("pvc-{UID}_ns_aliased");
        let deep = "1b6c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21";
        let deep = format!("pvc-{deep}_ns_deep");
        let entries = vec![dir(&gone, 1), dir(&aliased, 1), dir(&deep, 1), dir("x", 0)];
        let aliased_id = entries[1].id.unwrap();
        let deep_id = entries[2].id.unwrap();
        let scanned = [scan(entries)];
        let volumes = [
            // `/alias` → the base: the PV's parent is the base, the PV is the entry.
            at(
                "pv-1",
                &format!("/alias/{aliased}"),
                Located::Seen {
                    path: Some(aliased_id),
                    ancestors: vec![id(1)],
                    inside: vec![],
                },
            ),
            // Deep inside an entry: the search found its parent there.
            at(
                "pv-2",
                "/srv/link/data",
                Located::Seen {
                    path: Some(id(77)),
                    ancestors: vec![id(76)],
                    inside: vec![("/opt/lp".into(), deep.as_bytes().to_vec())],
                },
            ),
            // Missing, but its parent is the entry `x`... which it keeps in use.
            at(
                "pv-3",
                "/elsewhere/new",
                Located::Seen {
                    path: None,
                    ancestors: vec![dir("x", 0).id.unwrap()],
                    inside: vec![],
                },
            ),
        ];
        let records: Vec<VolumeRecord> = volumes
            .iter()
            .map(|v| pv(&v.name, &v.path, Some("node-1")))
            .collect();
        let found = settled(&scanned, volumes.to_vec(), &records);
        let names: Vec<(&str, bool)> = found
            .orphans
            .iter()
            .map(|o| (o.name.as_str(), o.prunable))
            .collect();
        assert_eq!(names, vec![(gone.as_str(), true)]);
        let _ = deep_id;

        // A PV that is the base itself (by identity) keeps every entry in use.
        let whole = [at(
            "pv-4",
            "/mnt/everything",
            Located::Seen {
                path: Some(id(1)),
                ancestors: vec![id(50)],
                inside: vec![],
            },
        )];
        let found = settled(
            &scanned,
            whole.to_vec(),
            &[pv("pv-4", "/mnt/everything", Some("node-1"))],
        );
        assert!(found.orphans.is_empty(), "{found:?}");
    }

    #[test]
    fn a_volume_that_cannot_be_located_holds_its_node() {
        let gone = format!("pvc-{UID}_ns_gone");
        let scanned = [scan(vec![dir(&gone, 1), dir("backup", 2)])];
        let unknown = [at(
            "pv-1",
            "/srv/current",
            Located::Unknown("a symlink on its path".into()),
        )];
        let found = settled(&scanned, unknown.to_vec(), &[]);
        let orphan = &found.orphans[0];
        assert_eq!(
            orphan.reason,
            Reason::VolumeDeleted,
            "still listed, with its reason"
        );
        assert!(!orphan.prunable);
        assert!(
            orphan
                .held
                .as_deref()
                .unwrap()
                .contains("pv-1 (/srv/current): a symlink"),
            "{orphan:?}"
        );
        assert_eq!(found.orphans[1].held, None, "never prunable anyway");

        let other_node = classify(
            &[Scanned {
                node: "node-2".into(),
                ..scanned[0].clone()
            }],
            &[
                NodeVolumes {
                    node: "node-2".into(),
                    volumes: vec![],
                    hold: None,
                },
                seen(unknown.to_vec()).remove(0),
            ],
            &[],
            &BTreeSet::new(),
            &BTreeSet::new(),
            1000,
        );
        assert!(other_node.orphans[0].prunable, "only its node is held");

        let unread = Entry {
            id: None,
            ..dir(&gone, 1)
        };
        let found = settled(&[scan(vec![unread])], vec![], &[]);
        assert!(!found.orphans[0].prunable, "no identity, no prune");
    }

    #[test]
    fn a_base_path_inside_an_entry_of_another_keeps_that_entry() {
        // Base /opt/lp/fast/inner sits inside entry `fast` of /opt/lp; a PV spelled through an
        // alias lies in it.
        let mut scanned = vec![scan(vec![dir("fast", 1)])];
        scanned.push(Scanned {
            node: "node-1".into(),
            base: "/opt/lp/fast/inner".into(),
            listing: Listing::Listed {
                id: Some(id(9)),
                entries: vec![],
            },
        });
        let volumes = [at(
            "pv-1",
            "/alias/pvc-x",
            Located::Seen {
                path: Some(id(10)),
                ancestors: vec![id(9)],
                inside: vec![],
            },
        )];
        let found = settled(&scanned, volumes.to_vec(), &[]);
        assert!(found.orphans.is_empty(), "{found:?}");
    }

    /// A layout on this machine's disk, inventoried by the real script: symlinks, placed
    /// anywhere, point (relatively) at directories anywhere; PV paths are spelled through them.
    mod layouts {
        use super::*;
        use crate::gc::inventory::here;
        use std::path::{Path, PathBuf};

        const ENTRIES: [&str; 4] = [
            "pvc-0b6c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21_ns_a",
            "pvc-1b6c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21",
            "team",
            "empty",
        ];

        /// Where a symlink may sit, and where one may point: the node root `T`, the base
        /// `T/n/base`, its entries and their subdirectories, and a directory outside.
        fn places() -> Vec<&'static str> {
            let mut out = vec!["", "n", "n/base", "ext", "ext/d"];
            for e in ENTRIES {
                out.push(Box::leak(format!("n/base/{e}").into_boxed_str()));
                out.push(Box::leak(format!("n/base/{e}/s").into_boxed_str()));
                out.push(Box::leak(format!("n/base/{e}/s/t").into_boxed_str()));
            }
            out
        }

        fn relative(from_dir: &Path, to: &Path) -> PathBuf {
            let from: Vec<_> = from_dir.components().collect();
            let to_c: Vec<_> = to.components().collect();
            let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
            let mut out = PathBuf::new();
            for _ in common..from.len() {
                out.push("..");
            }
            for c in &to_c[common..] {
                out.push(c);
            }
            if out.as_os_str().is_empty() {
                out.push(".");
            }
            out
        }

        /// Where `path` really is: the real path of its nearest existing ancestor, and the rest.
        fn real(path: &Path) -> String {
            let mut p = path.to_path_buf();
            let mut rest = Vec::new();
            while !p.exists() {
                rest.push(p.file_name().unwrap().to_owned());
                p.pop();
            }
            let mut real = p.canonicalize().unwrap();
            for r in rest.iter().rev() {
                real.push(r);
            }
            real.display().to_string()
        }

        #[derive(Debug, Clone)]
        struct Layout {
            /// Per entry: absent, or present with a subtree depth 0..=2.
            entries: Vec<Option<usize>>,
            /// (where, named, points at): where indexes `OUTSIDE` (weighted) then `places()`.
            links: Vec<(usize, usize, usize)>,
            /// PV spellings: a start (mostly a link that was made), then names.
            volumes: Vec<(usize, Vec<usize>)>,
        }

        const OUTSIDE: [&str; 4] = ["", "n", "ext", "ext/d"];
        const LINKS: [&str; 3] = ["l0", "l1", "l2"];
        const NAMES: [&str; 8] = [
            ENTRIES[0], ENTRIES[1], ENTRIES[2], ENTRIES[3], "s", "t", "x", "base",
        ];

        fn layouts() -> impl Strategy<Value = Layout> {
            let n = places().len();
            (
                proptest::collection::vec(proptest::option::of(0usize..3), 4),
                proptest::collection::vec(
                    (0..OUTSIDE.len() * 3 + n, 0..LINKS.len(), 0..n + 6),
                    1..5,
                ),
                proptest::collection::vec(
                    (0usize..8, proptest::collection::vec(0..NAMES.len(), 0..3)),
                    1..5,
                ),
            )
                .prop_map(|(entries, links, volumes)| Layout {
                    entries,
                    links,
                    volumes,
                })
        }

        /// A layout made on disk: its directory (removed on drop), the base path, and the PV
        /// paths with where each really is (taken before anything is pruned).
        struct Made {
            _tmp: tempfile::TempDir,
            base: String,
            paths: Vec<String>,
            real: Vec<String>,
        }

        fn make(layout: &Layout) -> Made {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().canonicalize().unwrap();
            let places = places();
            std::fs::create_dir_all(root.join("ext/d")).unwrap();
            std::fs::create_dir_all(root.join("n/base")).unwrap();
            for (e, depth) in ENTRIES.iter().zip(&layout.entries) {
                let Some(depth) = depth else { continue };
                let mut d = root.join("n/base").join(e);
                for part in ["s", "t"].iter().take(*depth) {
                    d.push(part);
                }
                std::fs::create_dir_all(&d).unwrap();
            }
            let mut made: Vec<PathBuf> = Vec::new();
            for (at, name, to) in &layout.links {
                let at = match OUTSIDE.get(at / 3) {
                    Some(outside) => outside,
                    None => places[at - OUTSIDE.len() * 3],
                };
                let dir = root.join(at);
                // A third of the links point at the base path itself, or at its parent.
                let target = match places.get(*to) {
                    Some(place) => root.join(place),
                    None if to % 2 == 0 => root.join("n/base"),
                    None => root.join("n"),
                };
                let link = dir.join(LINKS[*name]);
                if dir.is_dir() && target.is_dir() && link.symlink_metadata().is_err() {
                    std::os::unix::fs::symlink(relative(&dir, &target), &link).unwrap();
                    made.push(link);
                }
            }
            let paths: Vec<String> = layout
                .volumes
                .iter()
                .map(|(start, names)| {
                    // Most spellings start at a symlink that was made.
                    let mut p = match made.len() {
                        n if n > 0 && *start < 6 => made[start % n].clone(),
                        _ => root.join(OUTSIDE[start % OUTSIDE.len()]),
                    };
                    for n in names {
                        p.push(NAMES[*n]);
                    }
                    p.display().to_string()
                })
                .collect();
            let real = paths.iter().map(|p| real(Path::new(p))).collect();
            Made {
                base: root.join("n/base").display().to_string(),
                _tmp: tmp,
                paths,
                real,
            }
        }

        fn records(paths: &[String]) -> Vec<VolumeRecord> {
            paths
                .iter()
                .enumerate()
                .map(|(i, p)| VolumeRecord {
                    name: format!("pv-{i}"),
                    path: p.clone(),
                    node: Some("node-1".into()),
                    ours: true,
                })
                .collect()
        }

        /// Whether a PV that really is at `real_volume` uses the entry at `entry`, as far as gc
        /// claims to see it: not a PV whose real path strictly contains the base path.
        fn really_used(entry: &str, base: &str, real_volume: &str) -> bool {
            let (real_entry, real_base) = (real(Path::new(entry)), real(Path::new(base)));
            !path::is_inside(&real_base, real_volume) && path::overlaps(&real_entry, real_volume)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Whatever the symlinks, no entry a PV references — by its path as written, or
            /// where it really is (at, inside or around the entry) — is ever prunable. (Not
            /// covered, and documented: a PV whose real path strictly contains the base path.)
            #[test]
            fn no_entry_a_volume_really_uses_is_prunable(layout in layouts()) {
                let made = make(&layout);
                let records = records(&made.paths);
                let refs: Vec<&VolumeRecord> = records.iter().collect();
                let bases = [made.base.clone()];
                let (plan, inventory) = here::inventory(&bases, &made.paths);
                let (scanned, view) = node_view("node-1", &bases, &refs, &plan, inventory);
                let found = classify(&scanned, &[view], &records, &BTreeSet::new(), &BTreeSet::new(), i64::MAX);
                for orphan in found.orphans.iter().filter(|o| o.prunable) {
                    for (v, real_volume) in records.iter().zip(&made.real) {
                        prop_assert!(!in_use(&orphan.path, &v.path), "{} by path {}", orphan.path, v.path);
                        prop_assert!(
                            !really_used(&orphan.path, &made.base, real_volume),
                            "{} is prunable though PV {} ({}) really is {real_volume}; layout {:?}",
                            orphan.path, v.name, v.path, layout
                        );
                    }
                }
            }

            /// The same for the prune script's own check on the node: given every directory of
            /// the base path that no PV names as written (what the fresh PV list leaves), it
            /// removes none that a PV really uses.
            #[test]
            fn the_prune_script_removes_no_directory_a_volume_really_uses(layout in layouts()) {
                use crate::gc::prune::{Outcome, SCRIPT, parse_outcomes};
                let made = make(&layout);
                let targets: Vec<String> = ENTRIES
                    .iter()
                    .map(|e| format!("{}/{e}", made.base))
                    .filter(|t| Path::new(t).is_dir() && !Path::new(t).is_symlink())
                    .filter(|t| made.paths.iter().all(|p| !in_use(t, p)))
                    .collect();
                let used: Vec<bool> = targets
                    .iter()
                    .map(|t| made.real.iter().any(|r| really_used(t, &made.base, r)))
                    .collect();
                let plan = crate::gc::inventory::plan(std::slice::from_ref(&made.base), &made.paths);
                let mut args = vec![made.paths.len().to_string()];
                args.extend(here::volume_args(&plan));
                for t in &targets {
                    let name = t.rsplit('/').next().unwrap().to_owned();
                    args.extend(["delete".to_owned(), made.base.clone(), name]);
                }
                let outcomes = parse_outcomes(&here::sh(SCRIPT, "prune", &args), targets.len());
                for ((t, used), outcome) in targets.iter().zip(&used).zip(&outcomes) {
                    prop_assert!(
                        !(*used && *outcome == Outcome::Done),
                        "{t} was removed though a PV really uses it; layout {:?}, PVs {:?}",
                        layout, made.paths
                    );
                    prop_assert!(matches!(outcome, Outcome::Done | Outcome::InUse), "{t}: {outcome:?}");
                }
            }
        }
    }

    #[test]
    fn names_are_shown_on_one_line_and_unambiguously() {
        assert_eq!(shown("plain name/é"), "plain name/é");
        assert_eq!(shown("a\nb\tc\\d\r"), "a\\nb\\tc\\\\d\\r");
        assert_eq!(shown("x\u{1}\u{7f}\u{85}"), "x\\001\\177\\302\\205");
        assert_eq!(shown("evil\u{202e}txt"), "evil\\342\\200\\256txt");
        assert_ne!(shown("\\n"), shown("\n"), "a backslash is escaped too");
        assert_ne!(shown("\\001"), shown("\u{1}"));
    }

    proptest! {
        #[test]
        fn a_shown_name_has_no_control_character(a in any::<String>()) {
            prop_assert!(!shown(&a).chars().any(char::is_control));
        }
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
            let found = settled(&[scan(entries)], vec![], &records);
            for orphan in &found.orphans {
                for v in &records {
                    prop_assert!(!in_use(&orphan.path, &v.path), "{} listed though {} uses {}", orphan.path, v.name, v.path);
                }
            }
        }
    }
}
