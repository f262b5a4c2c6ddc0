//! What the node agents know of the cluster: one reflector per kind they read, fed by watches
//! through the API like any controller, and a change counter that wakes the loops.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{CSIDriver, CSIStorageCapacity, StorageClass};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The reflected objects and the change signal.
#[derive(Clone)]
pub struct Cache {
    /// Every node.
    pub nodes: Store<Node>,
    /// Every pod.
    pub pods: Store<Pod>,
    /// Every claim.
    pub claims: Store<PersistentVolumeClaim>,
    /// Every volume.
    pub volumes: Store<PersistentVolume>,
    /// Every class.
    pub classes: Store<StorageClass>,
    /// Every DaemonSet (read in place by the DaemonSet controller, not part of snapshots).
    pub daemon_sets: Store<DaemonSet>,
    /// Every ControllerRevision (the DaemonSet controller's history).
    pub revisions: Store<ControllerRevision>,
    /// Every CSIDriver (read in place by the scheduler for its capacity check).
    pub drivers: Store<CSIDriver>,
    /// Every CSIStorageCapacity.
    pub capacities: Store<CSIStorageCapacity>,
    changed: watch::Sender<u64>,
    ready: watch::Receiver<bool>,
}

impl Cache {
    /// Starts the watches; they stop when `stop` fires.
    pub fn start(client: &Client, stop: &CancellationToken) -> Cache {
        let changed = watch::channel(0u64).0;
        let (ready_tx, ready) = watch::channel(false);
        let nodes = reflect(Api::all(client.clone()), &changed, stop);
        let pods = reflect(Api::all(client.clone()), &changed, stop);
        let claims = reflect(Api::all(client.clone()), &changed, stop);
        let volumes = reflect(Api::all(client.clone()), &changed, stop);
        let classes = reflect(Api::all(client.clone()), &changed, stop);
        let daemon_sets = reflect(Api::all(client.clone()), &changed, stop);
        let revisions = reflect(Api::all(client.clone()), &changed, stop);
        let drivers = reflect(Api::all(client.clone()), &changed, stop);
        let capacities = reflect(Api::all(client.clone()), &changed, stop);
        // One waiter per store: kube-runtime's readiness wakes only one of several waiters.
        {
            let (n, p, c, v, k) = (
                nodes.clone(),
                pods.clone(),
                claims.clone(),
                volumes.clone(),
                classes.clone(),
            );
            let (d, r) = (daemon_sets.clone(), revisions.clone());
            let (dr, ca) = (drivers.clone(), capacities.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                let all = async {
                    let _ = n.wait_until_ready().await;
                    let _ = p.wait_until_ready().await;
                    let _ = c.wait_until_ready().await;
                    let _ = v.wait_until_ready().await;
                    let _ = k.wait_until_ready().await;
                    let _ = d.wait_until_ready().await;
                    let _ = r.wait_until_ready().await;
                    let _ = dr.wait_until_ready().await;
                    let _ = ca.wait_until_ready().await;
                };
                tokio::select! {
                    _ = all => { let _ = ready_tx.send(true); }
                    _ = stop.cancelled() => {}
                }
            });
        }
        Cache {
            nodes,
            pods,
            claims,
            volumes,
            classes,
            daemon_sets,
            revisions,
            drivers,
            capacities,
            changed,
            ready,
        }
    }

    /// A receiver that sees every later change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wakes the loops, e.g. after a local state change they should act on.
    pub fn poke(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until every store holds its first full list (false if `stop` fires first).
    pub async fn ready(&self, stop: &CancellationToken) -> bool {
        let mut rx = self.ready.clone();
        tokio::select! {
            r = rx.wait_for(|ready| *ready) => r.is_ok(),
            _ = stop.cancelled() => false,
        }
    }

    /// Snapshots of the kinds a loop needs, as plain values the pure decisions take (the
    /// others stay empty: copying every pod for a loop that reads only claims adds up).
    pub fn snapshot(&self, need: Need) -> Snapshot {
        Snapshot {
            nodes: if need.nodes {
                owned(&self.nodes)
            } else {
                Vec::new()
            },
            pods: if need.pods {
                owned(&self.pods)
            } else {
                Vec::new()
            },
            claims: if need.claims {
                owned(&self.claims)
            } else {
                Vec::new()
            },
            volumes: if need.volumes {
                owned(&self.volumes)
            } else {
                Vec::new()
            },
            classes: if need.classes {
                owned(&self.classes)
            } else {
                Vec::new()
            },
        }
    }
}

/// Which kinds a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// Nodes.
    pub nodes: bool,
    /// Pods.
    pub pods: bool,
    /// Claims.
    pub claims: bool,
    /// Volumes.
    pub volumes: bool,
    /// Classes.
    pub classes: bool,
}

impl Need {
    /// Every kind.
    pub const ALL: Need = Need {
        nodes: true,
        pods: true,
        claims: true,
        volumes: true,
        classes: true,
    };
}

/// The reflected objects at one moment, shared with the stores (taking one copies no object:
/// a pass over thousands of objects after every change would otherwise cost more than the
/// change).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Nodes.
    pub nodes: Vec<Arc<Node>>,
    /// Pods.
    pub pods: Vec<Arc<Pod>>,
    /// Claims.
    pub claims: Vec<Arc<PersistentVolumeClaim>>,
    /// Volumes.
    pub volumes: Vec<Arc<PersistentVolume>>,
    /// Classes.
    pub classes: Vec<Arc<StorageClass>>,
}

fn owned<K: Clone + Resource<DynamicType = ()> + 'static>(store: &Store<K>) -> Vec<Arc<K>> {
    store.state()
}

fn reflect<K>(api: Api<K>, changed: &watch::Sender<u64>, stop: &CancellationToken) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let changed = changed.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                item = stream.next() => match item {
                    Some(Ok(_)) => changed.send_modify(|n| *n = n.wrapping_add(1)),
                    Some(Err(e)) => tracing::debug!(error = %e, "sandbox node agents: watch error, retrying"),
                    None => return,
                },
            }
        }
    });
    reader
}

/// Runs `pass` whenever the cache changes, and at least every `tick`, until `stop`.
pub async fn run_loop<F, Fut>(
    cache: Cache,
    need: Need,
    stop: CancellationToken,
    tick: Duration,
    pass: F,
) where
    F: FnMut(Snapshot) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run_loop_when(cache, need, stop, tick, |_| true, pass).await;
}

/// [`run_loop`], skipping the pass (and its snapshot) while `wanted` says there is nothing to
/// do, e.g. no pod waits for a node.
pub async fn run_loop_when<W, F, Fut>(
    cache: Cache,
    need: Need,
    stop: CancellationToken,
    tick: Duration,
    wanted: W,
    mut pass: F,
) where
    W: Fn(&Cache) -> bool,
    F: FnMut(Snapshot) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if !cache.ready(&stop).await {
        return;
    }
    let mut rx = cache.subscribe();
    let mut took = Duration::ZERO;
    loop {
        rx.borrow_and_update();
        if wanted(&cache) {
            let started = std::time::Instant::now();
            pass(cache.snapshot(need)).await;
            took = started.elapsed();
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = rx.changed() => {
                // Let a burst of events land before the next pass: at least 2 ms, and as long
                // as the last pass took (up to 100 ms), so that a pass over many objects runs
                // less often under a stream of changes instead of taking a whole core.
                let settle = took.clamp(Duration::from_millis(2), Duration::from_millis(100));
                tokio::time::sleep(settle).await;
            }
            _ = tokio::time::sleep(tick) => {}
        }
    }
}
