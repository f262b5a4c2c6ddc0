//! One pod's worker: makes the pod's volumes, "pulls" its images, builds each container's
//! environment and root, runs init containers then the others as local processes, restarts
//! them with back-off as the restart policy says, and stops them when the pod is deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::status::{PodModel, State, StatusSink, now, write_status};
use super::{ContainerRuntime, PodHandle, delete_now};
use crate::sandbox::node::cache::Cache;
use crate::sandbox::node::disks::{self, Disk};
use crate::sandbox::node::events::{Recorder, Regarding};
use crate::sandbox::node::mounts;
use crate::sandbox::node::runtime::{self, ContainerSpec, LogBuffer};
use crate::sandbox::node::termination;
use crate::sandbox::node::volumes::{self, Backing, VolumePlan};

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

/// The events a kubelet records as it makes sure of a container's image
/// (pkg/kubelet/images/image_manager.go EnsureImageExists): with pull policy `Always`, a pull;
/// otherwise the image counts as on the node already (the sandbox runs this machine's programs).
pub fn image_events(image: &str, policy: Option<&str>) -> Vec<(&'static str, String)> {
    if policy == Some("Always") {
        vec![
            ("Pulling", format!("Pulling image \"{image}\"")),
            (
                "Pulled",
                format!("Successfully pulled image \"{image}\" in 0s (0s including waiting)"),
            ),
        ]
    } else {
        vec![(
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        )]
    }
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

/// Runs one pod.
pub(super) struct Worker {
    pub(super) client: Client,
    pub(super) cache: Cache,
    pub(super) pod: Pod,
    pub(super) node_root: PathBuf,
    /// The sandbox's declared disks (all nodes').
    pub(super) disks: Arc<[Disk]>,
    /// How long making the pod's sandbox takes before its containers start (see
    /// [`NodeAgents::start_with_disks`](crate::sandbox::node::NodeAgents::start_with_disks)).
    pub(super) pod_startup: Duration,
    pub(super) pod_dir: PathBuf,
    pub(super) handle: Arc<PodHandle>,
    pub(super) events: Recorder,
    /// Stops the containers: the pod's stop, or its `activeDeadlineSeconds` running out.
    pub(super) run_stop: CancellationToken,
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

impl Worker {
    fn event(&self, type_: &str, reason: &str, message: &str) {
        let regarding = Regarding::pod(
            &self.handle.namespace,
            &self.handle.name,
            self.pod.metadata.uid.as_deref().unwrap_or_default(),
        );
        self.events.record(&regarding, type_, reason, message);
    }

    pub(super) async fn run(self) {
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
        const PAST_DEADLINE: &str = "Pod was active on the node longer than the specified deadline";
        if let Some(after) = deadline {
            let run_stop = self.run_stop.clone();
            let expired = Arc::clone(&expired);
            let sink = sink.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(after) => {
                        // The pod is Failed with its reason before its containers are
                        // stopped, as the kubelet's active deadline handler makes it
                        // (pkg/kubelet/active_deadline.go, then the pod's status).
                        expired.store(true, Ordering::SeqCst);
                        sink.update(|m| {
                            m.failure = Some(("DeadlineExceeded".into(), PAST_DEADLINE.into()));
                        });
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
            self.event("Normal", "DeadlineExceeded", PAST_DEADLINE);
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
                    // As a kubelet records a container's start (kuberuntime_container.go
                    // startContainer): its image made sure of, the container created, started.
                    let image = c.image.as_deref().unwrap_or_default();
                    for (reason, message) in image_events(image, c.image_pull_policy.as_deref()) {
                        self.event("Normal", reason, &message);
                    }
                    self.event(
                        "Normal",
                        "Created",
                        &format!("Created container: {}", c.name),
                    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_start_records_its_image_as_a_kubelet_does() {
        assert_eq!(
            image_events("busybox:1.36", Some("IfNotPresent")),
            [(
                "Pulled",
                "Container image \"busybox:1.36\" already present on machine".to_owned()
            )]
        );
        let pulled: Vec<&str> = image_events("busybox", Some("Always"))
            .into_iter()
            .map(|(reason, _)| reason)
            .collect();
        assert_eq!(pulled, ["Pulling", "Pulled"]);
    }

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
}
