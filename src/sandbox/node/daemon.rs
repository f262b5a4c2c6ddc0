//! The DaemonSet controller's decisions for one DaemonSet, as a pure function of the nodes, its
//! pods and its ControllerRevisions. Modelled on kube-controller-manager's
//! `pkg/controller/daemon/daemon_controller.go` (which nodes should run a pod, `manage`, the
//! status), `pkg/controller/daemon/update.go` (history and the rolling update) and
//! `pkg/controller/daemon/util/daemonset_util.go` (the pod template: labels, tolerations, the
//! node affinity that pins a pod to its node).
//!
//! Not modelled: adopting pods that match the selector without a controller (and releasing
//! pods that stop matching), `maxSurge` (a DaemonSet asking for it is rolled as with 0: the
//! old pod goes before the new one comes), hash collisions of revision names, and the
//! exponential back-off before a failed pod is replaced (the loop's settle time stands in).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::schedule::{is_ready, matches_node_selector, tolerates};
use crate::sandbox::objects::TEMPLATE_GENERATION;

/// The pod and revision label naming the revision (template hash) a pod was made from.
pub const REVISION_HASH: &str = "controller-revision-hash";
/// The pod label carrying the DaemonSet's template generation (kept by the real controller
/// for backward compatibility; a pod matching either label is up to date).
pub const POD_TEMPLATE_GENERATION: &str = "pod-template-generation";

/// One thing the DaemonSet controller does. Each becomes one request.
#[derive(Debug, Clone, PartialEq)]
pub enum DaemonAction {
    /// Record the current template as a new ControllerRevision.
    CreateRevision(Box<ControllerRevision>),
    /// Move an existing revision to the top of the history (after a rollback to it).
    SetRevision {
        /// The revision's name.
        name: String,
        /// Its new number.
        revision: i64,
    },
    /// Drop a revision past `revisionHistoryLimit` that no pod uses.
    DeleteRevision {
        /// The revision's name.
        name: String,
    },
    /// Create a daemon pod for a node (`generateName`: the pod's name comes back).
    CreatePod {
        /// The node it is for.
        node: String,
        /// The pod.
        pod: Box<Pod>,
    },
    /// Delete a daemon pod, telling why with an event on the DaemonSet when the real
    /// controller does.
    DeletePod {
        /// The pod's name.
        name: String,
        /// The pod's uid.
        uid: String,
        /// `(type, reason, message)` of the event to record first.
        event: Option<(&'static str, &'static str, String)>,
    },
    /// Write the status (only when it differs from the stored one).
    Status(Box<DaemonSetStatus>),
}

/// The objects the decision reads besides the DaemonSet.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    /// Every node.
    pub nodes: &'a [Arc<Node>],
    /// The pods whose controller reference names this DaemonSet (by uid).
    pub pods: &'a [Arc<Pod>],
    /// The ControllerRevisions whose controller reference names this DaemonSet.
    pub revisions: &'a [Arc<ControllerRevision>],
    /// Now, for `minReadySeconds`.
    pub now: jiff::Timestamp,
}

/// The taint a node controller puts on a node whose Ready condition is not True.
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The taints the decision sees on a node. The sandbox has no node lifecycle controller, so a
/// node whose Ready condition is not True is read as carrying `node.kubernetes.io/not-ready`
/// (NoSchedule and NoExecute) as that controller would add (TaintNodesByCondition and
/// taint-based eviction): a daemon pod keeps running there but no new one is made for it.
fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let marked = taints
        .iter()
        .any(|t| t.key == NOT_READY || t.key == UNREACHABLE);
    if !is_ready(node) && !marked {
        for effect in ["NoSchedule", "NoExecute"] {
            taints.push(Taint {
                key: NOT_READY.into(),
                effect: effect.into(),
                ..Taint::default()
            });
        }
    }
    taints
}

