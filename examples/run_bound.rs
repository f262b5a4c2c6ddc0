//! The headline figure of `lpp run`: N claims that already carry a selected node, created at
//! once, until all are Bound (each through a helper pod that makes its directory and a PV), next
//! to the same sandbox's raw rate of creating N PVs directly. Both in-process, in a debug or
//! release build as you run it.
//!
//! `lpp run` talks to the sandbox over HTTP here, through a layer that counts its requests, so
//! the API calls (and writes) each claim costs are printed too.
//!
//! `cargo run --example run_bound -- [N]` (default 1000).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::PostParams;
use lpp::controller::{LogFormat, RunOptions};
use lpp::sandbox::{Faults, Sandbox, SandboxOptions};
use serde_json::json;

async fn sandbox(dir: &std::path::Path) -> anyhow::Result<Sandbox> {
    Ok(Sandbox::start(SandboxOptions {
        dir: dir.to_path_buf(),
        nodes: 2,
        faults: Faults::default(),
        ..SandboxOptions::default()
    })
    .await?)
}

async fn create_all<K, F>(api: &Api<K>, n: usize, make: F) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    F: Fn(usize) -> serde_json::Value,
{
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let object: K = serde_json::from_value(make(i)).context("object")?;
            Ok::<_, anyhow::Error>(async move {
                api.create(&PostParams::default(), &object).await?;
                Ok::<_, anyhow::Error>(())
            })
        })
        .try_buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn raw_volumes(n: usize) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let sandbox = sandbox(dir.path()).await?;
    let volumes: Api<PersistentVolume> = Api::all(sandbox.client());
    let start = Instant::now();
    create_all(&volumes, n, |i| {
        json!({"metadata": {"name": format!("raw-{i}")},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "hostPath": {"path": format!("/opt/raw/{i}")}}})
    })
    .await?;
    let took = start.elapsed();
    sandbox.shutdown().await;
    Ok(took)
}

/// Requests `lpp run` made: all of them, and the writes among them.
#[derive(Debug, Default)]
struct Counted {
    all: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
}

/// A client for the sandbox served over HTTP at `addr`, counting every request into `counted`.
async fn counting_client(
    sandbox: &Sandbox,
    addr: std::net::SocketAddr,
    counted: std::sync::Arc<Counted>,
) -> anyhow::Result<kube::Client> {
    use std::sync::atomic::Ordering;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&sandbox.kubeconfig(addr))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let count =
        tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            counted.all.fetch_add(1, Ordering::Relaxed);
            if request.method() != http::Method::GET {
                counted.writes.fetch_add(1, Ordering::Relaxed);
            }
            request
        });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&count)
        .build())
}

async fn provisioned(n: usize, counted: std::sync::Arc<Counted>) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let sandbox = sandbox(dir.path()).await?;
    let client = sandbox.client();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "local-path-storage"}}))?,
        )
        .await?;
    let map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "local-path-config"},
        "data": lpp::config::default_config_map_data(),
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), "local-path-storage")
        .create(&PostParams::default(), &map)
        .await?;
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"}))?;
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await?;
    let options = RunOptions {
        namespace: "local-path-storage".into(),
        provisioner_name: "rancher.io/local-path".into(),
        config_map: "local-path-config".into(),
        config_file: None,
        helper_pod_file: None,
        service_account_name: "local-path-provisioner-service-account".into(),
        helper_image: None,
        workers: 32,
        provisioning_retry_count: None,
        deletion_retry_count: None,
        allow_unsafe_helper_pod_template: false,
        metrics_addr: None,
        log_format: LogFormat::Text,
        lease_name: None,
        origin: String::new(),
        executor: None,
    };
    let addr = sandbox.serve(0).await?;
    let counting = counting_client(&sandbox, addr, counted).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(lpp::controller::run(counting, options, async {
        let _ = stopped.await;
    }));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    create_all(&claims, n, |i| {
        json!({"metadata": {"name": format!("c-{i}"), "annotations": {
                  "volume.kubernetes.io/selected-node": if i % 2 == 0 { "node-1" } else { "node-2" }}},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                        "resources": {"requests": {"storage": "1Gi"}}}})
    })
    .await?;
    // Counted from a watch, not by listing every claim again and again: a poll of all N claims
    // would cost the server O(N) each time and skew the figure.
    let bound = count_bound(&claims, n);
    tokio::time::timeout(Duration::from_secs(600), bound)
        .await
        .map_err(|_| anyhow::anyhow!("not all {n} claims Bound after 600 s"))??;
    let took = start.elapsed();
    let _ = stop.send(());
    let _ = runner.await;
    sandbox.shutdown().await;
    Ok(took)
}

/// Resolves once `n` distinct claims have been seen Bound on a watch.
async fn count_bound(claims: &Api<PersistentVolumeClaim>, n: usize) -> anyhow::Result<()> {
    use kube::runtime::watcher::{self, Event};
    let mut bound = std::collections::HashSet::new();
    let mut events = std::pin::pin!(watcher::watcher(claims.clone(), watcher::Config::default()));
    while let Some(event) = events.next().await {
        if let Event::Apply(c) | Event::InitApply(c) = event?
            && c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        {
            bound.insert(c.metadata.name.unwrap_or_default());
        }
        if bound.len() == n {
            return Ok(());
        }
    }
    bail!("the claim watch ended with {} of {n} Bound", bound.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let raw = raw_volumes(n).await?;
    let counted = std::sync::Arc::new(Counted::default());
    let run = provisioned(n, std::sync::Arc::clone(&counted)).await?;
    println!(
        "{n} PVs created directly:                     {:>8.2?}",
        raw
    );
    println!(
        "{n} claims provisioned by lpp run to Bound:   {:>8.2?}",
        run
    );
    println!(
        "ratio (provisioned / raw): {:.1}",
        run.as_secs_f64() / raw.as_secs_f64()
    );
    let per_claim = |n_calls: u64| n_calls as f64 / n as f64;
    println!(
        "lpp run's API calls per claim: {:.1} ({:.1} writes)",
        per_claim(counted.all.load(std::sync::atomic::Ordering::Relaxed)),
        per_claim(counted.writes.load(std::sync::atomic::Ordering::Relaxed))
    );
    Ok(())
}
