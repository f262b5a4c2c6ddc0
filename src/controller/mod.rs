//! `lpp run`: the provisioning loop.
//!
//! Claims and volumes arrive on watches; each claim that needs a volume, each bound claim that
//! asks to grow ([`resize`]) and each Released volume of ours becomes one operation, at most one
//! per object at a time ([`queue`]). An operation asks the
//! pure [`crate::provision`] decisions what to do, has the [`crate::executor`] run the setup or
//! teardown script on the node (a waiting operation holds no worker permit), then creates or
//! deletes the PV. Names are deterministic (`pvc-<uid>`, `helper-pod-create-<pv>`), so an
//! operation that finds its helper pod or PV already there adopts it: a restart resumes where the
//! last run stopped.
//!
//! StorageClasses, Nodes and PersistentVolumes are kept in reflector stores ([`Stores`]); the
//! claim and the ConfigMap are read afresh by every operation, so the newest claim decides and a
//! config edit applies to the very next volume (an invalid one keeps the last good). A claim that
//! is refused is kept aside and looked at again when the config, a class, the nodes or the
//! volumes change; a retry waiting for its delay is woken by a newer change to its object.
//!
//! Leader election: the Lease `<provisioner name with / as ->` in the provisioner namespace is
//! taken before any work and renewed every 2 s; a run that loses it, or cannot renew it within
//! 10 s (well inside its 15 s), stops; Ctrl-C releases it.

pub mod access;
mod agents;
mod capacity;
mod events;
mod lease;
pub use lease::VERSION_LABEL as LEASE_VERSION_LABEL;
mod metrics;
mod operation;
mod queue;
mod resize;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, PersistentVolume, PersistentVolumeClaim,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use tokio::sync::Semaphore;

use crate::executor::Executor;

/// Log line format of `lpp run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What `lpp run` is asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Namespace of the ConfigMap, the Lease and the helper pods.
    pub namespace: String,
    /// Provisioner name whose StorageClasses this run serves.
    pub provisioner_name: String,
    /// Name of the ConfigMap holding `config.json` and `helperPod.yaml`.
    pub config_map: String,
    /// `--config`: read `config.json` from this file instead of the ConfigMap; `None` uses the ConfigMap.
    pub config_file: Option<PathBuf>,
    /// `--helper-pod-file`: read the helper pod template from this file; `None` uses the ConfigMap.
    pub helper_pod_file: Option<PathBuf>,
    /// ServiceAccount the helper pods run as.
    pub service_account_name: String,
    /// `--helper-image`: overrides the template's image; `None` keeps it.
    pub helper_image: Option<String>,
    /// `--workers`: how many operations (provision, delete, ...) run at once.
    pub workers: u32,
    /// Retries before giving up (`None`: retry forever).
    pub provisioning_retry_count: Option<u32>,
    /// Retries of a failed deletion before giving up (`None`: retry forever).
    pub deletion_retry_count: Option<u32>,
    /// Skip the safety checks on the helper pod template (privileged, host namespaces, ...).
    pub allow_unsafe_helper_pod_template: bool,
    /// Address to serve Prometheus metrics on; `None` serves none.
    pub metrics_addr: Option<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// The Lease to hold, or `None` with `--no-leader-election`.
    pub lease_name: Option<String>,
    /// Where the run talks to, for its first line: `context x at https://…` (empty: not said).
    pub origin: String,
    /// `--executor`: how scripts run on nodes; `None` lets the ConfigMap's `executor` key say
    /// (helper pods when it does not).
    pub executor: Option<crate::config::ExecutorKind>,
    /// `--usage-interval`: how often every node's disks are measured; zero: never (a claim
    /// whose class needs to know still has its node measured).
    pub usage_interval: Duration,
    /// Whether the periodic measurement may start helper pods (a pod per node per refresh):
    /// when `--usage-interval` was given, or for capacity tracking. Otherwise it runs only
    /// while the node agents serve.
    pub usage_with_helper_pods: bool,
    /// More provisioner names served next to `provisioner_name` (`lpp install
    /// --capacity-tracking`'s class), with the same configuration.
    pub extra_provisioner_names: Vec<String>,
}

