//! The scheduler's decision for one pod, as a pure function of the cluster's objects: which
//! Ready node fits (nodeName, nodeSelector, node affinity, taints and tolerations, the node
//! affinity of bound volumes), and the WaitForFirstConsumer dance (pick a node for the unbound
//! claims, set `volume.kubernetes.io/selected-node`, wait until they are Bound, only then bind
//! the pod).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, PersistentVolume, PersistentVolumeClaim, Pod,
    Toleration,
};
use k8s_openapi::api::storage::v1::{CSIDriver, CSIStorageCapacity, StorageClass};

use super::binding::{NO_PROVISIONER, quantity_bytes};

/// The annotation the scheduler puts on a WaitForFirstConsumer claim.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// Pods naming another `schedulerName` are left to that scheduler.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// The objects a scheduling decision reads.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    /// Every node.
    pub nodes: &'a [Arc<Node>],
    /// Every pod (to spread pods over nodes).
    pub pods: &'a [Arc<Pod>],
    /// Every claim.
    pub claims: &'a [Arc<PersistentVolumeClaim>],
    /// Every volume.
    pub volumes: &'a [Arc<PersistentVolume>],
    /// Every class.
    pub classes: &'a [Arc<StorageClass>],
    /// Every CSIDriver (a driver with `storageCapacity: true` has its capacity checked).
    pub drivers: &'a [Arc<CSIDriver>],
    /// Every CSIStorageCapacity, in any namespace.
    pub capacities: &'a [Arc<CSIStorageCapacity>],
}

/// What the scheduler does with a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Not the scheduler's business: `spec.nodeName` is set, another scheduler is named, the
    /// pod is terminal or deleted.
    Skip,
    /// Bind the pod to this node.
    Bind(String),
    /// Annotate these claims (in the pod's namespace) with `selected-node: node` for their
    /// provisioner, point these Available volumes on the node at these claims, then wait.
    SelectNode {
        /// The WaitForFirstConsumer claims for a provisioner, still without a selected node.
        claims: Vec<String>,
        /// The node chosen for them.
        node: String,
        /// WaitForFirstConsumer claims that an existing volume on the node satisfies.
        volumes: Vec<PreBind>,
    },
    /// The pod's WaitForFirstConsumer claims have a node and are not Bound yet.
    WaitForBinding,
    /// No node fits; the message reads like the real scheduler's.
    Unschedulable(String),
}

/// An Available volume the scheduler gives to a claim (`spec.claimRef`); the PV controller
/// completes the binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreBind {
    /// The claim's name (in the pod's namespace).
    pub claim: String,
    /// The claim's uid.
    pub uid: String,
    /// The volume.
    pub volume: String,
}

/// Whether a claim's class has a provisioner that makes volumes on demand.
fn dynamic(claim: &PersistentVolumeClaim, classes: &[Arc<StorageClass>]) -> bool {
    let class = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref());
    class
        .and_then(|name| {
            classes
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
        })
        .is_some_and(|c| !c.provisioner.is_empty() && c.provisioner != NO_PROVISIONER)
}

/// The class of a claim.
fn class_of<'a>(
    claim: &PersistentVolumeClaim,
    classes: &'a [Arc<StorageClass>],
) -> Option<&'a StorageClass> {
    let name = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())?;
    classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .map(|c| &**c)
}

/// Whether the node satisfies the class's `allowedTopologies` (none: every node does): some
/// term whose every expression has the node's label among its values
/// (`MatchTopologySelectorTerms`).
fn topology_allows(class: &StorageClass, node: &Node) -> bool {
    let terms = class.allowed_topologies.as_deref().unwrap_or(&[]);
    let labels = labels(node);
    terms.is_empty()
        || terms.iter().any(|term| {
            term.match_label_expressions
                .iter()
                .flatten()
                .all(|e| labels.get(&e.key).is_some_and(|v| e.values.contains(v)))
        })
}