/// Adds a toleration unless one with the same key, operator, value and effect is there, which
/// it then replaces (`AddOrUpdateTolerationInPodSpec`).
fn add_toleration(spec: &mut PodSpec, key: &str, effect: &str) {
    let toleration = Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    };
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    let same = |t: &Toleration| {
        t.key == toleration.key
            && t.operator.as_deref().unwrap_or("Equal") == "Exists"
            && t.value.as_deref().unwrap_or("").is_empty()
            && t.effect == toleration.effect
    };
    match list.iter_mut().find(|t| same(t)) {
        Some(t) => *t = toleration,
        None => list.push(toleration),
    }
}

/// The tolerations every daemon pod gets (`AddOrUpdateDaemonPodTolerations`): it survives a
/// node going not ready or unreachable, and node-condition taints do not keep it off.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    add_toleration(spec, NOT_READY, "NoExecute");
    add_toleration(spec, UNREACHABLE, "NoExecute");
    for key in [
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ] {
        add_toleration(spec, key, "NoSchedule");
    }
    if spec.host_network == Some(true) {
        add_toleration(spec, "node.kubernetes.io/network-unavailable", "NoSchedule");
    }
}

/// Whether the DaemonSet's pod should run on the node (`shouldRun`: a new pod is made) and
/// whether one already there may stay (`shouldContinueRunning`), as `NodeShouldRunDaemonPod`
/// decides: the template's nodeName, nodeSelector and required node affinity, and the node's
/// NoSchedule/NoExecute taints against the template's tolerations plus the daemon ones (a
/// pod stays if only NoSchedule taints are untolerated).
pub fn should_run(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_fits = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let affinity_fits = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|required| matches_node_selector(node, required));
    if !selector_fits || !affinity_fits {
        return (false, false);
    }
    add_daemon_tolerations(&mut spec);
    let tolerations = spec.tolerations.unwrap_or_default();
    let untolerated = |effects: &[&str]| {
        effective_taints(node).iter().any(|t| {
            effects.contains(&t.effect.as_str())
                && !tolerations
                    .iter()
                    .any(|tol| tolerates(tol, &t.key, t.value.as_deref().unwrap_or(""), &t.effect))
        })
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(&["NoExecute"]));
    }
    (true, true)
}

/// 32-bit FNV-1a, the hash `controller.ComputeHash` takes of a template.
fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The hash of a pod template, as revision names and the `controller-revision-hash` label
/// spell it: FNV-1a of the template (the real controller hashes Go's printing of the struct;
/// here its JSON), its decimal digits mapped onto the apiserver's name alphabet
/// (`rand.SafeEncodeString`).
pub fn template_hash(template: &Value, collision_count: Option<i32>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    fnv32a(&bytes)
        .to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// The revision data of the DaemonSet's current template: a strategic merge patch replacing
/// `spec.template` (`getPatch`), which is also what `kubectl rollout undo` applies.
fn revision_patch(ds: &DaemonSet) -> Value {
    let mut template = ds
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.template).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

fn controller_ref(ds: &DaemonSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The template generation from the DaemonSet's annotation.
fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION)?
        .parse()
        .ok()
}

/// Whether a pod was made from the current template: its hash label, or its template
/// generation label (`IsPodUpdated`).
fn is_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    (!hash.is_empty() && label(REVISION_HASH) == Some(hash))
        || generation
            .is_some_and(|g| label(POD_TEMPLATE_GENERATION) == Some(g.to_string().as_str()))
}

/// The node a daemon pod is for: its `spec.nodeName`, or before it is bound, the single
/// `metadata.name` of its node affinity's matchFields (`GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|term| {
        term.match_fields.iter().flatten().find_map(|r| {
            let values = r.values.as_deref().unwrap_or(&[]);
            (r.key == "metadata.name" && r.operator == "In" && values.len() == 1)
                .then(|| values[0].clone())
        })
    })
}

fn is_pod_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When the pod's Ready condition last turned True, if it is True.
fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        c.last_transition_time
            .as_ref()
            .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