impl RunOptions {
    /// Whether this run serves claims of classes naming `provisioner`.
    pub fn serves(&self, provisioner: &str) -> bool {
        provisioner == self.provisioner_name
            || self
                .extra_provisioner_names
                .iter()
                .any(|p| p == provisioner)
    }
}

/// The Lease name upstream-compatible tooling expects for a provisioner name:
/// `rancher.io/local-path` → `rancher.io-local-path`.
pub fn lease_name_for(provisioner_name: &str) -> String {
    provisioner_name.replace('/', "-")
}

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options cannot be used (exit `Usage`).
    #[error("{0}")]
    Options(String),
    /// Another holder took the Lease.
    #[error("lost the Lease {lease} to {holder}: another provisioner took over")]
    LeaseLost {
        /// Lease name.
        lease: String,
        /// Identity of the new holder.
        holder: String,
    },
    #[error(
        "could not renew the Lease {lease} for {}s ({why}); stopped before it expires, so that two runs never provision at once",
        .within.as_secs()
    )]
    /// The Lease could not be renewed in time, so the run stopped before it expired.
    LeaseNotRenewed {
        /// Lease name.
        lease: String,
        /// How long renewing was tried.
        within: Duration,
        /// The last renewal error.
        why: String,
    },
    /// The ServiceAccount lacks a permission the run needs.
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "namespace {0} does not exist: install the provisioner first (`lpp install`), or name its namespace with -n"
    )]
    /// The namespace does not exist.
    NoNamespace(String),
    /// A request needed to start the run failed.
    #[error("cannot start: {what}: {source}")]
    Start {
        /// What was being started.
        what: String,
        #[source]
        /// The client's error.
        source: kube::Error,
    },
    /// A watch stopped for good.
    #[error("the watch of {what} ended: {why}")]
    Watch {
        /// The resource watched.
        what: &'static str,
        /// Why it ended.
        why: String,
    },
}

/// What the watches keep: the objects operations read instead of asking the API server each
/// time. The claim itself and the ConfigMap are still read afresh per operation: the newest
/// claim decides, and a config edit made just before a claim must apply to it.
pub(crate) struct Stores {
    pub classes: Store<StorageClass>,
    pub nodes: Store<Node>,
    pub volumes: Store<PersistentVolume>,
    /// True once all three hold their first list. (One waiter awaits the stores themselves:
    /// kube's `wait_until_ready` wakes only the last of several concurrent waiters.)
    listed: tokio::sync::watch::Receiver<bool>,
    /// PVs this run created that the volume watch may not have delivered yet, and when: a claim
    /// updated while its volume was made must not be provisioned again in that gap.
    made: Mutex<HashMap<String, Instant>>,
}

/// How long a PV this run created counts as existing without the watch having shown it.
const MADE_UNSEEN: Duration = Duration::from_secs(30);

/// How long operations wait for the stores' first lists before giving up on an attempt.
const STORES_READY: Duration = Duration::from_secs(30);

impl Stores {
    /// Stores fed by the given writers' watches, and the task that says when all have listed.
    fn new(
        classes: Store<StorageClass>,
        nodes: Store<Node>,
        volumes: Store<PersistentVolume>,
    ) -> Stores {
        let (tell, listed) = tokio::sync::watch::channel(false);
        let (c, n, v) = (classes.clone(), nodes.clone(), volumes.clone());
        tokio::spawn(async move {
            let all = async {
                c.wait_until_ready().await?;
                n.wait_until_ready().await?;
                v.wait_until_ready().await
            };
            if all.await.is_ok() {
                let _ = tell.send(true);
            }
        });
        Stores {
            classes,
            nodes,
            volumes,
            listed,
            made: Mutex::default(),
        }
    }

    /// Whether PV `name` exists: in the store, or created by this run a moment ago.
    pub fn volume_exists(&self, name: &str) -> bool {
        let seen = self.volumes.get(&ObjectRef::new(name)).is_some();
        let Ok(mut made) = self.made.lock() else {
            return seen;
        };
        if seen {
            made.remove(name);
            return true;
        }
        made.retain(|_, at| at.elapsed() < MADE_UNSEEN);
        made.contains_key(name)
    }

    /// Notes that this run created PV `name` (see [`Stores::volume_exists`]).
    pub fn volume_made(&self, name: &str) {
        if let Ok(mut made) = self.made.lock() {
            made.insert(name.to_owned(), Instant::now());
        }
    }

