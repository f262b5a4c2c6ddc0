//! The PV controller's decisions, as a pure function of claims, volumes, classes and pods:
//! which claims to annotate for their external provisioner, which volume binds to which claim
//! (by `claimRef`, or a matching Available volume), the phases (Pending, Bound, Released,
//! Available, Lost), and the `kubernetes.io/pvc-protection` / `pv-protection` finalizers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::schedule::{SELECTED_NODE, binding_mode};

/// The annotation naming the provisioner that should provision a claim.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The same annotation under its older name, still set by real clusters.
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Set on a claim once its binding is complete.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on whichever side the controller (not the user) bound.
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Keeps a claim in use by a pod from disappearing.
pub const CLAIM_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// Keeps a bound volume from disappearing.
pub const VOLUME_PROTECTION: &str = "kubernetes.io/pv-protection";
/// The class provisioner that means "static volumes only".
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// One thing the PV controller does. Each becomes one request.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeAction {
    /// Set the claim's finalizers to this list.
    ClaimFinalizers {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        name: String,
        /// The whole new list.
        finalizers: Vec<String>,
    },
    /// Ask an external provisioner for a volume: the storage-provisioner annotations.
    AnnotateClaim {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        name: String,
        /// The class's provisioner.
        provisioner: String,
    },
    /// Complete a claim's side of a binding: `spec.volumeName`, the bind annotations and a
    /// Bound status with the volume's capacity and access modes.
    BindClaim {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        name: String,
        /// The volume.
        volume: String,
        /// The volume's capacity.
        capacity: Option<Quantity>,
        /// The volume's access modes.
        access_modes: Vec<String>,
    },
    /// Set a claim's phase.
    ClaimPhase {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        name: String,
        /// `Pending`, `Bound` or `Lost`.
        phase: String,
    },
    /// Point a volume at a claim (`spec.claimRef`, with the claim's uid).
    ClaimVolume {
        /// The volume.
        volume: String,
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        name: String,
        /// The claim's uid.
        uid: String,
    },
    /// Set a volume's phase.
    VolumePhase {
        /// The volume.
        volume: String,
        /// `Available`, `Bound` or `Released`.
        phase: String,
    },
    /// Tell the claim's owner what it waits for (a `Normal` event; the loop records each
    /// reason once per claim).
    ClaimEvent {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        name: String,
        /// The claim's uid.
        uid: String,
        /// `WaitForFirstConsumer` or `ExternalProvisioning`.
        reason: String,
        /// The message, as the real PV controller words it.
        message: String,
    },
    /// Set the volume's finalizers to this list.
    VolumeFinalizers {
        /// The volume.
        volume: String,
        /// The whole new list.
        finalizers: Vec<String>,
    },
}

/// The objects the PV controller reads.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    /// Every claim.
    pub claims: &'a [Arc<PersistentVolumeClaim>],
    /// Every volume.
    pub volumes: &'a [Arc<PersistentVolume>],
    /// Every class.
    pub classes: &'a [Arc<StorageClass>],
    /// `(namespace, claim)` of every claim a live pod uses (it keeps its protection
    /// finalizer); see [`claims_in_use`].
    pub in_use: &'a HashSet<(String, String)>,
}

/// The claims that pods not yet Succeeded or Failed use, as `(namespace, claim)`.
pub fn claims_in_use<'p>(pods: impl IntoIterator<Item = &'p Pod>) -> HashSet<(String, String)> {
    let mut in_use = HashSet::new();
    for p in pods {
        if matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        for v in p.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(c) = &v.persistent_volume_claim {
                in_use.insert((ns.clone(), c.claim_name.clone()));
            }
        }
    }
    in_use
}

/// Everything the PV controller should do now. Running it again on the result yields nothing
/// more once the world has caught up: each action is the difference to a desired state.
pub fn reconcile(world: World<'_>) -> Vec<VolumeAction> {
    let index = Index::new(world);
    let mut actions = Vec::new();
    // Volumes promised to a claim earlier in this pass: the real controller binds one claim at
    // a time and sees its own last binding in its cache (`storeObjectUpdate` after `bind` in
    // pkg/controller/volume/persistentvolume/pv_controller.go), so two claims never reach for
    // the same available volume.
    let mut promised: HashSet<&str> = HashSet::new();
    for claim in world.claims {
        reconcile_claim(claim, world, &index, &mut promised, &mut actions);
    }
    for volume in world.volumes {
        reconcile_volume(volume, &index, &mut actions);
    }
    actions
}