/// Whether the class's provisioner has room for the claim on the node, as kube-scheduler's
/// volume binder decides (`hasEnoughCapacity` and `capacitySufficient` in
/// pkg/scheduler/framework/plugins/volumebinding/binder.go): no storage request, no CSIDriver
/// named like the provisioner, or a driver without `storageCapacity: true` means no check;
/// otherwise some CSIStorageCapacity of the class whose `nodeTopology` selects the node must
/// offer at least the request — its `maximumVolumeSize` when set (then `capacity` is not
/// looked at), else its `capacity`. An object without `nodeTopology`, or with neither size,
/// offers nothing.
pub fn has_enough_capacity(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &Node,
    drivers: &[Arc<CSIDriver>],
    capacities: &[Arc<CSIStorageCapacity>],
) -> bool {
    let Some(want) = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    else {
        return true;
    };
    let want = quantity_bytes(&want.0).unwrap_or(0);
    let checked = drivers
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(class.provisioner.as_str()))
        .is_some_and(|d| d.spec.storage_capacity == Some(true));
    if !checked {
        return true;
    }
    let labels = serde_json::to_value(labels(node)).unwrap_or_default();
    capacities.iter().any(|c| {
        let limit = c.maximum_volume_size.as_ref().or(c.capacity.as_ref());
        let sufficient = limit
            .and_then(|q| quantity_bytes(&q.0))
            .is_some_and(|have| have >= want);
        let reaches = c
            .node_topology
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|t| crate::sandbox::selector::LabelSelector::from_spec(&t).ok())
            .is_some_and(|sel| sel.matches_labels(Some(&labels)));
        c.storage_class_name == class.metadata.name.as_deref().unwrap_or_default()
            && sufficient
            && reaches
    })
}

/// Why the node cannot take the pod's unbound WaitForFirstConsumer claims, in the volume
/// binding plugin's words, or `None` when it can: each claim needs a volume already given to
/// it, an Available volume on the node, or a provisioner whose class allows the node and has
/// room there.
fn delayed_misfit(
    delayed: &[&PersistentVolumeClaim],
    node: &Node,
    world: World<'_>,
) -> Option<&'static str> {
    let mut short_of_space = false;
    for c in delayed {
        if given(c, world.volumes) || available_on(c, node, world.volumes, &[]).is_some() {
            continue;
        }
        match class_of(c, world.classes) {
            Some(class) if dynamic(c, world.classes) && topology_allows(class, node) => {
                if !has_enough_capacity(c, class, node, world.drivers, world.capacities) {
                    short_of_space = true;
                }
            }
            _ => return Some("node(s) didn't find available persistent volumes to bind"),
        }
    }
    short_of_space.then_some("node(s) did not have enough free storage")
}

/// Whether some volume already points at the claim (given to it, not yet bound).
fn given(claim: &PersistentVolumeClaim, volumes: &[Arc<PersistentVolume>]) -> bool {
    volumes.iter().any(|v| {
        v.spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some_and(|r| {
                r.namespace == claim.metadata.namespace && r.name == claim.metadata.name
            })
    })
}

