//! The scheduler and the PV controller as loops: take a snapshot, decide with the pure
//! functions of [`super::schedule`] and [`super::binding`], carry the decisions out through the
//! API.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::binding::{
    self, BETA_STORAGE_PROVISIONER, BIND_COMPLETED, BOUND_BY_CONTROLLER, STORAGE_PROVISIONER,
    VolumeAction,
};
use super::cache::{Cache, Need, Snapshot, run_loop, run_loop_when};
use super::daemon::{self, DaemonAction};
use super::events::{Recorder, Regarding};
use super::expand;
use super::schedule::{self, Placement, SELECTED_NODE};

/// Writes in flight at once per pass (a real controller has several workers too).
const CONCURRENT_WRITES: usize = 16;

/// How long a decision already sent is not repeated while the cache catches up.
const SETTLE: Duration = Duration::from_secs(2);

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Remembers recent writes so a stale cache does not repeat them.
#[derive(Default)]
struct Recent(HashMap<String, Instant>);

impl Recent {
    /// Whether `key` was not sent within [`SETTLE`]; remembers it as sent now.
    fn fresh(&mut self, key: &str) -> bool {
        let now = Instant::now();
        match self.0.get(key) {
            Some(t) if now.duration_since(*t) < SETTLE => false,
            _ => {
                self.0.insert(key.to_string(), now);
                true
            }
        }
    }

    /// Forgets what settled long ago (once per pass, not per key: a pass can hold thousands).
    fn forget_old(&mut self) {
        let now = Instant::now();
        self.0.retain(|_, t| now.duration_since(*t) < SETTLE);
    }
}

/// The scheduler: binds pending pods to nodes, and runs the WaitForFirstConsumer dance.
pub async fn scheduler(client: Client, cache: Cache, stop: CancellationToken) {
    let mut recent = Recent::default();
    let recorder = Recorder::new(client.clone(), "default-scheduler", None);
    let no_binding = Arc::new(AtomicBool::new(false));
    let unscheduled = |cache: &Cache| {
        cache.pods.state().iter().any(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| s.node_name.as_deref().is_none_or(str::is_empty))
        })
    };
    let driver_store = cache.drivers.clone();
    let capacity_store = cache.capacities.clone();
    run_loop_when(cache, Need::ALL, stop, Duration::from_secs(1), unscheduled, |snap: Snapshot| {
        let drivers = driver_store.state();
        let capacities = capacity_store.state();
        let client = client.clone();
        let recorder = recorder.clone();
        let no_binding = Arc::clone(&no_binding);
        recent.forget_old();
        let mut decisions = Vec::new();
        for pod in &snap.pods {
            let world = schedule::World {
                nodes: &snap.nodes,
                pods: &snap.pods,
                claims: &snap.claims,
                volumes: &snap.volumes,
                classes: &snap.classes,
                drivers: &drivers,
                capacities: &capacities,
            };
            let placement = schedule::place(pod, world);
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let key = format!("{uid}/{placement:?}");
            if !matches!(placement, Placement::Skip | Placement::WaitForBinding) && recent.fresh(&key) {
                decisions.push((pod.clone(), placement));
            }
        }
        async move {
            futures::stream::iter(decisions)
                .for_each_concurrent(CONCURRENT_WRITES, |(pod, placement)| {
                    let client = client.clone();
                    let recorder = recorder.clone();
                    let no_binding = Arc::clone(&no_binding);
                    async move {
                        if let Err(e) = carry_out(&client, &recorder, &no_binding, &pod, placement).await {
                            tracing::debug!(pod = ?pod.metadata.name, error = %e, "sandbox scheduler: write failed, will retry");
                        }
                    }
                })
                .await;
        }
    })
    .await;
}

