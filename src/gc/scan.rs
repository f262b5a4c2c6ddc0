//! The cluster side of `lpp gc`: read the live config, run one inventory helper pod per node,
//! read every PV and claim, and hand it all to the pure [`super::classify`].

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, ResourceExt};
use serde::Serialize;

use super::classify::{Findings, NodeVolumes, Scanned, VolumeRecord, classify, node_view};
use super::inventory::{self, Listing};
use super::{Error, ScanOptions};
use crate::cluster;
use crate::config::{ConfigMapContents, ExecutorKind, Storage};
use crate::executor::Executor;
use crate::provision::helper_pod::{HelperPods, HostDir, HostPathType, ScriptJob};
use crate::ui::Ui;

/// The service account helper pods run as, as upstream's install names it.
const SERVICE_ACCOUNT: &str = crate::upstream::SERVICE_ACCOUNT;
/// How many nodes are scanned at once.
const CONCURRENT_NODES: usize = 8;

/// How one node's scan went.
#[derive(Debug, Clone, Serialize)]
pub struct NodeScan {
    /// The node's name.
    pub node: String,
    /// `scanned`, or why it was not.
    pub status: String,
    /// Whether the node's scan is complete: true when it was inventoried or has no base paths
    /// to inventory; false when it was not Ready, its helper pod failed or its output did not
    /// parse.
    pub ok: bool,
    /// The base paths looked at on the node; empty when the config names none there.
    pub base_paths: Vec<String>,
}

/// Everything a scan learned, and what runs the prune's jobs the same way.
pub struct Scan {
    /// The orphans and missing directories found.
    pub findings: Findings,
    /// How the scan of each node went, sorted by node name.
    pub nodes: Vec<NodeScan>,
    /// How the prune's helper pods are made: the ConfigMap's template, with `--helper-image`.
    pub helpers: HelperPods,
    /// How long one helper pod may run: the config's `cmdTimeoutSeconds`.
    pub timeout: Duration,
    /// Runs the scan's and the prune's helper pods, all observed on one shared watch.
    pub executor: Executor,
    /// Every node of the cluster, by name.
    pub known_nodes: BTreeSet<String>,
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("findings", &self.findings)
            .field("nodes", &self.nodes)
            .field("helpers", &self.helpers)
            .field("timeout", &self.timeout)
            .field("known_nodes", &self.known_nodes)
            .finish_non_exhaustive()
    }
}

/// Runs the scan: config, nodes, volumes, inventories, then volumes and claims again.
pub async fn scan(client: &kube::Client, ui: &Ui, options: &ScanOptions) -> Result<Scan, Error> {
    let (contents, helpers) = configured(
        client,
        &options.namespace,
        &options.config_map,
        options.helper_image.as_deref(),
    )
    .await?;
    let timeout = contents.config.cmd_timeout;
    if let Some(class) = &options.storage_class {
        check_class(client, &contents, class, &options.provisioner_name).await?;
    }
    let (nodes, known_nodes) = select_nodes(client, &options.nodes).await?;
    // Each inventory looks for the PVs that may use its node, to see where they really are.
    let (before, _, _) = read_volumes(client, &options.provisioner_name).await?;
    let executor = Executor::start(client.clone(), &options.namespace, false);
    let bar = ui.progress(nodes.len() as u64, "scanning nodes");
    let jobs = nodes.iter().map(|node| {
        let bases = bases_on(
            &contents,
            options.storage_class.as_deref(),
            &node.name_any(),
        );
        let on_node = volumes_on(&before, &node.name_any(), &known_nodes);
        let helpers = &helpers;
        let executor = &executor;
        let bar = &bar;
        async move {
            let result = inventory_node(executor, helpers, node, &bases, &on_node, timeout).await;
            bar.inc(1);
            result
        }
    });
    let results: Vec<(NodeScan, Vec<Scanned>, Option<NodeVolumes>)> = futures::stream::iter(jobs)
        .buffer_unordered(CONCURRENT_NODES)
        .collect()
        .await;
    bar.finish_and_clear();
    // Read again: what a PV or claim took during the inventories is not listed. (A PV made
    // since is compared by its path only; `gc prune` checks it on the node before acting.)
    let (volumes, pending, claims) = read_volumes(client, &options.provisioner_name).await?;
    let mut node_scans = Vec::new();
    let mut scanned = Vec::new();
    let mut views = Vec::new();
    for (node, listings, view) in results {
        if let Some(why) = view.as_ref().and_then(NodeVolumes::held) {
            ui.warn(&format!(
                "node {}: its orphans are listed but not pruned: {why}",
                node.node
            ));
        }
        node_scans.push(node);
        scanned.extend(listings);
        views.extend(view);
    }
    node_scans.sort_by(|a, b| a.node.cmp(&b.node));
    scanned.sort_by(|a, b| (&a.node, &a.base).cmp(&(&b.node, &b.base)));
    let cutoff = jiff::Timestamp::now().as_second()
        - i64::try_from(options.older_than.as_secs()).unwrap_or(i64::MAX);
    let findings = classify(&scanned, &views, &volumes, &pending, &claims, cutoff);
    Ok(Scan {
        findings,
        nodes: node_scans,
        helpers,
        timeout,
        executor,
        known_nodes,
    })
}