/// The smallest Available volume on `node` that satisfies the claim (class, size, modes).
fn available_on<'a>(
    claim: &PersistentVolumeClaim,
    node: &Node,
    volumes: &'a [Arc<PersistentVolume>],
    taken: &[String],
) -> Option<&'a PersistentVolume> {
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
    volumes
        .iter()
        .filter(|v| v.metadata.deletion_timestamp.is_none())
        .filter(|v| {
            !taken
                .iter()
                .any(|t| Some(t.as_str()) == v.metadata.name.as_deref())
        })
        .filter_map(|v| {
            let s = v.spec.as_ref()?;
            let phase = v.status.as_ref().and_then(|st| st.phase.as_deref());
            if s.claim_ref.is_some() || phase.is_some_and(|p| p != "Available") {
                return None;
            }
            if s.storage_class_name.clone().unwrap_or_default() != class
                || !modes
                    .iter()
                    .all(|m| s.access_modes.iter().flatten().any(|h| h == m))
                || !volume_fits(node, v)
            {
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

/// Decides where `pod` goes.
pub fn place(pod: &Pod, world: World<'_>) -> Placement {
    let spec = match &pod.spec {
        Some(s) => s,
        None => return Placement::Skip,
    };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let other_scheduler = spec
        .scheduler_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != SCHEDULER_NAME);
    if other_scheduler
        || spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
        || pod.metadata.deletion_timestamp.is_some()
        || matches!(phase, Some("Succeeded" | "Failed"))
    {
        return Placement::Skip;
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);

    // Claims: bound ones constrain nodes through their volume; unbound WaitForFirstConsumer
    // ones need a node picked for them; unbound Immediate ones block scheduling.
    let mut bound_volumes: Vec<&PersistentVolume> = Vec::new();
    let mut delayed: Vec<&PersistentVolumeClaim> = Vec::new();
    for volume in spec.volumes.iter().flatten() {
        let Some(source) = &volume.persistent_volume_claim else {
            continue;
        };
        let Some(claim) = world.claims.iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.name.as_deref() == Some(source.claim_name.as_str())
        }) else {
            return Placement::Unschedulable(format!(
                "0/{} nodes are available: persistentvolumeclaim \"{}\" not found.",
                world.nodes.len(),
                source.claim_name
            ));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Placement::Unschedulable(format!(
                "0/{} nodes are available: persistentvolumeclaim \"{}\" is being deleted.",
                world.nodes.len(),
                source.claim_name
            ));
        }
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .filter(|v| !v.is_empty());
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        match volume_name {
            Some(v) if bound => match world
                .volumes
                .iter()
                .find(|pv| pv.metadata.name.as_deref() == Some(v))
            {
                Some(pv) => bound_volumes.push(pv),
                None => {
                    return Placement::Unschedulable(format!(
                        "0/{} nodes are available: persistentvolume \"{v}\" not found.",
                        world.nodes.len()
                    ));
                }
            },
            _ => {
                if binding_mode(claim, world.classes) == "WaitForFirstConsumer"
                    && volume_name.is_none()
                {
                    delayed.push(claim);
                } else {
                    return Placement::Unschedulable(format!(
                        "0/{} nodes are available: pod has unbound immediate PersistentVolumeClaims.",
                        world.nodes.len()
                    ));
                }
            }
        }
    }

    // Filter the nodes, counting why each one was left out for the message.
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut fits: Vec<&Node> = Vec::new();
    for node in world.nodes {
        let why = if !is_ready(node) {
            Some("node(s) were not ready")
        } else if let Some(taint) = untolerated_taint(node, tolerations) {
            Some(taint)
        } else if !matches_selector(node, spec.node_selector.as_ref())
            || !matches_affinity(node, pod)
        {
            Some("node(s) didn't match Pod's node affinity/selector")
        } else if !bound_volumes.iter().all(|pv| volume_fits(node, pv)) {
            Some("node(s) had volume node affinity conflict")
        } else {
            delayed_misfit(&delayed, node, world)
        };
        match why {
            Some(r) => *reasons.entry(r).or_default() += 1,
            None => fits.push(node),
        }
    }
    if fits.is_empty() {
        let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let detail = if detail.is_empty() {
            String::from("no nodes available to schedule pods")
        } else {
            detail.join(", ")
        };
        return Placement::Unschedulable(format!(
            "0/{} nodes are available: {detail}.",
            world.nodes.len()
        ));
    }

    if !delayed.is_empty() {
        let already: Option<&str> = delayed.iter().find_map(|c| {
            c.metadata
                .annotations
                .as_ref()?
                .get(SELECTED_NODE)
                .map(String::as_str)
        });
        let missing: Vec<&PersistentVolumeClaim> = delayed
            .iter()
            .copied()
            .filter(|c| {
                c.metadata
                    .annotations
                    .as_ref()
                    .is_none_or(|a| !a.contains_key(SELECTED_NODE))
                    && !given(c, world.volumes)
            })
            .collect();
        if missing.is_empty() {
            return Placement::WaitForBinding;
        }
        let node = match already {
            Some(n) if fits.iter().any(|f| f.metadata.name.as_deref() == Some(n)) => n.to_string(),
            _ => least_loaded(&fits, world.pods),
        };
        let Some(chosen) = fits
            .iter()
            .find(|f| f.metadata.name.as_deref() == Some(node.as_str()))
        else {
            return Placement::WaitForBinding;
        };
        // An existing volume on the node first, as the real volume binder does; otherwise
        // the claim's provisioner makes one there.
        let mut claims = Vec::new();
        let mut volumes: Vec<PreBind> = Vec::new();
        for claim in missing {
            let taken: Vec<String> = volumes.iter().map(|p| p.volume.clone()).collect();
            let name = claim.metadata.name.clone().unwrap_or_default();
            match available_on(claim, chosen, world.volumes, &taken) {
                Some(v) => volumes.push(PreBind {
                    claim: name,
                    uid: claim.metadata.uid.clone().unwrap_or_default(),
                    volume: v.metadata.name.clone().unwrap_or_default(),
                }),
                None if dynamic(claim, world.classes) => claims.push(name),
                None => {
                    return Placement::Unschedulable(format!(
                        "0/{} nodes are available: node(s) didn't find available persistent volumes to bind.",
                        world.nodes.len()
                    ));
                }
            }
        }
        return Placement::SelectNode {
            claims,
            node,
            volumes,
        };
    }
    Placement::Bind(least_loaded(&fits, world.pods))
}