async fn carry_out(
    client: &Client,
    recorder: &Recorder,
    no_binding: &AtomicBool,
    pod: &Pod,
    placement: Placement,
) -> Result<(), kube::Error> {
    let regarding = Regarding::pod(
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default(),
    );
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    match placement {
        Placement::Skip | Placement::WaitForBinding => Ok(()),
        Placement::Bind(node) => {
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": namespace, "uid": pod.metadata.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let mut direct = no_binding.load(Ordering::Relaxed);
            if !direct {
                let bound: Result<Value, _> = pods
                    .create_subresource("binding", &name, &PostParams::default(), &binding)
                    .await;
                match bound {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => direct = true,
                    Err(e) => return Err(e),
                }
            }
            if direct {
                // A server without pods/binding: set the node directly. Once that worked (so
                // the pod exists and the 404 was about the subresource), stop asking.
                let patch = json!({"spec": {"nodeName": node}});
                pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                no_binding.store(true, Ordering::Relaxed);
            }
            let status = json!({"status": {"conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}
            ]}});
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            recorder.record(
                &regarding,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {namespace}/{name} to {node}"),
            );
            Ok(())
        }
        Placement::SelectNode {
            claims,
            node,
            volumes,
        } => {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
            for claim in claims {
                let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
                api.patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            let pvs: Api<PersistentVolume> = Api::all(client.clone());
            for given in volumes {
                let patch = json!({
                    "metadata": {"annotations": {BOUND_BY_CONTROLLER: "yes"}},
                    "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                           "namespace": namespace, "name": given.claim, "uid": given.uid}},
                });
                pvs.patch(
                    &given.volume,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            }
            Ok(())
        }
        Placement::Unschedulable(message) => {
            let current = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
            if current.is_some_and(|c| c.message.as_deref() == Some(message.as_str())) {
                return Ok(());
            }
            let status = json!({"status": {"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastTransitionTime": now()
            }]}});
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            recorder.record(&regarding, "Warning", "FailedScheduling", &message);
            Ok(())
        }
    }
}

/// The PV controller: binding, phases, protection finalizers, provisioner annotations.
pub async fn volume_controller(client: Client, cache: Cache, stop: CancellationToken) {
    let mut recent = Recent::default();
    let recorder = Recorder::new(client.clone(), "persistentvolume-controller", None);
    // Each waiting reason is told once per claim.
    let mut told: HashSet<String> = HashSet::new();
    let pod_store = cache.pods.clone();
    run_loop(
        cache,
        Need {
            nodes: false,
            pods: false,
            ..Need::ALL
        },
        stop,
        Duration::from_secs(1),
        |snap: Snapshot| {
        let client = client.clone();
        recent.forget_old();
        // Only which claims live pods use matters here: no need to copy every pod.
        let pods = pod_store.state();
        let in_use = binding::claims_in_use(pods.iter().map(|p| &**p));
        let actions: Vec<VolumeAction> = binding::reconcile(binding::World {
            claims: &snap.claims,
            volumes: &snap.volumes,
            classes: &snap.classes,
            in_use: &in_use,
        })
        .into_iter()
        .filter(|a| match a {
            VolumeAction::ClaimEvent {
                namespace,
                name,
                uid,
                reason,
                message,
            } => {
                if told.insert(format!("{uid}/{reason}")) {
                    let regarding = Regarding {
                        kind: "PersistentVolumeClaim".into(),
                        namespace: namespace.clone(),
                        name: name.clone(),
                        uid: uid.clone(),
                    };
                    recorder.record(&regarding, "Normal", reason, message);
                }
                false
            }
            _ => recent.fresh(&format!("{a:?}")),
        })
        .collect();
        let live: HashSet<&str> = snap.claims.iter().filter_map(|c| c.metadata.uid.as_deref()).collect();
        told.retain(|k| k.split('/').next().is_some_and(|uid| live.contains(uid)));        async move {
            futures::stream::iter(actions)
                .for_each_concurrent(CONCURRENT_WRITES, |action| {
                    let client = client.clone();
                    async move {
                        if let Err(e) = apply(&client, &action).await {
                            tracing::debug!(?action, error = %e, "sandbox PV controller: write failed, will retry");
                        }
                    }
                })
                .await;
        }
    })
    .await;
}

