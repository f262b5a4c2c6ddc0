//! `lpp run` under a hostile API server — 20 % of requests answered 500, 10 % 429, 5 % of watch
//! events cut the stream — and killed with `kill -9` while work is in flight: every claim still
//! gets exactly one PV and one directory, and once the claims are deleted nothing is left (no PV,
//! no directory, no helper pod). No run exits on its own. The 1,000-claim version with random
//! kills is `cargo run --example soak`.

use std::future::Future;

use futures::StreamExt;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::run::claim_on;
use crate::support::{LppChild, TestCluster, install_basics};

const CLAIMS: usize = 200;
const PHASE: Duration = Duration::from_secs(300);

/// `call` until it succeeds, riding out the injected faults; a create answered 409 or a delete
/// answered 404 already happened.
async fn retrying<T, F, Fut>(what: &str, call: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + PHASE;
    loop {
        match call().await {
            Ok(v) => return Some(v),
            Err(kube::Error::Api(e)) if e.code == 409 && what.starts_with("create") => {
                return None;
            }
            Err(kube::Error::Api(e)) if e.code == 404 && what.starts_with("delete") => {
                return None;
            }
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "{what}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn list<K>(api: &Api<K>) -> Vec<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = ListParams::default();
    retrying("list", || api.list(&params))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn bound(claims: &[PersistentVolumeClaim]) -> usize {
    claims
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        .count()
}

/// Polls `check` until it is true, failing with `what` after a phase's time.
async fn until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PHASE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn directories(cluster: &TestCluster) -> usize {
    ["node-1", "node-2"]
        .iter()
        .map(|n| {
            std::fs::read_dir(cluster.node_path(n, "/opt/local-path-provisioner"))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum()
}

/// Kills `run` (asserting it had not exited on its own) and starts the next one.
fn kill_and_restart(cluster: &TestCluster, mut run: LppChild) -> LppChild {
    assert!(
        run.is_running(),
        "the run exited on its own:\n{}",
        run.output().1
    );
    run.stop();
    cluster.spawn_lpp(["run"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_kill_9_still_give_one_volume_per_claim_and_leave_nothing() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let mut run = cluster.spawn_lpp(["run"]);
    run.wait_provisioning().await;
    cluster.set_faults(lpp::sandbox::Faults {
        error_rate: 0.2,
        throttle_rate: 0.1,
        watch_drop_rate: 0.05,
        latency: Duration::ZERO,
    });
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let (create, delete) = (PostParams::default(), DeleteParams::default());
    // Created (and later deleted) sixteen at a time, as a burst from users would come.
    futures::stream::iter(0..CLAIMS)
        .for_each_concurrent(16, |i| {
            let (claims, create) = (&claims, &create);
            async move {
                let node = if i % 2 == 0 { "node-1" } else { "node-2" };
                let claim = claim_on(&format!("s{i}"), "local-path", Some(node), "ReadWriteOnce");
                retrying("create claim", || claims.create(create, &claim)).await;
            }
        })
        .await;
    // Two kills, each with work in flight: some claims bound, others not yet.
    for share in [3, 6] {
        let target = CLAIMS * share / 10;
        until(&format!("{target} claims bound"), || async {
            bound(&list(&claims).await) >= target
        })
        .await;
        assert!(bound(&list(&claims).await) < CLAIMS, "killed too late");
        run = kill_and_restart(&cluster, run);
    }
    until("every claim bound", || async {
        bound(&list(&claims).await) == CLAIMS
    })
    .await;
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    assert_eq!(list(&volumes).await.len(), CLAIMS, "one PV per claim");
    assert_eq!(directories(&cluster), CLAIMS, "one directory per claim");

    futures::stream::iter(0..CLAIMS)
        .for_each_concurrent(16, |i| {
            let (claims, delete) = (&claims, &delete);
            async move {
                let name = format!("s{i}");
                retrying("delete claim", || claims.delete(&name, delete)).await;
            }
        })
        .await;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    until("every volume reclaimed", || async {
        list(&volumes).await.is_empty()
    })
    .await;
    until("every directory removed", || async {
        directories(&cluster) == 0
    })
    .await;
    until("no helper pod left", || async {
        list(&pods).await.is_empty()
    })
    .await;
    cluster.set_faults(lpp::sandbox::Faults::default());
    assert!(run.is_running(), "the run exited:\n{}", run.output().1);
    let log = run.output().1;
    assert!(
        !log.contains("Lease") || !log.contains("stopped before it expires"),
        "{log}"
    );
}