    /// Waits until every store holds its first list.
    pub async fn ready(&self) -> Result<(), String> {
        let mut listed = self.listed.clone();
        match tokio::time::timeout(STORES_READY, listed.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(format!(
                "the watches of StorageClasses, Nodes and PersistentVolumes have not listed them within {}s",
                STORES_READY.as_secs()
            )),
        }
    }

    /// Every PV's data location.
    pub fn volume_refs(&self) -> Vec<crate::provision::VolumeRef> {
        self.volumes
            .state()
            .iter()
            .filter_map(|v| crate::provision::VolumeRef::of(v))
            .collect()
    }
}

/// The shared state of one run.
pub(crate) struct Context {
    pub client: kube::Client,
    pub options: RunOptions,
    /// Objects with an operation under way, and refused claims.
    queue: queue::Queue<Work>,
    /// Where action lines also go, when the caller wants them.
    actions: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// Runs the setup and teardown scripts.
    pub executor: Executor,
    pub stores: Stores,
    /// What `/metrics` reports.
    pub metrics: Arc<metrics::Metrics>,
    /// What is known of the nodes' disks.
    pub usage: capacity::Usage,
    /// Bounds the operations that are talking to the API at once before their script.
    pub workers: Semaphore,
    /// As many permits again for operations whose script has run: a volume whose directory is
    /// made never waits behind a burst of claims that have not started.
    finishers: Semaphore,
    /// The last configuration that loaded, used while the ConfigMap holds an invalid one; and
    /// the last problem reported, so an invalid ConfigMap is reported once, not per operation.
    pub last_good: Mutex<(Option<crate::config::ConfigMapContents>, Option<String>)>,
    /// Cancelled at shutdown: no new attempt starts, a retry waiting for its delay stops.
    pub stopping: tokio_util::sync::CancellationToken,
    /// The operations under way, waited for at shutdown.
    operations: tokio_util::task::TaskTracker,
    /// Whether claims that grow are resized (the account may write claim status).
    pub resizing: bool,
    /// The texts of `--config` and `--helper-pod-file`, read once.
    pub config_file: Option<String>,
    pub helper_pod_file: Option<String>,
}

impl Context {
    /// Logs one action line, and hands it to whoever asked for them (`lpp demo`). With
    /// `--log-format json` the parts are fields of their own as well.
    pub fn action(&self, done: &Done<'_>) {
        let line = done.to_string();
        if self.options.log_format == LogFormat::Json {
            tracing::info!(
                action = done.verb,
                object = done.object,
                node = done.node,
                path = done.path,
                seconds = done.took.as_secs_f64(),
                "{line}"
            );
        } else {
            tracing::info!("{line}");
        }
        if let Some(actions) = &self.actions {
            let _ = actions.send(line);
        }
    }

    /// A `--workers` permit, counted in the queue depth while waited for.
    pub async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.metrics.queued.inc();
        let permit = self.workers.acquire().await.ok();
        self.metrics.queued.dec();
        permit
    }

    /// A permit to finish an operation whose script has run (create or delete its PV), from a
    /// pool of its own: with one pool, the burst of claims queued for their first permit would
    /// keep every made directory from getting its PV until the whole burst had started.
    pub async fn finish_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.metrics.queued.inc();
        let permit = self.finishers.acquire().await.ok();
        self.metrics.queued.dec();
        permit
    }

    /// How many times refused claims were handed back so far; see [`Context::refuse`].
    pub fn generation(&self) -> u64 {
        self.queue.generation()
    }

    /// Keeps a refused claim until something it may depend on changes; when something changed
    /// since `generation` was read, hands it back at once instead.
    pub fn refuse(&self, work: Work, generation: u64) -> Option<Work> {
        self.queue.refuse(&work.key(), work, generation)
    }
}

/// `--usage-interval` when not given.
pub const DEFAULT_USAGE_INTERVAL: Duration = Duration::from_secs(60);

/// Runs the loop until `shutdown` resolves (then releases the Lease and returns `Ok`), or until
/// the Lease is lost or a watch cannot be kept.
pub async fn run(
    client: kube::Client,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    run_reporting(client, options, shutdown, None).await
}

