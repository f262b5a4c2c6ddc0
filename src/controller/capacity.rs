//! What the run knows of the nodes' disks, and what it does with it: the usage refresh
//! (`--usage-interval`), a node measured on demand for a claim whose class needs it, the usage
//! metrics, the `VolumeOverRequest` warning (once per crossing), the `MountGuardFailed`
//! warning (once per change), and handing a claim back to the scheduler when its node cannot
//! host it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use super::Context;
use super::metrics::{PathLabels, VolumeLabels};
use crate::capacity::measure::{self, Measured, NodeJob, VolumeOnNode};
use crate::config::{BasePaths, ConfigMapContents};
use crate::provision::capacity::{
    Budget, CAPACITY_FOR, capacity_object, capacity_object_name, guard, needs_usage, offer,
    trackable,
};
use crate::provision::events::PROVISIONING_FAILED;
use crate::provision::volume::{
    CLAIM_SELECTED_NODE, DEFAULT_NODE_AFFINITY_KEY, MAX_RESCHEDULES, RESCHEDULES,
};
use crate::provision::{NodeCapacity, Reschedule};
use crate::ui::bytes;

/// The Warning event on a claim whose volume uses more than it asked for.
pub const VOLUME_OVER_REQUEST: &str = "VolumeOverRequest";
/// The Warning event on the ConfigMap when a base path fails its mount guard.
pub const MOUNT_GUARD_FAILED: &str = "MountGuardFailed";

/// How old a measurement may be for a decision when the refresh is off.
const STALE_WITHOUT_REFRESH: Duration = Duration::from_secs(60);

/// One node's last measurement.
#[derive(Clone)]
struct Entry {
    at: Instant,
    /// What was probed: the base paths and those told through their parent.
    planned: (Vec<String>, BTreeSet<String>),
    result: Result<Measured, String>,
}

/// The run's knowledge of the nodes' disks.
#[derive(Default)]
pub(crate) struct Usage {
    nodes: Mutex<HashMap<String, Entry>>,
    /// One probe per node at a time.
    probing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Volumes (PV names) over their request: warned once per crossing.
    over: Mutex<HashSet<String>>,
    /// Base paths failing their guard, by node and path, with why: warned once per change.
    failing: Mutex<HashMap<(String, String), String>>,
}

/// The base paths of `node` and those whose mount point is told through their parent (the
/// ones a guard requires it of).
fn planned(contents: &ConfigMapContents, node: &str) -> (Vec<String>, BTreeSet<String>) {
    let bases = measure::bases_on(&contents.config, node);
    let checked = bases
        .iter()
        .filter(|b| {
            contents
                .config
                .path_options
                .get(*b)
                .is_some_and(|o| o.require_mount_point)
        })
        .cloned()
        .collect();
    (bases, checked)
}

fn volumes_of(context: &Context, node: &Node, bases: &[String]) -> Vec<VolumeOnNode> {
    let all = context.stores.volumes.state();
    measure::volumes_on(all.iter().map(AsRef::as_ref), node, bases)
}

impl Usage {
    fn lock_for(&self, node: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut probing) = self.probing.lock() else {
            return Arc::default();
        };
        Arc::clone(probing.entry(node.to_owned()).or_default())
    }

    fn fresh(
        &self,
        node: &str,
        planned: &(Vec<String>, BTreeSet<String>),
        max_age: Duration,
    ) -> Option<Result<Measured, String>> {
        let nodes = self.nodes.lock().ok()?;
        let entry = nodes.get(node)?;
        (entry.at.elapsed() <= max_age && entry.planned == *planned).then(|| entry.result.clone())
    }

    fn keep(
        &self,
        node: &str,
        planned: (Vec<String>, BTreeSet<String>),
        result: Result<Measured, String>,
    ) {
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.insert(
                node.to_owned(),
                Entry {
                    at: Instant::now(),
                    planned,
                    result,
                },
            );
        }
    }

    fn forget_except(&self, nodes: &HashSet<String>) {
        if let Ok(mut known) = self.nodes.lock() {
            known.retain(|n, _| nodes.contains(n));
        }
    }
}

