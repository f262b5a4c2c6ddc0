//! How fast the sandbox's API server is: N ConfigMaps created (8 at a time) while a watch,
//! opened before the first create, waits to see all N arrive. Measured on the API server alone
//! (in-process, no node agents), then on a whole sandbox in-process (no socket) and over HTTP on
//! 127.0.0.1, in a debug or release build as you run it.
//!
//! `cargo run --example sandbox_watch -- [N]` (default 1000).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};
use serde_json::json;

async fn measure(client: kube::Client, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = api
        .list(&Default::default())
        .await?
        .metadata
        .resource_version
        .context("list resourceVersion")?;
    let stream = api.watch(&WatchParams::default().timeout(290), &rv).await?;
    let start = Instant::now();
    let watcher = tokio::spawn(async move {
        let mut seen = 0usize;
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.try_next().await? {
            if matches!(event, WatchEvent::Added(_)) {
                seen += 1;
                if seen == n {
                    return Ok::<_, anyhow::Error>(start.elapsed());
                }
            }
        }
        bail!("the watch ended after {seen} of {n} objects")
    });
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("bench-{i}")}, "data": {"i": i.to_string()}}),
                )?;
                api.create(&PostParams::default(), &cm).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    let created = start.elapsed();
    let seen = tokio::time::timeout(Duration::from_secs(120), watcher)
        .await
        .context("the watch did not see every object within 120 s")???;
    Ok((created, seen))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("N must be a number")?
        .unwrap_or(1000);
    // The API server alone (no node agents watching and reacting), in-process.
    {
        let server = std::sync::Arc::new(lpp::sandbox::api::ApiServer::new(Default::default()));
        let namespaces =
            lpp::sandbox::resources::find("", "v1", "namespaces").context("namespaces")?;
        server
            .seed(namespaces, json!({"metadata": {"name": "default"}}))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let client = kube::Client::new(
            lpp::sandbox::server::InProcess::new(std::sync::Arc::clone(&server)),
            "default",
        );
        let (created, seen) = measure(client, n).await?;
        println!(
            "{:>10}: {n} creates in {:.0} ms, all {n} seen on the watch after {:.0} ms ({:.0} objects/s)",
            "API only",
            created.as_secs_f64() * 1000.0,
            seen.as_secs_f64() * 1000.0,
            n as f64 / seen.as_secs_f64()
        );
        server.stop.cancel();
    }
    for transport in ["in-process", "HTTP"] {
        let dir = tempfile::tempdir()?;
        let sandbox = lpp::sandbox::Sandbox::start(lpp::sandbox::SandboxOptions {
            dir: dir.path().to_path_buf(),
            nodes: 1,
            faults: Default::default(),
            ..Default::default()
        })
        .await?;
        let client = if transport == "HTTP" {
            let addr = sandbox.serve(0).await?;
            let path = dir.path().join("kubeconfig");
            std::fs::write(&path, sandbox.kubeconfig(addr))?;
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(&path)?,
                &Default::default(),
            )
            .await?;
            kube::Client::try_from(config)?
        } else {
            sandbox.client()
        };
        let (created, seen) = measure(client, n).await?;
        println!(
            "{transport:>10}: {n} creates in {:.0} ms, all {n} seen on the watch after {:.0} ms ({:.0} objects/s)",
            created.as_secs_f64() * 1000.0,
            seen.as_secs_f64() * 1000.0,
            n as f64 / seen.as_secs_f64()
        );
        sandbox.shutdown().await;
    }
    Ok(())
}
