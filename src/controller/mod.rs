//! `lpp run`: the provisioning loop.
//!
//! Claims and volumes arrive on watches; each claim that needs a volume and each Released volume of
//! ours becomes one operation, at most one per object at a time. An operation asks the pure
//! [`crate::provision`] decisions what to do, runs the helper pod, observes its outcome on a watch
//! (a waiting operation holds no worker permit), then creates or deletes the PV. Names are
//! deterministic (`pvc-<uid>`, `helper-pod-create-<pv>`), so an operation that finds its helper
//! pod or PV already there adopts it: a restart resumes where the last run stopped.
//!
//! The ConfigMap is read at the start of every operation, so a valid edit applies to the next
//! volume and an invalid one fails that operation with an event naming the problem.
//!
//! Leader election: the Lease `<provisioner name with / as ->` in the provisioner namespace is
//! taken before any work and renewed every few seconds; a run that loses it stops; Ctrl-C
//! releases it.

mod access;
mod events;
mod helpers;
mod lease;
mod metrics;
mod operation;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Semaphore;

/// Log line format of `lpp run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub namespace: String,
    pub provisioner_name: String,
    pub config_map: String,
    pub config_file: Option<PathBuf>,
    pub helper_pod_file: Option<PathBuf>,
    pub service_account_name: String,
    pub helper_image: Option<String>,
    pub workers: u32,
    /// Retries before giving up (`None`: retry forever).
    pub provisioning_retry_count: Option<u32>,
    pub deletion_retry_count: Option<u32>,
    pub allow_unsafe_helper_pod_template: bool,
    pub metrics_addr: Option<String>,
    pub log_format: LogFormat,
    /// The Lease to hold, or `None` with `--no-leader-election`.
    pub lease_name: Option<String>,
}

/// The Lease name upstream-compatible tooling expects for a provisioner name:
/// `rancher.io/local-path` → `rancher.io-local-path`.
pub fn lease_name_for(provisioner_name: &str) -> String {
    provisioner_name.replace('/', "-")
}

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Options(String),
    #[error("lost the Lease {lease}: {why}; another provisioner took over")]
    LeaseLost { lease: String, why: String },
    #[error("cannot take the Lease {lease}: {source}")]
    Lease {
        lease: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("the watch of {what} ended: {why}")]
    Watch { what: &'static str, why: String },
}

/// The shared state of one run.
pub(crate) struct Context {
    pub client: kube::Client,
    pub options: RunOptions,
    /// Objects with an operation under way (claim uids, volume names), each with the newest
    /// state that arrived meanwhile: it is looked at again when the operation ends, so no change
    /// is lost.
    busy: Mutex<HashMap<String, Option<Work>>>,
    /// Where action lines also go, when the caller wants them.
    actions: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The shared watch on helper pods.
    pub helper_watch: helpers::HelperWatch,
    /// What `/metrics` reports.
    pub metrics: Arc<metrics::Metrics>,
    /// Bounds the operations that are talking to the API at once.
    pub workers: Semaphore,
    /// The last configuration that loaded, used while the ConfigMap holds an invalid one; and
    /// the last problem reported, so an invalid ConfigMap is reported once, not per operation.
    pub last_good: Mutex<(Option<crate::config::ConfigMapContents>, Option<String>)>,
    /// Cancelled at shutdown: no new attempt starts, a retry waiting for its delay stops.
    pub stopping: tokio_util::sync::CancellationToken,
    /// The operations under way, waited for at shutdown.
    operations: tokio_util::task::TaskTracker,
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

    /// Marks `key` busy and hands back `work` to start; when an operation for it is already under
    /// way, keeps `work` for afterwards and hands back nothing.
    fn claim(&self, key: &str, work: Work) -> Option<Work> {
        let Ok(mut busy) = self.busy.lock() else {
            return None;
        };
        match busy.get_mut(key) {
            Some(pending) => {
                *pending = Some(work);
                None
            }
            None => {
                busy.insert(key.to_owned(), None);
                Some(work)
            }
        }
    }