async fn apply(client: &Client, action: &VolumeAction) -> Result<(), kube::Error> {
    let pp = PatchParams::default();
    let claims = |ns: &str| -> Api<PersistentVolumeClaim> { Api::namespaced(client.clone(), ns) };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    match action {
        VolumeAction::ClaimEvent { .. } => {}
        VolumeAction::ClaimFinalizers {
            namespace,
            name,
            finalizers,
        } => {
            let patch = json!({"metadata": {"finalizers": finalizers}});
            claims(namespace)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await?;
        }
        VolumeAction::AnnotateClaim {
            namespace,
            name,
            provisioner,
        } => {
            let patch = json!({"metadata": {"annotations": {
                STORAGE_PROVISIONER: provisioner, BETA_STORAGE_PROVISIONER: provisioner}}});
            claims(namespace)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await?;
        }
        VolumeAction::BindClaim {
            namespace,
            name,
            volume,
            capacity,
            access_modes,
        } => {
            let patch = json!({
                "metadata": {"annotations": {BIND_COMPLETED: "yes", BOUND_BY_CONTROLLER: "yes"}},
                "spec": {"volumeName": volume},
            });
            claims(namespace)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await?;
            let status = json!({"status": {
                "phase": "Bound",
                "accessModes": access_modes,
                "capacity": capacity.as_ref().map(|q| json!({"storage": q})),
            }});
            claims(namespace)
                .patch_status(name, &pp, &Patch::Merge(&status))
                .await?;
        }
        VolumeAction::ClaimPhase {
            namespace,
            name,
            phase,
        } => {
            let status = json!({"status": {"phase": phase}});
            claims(namespace)
                .patch_status(name, &pp, &Patch::Merge(&status))
                .await?;
        }
        VolumeAction::ClaimVolume {
            volume,
            namespace,
            name,
            uid,
        } => {
            let patch = json!({
                "metadata": {"annotations": {BOUND_BY_CONTROLLER: "yes"}},
                "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                       "namespace": namespace, "name": name, "uid": uid}},
            });
            volumes.patch(volume, &pp, &Patch::Merge(&patch)).await?;
        }
        VolumeAction::VolumePhase { volume, phase } => {
            let status = json!({"status": {"phase": phase}});
            volumes
                .patch_status(volume, &pp, &Patch::Merge(&status))
                .await?;
        }
        VolumeAction::VolumeFinalizers { volume, finalizers } => {
            let patch = json!({"metadata": {"finalizers": finalizers}});
            volumes.patch(volume, &pp, &Patch::Merge(&patch)).await?;
        }
    }
    Ok(())
}

/// The DaemonSet controller: for every DaemonSet, the decisions of [`daemon::reconcile`]
/// carried out through the API (pods, ControllerRevisions, status, and the
/// `SuccessfulCreate`/`SuccessfulDelete` events its pod control records).
pub async fn daemon_set_controller(client: Client, cache: Cache, stop: CancellationToken) {
    let mut recent = Recent::default();
    let recorder = Recorder::new(client.clone(), "daemonset-controller", None);
    let pod_store = cache.pods.clone();
    let sets = cache.daemon_sets.clone();
    let revision_store = cache.revisions.clone();
    let any = |cache: &Cache| !cache.daemon_sets.state().is_empty();
    let need = Need {
        nodes: true,
        pods: false,
        claims: false,
        volumes: false,
        classes: false,
    };
    run_loop_when(cache, need, stop, Duration::from_secs(1), any, |snap: Snapshot| {
        recent.forget_old();
        let now = jiff::Timestamp::now();
        // Pods and revisions per controlling DaemonSet uid, built once per pass.
        let mut pods: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in pod_store.state() {
            if let Some(uid) = controller_uid(&p.metadata) {
                pods.entry(uid).or_default().push(p);
            }
        }
        let mut revisions: HashMap<String, Vec<Arc<ControllerRevision>>> = HashMap::new();
        for r in revision_store.state() {
            if let Some(uid) = controller_uid(&r.metadata) {
                revisions.entry(uid).or_default().push(r);
            }
        }
        let mut work = Vec::new();
        for ds in sets.state() {
            let uid = ds.metadata.uid.clone().unwrap_or_default();
            let world = daemon::World {
                nodes: &snap.nodes,
                pods: pods.get(&uid).map_or(&[], Vec::as_slice),
                revisions: revisions.get(&uid).map_or(&[], Vec::as_slice),
                now,
            };
            for action in daemon::reconcile(&ds, world) {
                let key = match &action {
                    DaemonAction::CreatePod { node, pod } => format!(
                        "create/{uid}/{node}/{:?}",
                        pod.metadata.labels.as_ref().and_then(|l| l.get(daemon::REVISION_HASH))
                    ),
                    DaemonAction::DeletePod { uid, .. } => format!("delete/{uid}"),
                    other => format!("{uid}/{other:?}"),
                };
                if recent.fresh(&key) {
                    work.push((Arc::clone(&ds), action));
                }
            }
        }
        let client = client.clone();
        let recorder = recorder.clone();
        async move {
            futures::stream::iter(work)
                .for_each_concurrent(CONCURRENT_WRITES, |(ds, action)| {
                    let client = client.clone();
                    let recorder = recorder.clone();
                    async move {
                        if let Err(e) = carry_out_daemon(&client, &recorder, &ds, action).await {
                            tracing::debug!(daemonset = ?ds.metadata.name, error = %e, "sandbox DaemonSet controller: write failed, will retry");
                        }
                    }
                })
                .await;
        }
    })
    .await;
}

