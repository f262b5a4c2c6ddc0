//! A move as recorded steps. Everything a move needs to resume or roll back lives in
//! annotations of the new PV, written before the step it enables:
//!
//! 1. [`Step::Copying`]: the new PV exists (Retain, reserved for the claim by a `claimRef`
//!    without uid), recording the claim as it will be recreated, the old PV and its reclaim
//!    policy; its directory on the target may hold a partial copy. Nothing else has changed.
//! 2. [`Step::Copied`]: the copy is verified (file count, bytes, checksum), recorded.
//! 3. [`Step::Rebinding`]: the old PV is Retain. From here on a move only goes forward: the
//!    claim is deleted, the source checked once more against the copy (nobody can write to it
//!    any more), and the claim recreated pre-bound to the new PV.
//! 4. [`Step::Finishing`]: the claim is Bound to the new PV; the old PV (and with
//!    `--delete-source` its directory) goes, then the new PV gets its reclaim policy back and
//!    loses the move annotations.
//!
//! A rerun of `lpp move` for that claim reads the record ([`Record::of`]) and [`resume`] says
//! what to do. Pure: no I/O here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The claim being moved, `namespace/name`.
pub const MOVE_CLAIM: &str = "lpp.dev/move-claim";
/// The uid of the claim as it was before the move (the one to delete).
pub const MOVE_CLAIM_UID: &str = "lpp.dev/move-claim-uid";
/// The claim as it is recreated (JSON).
pub const MOVE_CLAIM_OBJECT: &str = "lpp.dev/move-claim-object";
/// The old PV's name.
pub const MOVE_FROM: &str = "lpp.dev/move-from";
/// Where the data comes from, `node:path`.
pub const MOVE_SOURCE: &str = "lpp.dev/move-source";
/// The step reached ([`Step`]).
pub const MOVE_STEP: &str = "lpp.dev/move-step";
/// The old PV's reclaim policy: the new PV gets it at the end (and the old one on rollback).
pub const MOVE_RECLAIM_POLICY: &str = "lpp.dev/move-reclaim-policy";
/// The verified copy: `<files> <bytes> <checksum>`.
pub const MOVE_CHECKSUM: &str = "lpp.dev/move-checksum";
/// On the old PV while it is kept by a move: the new PV's name.
pub const MOVING_TO: &str = "lpp.dev/moving-to";
/// On a moved volume: where its data came from, `node:path`.
pub const MOVED_FROM: &str = "lpp.dev/moved-from";

/// Claim annotations that describe its binding, not the claim: a recreated claim drops them.
pub const BINDING_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
];

/// How far a move got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// The new PV exists; its directory may hold a partial copy.
    Copying,
    /// The copy is verified.
    Copied,
    /// The old PV is Retain; the claim may be deleted.
    Rebinding,
    /// The claim is Bound to the new PV; the old PV goes.
    Finishing,
}

impl Step {
    /// As written in [`MOVE_STEP`].
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Copying => "copying",
            Step::Copied => "copied",
            Step::Rebinding => "rebinding",
            Step::Finishing => "finishing",
        }
    }

    /// Reads [`MOVE_STEP`].
    pub fn parse(text: &str) -> Option<Step> {
        [
            Step::Copying,
            Step::Copied,
            Step::Rebinding,
            Step::Finishing,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the claim may already be gone: from here on a move only goes forward.
    pub fn past_return(self) -> bool {
        self >= Step::Rebinding
    }
}

/// The points where the `LPP_MOVE_PAUSE_AFTER` test hook can hold a move: after each step is
/// recorded, and between deleting and recreating the claim.
pub const PAUSE_POINTS: &[&str] = &["created", "copied", "retained", "claim-deleted", "rebound"];

/// A move in progress, as read from the new PV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The new PV.
    pub volume: String,
    /// Its node (the target).
    pub node: String,
    /// Its directory.
    pub path: String,
    /// The step reached.
    pub step: Step,
    /// `namespace/name`.
    pub claim: String,
    /// The uid of the claim the move started from.
    pub claim_uid: String,
    /// The claim as recreated.
    pub claim_object: String,
    /// The old PV.
    pub from: String,
    /// `node:path` of the source.
    pub source: String,
    /// The policy to give back.
    pub reclaim_policy: String,
    /// The verified copy, once there is one.
    pub checksum: Option<String>,
}