/// [`run`], also sending each action line (`provisioned …`, `reclaimed …`) to `actions`.
pub async fn run_reporting(
    client: kube::Client,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
    actions: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<(), Error> {
    let read = |path: &Option<PathBuf>, flag: &str| -> Result<Option<String>, Error> {
        path.as_ref()
            .map(|p| {
                std::fs::read_to_string(p).map_err(|e| {
                    Error::Options(format!("{flag} {}: cannot read it: {e}", p.display()))
                })
            })
            .transpose()
    };
    let config_file = read(&options.config_file, "--config")?;
    let helper_pod_file = read(&options.helper_pod_file, "--helper-pod-file")?;
    check_files(&options, config_file.as_deref(), helper_pod_file.as_deref())?;
    let config_map = config_file.is_none() || helper_pod_file.is_none();
    let resizing = access::check(&client, &options, config_map).await?;
    announce(&client, &options, config_map).await?;

    let (classes, classes_writer) = reflector::store();
    let (nodes, nodes_writer) = reflector::store();
    let (volumes, volumes_writer) = reflector::store();
    let context = Arc::new(Context {
        executor: Executor::start(client.clone(), &options.namespace, true),
        stores: Stores::new(classes, nodes, volumes),
        config_file,
        helper_pod_file,
        resizing,
        workers: Semaphore::new(options.workers.max(1) as usize),
        finishers: Semaphore::new(options.workers.max(1) as usize),
        queue: queue::Queue::default(),
        last_good: Mutex::new((None, None)),
        metrics: Arc::new(metrics::Metrics::default()),
        usage: capacity::Usage::default(),
        stopping: tokio_util::sync::CancellationToken::new(),
        operations: tokio_util::task::TaskTracker::new(),
        actions,
        client,
        options,
    });
    if let Some(addr) = &context.options.metrics_addr {
        metrics::serve(addr, Arc::clone(&context.metrics)).await?;
    }
    tokio::pin!(shutdown);
    let lease = match &context.options.lease_name {
        Some(name) => {
            let held = lease::Lease::new(context.client.clone(), &context.options.namespace, name);
            tokio::select! {
                taken = held.acquire() => taken?,
                () = &mut shutdown => return Ok(()),
            }
            tracing::info!(lease = %name, holder = %held.holder(), "took the Lease; provisioning");
            Some(held)
        }
        None => None,
    };
    context
        .metrics
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let outcome = {
        // The stores, the config watch and the Lease renewal also serve the operations that
        // finish after shutdown was asked for.
        let background = async {
            tokio::select! {
                lost = renew(lease.as_ref()) => lost,
                () = follow_config(&context) => Err(Error::Watch {
                    what: "the ConfigMap",
                    why: "the stream ended".into(),
                }),
                () = follow_classes(&context, classes_writer) => Err(Error::Watch {
                    what: "StorageClasses",
                    why: "the stream ended".into(),
                }),
                () = follow_nodes(&context, nodes_writer) => Err(Error::Watch {
                    what: "Nodes",
                    why: "the stream ended".into(),
                }),
                () = capacity::follow(&context) => Err(Error::Watch {
                    what: "the nodes' disks",
                    why: "the refresh ended".into(),
                }),
            }
        };
        tokio::pin!(background);
        let outcome = tokio::select! {
            outcome = watch(Arc::clone(&context), volumes_writer) => outcome,
            failed = &mut background => failed,
            () = &mut shutdown => Ok(()),
        };
        context.stopping.cancel();
        context.operations.close();
        match outcome {
            Ok(()) => finish(&context, background).await,
            failed => failed,
        }
    };
    if let Some(lease) = lease {
        lease.release().await;
        tracing::info!("released the Lease");
    }
    outcome
}

/// How long a stopping run waits for the operations under way.
const GRACE: Duration = Duration::from_secs(20);

/// Lets the operations under way end (a retry waiting for its delay ends at once), for at most
/// [`GRACE`]; what is still running then is handed back: the next run adopts its helper pod.
async fn finish(
    context: &Context,
    background: impl Future<Output = Result<(), Error>>,
) -> Result<(), Error> {
    let under_way = context.operations.len();
    if under_way == 0 {
        return Ok(());
    }
    tracing::info!(
        "stopping: letting {under_way} operations under way finish (at most {}s)",
        GRACE.as_secs()
    );
    tokio::select! {
        () = context.operations.wait() => Ok(()),
        failed = background => failed,
        () = tokio::time::sleep(GRACE) => {
            tracing::warn!(
                "stopping with {} operations unfinished; the next run resumes them",
                context.operations.len()
            );
            Ok(())
        }
    }
}

/// `--config` and `--helper-pod-file` are checked before any work: a file that cannot be used
/// is a mistake on the command line, not something to report per volume.
fn check_files(
    options: &RunOptions,
    config_file: Option<&str>,
    helper_pod_file: Option<&str>,
) -> Result<(), Error> {
    let named = |flag: &str, path: &Option<PathBuf>, why: String| {
        let path = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Error::Options(format!("{flag} {path}: {why}"))
    };
    if let Some(text) = config_file {
        crate::config::Config::parse(text).map_err(|e| {
            named(
                "--config",
                &options.config_file,
                format!("{e}; fix the file"),
            )
        })?;
    }
    if let Some(text) = helper_pod_file {
        let template = crate::config::parse_helper_pod(text).map_err(|e| {
            named(
                "--helper-pod-file",
                &options.helper_pod_file,
                format!("{e}; fix the file"),
            )
        })?;
        operation::helper_pods_of(options, template)
            .map_err(|e| named("--helper-pod-file", &options.helper_pod_file, e))?;
    }
    Ok(())
}

/// The first line: where the run talks to and what it serves. A missing namespace stops it
/// here, instead of retrying forever; no class naming the provisioner, or no ConfigMap, is said
/// at once rather than on the first claim.
async fn announce(
    client: &kube::Client,
    options: &RunOptions,
    config_map: bool,
) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // (The provisioner's ClusterRole, as upstream's, may not read namespaces: then the Lease's
    // creation is what finds a missing one.)
    match namespaces.get_opt(&options.namespace).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(Error::NoNamespace(options.namespace.clone())),
        Err(kube::Error::Api(e)) if e.code == 403 => {}
        Err(source) => {
            return Err(Error::Start {
                what: format!("cannot read namespace {}", options.namespace),
                source,
            });
        }
    }
    let version = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .unwrap_or_else(|_| "unknown version".into());
    let classes: Vec<String> = Api::<StorageClass>::all(client.clone())
        .list(&Default::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|c| options.serves(&c.provisioner))
                .map(|c| c.name_any())
                .collect()
        })
        .unwrap_or_default();
    let origin = if options.origin.is_empty() {
        String::new()
    } else {
        format!("{} ", options.origin)
    };
    let served = if classes.is_empty() {
        "no StorageClass yet".to_owned()
    } else {
        format!("StorageClass {}", classes.join(", "))
    };
    let executor = match options.executor {
        Some(kind) => kind.as_str(),
        None => "as config.json says",
    };
    tracing::info!(
        "lpp run: {origin}(Kubernetes {version}), namespace {}, provisioner {} for {served}, executor {executor}",
        options.namespace,
        std::iter::once(&options.provisioner_name)
            .chain(&options.extra_provisioner_names)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if classes.is_empty() {
        tracing::warn!(
            "no StorageClass names provisioner {}: claims wait until one does (`lpp install` creates local-path)",
            options.provisioner_name
        );
    }
    if config_map {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &options.namespace);
        if let Ok(None) = maps.get_opt(&options.config_map).await {
            tracing::warn!(
                "ConfigMap {}/{} does not exist: claims fail until it does (`lpp install` creates \
                 it; or pass --config and --helper-pod-file)",
                options.namespace,
                options.config_map
            );
        }
    }
    Ok(())
}

