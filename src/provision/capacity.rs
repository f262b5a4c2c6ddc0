//! Which base path of a node a volume goes to, knowing the node's disks: the class's
//! `pathSelection` (`mostFree`, the default; `roundRobin`; `random`, upstream's), its budget
//! (`capacityBudget: "true"`, optional `overcommit`) and the mount guard of each path
//! (`pathOptions` in `config.json`). Pure: the controller hands in what was last measured on
//! the node ([`NodeCapacity`]) and the volumes already there.
//!
//! # The budget
//!
//! A path's *room* is what it has available times the overcommit factor, less what the volumes
//! already placed there were promised and do not use yet (each volume's request minus its
//! measured usage, never below zero; a volume not measured yet counts its whole request). With
//! a budget, a claim goes only to a path whose room is at least its request; so on one
//! measurement, the requests placed never add up to more than available × overcommit.
//! Without a budget, nothing is refused: the room only orders the paths for `mostFree`.

use std::collections::BTreeMap;

use k8s_openapi::api::storage::v1::StorageClass;

use crate::config::{PathOptions, path};
use crate::ui::bytes;

/// The class parameter choosing among a node's base paths.
pub const PATH_SELECTION: &str = "pathSelection";
/// The class parameter turning the budget on (`"true"`).
pub const CAPACITY_BUDGET: &str = "capacityBudget";
/// The class parameter multiplying what a path has available (`"1.5"`), with a budget.
pub const OVERCOMMIT: &str = "overcommit";

/// What was measured of a base path on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathUsage {
    /// The size of its filesystem.
    pub capacity_bytes: u64,
    /// What its filesystem has in use.
    pub used_bytes: u64,
    /// What its filesystem has available to users.
    pub available_bytes: u64,
    /// Its filesystem type (`ext4`, `xfs`), when known.
    pub fs_type: Option<String>,
    /// Whether it is a mount point of its own, when known.
    pub mount_point: Option<bool>,
}

/// A volume already on the node: its directory, what it asked for and what it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// Its directory on the node.
    pub path: String,
    /// Its PV's capacity.
    pub request_bytes: u64,
    /// Its directory's usage, when measured.
    pub used_bytes: Option<u64>,
}

/// What the decision knows of the selected node's disks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeCapacity {
    /// Its measured base paths (clean); a path absent here was not measured.
    pub paths: BTreeMap<String, PathUsage>,
    /// The volumes on the node (any provisioner).
    pub placed: Vec<Placed>,
    /// Why there is no measurement (or no usable one) of the node, for messages.
    pub unmeasured: Option<String>,
}

/// How a node's base path is chosen (class parameter `pathSelection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSelection {
    /// The path with the most room that fits the request (the default).
    MostFree,
    /// The paths in turn: the count of volumes already on them, modulo their number.
    RoundRobin,
    /// Any path, at random (upstream's behaviour).
    Random,
}

impl PathSelection {
    /// The class's choice, or why its parameter cannot be read.
    pub fn of_class(class: &StorageClass) -> Result<PathSelection, String> {
        let Some(text) = parameter(class, PATH_SELECTION) else {
            return Ok(PathSelection::MostFree);
        };
        match text.to_ascii_lowercase().as_str() {
            "mostfree" => Ok(PathSelection::MostFree),
            "roundrobin" => Ok(PathSelection::RoundRobin),
            "random" => Ok(PathSelection::Random),
            _ => Err(format!(
                "StorageClass parameter {PATH_SELECTION} {text:?} is not known: use mostFree (the default), roundRobin or random"
            )),
        }
    }

    /// The spelling of the parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            PathSelection::MostFree => "mostFree",
            PathSelection::RoundRobin => "roundRobin",
            PathSelection::Random => "random",
        }
    }
}

/// A class's budget: claims must fit what their path has available, times `overcommit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// What a path's available space is multiplied by (1 unless the class says).
    pub overcommit: f64,
}

impl Budget {
    /// The class's budget (`None` when it has none), or why its parameters cannot be read.
    pub fn of_class(class: &StorageClass) -> Result<Option<Budget>, String> {
        let on = match parameter(class, CAPACITY_BUDGET) {
            None => false,
            Some(text) => super::volume::go_parse_bool(text).ok_or_else(|| {
                format!("StorageClass parameter {CAPACITY_BUDGET} {text:?} is not a boolean: use \"true\" or \"false\"")
            })?,
        };
        let overcommit = match parameter(class, OVERCOMMIT) {
            None => 1.0,
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f > 0.0 && *f <= 100.0)
                .ok_or_else(|| {
                    format!("StorageClass parameter {OVERCOMMIT} {text:?} is not a factor: use a number above 0 and at most 100, such as \"1.5\"")
                })?,
        };
        Ok(on.then_some(Budget { overcommit }))
    }
}

