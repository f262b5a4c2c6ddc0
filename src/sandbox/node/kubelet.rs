//! The kubelet of every sandbox node: one worker per pod bound to a Ready node runs its
//! containers as local processes, each in its own namespaces and root (see [`super`] and
//! [`runtime`]), reports their status, keeps their output, stops them on deletion (SIGTERM,
//! grace period, SIGKILL), and garbage-collects pods bound to nodes that do not exist.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::cache::{Cache, Need, Snapshot, run_loop};
use super::disks::{self, Disk};
use super::events::{Recorder, Regarding};
use super::mounts;
use super::runtime::{self, ContainerSpec, LogBuffer};
use super::schedule::is_ready;
use super::termination;
use super::volumes::{self, Backing, VolumePlan};

/// A pod bound to a node that does not exist is deleted after this long, as the pod garbage
/// collector of a real cluster does (shorter here, so tests stay fast).
pub const ORPHAN_POD_GRACE: Duration = Duration::from_secs(5);

/// How long an unpullable image shows `ErrImagePull` before `ImagePullBackOff`, and back.
const PULL_RETRY: Duration = Duration::from_secs(2);

/// Restart back-off: doubles from the first value up to the cap (a real kubelet uses 10 s to
/// 5 min; the sandbox is quicker).
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// How soon a failed volume or container setup is tried again.
const SETUP_RETRY: Duration = Duration::from_millis(500);

/// The default `PATH` of a container.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Whether an image can never be pulled: its registry host ends in `.invalid` (RFC 2606).
pub fn unpullable(image: &str) -> bool {
    let Some((first, _)) = image.split_once('/') else {
        return false;
    };
    let is_registry = first.contains('.') || first.contains(':') || first == "localhost";
    let host = first.split(':').next().unwrap_or(first);
    is_registry && host.ends_with(".invalid")
}

/// One container's state, as the status reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running: why.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since.
    Running {
        /// RFC 3339.
        started_at: String,
    },
    /// Ended.
    Terminated {
        /// The exit code.
        exit_code: i32,
        /// `Completed`, `Error`, `StartError`.
        reason: String,
        /// The termination message.
        message: Option<String>,
        /// RFC 3339.
        started_at: String,
        /// RFC 3339.
        finished_at: String,
    },
}

impl State {
    fn json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
            } => json!({"terminated": {
                "exitCode": exit_code, "reason": reason, "message": message,
                "startedAt": started_at, "finishedAt": finished_at,
            }}),
        }
    }
}

/// One container in the pod's status model.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerModel {
    /// Its name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Whether it is an init container.
    pub init: bool,
    /// The current state.
    pub state: State,
    /// The previous instance's end, after a restart.
    pub last: Option<State>,
    /// Restarts so far.
    pub restarts: i32,
    /// The runtime id of the current instance.
    pub id: String,
}

/// The pod's status as the kubelet knows it; [`status`] renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodModel {
    /// Init containers first, then the others.
    pub containers: Vec<ContainerModel>,
    /// When the kubelet took the pod.
    pub start_time: String,
    /// `Never`, `OnFailure` or `Always`.
    pub restart_policy: String,
    /// A pod-level failure (e.g. a refused volume), which makes the pod Failed.
    pub failure: Option<(String, String)>,
}

impl PodModel {
    fn new(pod: &Pod) -> PodModel {
        let spec = pod.spec.clone().unwrap_or_default();
        let model = |c: &Container, init: bool| ContainerModel {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            init,
            state: State::Waiting {
                reason: if init || spec.init_containers.as_ref().is_none_or(Vec::is_empty) {
                    "ContainerCreating".into()
                } else {
                    "PodInitializing".into()
                },
                message: None,
            },
            last: None,
            restarts: 0,
            id: String::new(),
        };
        let mut containers: Vec<ContainerModel> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| model(c, true))
            .collect();
        containers.extend(spec.containers.iter().map(|c| model(c, false)));
        PodModel {
            containers,
            start_time: now(),
            restart_policy: spec.restart_policy.unwrap_or_else(|| "Always".into()),
            failure: None,
        }
    }

    fn container(&mut self, name: &str, init: bool) -> Option<&mut ContainerModel> {
        self.containers
            .iter_mut()
            .find(|c| c.name == name && c.init == init)
    }
}