/// The PVs that may use `node`'s directories: those on it, those on no node (a shared
/// filesystem, no affinity), and those whose node is not one of `known` (an affinity on another
/// label than the node's name): a PV counts wherever it might be.
pub fn volumes_on<'a>(
    volumes: &'a [VolumeRecord],
    node: &str,
    known: &BTreeSet<String>,
) -> Vec<&'a VolumeRecord> {
    volumes
        .iter()
        .filter(|v| {
            v.node
                .as_deref()
                .is_none_or(|n| n == node || !known.contains(n))
        })
        .collect()
}

/// Each base path mounted read-only as itself; like upstream's helper pods, a missing one is
/// created (empty), so a node that never held volumes scans (or is measured) cleanly.
pub(crate) fn base_mounts(bases: &[String]) -> Vec<HostDir> {
    bases
        .iter()
        .map(|b| HostDir {
            path: b.clone(),
            mount_path: None,
            kind: HostPathType::DirectoryOrCreate,
            read_only: true,
        })
        .collect()
}

/// The provisioner's ConfigMap `namespace/name`, parsed, and the helper pods its template
/// makes (gc and `lpp usage`).
pub(crate) async fn configured(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    helper_image: Option<&str>,
) -> Result<(ConfigMapContents, HelperPods), Error> {
    let contents = read_config(client, namespace, name).await?;
    let helpers = HelperPods::new(
        contents.helper_pod.clone(),
        false,
        namespace,
        SERVICE_ACCOUNT,
        helper_image,
        name,
    )
    .map_err(|e| Error::Config(format!("helperPod.yaml cannot be used: {e}")))?;
    Ok((contents, helpers))
}

async fn read_config(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<ConfigMapContents, Error> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = maps
        .get_opt(name)
        .await
        .map_err(cluster::failed("get", format!("configmap {namespace}/{name}")))?
        .ok_or_else(|| {
            Error::Config(format!(
                "ConfigMap {namespace}/{name} does not exist: is the provisioner installed (`lpp install`), or is it in another namespace (-n)?"
            ))
        })?;
    let data = map.data.unwrap_or_default();
    ConfigMapContents::from_data(&data, None, None)
        .map_err(|e| Error::Config(format!("ConfigMap {namespace}/{name}: {e}")))
}

