//! One watch on every volume helper pod, shared by all operations: an operation waiting on its
//! helper subscribes to that pod's name and is woken by the watch, so N helpers cost one watch,
//! not N.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use crate::provision::helper_pod::{HelperOutcome, VOLUME_HELPER_SELECTOR, helper_outcome};

/// What the watch last said about a helper pod.
#[derive(Debug, Clone)]
pub enum Seen {
    /// Nothing yet.
    Unknown,
    Present(Box<Pod>),
    Deleted,
}

/// The subscriptions, by pod name.
#[derive(Debug, Default)]
pub struct HelperWatch {
    waiters: Mutex<HashMap<String, watch::Sender<Seen>>>,
}

impl HelperWatch {
    /// Starts following pod `name`; subscribe before creating the pod so no change is missed.
    pub fn subscribe(&self, name: &str) -> watch::Receiver<Seen> {
        let Ok(mut waiters) = self.waiters.lock() else {
            return watch::channel(Seen::Unknown).1;
        };
        waiters
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(Seen::Unknown).0)
            .subscribe()
    }

    /// Stops following pod `name`.
    pub fn unsubscribe(&self, name: &str) {
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.remove(name);
        }
    }

    /// Tells the subscribers of pod `name` what was seen; false when nobody follows it.
    pub fn deliver(&self, name: &str, seen: Seen) -> bool {
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

    /// Runs the watch until it ends (it retries errors with backoff).
    ///
    /// A finished helper pod that no operation follows is left from an earlier run that stopped
    /// (or was killed) before cleaning up: it is deleted. Its operation, if any remains, finds
    /// its PV or runs a fresh helper (the scripts are idempotent).
    pub async fn follow(&self, client: kube::Client, namespace: &str) {
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().labels(VOLUME_HELPER_SELECTOR);
        let mut events = std::pin::pin!(watcher::watcher(pods.clone(), config).default_backoff());
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                    let name = pod.name_any();
                    let finished = !matches!(helper_outcome(&pod), HelperOutcome::Running);
                    let deleting = pod.metadata.deletion_timestamp.is_some();
                    if !self.deliver(&name, Seen::Present(Box::new(pod))) && finished && !deleting {
                        tracing::info!("deleting helper pod {name}, left by an earlier run");
                        if let Err(e) = pods.delete(&name, &DeleteParams::background()).await {
                            tracing::warn!("cannot delete leftover helper pod {name}: {e}");
                        }
                    }
                }
                Ok(Event::Delete(pod)) => {
                    self.deliver(&pod.name_any(), Seen::Deleted);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("the helper pod watch failed (retrying): {e}"),
            }
        }
    }
}