/// The pod phase for a model, as a real kubelet derives it.
pub fn phase(model: &PodModel) -> &'static str {
    if model.failure.is_some() {
        return "Failed";
    }
    let init_failed_for_good = model.containers.iter().any(|c| {
        c.init
            && model.restart_policy == "Never"
            && matches!(c.state, State::Terminated { exit_code, .. } if exit_code != 0)
    });
    if init_failed_for_good {
        return "Failed";
    }
    let init_done = model
        .containers
        .iter()
        .filter(|c| c.init)
        .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
    if !init_done {
        return "Pending";
    }
    let main: Vec<&ContainerModel> = model.containers.iter().filter(|c| !c.init).collect();
    if main
        .iter()
        .any(|c| matches!(c.state, State::Waiting { .. }) && c.last.is_none())
    {
        return "Pending";
    }
    if main
        .iter()
        .any(|c| matches!(c.state, State::Running { .. } | State::Waiting { .. }))
    {
        return "Running";
    }
    if main
        .iter()
        .any(|c| matches!(c.state, State::Terminated { exit_code, .. } if exit_code != 0))
    {
        "Failed"
    } else {
        "Succeeded"
    }
}

/// The pod's `status` object for a model.
pub fn status(model: &PodModel, pod_ip: &str) -> Value {
    let phase = phase(model);
    let statuses = |init: bool| -> Vec<Value> {
        model
            .containers
            .iter()
            .filter(|c| c.init == init)
            .map(|c| {
                let running = matches!(c.state, State::Running { .. });
                json!({
                    "name": c.name,
                    "image": c.image,
                    "imageID": if c.id.is_empty() { String::new() } else { format!("{}@sandbox", c.image) },
                    "containerID": if c.id.is_empty() { None } else { Some(format!("sandbox://{}", c.id)) },
                    "ready": running || (init && matches!(c.state, State::Terminated { exit_code: 0, .. })),
                    "started": running,
                    "restartCount": c.restarts,
                    "state": c.state.json(),
                    "lastState": c.last.as_ref().map_or(json!({}), State::json),
                })
            })
            .collect()
    };
    let init_done = model
        .containers
        .iter()
        .filter(|c| c.init)
        .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
    let all_running = model
        .containers
        .iter()
        .filter(|c| !c.init)
        .all(|c| matches!(c.state, State::Running { .. }));
    let ready = all_running && phase == "Running";
    let terminal = phase == "Succeeded" || phase == "Failed";
    let condition = |type_: &str, ok: bool| {
        let reason = match (type_, ok, terminal) {
            (_, true, _) => None,
            ("Ready" | "ContainersReady", false, true) => Some("PodCompleted"),
            ("Ready" | "ContainersReady", false, false) => Some("ContainersNotReady"),
            ("Initialized", false, _) => Some("ContainersNotInitialized"),
            _ => None,
        };
        json!({"type": type_, "status": if ok { "True" } else { "False" },
               "reason": reason, "lastTransitionTime": model.start_time})
    };
    let (reason, message) = match &model.failure {
        Some((r, m)) => (Some(r.clone()), Some(m.clone())),
        None => (None, None),
    };
    json!({
        "phase": phase,
        "reason": reason,
        "message": message,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": model.start_time,
        "qosClass": "BestEffort",
        "conditions": [
            condition("PodReadyToStartContainers", true),
            condition("Initialized", init_done),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", true),
        ],
        "initContainerStatuses": statuses(true),
        "containerStatuses": statuses(false),
    })
}