/// Hands every refused claim back to be looked at again: something it may depend on changed.
fn retry_refused(context: &Arc<Context>, why: &str) {
    let refused = context.queue.refused();
    if refused.is_empty() {
        return;
    }
    tracing::debug!("{why}: looking again at {} refused claims", refused.len());
    for (key, work) in refused {
        start(context, key, work);
    }
}

/// Watches the ConfigMap so that an edit is judged when it is made: an invalid one is reported
/// at once, and a valid one hands the claims it may fix back. (Operations still read it afresh:
/// an edit made just before a claim applies to that claim, which the order of two watches cannot
/// promise.)
async fn follow_config(context: &Arc<Context>) {
    let options = &context.options;
    if context.config_file.is_some() && context.helper_pod_file.is_some() {
        return std::future::pending().await;
    }
    let maps: Api<ConfigMap> = Api::namespaced(context.client.clone(), &options.namespace);
    let only = watcher::Config::default().fields(&format!("metadata.name={}", options.config_map));
    let mut events = std::pin::pin!(watcher::watcher(maps, only).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::InitApply(map)) => {
                if let Ok(contents) = operation::judge(context, Some(&map), false).await {
                    agents::keep_mounting(context, &contents).await;
                }
            }
            Ok(Event::Apply(map)) => {
                if let Ok(contents) = operation::judge(context, Some(&map), true).await {
                    agents::keep_mounting(context, &contents).await;
                    retry_refused(context, "the ConfigMap changed");
                }
            }
            Ok(Event::Delete(_)) => tracing::warn!(
                "ConfigMap {}/{} was deleted: new claims fail until it is back (`lpp install` \
                 makes it)",
                options.namespace,
                options.config_map
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!("ConfigMap watch error (retrying): {e}"),
        }
    }
}