    /// A `--workers` permit, counted in the queue depth while waited for.
    pub async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.metrics.queued.inc();
        let permit = self.workers.acquire().await.ok();
        self.metrics.queued.dec();
        permit
    }

    /// The work that arrived while `key` was busy, or `None` (and `key` is free again).
    fn next(&self, key: &str) -> Option<Work> {
        let mut busy = self.busy.lock().ok()?;
        let pending = busy.get_mut(key).and_then(Option::take);
        if pending.is_none() {
            busy.remove(key);
        }
        pending
    }
}

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
    let context = Arc::new(Context {
        config_file: read(&options.config_file, "--config")?,
        helper_pod_file: read(&options.helper_pod_file, "--helper-pod-file")?,
        workers: Semaphore::new(options.workers.max(1) as usize),
        busy: Mutex::new(HashMap::new()),
        last_good: Mutex::new((None, None)),
        metrics: Arc::new(metrics::Metrics::default()),
        helper_watch: helpers::HelperWatch::default(),
        stopping: tokio_util::sync::CancellationToken::new(),
        operations: tokio_util::task::TaskTracker::new(),
        actions,
        client,
        options,
    });
    check_files(&context)?;
    let config_map = context.config_file.is_none() || context.helper_pod_file.is_none();
    access::check(&context.client, &context.options, config_map).await?;
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
    warn_without_config_map(&context).await;
    context
        .metrics
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let outcome = {
        // The helper pod watch and the Lease renewal also serve the operations that finish
        // after shutdown was asked for.
        let background = async {
            tokio::select! {
                () = context.helper_watch.follow(context.client.clone(), &context.options.namespace) => Err(Error::Watch {
                    what: "helper pods",
                    why: "the stream ended".into(),
                }),
                lost = renew(lease.as_ref()) => lost,
                () = follow_config(&context) => Err(Error::Watch {
                    what: "the ConfigMap",
                    why: "the stream ended".into(),
                }),
            }
        };
        tokio::pin!(background);
        let outcome = tokio::select! {
            outcome = watch(Arc::clone(&context)) => outcome,
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
const GRACE: std::time::Duration = std::time::Duration::from_secs(20);

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
fn check_files(context: &Context) -> Result<(), Error> {
    let options = &context.options;
    let named = |flag: &str, path: &Option<PathBuf>, why: String| {
        let path = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Error::Options(format!("{flag} {path}: {why}"))
    };
    if let Some(text) = &context.config_file {
        crate::config::Config::parse(text).map_err(|e| {
            named(
                "--config",
                &options.config_file,
                format!("{e}; fix the file"),
            )
        })?;
    }
    if let Some(text) = &context.helper_pod_file {
        let template = crate::config::parse_helper_pod(text).map_err(|e| {
            named(
                "--helper-pod-file",
                &options.helper_pod_file,
                format!("{e}; fix the file"),
            )
        })?;
        crate::provision::HelperPods::new(
            template,
            options.allow_unsafe_helper_pod_template,
            &options.namespace,
            &options.service_account_name,
            options.helper_image.as_deref(),
            &options.config_map,
        )
        .map_err(|e| named("--helper-pod-file", &options.helper_pod_file, e.to_string()))?;
    }
    Ok(())
}

/// Says at once when the ConfigMap the operations will read is not there, rather than on the
/// first claim.
async fn warn_without_config_map(context: &Context) {
    let options = &context.options;
    if context.config_file.is_some() && context.helper_pod_file.is_some() {
        return;
    }
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(context.client.clone(), &options.namespace);
    if let Ok(None) = maps.get_opt(&options.config_map).await {
        tracing::warn!(
            "ConfigMap {}/{} does not exist: claims fail until it does (`lpp install` creates \
             it; or pass --config and --helper-pod-file)",
            options.namespace,
            options.config_map
        );
    }
}

/// Watches the ConfigMap so that an edit is judged when it is made: an invalid one is reported
/// at once, not when the next claim arrives. (Operations still read it afresh: an edit made just
/// before a claim applies to that claim, which the order of two watches cannot promise.)
async fn follow_config(context: &Context) {
    let options = &context.options;
    if context.config_file.is_some() && context.helper_pod_file.is_some() {
        return std::future::pending().await;
    }
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(context.client.clone(), &options.namespace);
    let only = watcher::Config::default().fields(&format!("metadata.name={}", options.config_map));
    let mut events = std::pin::pin!(watcher::watcher(maps, only).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::InitApply(map)) => {
                let _ = operation::judge(context, Some(&map), false).await;
            }
            Ok(Event::Apply(map)) => {
                let _ = operation::judge(context, Some(&map), true).await;
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

async fn renew(lease: Option<&lease::Lease>) -> Result<(), Error> {
    match lease {
        Some(lease) => lease.keep().await,
        None => std::future::pending().await,
    }
}

async fn watch(context: Arc<Context>) -> Result<(), Error> {
    let claims = watcher::watcher(
        Api::<PersistentVolumeClaim>::all(context.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| e.map(Work::from_claims));
    let volumes = watcher::watcher(
        Api::<PersistentVolume>::all(context.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| e.map(Work::from_volumes));
    let mut events = std::pin::pin!(futures::stream::select(claims, volumes));
    while let Some(event) = events.next().await {
        let work = match event {
            Ok(work) => work,
            Err(e) => {
                tracing::warn!("watch error (retrying): {e}");
                continue;
            }
        };
        for item in work {
            let key = item.key();
            let Some(item) = context.claim(&key, item) else {
                continue;
            };
            let context = Arc::clone(&context);
            let operations = context.operations.clone();
            operations.spawn(async move {
                let in_flight = &context.metrics.in_flight;
                in_flight.inc();
                let mut item = Some(item);
                while let Some(work) = item {
                    if context.stopping.is_cancelled() {
                        break;
                    }
                    operation::carry_out(&context, work).await;
                    item = context.next(&key);
                }
                in_flight.dec();
            });
        }
    }
    Err(Error::Watch {
        what: "claims and volumes",
        why: "the stream ended".into(),
    })
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
}

impl Work {
    fn key(&self) -> String {
        match self {
            Work::Claim(c) => format!("claim/{}", c.metadata.uid.as_deref().unwrap_or("")),
            Work::Volume(v) => format!("volume/{}", v.metadata.name.as_deref().unwrap_or("")),
        }
    }

    fn from_claims(event: Event<PersistentVolumeClaim>) -> Vec<Work> {
        match event {
            Event::Apply(c) | Event::InitApply(c) => {
                let unbound = c.spec.as_ref().is_none_or(|s| s.volume_name.is_none())
                    && c.metadata.deletion_timestamp.is_none();
                if unbound {
                    vec![Work::Claim(Box::new(c))]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }

    fn from_volumes(event: Event<PersistentVolume>) -> Vec<Work> {
        match event {
            Event::Apply(v) | Event::InitApply(v) => {
                let released =
                    v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
                if released {
                    vec![Work::Volume(Box::new(v))]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }
}
