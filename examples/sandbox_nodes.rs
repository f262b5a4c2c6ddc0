//! How fast the sandbox's nodes work, in-process: N pods with `nodeName` run to Succeeded
//! (a process each), and N claims bind to N pre-provisioned volumes through the PV controller.
//!
//! `cargo run --example sandbox_nodes -- [N]` (default 200).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

async fn until<K, F>(api: &Api<K>, what: &str, n: usize, done: F) -> anyhow::Result<Duration>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    let start = Instant::now();
    loop {
        let list = api.list(&ListParams::default()).await?;
        let count = list.items.iter().filter(|o| done(o)).count();
        if count >= n {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("{what}: only {count}/{n} after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("N must be a number")?
        .unwrap_or(200);
    let tmp = tempfile_dir()?;
    let sandbox = lpp::sandbox::Sandbox::start(lpp::sandbox::SandboxOptions {
        dir: tmp.clone(),
        nodes: 2,
        faults: lpp::sandbox::Faults::default(),
        ..Default::default()
    })
    .await?;
    let client = sandbox.client();

    // Pods: create N short helper-like pods, wait until all Succeeded.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    for i in 0..n {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("helper-{i}")},
            "spec": {"nodeName": format!("node-{}", i % 2 + 1), "restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "mkdir -p /data/v$0", i.to_string()],
                                     "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                     "volumes": [{"name": "d", "hostPath": {"path": "/opt/local-path-provisioner", "type": "DirectoryOrCreate"}}]}
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let created = start.elapsed();
    let done = until(&pods, "pods", n, |p: &Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await?;
    let total = created + done;
    println!(
        "{n} pods with nodeName: created in {created:?}, all Succeeded {total:?} after the first create ({:.0} pods/s)",
        n as f64 / total.as_secs_f64()
    );

    // Claims: N pre-provisioned volumes with claimRef, then N claims; wait until all Bound.
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    for i in 0..n {
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": format!("pv-{i}")},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                     "hostPath": {"path": format!("/opt/pv-{i}")},
                     "claimRef": {"namespace": "default", "name": format!("claim-{i}")}}
        }))?;
        volumes.create(&PostParams::default(), &pv).await?;
    }
    let start = Instant::now();
    for i in 0..n {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": format!("claim-{i}")},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                     "resources": {"requests": {"storage": "1Gi"}}}
        }))?;
        claims.create(&PostParams::default(), &pvc).await?;
    }
    let created = start.elapsed();
    let done = until(&claims, "claims", n, |c: &PersistentVolumeClaim| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await?;
    let total = created + done;
    println!(
        "{n} claims: created in {created:?}, all Bound {total:?} after the first create ({:.0} claims/s)",
        n as f64 / total.as_secs_f64()
    );
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("lpp-sandbox-nodes-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
