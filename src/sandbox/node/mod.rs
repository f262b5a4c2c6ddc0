//! The sandbox's nodes: the PV controller, the scheduler, the expand and DaemonSet
//! controllers and a kubelet per Node object, all talking to the sandbox's API server through
//! a `kube::Client` as real controllers do (they never touch the store directly, so they see
//! what any client sees: watches, conflicts, faults).
//!
//! Decisions are pure functions ([`schedule::place`], [`binding::reconcile`],
//! [`daemon::reconcile`], the path mapping
//! in [`mounts`] and [`volumes`], the pod phase and status in [`kubelet`], the termination
//! message in [`termination`]); thin async loops ([`controllers`], [`kubelet::supervise`]) carry
//! them out, woken by the watch cache ([`cache`]) and at least every second.
//!
//! # Interface with the API server
//!
//! [`NodeAgents::start`]`(client, dir)` starts everything; [`NodeAgents::logs`] and
//! [`NodeAgents::exec`] serve `pods/log` and `pods/exec`; [`NodeError::status_code`] says how
//! to answer a failure (404 no such pod, 400 bad container or not running, 500 other);
//! [`NodeAgents::shutdown`] kills every container process. The kubelet finishes a graceful pod
//! deletion (a pod with `deletionTimestamp`) by stopping its processes within the grace period
//! and then deleting the pod with grace 0 and a uid precondition. The scheduler binds with
//! `pods/binding` and, where the server has no such subresource, by patching `spec.nodeName`.
//!
//! # What the controllers do
//!
//! - PV controller: `kubernetes.io/pvc-protection` on claims (dropped once a deleting claim is
//!   used by no live pod) and `kubernetes.io/pv-protection` on volumes (dropped once a deleting
//!   volume is not Bound; both are added at creation by the API server's
//!   `StorageObjectInUseProtection` admission, so the controller adds them only where that
//!   did not); claims of a class with a provisioner get
//!   `volume.kubernetes.io/storage-provisioner` (and the beta name) — WaitForFirstConsumer
//!   claims only once they carry `volume.kubernetes.io/selected-node`; a volume whose `claimRef`
//!   names a claim (and its uid) binds: claim `spec.volumeName`, `pv.kubernetes.io/bind-completed`,
//!   phase Bound with the volume's capacity and access modes; Immediate claims also bind to the
//!   smallest matching Available volume; a volume whose claim is gone is Released; a claim whose
//!   volume is gone is Lost.
//! - Scheduler: Ready nodes only; nodeSelector, required node affinity (matchExpressions and
//!   `metadata.name` matchFields), NoSchedule/NoExecute taints against tolerations,
//!   `spec.unschedulable`, the node affinity of bound volumes; the node with the fewest live
//!   pods wins (ties by name). An unbound WaitForFirstConsumer claim takes the smallest
//!   Available volume on the chosen node that fits it (class, size, modes, node affinity: the
//!   scheduler sets its `claimRef`), or else gets `selected-node` for its provisioner — on a
//!   node the class's `allowedTopologies` allow and, when a CSIDriver named like the
//!   provisioner has `storageCapacity: true`, where a CSIStorageCapacity of the class selects
//!   the node with `maximumVolumeSize` (or else `capacity`) at least the request (the volume
//!   binder's `hasEnoughCapacity`; "node(s) did not have enough free storage"); the pod
//!   stays unscheduled until its claims are Bound. Unschedulable pods get a `PodScheduled`
//!   False condition with the real scheduler's message shape.
//! - Kubelet: runs pods bound to Ready nodes; a pod whose node does not exist is deleted after
//!   [`kubelet::ORPHAN_POD_GRACE`]; on a NotReady node nothing runs (running processes are
//!   killed). An image whose registry host ends in `.invalid` is never pulled: the container
//!   waits with `ErrImagePull`, then `ImagePullBackOff`, alternating every 2 s. Restart
//!   policies are honoured with a back-off from 0.5 s doubling to 10 s (`CrashLoopBackOff`);
//!   a pod past its `activeDeadlineSeconds` is killed and Failed with reason `DeadlineExceeded`.
//!   A terminated container reports exit code, reason (`Completed`/`Error`, `StartError` when
//!   the program cannot start) and message: its termination-message file, or with
//!   `FallbackToLogsOnError` the tail of its output (80 lines / 4 KiB) when it failed. A
//!   container with neither command nor args (an image entrypoint such as nginx) runs
//!   `sleep infinity` in its place, so that exec has something to enter, until the pod stops;
//!   it is stopped at once and ends with code 0. Output is kept in memory, the last 8 MiB per
//!   container.
//!   Volume and container setup that fails for a reason that can pass (an API error, a missing
//!   ConfigMap or key, a `Directory` hostPath not there yet) is retried every 0.5 s
//!   (`FailedMount` event, or the container waiting with `CreateContainerConfigError`). A
//!   deleted pod's directory is removed once its processes are gone.
//! - Expand controller ([`expand`]): a Bound claim asking for more than its `status.capacity`
//!   gets the Warning event `ExternalExpanding` "waiting for an external controller to expand
//!   this PVC" (from `volume_expand`), once per request and capacity — and nothing else, as
//!   kube-controller-manager has no expandable plugin for hostPath, local or CSI volumes.
//! - DaemonSet controller ([`daemon`]): one pod per node that should run it — the template's
//!   nodeName, nodeSelector and required node affinity, and the node's NoSchedule/NoExecute
//!   taints against the template's tolerations plus those the real controller adds
//!   (not-ready and unreachable NoExecute; disk-, memory-, pid-pressure and unschedulable
//!   NoSchedule; network-unavailable for hostNetwork). A node whose Ready condition is not True
//!   counts as tainted not-ready, as the node lifecycle controller would taint it: its pod
//!   stays, no new one comes. Pods are made with `generateName: <ds>-`, a controller owner
//!   reference, the `controller-revision-hash` and `pod-template-generation` labels and node
//!   affinity `matchFields metadata.name In [node]` (the scheduler binds them); surplus, failed,
//!   succeeded and misplaced pods are deleted, as are unbound pods of nodes that are gone.
//!   Each template is a ControllerRevision (history trimmed to `revisionHistoryLimit`; a
//!   rollback renumbers the old revision). RollingUpdate deletes old pods while fewer than
//!   `maxUnavailable` (default 1) nodes lack an available pod, and the replacement comes once the
//!   old pod is gone; OnDelete replaces a pod only when someone deletes it. The status counts
//!   as the real controller's (`desiredNumberScheduled` … `numberUnavailable`,
//!   `observedGeneration`), with `minReadySeconds`. Not modelled: adoption of matching
//!   orphan pods, `maxSurge` (rolled as 0), revision hash collisions.
//! - Events, as the real components word them: `Scheduled` and `FailedScheduling`
//!   (default-scheduler); `WaitForFirstConsumer` and `ExternalProvisioning` on claims, each
//!   once per claim (persistentvolume-controller); `Started`, `Pulling`, `Failed`, `BackOff`,
//!   `Killing`, `FailedMount`, `DeadlineExceeded` (kubelet, with the node as host);
//!   `SuccessfulCreate`, `SuccessfulDelete`, `FailedCreate`, `FailedDaemonPod`,
//!   `SucceededDaemonPod` on DaemonSets (daemonset-controller).
//! - Pods naming another `schedulerName` are left alone. Not modelled: preferred affinities,
//!   pod (anti-)affinity, resource fit, preemption.
//!
//! # How containers are isolated from this machine
//!
//! Containers run as local processes (this machine's programs stand in for the image's), each
//! in its own mount and PID namespaces made with util-linux's `unshare` (and a user namespace
//! mapping the sandbox's user to root when the sandbox does not run as root), with a root of
//! its own: the paths a container names are its own paths, and nothing of this machine is
//! there that the pod does not mount. Nothing reads a container's command, environment or
//! files; the node paths the kubelet mounts are all it maps:
//!
//! - node `N`'s root is `<dir>/nodes/N`; a node path `/p` is `<dir>/nodes/N/p`, joined
//!   lexically (a path that climbs above `/` with `..` is refused), and symlinks met below the
//!   node's root resolve inside it, an absolute target starting again from the node's root, as
//!   on the node itself;
//! - each pod has its own directory `<dir>/nodes/N/var/lib/kubelet/pods/<uid>/` holding
//!   `tmp/`, `etc/`, `volumes/<volume>/` and `containers/<container>/` (home, termination-log,
//!   `fstab`, staged directories);
//! - a container's `/` is a tmpfs of its own (its writable layer, at most 256 MiB, gone when it
//!   ends) holding this machine's `/usr`, `/bin`, `/sbin` and `/lib*` read-only (the stand-in
//!   for the image's userland); a `proc` of its own PID namespace; `/dev` from the node's
//!   template (`var/lib/kubelet/container-dev/`, read-only: the `fd`, `stdin`, `stdout` and
//!   `stderr` symlinks) with this machine's `null`, `zero`, `full`, `random`, `urandom` and
//!   `tty` bound on it and a tmpfs at `/dev/shm` (never the rest of `/dev`: a device node can
//!   be written whatever its mount's flags say); `/etc` from the pod's `etc/` (`passwd`,
//!   `group`, `hosts`, `hostname` with the pod's name, this machine's `resolv.conf`); `/tmp`
//!   the pod's `tmp/`; `/root` the container's home; and at `/dev/termination-log` (or the
//!   container's `terminationMessagePath`) its termination-message file;
//! - each volumeMount is bound at its `mountPath`, read-only with `readOnly` (and always for
//!   configMap and secret volumes): hostPath `/p` → the node path `/p` (created for
//!   `DirectoryOrCreate` and an empty type, checked for `Directory`/`File`); a PVC → its bound
//!   PV's `hostPath.path` or `local.path` → the node path; emptyDir, configMap and secret
//!   volumes → the pod's `volumes/<volume>/` (configMap and secret keys written as files);
//!   projected and downwardAPI volumes → empty private directories; a `subPath` resolves
//!   inside its volume (symlinks included) and is created when missing;
//! - mount points are made by `mount` in the root's tmpfs, by the kubelet inside a writable
//!   volume (never through a symlink) and must be there in a read-only one; a file mounted at
//!   a new path of the root (`/app/config.yaml`) has that path's first directory staged in
//!   `containers/<container>/stage/`, since `mount` makes directories only;
//! - the kubelet's own setup runs inside the new namespaces ([`runtime::SETUP`]): `mount -a`
//!   with the container's `fstab`, `pivot_root` into the new root and a lazy unmount of this
//!   machine's (so that no path leads back, not even out of a `chroot`), the working
//!   directory (`workingDir`, else `/root`; made when missing), the program looked up on the
//!   container's `PATH` (not found: `StartError` with exit code 128, as a runtime says it);
//!   then the program runs through `env -i` with exactly the container's environment, a child
//!   of that setup shell, which stays PID 1 of the namespace;
//! - the environment is `PATH`, `HOSTNAME`, `HOME=/root` and `TMPDIR=/tmp`, then the
//!   container's `env`/`envFrom` (values with `$(VAR)` expanded, fieldRefs, configMap and
//!   secret keys); each container is its own process group, stopped with SIGTERM, the grace
//!   period, then SIGKILL of the whole group; whatever is left in its PID namespace dies with
//!   its PID 1;
//! - exec enters the container's namespaces, root and working directory (`nsenter`), with the
//!   container's environment; logs and termination messages are what the container wrote;
//! - when `unshare` is missing or cannot make the namespaces here, every container fails with
//!   `StartError` and a message saying why (run the sandbox as root, or allow unprivileged
//!   user namespaces); there is no weaker fallback.
//!
//! Declared disks ([`disks`]): node paths that stand for filesystems of a given size, type and
//! mount point. A container whose mounts reach one gets `df` and `stat` stand-ins that answer
//! from the declaration (size as declared, used what is really stored there, available the
//! rest) at `/.sandbox/bin`, first on its `PATH` (its `exec`s too), and the disk's root bound
//! read-only where they measure it (`/.sandbox/disks/<i>`); two more read-only binds in its
//! `fstab`, nothing else. Every other path and use runs this machine's programs.
//!
//! Limits: processes run as the user running the sandbox (root inside their user namespace, if
//! any) and share this machine's network, hostname, IPC and user ids; `/usr` and the rest are
//! this machine's, not the image's, and images are not pulled or run: only their registry host
//! matters. The containers of a pod share its `/etc`. A file cannot be mounted right under `/`
//! or in `/dev/shm`. A symlink swapped into a volume between the kubelet resolving a path and
//! `mount` binding it is followed (in the container's own mount namespace). Resource limits,
//! probes, lifecycle hooks, security contexts and host namespaces are ignored; every pod's IP
//! is 127.0.0.1.