type ClaimKey<'a> = (&'a str, &'a str);

/// Lookups built once per pass, so a pass stays linear in the number of objects.
struct Index<'a> {
    volumes: HashMap<&'a str, &'a PersistentVolume>,
    volumes_by_claim: HashMap<ClaimKey<'a>, Vec<&'a PersistentVolume>>,
    claims: HashMap<ClaimKey<'a>, &'a PersistentVolumeClaim>,
    in_use: &'a HashSet<(String, String)>,
}

impl<'a> Index<'a> {
    fn new(world: World<'a>) -> Index<'a> {
        let mut index = Index {
            volumes: HashMap::new(),
            volumes_by_claim: HashMap::new(),
            claims: HashMap::new(),
            in_use: world.in_use,
        };
        for v in world.volumes {
            if let Some(name) = v.metadata.name.as_deref() {
                index.volumes.insert(name, v);
            }
            if let Some(r) = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref())
                && let (Some(ns), Some(name)) = (r.namespace.as_deref(), r.name.as_deref())
            {
                index
                    .volumes_by_claim
                    .entry((ns, name))
                    .or_default()
                    .push(v);
            }
        }
        for c in world.claims {
            if let (Some(ns), Some(name)) =
                (c.metadata.namespace.as_deref(), c.metadata.name.as_deref())
            {
                index.claims.insert((ns, name), c);
            }
        }
        index
    }
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn claim_ref_matches(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    let (ns, name) = name_of(&claim.metadata);
    r.namespace.as_deref() == Some(ns.as_str())
        && r.name.as_deref() == Some(name.as_str())
        && r.uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || Some(u) == claim.metadata.uid.as_deref())
}

fn volume_name(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty())
}