impl Record {
    /// The record of a move in `volume`, or `None` when it is not a move's new PV (or one that
    /// finished). A record missing a field is reported, never guessed.
    pub fn of(volume: &PersistentVolume) -> Option<Result<Record, String>> {
        let annotations = volume.metadata.annotations.as_ref()?;
        let step = annotations.get(MOVE_STEP)?;
        let name = volume.metadata.name.clone().unwrap_or_default();
        let field = |key: &str| {
            annotations
                .get(key)
                .cloned()
                .ok_or_else(|| format!("volume {name} records a move but has no {key} annotation"))
        };
        let read = || -> Result<Record, String> {
            let (node, path) = crate::provision::volume_location(volume)
                .ok_or_else(|| format!("volume {name} has no path"))?;
            Ok(Record {
                volume: name.clone(),
                node: node.ok_or_else(|| format!("volume {name} has no node"))?,
                path,
                step: Step::parse(step)
                    .ok_or_else(|| format!("volume {name} records an unknown step {step:?}"))?,
                claim: field(MOVE_CLAIM)?,
                claim_uid: field(MOVE_CLAIM_UID)?,
                claim_object: field(MOVE_CLAIM_OBJECT)?,
                from: field(MOVE_FROM)?,
                source: field(MOVE_SOURCE)?,
                reclaim_policy: field(MOVE_RECLAIM_POLICY)?,
                checksum: annotations.get(MOVE_CHECKSUM).cloned(),
            })
        };
        Some(read())
    }

    /// The source node (before the `:` of [`MOVE_SOURCE`]).
    pub fn source_node(&self) -> &str {
        self.source.split_once(':').map_or("", |(n, _)| n)
    }

    /// The source directory.
    pub fn source_path(&self) -> &str {
        self.source.split_once(':').map_or("", |(_, p)| p)
    }
}

/// What a rerun does with an interrupted move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Carry on from the recorded step to the recorded target (the one asked for).
    Continue,
    /// Undo it (the claim never left its volume): remove the new directory and PV, give the
    /// old PV its policy back; then move anew when `then_move`.
    RollBack {
        /// Then move anew (to a node other than the source).
        then_move: bool,
    },
    /// Finish it (past the point of return); then move anew from its target when `then_move`.
    Finish {
        /// Then move anew from the recorded target.
        then_move: bool,
    },
}

/// Decides what to do with an interrupted move to `recorded` when a move to `asked` is asked
/// for, the volume having been on `source`. Asking for the node the data came from undoes a
/// move that can still be undone.
pub fn resume(step: Step, recorded: &str, asked: &str, source: &str) -> Resume {
    if step.past_return() {
        return Resume::Finish {
            then_move: asked != recorded,
        };
    }
    if asked == recorded {
        Resume::Continue
    } else {
        Resume::RollBack {
            then_move: asked != source,
        }
    }
}

/// The claim as a move recreates it: same name, namespace, labels, annotations (but those of
/// its binding), owner references and spec, pre-bound to `volume`. No uid, resourceVersion,
/// finalizers or status: the API server gives it new ones.
pub fn recreated_claim(claim: &PersistentVolumeClaim, volume: &str) -> PersistentVolumeClaim {
    let annotations: BTreeMap<String, String> = claim
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !BINDING_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut spec = claim.spec.clone().unwrap_or_default();
    spec.volume_name = Some(volume.to_owned());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: claim.metadata.name.clone(),
            namespace: claim.metadata.namespace.clone(),
            labels: claim.metadata.labels.clone(),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: claim.metadata.owner_references.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Turns the PV provisioning would make for the claim on the target into a move's new PV:
/// reserved for the claim (its `claimRef` without uid, so the recreated claim binds it), the old
/// volume's capacity, `Retain` until the move ends, and the record of step [`Step::Copying`].
pub fn new_volume(
    mut provisioned: PersistentVolume,
    old: &PersistentVolume,
    claim: &PersistentVolumeClaim,
    source: &str,
) -> Result<PersistentVolume, String> {
    let old_name = old.metadata.name.clone().unwrap_or_default();
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    let old_spec = old.spec.clone().unwrap_or_default();
    let new_name = provisioned.metadata.name.clone().unwrap_or_default();
    let recreated = recreated_claim(claim, &new_name);
    let object = serde_json::to_string(&recreated)
        .map_err(|e| format!("cannot record claim {namespace}/{name}: {e}"))?;
    let spec = provisioned
        .spec
        .as_mut()
        .ok_or("the provisioned volume has no spec")?;
    if let Some(claim_ref) = spec.claim_ref.as_mut() {
        claim_ref.uid = None;
        claim_ref.resource_version = None;
    }
    if let Some(capacity) = old_spec.capacity.clone() {
        spec.capacity = Some(capacity);
    }
    spec.persistent_volume_reclaim_policy = Some("Retain".into());
    let annotations = provisioned
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    if let Some(adopted) = old
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(super::ADOPTED))
    {
        annotations.insert(super::ADOPTED.to_owned(), adopted.clone());
    }
    for (key, value) in [
        (MOVE_STEP, Step::Copying.as_str().to_owned()),
        (MOVE_CLAIM, format!("{namespace}/{name}")),
        (
            MOVE_CLAIM_UID,
            claim.metadata.uid.clone().unwrap_or_default(),
        ),
        (MOVE_CLAIM_OBJECT, object),
        (MOVE_FROM, old_name),
        (MOVE_SOURCE, source.to_owned()),
        (
            MOVE_RECLAIM_POLICY,
            old_spec
                .persistent_volume_reclaim_policy
                .unwrap_or_else(|| "Delete".into()),
        ),
    ] {
        annotations.insert(key.to_owned(), value);
    }
    Ok(provisioned)
}