/// The nodes to scan: all of them, or the ones named by `--node` (each must exist); and the
/// names of all.
async fn select_nodes(
    client: &kube::Client,
    wanted: &[String],
) -> Result<(Vec<Node>, BTreeSet<String>), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let all = nodes
        .list(&ListParams::default())
        .await
        .map_err(cluster::failed("list", "nodes"))?
        .items;
    let known: BTreeSet<String> = all.iter().map(|n| n.name_any()).collect();
    if wanted.is_empty() {
        return Ok((all, known));
    }
    if let Some(unknown) = wanted.iter().find(|n| !known.contains(*n)) {
        return Err(Error::Usage(format!(
            "--node {unknown}: no such node (nodes: {})",
            known.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let selected = all
        .into_iter()
        .filter(|n| wanted.contains(&n.name_any()))
        .collect();
    Ok((selected, known))
}

/// Whether `--storage-class class` names a class whose directories gc can find: one the config
/// lists in `storageClassConfigs` (its StorageClass may be gone, its directories not), or, when
/// the config lists none, a StorageClass of our provisioner. Else a usage error naming the
/// classes there are, as `--node` does.
async fn check_class(
    client: &kube::Client,
    contents: &ConfigMapContents,
    class: &str,
    provisioner: &str,
) -> Result<(), Error> {
    let config = &contents.config;
    let list = |names: Vec<String>| match names.is_empty() {
        true => "none".to_owned(),
        false => names.join(", "),
    };
    if let Some(served) = config.served_classes() {
        if !served.contains(&class) {
            let served = served.into_iter().map(str::to_owned).collect();
            return Err(Error::Usage(format!(
                "--storage-class {class}: the config serves no such class (storageClassConfigs: {})",
                list(served)
            )));
        }
    } else {
        let classes: Api<StorageClass> = Api::all(client.clone());
        let classes = classes
            .list(&ListParams::default())
            .await
            .map_err(cluster::failed("list", "storageclasses"))?
            .items;
        let ours: Vec<String> = classes
            .iter()
            .filter(|c| c.provisioner == provisioner)
            .map(|c| c.name_any())
            .collect();
        if !ours.iter().any(|c| c == class) {
            let what = match classes.iter().find(|c| c.name_any() == class) {
                Some(other) => format!(
                    "StorageClass {class} is provisioned by {}, not {provisioner}",
                    other.provisioner
                ),
                None => "no such StorageClass".to_owned(),
            };
            return Err(Error::Usage(format!(
                "--storage-class {class}: {what} (classes of {provisioner}: {})",
                list(ours)
            )));
        }
    }
    match config.storage_for_class(class) {
        Ok(Storage::Unusable(problem)) => Err(Error::Config(format!(
            "--storage-class {class}: the config cannot be used for it: {problem}"
        ))),
        _ => Ok(()),
    }
}

/// The base paths to inventory on `node`: those of `class`, or of every class.
fn bases_on(contents: &ConfigMapContents, class: Option<&str>, node: &str) -> Vec<String> {
    let config = &contents.config;
    match class {
        None => config.base_paths_on(node).into_iter().collect(),
        Some(class) => match config.storage_for_class(class) {
            Ok(Storage::Nodes(nodes)) => nodes
                .get(node)
                .or_else(|| nodes.get(crate::config::DEFAULT_NODE))
                .cloned()
                .unwrap_or_default(),
            Ok(Storage::Shared(path)) => vec![path.clone()],
            _ => Vec::new(),
        },
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn inventory_node(
    executor: &Executor,
    helpers: &HelperPods,
    node: &Node,
    bases: &[String],
    volumes: &[&VolumeRecord],
    timeout: Duration,
) -> (NodeScan, Vec<Scanned>, Option<NodeVolumes>) {
    let name = node.name_any();
    let report = |ok: bool, status: String| NodeScan {
        node: name.clone(),
        status,
        ok,
        base_paths: bases.to_vec(),
    };
    if bases.is_empty() {
        return (
            report(true, "no base paths configured here".into()),
            Vec::new(),
            None,
        );
    }
    if !is_ready(node) {
        return (
            report(false, "not Ready: not scanned".into()),
            Vec::new(),
            None,
        );
    }
    let paths: Vec<String> = volumes.iter().map(|v| v.path.clone()).collect();
    let plan = inventory::plan(bases, &paths);
    let mut args = vec!["inventory".to_owned()];
    args.extend(inventory::args(bases, &plan));
    let mut host_dirs = base_mounts(bases);
    host_dirs.extend(plan.mounts.iter().cloned());
    let job = ScriptJob {
        name: format!("lpp-gc-inventory-{name}-{}", suffix()),
        action: "inventory".into(),
        node: Some(name.clone()),
        host_dirs,
        command: vec!["/bin/sh".into(), "-c".into(), inventory::SCRIPT.into()],
        args,
        env: Vec::new(),
    };
    // A node agent, where one serves the node and mounts what the job needs; else a helper pod.
    let output = match executor
        .script(helpers, &job, timeout, ExecutorKind::Agent)
        .await
    {
        Ok(output) => output,
        Err(why) => return (report(false, why.to_string()), Vec::new(), None),
    };
    let inventory = match inventory::parse(&output, bases.len(), volumes.len()) {
        Ok(inventory) => inventory,
        Err(e) => {
            return (
                report(false, format!("the inventory's output is not valid: {e}")),
                Vec::new(),
                None,
            );
        }
    };
    let missing = inventory
        .listings
        .iter()
        .filter(|l| matches!(l, Listing::Missing))
        .count();
    let (scanned, view) = node_view(&name, bases, volumes, &plan, inventory);
    let mut status = "scanned".to_owned();
    if missing > 0 {
        status.push_str(&format!(" ({missing} base paths do not exist)"));
    }
    if let Some(why) = view.held() {
        status.push_str(&format!("; nothing here is pruned: {why}"));
    }
    (report(true, status), scanned, Some(view))
}

/// A suffix that makes each script helper pod's name unique, so that a pod left by a killed run
/// or made by a concurrent one never collides with this run's (a collision would fail the job,
/// or worse, adopt the other run's pod and report its result). Random per process (std's
/// hasher keys), and counted within it.
pub fn suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    h.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
    h.write_u128(jiff::Timestamp::now().as_nanosecond().unsigned_abs());
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() & 0xffff_ffff)
}

/// Every PV's path (any provisioner), the uids of claims not yet bound, and of all claims.
pub async fn read_volumes(
    client: &kube::Client,
    provisioner: &str,
) -> Result<(Vec<VolumeRecord>, BTreeSet<String>, BTreeSet<String>), Error> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volumes = volumes
        .list(&ListParams::default())
        .await
        .map_err(cluster::failed("list", "persistentvolumes"))?
        .items;
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let claims = claims
        .list(&ListParams::default())
        .await
        .map_err(cluster::failed("list", "persistentvolumeclaims"))?
        .items;
    let records = volumes
        .iter()
        .filter_map(|v| record(v, provisioner))
        .collect();
    let mut pending = BTreeSet::new();
    let mut all = BTreeSet::new();
    for claim in &claims {
        let Some(uid) = claim.metadata.uid.clone() else {
            continue;
        };
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        if !bound {
            pending.insert(uid.clone());
        }
        all.insert(uid);
    }
    Ok((records, pending, all))
}

fn record(volume: &PersistentVolume, provisioner: &str) -> Option<VolumeRecord> {
    let (node, path) = crate::provision::volume_location(volume)?;
    Some(VolumeRecord {
        name: volume.name_any(),
        path,
        node,
        ours: volume
            .annotations()
            .get("pv.kubernetes.io/provisioned-by")
            .is_some_and(|p| p == provisioner),
    })
}