/// A class parameter that is set (an empty one is unset).
fn parameter<'a>(class: &'a StorageClass, key: &str) -> Option<&'a str> {
    super::volume::class_parameter(class, key).filter(|v| !v.is_empty())
}

/// Whether a class needs to know the node's disks to place a volume among `paths`.
pub fn needs_usage(
    class: &StorageClass,
    paths: &[String],
    guards: &BTreeMap<String, PathOptions>,
) -> bool {
    let guarded = paths
        .iter()
        .any(|p| guards.get(p).is_some_and(PathOptions::guards));
    let budget = Budget::of_class(class).ok().flatten().is_some();
    let most_free =
        paths.len() > 1 && PathSelection::of_class(class) == Ok(PathSelection::MostFree);
    guarded || budget || most_free
}

/// Whether `fs_type` (as `df -T` prints it) is one of `wanted` (lower case).
pub fn fs_type_matches(fs_type: &str, wanted: &[String]) -> bool {
    let fs_type = fs_type.to_ascii_lowercase();
    wanted.contains(&fs_type)
}

/// Why `path` on `node` fails its mount guard, or `Ok` when it passes (or has none). A path
/// that was not measured, or whose answer is unknown, fails a guard that asks about it.
pub fn guard(
    node: &str,
    path: &str,
    options: Option<&PathOptions>,
    usage: Option<&PathUsage>,
    unmeasured: Option<&str>,
) -> Result<(), String> {
    let Some(options) = options.filter(|o| o.guards()) else {
        return Ok(());
    };
    let Some(usage) = usage else {
        return Err(format!(
            "{node}:{path} has a mount guard (pathOptions) and was not measured{}",
            unmeasured.map(|w| format!(": {w}")).unwrap_or_default()
        ));
    };
    if options.require_mount_point {
        match usage.mount_point {
            Some(true) => {}
            Some(false) => {
                return Err(format!(
                    "{node}:{path} is not a mount point of its own (pathOptions requireMountPoint): it is a directory of the filesystem mounted above it; is its disk mounted?"
                ));
            }
            None => {
                return Err(format!(
                    "{node}:{path} has requireMountPoint (pathOptions), and whether it is a mount point cannot be told"
                ));
            }
        }
    }
    if !options.fs_types.is_empty() {
        match usage.fs_type.as_deref() {
            Some(t) if fs_type_matches(t, &options.fs_types) => {}
            Some(t) => {
                return Err(format!(
                    "{node}:{path} is on a {t} filesystem, not one of {} (pathOptions fsTypes)",
                    options.fs_types.join(", ")
                ));
            }
            None => {
                return Err(format!(
                    "{node}:{path} has fsTypes (pathOptions), and its filesystem type cannot be told"
                ));
            }
        }
    }
    Ok(())
}

/// What a path can still take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// What it has available.
    pub available: u64,
    /// `available` times the overcommit factor.
    pub allowed: u64,
    /// What the volumes there were promised and do not use yet.
    pub promised: u64,
    /// How many volumes are there.
    pub volumes: usize,
    /// `allowed` less `promised` (never below zero).
    pub left: u64,
}

/// The room of `path` given its measurement and the volumes on the node.
pub fn room(path: &str, usage: &PathUsage, placed: &[Placed], overcommit: f64) -> Room {
    let inside: Vec<&Placed> = placed
        .iter()
        .filter(|v| path::is_inside(&v.path, path))
        .collect();
    let promised = inside.iter().fold(0u64, |sum, v| {
        sum.saturating_add(v.request_bytes.saturating_sub(v.used_bytes.unwrap_or(0)))
    });
    let allowed = scale(usage.available_bytes, overcommit);
    Room {
        available: usage.available_bytes,
        allowed,
        promised,
        volumes: inside.len(),
        left: allowed.saturating_sub(promised),
    }
}