/// How old a measurement may be for a decision.
fn max_age(context: &Context) -> Duration {
    let interval = context.options.usage_interval;
    if interval.is_zero() {
        STALE_WITHOUT_REFRESH
    } else {
        interval * 2
    }
}

/// The node's measurement, measured now when the last one is too old (one probe per node at a
/// time: claims arriving together share it).
async fn measurement(
    context: &Context,
    contents: &ConfigMapContents,
    node: &Node,
) -> Result<Measured, String> {
    let name = node.name_any();
    let plan = planned(contents, &name);
    let usage = &context.usage;
    if let Some(result) = usage.fresh(&name, &plan, max_age(context)) {
        return result;
    }
    let lock = usage.lock_for(&name);
    let _probing = lock.lock().await;
    if let Some(result) = usage.fresh(&name, &plan, max_age(context)) {
        return result;
    }
    let helpers = super::operation::helper_pods_of(&context.options, contents.helper_pod.clone())?;
    let volumes = volumes_of(context, node, &plan.0);
    tracing::debug!("measuring the disks of node {name} for a claim");
    let result = if measure::is_ready(node) {
        measure::measure_node(
            &context.executor,
            &helpers,
            &name,
            &plan.0,
            &plan.1,
            &volumes,
            contents.config.cmd_timeout,
        )
        .await
    } else {
        Err("not Ready: not measured".to_owned())
    };
    usage.keep(&name, plan, result.clone());
    result
}

/// What a claim of `class` on `node` needs to know of the node's disks: `None` when its
/// class and paths need nothing; Err (worth a retry) when it needs a budget or a mount guard
/// checked and the node cannot be measured. Without a budget or a guard, a node that cannot be
/// measured is said in the result, and `mostFree` falls back to random.
pub(crate) async fn for_claim(
    context: &Context,
    contents: &ConfigMapContents,
    class: Option<&StorageClass>,
    node: Option<&Node>,
) -> Result<Option<NodeCapacity>, String> {
    let (Some(class), Some(node)) = (class, node) else {
        return Ok(None);
    };
    let name = node.name_any();
    let config = &contents.config;
    let Ok(BasePaths::Node(paths)) = config.paths_for(&class.name_any(), &name) else {
        return Ok(None);
    };
    if !needs_usage(class, paths, &config.path_options) {
        return Ok(None);
    }
    let strict = Budget::of_class(class).ok().flatten().is_some()
        || paths
            .iter()
            .any(|p| config.path_options.get(p).is_some_and(|o| o.guards()));
    let result = measurement(context, contents, node).await;
    let bases = measure::bases_on(config, &name);
    let volumes = volumes_of(context, node, &bases);
    match result {
        Ok(m) => Ok(Some(measure::node_capacity(Ok(&m), &volumes))),
        Err(why) if strict => Err(format!("cannot measure the disks of node {name}: {why}")),
        Err(why) => Ok(Some(measure::node_capacity(Err(&why), &volumes))),
    }
}

/// What `base` on `node` has for a volume of `class` to grow into, from the node's measurement:
/// with the class's `capacityBudget`, its room (available times overcommit, less what its
/// volumes were promised and do not use yet, the growing one's current size included), with a
/// note saying so for messages; without, what it has available. `None` when the path is not
/// measured (not a configured base path, or the node cannot be measured): the caller measures
/// it itself.
pub(crate) async fn room_to_grow(
    context: &Context,
    contents: &ConfigMapContents,
    class: Option<&StorageClass>,
    node: &str,
    base: &str,
) -> Option<(u64, String)> {
    let node = context
        .stores
        .nodes
        .get(&kube::runtime::reflector::ObjectRef::new(node))?;
    let measured = measurement(context, contents, &node).await.ok()?;
    let usage = measured.usage(base)?;
    match class.and_then(|c| Budget::of_class(c).ok().flatten()) {
        Some(budget) => {
            let bases = measure::bases_on(&contents.config, &node.name_any());
            let volumes = volumes_of(context, &node, &bases);
            let capacity = measure::node_capacity(Ok(&measured), &volumes);
            let room =
                crate::provision::capacity::room(base, &usage, &capacity.placed, budget.overcommit);
            Some((
                room.left,
                " (capacityBudget: room its volumes were not promised)".into(),
            ))
        }
        None => Some((usage.available_bytes, String::new())),
    }
}

