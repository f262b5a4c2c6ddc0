//! The helper pod executor: one short-lived pod per job, observed on one watch shared by every
//! job (N jobs cost one watch, not N). A job subscribes to its pod's name before creating it, so
//! no change is missed, and is woken by the watch; it holds nothing else while it waits.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use super::JobError;
use crate::provision::helper_pod::{
    ACTION_LABEL, HELPER_SELECTOR, HelperOutcome, VOLUME_LABEL, helper_outcome,
};

/// What the watch last said about a helper pod.
#[derive(Debug, Clone)]
enum Seen {
    /// Nothing yet.
    Unknown,
    Present(Box<Pod>),
    Deleted,
}

/// The subscriptions, by pod name.
#[derive(Debug, Default)]
struct Subscriptions {
    waiters: Mutex<HashMap<String, watch::Sender<Seen>>>,
    /// Every helper pod the watch has seen and not seen deleted.
    seen: Mutex<HashSet<String>>,
}

impl Subscriptions {
    fn subscribe(&self, name: &str) -> watch::Receiver<Seen> {
        let Ok(mut waiters) = self.waiters.lock() else {
            return watch::channel(Seen::Unknown).1;
        };
        waiters
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(Seen::Unknown).0)
            .subscribe()
    }

    fn unsubscribe(&self, name: &str) {
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.remove(name);
        }
    }

    /// Tells the subscribers of pod `name` what was seen; false when nobody follows it.
    fn deliver(&self, name: &str, seen: Seen) -> bool {
        let Ok(waiters) = self.waiters.lock() else {
            return false;
        };
        match waiters.get(name) {
            Some(sender) => {
                sender.send_replace(seen);
                true
            }
            None => false,
        }
    }

    /// Followed pods the watch has seen (and not seen deleted).
    fn present(&self) -> Vec<String> {
        let Ok(waiters) = self.waiters.lock() else {
            return Vec::new();
        };
        waiters
            .iter()
            .filter(|(_, s)| matches!(*s.borrow(), Seen::Present(_)))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Runs helper pods in one namespace. Dropping it stops its watch.
pub struct Runner {
    pods: Api<Pod>,
    subscriptions: Arc<Subscriptions>,
    following: Arc<AtomicBool>,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl Runner {
    /// Starts the shared watch on every lpp helper pod of `namespace`.
    pub fn start(client: kube::Client, namespace: &str, delete_leftovers: bool) -> Runner {
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let subscriptions = Arc::new(Subscriptions::default());
        let following = Arc::new(AtomicBool::new(true));
        let watch = tokio::spawn(follow(
            pods.clone(),
            Arc::clone(&subscriptions),
            Arc::clone(&following),
            delete_leftovers,
        ));
        Runner {
            pods,
            subscriptions,
            following,
            watch,
        }
    }

    /// Whether the watch is still following.
    pub fn healthy(&self) -> bool {
        self.following.load(Ordering::Relaxed)
    }

    /// Creates `pod` and waits until it succeeds, fails or is stuck, at most `timeout`. With
    /// `output`, returns its log and deletes it; otherwise a pod that succeeded is left for
    /// [`Runner::remove`] (a volume's helper stays until its PV exists, so a restart in between
    /// adopts it instead of running the script again). A pod that did not succeed is deleted, and
    /// gone, before this returns, so a retry starts clean.
    pub async fn run(&self, pod: Pod, timeout: Duration, output: bool) -> Result<String, JobError> {
        let name = pod.name_any();
        let mut seen = self.subscriptions.subscribe(&name);
        if let Err(e) = self.create(&pod).await {
            self.subscriptions.unsubscribe(&name);
            return Err(e);
        }
        let outcome = async {
            let finished = async {
                loop {
                    let now = seen.borrow_and_update().clone();
                    match now {
                        Seen::Present(p) => match helper_outcome(&p) {
                            HelperOutcome::Succeeded => return Ok(()),
                            HelperOutcome::Failed(why) => return Err(JobError::Failed(why)),
                            HelperOutcome::Stuck(why) => return Err(JobError::Stuck(why)),
                            HelperOutcome::Running => {}
                        },
                        Seen::Deleted => return Err(JobError::Gone(name.clone())),
                        Seen::Unknown => {}
                    }
                    if seen.changed().await.is_err() {
                        return Err(JobError::Stopped(name.clone()));
                    }
                }
            };
            tokio::time::timeout(timeout, finished)
                .await
                .unwrap_or_else(|_| {
                    Err(JobError::TimedOut {
                        pod: name.clone(),
                        after: timeout,
                    })
                })
        }
        .await;
        let result = match outcome {
            Ok(()) if output => {
                let logs = self.pods.logs(&name, &LogParams::default()).await;
                self.delete(&name).await;
                logs.map_err(|source| JobError::Api {
                    what: format!("cannot read the output of helper pod {name}"),
                    source,
                })
            }
            Ok(()) => Ok(String::new()),
            Err(e) => {
                self.delete(&name).await;
                // The next attempt creates the pod anew: wait (bounded) until this one is gone.
                let gone = async {
                    while !matches!(*seen.borrow_and_update(), Seen::Deleted) {
                        if seen.changed().await.is_err() {
                            return;
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(30), gone).await;
                Err(e)
            }
        };
        self.subscriptions.unsubscribe(&name);
        result
    }

    /// Creates the pod; one left by an earlier run is adopted when it does the same job (same
    /// action, volume and arguments), else deleted and made anew.
    async fn create(&self, pod: &Pod) -> Result<(), JobError> {
        let name = pod.name_any();
        for _ in 0..2 {
            match self.pods.create(&PostParams::default(), pod).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    return Err(JobError::Refused {
                        pod: name,
                        why: refusal(&e),
                    });
                }
            }
            let existing = self
                .pods
                .get_opt(&name)
                .await
                .map_err(|source| JobError::Api {
                    what: format!("cannot read helper pod {name}"),
                    source,
                })?;
            let Some(existing) = existing else { continue };
            if existing.metadata.deletion_timestamp.is_none() && same_job(&existing, pod) {
                // Adopted: it may have finished already, with no change left to see.
                self.subscriptions
                    .deliver(&name, Seen::Present(Box::new(existing)));
                return Ok(());
            }
            tracing::info!("replacing helper pod {name}: it was made for another job");
            self.delete(&name).await;
            let mut seen = self.subscriptions.subscribe(&name);
            let gone = async {
                while !matches!(*seen.borrow_and_update(), Seen::Deleted) {
                    if seen.changed().await.is_err() {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), gone).await;
            self.subscriptions.deliver(&name, Seen::Unknown);
        }
        Err(JobError::Refused {
            pod: name,
            why: "a helper pod of that name keeps coming back".into(),
        })
    }

    /// Whether the watch has seen helper pod `name` (and not its deletion).
    pub fn present(&self, name: &str) -> bool {
        self.subscriptions
            .seen
            .lock()
            .is_ok_and(|seen| seen.contains(name))
    }

    /// Deletes a finished volume helper pod (after its PV was made or deleted).
    pub async fn remove(&self, name: &str) {
        self.delete(name).await;
    }

    /// Deletes a helper pod, retrying server errors a few times: a pod whose delete failed once
    /// must not stay until the next restart.
    async fn delete(&self, name: &str) {
        delete_with_retries(&self.pods, name).await;
    }
}

/// Deletes pod `name`, retrying failures (not 404) with a short backoff, at most five times.
async fn delete_with_retries(pods: &Api<Pod>, name: &str) {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=5 {
        match pods.delete(name, &DeleteParams::background()).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) if attempt == 5 => {
                tracing::warn!("cannot delete helper pod {name}: {e}; the next run deletes it");
            }
            Err(e) => {
                tracing::debug!("cannot delete helper pod {name} yet ({e}); retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
}

/// Whether an existing helper pod does the job `wanted` describes: same action and volume
/// labels, same command, arguments and environment (so the same directory).
fn same_job(existing: &Pod, wanted: &Pod) -> bool {
    let label = |p: &Pod, key: &str| p.labels().get(key).cloned();
    let container = |p: &Pod| {
        p.spec.as_ref().and_then(|s| s.containers.first()).map(|c| {
            (
                c.command.clone(),
                c.args.clone(),
                c.env
                    .iter()
                    .flatten()
                    .map(|e| (e.name.clone(), e.value.clone()))
                    .collect::<Vec<_>>(),
            )
        })
    };
    label(existing, ACTION_LABEL) == label(wanted, ACTION_LABEL)
        && label(existing, VOLUME_LABEL) == label(wanted, VOLUME_LABEL)
        && container(existing) == container(wanted)
}

/// Why the API server refused a request, in its own words (not the whole Status), with what to
/// do when Pod Security is the cause.
fn refusal(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.message.contains("violates PodSecurity") => format!(
            "{}; helper pods mount host paths, so the provisioner namespace needs \
             pod-security.kubernetes.io/enforce=privileged (lpp install sets it)",
            status.message
        ),
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// The shared watch. A finished volume helper pod that no job follows was left by an earlier run
/// that stopped before cleaning up: with `delete_leftovers` it is deleted (its operation, if
/// any remains, adopts a fresh one; the scripts are idempotent).
///
/// After a re-list (the watch was cut and could not resume), a followed pod that the new list
/// lacks was deleted meanwhile with no event to say so: it is read once, and reported gone when
/// it is.
async fn follow(
    pods: Api<Pod>,
    subscriptions: Arc<Subscriptions>,
    following: Arc<AtomicBool>,
    delete_leftovers: bool,
) {
    let config = watcher::Config::default().labels(HELPER_SELECTOR);
    let mut events = std::pin::pin!(watcher::watcher(pods.clone(), config).default_backoff());
    let mut listed: Option<HashSet<String>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) => {
                if let Some(listed) = listed.as_mut() {
                    listed.insert(pod.name_any());
                }
                seen_pod(&pods, &subscriptions, pod, delete_leftovers).await;
            }
            Ok(Event::InitDone) => {
                let listed = listed.take().unwrap_or_default();
                if let Ok(mut seen) = subscriptions.seen.lock() {
                    seen.retain(|name| listed.contains(name));
                }
                for name in subscriptions.present() {
                    if !listed.contains(&name) && matches!(pods.get_opt(&name).await, Ok(None)) {
                        subscriptions.deliver(&name, Seen::Deleted);
                    }
                }
            }
            Ok(Event::Apply(pod)) => seen_pod(&pods, &subscriptions, pod, delete_leftovers).await,
            Ok(Event::Delete(pod)) => {
                if let Ok(mut seen) = subscriptions.seen.lock() {
                    seen.remove(&pod.name_any());
                }
                subscriptions.deliver(&pod.name_any(), Seen::Deleted);
            }
            Err(e) => tracing::debug!("the helper pod watch failed (retrying): {e}"),
        }
    }
    following.store(false, Ordering::Relaxed);
}

async fn seen_pod(
    pods: &Api<Pod>,
    subscriptions: &Subscriptions,
    pod: Pod,
    delete_leftovers: bool,
) {
    let name = pod.name_any();
    if let Ok(mut seen) = subscriptions.seen.lock() {
        seen.insert(name.clone());
    }
    let finished = !matches!(helper_outcome(&pod), HelperOutcome::Running);
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let volume_helper = pod.labels().get(ACTION_LABEL).is_some_and(|action| {
        crate::provision::Action::ALL
            .iter()
            .any(|a| a.as_str() == action)
    });
    if !subscriptions.deliver(&name, Seen::Present(Box::new(pod)))
        && delete_leftovers
        && volume_helper
        && finished
        && !deleting
    {
        tracing::info!("deleting helper pod {name}, left by an earlier run");
        delete_with_retries(pods, &name).await;
    }
}