/// Ready for at least `min_ready` seconds (`IsPodAvailable`).
fn is_available(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready <= 0 => true,
        Some(since) => since
            .checked_add(jiff::SignedDuration::from_secs(i64::from(min_ready)))
            .is_ok_and(|t| t < now),
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Scheduled pods first, then the oldest, then by name (`podByCreationTimestampAndPhase`).
fn sort_pods(pods: &mut [&Pod]) {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    pods.sort_by(|a, b| {
        scheduled(b)
            .cmp(&scheduled(a))
            .then(
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp),
            )
            .then(a.metadata.name.cmp(&b.metadata.name))
    });
}

/// An int-or-percent scaled against `total`, rounding up (`GetScaledValueFromIntOrPercent`);
/// a value that does not parse counts as 0.
fn scaled(value: Option<&IntOrString>, total: i32) -> i32 {
    match value {
        None => 0,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(0, |p| {
                i32::try_from((p * i64::from(total) + 99).div_euclid(100)).unwrap_or(i32::MAX)
            }),
    }
}

/// The daemon pod for `node`: the template with the hash and generation labels, the daemon
/// tolerations, a controller reference, and node affinity replaced by `metadata.name In
/// [node]` so the scheduler binds it there (`CreatePodTemplate`,
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`, `GetPodFromTemplate`).
pub fn pod_for(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    if let Some(g) = template_generation(ds) {
        labels.insert(POD_TEMPLATE_GENERATION.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(REVISION_HASH.into(), hash.to_string());
    }
    let mut spec = template.spec.unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    let pinned = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
            ..NodeSelectorTerm::default()
        }],
    };
    let mut affinity = spec.affinity.take().unwrap_or_default();
    let mut node_affinity = affinity.node_affinity.take().unwrap_or_default();
    node_affinity.required_during_scheduling_ignored_during_execution = Some(pinned);
    affinity.node_affinity = Some(node_affinity);
    spec.affinity = Some(affinity);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                ds.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller_ref(ds)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The history step (`constructHistory`, `cleanupHistory`): the hash pods of the current
/// template carry, and the revision writes that keep the history right.
fn history(
    ds: &DaemonSet,
    world: World<'_>,
    live_hashes: &[String],
) -> (String, Vec<DaemonAction>) {
    let mut actions = Vec::new();
    let patch = revision_patch(ds);
    let (current, mut old): (Vec<&ControllerRevision>, Vec<&ControllerRevision>) = world
        .revisions
        .iter()
        .map(|r| &**r)
        .partition(|r| r.data.as_ref().map(|d| &d.0) == Some(&patch));
    let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    let hash = match current.iter().max_by_key(|r| r.revision) {
        Some(cur) => {
            if cur.revision < next {
                actions.push(DaemonAction::SetRevision {
                    name: cur.metadata.name.clone().unwrap_or_default(),
                    revision: next,
                });
            }
            cur.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH))
                .cloned()
                .unwrap_or_default()
        }
        None => {
            let collision = ds.status.as_ref().and_then(|s| s.collision_count);
            let template = ds
                .spec
                .as_ref()
                .and_then(|s| serde_json::to_value(&s.template).ok())
                .unwrap_or_default();
            let hash = template_hash(&template, collision);
            let mut labels = ds
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(REVISION_HASH.into(), hash.clone());
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(format!(
                        "{}-{hash}",
                        ds.metadata.name.as_deref().unwrap_or_default()
                    )),
                    namespace: ds.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: ds.metadata.annotations.clone(),
                    owner_references: Some(vec![controller_ref(ds)]),
                    ..ObjectMeta::default()
                },
                data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(patch)),
                revision: next,
            };
            actions.push(DaemonAction::CreateRevision(Box::new(revision)));
            hash
        }
    };
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    if old.len() > limit {
        let mut excess = old.len() - limit;
        old.sort_by_key(|r| r.revision);
        for r in old {
            if excess == 0 {
                break;
            }
            let live = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH))
                .is_some_and(|h| live_hashes.contains(h));
            if live {
                continue;
            }
            actions.push(DaemonAction::DeleteRevision {
                name: r.metadata.name.clone().unwrap_or_default(),
            });
            excess -= 1;
        }
    }
    (hash, actions)
}

/// Everything the DaemonSet controller does for `ds` now (`syncDaemonSet`): history, then
/// `manage` (a pod for every node that should run one, none elsewhere, failed and surplus
/// ones deleted), then — only when manage has nothing to do, as the real controller waits
/// for its creations and deletions to be observed — the rolling update, and the status.
pub fn reconcile(ds: &DaemonSet, world: World<'_>) -> Vec<DaemonAction> {
    let Some(spec) = ds.spec.as_ref() else {
        return Vec::new();
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let namespace = ds.metadata.namespace.as_deref().unwrap_or_default();
    let live_hashes: Vec<String> = world
        .pods
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_HASH).cloned())
        .collect();
    let (hash, mut actions) = history(ds, world, &live_hashes);
    let generation = template_generation(ds);

    // The pods per node they are for; nodes that should run one get an entry even when empty.
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in world.pods {
        if let Some(node) = target_node(pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    let runs: BTreeMap<String, (bool, bool)> = world
        .nodes
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                should_run(n, ds),
            )
        })
        .collect();

    let mut manage = Vec::new();
    for (node, &(run, stay)) in &runs {
        let pods = by_node.get(node);
        if run && pods.is_none() {
            manage.push(DaemonAction::CreatePod {
                node: node.clone(),
                pod: Box::new(pod_for(ds, node, &hash)),
            });
        } else if stay {
            let mut running: Vec<&Pod> = Vec::new();
            for pod in pods.into_iter().flatten().copied() {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let name = pod.metadata.name.clone().unwrap_or_default();
                let event = match phase(pod) {
                    "Failed" => Some((
                        "Warning",
                        "FailedDaemonPod",
                        format!(
                            "Found failed daemon pod {namespace}/{name} on node {node}, will try to kill it"
                        ),
                    )),
                    "Succeeded" => Some((
                        "Normal",
                        "SucceededDaemonPod",
                        format!(
                            "Found succeeded daemon pod {namespace}/{name} on node {node}, will try to delete it"
                        ),
                    )),
                    _ => None,
                };
                match event {
                    Some(event) => manage.push(delete(pod, Some(event))),
                    None => running.push(pod),
                }
            }
            sort_pods(&mut running);
            manage.extend(running.iter().skip(1).map(|p| delete(p, None)));
        } else if let Some(pods) = pods {
            manage.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| delete(p, None)),
            );
        }
    }
    // Unbound pods for nodes that are gone: nothing else would ever remove them.
    for (node, pods) in &by_node {
        if !runs.contains_key(node) {
            manage.extend(
                pods.iter()
                    .filter(|p| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_deref())
                            .is_none_or(str::is_empty)
                    })
                    .map(|p| delete(p, None)),
            );
        }
    }

    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    if manage.is_empty() && rolling {
        for (node, (run, _)) in &runs {
            if *run {
                by_node.entry(node.clone()).or_default();
            }
        }
        actions.extend(rolling_update(
            ds, &by_node, &runs, &hash, generation, world.now,
        ));
    } else {
        actions.extend(manage);
    }
    if let Some(status) = status(ds, &by_node, &runs, &hash, generation, world.now) {
        actions.push(DaemonAction::Status(Box::new(status)));
    }
    actions
}

fn delete(pod: &Pod, event: Option<(&'static str, &'static str, String)>) -> DaemonAction {
    DaemonAction::DeletePod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        event,
    }
}

/// The rolling update without surge (`rollingUpdate`, the `maxSurge == 0` branch): old pods
/// that are not available go at once; available old pods go while fewer than
/// `maxUnavailable` nodes lack an available pod (a node with no pod, a terminating one, or a
/// new one not yet available counts as unavailable). The new pods come from `manage` once the
/// old ones are gone.
fn rolling_update(
    ds: &DaemonSet,
    by_node: &BTreeMap<String, Vec<&Pod>>,
    runs: &BTreeMap<String, (bool, bool)>,
    hash: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<DaemonAction> {
    let spec = ds.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let desired = runs.values().filter(|(run, _)| *run).count();
    let desired = i32::try_from(desired).unwrap_or(i32::MAX);
    let rolling = spec
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let mut max_unavailable = scaled(rolling.and_then(|r| r.max_unavailable.as_ref()), desired);
    let max_surge = scaled(rolling.and_then(|r| r.max_surge.as_ref()), desired);
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    let mut unavailable = 0;
    let mut replace_now: Vec<&Pod> = Vec::new();
    let mut candidates: Vec<&Pod> = Vec::new();
    for pods in by_node.values() {
        let mut new = None;
        let mut old = None;
        let mut ambiguous = false;
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let slot = if is_updated(pod, hash, generation) {
                &mut new
            } else {
                &mut old
            };
            if slot.is_some() {
                ambiguous = true;
            }
            *slot = Some(*pod);
        }
        match (ambiguous, old, new) {
            (true, _, _) | (false, None, None) | (false, Some(_), Some(_)) => unavailable += 1,
            (false, None, Some(new)) => {
                if !is_available(new, min_ready, now) {
                    unavailable += 1;
                }
            }
            (false, Some(old), None) => {
                if !is_available(old, min_ready, now) {
                    replace_now.push(old);
                } else if unavailable < max_unavailable {
                    candidates.push(old);
                }
            }
        }
    }
    let room = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
    replace_now
        .into_iter()
        .chain(candidates.into_iter().take(room))
        .map(|p| delete(p, None))
        .collect()
}

/// The status as `updateDaemonSetStatus` counts it, or `None` when the stored one already
/// says so for this generation.
fn status(
    ds: &DaemonSet,
    by_node: &BTreeMap<String, Vec<&Pod>>,
    runs: &BTreeMap<String, (bool, bool)>,
    hash: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Option<DaemonSetStatus> {
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let mut s = ds.status.clone().unwrap_or_default();
    let before = s.clone();
    let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
    let (mut ready, mut updated, mut available) = (0, 0, 0);
    for (node, (run, _)) in runs {
        let mut pods: Vec<&Pod> = by_node.get(node).cloned().unwrap_or_default();
        let scheduled = !pods.is_empty();
        if *run {
            desired += 1;
            if !scheduled {
                continue;
            }
            current += 1;
            sort_pods(&mut pods);
            let oldest = pods[0];
            if is_pod_ready(oldest) {
                ready += 1;
                if is_available(oldest, min_ready, now) {
                    available += 1;
                }
            }
            if is_updated(oldest, hash, generation) {
                updated += 1;
            }
        } else if scheduled {
            misscheduled += 1;
        }
    }
    s.desired_number_scheduled = desired;
    s.current_number_scheduled = current;
    s.number_misscheduled = misscheduled;
    s.number_ready = ready;
    s.updated_number_scheduled = Some(updated);
    s.number_available = Some(available);
    s.number_unavailable = Some(desired - available);
    s.observed_generation = ds.metadata.generation;
    (s != before).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn node(name: &str, labels: Value, taints: Value, ready: bool) -> Arc<Node> {
        Arc::new(from(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        })))
    }

    fn ds(template_spec: Value) -> DaemonSet {
        from(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 1,
                         "annotations": {TEMPLATE_GENERATION: "1"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}}
        }))
    }

    fn containers() -> Value {
        json!({"containers": [{"name": "c", "image": "busybox"}]})
    }

    fn world<'a>(
        nodes: &'a [Arc<Node>],
        pods: &'a [Arc<Pod>],
        revisions: &'a [Arc<ControllerRevision>],
    ) -> World<'a> {
        World {
            nodes,
            pods,
            revisions,
            now: jiff::Timestamp::now(),
        }
    }

    fn creates(actions: &[DaemonAction]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                DaemonAction::CreatePod { node, .. } => Some(node.as_str()),
                _ => None,
            })
            .collect()
    }

    fn deletes(actions: &[DaemonAction]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                DaemonAction::DeletePod { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// A running, Ready daemon pod on `node` made from revision `hash`.
    fn running(name: &str, node: &str, hash: &str, created: &str) -> Arc<Pod> {
        Arc::new(from(json!({
            "metadata": {"name": name, "namespace": "kube-system", "uid": format!("uid-{name}"),
                         "creationTimestamp": created,
                         "labels": {"app": "agent", REVISION_HASH: hash},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                              "uid": "ds-uid", "controller": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        })))
    }

    /// The revision the controller would record for `d`, as stored.
    fn revision_of(d: &DaemonSet, number: i64) -> (Arc<ControllerRevision>, String) {
        let actions = reconcile(d, world(&[], &[], &[]));
        let Some(DaemonAction::CreateRevision(r)) = actions.into_iter().next() else {
            panic!("a revision first")
        };
        let mut r = *r;
        r.revision = number;
        let hash = r.metadata.labels.as_ref().unwrap()[REVISION_HASH].clone();
        (Arc::new(r), hash)
    }

    #[test]
    fn a_pod_is_made_for_every_eligible_node_pinned_to_it() {
        let nodes = [
            node("node-1", json!({"disk": "ssd"}), json!([]), true),
            node("node-2", json!({}), json!([]), true),
            node(
                "node-3",
                json!({"disk": "ssd"}),
                json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
                true,
            ),
        ];
        let mut spec = containers();
        spec["nodeSelector"] = json!({"disk": "ssd"});
        let d = ds(spec);
        let actions = reconcile(&d, world(&nodes, &[], &[]));
        assert_eq!(creates(&actions), ["node-1"]);
        let Some(DaemonAction::CreatePod { pod, .. }) = actions
            .iter()
            .find(|a| matches!(a, DaemonAction::CreatePod { .. }))
        else {
            panic!("a pod")
        };
        assert_eq!(target_node(pod).as_deref(), Some("node-1"));
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[POD_TEMPLATE_GENERATION], "1");
        assert!(!labels[REVISION_HASH].is_empty());
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("DaemonSet", Some(true))
        );
        let keys: Vec<(&str, &str)> = pod
            .spec
            .as_ref()
            .unwrap()
            .tolerations
            .iter()
            .flatten()
            .map(|t| (t.key.as_deref().unwrap(), t.effect.as_deref().unwrap()))
            .collect();
        assert_eq!(
            keys,
            [
                ("node.kubernetes.io/not-ready", "NoExecute"),
                ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ]
        );
        // A template toleration lets the tainted node in.
        let mut spec = containers();
        spec["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
        spec["hostNetwork"] = json!(true);
        let d = ds(spec);
        let actions = reconcile(&d, world(&nodes, &[], &[]));
        assert_eq!(creates(&actions), ["node-1", "node-2", "node-3"]);
        let Some(DaemonAction::CreatePod { pod, .. }) = actions
            .iter()
            .find(|a| matches!(a, DaemonAction::CreatePod { .. }))
        else {
            panic!("a pod")
        };
        assert!(
            pod.spec
                .as_ref()
                .unwrap()
                .tolerations
                .iter()
                .flatten()
                .any(|t| t.key.as_deref() == Some("node.kubernetes.io/network-unavailable")),
            "hostNetwork pods tolerate network-unavailable"
        );
    }

    #[test]
    fn a_not_ready_node_keeps_its_pod_and_gets_no_new_one() {
        let down = node("node-1", json!({}), json!([]), false);
        let d = ds(containers());
        assert_eq!(should_run(&down, &d), (false, true));
        let evicting = node(
            "node-2",
            json!({}),
            json!([{"key": "maintenance", "effect": "NoExecute"}]),
            true,
        );
        assert_eq!(should_run(&evicting, &d), (false, false));
        let cordoned: Arc<Node> = Arc::new(from(json!({
            "metadata": {"name": "node-3"}, "spec": {"unschedulable": true, "taints": [
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}})));
        assert_eq!(should_run(&cordoned, &d), (true, true));
    }

    #[test]
    fn surplus_failed_and_misplaced_pods_go() {
        let nodes = [
            node("node-1", json!({"role": "a"}), json!([]), true),
            node("node-2", json!({"role": "b"}), json!([]), true),
        ];
        let mut spec = containers();
        spec["nodeSelector"] = json!({"role": "a"});
        let d = ds(spec);
        let (rev, hash) = revision_of(&d, 1);
        let mut failed = (*running("failed", "node-1", &hash, "2026-01-01T00:00:00Z")).clone();
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let pods = [
            running("older", "node-1", &hash, "2026-01-01T00:00:00Z"),
            running("newer", "node-1", &hash, "2026-01-01T00:00:05Z"),
            Arc::new(failed),
            running("misplaced", "node-2", &hash, "2026-01-01T00:00:00Z"),
        ];
        let actions = reconcile(&d, world(&nodes, &pods, &[rev]));
        let mut gone = deletes(&actions);
        gone.sort_unstable();
        assert_eq!(gone, ["failed", "misplaced", "newer"]);
        assert!(actions.iter().any(|a| matches!(a,
            DaemonAction::DeletePod { name, event: Some(("Warning", "FailedDaemonPod", m)), .. }
                if name == "failed" && m == "Found failed daemon pod kube-system/failed on node node-1, will try to kill it")));
        assert!(creates(&actions).is_empty());
    }

    #[test]
    fn status_counts_as_the_real_controller_does() {
        let nodes = [
            node("node-1", json!({}), json!([]), true),
            node("node-2", json!({}), json!([]), true),
            node("node-3", json!({}), json!([]), true),
        ];
        let d = ds(containers());
        let (rev, hash) = revision_of(&d, 1);
        let mut starting = (*running("b", "node-2", &hash, "2026-01-01T00:00:00Z")).clone();
        starting.status.as_mut().unwrap().conditions = None;
        let pods = [
            running("a", "node-1", &hash, "2026-01-01T00:00:00Z"),
            Arc::new(starting),
            running("c", "node-3", "old", "2026-01-01T00:00:00Z"),
        ];
        let actions = reconcile(&d, world(&nodes, &pods, &[rev]));
        let Some(DaemonAction::Status(s)) = actions.last() else {
            panic!("a status: {actions:?}")
        };
        assert_eq!(
            (
                s.desired_number_scheduled,
                s.current_number_scheduled,
                s.number_ready,
                s.updated_number_scheduled,
                s.number_available,
                s.number_unavailable,
                s.number_misscheduled,
                s.observed_generation
            ),
            (3, 3, 2, Some(2), Some(2), Some(1), 0, Some(1))
        );
    }

    #[test]
    fn a_rolling_update_replaces_one_available_pod_at_a_time() {
        let nodes = [
            node("node-1", json!({}), json!([]), true),
            node("node-2", json!({}), json!([]), true),
        ];
        let old_ds = ds(containers());
        let (old_rev, old_hash) = revision_of(&old_ds, 1);
        let mut new_spec = containers();
        new_spec["containers"][0]["image"] = json!("busybox:1.37");
        let mut d = ds(new_spec);
        d.metadata.generation = Some(2);
        d.metadata.annotations = Some([(TEMPLATE_GENERATION.to_string(), "2".to_string())].into());
        let pods = [
            running("a", "node-1", &old_hash, "2026-01-01T00:00:00Z"),
            running("b", "node-2", &old_hash, "2026-01-01T00:00:00Z"),
        ];
        let revisions = [old_rev.clone()];
        let actions = reconcile(&d, world(&nodes, &pods, &revisions));
        assert!(
            matches!(&actions[0], DaemonAction::CreateRevision(r) if r.revision == 2),
            "{actions:?}"
        );
        assert_eq!(deletes(&actions), ["a"], "maxUnavailable 1: one at a time");
        // `a` terminating: nothing more until it is gone.
        let (new_rev, new_hash) = revision_of(&d, 2);
        let mut terminating = (*pods[0]).clone();
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        let pods2 = [Arc::new(terminating), pods[1].clone()];
        let revisions = [old_rev.clone(), new_rev.clone()];
        let actions = reconcile(&d, world(&nodes, &pods2, &revisions));
        assert!(
            deletes(&actions).is_empty() && creates(&actions).is_empty(),
            "{actions:?}"
        );
        // Gone: manage makes the new pod with the new hash.
        let pods3 = [pods[1].clone()];
        let actions = reconcile(&d, world(&nodes, &pods3, &revisions));
        assert_eq!(creates(&actions), ["node-1"]);
        let Some(DaemonAction::CreatePod { pod, .. }) = actions
            .iter()
            .find(|a| matches!(a, DaemonAction::CreatePod { .. }))
        else {
            panic!()
        };
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(
            (
                labels[REVISION_HASH].as_str(),
                labels[POD_TEMPLATE_GENERATION].as_str()
            ),
            (new_hash.as_str(), "2")
        );
        // The new pod not Ready yet: b waits.
        let mut fresh = (*running("c", "node-1", &new_hash, "2026-01-01T00:01:00Z")).clone();
        fresh.status.as_mut().unwrap().conditions = None;
        let pods4 = [Arc::new(fresh), pods[1].clone()];
        let actions = reconcile(&d, world(&nodes, &pods4, &revisions));
        assert!(deletes(&actions).is_empty(), "{actions:?}");
        // Ready: b goes.
        let pods5 = [
            running("c", "node-1", &new_hash, "2026-01-01T00:01:00Z"),
            pods[1].clone(),
        ];
        let actions = reconcile(&d, world(&nodes, &pods5, &revisions));
        assert_eq!(deletes(&actions), ["b"]);
        // OnDelete: nothing is replaced.
        let mut on_delete = d.clone();
        on_delete.spec.as_mut().unwrap().update_strategy = Some(from(json!({"type": "OnDelete"})));
        let actions = reconcile(&on_delete, world(&nodes, &pods, &[old_rev, new_rev]));
        assert!(deletes(&actions).is_empty(), "{actions:?}");
    }

    #[test]
    fn a_rollback_renumbers_the_old_revision_and_history_is_trimmed() {
        let d = ds(containers());
        let (rev1, _) = revision_of(&d, 1);
        let mut other = d.clone();
        other
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("busybox:1.37".into());
        let (rev2, _) = revision_of(&other, 2);
        let actions = reconcile(&d, world(&[], &[], &[rev1.clone(), rev2.clone()]));
        assert_eq!(
            actions[0],
            DaemonAction::SetRevision {
                name: rev1.metadata.name.clone().unwrap(),
                revision: 3
            }
        );
        let mut limited = d.clone();
        limited.spec.as_mut().unwrap().revision_history_limit = Some(0);
        let actions = reconcile(&limited, world(&[], &[], &[rev1, rev2.clone()]));
        assert!(actions.contains(&DaemonAction::DeleteRevision {
            name: rev2.metadata.name.clone().unwrap()
        }));
    }

    #[test]
    fn hashes_are_stable_and_use_the_name_alphabet() {
        let t = json!({"metadata": {"labels": {"app": "x"}}});
        assert_eq!(template_hash(&t, None), template_hash(&t, None));
        assert_ne!(template_hash(&t, None), template_hash(&t, Some(1)));
        assert!(
            template_hash(&t, None)
                .bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        assert_eq!(scaled(Some(&IntOrString::String("25%".into())), 5), 2);
        assert_eq!(scaled(Some(&IntOrString::Int(3)), 5), 3);
    }
}