/// Hands a claim back to the scheduler, as the external-provisioner library's
/// `rescheduleProvisioning` does: a ProvisioningFailed event naming the node and why, then the
/// claim's `volume.kubernetes.io/selected-node` removed (and lpp's count of hand-backs set) in
/// one write conditional on the claim's resourceVersion.
pub(crate) async fn reschedule(
    context: &Context,
    claim: &PersistentVolumeClaim,
    r: &Reschedule,
) -> Result<(), String> {
    let name = claim.name_any();
    let namespace = claim.namespace().unwrap_or_default();
    let message = format!(
        "node {} cannot host the claim: {}; removed its selected node so that the scheduler picks another (reschedule {} of {MAX_RESCHEDULES})",
        r.node, r.reason, r.attempt
    );
    tracing::warn!("claim {namespace}/{name}: {message}");
    super::events::record(
        &context.client,
        &context.options.provisioner_name,
        claim,
        true,
        PROVISIONING_FAILED,
        &message,
    )
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(context.client.clone(), &namespace);
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": claim.resource_version(),
            "annotations": {
                CLAIM_SELECTED_NODE: null,
                RESCHEDULES: r.attempt.to_string(),
            }
        }
    });
    claims
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|e| {
            format!(
                "cannot remove the claim's selected node: {}",
                crate::cluster::describe(&e)
            )
        })
}

/// Refreshes every node's measurement every `--usage-interval` until the run stops (never
/// returns); with an interval of 0, does nothing.
pub(crate) async fn follow(context: &Arc<Context>) {
    let interval = context.options.usage_interval;
    if interval.is_zero() {
        return std::future::pending().await;
    }
    loop {
        if context.stores.ready().await.is_ok() {
            refresh(context).await;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = context.stopping.cancelled() => return std::future::pending().await,
        }
    }
}