pub mod binding;
pub mod cache;
pub mod controllers;
pub mod daemon;
pub mod disks;
pub mod events;
pub mod expand;
pub mod kubelet;
pub mod mounts;
pub mod runtime;
pub mod schedule;
pub mod termination;
pub mod volumes;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use tokio_util::sync::CancellationToken;

pub use runtime::{ExecSession, LogStream};

/// Why a log or exec request cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No such pod (answer 404).
    #[error("pods \"{pod}\" not found")]
    PodNotFound {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
    },
    /// The pod has no such container (answer 400, as the real server does).
    #[error("container {container} is not valid for pod {pod}")]
    ContainerNotFound {
        /// The pod.
        pod: String,
        /// The container asked for.
        container: String,
    },
    /// The pod has several containers and none was named (answer 400).
    #[error("a container name must be specified for pod {pod}, choose one of: [{choices}]")]
    ContainerRequired {
        /// The pod.
        pod: String,
        /// Its containers, space-separated.
        choices: String,
    },
    /// The container has not started or has ended (answer 400).
    #[error("container \"{container}\" in pod \"{pod}\" is {state}")]
    NotRunning {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// `waiting to start: ContainerCreating`, `not running`...
        state: String,
    },
    /// Starting the process failed (answer 500).
    #[error("cannot start the command: {0}")]
    Io(#[from] std::io::Error),
}