/// `n` times `factor`, rounded down, saturating.
fn scale(n: u64, factor: f64) -> u64 {
    if factor == 1.0 {
        return n;
    }
    let scaled = n as f64 * factor;
    if scaled >= u64::MAX as f64 {
        u64::MAX
    } else if scaled <= 0.0 {
        0
    } else {
        scaled as u64
    }
}

/// How a path was chosen, or why the node cannot take the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// This path; `how` says why (for the debug log).
    Chosen {
        /// The chosen base path.
        path: String,
        /// Why it was chosen.
        how: String,
    },
    /// None of the node's paths can take it: the node cannot host the claim.
    Unfit(String),
}

/// Everything [`choose`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The node.
    pub node: &'a str,
    /// Its base paths the volume may use, in config order (one when `nodePath` names it).
    pub candidates: &'a [String],
    /// The claim's request in bytes.
    pub size: u64,
    /// The class's `pathSelection`.
    pub selection: PathSelection,
    /// The class's budget.
    pub budget: Option<Budget>,
    /// The mount guards (`pathOptions`).
    pub guards: &'a BTreeMap<String, PathOptions>,
    /// What is known of the node's disks.
    pub capacity: Option<&'a NodeCapacity>,
    /// A random number, for `random`.
    pub choice: u64,
}

/// Chooses the base path for a volume of `ask.size` bytes among `ask.candidates`.
pub fn choose(ask: &Ask<'_>) -> Choice {
    let node = ask.node;
    let measured = |p: &str| ask.capacity.and_then(|c| c.paths.get(p));
    let unmeasured = ask.capacity.and_then(|c| c.unmeasured.as_deref());
    let placed: &[Placed] = ask.capacity.map_or(&[], |c| c.placed.as_slice());
    let mut refused = Vec::new();
    let mut usable: Vec<&String> = Vec::new();
    for p in ask.candidates {
        match guard(node, p, ask.guards.get(p), measured(p), unmeasured) {
            Ok(()) => usable.push(p),
            Err(why) => refused.push(why),
        }
    }
    if usable.is_empty() {
        return Choice::Unfit(refused.join("; "));
    }
    let overcommit = ask.budget.map_or(1.0, |b| b.overcommit);
    let rooms: Vec<(&String, Option<Room>)> = usable
        .iter()
        .map(|p| (*p, measured(p).map(|u| room(p, u, placed, overcommit))))
        .collect();
    if let Some(budget) = ask.budget {
        let mut short = Vec::new();
        let mut fitting = Vec::new();
        for (p, r) in &rooms {
            match r {
                Some(r) if r.left >= ask.size => fitting.push((*p, Some(*r))),
                Some(r) => short.push(describe(p, r, budget.overcommit)),
                None => short.push(format!(
                    "{p} was not measured{}",
                    unmeasured.map(|w| format!(" ({w})")).unwrap_or_default()
                )),
            }
        }
        if fitting.is_empty() {
            let mut why = format!(
                "no room for {} on {node} (capacityBudget): {}",
                bytes(ask.size),
                short.join("; ")
            );
            if !refused.is_empty() {
                why.push_str(&format!("; {}", refused.join("; ")));
            }
            return Choice::Unfit(why);
        }
        return pick(ask, &fitting, placed);
    }
    pick(ask, &rooms, placed)
}

/// "/a has 1.0GiB available (× 1.5 = 1.5GiB), 600MiB of it promised to 2 volumes there"
fn describe(path: &str, r: &Room, overcommit: f64) -> String {
    let mut text = format!("{path} has {} available", bytes(r.available));
    if overcommit != 1.0 {
        text.push_str(&format!(
            " (× overcommit {overcommit} = {})",
            bytes(r.allowed)
        ));
    }
    if r.promised > 0 {
        text.push_str(&format!(
            ", {} of it promised to the {} volume(s) there",
            bytes(r.promised),
            r.volumes
        ));
    }
    text
}

