//! The kubelet of every sandbox node: one worker per pod bound to a Ready node runs its
//! containers as local processes, each in its own namespaces and root (see [`super`] and
//! [`runtime`](super::runtime)), reports their status, keeps their output, stops them on
//! deletion (SIGTERM, grace period, SIGKILL), and garbage-collects pods bound to nodes that do
//! not exist.
//!
//! Here: the supervisor, which starts and stops workers as the cluster changes, and the pod
//! handles the other node agents (exec, logs) read. Each node's workers write through one
//! client limited as a kubelet's is (`throttle.rs`); events go through the shared client (a
//! kubelet's event recorder has a limit of its own, not modelled). One pod's worker (volumes, images,
//! environment, containers and their restarts) is in `worker.rs`; the pure model of a pod's
//! phase and status, and the task that writes it to the API, in `status.rs`.

mod status;
mod throttle;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::cache::{Cache, Need, Snapshot, run_loop};
use super::disks::Disk;
use super::events::Recorder;
use super::runtime::LogBuffer;
use super::schedule::is_ready;

pub use status::{ContainerModel, PodModel, State, phase, status};
pub use worker::{expand, unpullable};

use worker::Worker;

/// A pod bound to a node that does not exist is deleted after this long, as the pod garbage
/// collector of a real cluster does (shorter here, so tests stay fast).
pub const ORPHAN_POD_GRACE: Duration = Duration::from_secs(5);

/// A running (or finished) container as exec and logs see it.
#[derive(Clone)]
pub struct ContainerRuntime {
    /// The current instance's output.
    pub log: Arc<LogBuffer>,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// The PID (on this machine) of its PID 1, whose namespaces exec enters, while it runs.
    pub namespace_pid: Option<u32>,
}

/// What the node agents keep of one pod they run.
pub struct PodHandle {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The node it runs on.
    pub node: String,
    /// Containers by name.
    pub containers: Mutex<HashMap<String, ContainerRuntime>>,
    /// Fires to stop the pod's processes (exec ones too).
    pub stop: CancellationToken,
    /// `<dir>/nodes/<node>/var/lib/kubelet/pods/<uid>`.
    pub pod_dir: PathBuf,
    grace_ms: AtomicU64,
    finalize: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl PodHandle {
    /// Stops the pod with this grace period; with `finalize`, the worker then deletes the pod
    /// object (grace 0), as a kubelet finishes a graceful deletion.
    pub fn stop(&self, grace: Duration, finalize: bool) {
        self.grace_ms.store(
            u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        self.finalize.store(finalize, Ordering::SeqCst);
        self.stop.cancel();
    }

    fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.load(Ordering::SeqCst))
    }

    fn finished(&self) -> bool {
        self.task
            .lock()
            .map(|t| t.as_ref().is_none_or(JoinHandle::is_finished))
            .unwrap_or(false)
    }

    fn take_task(&self) -> Option<JoinHandle<()>> {
        self.task.lock().ok().and_then(|mut t| t.take())
    }
}

/// Every pod handle, by pod uid.
pub type Pods = Arc<Mutex<HashMap<String, Arc<PodHandle>>>>;

/// The kubelet supervisor: starts and stops pod workers as the cluster changes. Containers see
/// the declared `disks` through the stand-ins of [`super::disks`].
pub async fn supervise(
    client: Client,
    cache: Cache,
    dir: PathBuf,
    disks: Arc<[Disk]>,
    pod_startup: Duration,
    pods: Pods,
    stop: CancellationToken,
) {
    let mut orphans: HashMap<String, Instant> = HashMap::new();
    // Each node's kubelet has a client of its own, limited as a kubelet's is.
    let mut node_clients: HashMap<String, Client> = HashMap::new();
    let loop_cache = cache.clone();
    // Pods are read in place from the cache (a pass runs on every status change, and copying
    // every pod each time grows with the square of their number).
    let need = Need {
        nodes: true,
        pods: false,
        claims: false,
        volumes: false,
        classes: false,
    };
    run_loop(
        loop_cache,
        need,
        stop.clone(),
        Duration::from_millis(500),
        |snap: Snapshot| {
            let objects = cache.pods.state();
            let actions = pass(
                &snap,
                &objects,
                &pods,
                &mut orphans,
                &dir,
                &disks,
                pod_startup,
                &client,
                &mut node_clients,
                &cache,
                &stop,
            );
            let client = client.clone();
            async move {
                for (namespace, name, uid) in actions {
                    let _ = delete_now(&client, &namespace, &name, &uid).await;
                }
            }
        },
    )
    .await;
}