/// One refresh: every node measured, then the metrics, warnings and capacity objects updated.
async fn refresh(context: &Arc<Context>) {
    let contents = match super::operation::contents(context).await {
        Ok(c) => c,
        Err(why) => {
            tracing::debug!("usage refresh skipped: {why}");
            return;
        }
    };
    let kind = context.options.executor.or(contents.config.executor);
    if kind != Some(crate::config::ExecutorKind::Agent) && !context.options.usage_with_helper_pods {
        tracing::debug!(
            "usage refresh skipped: it would start a helper pod per node (give --usage-interval, \
             or use the agent executor)"
        );
        return;
    }
    let helpers =
        match super::operation::helper_pods_of(&context.options, contents.helper_pod.clone()) {
            Ok(h) => h,
            Err(why) => {
                tracing::debug!("usage refresh skipped: {why}");
                return;
            }
        };
    let nodes = context.stores.nodes.state();
    let jobs: Vec<NodeJob> = nodes
        .iter()
        .map(|n| {
            let name = n.name_any();
            let (bases, mount_checked) = planned(&contents, &name);
            NodeJob {
                ready: measure::is_ready(n),
                volumes: volumes_of(context, n, &bases),
                node: name,
                bases,
                mount_checked,
            }
        })
        .filter(|j| !j.bases.is_empty())
        .collect();
    let started = Instant::now();
    let results = measure::measure_all(
        &context.executor,
        &helpers,
        jobs,
        contents.config.cmd_timeout,
        |_| {},
    )
    .await;
    tracing::debug!(
        "measured the disks of {} node(s) in {:.1}s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    let names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    context.usage.forget_except(&names);
    for (job, result) in &results {
        if let Err(why) = result {
            tracing::debug!("node {}: disks not measured: {why}", job.node);
        }
        context.usage.keep(
            &job.node,
            (job.bases.clone(), job.mount_checked.clone()),
            result.clone(),
        );
    }
    publish_metrics(context, &results);
    warn_over_request(context, &results).await;
    warn_guards(context, &contents, &results).await;
    if let Err(why) = publish_capacities(context, &contents, &results).await {
        tracing::warn!("CSIStorageCapacity objects not updated: {why}");
    }
}

/// Keeps one CSIStorageCapacity per node and class of a provisioner name this run serves that
/// can have a CSIDriver (no slash; `--capacity-tracking`), from this refresh: created, replaced
/// when what the node offers changed, deleted when the node or class went. A node that could
/// not be measured this time keeps its last object.
async fn publish_capacities(
    context: &Context,
    contents: &ConfigMapContents,
    results: &[(NodeJob, Result<Measured, String>)],
) -> Result<(), String> {
    use k8s_openapi::api::storage::v1::CSIStorageCapacity;
    use kube::api::{DeleteParams, ListParams, PostParams};
    let options = &context.options;
    if !options.extra_provisioner_names.iter().any(|p| trackable(p)) {
        return Ok(());
    }
    let classes: Vec<_> = context
        .stores
        .classes
        .state()
        .into_iter()
        .filter(|c| options.serves(&c.provisioner) && trackable(&c.provisioner))
        .collect();
    let nodes = context.stores.nodes.state();
    let mut wanted: HashMap<String, CSIStorageCapacity> = HashMap::new();
    let mut kept: HashSet<String> = HashSet::new();
    for class in &classes {
        let class_name = class.name_any();
        let overcommit = Budget::of_class(class)
            .ok()
            .flatten()
            .map_or(1.0, |b| b.overcommit);
        let key = class
            .parameters
            .as_ref()
            .and_then(|p| p.get("nodeAffinityKey"))
            .filter(|k| !k.is_empty())
            .map_or(DEFAULT_NODE_AFFINITY_KEY, String::as_str);
        for node in &nodes {
            let name = node.name_any();
            let Some(value) = node.labels().get(key) else {
                continue;
            };
            let Ok(BasePaths::Node(paths)) = contents.config.paths_for(&class_name, &name) else {
                continue;
            };
            let object_name = capacity_object_name(&class_name, &name);
            let Some((job, result)) = results.iter().find(|(j, _)| j.node == name) else {
                continue;
            };
            let Ok(measured) = result else {
                kept.insert(object_name);
                continue;
            };
            let capacity = measure::node_capacity(Ok(measured), &job.volumes);
            let Some(offer) = offer(
                &name,
                paths,
                &contents.config.path_options,
                &capacity,
                overcommit,
            ) else {
                kept.insert(object_name);
                continue;
            };
            wanted.insert(
                object_name,
                capacity_object(&options.namespace, &class_name, &name, (key, value), offer),
            );
        }
    }
    let api: Api<CSIStorageCapacity> = Api::namespaced(context.client.clone(), &options.namespace);
    let existing = api
        .list(&ListParams::default().labels(CAPACITY_FOR))
        .await
        .map_err(|e| crate::cluster::request_failed("list", "csistoragecapacities", &e))?
        .items;
    for old in &existing {
        let name = old.name_any();
        if wanted.contains_key(&name) || kept.contains(&name) {
            continue;
        }
        tracing::info!("capacity {name}: its node or class is gone; deleted");
        api.delete(&name, &DeleteParams::default())
            .await
            .map_err(|e| {
                crate::cluster::request_failed("delete", &format!("csistoragecapacity {name}"), &e)
            })?;
    }
    for (name, mut object) in wanted {
        match existing.iter().find(|o| o.name_any() == name) {
            None => {
                api.create(&PostParams::default(), &object)
                    .await
                    .map_err(|e| {
                        crate::cluster::request_failed(
                            "create",
                            &format!("csistoragecapacity {name}"),
                            &e,
                        )
                    })?;
                tracing::debug!("capacity {name}: created");
            }
            Some(old)
                if old.capacity != object.capacity
                    || old.maximum_volume_size != object.maximum_volume_size
                    || old.node_topology != object.node_topology =>
            {
                object.metadata.resource_version = old.resource_version();
                api.replace(&name, &PostParams::default(), &object)
                    .await
                    .map_err(|e| {
                        crate::cluster::request_failed(
                            "update",
                            &format!("csistoragecapacity {name}"),
                            &e,
                        )
                    })?;
                tracing::debug!("capacity {name}: updated");
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn publish_metrics(context: &Context, results: &[(NodeJob, Result<Measured, String>)]) {
    let mut paths = Vec::new();
    let mut volumes = Vec::new();
    for (job, result) in results {
        let Ok(measured) = result else { continue };
        for base in &job.bases {
            if let Some(u) = measured.usage(base) {
                paths.push((
                    PathLabels {
                        node: job.node.clone(),
                        path: base.clone(),
                    },
                    u.capacity_bytes,
                    u.available_bytes,
                ));
            }
        }
        for v in &job.volumes {
            if let Some(used) = measured.used(&v.path) {
                let (namespace, claim) = v
                    .claim
                    .as_ref()
                    .map(|(ns, name, _)| (ns.clone(), name.clone()))
                    .unwrap_or_default();
                volumes.push((
                    VolumeLabels {
                        node: job.node.clone(),
                        path: v.path.clone(),
                        namespace,
                        claim,
                    },
                    used,
                ));
            }
        }
    }
    context.metrics.usage(&paths, &volumes);
}

/// A `VolumeOverRequest` Warning on the claim of each volume that went over its request since
/// the last look (not again while it stays over; again if it goes under and over once more).
async fn warn_over_request(context: &Context, results: &[(NodeJob, Result<Measured, String>)]) {
    let mut crossed = Vec::new();
    {
        let Ok(mut over) = context.usage.over.lock() else {
            return;
        };
        for (job, result) in results {
            let Ok(measured) = result else { continue };
            for v in &job.volumes {
                let Some(used) = measured.used(&v.path) else {
                    continue;
                };
                if used > v.request_bytes {
                    if over.insert(v.name.clone()) {
                        crossed.push((job.node.clone(), v.clone(), used));
                    }
                } else {
                    over.remove(&v.name);
                }
            }
        }
    }
    for (node, v, used) in crossed {
        let Some((namespace, name, uid)) = v.claim.clone() else {
            continue;
        };
        let message = format!(
            "volume {} uses {} on {node}:{}, more than the {} its claim requested (a local-path volume is not limited to its request: the disk is shared)",
            v.name,
            bytes(used),
            v.path,
            bytes(v.request_bytes)
        );
        tracing::warn!("claim {namespace}/{name}: {message}");
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace),
                uid: Some(uid),
                ..ObjectMeta::default()
            },
            ..PersistentVolumeClaim::default()
        };
        super::events::record(
            &context.client,
            &context.options.provisioner_name,
            &claim,
            true,
            VOLUME_OVER_REQUEST,
            &message,
        )
        .await;
    }
}

/// A `MountGuardFailed` Warning on the ConfigMap for each base path that starts failing its
/// mount guard (or fails it for another reason), so that `lpp status` shows it.
async fn warn_guards(
    context: &Context,
    contents: &ConfigMapContents,
    results: &[(NodeJob, Result<Measured, String>)],
) {
    let mut fresh = Vec::new();
    {
        let Ok(mut failing) = context.usage.failing.lock() else {
            return;
        };
        for (job, result) in results {
            for base in &job.bases {
                let usage = result.as_ref().ok().and_then(|m| m.usage(base));
                let key = (job.node.clone(), base.clone());
                match guard(
                    &job.node,
                    base,
                    contents.config.path_options.get(base),
                    usage.as_ref(),
                    result.as_ref().err().map(String::as_str),
                ) {
                    Ok(()) => {
                        failing.remove(&key);
                    }
                    Err(why) => {
                        if failing.get(&key) != Some(&why) {
                            failing.insert(key, why.clone());
                            fresh.push(why);
                        }
                    }
                }
            }
        }
    }
    let options = &context.options;
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(options.config_map.clone()),
            namespace: Some(options.namespace.clone()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    for why in fresh {
        let message = format!("{why}: no volume goes there until it passes");
        tracing::warn!("{message}");
        super::events::record(
            &context.client,
            &options.provisioner_name,
            &map,
            true,
            MOUNT_GUARD_FAILED,
            &message,
        )
        .await;
    }
}