impl NodeError {
    /// The HTTP status the API server should answer with.
    pub fn status_code(&self) -> u16 {
        match self {
            NodeError::PodNotFound { .. } => 404,
            NodeError::Io(_) => 500,
            _ => 400,
        }
    }
}

/// The PV controller, the scheduler and the kubelets of one sandbox. Cheap to clone.
#[derive(Clone)]
pub struct NodeAgents {
    cache: cache::Cache,
    disks: Arc<[disks::Disk]>,
    pods: kubelet::Pods,
    stop: CancellationToken,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for NodeAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgents").finish_non_exhaustive()
    }
}

impl NodeAgents {
    /// Starts the PV controller, the scheduler and the kubelet of every Node object, all
    /// talking to the API through `client` (the sandbox's in-process client). Node roots are
    /// `<dir>/nodes/<node>`. Must be called inside a tokio runtime.
    pub fn start(client: kube::Client, dir: PathBuf) -> NodeAgents {
        NodeAgents::start_with_disks(client, dir, Vec::new(), std::time::Duration::ZERO)
    }

    /// [`NodeAgents::start`] with declared disks (see [`disks`]), for the kubelet to show
    /// containers, and the time a kubelet takes to make a pod's sandbox before its containers
    /// start (zero: at once; a real node takes about a second or more).
    pub fn start_with_disks(
        client: kube::Client,
        dir: PathBuf,
        declared: Vec<disks::Disk>,
        pod_startup: std::time::Duration,
    ) -> NodeAgents {
        let stop = CancellationToken::new();
        let cache = cache::Cache::start(&client, &stop);
        let pods: kubelet::Pods = Arc::default();
        let disks: Arc<[disks::Disk]> = declared.into();
        let tasks = vec![
            tokio::spawn(controllers::scheduler(
                client.clone(),
                cache.clone(),
                stop.clone(),
            )),
            tokio::spawn(controllers::volume_controller(
                client.clone(),
                cache.clone(),
                stop.clone(),
            )),
            tokio::spawn(controllers::expand_controller(
                client.clone(),
                cache.clone(),
                stop.clone(),
            )),
            tokio::spawn(controllers::daemon_set_controller(
                client.clone(),
                cache.clone(),
                stop.clone(),
            )),
            tokio::spawn(kubelet::supervise(
                client,
                cache.clone(),
                dir,
                Arc::clone(&disks),
                pod_startup,
                Arc::clone(&pods),
                stop.clone(),
            )),
        ];
        NodeAgents {
            cache,
            disks,
            pods,
            stop,
            tasks: Arc::new(Mutex::new(tasks)),
        }
    }