/// The merge patch that ends a move on the new PV: its reclaim policy back, the record gone,
/// [`MOVED_FROM`] kept.
pub fn finished_patch(record: &Record) -> serde_json::Value {
    let mut annotations = serde_json::Map::new();
    for key in [
        MOVE_STEP,
        MOVE_CLAIM,
        MOVE_CLAIM_UID,
        MOVE_CLAIM_OBJECT,
        MOVE_FROM,
        MOVE_SOURCE,
        MOVE_RECLAIM_POLICY,
        MOVE_CHECKSUM,
    ] {
        annotations.insert(key.to_owned(), serde_json::Value::Null);
    }
    annotations.insert(MOVED_FROM.to_owned(), record.source.clone().into());
    serde_json::json!({
        "metadata": {"annotations": annotations},
        "spec": {"persistentVolumeReclaimPolicy": record.reclaim_policy},
    })
}

/// The merge patch recording `step` (and, when given, the verified checksum).
pub fn step_patch(step: Step, checksum: Option<&str>) -> serde_json::Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert(MOVE_STEP.to_owned(), step.as_str().into());
    if let Some(sum) = checksum {
        annotations.insert(MOVE_CHECKSUM.to_owned(), sum.into());
    }
    serde_json::json!({"metadata": {"annotations": annotations}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn claim() -> PersistentVolumeClaim {
        from(json!({
            "metadata": {"name": "data", "namespace": "apps", "uid": "u-old", "resourceVersion": "7",
                "finalizers": ["kubernetes.io/pvc-protection"],
                "labels": {"app": "db"},
                "annotations": {"team": "a", "pv.kubernetes.io/bind-completed": "yes",
                                "volume.kubernetes.io/selected-node": "n1",
                                "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "volumeName": "pvc-u-old", "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound"}
        }))
    }

    #[test]
    fn a_recreated_claim_keeps_what_the_user_gave_it() {
        let again = recreated_claim(&claim(), "pvc-new");
        let meta = &again.metadata;
        assert_eq!(meta.name.as_deref(), Some("data"));
        assert_eq!(meta.namespace.as_deref(), Some("apps"));
        assert_eq!(meta.labels.as_ref().unwrap()["app"], "db");
        assert_eq!(
            meta.annotations.as_ref().unwrap(),
            &BTreeMap::from([("team".to_owned(), "a".to_owned())])
        );
        assert_eq!(
            (meta.uid.as_ref(), meta.resource_version.as_ref()),
            (None, None)
        );
        assert!(meta.finalizers.is_none() && again.status.is_none());
        let spec = again.spec.unwrap();
        assert_eq!(spec.volume_name.as_deref(), Some("pvc-new"));
        assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
    }

    #[test]
    fn a_rerun_continues_rolls_back_or_finishes() {
        use Resume::*;
        assert_eq!(resume(Step::Copying, "n2", "n2", "n1"), Continue);
        assert_eq!(
            resume(Step::Copied, "n2", "n3", "n1"),
            RollBack { then_move: true }
        );
        // Asking for the node the data is on undoes the move.
        assert_eq!(
            resume(Step::Copied, "n2", "n1", "n1"),
            RollBack { then_move: false }
        );
        assert_eq!(
            resume(Step::Rebinding, "n2", "n2", "n1"),
            Finish { then_move: false }
        );
        assert_eq!(
            resume(Step::Finishing, "n2", "n1", "n1"),
            Finish { then_move: true }
        );
    }

    fn pv(annotations: serde_json::Value) -> PersistentVolume {
        from(json!({
            "metadata": {"name": "pvc-new", "annotations": annotations},
            "spec": {"hostPath": {"path": "/opt/lp/pvc-new_apps_data"},
                     "capacity": {"storage": "1Gi"},
                     "claimRef": {"namespace": "apps", "name": "data", "uid": "u-fake", "resourceVersion": "3"},
                     "persistentVolumeReclaimPolicy": "Delete",
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}]}}}
        }))
    }

    #[test]
    fn a_new_volume_records_everything_a_rerun_needs() {
        let old: PersistentVolume = from(json!({
            "metadata": {"name": "pvc-u-old", "annotations": {"lpp.dev/adopted": "true"}},
            "spec": {"capacity": {"storage": "5Gi"}, "persistentVolumeReclaimPolicy": "Delete"}
        }));
        let provisioned = pv(json!({"local.path.provisioner/selected-node": "n2"}));
        let new = new_volume(provisioned, &old, &claim(), "n1:/opt/lp/old").unwrap();
        let spec = new.spec.as_ref().unwrap();
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
        assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "5Gi");
        let claim_ref = spec.claim_ref.as_ref().unwrap();
        assert_eq!(
            (claim_ref.uid.as_ref(), claim_ref.resource_version.as_ref()),
            (None, None)
        );
        let record = Record::of(&new).unwrap().unwrap();
        assert_eq!(record.step, Step::Copying);
        assert_eq!(record.node, "n2");
        assert_eq!(record.claim, "apps/data");
        assert_eq!(record.claim_uid, "u-old");
        assert_eq!(record.from, "pvc-u-old");
        assert_eq!(
            (record.source_node(), record.source_path()),
            ("n1", "/opt/lp/old")
        );
        assert_eq!(record.reclaim_policy, "Delete");
        let recreated: PersistentVolumeClaim = serde_json::from_str(&record.claim_object).unwrap();
        assert_eq!(recreated, recreated_claim(&claim(), "pvc-new"));
        assert_eq!(
            new.metadata.annotations.as_ref().unwrap()["lpp.dev/adopted"],
            "true"
        );
        let done = finished_patch(&record);
        assert_eq!(done["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(
            done["metadata"]["annotations"][MOVE_STEP],
            serde_json::Value::Null
        );
        assert_eq!(
            done["metadata"]["annotations"][MOVED_FROM],
            "n1:/opt/lp/old"
        );
    }

    #[test]
    fn a_broken_record_is_reported_not_guessed() {
        assert!(Record::of(&pv(json!({}))).is_none());
        let broken = Record::of(&pv(json!({MOVE_STEP: "copied"}))).unwrap();
        assert!(broken.unwrap_err().contains(MOVE_CLAIM));
        let unknown = Record::of(&pv(json!({MOVE_STEP: "teleporting"}))).unwrap();
        assert!(unknown.unwrap_err().contains("unknown step"));
    }

    proptest! {
        /// A move past the point of return is only ever finished (the claim may be gone: its
        /// only binding is the new volume); before it, a rerun to the recorded target carries
        /// on and any other is undone first. Asking for the recorded target never moves again.
        #[test]
        fn past_the_point_of_return_a_move_is_never_undone(
            step in proptest::sample::select(vec![Step::Copying, Step::Copied, Step::Rebinding, Step::Finishing]),
            recorded in "n[1-3]",
            asked in "n[1-3]",
            source in "n[1-3]",
        ) {
            let decision = resume(step, &recorded, &asked, &source);
            if step.past_return() {
                prop_assert_eq!(decision, Resume::Finish { then_move: asked != recorded });
            } else if asked == recorded {
                prop_assert_eq!(decision, Resume::Continue);
            } else {
                prop_assert_eq!(decision, Resume::RollBack { then_move: asked != source });
            }
        }
    }

    proptest! {
        /// Whatever a claim carries, its binding never survives into the recreated claim, and
        /// everything else the user set does.
        #[test]
        fn binding_never_survives(
            keys in proptest::collection::btree_map(
                prop_oneof![
                    proptest::sample::select(BINDING_ANNOTATIONS.to_vec()).prop_map(str::to_owned),
                    "[a-z]{1,8}(/[a-z]{1,8})?",
                ],
                "[a-z0-9]{0,6}",
                0..8,
            ),
            volume in "pvc-[a-z0-9]{1,12}",
        ) {
            let mut c = claim();
            c.metadata.annotations = Some(keys.clone());
            let again = recreated_claim(&c, &volume);
            let kept = again.metadata.annotations.unwrap_or_default();
            for key in BINDING_ANNOTATIONS {
                prop_assert!(!kept.contains_key(*key));
            }
            for (k, v) in &keys {
                if !BINDING_ANNOTATIONS.contains(&k.as_str()) {
                    prop_assert_eq!(kept.get(k), Some(v));
                }
            }
            let spec = again.spec.unwrap();
            prop_assert_eq!(spec.volume_name, Some(volume));
        }
    }
}