fn claim_phase(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn volume_phase(volume: &PersistentVolume) -> Option<&str> {
    volume.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn with_finalizer(list: &Option<Vec<String>>, f: &str, present: bool) -> Option<Vec<String>> {
    let current = list.clone().unwrap_or_default();
    let has = current.iter().any(|x| x == f);
    match (has, present) {
        (false, true) => {
            let mut next = current;
            next.push(f.to_string());
            Some(next)
        }
        (true, false) => Some(current.into_iter().filter(|x| x != f).collect()),
        _ => None,
    }
}

fn reconcile_claim<'a>(
    claim: &PersistentVolumeClaim,
    world: World<'a>,
    index: &Index<'_>,
    promised: &mut HashSet<&'a str>,
    out: &mut Vec<VolumeAction>,
) {
    let (namespace, name) = name_of(&claim.metadata);
    let deleting = claim.metadata.deletion_timestamp.is_some();
    // Protection: added while alive, dropped once deleting and no live pod uses it.
    let keep = !deleting || index.in_use.contains(&(namespace.clone(), name.clone()));
    if let Some(finalizers) = with_finalizer(&claim.metadata.finalizers, CLAIM_PROTECTION, keep) {
        out.push(VolumeAction::ClaimFinalizers {
            namespace: namespace.clone(),
            name: name.clone(),
            finalizers,
        });
    }
    let phase = claim_phase(claim);
    let set_phase = |p: &str, out: &mut Vec<VolumeAction>| {
        if phase != Some(p) {
            out.push(VolumeAction::ClaimPhase {
                namespace: namespace.clone(),
                name: name.clone(),
                phase: p.to_string(),
            });
        }
    };
    let bind = |volume: &PersistentVolume, out: &mut Vec<VolumeAction>| {
        let spec = volume.spec.clone().unwrap_or_default();
        out.push(VolumeAction::BindClaim {
            namespace: namespace.clone(),
            name: name.clone(),
            volume: volume.metadata.name.clone().unwrap_or_default(),
            capacity: spec.capacity.and_then(|c| c.get("storage").cloned()),
            access_modes: spec.access_modes.unwrap_or_default(),
        });
    };

    match volume_name(claim) {
        Some(vname) => {
            let volume = index.volumes.get(vname).copied();
            match volume {
                None if phase == Some("Bound") || phase == Some("Lost") => set_phase("Lost", out),
                None => set_phase("Pending", out),
                Some(v) => {
                    let claim_ref = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
                    if claim_ref.is_none() {
                        // Pre-bound by the user: the volume side follows.
                        out.push(VolumeAction::ClaimVolume {
                            volume: vname.to_string(),
                            namespace: namespace.clone(),
                            name: name.clone(),
                            uid: claim.metadata.uid.clone().unwrap_or_default(),
                        });
                        set_phase("Pending", out);
                    } else if claim_ref_matches(v, claim) {
                        if phase != Some("Bound")
                            || annotation(&claim.metadata, BIND_COMPLETED).is_none()
                        {
                            bind(v, out);
                        }
                    } else if phase == Some("Bound") || phase == Some("Lost") {
                        set_phase("Lost", out);
                    } else {
                        set_phase("Pending", out);
                    }
                }
            }
        }
        None => {
            if deleting {
                return;
            }
            // A volume already pointing at this claim (a provisioned one) binds first.
            if let Some(v) = index
                .volumes_by_claim
                .get(&(namespace.as_str(), name.as_str()))
                .into_iter()
                .flatten()
                .find(|v| claim_ref_matches(v, claim) && v.metadata.deletion_timestamp.is_none())
            {
                bind(v, out);
                return;
            }
            if let Some(v) = static_match(claim, world, promised) {
                if let Some(volume) = v.metadata.name.as_deref() {
                    promised.insert(volume);
                }
                out.push(VolumeAction::ClaimVolume {
                    volume: v.metadata.name.clone().unwrap_or_default(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid: claim.metadata.uid.clone().unwrap_or_default(),
                });
                set_phase("Pending", out);
                return;
            }
            set_phase("Pending", out);
            let class_name = claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref());
            let class = class_name.and_then(|n| {
                world
                    .classes
                    .iter()
                    .find(|c| c.metadata.name.as_deref() == Some(n))
            });
            let Some(class) = class else { return };
            if class.provisioner == NO_PROVISIONER || class.provisioner.is_empty() {
                return;
            }
            let delayed = binding_mode(claim, world.classes) == "WaitForFirstConsumer";
            let event = |reason: &str, message: String| VolumeAction::ClaimEvent {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: claim.metadata.uid.clone().unwrap_or_default(),
                reason: reason.to_string(),
                message,
            };
            if delayed && annotation(&claim.metadata, SELECTED_NODE).is_none() {
                out.push(event(
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding".to_string(),
                ));
                return;
            }
            if annotation(&claim.metadata, STORAGE_PROVISIONER) != Some(class.provisioner.as_str())
            {
                out.push(VolumeAction::AnnotateClaim {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    provisioner: class.provisioner.clone(),
                });
            }
            out.push(event(
                "ExternalProvisioning",
                format!(
                    "Waiting for a volume to be created either by the external provisioner '{}' or manually by the \
                     system administrator. If volume creation is delayed, please verify that your external \
                     provisioner is running and correctly registered.",
                    class.provisioner
                ),
            ));
        }
    }
}

/// Parses the storage quantities we meet (`1Gi`, `500Mi`, `10G`, `1024`) to bytes.
pub fn quantity_bytes(q: &str) -> Option<u128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "m" => 1e-3,
        _ => return None,
    };
    let bytes = (num * mult).ceil();
    if bytes.is_finite() && bytes >= 0.0 {
        Some(bytes as u128)
    } else {
        None
    }
}