    /// The declared disks.
    pub fn disks(&self) -> &[disks::Disk] {
        &self.disks
    }

    /// The pod from the watch cache.
    fn cached_pod(&self, namespace: &str, pod: &str) -> Option<Arc<Pod>> {
        self.cache.pods.state().into_iter().find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata.name.as_deref() == Some(pod)
        })
    }

    /// Waits (briefly) until the watch cache knows the pod: a client may ask for logs of a pod
    /// the API server has just accepted.
    async fn caught_up(&self, namespace: &str, pod: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.cached_pod(namespace, pod).is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Finds the pod (from the watch cache), its container, and the kubelet's runtime of it.
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<
        (
            Arc<kubelet::PodHandle>,
            String,
            Option<kubelet::ContainerRuntime>,
        ),
        NodeError,
    > {
        let not_found = || NodeError::PodNotFound {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
        };
        let object: Arc<Pod> = self.cached_pod(namespace, pod).ok_or_else(not_found)?;
        let spec = object.spec.clone().unwrap_or_default();
        let names: Vec<String> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .map(|c| c.name.clone())
            .collect();
        let name = match container {
            Some(c) if names.iter().any(|n| n == c) => c.to_string(),
            Some(c) => {
                return Err(NodeError::ContainerNotFound {
                    pod: pod.to_string(),
                    container: c.to_string(),
                });
            }
            None if spec.containers.len() == 1 => spec.containers[0].name.clone(),
            None => {
                return Err(NodeError::ContainerRequired {
                    pod: pod.to_string(),
                    choices: spec
                        .containers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            }
        };
        let waiting = || NodeError::NotRunning {
            pod: pod.to_string(),
            container: name.clone(),
            state: "waiting to start: ContainerCreating".into(),
        };
        let uid = object.metadata.uid.clone().unwrap_or_default();
        let handle = self
            .pods
            .lock()
            .ok()
            .and_then(|h| h.get(&uid).cloned())
            .ok_or_else(waiting)?;
        let runtime = handle
            .containers
            .lock()
            .ok()
            .and_then(|c| c.get(&name).cloned());
        Ok((handle, name, runtime))
    }

    /// The output of a container (`pods/log`): the last `tail_lines` lines, and with `follow`
    /// whatever comes until the container ends.
    pub async fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        follow: bool,
        tail_lines: Option<i64>,
    ) -> Result<LogStream, NodeError> {
        self.caught_up(namespace, pod).await;
        let (_, name, runtime) = self.container(namespace, pod, container)?;
        let runtime = runtime.ok_or_else(|| NodeError::NotRunning {
            pod: pod.to_string(),
            container: name,
            state: "waiting to start: ContainerCreating".into(),
        })?;
        Ok(runtime.log.stream(follow, tail_lines))
    }

    /// Runs a command in a running container (`pods/exec`): in its namespaces and root, with
    /// its environment and working directory.
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: Vec<String>,
        stdin: bool,
        _tty: bool,
    ) -> Result<ExecSession, NodeError> {
        self.caught_up(namespace, pod).await;
        let (handle, name, runtime) = self.container(namespace, pod, container)?;
        let (namespace_pid, env) = runtime
            .and_then(|r| Some((r.namespace_pid?, r.env)))
            .ok_or_else(|| NodeError::NotRunning {
                pod: pod.to_string(),
                container: name.clone(),
                state: "not running".into(),
            })?;
        let isolation = runtime::isolation().await.map_err(std::io::Error::other)?;
        let spec = runtime::ExecSpec {
            namespace_pid,
            argv: command,
            env,
        };
        Ok(runtime::exec(
            isolation,
            &spec,
            stdin,
            handle.stop.child_token(),
        )?)
    }

    /// Stops every loop and kills every container process (SIGTERM, a short grace, SIGKILL).
    pub async fn shutdown(&self) {
        kubelet::stop_all(&self.pods).await;
        self.stop.cancel();
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

#[cfg(test)]
mod fake_api;
#[cfg(test)]
mod flows;