/// The uid of an object's controller (the owner reference with `controller: true`).
fn controller_uid(meta: &kube::api::ObjectMeta) -> Option<String> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

async fn carry_out_daemon(
    client: &Client,
    recorder: &Recorder,
    ds: &DaemonSet,
    action: DaemonAction,
) -> Result<(), kube::Error> {
    let namespace = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let regarding = Regarding {
        kind: "DaemonSet".into(),
        namespace: namespace.clone(),
        name: name.clone(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
    };
    let pp = PatchParams::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    match action {
        DaemonAction::CreateRevision(revision) => {
            match revisions.create(&PostParams::default(), &revision).await {
                Ok(_) => {}
                // Made in an earlier pass the cache has not shown yet.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        DaemonAction::SetRevision { name, revision } => {
            revisions
                .patch(&name, &pp, &Patch::Merge(&json!({"revision": revision})))
                .await?;
        }
        DaemonAction::DeleteRevision { name } => {
            revisions.delete(&name, &DeleteParams::default()).await?;
        }
        DaemonAction::CreatePod { pod, .. } => {
            match pods.create(&PostParams::default(), &pod).await {
                Ok(created) => recorder.record(
                    &regarding,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", created.metadata.name.unwrap_or_default()),
                ),
                Err(kube::Error::Api(s)) if s.message.contains("being terminated") => {}
                Err(e) => {
                    recorder.record(
                        &regarding,
                        "Warning",
                        "FailedCreate",
                        &format!("Error creating: {e}"),
                    );
                    return Err(e);
                }
            }
        }
        DaemonAction::DeletePod {
            name: pod,
            uid,
            event,
        } => {
            if let Some((type_, reason, message)) = event {
                recorder.record(&regarding, type_, reason, &message);
            }
            let params = DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pods.delete(&pod, &params).await {
                Ok(_) => recorder.record(
                    &regarding,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {pod}"),
                ),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    recorder.record(
                        &regarding,
                        "Warning",
                        "FailedDelete",
                        &format!("Error deleting: {e}"),
                    );
                    return Err(e);
                }
            }
        }
        DaemonAction::Status(status) => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), &namespace);
            api.patch_status(&name, &pp, &Patch::Merge(&json!({"status": status})))
                .await?;
        }
    }
    Ok(())
}

/// The expand controller: for a Bound claim asking for more than its volume has, the
/// `ExternalExpanding` event of [`expand::waiting`], once per request and capacity seen.
pub async fn expand_controller(client: Client, cache: Cache, stop: CancellationToken) {
    let recorder = Recorder::new(client, "volume_expand", None);
    let mut told: HashSet<String> = HashSet::new();
    let need = Need {
        nodes: false,
        pods: false,
        claims: true,
        volumes: true,
        classes: false,
    };
    run_loop(
        cache,
        need,
        stop,
        Duration::from_secs(1),
        |snap: Snapshot| {
            if !told.is_empty() {
                let live: HashSet<&str> = snap
                    .claims
                    .iter()
                    .filter_map(|c| c.metadata.uid.as_deref())
                    .collect();
                told.retain(|k| k.split('/').next().is_some_and(|uid| live.contains(uid)));
            }
            for w in expand::waiting(&snap.claims, &snap.volumes) {
                if told.insert(format!("{}/{}", w.uid, w.seen)) {
                    let regarding = Regarding {
                        kind: "PersistentVolumeClaim".into(),
                        namespace: w.namespace,
                        name: w.name,
                        uid: w.uid,
                    };
                    recorder.record(
                        &regarding,
                        "Warning",
                        expand::EXTERNAL_EXPANDING,
                        expand::WAITING_MESSAGE,
                    );
                }
            }
            async {}
        },
    )
    .await;
}