/// The smallest Available volume that satisfies an Immediate claim (class, size, modes).
fn static_match<'a>(
    claim: &PersistentVolumeClaim,
    world: World<'a>,
    promised: &HashSet<&str>,
) -> Option<&'a PersistentVolume> {
    if binding_mode(claim, world.classes) == "WaitForFirstConsumer" {
        return None;
    }
    let spec = claim.spec.as_ref()?;
    let class = spec.storage_class_name.clone().unwrap_or_default();
    let want = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| quantity_bytes(&q.0))
        .unwrap_or(0);
    let modes = spec.access_modes.clone().unwrap_or_default();
    world
        .volumes
        .iter()
        .filter(|v| v.metadata.deletion_timestamp.is_none())
        .filter(|v| {
            v.metadata
                .name
                .as_deref()
                .is_none_or(|n| !promised.contains(n))
        })
        .filter_map(|v| {
            let s = v.spec.as_ref()?;
            if s.claim_ref.is_some() || volume_phase(v).is_some_and(|p| p != "Available") {
                return None;
            }
            if s.storage_class_name.clone().unwrap_or_default() != class {
                return None;
            }
            let have_modes = s.access_modes.clone().unwrap_or_default();
            if !modes.iter().all(|m| have_modes.contains(m)) {
                return None;
            }
            let size = s
                .capacity
                .as_ref()
                .and_then(|c| c.get("storage"))
                .and_then(|q| quantity_bytes(&q.0))?;
            (size >= want).then_some((size, v))
        })
        .min_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.metadata.name.cmp(&b.1.metadata.name))
        })
        .map(|(_, v)| &**v)
}