/// One supervisor pass; returns the pods to delete right away (orphans, finished deletions).
#[allow(clippy::too_many_arguments)]
fn pass(
    snap: &Snapshot,
    objects: &[Arc<Pod>],
    pods: &Pods,
    orphans: &mut HashMap<String, Instant>,
    dir: &Path,
    disks: &Arc<[Disk]>,
    pod_startup: Duration,
    client: &Client,
    node_clients: &mut HashMap<String, Client>,
    cache: &Cache,
    stop: &CancellationToken,
) -> Vec<(String, String, String)> {
    let Ok(mut handles) = pods.lock() else {
        return Vec::new();
    };
    let nodes: HashMap<String, bool> = snap
        .nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, is_ready(n))))
        .collect();
    let mut deletes = Vec::new();
    let mut live = std::collections::HashSet::new();
    for pod in objects {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        live.insert(uid.clone());
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let grace = Duration::from_secs(
            pod.metadata
                .deletion_grace_period_seconds
                .or_else(|| {
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
                .unwrap_or(30)
                .max(0)
                .unsigned_abs(),
        );
        match nodes.get(&node) {
            None => {
                if let Some(h) = handles.remove(&uid) {
                    h.stop(Duration::ZERO, false);
                }
                let since = *orphans.entry(uid.clone()).or_insert_with(Instant::now);
                if since.elapsed() >= ORPHAN_POD_GRACE || deleting {
                    deletes.push((namespace, name, uid));
                }
                continue;
            }
            Some(false) => {
                // A NotReady node runs nothing.
                if let Some(h) = handles.remove(&uid) {
                    h.stop(Duration::ZERO, false);
                }
                continue;
            }
            Some(true) => {}
        }
        orphans.remove(&uid);
        match handles.get(&uid) {
            Some(h) => {
                if deleting && !h.stop.is_cancelled() {
                    h.stop(grace, true);
                } else if deleting && h.finished() {
                    // The worker's own final delete failed (a fault, a conflict): retry.
                    deletes.push((namespace, name, uid));
                }
            }
            None => {
                if deleting {
                    deletes.push((namespace, name, uid));
                    continue;
                }
                let terminal = matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                );
                if terminal {
                    continue;
                }
                // The uid names the pod's directory: only what a server generates is used.
                if uid.is_empty() || !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    tracing::warn!(pod = %name, %uid, "sandbox kubelet: refusing a pod whose uid cannot name a directory");
                    continue;
                }
                let pod_dir = dir
                    .join("nodes")
                    .join(&node)
                    .join("var/lib/kubelet/pods")
                    .join(&uid);
                let handle = Arc::new(PodHandle {
                    namespace,
                    name,
                    node: node.clone(),
                    containers: Mutex::new(HashMap::new()),
                    stop: stop.child_token(),
                    pod_dir: pod_dir.clone(),
                    grace_ms: AtomicU64::new(0),
                    finalize: AtomicBool::new(false),
                    task: Mutex::new(None),
                });
                let node_client = node_clients
                    .entry(node.clone())
                    .or_insert_with(|| throttle::client(client.clone()))
                    .clone();
                let worker = Worker {
                    client: node_client,
                    cache: cache.clone(),
                    pod: Pod::clone(pod),
                    node_root: dir.join("nodes").join(&node),
                    disks: Arc::clone(disks),
                    pod_startup,
                    pod_dir,
                    run_stop: handle.stop.child_token(),
                    handle: Arc::clone(&handle),
                    events: Recorder::new(client.clone(), "kubelet", Some(node.clone())),
                };
                let task = tokio::spawn(worker.run());
                if let Ok(mut t) = handle.task.lock() {
                    *t = Some(task);
                }
                handles.insert(uid, handle);
            }
        }
    }
    orphans.retain(|uid, _| live.contains(uid));
    handles.retain(|uid, h| {
        let keep = live.contains(uid);
        if !keep {
            h.stop(Duration::ZERO, false);
            // The pod is gone: once its processes are, so is its directory (emptyDir,
            // configMap files, logs), as a kubelet cleans up. Node paths are never under it.
            let h = Arc::clone(h);
            tokio::spawn(async move {
                if let Some(task) = h.take_task() {
                    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
                }
                let _ = tokio::fs::remove_dir_all(&h.pod_dir).await;
            });
        }
        keep
    });
    deletes
}

async fn delete_now(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Stops every pod and waits (bounded) for their processes to be gone.
pub async fn stop_all(pods: &Pods) {
    let all: Vec<Arc<PodHandle>> = pods
        .lock()
        .map(|mut h| h.drain().map(|(_, v)| v).collect())
        .unwrap_or_default();
    for h in &all {
        h.stop(Duration::from_millis(500), false);
    }
    for h in all {
        if let Some(task) = h.take_task() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