/// The binding mode of a claim's class (`Immediate` when the class is missing or says nothing).
pub fn binding_mode<'a>(
    claim: &PersistentVolumeClaim,
    classes: &'a [Arc<StorageClass>],
) -> &'a str {
    let class = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref());
    class
        .and_then(|name| {
            classes
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
        })
        .and_then(|c| c.volume_binding_mode.as_deref())
        .unwrap_or("Immediate")
}

/// Whether the node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The first NoSchedule/NoExecute taint (or `spec.unschedulable`) the tolerations do not cover.
fn untolerated_taint(node: &Node, tolerations: &[Toleration]) -> Option<&'static str> {
    let spec = node.spec.as_ref()?;
    if spec.unschedulable == Some(true)
        && !tolerations
            .iter()
            .any(|t| tolerates(t, "node.kubernetes.io/unschedulable", "", "NoSchedule"))
    {
        return Some("node(s) were unschedulable");
    }
    for taint in spec.taints.iter().flatten() {
        if taint.effect == "PreferNoSchedule" {
            continue;
        }
        let value = taint.value.as_deref().unwrap_or("");
        if !tolerations
            .iter()
            .any(|t| tolerates(t, &taint.key, value, &taint.effect))
        {
            return Some("node(s) had untolerated taint");
        }
    }
    None
}

/// Whether one toleration covers a taint (key, value, effect).
pub fn tolerates(t: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == effect);
    let key_ok = match t.key.as_deref() {
        None | Some("") => t.operator.as_deref() == Some("Exists"),
        Some(k) => k == key,
    };
    let value_ok = match t.operator.as_deref() {
        Some("Exists") => true,
        _ => t.value.as_deref().unwrap_or("") == value,
    };
    effect_ok && key_ok && value_ok
}

fn labels(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

fn matches_selector(node: &Node, selector: Option<&BTreeMap<String, String>>) -> bool {
    let labels = labels(node);
    selector
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
}

fn matches_affinity(node: &Node, pod: &Pod) -> bool {
    let required = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    required.is_none_or(|sel| matches_node_selector(node, sel))
}

fn volume_fits(node: &Node, pv: &PersistentVolume) -> bool {
    let required = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref());
    required.is_none_or(|sel| matches_node_selector(node, sel))
}