fn reconcile_volume(volume: &PersistentVolume, index: &Index<'_>, out: &mut Vec<VolumeAction>) {
    let vname = volume.metadata.name.clone().unwrap_or_default();
    let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let claim = claim_ref.and_then(|r| {
        index
            .claims
            .get(&(r.namespace.as_deref()?, r.name.as_deref()?))
            .copied()
    });
    let pre_bound = claim_ref.is_some_and(|r| r.uid.as_deref().is_none_or(str::is_empty));
    let desired = match (claim_ref, claim) {
        (None, _) => "Available",
        // Reserved for a claim that does not point at it (yet): the real controller's
        // "volume is pre-bound to claim" keeps such a volume Available.
        (Some(_), c) if pre_bound && c.and_then(volume_name).is_none_or(|v| v != vname) => {
            "Available"
        }
        (Some(r), Some(c))
            if r.uid
                .as_deref()
                .is_none_or(|u| u.is_empty() || Some(u) == c.metadata.uid.as_deref()) =>
        {
            match volume_name(c) {
                Some(v) if v != vname => "Released",
                // Bound once the claim points back, or while it is about to.
                _ => "Bound",
            }
        }
        // The claim is gone (or is a new claim with the same name): the volume is released.
        (Some(_), _) => {
            if volume_phase(volume) == Some("Bound") || volume_phase(volume) == Some("Released") {
                "Released"
            } else {
                volume_phase(volume).unwrap_or("Pending")
            }
        }
    };
    if volume_phase(volume) != Some(desired) {
        out.push(VolumeAction::VolumePhase {
            volume: vname.clone(),
            phase: desired.to_string(),
        });
    }
    let deleting = volume.metadata.deletion_timestamp.is_some();
    let keep = !deleting || desired == "Bound";
    if let Some(finalizers) = with_finalizer(&volume.metadata.finalizers, VOLUME_PROTECTION, keep) {
        out.push(VolumeAction::VolumeFinalizers {
            volume: vname,
            finalizers,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn class(mode: &str) -> StorageClass {
        from(
            json!({"metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path", "volumeBindingMode": mode}),
        )
    }

    fn claim(
        extra_meta: serde_json::Value,
        volume: Option<&str>,
        phase: Option<&str>,
    ) -> PersistentVolumeClaim {
        let mut meta = json!({"name": "c", "namespace": "default", "uid": "u-1",
                              "finalizers": [CLAIM_PROTECTION]});
        if let (Some(m), Some(e)) = (meta.as_object_mut(), extra_meta.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        from(json!({
            "metadata": meta,
            "spec": {"storageClassName": "local-path", "volumeName": volume, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": phase}
        }))
    }

    fn volume(claim_uid: Option<&str>, phase: Option<&str>) -> PersistentVolume {
        let claim_ref = claim_uid.map(|u| json!({"namespace": "default", "name": "c", "uid": u}));
        from(json!({
            "metadata": {"name": "pvc-u-1", "finalizers": [VOLUME_PROTECTION]},
            "spec": {"storageClassName": "local-path", "claimRef": claim_ref, "accessModes": ["ReadWriteOnce"],
                     "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/opt/x"}},
            "status": {"phase": phase}
        }))
    }

    fn run(
        claims: &[PersistentVolumeClaim],
        volumes: &[PersistentVolume],
        classes: &[StorageClass],
        pods: &[Pod],
    ) -> Vec<VolumeAction> {
        fn shared<K: Clone>(items: &[K]) -> Vec<Arc<K>> {
            items.iter().cloned().map(Arc::new).collect()
        }
        let in_use = claims_in_use(pods);
        reconcile(World {
            claims: &shared(claims),
            volumes: &shared(volumes),
            classes: &shared(classes),
            in_use: &in_use,
        })
    }

    #[test]
    fn adds_protection_finalizers() {
        let c: PersistentVolumeClaim =
            from(json!({"metadata": {"name": "c", "namespace": "default"}, "spec": {}}));
        let actions = run(&[c], &[], &[], &[]);
        assert!(actions.contains(&VolumeAction::ClaimFinalizers {
            namespace: "default".into(),
            name: "c".into(),
            finalizers: vec![CLAIM_PROTECTION.into()]
        }));
        assert!(actions.contains(&VolumeAction::ClaimPhase {
            namespace: "default".into(),
            name: "c".into(),
            phase: "Pending".into()
        }));
    }

    #[test]
    fn immediate_claims_are_annotated_for_their_provisioner() {
        let actions = run(
            &[claim(json!({}), None, Some("Pending"))],
            &[],
            &[class("Immediate")],
            &[],
        );
        assert!(
            matches!(
                &actions[..],
                [
                    VolumeAction::AnnotateClaim { provisioner, .. },
                    VolumeAction::ClaimEvent { reason, .. },
                ] if provisioner == "rancher.io/local-path" && reason == "ExternalProvisioning"
            ),
            "{actions:?}"
        );
    }

    #[test]
    fn wait_for_first_consumer_claims_wait_for_a_selected_node() {
        let classes = [class("WaitForFirstConsumer")];
        assert_eq!(
            run(
                &[claim(json!({}), None, Some("Pending"))],
                &[],
                &classes,
                &[]
            ),
            vec![VolumeAction::ClaimEvent {
                namespace: "default".into(),
                name: "c".into(),
                uid: "u-1".into(),
                reason: "WaitForFirstConsumer".into(),
                message: "waiting for first consumer to be created before binding".into(),
            }]
        );
        let selected = claim(
            json!({"annotations": {SELECTED_NODE: "node-1"}}),
            None,
            Some("Pending"),
        );
        assert!(matches!(
            &run(&[selected], &[], &classes, &[])[..],
            [
                VolumeAction::AnnotateClaim { .. },
                VolumeAction::ClaimEvent { .. }
            ]
        ));
    }

    #[test]
    fn a_pre_bound_volume_its_claim_does_not_point_at_is_available() {
        // claimRef without uid, the claim gone: reserved, Available (not Released).
        let v = volume(Some(""), Some("Released"));
        assert!(
            run(&[], &[v], &[], &[]).contains(&VolumeAction::VolumePhase {
                volume: "pvc-u-1".into(),
                phase: "Available".into()
            })
        );
        // The claim is bound to another volume: still Available.
        let c = claim(json!({}), Some("pvc-other"), Some("Bound"));
        let v = volume(None, Some("Available"));
        let mut v = v;
        v.spec.as_mut().unwrap().claim_ref =
            Some(from(json!({"namespace": "default", "name": "c"})));
        let actions = run(&[c], &[v], &[], &[]);
        assert!(
            !actions.iter().any(
                |a| matches!(a, VolumeAction::VolumePhase { volume, .. } if volume == "pvc-u-1")
            ),
            "{actions:?}"
        );
    }

    #[test]
    fn a_provisioned_volume_binds_both_sides() {
        let classes = [class("WaitForFirstConsumer")];
        let c = claim(
            json!({"annotations": {SELECTED_NODE: "node-1", STORAGE_PROVISIONER: "rancher.io/local-path"}}),
            None,
            Some("Pending"),
        );
        let v = volume(Some("u-1"), Some("Pending"));
        let actions = run(&[c], &[v], &classes, &[]);
        assert_eq!(
            actions,
            vec![
                VolumeAction::BindClaim {
                    namespace: "default".into(),
                    name: "c".into(),
                    volume: "pvc-u-1".into(),
                    capacity: Some(Quantity("1Gi".into())),
                    access_modes: vec!["ReadWriteOnce".into()]
                },
                VolumeAction::VolumePhase {
                    volume: "pvc-u-1".into(),
                    phase: "Bound".into()
                },
            ]
        );
        // Once both sides say so, nothing more to do.
        let c = claim(
            json!({"annotations": {BIND_COMPLETED: "yes"}}),
            Some("pvc-u-1"),
            Some("Bound"),
        );
        assert_eq!(
            run(&[c], &[volume(Some("u-1"), Some("Bound"))], &classes, &[]),
            vec![]
        );
    }

    #[test]
    fn a_volume_whose_claim_is_gone_is_released_and_loses_protection_when_deleted() {
        let v = volume(Some("u-1"), Some("Bound"));
        assert_eq!(
            run(&[], &[v], &[], &[]),
            vec![VolumeAction::VolumePhase {
                volume: "pvc-u-1".into(),
                phase: "Released".into()
            }]
        );
        let mut v = volume(Some("u-1"), Some("Released"));
        v.metadata.deletion_timestamp = Some(from(json!("2026-01-01T00:00:00Z")));
        assert_eq!(
            run(&[], &[v], &[], &[]),
            vec![VolumeAction::VolumeFinalizers {
                volume: "pvc-u-1".into(),
                finalizers: vec![]
            }]
        );
        // A bound volume being deleted keeps its finalizer.
        let mut v = volume(Some("u-1"), Some("Bound"));
        v.metadata.deletion_timestamp = Some(from(json!("2026-01-01T00:00:00Z")));
        let c = claim(
            json!({"annotations": {BIND_COMPLETED: "yes"}}),
            Some("pvc-u-1"),
            Some("Bound"),
        );
        assert_eq!(run(&[c], &[v], &[], &[]), vec![]);
    }

    #[test]
    fn a_claim_in_use_keeps_its_finalizer_until_the_pod_goes() {
        let c = claim(
            json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "annotations": {BIND_COMPLETED: "yes"}}),
            Some("pvc-u-1"),
            Some("Bound"),
        );
        let v = volume(Some("u-1"), Some("Bound"));
        let pod: Pod = from(json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "x"}], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]},
            "status": {"phase": "Running"}}));
        assert_eq!(
            run(
                std::slice::from_ref(&c),
                std::slice::from_ref(&v),
                &[],
                &[pod]
            ),
            vec![]
        );
        assert_eq!(
            run(&[c], &[v], &[], &[]),
            vec![VolumeAction::ClaimFinalizers {
                namespace: "default".into(),
                name: "c".into(),
                finalizers: vec![]
            }]
        );
    }

    #[test]
    fn static_volumes_match_immediate_claims() {
        let mut v = volume(None, Some("Available"));
        v.spec.as_mut().unwrap().capacity =
            Some([("storage".to_string(), Quantity("2Gi".into()))].into());
        let actions = run(&[claim(json!({}), None, Some("Pending"))], &[v], &[], &[]);
        assert_eq!(
            actions,
            vec![VolumeAction::ClaimVolume {
                volume: "pvc-u-1".into(),
                namespace: "default".into(),
                name: "c".into(),
                uid: "u-1".into()
            }]
        );
    }

    #[test]
    fn claims_of_one_pass_reach_for_different_volumes() {
        let claims: Vec<PersistentVolumeClaim> = (0..3)
            .map(|i| {
                let mut c = claim(json!({}), None, Some("Pending"));
                c.metadata.name = Some(format!("c{i}"));
                c.metadata.uid = Some(format!("u{i}"));
                c
            })
            .collect();
        let volumes: Vec<PersistentVolume> = (0..3)
            .map(|i| {
                let mut v = volume(None, Some("Available"));
                v.metadata.name = Some(format!("v{i}"));
                v
            })
            .collect();
        let mut chosen: Vec<String> = run(&claims, &volumes, &[], &[])
            .into_iter()
            .filter_map(|a| match a {
                VolumeAction::ClaimVolume { volume, .. } => Some(volume),
                _ => None,
            })
            .collect();
        chosen.sort();
        assert_eq!(chosen, ["v0", "v1", "v2"]);
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("128974848"), Some(128_974_848));
        assert_eq!(quantity_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(quantity_bytes("lots"), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        #[derive(Debug, Clone)]
        struct ClaimSpec {
            class: u8,
            selected: bool,
            deleting: bool,
            used: bool,
        }

        #[derive(Debug, Clone)]
        struct VolumeSpec {
            claim: Option<(usize, bool)>,
            phase: u8,
            deleting: bool,
        }

        fn claim_strategy() -> impl Strategy<Value = ClaimSpec> {
            (0u8..4, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
                |(class, selected, deleting, used)| ClaimSpec {
                    class,
                    selected,
                    deleting,
                    used,
                },
            )
        }

        fn volume_strategy() -> impl Strategy<Value = VolumeSpec> {
            (
                proptest::option::of((0usize..4, any::<bool>())),
                0u8..4,
                any::<bool>(),
            )
                .prop_map(|(claim, phase, deleting)| VolumeSpec {
                    claim,
                    phase,
                    deleting,
                })
        }

        const CLASSES: [&str; 4] = ["", "wffc", "imm", "static"];

        fn classes() -> Vec<StorageClass> {
            vec![
                from(
                    json!({"metadata": {"name": "wffc"}, "provisioner": "p", "volumeBindingMode": "WaitForFirstConsumer"}),
                ),
                from(json!({"metadata": {"name": "imm"}, "provisioner": "p"})),
                from(json!({"metadata": {"name": "static"}, "provisioner": NO_PROVISIONER})),
            ]
        }

        fn world(
            claims: &[ClaimSpec],
            volumes: &[VolumeSpec],
        ) -> (Vec<Value>, Vec<Value>, Vec<Pod>) {
            let cs = claims
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut meta = json!({"name": format!("c{i}"), "namespace": "ns", "uid": format!("u{i}")});
                    if c.selected {
                        meta["annotations"] = json!({SELECTED_NODE: "node-1"});
                    }
                    if c.deleting {
                        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                        meta["finalizers"] = json!([CLAIM_PROTECTION]);
                    }
                    json!({"metadata": meta, "spec": {"storageClassName": CLASSES[usize::from(c.class)],
                           "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
                })
                .collect();
            let phases = ["Available", "Bound", "Released", "Pending"];
            let vs = volumes
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut o = json!({"metadata": {"name": format!("v{i}")},
                        "spec": {"storageClassName": "static", "accessModes": ["ReadWriteOnce"],
                                 "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/x"}},
                        "status": {"phase": phases[usize::from(v.phase)]}});
                    if let Some((c, right_uid)) = v.claim {
                        let uid = if right_uid {
                            format!("u{c}")
                        } else {
                            "old".to_string()
                        };
                        o["spec"]["claimRef"] =
                            json!({"namespace": "ns", "name": format!("c{c}"), "uid": uid});
                    }
                    if v.deleting {
                        o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                        o["metadata"]["finalizers"] = json!([VOLUME_PROTECTION]);
                    }
                    o
                })
                .collect();
            let pods = claims
                .iter()
                .enumerate()
                .filter(|(_, c)| c.used)
                .map(|(i, _)| {
                    from(json!({"metadata": {"name": format!("p{i}"), "namespace": "ns"},
                        "spec": {"containers": [{"name": "x"}],
                                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": format!("c{i}")}}]},
                        "status": {"phase": "Running"}}))
                })
                .collect();
            (cs, vs, pods)
        }

        fn find<'a>(list: &'a mut [Value], name: &str) -> Option<&'a mut Value> {
            list.iter_mut()
                .find(|o| o["metadata"]["name"] == json!(name))
        }

        /// Carries actions out on plain objects, as the API server would.
        fn apply(claims: &mut Vec<Value>, volumes: &mut Vec<Value>, actions: &[VolumeAction]) {
            for a in actions {
                match a {
                    VolumeAction::ClaimFinalizers {
                        name, finalizers, ..
                    } => {
                        if let Some(c) = find(claims, name) {
                            c["metadata"]["finalizers"] = json!(finalizers);
                        }
                    }
                    VolumeAction::AnnotateClaim {
                        name, provisioner, ..
                    } => {
                        if let Some(c) = find(claims, name) {
                            c["metadata"]["annotations"][STORAGE_PROVISIONER] = json!(provisioner);
                        }
                    }
                    VolumeAction::BindClaim { name, volume, .. } => {
                        if let Some(c) = find(claims, name) {
                            c["spec"]["volumeName"] = json!(volume);
                            c["metadata"]["annotations"][BIND_COMPLETED] = json!("yes");
                            c["status"]["phase"] = json!("Bound");
                        }
                    }
                    VolumeAction::ClaimPhase { name, phase, .. } => {
                        if let Some(c) = find(claims, name) {
                            c["status"]["phase"] = json!(phase);
                        }
                    }
                    VolumeAction::ClaimVolume {
                        volume,
                        namespace,
                        name,
                        uid,
                    } => {
                        if let Some(v) = find(volumes, volume) {
                            v["spec"]["claimRef"] =
                                json!({"namespace": namespace, "name": name, "uid": uid});
                        }
                    }
                    VolumeAction::VolumePhase { volume, phase } => {
                        if let Some(v) = find(volumes, volume) {
                            v["status"]["phase"] = json!(phase);
                        }
                    }
                    VolumeAction::VolumeFinalizers { volume, finalizers } => {
                        if let Some(v) = find(volumes, volume) {
                            v["metadata"]["finalizers"] = json!(finalizers);
                        }
                    }
                    VolumeAction::ClaimEvent { .. } => {}
                }
            }
            let gone = |o: &Value| {
                !o["metadata"]["deletionTimestamp"].is_null()
                    && o["metadata"]["finalizers"]
                        .as_array()
                        .is_none_or(Vec::is_empty)
            };
            claims.retain(|o| !gone(o));
            volumes.retain(|o| !gone(o));
        }

        proptest! {
            /// The controller settles: after a few rounds it has nothing left to write, and
            /// then every Bound claim's volume points back at it.
            #[test]
            fn reconcile_settles_on_consistent_bindings(
                claim_specs in proptest::collection::vec(claim_strategy(), 0..4),
                volume_specs in proptest::collection::vec(volume_strategy(), 0..4),
            ) {
                let (mut claims, mut volumes, pods) = world(&claim_specs, &volume_specs);
                let classes = classes();
                let mut settled = false;
                for _ in 0..8 {
                    let typed_claims: Vec<PersistentVolumeClaim> = claims.iter().map(|c| from(c.clone())).collect();
                    let typed_volumes: Vec<PersistentVolume> = volumes.iter().map(|v| from(v.clone())).collect();
                    let actions: Vec<VolumeAction> = run(&typed_claims, &typed_volumes, &classes, &pods)
                        .into_iter()
                        .filter(|a| !matches!(a, VolumeAction::ClaimEvent { .. }))
                        .collect();
                    if actions.is_empty() {
                        settled = true;
                        break;
                    }
                    apply(&mut claims, &mut volumes, &actions);
                }
                prop_assert!(settled, "still acting after 8 rounds: {claims:#?} {volumes:#?}");
                for c in &claims {
                    if c["status"]["phase"] == json!("Bound") {
                        let v = c["spec"]["volumeName"].as_str().unwrap_or_default();
                        let volume = volumes.iter().find(|o| o["metadata"]["name"] == json!(v));
                        prop_assert!(volume.is_some_and(|o| o["spec"]["claimRef"]["name"] == c["metadata"]["name"]),
                            "{c:#?} bound to {volume:#?}");
                    }
                }
            }
        }
    }
}