/// Picks among paths that may all be used, as the class's selection says.
fn pick(ask: &Ask<'_>, paths: &[(&String, Option<Room>)], placed: &[Placed]) -> Choice {
    let count = paths.len() as u64;
    let at = |i: u64| -> &String { paths[usize::try_from(i % count).unwrap_or(0)].0 };
    match ask.selection {
        PathSelection::Random => Choice::Chosen {
            path: at(ask.choice).clone(),
            how: format!("random among {count} path(s)"),
        },
        PathSelection::RoundRobin => {
            let there = placed
                .iter()
                .filter(|v| paths.iter().any(|(p, _)| path::is_inside(&v.path, p)))
                .count() as u64;
            Choice::Chosen {
                path: at(there).clone(),
                how: format!("roundRobin: {there} volume(s) on these {count} path(s)"),
            }
        }
        PathSelection::MostFree => {
            let measured: Vec<(&String, Room)> = paths
                .iter()
                .filter_map(|(p, r)| r.map(|r| (*p, r)))
                .collect();
            if measured.is_empty() {
                return Choice::Chosen {
                    path: at(ask.choice).clone(),
                    how: format!(
                        "mostFree without usage data{}: random among {count} path(s)",
                        ask.capacity
                            .and_then(|c| c.unmeasured.as_deref())
                            .map(|w| format!(" ({w})"))
                            .unwrap_or_default()
                    ),
                };
            }
            // The most room among those that fit; when none fits (no budget), the most room.
            let fits: Vec<&(&String, Room)> = measured
                .iter()
                .filter(|(_, r)| r.left >= ask.size)
                .collect();
            let pool: Vec<&(&String, Room)> = if fits.is_empty() {
                measured.iter().collect()
            } else {
                fits
            };
            let mut best = pool[0];
            for candidate in &pool[1..] {
                if candidate.1.left > best.1.left {
                    best = candidate;
                }
            }
            Choice::Chosen {
                path: best.0.clone(),
                how: format!("mostFree: {} left there, the most", bytes(best.1.left)),
            }
        }
    }
}

/// lpp's own provisioner name for capacity tracking: a CSIDriver must be named after the
/// provisioner and that name must be a DNS-1123 subdomain, which `rancher.io/local-path` (with
/// its slash) can never be.
pub const CAPACITY_PROVISIONER: &str = "local-path.lpp.dev";
/// The class `lpp install --capacity-tracking` creates for [`CAPACITY_PROVISIONER`].
pub const CAPACITY_CLASS: &str = "local-path-capacity";
/// The label on the CSIStorageCapacity objects lpp publishes, naming the class they are for.
pub const CAPACITY_FOR: &str = "lpp.dev/capacity-for";

/// Whether lpp can publish capacity for a provisioner name: a CSIDriver can carry it (no slash).
pub fn trackable(provisioner: &str) -> bool {
    !provisioner.is_empty() && !provisioner.contains('/')
}

/// What a node offers a class, as a CSIStorageCapacity says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// The room of its usable paths added up.
    pub capacity: u64,
    /// The most room of one path: the largest volume that fits.
    pub maximum_volume_size: u64,
}

/// What `node` offers a volume among `paths` (the class's base paths there): each path passing
/// its mount guard counts its room (as the budget computes it, with the class's overcommit).
/// `None` when none of them was measured.
pub fn offer(
    node: &str,
    paths: &[String],
    guards: &BTreeMap<String, PathOptions>,
    capacity: &NodeCapacity,
    overcommit: f64,
) -> Option<Offer> {
    let rooms: Vec<u64> = paths
        .iter()
        .filter_map(|p| {
            let usage = capacity.paths.get(p)?;
            guard(node, p, guards.get(p), Some(usage), None).ok()?;
            Some(room(p, usage, &capacity.placed, overcommit).left)
        })
        .collect();
    let measured = paths.iter().any(|p| capacity.paths.contains_key(p));
    measured.then(|| Offer {
        capacity: rooms.iter().fold(0u64, |a, b| a.saturating_add(*b)),
        maximum_volume_size: rooms.iter().copied().max().unwrap_or(0),
    })
}