/// Whether a node matches a NodeSelector: any term, every requirement of that term.
pub fn matches_node_selector(node: &Node, selector: &NodeSelector) -> bool {
    let labels = labels(node);
    let name = node.metadata.name.clone().unwrap_or_default();
    selector.node_selector_terms.iter().any(|term| {
        let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
        let fields = term.match_fields.as_deref().unwrap_or(&[]);
        if exprs.is_empty() && fields.is_empty() {
            // An empty term matches nothing, as in the real scheduler.
            return false;
        }
        exprs
            .iter()
            .all(|r| requirement(r, labels.get(&r.key).map(String::as_str)))
            && fields
                .iter()
                .all(|r| r.key == "metadata.name" && requirement(r, Some(name.as_str())))
    })
}

fn requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// The fitting node with the fewest live pods; ties go to the first name.
fn least_loaded(fits: &[&Node], pods: &[Arc<Pod>]) -> String {
    let load = |name: &str| {
        pods.iter()
            .filter(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name)
                    && !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
            })
            .count()
    };
    let mut best: Option<(usize, String)> = None;
    for node in fits {
        let name = node.metadata.name.clone().unwrap_or_default();
        let n = load(&name);
        if best
            .as_ref()
            .is_none_or(|(bn, bname)| n < *bn || (n == *bn && name < *bname))
        {
            best = Some((n, name));
        }
    }
    best.map(|(_, n)| n).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn node(name: &str, ready: bool) -> Node {
        from(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
    }

    fn pod(spec: serde_json::Value) -> Pod {
        from(json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}))
    }

    fn wffc() -> StorageClass {
        from(
            json!({"metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
                    "volumeBindingMode": "WaitForFirstConsumer"}),
        )
    }

    fn claim(
        annotations: serde_json::Value,
        volume: Option<&str>,
        phase: &str,
    ) -> PersistentVolumeClaim {
        from(json!({
            "metadata": {"name": "c", "namespace": "default", "annotations": annotations},
            "spec": {"storageClassName": "local-path", "volumeName": volume, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": phase}
        }))
    }

    fn pv_on(node: &str) -> PersistentVolume {
        from(json!({
            "metadata": {"name": "pv"},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}
        }))
    }

    fn place_in(
        pod: &Pod,
        nodes: &[Node],
        claims: &[PersistentVolumeClaim],
        volumes: &[PersistentVolume],
        classes: &[StorageClass],
    ) -> Placement {
        fn shared<K: Clone>(items: &[K]) -> Vec<Arc<K>> {
            items.iter().cloned().map(Arc::new).collect()
        }
        let (nodes, claims, volumes, classes) = (
            shared(nodes),
            shared(claims),
            shared(volumes),
            shared(classes),
        );
        place(
            pod,
            World {
                nodes: &nodes,
                pods: &[],
                claims: &claims,
                volumes: &volumes,
                classes: &classes,
                drivers: &[],
                capacities: &[],
            },
        )
    }

    fn claim_pod() -> Pod {
        pod(
            json!({"containers": [{"name": "c"}], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]}),
        )
    }

    #[test]
    fn picks_a_ready_node_and_skips_pods_with_a_node() {
        let nodes = [node("node-1", false), node("node-2", true)];
        let p = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(
            place_in(&p, &nodes, &[], &[], &[]),
            Placement::Bind("node-2".into())
        );
        let p = pod(json!({"containers": [{"name": "c"}], "nodeName": "node-1"}));
        assert_eq!(place_in(&p, &nodes, &[], &[], &[]), Placement::Skip);
        let p = pod(json!({"containers": [{"name": "c"}], "schedulerName": "my-scheduler"}));
        assert_eq!(place_in(&p, &nodes, &[], &[], &[]), Placement::Skip);
    }

    #[test]
    fn honours_node_selector_and_affinity() {
        let nodes = [node("node-1", true), node("node-2", true)];
        let p = pod(
            json!({"containers": [{"name": "c"}], "nodeSelector": {"kubernetes.io/hostname": "node-2"}}),
        );
        assert_eq!(
            place_in(&p, &nodes, &[], &[], &[]),
            Placement::Bind("node-2".into())
        );
        let p = pod(
            json!({"containers": [{"name": "c"}], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-1"]}]}]}}}}),
        );
        assert_eq!(
            place_in(&p, &nodes, &[], &[], &[]),
            Placement::Bind("node-2".into())
        );
        let p = pod(json!({"containers": [{"name": "c"}], "nodeSelector": {"zone": "mars"}}));
        assert_eq!(
            place_in(&p, &nodes, &[], &[], &[]),
            Placement::Unschedulable(
                "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
                    .into()
            )
        );
    }

    #[test]
    fn honours_taints_and_tolerations() {
        let mut tainted = node("node-1", true);
        tainted.spec = Some(from(
            json!({"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]}),
        ));
        let nodes = [tainted];
        let p = pod(json!({"containers": [{"name": "c"}]}));
        assert!(
            matches!(place_in(&p, &nodes, &[], &[], &[]), Placement::Unschedulable(m) if m.contains("untolerated taint"))
        );
        let p = pod(
            json!({"containers": [{"name": "c"}], "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "x"}]}),
        );
        assert_eq!(
            place_in(&p, &nodes, &[], &[], &[]),
            Placement::Bind("node-1".into())
        );
        let p =
            pod(json!({"containers": [{"name": "c"}], "tolerations": [{"operator": "Exists"}]}));
        assert_eq!(
            place_in(&p, &nodes, &[], &[], &[]),
            Placement::Bind("node-1".into())
        );
    }

    #[test]
    fn the_wait_for_first_consumer_dance() {
        let nodes = [node("node-1", true), node("node-2", true)];
        let classes = [wffc()];
        let p = claim_pod();
        // 1. Unbound, no node: pick one for the claim.
        let claims = [claim(json!({}), None, "Pending")];
        assert_eq!(
            place_in(&p, &nodes, &claims, &[], &classes),
            Placement::SelectNode {
                claims: vec!["c".into()],
                node: "node-1".into(),
                volumes: vec![]
            }
        );
        // 2. Node selected, not Bound yet: wait; the pod stays unscheduled.
        let claims = [claim(json!({SELECTED_NODE: "node-2"}), None, "Pending")];
        assert_eq!(
            place_in(&p, &nodes, &claims, &[], &classes),
            Placement::WaitForBinding
        );
        // 3. Bound to a volume on node-2: the pod goes there.
        let claims = [claim(json!({SELECTED_NODE: "node-2"}), Some("pv"), "Bound")];
        let volumes = [pv_on("node-2")];
        assert_eq!(
            place_in(&p, &nodes, &claims, &volumes, &classes),
            Placement::Bind("node-2".into())
        );
    }

    #[test]
    fn wait_for_first_consumer_claims_take_an_available_volume_on_a_fitting_node() {
        let nodes = [node("node-1", true), node("node-2", true)];
        let classes: [StorageClass; 1] = [from(json!({"metadata": {"name": "local-path"},
            "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}))];
        let claims = [claim(json!({}), None, "Pending")];
        let mut pv = pv_on("node-2");
        pv.metadata.name = Some("local-pv".into());
        pv.spec.as_mut().unwrap().storage_class_name = Some("local-path".into());
        pv.spec.as_mut().unwrap().access_modes = Some(vec!["ReadWriteOnce".into()]);
        pv.spec.as_mut().unwrap().capacity = Some(
            [(
                "storage".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("2Gi".into()),
            )]
            .into(),
        );
        let volumes = [pv];
        assert_eq!(
            place_in(&claim_pod(), &nodes, &claims, &volumes, &classes),
            Placement::SelectNode {
                claims: vec![],
                node: "node-2".into(),
                volumes: vec![PreBind {
                    claim: "c".into(),
                    uid: String::new(),
                    volume: "local-pv".into()
                }]
            }
        );
        // No such volume and no provisioner: nowhere to go.
        assert!(matches!(
            place_in(&claim_pod(), &nodes, &claims, &[], &classes),
            Placement::Unschedulable(m) if m.contains("didn't find available persistent volumes")
        ));
    }

    #[test]
    fn immediate_unbound_claims_and_missing_claims_block() {
        let nodes = [node("node-1", true)];
        let p = claim_pod();
        let claims = [claim(json!({}), None, "Pending")];
        assert!(
            matches!(place_in(&p, &nodes, &claims, &[], &[]), Placement::Unschedulable(m) if m.contains("unbound immediate"))
        );
        assert!(
            matches!(place_in(&p, &nodes, &[], &[], &[]), Placement::Unschedulable(m) if m.contains("not found"))
        );
    }

    #[test]
    fn volume_affinity_matches_the_hostname_label_not_the_node_name() {
        let mut cloud = node("node-2", true);
        cloud.metadata.labels = Some(
            [(
                "kubernetes.io/hostname".to_string(),
                "ip-10-0-0-2".to_string(),
            )]
            .into(),
        );
        let nodes = [node("node-1", true), cloud];
        let claims = [claim(json!({}), Some("pv"), "Bound")];
        assert_eq!(
            place_in(
                &claim_pod(),
                &nodes,
                &claims,
                &[pv_on("ip-10-0-0-2")],
                &[wffc()]
            ),
            Placement::Bind("node-2".into())
        );
        assert!(matches!(
            place_in(&claim_pod(), &nodes, &claims, &[pv_on("node-2")], &[wffc()]),
            Placement::Unschedulable(m) if m.contains("2 node(s) had volume node affinity conflict")
        ));
    }

    #[test]
    fn csi_storage_capacity_limits_where_claims_are_provisioned() {
        use k8s_openapi::api::storage::v1::{CSIDriver, CSIStorageCapacity};
        let nodes: Vec<Arc<Node>> = ["node-1", "node-2"]
            .into_iter()
            .map(|n| Arc::new(node(n, true)))
            .collect();
        let class: StorageClass = from(json!({"metadata": {"name": "local-path"},
            "provisioner": "local.csi.example.com", "volumeBindingMode": "WaitForFirstConsumer"}));
        let classes = [Arc::new(class)];
        let claims = [Arc::new(claim(json!({}), None, "Pending"))];
        let driver = |capacity: bool| -> Arc<CSIDriver> {
            Arc::new(from(json!({"metadata": {"name": "local.csi.example.com"},
                                 "spec": {"storageCapacity": capacity}})))
        };
        let capacity =
            |class: &str, node: Option<&str>, capacity: Option<&str>, max: Option<&str>| {
                Arc::new(from::<CSIStorageCapacity>(json!({
                "metadata": {"name": "c", "namespace": "kube-system"},
                "storageClassName": class,
                "nodeTopology": node.map(|n| json!({"matchLabels": {"kubernetes.io/hostname": n}})),
                "capacity": capacity, "maximumVolumeSize": max})))
            };
        let decide = |drivers: &[Arc<CSIDriver>], capacities: &[Arc<CSIStorageCapacity>]| {
            place(
                &claim_pod(),
                World {
                    nodes: &nodes,
                    pods: &[],
                    claims: &claims,
                    volumes: &[],
                    classes: &classes,
                    drivers,
                    capacities,
                },
            )
        };
        let on = |node: &str| Placement::SelectNode {
            claims: vec!["c".into()],
            node: node.into(),
            volumes: vec![],
        };
        let full = Placement::Unschedulable(
            "0/2 nodes are available: 2 node(s) did not have enough free storage.".into(),
        );
        let room_on_2 = [capacity("local-path", Some("node-2"), Some("10Gi"), None)];
        // No driver, or a driver that does not opt in: no check.
        assert_eq!(decide(&[], &[]), on("node-1"));
        assert_eq!(decide(&[driver(false)], &[]), on("node-1"));
        // Opted in: only where an object of the class reaches the node with room.
        assert_eq!(decide(&[driver(true)], &room_on_2), on("node-2"));
        assert_eq!(decide(&[driver(true)], &[]), full);
        for c in [
            capacity("local-path", Some("node-2"), Some("512Mi"), None),
            capacity("other", Some("node-2"), Some("10Gi"), None),
            capacity("local-path", None, Some("10Gi"), None),
            capacity("local-path", Some("node-2"), None, None),
            // maximumVolumeSize, when set, is what counts.
            capacity("local-path", Some("node-2"), Some("10Gi"), Some("512Mi")),
        ] {
            assert_eq!(
                decide(&[driver(true)], std::slice::from_ref(&c)),
                full,
                "{c:?}"
            );
        }
        let max_only = capacity("local-path", Some("node-2"), Some("0"), Some("1Gi"));
        assert_eq!(decide(&[driver(true)], &[max_only]), on("node-2"));
    }

    #[test]
    fn a_class_allowed_topology_limits_where_claims_are_provisioned() {
        let nodes = [node("node-1", true), node("node-2", true)];
        let class: StorageClass = from(json!({"metadata": {"name": "local-path"},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer",
            "allowedTopologies": [{"matchLabelExpressions": [
                {"key": "kubernetes.io/hostname", "values": ["node-2"]}]}]}));
        let claims = [claim(json!({}), None, "Pending")];
        assert_eq!(
            place_in(&claim_pod(), &nodes, &claims, &[], &[class]),
            Placement::SelectNode {
                claims: vec!["c".into()],
                node: "node-2".into(),
                volumes: vec![]
            }
        );
    }

    #[test]
    fn a_bound_volume_on_another_node_conflicts() {
        let nodes = [node("node-1", true)];
        let claims = [claim(json!({}), Some("pv"), "Bound")];
        let volumes = [pv_on("node-2")];
        assert!(matches!(
            place_in(&claim_pod(), &nodes, &claims, &volumes, &[wffc()]),
            Placement::Unschedulable(m) if m.contains("volume node affinity conflict")
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        struct NodeSpec {
            ready: bool,
            zone: u8,
            tainted: bool,
        }

        fn node_strategy() -> impl Strategy<Value = NodeSpec> {
            (any::<bool>(), 0u8..3, any::<bool>()).prop_map(|(ready, zone, tainted)| NodeSpec {
                ready,
                zone,
                tainted,
            })
        }

        fn build(i: usize, n: &NodeSpec) -> Node {
            let name = format!("node-{i}");
            let taints = if n.tainted {
                json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
            } else {
                json!([])
            };
            from(json!({
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "zone": format!("z{}", n.zone)}},
                "spec": {"taints": taints},
                "status": {"conditions": [{"type": "Ready", "status": if n.ready {"True"} else {"False"}}]}
            }))
        }

        proptest! {
            /// A bound pod lands on a Ready node that matches its selector and tolerates the
            /// node's taints; an unschedulable one had no such node.
            #[test]
            fn placement_respects_every_filter(
                specs in proptest::collection::vec(node_strategy(), 0..6),
                zone in proptest::option::of(0u8..3),
                tolerates in any::<bool>(),
            ) {
                let nodes: Vec<Node> = specs.iter().enumerate().map(|(i, n)| build(i, n)).collect();
                let mut spec = json!({"containers": [{"name": "c"}]});
                if let Some(z) = zone {
                    spec["nodeSelector"] = json!({"zone": format!("z{z}")});
                }
                if tolerates {
                    spec["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
                }
                let p = pod(spec);
                let fits = |n: &NodeSpec| {
                    n.ready && (!n.tainted || tolerates) && zone.is_none_or(|z| z == n.zone)
                };
                let placement = place_in(&p, &nodes, &[], &[], &[]);
                match placement {
                    Placement::Bind(name) => {
                        let i: usize = name.trim_start_matches("node-").parse().unwrap();
                        prop_assert!(fits(&specs[i]), "{name} does not fit: {:?}", specs[i]);
                    }
                    Placement::Unschedulable(_) => prop_assert!(!specs.iter().any(fits)),
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }
}
