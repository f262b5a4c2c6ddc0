//! The headline figure of `lpp run`: N claims that already carry a selected node, created at
//! once, until all are Bound (each through a helper pod that makes its directory and a PV), next
//! to the same sandbox's raw rate of creating N PVs directly, and to the floor no provisioner can
//! beat: N claims bound to N volumes made beforehand (the PV controller's binding alone). Each
//! executor's time until all N PVs exist (its own work) is printed next to its time to Bound.
//! All in-process, in a debug or release build as you run it.
//!
//! `lpp run` talks to the sandbox over HTTP here, through a layer that counts its requests, so
//! the API calls (and writes) each claim costs are printed too.
//!
//! Both executors run side by side, each on a fresh sandbox: `helperPod` (a pod per volume, as
//! upstream) and `agent` (exec into the node agents of the `local-path-agent` DaemonSet, batched).
//! `--latency-ms` adds that much latency to every request of the sandbox (the sandbox's own
//! controllers included), as a real API server's write latency would. `--pod-startup-ms` makes
//! each node take that long to make a pod's sandbox before its containers start, as a real
//! kubelet does (network namespace, pause container, CNI: about a second); the sandbox's own
//! pods start in milliseconds, which hides what a pod per volume costs on a real node.
//!
//! Each node's kubelet reports pod status through a client limited as a kubelet's is (50
//! requests a second, bursts of 100): a burst of helper pods on one node waits on that, as it
//! does on a real node.
//!
//! `cargo run --release --example run_bound -- [N] [--latency-ms MS] [--pod-startup-ms MS]`
//! (default 1000 claims, 0 ms, 0 ms). `RUN_BOUND_ONLY=agent` (or `helperPod`) runs one executor;
//! `RUN_BOUND_DETAIL=1` prints the server's requests per claim by verb and resource.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::PostParams;
use lpp::config::ExecutorKind;
use lpp::controller::{LogFormat, RunOptions};
use lpp::sandbox::{Faults, Sandbox, SandboxOptions};
use serde_json::json;

/// The sandbox's request latency and pod start time of a run.
#[derive(Debug, Clone, Copy)]
struct Setting {
    latency: Duration,
    pod_startup: Duration,
}

async fn sandbox(dir: &std::path::Path, setting: Setting) -> anyhow::Result<Sandbox> {
    Ok(Sandbox::start(SandboxOptions {
        dir: dir.to_path_buf(),
        nodes: 2,
        faults: Faults {
            latency: setting.latency,
            ..Faults::default()
        },
        pod_startup: setting.pod_startup,
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

async fn raw_volumes(n: usize, setting: Setting) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let sandbox = sandbox(dir.path(), setting).await?;
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

/// N claims and N matching volumes made beforehand (no provisioner): the time until every claim
/// is Bound is what the PV controller's binding alone costs.
async fn premade_bound(n: usize, setting: Setting) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let sandbox = sandbox(dir.path(), setting).await?;
    let client = sandbox.client();
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "premade"}, "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "Immediate"}))?;
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await?;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    create_all(&volumes, n, |i| {
        json!({"metadata": {"name": format!("pre-{i}")},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "premade",
                        "hostPath": {"path": format!("/opt/pre/{i}")}}})
    })
    .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, "default");
    let start = Instant::now();
    create_all(&claims, n, |i| {
        json!({"metadata": {"name": format!("c-{i}")},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "premade",
                        "resources": {"requests": {"storage": "1Gi"}}}})
    })
    .await?;
    tokio::time::timeout(Duration::from_secs(600), count_bound(&claims, n))
        .await
        .map_err(|_| anyhow::anyhow!("not all {n} claims Bound to made volumes after 600 s"))??;
    let took = start.elapsed();
    sandbox.shutdown().await;
    Ok(took)
}