/// The name of the CSIStorageCapacity for `class` on `node`: `lpp-<class>-<node>` when that is
/// a valid name, else cut and made unique with a hash of both.
pub fn capacity_object_name(class: &str, node: &str) -> String {
    let name = format!("lpp-{class}-{node}");
    if name.len() <= 253 {
        return name;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in class.bytes().chain([0]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut cut = name[..236].trim_end_matches(['-', '.']).to_owned();
    cut.push_str(&format!("-{h:016x}"));
    cut
}

/// The CSIStorageCapacity lpp publishes for `class` on a node whose `key` label is `value`.
pub fn capacity_object(
    namespace: &str,
    class: &str,
    node: &str,
    (key, value): (&str, &str),
    offer: Offer,
) -> k8s_openapi::api::storage::v1::CSIStorageCapacity {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    k8s_openapi::api::storage::v1::CSIStorageCapacity {
        metadata: ObjectMeta {
            name: Some(capacity_object_name(class, node)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".to_owned(), "lpp".to_owned()),
                (CAPACITY_FOR.to_owned(), class.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        storage_class_name: class.to_owned(),
        node_topology: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
            ..LabelSelector::default()
        }),
        capacity: Some(Quantity(offer.capacity.to_string())),
        maximum_volume_size: Some(Quantity(offer.maximum_volume_size.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GI: u64 = 1 << 30;

    fn usage(available: u64) -> PathUsage {
        PathUsage {
            capacity_bytes: 100 * GI,
            used_bytes: 100 * GI - available,
            available_bytes: available,
            fs_type: Some("ext4".into()),
            mount_point: Some(true),
        }
    }

    fn paths() -> Vec<String> {
        vec!["/a".into(), "/b".into(), "/c".into()]
    }

    fn ask<'a>(
        candidates: &'a [String],
        size: u64,
        selection: PathSelection,
        budget: Option<Budget>,
        guards: &'a BTreeMap<String, PathOptions>,
        capacity: Option<&'a NodeCapacity>,
    ) -> Ask<'a> {
        Ask {
            node: "node-1",
            candidates,
            size,
            selection,
            budget,
            guards,
            capacity,
            choice: 7,
        }
    }

    fn chosen(c: Choice) -> String {
        match c {
            Choice::Chosen { path, .. } => path,
            Choice::Unfit(why) => panic!("unfit: {why}"),
        }
    }

    fn class(params: &[(&str, &str)]) -> StorageClass {
        StorageClass {
            parameters: Some(
                params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..StorageClass::default()
        }
    }

    #[test]
    fn class_parameters_read_with_defaults_and_clear_errors() {
        assert_eq!(
            PathSelection::of_class(&class(&[])),
            Ok(PathSelection::MostFree)
        );
        assert_eq!(
            PathSelection::of_class(&class(&[("pathSelection", "RoundRobin")])),
            Ok(PathSelection::RoundRobin)
        );
        assert!(
            PathSelection::of_class(&class(&[("pathSelection", "biggest")]))
                .unwrap_err()
                .contains("mostFree")
        );
        assert_eq!(Budget::of_class(&class(&[])), Ok(None));
        assert_eq!(
            Budget::of_class(&class(&[("capacityBudget", "true"), ("overcommit", "1.5")])),
            Ok(Some(Budget { overcommit: 1.5 }))
        );
        assert_eq!(
            Budget::of_class(&class(&[("capacityBudget", "false"), ("overcommit", "2")])),
            Ok(None)
        );
        assert!(Budget::of_class(&class(&[("capacityBudget", "yes")])).is_err());
        assert!(
            Budget::of_class(&class(&[("capacityBudget", "true"), ("overcommit", "-1")])).is_err()
        );
    }

    #[test]
    fn most_free_takes_the_path_with_the_most_room_left() {
        let capacity = NodeCapacity {
            paths: BTreeMap::from([
                ("/a".into(), usage(10 * GI)),
                ("/b".into(), usage(30 * GI)),
                ("/c".into(), usage(25 * GI)),
            ]),
            // /b's room is cut by a volume promised 10Gi that uses 1Gi.
            placed: vec![Placed {
                path: "/b/pvc-1".into(),
                request_bytes: 10 * GI,
                used_bytes: Some(GI),
            }],
            unmeasured: None,
        };
        let guards = BTreeMap::new();
        let candidates = paths();
        let got = choose(&ask(
            &candidates,
            GI,
            PathSelection::MostFree,
            None,
            &guards,
            Some(&capacity),
        ));
        assert_eq!(chosen(got), "/c");
        // Without data: random, and said.
        match choose(&ask(
            &candidates,
            GI,
            PathSelection::MostFree,
            None,
            &guards,
            None,
        )) {
            Choice::Chosen { path, how } => {
                assert_eq!(path, "/b");
                assert!(how.contains("without usage data"), "{how}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn round_robin_and_random_spread_over_the_paths() {
        let guards = BTreeMap::new();
        let candidates = paths();
        let mut capacity = NodeCapacity::default();
        let mut seen = Vec::new();
        for i in 0..3 {
            let p = chosen(choose(&ask(
                &candidates,
                GI,
                PathSelection::RoundRobin,
                None,
                &guards,
                Some(&capacity),
            )));
            capacity.placed.push(Placed {
                path: format!("{p}/pvc-{i}"),
                request_bytes: GI,
                used_bytes: None,
            });
            seen.push(p);
        }
        assert_eq!(seen, ["/a", "/b", "/c"]);
        let random = chosen(choose(&ask(
            &candidates,
            GI,
            PathSelection::Random,
            None,
            &guards,
            None,
        )));
        assert_eq!(random, "/b", "7 % 3");
    }

    #[test]
    fn a_budget_refuses_what_does_not_fit_and_says_where_how_much_and_what_was_asked() {
        let capacity = NodeCapacity {
            paths: BTreeMap::from([("/a".into(), usage(GI))]),
            placed: vec![Placed {
                path: "/a/pvc-1".into(),
                request_bytes: 600 << 20,
                used_bytes: None,
            }],
            unmeasured: None,
        };
        let guards = BTreeMap::new();
        let only_a = vec!["/a".to_string()];
        let budget = Some(Budget { overcommit: 1.0 });
        match choose(&ask(
            &only_a,
            GI / 2,
            PathSelection::MostFree,
            budget,
            &guards,
            Some(&capacity),
        )) {
            Choice::Unfit(why) => assert_eq!(
                why,
                "no room for 512MiB on node-1 (capacityBudget): /a has 1.0GiB available, 600MiB of it promised to the 1 volume(s) there"
            ),
            other => panic!("{other:?}"),
        }
        // Overcommit makes room; without a budget nothing is refused.
        let over = Some(Budget { overcommit: 1.5 });
        assert_eq!(
            chosen(choose(&ask(
                &only_a,
                GI / 2,
                PathSelection::MostFree,
                over,
                &guards,
                Some(&capacity)
            ))),
            "/a"
        );
        assert_eq!(
            chosen(choose(&ask(
                &only_a,
                5 * GI,
                PathSelection::MostFree,
                None,
                &guards,
                Some(&capacity)
            ))),
            "/a"
        );
        // Not measured: a budget cannot be checked.
        match choose(&ask(
            &only_a,
            1,
            PathSelection::MostFree,
            budget,
            &guards,
            None,
        )) {
            Choice::Unfit(why) => assert!(why.contains("/a was not measured"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_mount_guard_keeps_paths_that_fail_it_out() {
        let mut not_mounted = usage(50 * GI);
        not_mounted.mount_point = Some(false);
        let mut xfs = usage(GI);
        xfs.fs_type = Some("xfs".into());
        let capacity = NodeCapacity {
            paths: BTreeMap::from([("/a".into(), not_mounted), ("/b".into(), xfs)]),
            placed: Vec::new(),
            unmeasured: None,
        };
        let guards = BTreeMap::from([
            (
                "/a".to_string(),
                PathOptions {
                    require_mount_point: true,
                    fs_types: Vec::new(),
                },
            ),
            (
                "/b".to_string(),
                PathOptions {
                    require_mount_point: true,
                    fs_types: vec!["xfs".into()],
                },
            ),
        ]);
        let two = vec!["/a".to_string(), "/b".to_string()];
        assert_eq!(
            chosen(choose(&ask(
                &two,
                GI,
                PathSelection::MostFree,
                None,
                &guards,
                Some(&capacity)
            ))),
            "/b",
            "/a has more room but is not mounted"
        );
        let only_a = vec!["/a".to_string()];
        match choose(&ask(
            &only_a,
            GI,
            PathSelection::MostFree,
            None,
            &guards,
            Some(&capacity),
        )) {
            Choice::Unfit(why) => assert!(
                why.contains("node-1:/a is not a mount point of its own"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        let ext4_only = BTreeMap::from([(
            "/b".to_string(),
            PathOptions {
                require_mount_point: false,
                fs_types: vec!["ext4".into()],
            },
        )]);
        let only_b = vec!["/b".to_string()];
        match choose(&ask(
            &only_b,
            1,
            PathSelection::Random,
            None,
            &ext4_only,
            Some(&capacity),
        )) {
            Choice::Unfit(why) => assert!(why.contains("on a xfs filesystem"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Unmeasured: a guard fails closed.
        assert!(guard("n", "/a", guards.get("/a"), None, Some("helper failed")).is_err());
        assert!(guard("n", "/x", None, None, None).is_ok());
    }

    proptest! {
        /// Whatever the measurement and the volumes already there, placing claims one after the
        /// other under a budget never promises a path more than available × overcommit.
        #[test]
        fn a_budget_never_places_more_than_available_times_overcommit(
            available in proptest::collection::vec(0u64..(64u64 << 30), 1..4),
            before in proptest::collection::vec((0usize..4, 0u64..(8u64 << 30), proptest::option::of(0u64..(8u64 << 30))), 0..6),
            asks in proptest::collection::vec(1u64..(16u64 << 30), 1..12),
            overcommit in prop_oneof![Just(1.0f64), 0.5f64..3.0],
            selection in prop_oneof![Just(PathSelection::MostFree), Just(PathSelection::RoundRobin), Just(PathSelection::Random)],
            choice in any::<u64>(),
        ) {
            let candidates: Vec<String> = (0..available.len()).map(|i| format!("/d{i}")).collect();
            let mut capacity = NodeCapacity {
                paths: candidates.iter().cloned().zip(available.iter().map(|a| usage(*a))).collect(),
                placed: before.iter().enumerate().map(|(k, (i, req, used))| Placed {
                    path: format!("/d{}/old-{k}", i % candidates.len()),
                    request_bytes: *req,
                    used_bytes: *used,
                }).collect(),
                unmeasured: None,
            };
            let guards = BTreeMap::new();
            let budget = Some(Budget { overcommit });
            let mut placed_now: BTreeMap<String, u64> = BTreeMap::new();
            for (n, size) in asks.iter().enumerate() {
                let got = choose(&Ask {
                    node: "n",
                    candidates: &candidates,
                    size: *size,
                    selection,
                    budget,
                    guards: &guards,
                    capacity: Some(&capacity),
                    choice: choice.wrapping_add(n as u64),
                });
                if let Choice::Chosen { path, .. } = got {
                    *placed_now.entry(path.clone()).or_default() += size;
                    capacity.placed.push(Placed { path: format!("{path}/new-{n}"), request_bytes: *size, used_bytes: None });
                }
            }
            for (i, p) in candidates.iter().enumerate() {
                let limit = scale(available[i], overcommit);
                let promised_before = room(p, &usage(available[i]), &capacity.placed[..before.len()], overcommit).promised;
                let now = placed_now.get(p).copied().unwrap_or(0);
                prop_assert!(now.saturating_add(promised_before) <= limit || now == 0,
                    "{p}: {now} placed + {promised_before} promised > {limit}");
                prop_assert!(now <= limit, "{p}: {now} placed > {limit}");
            }
        }
    }

    #[test]
    fn a_node_offers_the_room_of_its_usable_paths() {
        let mut capacity = NodeCapacity::default();
        capacity.paths.insert("/a".into(), usage(10 * GI));
        capacity.paths.insert("/b".into(), usage(4 * GI));
        capacity.placed.push(Placed {
            path: "/a/v".into(),
            request_bytes: 3 * GI,
            used_bytes: Some(GI),
        });
        let guards = BTreeMap::new();
        let paths = vec!["/a".to_owned(), "/b".to_owned(), "/c".to_owned()];
        let o = offer("node-1", &paths, &guards, &capacity, 1.0).unwrap();
        assert_eq!((o.capacity, o.maximum_volume_size), (12 * GI, 8 * GI));
        let guarded = BTreeMap::from([(
            "/a".to_owned(),
            PathOptions {
                require_mount_point: false,
                fs_types: vec!["xfs".into()],
            },
        )]);
        let o = offer("node-1", &paths, &guarded, &capacity, 1.0).unwrap();
        assert_eq!((o.capacity, o.maximum_volume_size), (4 * GI, 4 * GI));
        assert_eq!(
            offer("node-1", &["/c".to_owned()], &guards, &capacity, 1.0),
            None
        );
        let object = capacity_object(
            "ns",
            "local-path-capacity",
            "node-1",
            ("kubernetes.io/hostname", "node-1"),
            o,
        );
        assert_eq!(
            object.metadata.name.as_deref(),
            Some("lpp-local-path-capacity-node-1")
        );
        assert_eq!(object.maximum_volume_size.unwrap().0, (4 * GI).to_string());
        let long = capacity_object_name(&"c".repeat(200), &"n".repeat(200));
        assert!(long.len() <= 253, "{long}");
        assert_ne!(
            long,
            capacity_object_name(&"c".repeat(200), &"m".repeat(200))
        );
        assert!(trackable(CAPACITY_PROVISIONER) && !trackable("rancher.io/local-path"));
    }
}
