//! The soak: `lpp run` (the real binary) against a hostile sandbox — 20 % of requests answered
//! 500, 10 % 429, 5 % of watch events cut the stream — with N claims (default 1,000), killed with
//! SIGKILL at random moments while work is in flight and started again, then every claim
//! deleted. It checks one PV and one directory per claim, then nothing left (no PV, no
//! directory, no helper pod), and that no run ever exited by itself; it prints how long each
//! phase took.
//!
//! `cargo build && cargo run --example soak -- [N] [--kills K] [--executor agent]`
//! (the `lpp` binary next to this example's is the one run).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use lpp::sandbox::{Faults, Sandbox, SandboxOptions};
use serde_json::json;

const PHASE: Duration = Duration::from_secs(1800);

/// `call` until it succeeds despite the faults; a create answered 409 or a delete answered 404
/// already happened.
async fn retrying<T, F, Fut>(what: &str, call: F) -> anyhow::Result<Option<T>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + PHASE;
    loop {
        match call().await {
            Ok(v) => return Ok(Some(v)),
            Err(kube::Error::Api(e)) if e.code == 409 && what.starts_with("create") => {
                return Ok(None);
            }
            Err(kube::Error::Api(e)) if e.code == 404 && what.starts_with("delete") => {
                return Ok(None);
            }
            Err(e) if Instant::now() > deadline => bail!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn list<K>(api: &Api<K>) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = ListParams::default();
    Ok(retrying("list", || api.list(&params))
        .await?
        .map(|l| l.items)
        .unwrap_or_default())
}

fn bound(claims: &[PersistentVolumeClaim]) -> usize {
    claims
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        .count()
}

fn directories(root: &Path) -> usize {
    ["node-1", "node-2"]
        .iter()
        .map(|n| {
            std::fs::read_dir(
                root.join("nodes")
                    .join(n)
                    .join("opt/local-path-provisioner"),
            )
            .map(|d| d.count())
            .unwrap_or(0)
        })
        .sum()
}

/// A cheap pseudo-random number for the kill moments (no seed to keep: any will do).
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n.max(1)
}

struct Run {
    child: Child,
    log: PathBuf,
}

fn start_run(
    lpp: &Path,
    kubeconfig: &Path,
    dir: &Path,
    i: usize,
    executor: &str,
) -> anyhow::Result<Run> {
    let log = dir.join(format!("run-{i}.log"));
    let child = Command::new(lpp)
        .args(["--kubeconfig"])
        .arg(kubeconfig)
        .args(["run", "--executor", executor])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", lpp.display()))?;
    Ok(Run { child, log })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut n, mut kills, mut executor) = (1000usize, 5usize, "helperPod".to_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kills" => kills = args.next().context("--kills N")?.parse()?,
            "--executor" => executor = args.next().context("--executor NAME")?,
            count => n = count.parse().context("the claim count")?,
        }
    }
    let lpp = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("lpp"))
        .context("where the lpp binary is")?;
    if !lpp.exists() {
        bail!("{} is missing: run `cargo build` first", lpp.display());
    }
    let dir = tempfile::tempdir()?;
    let sandbox = Sandbox::start(SandboxOptions {
        dir: dir.path().join("sandbox"),
        nodes: 2,
        ..SandboxOptions::default()
    })
    .await?;
    let addr = sandbox.serve(0).await?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sandbox.kubeconfig(addr))?;
    let client = sandbox.client();
    let install = Command::new(&lpp)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["install", "--yes", "--executor", &executor])
        .stdout(Stdio::null())
        .status()?;
    if !install.success() {
        bail!("lpp install failed");
    }
    let mut run = start_run(&lpp, &kubeconfig, dir.path(), 0, &executor)?;
    sandbox.set_faults(Faults {
        error_rate: 0.2,
        throttle_rate: 0.1,
        watch_drop_rate: 0.05,
        latency: Duration::ZERO,
    });
    let started = Instant::now();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let create = PostParams::default();
    futures::stream::iter(0..n)
        .map(|i| {
            let (claims, create) = (&claims, &create);
            async move {
                let claim: PersistentVolumeClaim = serde_json::from_value(json!({
                    "metadata": {"name": format!("s{i}"), "annotations": {
                        "volume.kubernetes.io/selected-node": if i % 2 == 0 { "node-1" } else { "node-2" }}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                             "resources": {"requests": {"storage": "1Gi"}}}}))?;
                retrying("create claim", || claims.create(create, &claim)).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    println!("{n} claims created in {:.1?}", started.elapsed());

    // Kills at random moments while claims are being provisioned: only once the current run has
    // bound some (a run still waiting for the killed one's Lease to expire has nothing in flight).
    let mut killed = 0;
    let mut bound_at_start = 0;
    let deadline = Instant::now() + PHASE;
    let mut next_kill = Instant::now() + Duration::from_millis(500 + random_below(3000));
    loop {
        let now_bound = bound(&list(&claims).await?);
        if now_bound == n {
            break;
        }
        if killed < kills && Instant::now() >= next_kill && now_bound > bound_at_start {
            if let Some(status) = run.child.try_wait()? {
                bail!(
                    "a run exited by itself ({status}); see {}",
                    run.log.display()
                );
            }
            run.child.kill()?;
            run.child.wait()?;
            killed += 1;
            println!(
                "kill -9 #{killed} with {now_bound}/{n} bound at {:.1?}",
                started.elapsed()
            );
            run = start_run(&lpp, &kubeconfig, dir.path(), killed, &executor)?;
            bound_at_start = now_bound;
            next_kill = Instant::now() + Duration::from_millis(2000 + random_below(8000));
        }
        if Instant::now() > deadline {
            bail!("only {now_bound} of {n} claims Bound after {PHASE:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bound_after = started.elapsed();
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let made = list(&volumes).await?.len();
    let root = dir.path().join("sandbox");
    let dirs = directories(&root);
    println!(
        "all {n} Bound after {bound_after:.1?} and {killed} kills: {made} PVs, {dirs} directories"
    );
    if made != n || dirs != n {
        bail!("expected {n} PVs and {n} directories");
    }

    let reclaim = Instant::now();
    let delete = DeleteParams::default();
    futures::stream::iter(0..n)
        .map(|i| {
            let (claims, delete) = (&claims, &delete);
            async move {
                let name = format!("s{i}");
                retrying("delete claim", || claims.delete(&name, delete)).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "local-path-storage");
    let helpers = ListParams::default().labels(lpp::provision::helper_pod::HELPER_SELECTOR);
    let deadline = Instant::now() + PHASE;
    loop {
        let left = list(&volumes).await?.len();
        let helper_pods = retrying("list helper pods", || pods.list(&helpers))
            .await?
            .map_or(0, |l| l.items.len());
        let dirs = directories(&root);
        if left == 0 && dirs == 0 && helper_pods == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "left after {PHASE:?}: {left} PVs, {dirs} directories, {helper_pods} helper pods"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "all reclaimed in {:.1?}: 0 PVs, 0 directories, 0 helper pods",
        reclaim.elapsed()
    );
    if let Some(status) = run.child.try_wait()? {
        bail!(
            "the last run exited by itself ({status}); see {}",
            run.log.display()
        );
    }
    run.child.kill()?;
    run.child.wait()?;
    sandbox.set_faults(Faults::default());
    sandbox.shutdown().await;
    println!("runs that exited by themselves: 0");
    Ok(())
}