/// Expands `$(VAR)` references as Kubernetes does in command, args and env (`$$` escapes).
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().rev().find(|(k, _)| *k == inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

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
                let worker = Worker {
                    client: client.clone(),
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

/// Runs one pod.
struct Worker {
    client: Client,
    cache: Cache,
    pod: Pod,
    node_root: PathBuf,
    /// The sandbox's declared disks (all nodes').
    disks: Arc<[Disk]>,
    /// How long making the pod's sandbox takes before its containers start (see
    /// [`super::NodeAgents::start_with_disks`]).
    pod_startup: Duration,
    pod_dir: PathBuf,
    handle: Arc<PodHandle>,
    events: Recorder,
    /// Stops the containers: the pod's stop, or its `activeDeadlineSeconds` running out.
    run_stop: CancellationToken,
}

/// Why a pod or container cannot be set up.
#[derive(Debug, Clone, PartialEq)]
enum Setup {
    /// Try again shortly, as a kubelet does (an API error, a missing ConfigMap).
    Retry(String),
    /// Never: the spec cannot run (a path climbing out of its volume, a relative working
    /// directory).
    Refuse(String),
}

fn retry(e: impl std::fmt::Display) -> Setup {
    Setup::Retry(e.to_string())
}

fn refuse(e: impl std::fmt::Display) -> Setup {
    Setup::Refuse(e.to_string())
}

/// Shared status of one pod, written to the API by one writer task.
#[derive(Clone)]
struct StatusSink {
    model: Arc<Mutex<PodModel>>,
    dirty: Arc<Notify>,
}

impl StatusSink {
    fn update(&self, f: impl FnOnce(&mut PodModel)) {
        if let Ok(mut m) = self.model.lock() {
            f(&mut m);
        }
        self.dirty.notify_one();
    }

    fn snapshot(&self) -> Option<PodModel> {
        self.model.lock().ok().map(|m| m.clone())
    }
}

impl Worker {
    fn event(&self, type_: &str, reason: &str, message: &str) {
        let regarding = Regarding::pod(
            &self.handle.namespace,
            &self.handle.name,
            self.pod.metadata.uid.as_deref().unwrap_or_default(),
        );
        self.events.record(&regarding, type_, reason, message);
    }

    async fn run(self) {
        let sink = StatusSink {
            model: Arc::new(Mutex::new(PodModel::new(&self.pod))),
            dirty: Arc::new(Notify::new()),
        };
        let writer_stop = CancellationToken::new();
        let writer = tokio::spawn(write_status(
            self.client.clone(),
            self.handle.namespace.clone(),
            self.handle.name.clone(),
            sink.clone(),
            writer_stop.clone(),
        ));
        sink.dirty.notify_one();
        let stop = self.handle.stop.clone();
        let deadline = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .map(|s| Duration::from_secs(s.max(0).unsigned_abs()));
        let expired = Arc::new(AtomicBool::new(false));
        if let Some(after) = deadline {
            let run_stop = self.run_stop.clone();
            let expired = Arc::clone(&expired);
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(after) => {
                        expired.store(true, Ordering::SeqCst);
                        run_stop.cancel();
                    }
                    _ = run_stop.cancelled() => {}
                }
            });
        }
        // Every wait inside watches `run_stop`, so processes get their grace period;
        // afterwards the runtime (logs) is kept until the pod goes.
        self.run_containers(&sink).await;
        if expired.load(Ordering::SeqCst) {
            let message = "Pod was active on the node longer than the specified deadline";
            self.event("Normal", "DeadlineExceeded", message);
            sink.update(|m| m.failure = Some(("DeadlineExceeded".into(), message.into())));
        }
        stop.cancelled().await;
        if self.handle.finalize.load(Ordering::SeqCst) {
            for c in self.pod.spec.iter().flat_map(|s| s.containers.iter()) {
                self.event(
                    "Normal",
                    "Killing",
                    &format!("Stopping container {}", c.name),
                );
            }
        }
        writer_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        if self.handle.finalize.load(Ordering::SeqCst) {
            let uid = self.pod.metadata.uid.clone().unwrap_or_default();
            let _ = delete_now(
                &self.client,
                &self.handle.namespace,
                &self.handle.name,
                &uid,
            )
            .await;
        }
    }

    /// The pod's own claims and their volumes, from the watch cache.
    fn claims_and_volumes(&self) -> (Vec<PersistentVolumeClaim>, Vec<PersistentVolume>) {
        let wanted: Vec<&str> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .map(|c| c.claim_name.as_str())
            })
            .collect();
        if wanted.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let claims: Vec<PersistentVolumeClaim> = self
            .cache
            .claims
            .state()
            .iter()
            .filter(|c| {
                c.metadata.namespace.as_deref() == Some(self.handle.namespace.as_str())
                    && c.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| wanted.contains(&n))
            })
            .map(|c| PersistentVolumeClaim::clone(c))
            .collect();
        let names: Vec<&str> = claims
            .iter()
            .filter_map(|c| c.spec.as_ref()?.volume_name.as_deref())
            .collect();
        let pvs = self
            .cache
            .volumes
            .state()
            .iter()
            .filter(|v| {
                v.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| names.contains(&n))
            })
            .map(|v| PersistentVolume::clone(v))
            .collect();
        (claims, pvs)
    }

    async fn run_containers(&self, sink: &StatusSink) {
        let stop = self.run_stop.clone();
        // Volumes: wait until the claims are bound and the volumes exist.
        let plans = loop {
            let (claims, pvs) = self.claims_and_volumes();
            match volumes::plan(&self.pod, &self.node_root, &self.pod_dir, &claims, &pvs) {
                Ok(p) => break p,
                Err(volumes::VolumeProblem::Unbound(_)) => {}
                Err(e) => {
                    self.event("Warning", "FailedMount", &e.to_string());
                    sink.update(|m| m.failure = Some(("FailedMount".into(), e.to_string())));
                    return;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        };
        // The pod's sandbox (pkg/kubelet/kuberuntime/kuberuntime_manager.go SyncPod: volumes
        // mounted, then RunPodSandbox, then images and containers): on a real node a network
        // namespace, a pause container and CNI take their time; here only when asked for.
        if !self.pod_startup.is_zero() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.pod_startup) => {}
            }
        }
        // Images: one that can never be pulled keeps the pod Pending, as on a real node.
        let spec = self.pod.spec.clone().unwrap_or_default();
        let all: Vec<(&Container, bool)> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| (c, true))
            .chain(spec.containers.iter().map(|c| (c, false)))
            .collect();
        let bad: Vec<(String, bool, String)> = all
            .iter()
            .filter_map(|(c, init)| {
                let image = c.image.clone().unwrap_or_default();
                unpullable(&image).then(|| (c.name.clone(), *init, image))
            })
            .collect();
        if !bad.is_empty() {
            let mut back_off = false;
            let mut pulls = 0u32;
            loop {
                sink.update(|m| {
                    for (name, init, image) in &bad {
                        if let Some(c) = m.container(name, *init) {
                            c.state = if back_off {
                                State::Waiting {
                                    reason: "ImagePullBackOff".into(),
                                    message: Some(format!("Back-off pulling image \"{image}\"")),
                                }
                            } else {
                                State::Waiting {
                                    reason: "ErrImagePull".into(),
                                    message: Some(format!(
                                        "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": \
                                         dial tcp: lookup {}: no such host",
                                        image.split('/').next().unwrap_or_default()
                                    )),
                                }
                            };
                        }
                    }
                });
                for (_, _, image) in bad.iter().take(1) {
                    if pulls == 0 {
                        self.event("Normal", "Pulling", &format!("Pulling image \"{image}\""));
                        self.event(
                            "Warning",
                            "Failed",
                            &format!("Failed to pull image \"{image}\": not found"),
                        );
                        self.event("Warning", "Failed", "Error: ErrImagePull");
                    } else if pulls == 1 {
                        self.event(
                            "Normal",
                            "BackOff",
                            &format!("Back-off pulling image \"{image}\""),
                        );
                        self.event("Warning", "Failed", "Error: ImagePullBackOff");
                    }
                }
                pulls += 1;
                back_off = !back_off;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(PULL_RETRY) => {}
                }
            }
        }
        let mut told = String::new();
        loop {
            match self.materialise(&plans).await {
                Ok(()) => break,
                Err(Setup::Refuse(message)) => {
                    self.event("Warning", "FailedMount", &message);
                    sink.update(|m| m.failure = Some(("FailedMount".into(), message)));
                    return;
                }
                Err(Setup::Retry(message)) => {
                    if message != told {
                        self.event("Warning", "FailedMount", &message);
                        told = message;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(SETUP_RETRY) => {}
                    }
                }
            }
        }
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        for c in spec.init_containers.iter().flatten() {
            let init_policy = if policy == "Never" {
                "Never"
            } else {
                "OnFailure"
            };
            let code = self.run_container(c, true, init_policy, &plans, sink).await;
            if code != Some(0) {
                return;
            }
        }
        let mains = spec
            .containers
            .iter()
            .map(|c| self.run_container(c, false, &policy, &plans, sink));
        futures::future::join_all(mains).await;
    }

    /// Creates node directories and pod-private volumes.
    async fn materialise(&self, plans: &[VolumePlan]) -> Result<(), Setup> {
        let namespace = self.handle.namespace.clone();
        runtime::ensure_dir(&self.pod_dir.join("tmp"))
            .await
            .map_err(|e| {
                retry(format!(
                    "cannot create the pod directory {}: {e}",
                    self.pod_dir.display()
                ))
            })?;
        // The pod's `/etc`, which its containers share, as they share its hostname.
        let (etc, hostname) = (self.pod_dir.join("etc"), self.handle.name.clone());
        tokio::task::spawn_blocking(move || runtime::write_etc(&etc, &hostname))
            .await
            .map_err(retry)?
            .map_err(Setup::Retry)?;
        for plan in plans {
            match &plan.backing {
                Backing::Node { kind, path, .. } => {
                    // Where the node path is now, its symlinks resolved on the node.
                    let host = plan.resolve(mounts::read_link).map_err(refuse)?;
                    match kind.as_str() {
                        "Directory" | "File" | "Socket" | "CharDevice" | "BlockDevice" => {
                            if tokio::fs::metadata(&host).await.is_err() {
                                return Err(Setup::Retry(format!(
                                    "MountVolume.SetUp failed for volume \"{}\" : hostPath type check failed: {path} is not a {}",
                                    plan.name,
                                    kind.to_lowercase()
                                )));
                            }
                        }
                        "FileOrCreate" => {
                            if let Some(parent) = host.parent() {
                                runtime::ensure_dir(parent).await.map_err(retry)?;
                            }
                            if tokio::fs::metadata(&host).await.is_err() {
                                tokio::fs::write(&host, b"").await.map_err(retry)?;
                            }
                        }
                        _ => runtime::ensure_dir(&host).await.map_err(retry)?,
                    }
                }
                Backing::EmptyDir => runtime::ensure_dir(&plan.host).await.map_err(retry)?,
                Backing::ConfigMap {
                    name,
                    items,
                    optional,
                } => {
                    let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &namespace);
                    let cm = api.get_opt(name).await.map_err(retry)?;
                    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    match cm {
                        Some(cm) => {
                            for (k, v) in cm.data.unwrap_or_default() {
                                files.insert(k, v.into_bytes());
                            }
                            for (k, v) in cm.binary_data.unwrap_or_default() {
                                files.insert(k, v.0);
                            }
                        }
                        None if *optional => {}
                        None => {
                            return Err(Setup::Retry(format!(
                                "MountVolume.SetUp failed for volume \"{}\" : configmap \"{name}\" not found",
                                plan.name
                            )));
                        }
                    }
                    write_files(&plan.host, files, items, &plan.name).await?;
                }
                Backing::Secret {
                    name,
                    items,
                    optional,
                } => {
                    let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
                    let secret = api.get_opt(name).await.map_err(retry)?;
                    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    match secret {
                        Some(s) => {
                            for (k, v) in s.data.unwrap_or_default() {
                                files.insert(k, v.0);
                            }
                            for (k, v) in s.string_data.unwrap_or_default() {
                                files.insert(k, v.into_bytes());
                            }
                        }
                        None if *optional => {}
                        None => {
                            return Err(Setup::Retry(format!(
                                "MountVolume.SetUp failed for volume \"{}\" : secret \"{name}\" not found",
                                plan.name
                            )));
                        }
                    }
                    write_files(&plan.host, files, items, &plan.name).await?;
                }
            }
        }
        Ok(())
    }

    /// The environment of a container, before path mapping.
    async fn environment(&self, c: &Container) -> Result<Vec<(String, String)>, String> {
        let namespace = &self.handle.namespace;
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), PATH.into()),
            ("HOSTNAME".into(), self.handle.name.clone()),
            ("HOME".into(), "/root".into()),
            ("TMPDIR".into(), "/tmp".into()),
        ];
        for from in c.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            if let Some(r) = &from.config_map_ref {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
                let found = api.get_opt(&r.name).await.map_err(|e| e.to_string())?;
                if found.is_none() && r.optional != Some(true) {
                    return Err(format!("configmap \"{}\" not found", r.name));
                }
                if let Some(cm) = found {
                    for (k, v) in cm.data.unwrap_or_default() {
                        env.push((format!("{prefix}{k}"), v));
                    }
                }
            }
            if let Some(r) = &from.secret_ref {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                let found = api.get_opt(&r.name).await.map_err(|e| e.to_string())?;
                if found.is_none() && r.optional != Some(true) {
                    return Err(format!("secret \"{}\" not found", r.name));
                }
                if let Some(s) = found {
                    for (k, v) in s.data.unwrap_or_default() {
                        env.push((
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        ));
                    }
                }
            }
        }
        for e in c.env.iter().flatten() {
            let value = if let Some(v) = &e.value {
                expand(v, &env)
            } else if let Some(from) = &e.value_from {
                if let Some(f) = &from.field_ref {
                    match f.field_path.as_str() {
                        "metadata.name" => self.handle.name.clone(),
                        "metadata.namespace" => namespace.clone(),
                        "metadata.uid" => self.pod.metadata.uid.clone().unwrap_or_default(),
                        "spec.nodeName" => self.handle.node.clone(),
                        "spec.serviceAccountName" => self
                            .pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.service_account_name.clone())
                            .unwrap_or_else(|| "default".into()),
                        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
                        _ => String::new(),
                    }
                } else if let Some(r) = &from.config_map_key_ref {
                    let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
                    let found = api.get_opt(&r.name).await.map_err(|e| e.to_string())?;
                    match found.and_then(|cm| cm.data?.get(&r.key).cloned()) {
                        Some(v) => v,
                        None if r.optional == Some(true) => String::new(),
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {}/{}",
                                r.key, namespace, r.name
                            ));
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                    let found = api.get_opt(&r.name).await.map_err(|e| e.to_string())?;
                    match found.and_then(|s| {
                        s.data?
                            .get(&r.key)
                            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    }) {
                        Some(v) => v,
                        None if r.optional == Some(true) => String::new(),
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {}/{}",
                                r.key, namespace, r.name
                            ));
                        }
                    }
                } else {
                    String::new()
                }
            } else {
                String::new()
            };
            env.retain(|(k, _)| *k != e.name);
            env.push((e.name.clone(), value));
        }
        Ok(env)
    }

    /// Runs one container under its restart policy; returns its final exit code (None if the
    /// pod was stopped first).
    async fn run_container(
        &self,
        c: &Container,
        init: bool,
        policy: &str,
        plans: &[VolumePlan],
        sink: &StatusSink,
    ) -> Option<i32> {
        let stop = self.run_stop.clone();
        let mut backoff = BACKOFF_FIRST;
        let mut instance = 0u32;
        loop {
            let log = Arc::new(LogBuffer::default());
            let started_at = now();
            let id = format!(
                "{}-{}-{instance}",
                self.pod.metadata.uid.clone().unwrap_or_default(),
                c.name
            );
            instance += 1;
            let prepared = self.prepare(c, plans).await;
            if let Err(Setup::Retry(message)) = &prepared {
                sink.update(|m| {
                    if let Some(cm) = m.container(&c.name, init) {
                        cm.state = State::Waiting {
                            reason: "CreateContainerConfigError".into(),
                            message: Some(message.clone()),
                        };
                    }
                });
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(SETUP_RETRY) => {}
                }
                continue;
            }
            let code = match prepared {
                Err(Setup::Retry(_)) => continue,
                Err(Setup::Refuse(message)) => {
                    self.event("Warning", "Failed", &format!("Error: {message}"));
                    log.append(message.as_bytes());
                    log.close();
                    self.register(c, &log, &[]);
                    sink.update(|m| {
                        if let Some(cm) = m.container(&c.name, init) {
                            cm.id = id.clone();
                            cm.state = State::Terminated {
                                exit_code: 126,
                                reason: "Error".into(),
                                message: Some(message.clone()),
                                started_at: started_at.clone(),
                                finished_at: now(),
                            };
                        }
                    });
                    126
                }
                Ok((spec, stand_in)) => {
                    self.register(c, &log, &spec.env);
                    let started = match runtime::isolation().await {
                        Ok(isolation) => runtime::start(isolation, &spec, &log, &stop).await,
                        Err(why) => Err(why),
                    };
                    let outcome: Result<i32, String> = match started {
                        Ok(process) => {
                            self.set_running(&c.name, process.namespace_pid());
                            self.event(
                                "Normal",
                                "Started",
                                &format!("Started container {}", c.name),
                            );
                            sink.update(|m| {
                                if let Some(cm) = m.container(&c.name, init) {
                                    cm.id = id.clone();
                                    cm.state = State::Running {
                                        started_at: started_at.clone(),
                                    };
                                }
                            });
                            if stand_in {
                                // The stand-in for an image's entrypoint has nothing to stop
                                // gracefully: it goes at once, and the container ends well.
                                let _ = process.wait(&stop, Duration::ZERO).await;
                                Ok(0)
                            } else {
                                Ok(process.wait(&stop, self.handle.grace()).await)
                            }
                        }
                        Err(message) => Err(format!(
                            "failed to start container \"{}\": {message}",
                            c.name
                        )),
                    };
                    log.close();
                    self.set_running(&c.name, None);
                    let finished_at = now();
                    match outcome {
                        Ok(code) => {
                            let file = tokio::fs::read_to_string(volumes::termination_file(
                                &self.pod_dir,
                                &c.name,
                            ))
                            .await
                            .ok();
                            let message = termination::message(
                                file.as_deref(),
                                c.termination_message_policy.as_deref(),
                                code,
                                &log.text(),
                            );
                            sink.update(|m| {
                                if let Some(cm) = m.container(&c.name, init) {
                                    cm.state = State::Terminated {
                                        exit_code: code,
                                        reason: termination::reason(code).into(),
                                        message,
                                        started_at: started_at.clone(),
                                        finished_at,
                                    };
                                }
                            });
                            code
                        }
                        Err(message) => {
                            self.event("Warning", "Failed", &format!("Error: {message}"));
                            log.append(format!("{message}\n").as_bytes());
                            sink.update(|m| {
                                if let Some(cm) = m.container(&c.name, init) {
                                    cm.id = id.clone();
                                    cm.state = State::Terminated {
                                        exit_code: 128,
                                        reason: "StartError".into(),
                                        message: Some(message.clone()),
                                        started_at: started_at.clone(),
                                        finished_at,
                                    };
                                }
                            });
                            128
                        }
                    }
                }
            };
            if stop.is_cancelled() {
                return None;
            }
            let again = match policy {
                "Always" => true,
                "OnFailure" => code != 0,
                _ => false,
            };
            if !again {
                return Some(code);
            }
            self.event(
                "Warning",
                "BackOff",
                &format!(
                    "Back-off restarting failed container {} in pod {}_{}({})",
                    c.name,
                    self.handle.name,
                    self.handle.namespace,
                    self.pod.metadata.uid.clone().unwrap_or_default()
                ),
            );
            sink.update(|m| {
                if let Some(cm) = m.container(&c.name, init) {
                    cm.last = Some(cm.state.clone());
                    cm.restarts += 1;
                    cm.state = State::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(format!(
                            "back-off {}s restarting failed container={} pod={}_{}({})",
                            backoff.as_secs().max(1),
                            c.name,
                            self.handle.name,
                            self.handle.namespace,
                            self.pod.metadata.uid.clone().unwrap_or_default()
                        )),
                    };
                }
            });
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    /// Everything a container instance needs to start: its mounts (symlinks under their roots
    /// resolved now), environment, argv and working directory as the container names them,
    /// and its root directory made. `true` with it when the container has no command and the
    /// stand-in for its image's entrypoint runs.
    async fn prepare(
        &self,
        c: &Container,
        plans: &[VolumePlan],
    ) -> Result<(ContainerSpec, bool), Setup> {
        // The name names directories of the pod.
        if c.name.is_empty() || c.name.contains('/') || c.name == "." || c.name == ".." {
            return Err(refuse(format!("invalid container name {:?}", c.name)));
        }
        let table =
            volumes::mount_table(c, plans, &self.pod_dir, mounts::read_link).map_err(refuse)?;
        let mut env = self.environment(c).await.map_err(Setup::Retry)?;
        let home = volumes::home_dir(&self.pod_dir, &c.name);
        runtime::ensure_dir(&home).await.map_err(retry)?;
        // Each instance starts with an empty termination-message file.
        let termination = volumes::termination_file(&self.pod_dir, &c.name);
        tokio::fs::write(&termination, b"").await.map_err(retry)?;
        // Subpaths are created in their volume, as the kubelet does.
        for m in table.mounts() {
            if tokio::fs::metadata(&m.host).await.is_err() {
                runtime::ensure_dir(&m.host).await.map_err(retry)?;
            }
        }
        let words: Vec<String> = match (&c.command, &c.args) {
            (Some(cmd), args) if !cmd.is_empty() => {
                cmd.iter().chain(args.iter().flatten()).cloned().collect()
            }
            (_, Some(args)) => args.clone(),
            _ => Vec::new(),
        };
        let stand_in = words.is_empty();
        let argv: Vec<String> = if stand_in {
            runtime::ENTRYPOINT_STAND_IN
                .iter()
                .map(|w| (*w).to_string())
                .collect()
        } else {
            words.iter().map(|w| expand(w, &env)).collect()
        };
        let working_dir = match c.working_dir.as_deref().filter(|w| !w.is_empty()) {
            Some(w) => {
                mounts::normalize(w).map_err(|e| refuse(format!("workingDir {w:?}: {e}")))?
            }
            None => "/root".to_string(),
        };
        let dir = self.pod_dir.join("containers").join(&c.name);
        let kubelet_dir = self.node_root.join("var/lib/kubelet");
        let etc = self.pod_dir.join("etc");
        // The declared disks the container's mounts reach: their df and stat stand-ins first
        // on its PATH, the disks' roots bound where the stand-ins measure them.
        let (declared, node, node_root) = (
            Arc::clone(&self.disks),
            self.handle.node.clone(),
            self.node_root.clone(),
        );
        let bin_dir = dir.join("sandbox-bin");
        let reach: Vec<disks::ContainerMount> = table
            .mounts()
            .iter()
            .map(|m| disks::ContainerMount {
                container_path: m.container.clone(),
                host_dir: m.host.clone(),
            })
            .collect();
        let binds = tokio::task::spawn_blocking(move || {
            disks::hook(&declared, &node, &node_root, &reach, &bin_dir)
        })
        .await
        .map_err(retry)?
        .map_err(|e| Setup::Retry(format!("cannot install the disk stand-ins: {e}")))?;
        let table = if binds.is_empty() {
            table
        } else {
            match env.iter_mut().rev().find(|(k, _)| k == "PATH") {
                Some((_, path)) => *path = disks::path_with_stand_ins(path),
                None => env.push(("PATH".into(), disks::path_with_stand_ins(""))),
            }
            mounts::MountTable::new(table.mounts().iter().cloned().chain(binds.into_iter().map(
                |(container, host)| mounts::Mount {
                    container,
                    host,
                    read_only: true,
                },
            )))
        };
        // A few small file operations, some on new paths: off the async threads.
        let spec = tokio::task::spawn_blocking(move || {
            let node = runtime::node_dirs(&kubelet_dir).map_err(Setup::Retry)?;
            let lent = mounts::Lent {
                system: runtime::system_dirs(),
                dev: &node.dev,
                etc: &etc,
                stage: &dir.join("stage"),
            };
            let is_file = |p: &Path| std::fs::metadata(p).is_ok_and(|m| !m.is_dir());
            let layout = mounts::layout(&lent, &table, is_file).map_err(refuse)?;
            let spec = ContainerSpec {
                argv,
                env,
                working_dir,
                root: node.root,
                layout,
                fstab: dir.join("fstab"),
            };
            runtime::prepare_root(&spec).map_err(Setup::Retry)?;
            Ok::<_, Setup>(spec)
        })
        .await
        .map_err(retry)??;
        Ok((spec, stand_in))
    }

    /// Makes the container's current instance what exec and logs see.
    fn register(&self, c: &Container, log: &Arc<LogBuffer>, env: &[(String, String)]) {
        let Ok(mut containers) = self.handle.containers.lock() else {
            return;
        };
        containers.insert(
            c.name.clone(),
            ContainerRuntime {
                log: Arc::clone(log),
                env: env.to_vec(),
                namespace_pid: None,
            },
        );
    }

    /// Marks the container running in the namespaces of this PID 1, or not running.
    fn set_running(&self, name: &str, namespace_pid: Option<u32>) {
        if let Ok(mut containers) = self.handle.containers.lock()
            && let Some(c) = containers.get_mut(name)
        {
            c.namespace_pid = namespace_pid;
        }
    }
}