/// Keeps the StorageClass store; a changed or new class hands refused claims back.
async fn follow_classes(context: &Arc<Context>, writer: reflector::store::Writer<StorageClass>) {
    let classes = watcher::watcher(
        Api::<StorageClass>::all(context.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer);
    let mut classes = std::pin::pin!(classes);
    while let Some(event) = classes.next().await {
        match event {
            Ok(Event::Apply(_)) => retry_refused(context, "a StorageClass changed"),
            Ok(_) => {}
            Err(e) => tracing::debug!("StorageClass watch error (retrying): {e}"),
        }
    }
}

/// Keeps the Node store; a node that appears (or comes back) hands refused claims back.
async fn follow_nodes(context: &Arc<Context>, writer: reflector::store::Writer<Node>) {
    let nodes = watcher::watcher(
        Api::<Node>::all(context.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer);
    let mut nodes = std::pin::pin!(nodes);
    let mut known = std::collections::HashSet::new();
    while let Some(event) = nodes.next().await {
        match event {
            Ok(Event::InitApply(node)) => {
                known.insert(node.name_any());
            }
            Ok(Event::Apply(node)) => {
                // Node status changes every few seconds on a real cluster: only a new node counts.
                if known.insert(node.name_any()) {
                    retry_refused(context, "a node appeared");
                }
            }
            Ok(Event::Delete(node)) => {
                known.remove(&node.name_any());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("Node watch error (retrying): {e}"),
        }
    }
}

async fn renew(lease: Option<&lease::Lease>) -> Result<(), Error> {
    match lease {
        Some(lease) => lease.keep().await,
        None => std::future::pending().await,
    }
}

/// Starts (or queues behind the one under way) the operation for one object.
fn start(context: &Arc<Context>, key: String, work: Work) {
    let Some((work, newer)) = context.queue.claim(&key, work) else {
        return;
    };
    let context = Arc::clone(context);
    let operations = context.operations.clone();
    operations.spawn(async move {
        let in_flight = &context.metrics.in_flight;
        in_flight.inc();
        let mut item = Some(work);
        while let Some(work) = item {
            if context.stopping.is_cancelled() {
                break;
            }
            operation::carry_out(&context, work, &newer).await;
            item = context.queue.next(&key);
        }
        in_flight.dec();
    });
}

async fn watch(
    context: Arc<Context>,
    volumes_writer: reflector::store::Writer<PersistentVolume>,
) -> Result<(), Error> {
    let claims = watcher::watcher(
        Api::<PersistentVolumeClaim>::all(context.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| e.map(|e| Change::Claim(Box::new(e))));
    let volumes = watcher::watcher(
        Api::<PersistentVolume>::all(context.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(volumes_writer)
    .map(|e| e.map(|e| Change::Volume(Box::new(e))));
    let mut events = std::pin::pin!(futures::stream::select(claims, volumes));
    let mut failing = false;
    while let Some(event) = events.next().await {
        let change = match event {
            Ok(change) => {
                if failing {
                    tracing::info!("the watches of claims and volumes are back");
                    failing = false;
                }
                change
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("the watch of claims or volumes failed (retrying): {e}");
                    failing = true;
                }
                continue;
            }
        };
        match change {
            Change::Claim(event) => match *event {
                Event::Delete(claim) => context.queue.forget(&Work::claim_key(&claim)),
                Event::Apply(c) | Event::InitApply(c) => {
                    if let Some(work) = Work::from_claim(c, context.resizing) {
                        start(&context, work.key(), work);
                    }
                }
                _ => {}
            },
            Change::Volume(event) => match *event {
                Event::Delete(_) => retry_refused(&context, "a volume was deleted"),
                Event::Apply(v) | Event::InitApply(v) => {
                    if let Some(work) = Work::from_volume(v) {
                        start(&context, work.key(), work);
                    }
                }
                _ => {}
            },
        }
    }
    Err(Error::Watch {
        what: "claims and volumes",
        why: "the stream ended".into(),
    })
}

enum Change {
    Claim(Box<Event<PersistentVolumeClaim>>),
    Volume(Box<Event<PersistentVolume>>),
}

/// A finished action, logged as one line: what, which object, where, how long.
pub(crate) struct Done<'a> {
    /// `provisioned` or `reclaimed`.
    pub verb: &'static str,
    /// `namespace/claim` or the PV name.
    pub object: &'a str,
    /// The node, or `shared` for a shared filesystem.
    pub node: &'a str,
    pub path: &'a str,
    pub took: std::time::Duration,
}

impl std::fmt::Display for Done<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Done {
            verb,
            object,
            node,
            path,
            took,
        } = self;
        let seconds = took.as_secs_f64();
        match *verb {
            "reclaimed" => write!(f, "{verb} {object}: removed {node}:{path} ({seconds:.1}s)"),
            _ => write!(f, "{verb} {object} → {node}:{path} ({seconds:.1}s)"),
        }
    }
}

/// One object to look at.
pub(crate) enum Work {
    Claim(Box<PersistentVolumeClaim>),
    Volume(Box<PersistentVolume>),
    /// A bound claim that asks for more than it has. Keyed as its claim, so a claim never has
    /// a provision and a resize under way at once.
    Resize(Box<PersistentVolumeClaim>),
}

impl Work {
    fn claim_key(claim: &PersistentVolumeClaim) -> String {
        format!("claim/{}", claim.metadata.uid.as_deref().unwrap_or(""))
    }

    fn key(&self) -> String {
        match self {
            Work::Claim(c) | Work::Resize(c) => Work::claim_key(c),
            Work::Volume(v) => format!("volume/{}", v.metadata.name.as_deref().unwrap_or("")),
        }
    }

    /// A claim that may need a volume (not bound and not being deleted), or, with
    /// `resizing`, a bound one that asks to grow.
    fn from_claim(c: PersistentVolumeClaim, resizing: bool) -> Option<Work> {
        let unbound = c.spec.as_ref().is_none_or(|s| s.volume_name.is_none())
            && c.metadata.deletion_timestamp.is_none();
        if unbound {
            Some(Work::Claim(Box::new(c)))
        } else if resizing && crate::provision::resize::wants_resize(&c) {
            Some(Work::Resize(Box::new(c)))
        } else {
            None
        }
    }

    /// A volume that may need reclaiming: Released.
    fn from_volume(v: PersistentVolume) -> Option<Work> {
        let released = v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        released.then(|| Work::Volume(Box::new(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(name: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_volume_this_run_made_exists_until_the_watch_has_it_and_then_as_the_watch_says() {
        let (classes, _) = reflector::store();
        let (nodes, _) = reflector::store();
        let (volumes, mut writer) = reflector::store();
        let stores = Stores::new(classes, nodes, volumes);
        assert!(!stores.volume_exists("pvc-a"));
        stores.volume_made("pvc-a");
        assert!(stores.volume_exists("pvc-a"), "made, not seen yet");
        assert!(!stores.volume_exists("pvc-b"));
        writer.apply_watcher_event(&watcher::Event::Apply(volume("pvc-a")));
        assert!(stores.volume_exists("pvc-a"), "seen");
        // Once seen, the watch alone decides: deleted is gone.
        writer.apply_watcher_event(&watcher::Event::Delete(volume("pvc-a")));
        assert!(!stores.volume_exists("pvc-a"), "deleted after it was seen");
    }
}