/// Requests `lpp run` made: all of them, and the writes among them; and every write the server
/// took while the claims were provisioned (kubelet status updates, bindings, … included).
#[derive(Debug, Default)]
struct Counted {
    all: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    server_writes: std::sync::atomic::AtomicU64,
    /// Milliseconds from the first claim until all N PVs existed.
    volumes_made_ms: std::sync::atomic::AtomicU64,
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

async fn provisioned(
    n: usize,
    setting: Setting,
    executor: ExecutorKind,
    counted: std::sync::Arc<Counted>,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let sandbox = sandbox(dir.path(), setting).await?;
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
    if executor == ExecutorKind::Agent {
        start_agents(&client).await?;
    }
    let options = RunOptions {
        namespace: "local-path-storage".into(),
        provisioner_name: "rancher.io/local-path".into(),
        config_map: "local-path-config".into(),
        config_file: None,
        helper_pod_file: None,
        service_account_name: "local-path-provisioner-service-account".into(),
        helper_image: None,
        workers: std::env::var("RB_WORKERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(32),
        provisioning_retry_count: None,
        deletion_retry_count: None,
        allow_unsafe_helper_pod_template: false,
        metrics_addr: None,
        log_format: LogFormat::Text,
        lease_name: None,
        origin: String::new(),
        executor: Some(executor),
        // Provisioning alone is timed and counted: no usage probes in between.
        usage_interval: std::time::Duration::ZERO,
        usage_with_helper_pods: false,
        extra_provisioner_names: Vec::new(),
    };
    let addr = sandbox.serve(0).await?;
    let counting = counting_client(&sandbox, addr, std::sync::Arc::clone(&counted)).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let counted_here = std::sync::Arc::clone(&counted);
    let runner = tokio::spawn(lpp::controller::run(counting, options, async {
        let _ = stopped.await;
    }));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    sandbox.reset_request_counts();
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
    let made = async {
        count_volumes(&Api::<PersistentVolume>::all(client.clone()), n).await?;
        counted_here.volumes_made_ms.store(
            u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(
        Duration::from_secs(600),
        futures::future::try_join(bound, made),
    )
    .await
    .map_err(|_| anyhow::anyhow!("not all {n} claims Bound after 600 s"))??;
    let took = start.elapsed();
    let writes: u64 = sandbox
        .request_counts()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("get ") && !k.starts_with("list ") && !k.starts_with("watch ")
        })
        .filter(|(k, _)| !k.ends_with("persistentvolumeclaims") || !k.starts_with("create "))
        .map(|(_, n)| n)
        .sum();
    if std::env::var_os("RUN_BOUND_DETAIL").is_some() {
        for (k, v) in sandbox.request_counts() {
            eprintln!("{executor:?} {k}: {:.2}/claim", v as f64 / n as f64);
        }
    }
    counted_here
        .server_writes
        .store(writes, std::sync::atomic::Ordering::Relaxed);
    let _ = stop.send(());
    let _ = runner.await;
    sandbox.shutdown().await;
    Ok(took)
}

/// The agent DaemonSet, and both nodes' agents Ready.
async fn start_agents(client: &kube::Client) -> anyhow::Result<()> {
    let template = lpp::config::parse_helper_pod(&lpp::config::default_helper_pod_yaml("busybox"))?;
    let paths = std::collections::BTreeSet::from(["/opt/local-path-provisioner".to_owned()]);
    let set = lpp::provision::agent::daemon_set(&template, None, "local-path-storage", &paths);
    Api::<k8s_openapi::api::apps::v1::DaemonSet>::namespaced(client.clone(), "local-path-storage")
        .create(&PostParams::default(), &set)
        .await?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(client.clone(), "local-path-storage");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = pods
            .list(&kube::api::ListParams::default().labels(lpp::provision::agent::AGENT_SELECTOR))
            .await?
            .items
            .iter()
            .filter(|p| lpp::provision::agent::AgentPod::of(p).is_some_and(|a| a.ready))
            .count();
        if ready == 2 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the node agents are not Ready after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Resolves once `n` distinct volumes have been seen on a watch.
async fn count_volumes(volumes: &Api<PersistentVolume>, n: usize) -> anyhow::Result<()> {
    use kube::runtime::watcher::{self, Event};
    let mut seen = std::collections::HashSet::new();
    let mut events = std::pin::pin!(watcher::watcher(
        volumes.clone(),
        watcher::Config::default()
    ));
    while let Some(event) = events.next().await {
        if let Event::Apply(v) | Event::InitApply(v) = event? {
            seen.insert(v.metadata.name.unwrap_or_default());
        }
        if seen.len() >= n {
            return Ok(());
        }
    }
    bail!("the volume watch ended with {} of {n} seen", seen.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Ok(filter) = std::env::var("LPP_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let mut args = std::env::args().skip(1);
    let mut n = 1000usize;
    let mut latency = Duration::ZERO;
    let mut pod_startup = Duration::ZERO;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--latency-ms" => {
                let ms: u64 = args.next().context("--latency-ms needs a value")?.parse()?;
                latency = Duration::from_millis(ms);
            }
            "--pod-startup-ms" => {
                let ms: u64 = args
                    .next()
                    .context("--pod-startup-ms needs a value")?
                    .parse()?;
                pod_startup = Duration::from_millis(ms);
            }
            count => n = count.parse().context("the claim count")?,
        }
    }
    let setting = Setting {
        latency,
        pod_startup,
    };
    let raw = raw_volumes(n, setting).await?;
    let floor = premade_bound(n, setting).await?;
    println!(
        "{n} claims, {} ms latency per request, {} ms to start a pod; {n} PVs created directly: \
         {raw:.2?}; {n} claims bound to volumes made beforehand: {floor:.2?}",
        latency.as_millis(),
        pod_startup.as_millis()
    );
    println!(
        "executor   PVs made   to Bound    vs raw   lpp's calls/claim   lpp's writes/claim   server writes/claim"
    );
    let mut results = Vec::new();
    for executor in [ExecutorKind::HelperPod, ExecutorKind::Agent] {
        if std::env::var("RUN_BOUND_ONLY").is_ok_and(|o| o != executor.as_str()) {
            continue;
        }
        let counted = std::sync::Arc::new(Counted::default());
        let took = provisioned(n, setting, executor, std::sync::Arc::clone(&counted)).await?;
        let per_claim = |c: &std::sync::atomic::AtomicU64| {
            c.load(std::sync::atomic::Ordering::Relaxed) as f64 / n as f64
        };
        let made = Duration::from_millis(
            counted
                .volumes_made_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        println!(
            "{:<10} {:>8.2?} {:>10.2?} {:>8.1}x {:>19.1} {:>20.1} {:>21.1}",
            executor.as_str(),
            made,
            took,
            took.as_secs_f64() / raw.as_secs_f64(),
            per_claim(&counted.all),
            per_claim(&counted.writes),
            per_claim(&counted.server_writes)
        );
        results.push((made, took, per_claim(&counted.server_writes)));
    }
    if let [
        (helper_made, helper, helper_writes),
        (agent_made, agent, agent_writes),
    ] = results.as_slice()
    {
        println!(
            "agent: {:.1}x faster to all PVs made, {:.1}x faster to Bound, {:.2}x the server's writes per claim",
            helper_made.as_secs_f64() / agent_made.as_secs_f64(),
            helper.as_secs_f64() / agent.as_secs_f64(),
            agent_writes / helper_writes
        );
    }
    Ok(())
}