async fn write_files(
    dir: &Path,
    files: BTreeMap<String, Vec<u8>>,
    items: &[(String, String)],
    volume: &str,
) -> Result<(), Setup> {
    runtime::ensure_dir(dir).await.map_err(retry)?;
    let chosen: Vec<(String, String)> = if items.is_empty() {
        files.keys().map(|k| (k.clone(), k.clone())).collect()
    } else {
        items.to_vec()
    };
    for (key, rel) in chosen {
        let Some(content) = files.get(&key) else {
            return Err(Setup::Retry(format!(
                "MountVolume.SetUp failed for volume \"{volume}\" : configmap references non-existent config key: {key}"
            )));
        };
        let target = mounts::under_root(dir, &format!("/{rel}")).map_err(refuse)?;
        if let Some(parent) = target.parent() {
            runtime::ensure_dir(parent).await.map_err(retry)?;
        }
        tokio::fs::write(&target, content).await.map_err(retry)?;
    }
    Ok(())
}

async fn write_status(
    client: Client,
    namespace: String,
    name: String,
    sink: StatusSink,
    stop: CancellationToken,
) {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let mut last: Option<Value> = None;
    loop {
        let stopping = tokio::select! {
            _ = sink.dirty.notified() => false,
            _ = stop.cancelled() => true,
        };
        if stopping {
            return;
        }
        let Some(model) = sink.snapshot() else { return };
        let next = status(&model, "127.0.0.1");
        if last.as_ref() == Some(&next) {
            continue;
        }
        let patch = json!({ "status": next });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => last = Some(next),
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(e) => {
                tracing::debug!(pod = %name, error = %e, "sandbox kubelet: status write failed, retrying");
                sink.dirty.notify_one();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_rule() {
        assert!(unpullable("registry.invalid/busybox"));
        assert!(unpullable("registry.invalid:5000/x/busybox:1.0"));
        assert!(!unpullable("busybox"));
        assert!(!unpullable("docker.io/library/busybox"));
        assert!(!unpullable("library/busybox.invalid"));
    }

    #[test]
    fn expands_variable_references() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)/y $(B) $$(A) $", &env), "x/y $(B) $(A) $");
    }

    fn model(states: Vec<(bool, State)>, policy: &str) -> PodModel {
        PodModel {
            containers: states
                .into_iter()
                .enumerate()
                .map(|(i, (init, state))| ContainerModel {
                    name: format!("c{i}"),
                    image: "busybox".into(),
                    init,
                    state,
                    last: None,
                    restarts: 0,
                    id: String::new(),
                })
                .collect(),
            start_time: "2026-01-01T00:00:00Z".into(),
            restart_policy: policy.into(),
            failure: None,
        }
    }

    fn done(code: i32) -> State {
        State::Terminated {
            exit_code: code,
            reason: termination::reason(code).into(),
            message: None,
            started_at: String::new(),
            finished_at: String::new(),
        }
    }

    #[test]
    fn phases() {
        let waiting = State::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        let running = State::Running {
            started_at: String::new(),
        };
        assert_eq!(
            phase(&model(vec![(false, waiting.clone())], "Never")),
            "Pending"
        );
        assert_eq!(
            phase(&model(vec![(false, running.clone())], "Never")),
            "Running"
        );
        assert_eq!(phase(&model(vec![(false, done(0))], "Never")), "Succeeded");
        assert_eq!(
            phase(&model(vec![(false, done(0)), (false, done(2))], "Never")),
            "Failed"
        );
        assert_eq!(
            phase(&model(
                vec![(true, done(1)), (false, waiting.clone())],
                "Never"
            )),
            "Failed"
        );
        assert_eq!(
            phase(&model(vec![(true, running), (false, waiting)], "Always")),
            "Pending"
        );
    }

    #[test]
    fn a_failed_container_reports_its_termination() {
        let m = model(
            vec![(
                false,
                State::Terminated {
                    exit_code: 1,
                    reason: "Error".into(),
                    message: Some("mkdir: can't create directory\n".into()),
                    started_at: "a".into(),
                    finished_at: "b".into(),
                },
            )],
            "Never",
        );
        let s = status(&m, "127.0.0.1");
        assert_eq!(s["phase"], "Failed");
        let t = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 1);
        assert_eq!(t["reason"], "Error");
        assert_eq!(t["message"], "mkdir: can't create directory\n");
        assert_eq!(s["conditions"][2]["reason"], "PodCompleted");
    }
}
