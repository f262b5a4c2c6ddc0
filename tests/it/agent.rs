//! The agent executor through the real `lpp run`: volumes made and removed by exec into the node
//! agents of the `local-path-agent` DaemonSet (run by the sandbox's DaemonSet controller), no pod
//! per volume; a helper pod where no agent can serve, with a Warning saying why.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::run::{
    WAIT, assert_converged, burst, claim_on, create, event_for, is_bound, provisioned, set_config,
    volume_path,
};
use crate::support::{TestCluster, install_basics, wait_for, wait_gone};

pub(crate) const AGENT_CONFIG: &str = r#"{"executor":"agent","nodePathMap":[
    {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/opt/local-path-provisioner"]}]}"#;

/// Installs the agent DaemonSet for `paths` and waits until `ready` agents are Ready.
pub(crate) async fn agents(cluster: &TestCluster, paths: &[&str], ready: usize) {
    let template =
        lpp::config::parse_helper_pod(&lpp::config::default_helper_pod_yaml("busybox")).unwrap();
    let paths: BTreeSet<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    let set = lpp::provision::agent::daemon_set(&template, None, "local-path-storage", &paths);
    Api::<DaemonSet>::namespaced(cluster.client(), "local-path-storage")
        .create(&PostParams::default(), &set)
        .await
        .unwrap();
    agents_ready(cluster, ready, |_| true).await;
}

/// Waits until `count` agent pods are Ready and satisfy `also`.
async fn agents_ready(cluster: &TestCluster, count: usize, also: impl Fn(&Pod) -> bool) {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed = pods
            .list(&ListParams::default().labels(lpp::provision::agent::AGENT_SELECTOR))
            .await
            .unwrap()
            .items;
        let ready = listed
            .iter()
            .filter(|p| lpp::provision::agent::AgentPod::of(p).is_some_and(|a| a.ready))
            .filter(|p| also(p))
            .count();
        if ready == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ready} of {count} agents ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pod_creates(cluster: &TestCluster) -> u64 {
    cluster
        .sandbox()
        .request_counts()
        .iter()
        .filter(|(k, _)| *k == "create pods")
        .map(|(_, n)| *n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_and_reclaim_run_without_a_pod_per_volume() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    agents(&cluster, &["/opt/local-path-provisioner"], 2).await;
    set_config(&cluster, json!({"config.json": AGENT_CONFIG})).await;
    let runner = cluster.spawn_lpp(["run"]);
    runner.wait_provisioning().await;
    cluster.sandbox().reset_request_counts();

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    claims
        .create(&PostParams::default(), &crate::run::claim("data"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &crate::run::pod("user", "data"))
        .await
        .unwrap();
    let bound = wait_for(&claims, "data", WAIT, is_bound).await;
    let volume_name = bound.spec.unwrap().volume_name.unwrap();
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    let volume = volumes.get(&volume_name).await.unwrap();
    let node =
        volume.metadata.annotations.as_ref().unwrap()["local.path.provisioner/selected-node"]
            .clone();
    let on_disk = cluster.node_path(&node, &volume_path(&volume));
    let deadline = tokio::time::Instant::now() + WAIT;
    while !on_disk.join("hello").exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pod never wrote"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pods.delete("user", &DeleteParams::default()).await.unwrap();
    wait_gone(&pods, "user", WAIT).await;
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&volumes, &volume_name, WAIT).await;
    assert!(!on_disk.exists(), "the teardown removed the directory");
    assert_eq!(pod_creates(&cluster), 1, "only the user's pod was created");
    let log = runner.output().1;
    assert!(
        log.contains("provisioned default/data") && log.contains("reclaimed"),
        "{log}"
    );
    assert!(
        !log.contains("NodeAgentUnavailable") && !log.contains("instead"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_setup_is_reported_with_its_output_and_a_missing_agent_falls_back() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    // node-2 is tainted before the agents come: none is scheduled there.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client());
    nodes
        .patch(
            "node-2",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": [
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}})),
        )
        .await
        .unwrap();
    agents(&cluster, &["/opt/local-path-provisioner"], 1).await;
    set_config(
        &cluster,
        json!({"config.json": AGENT_CONFIG,
               "setup": "#!/bin/sh\nset -eu\ncase \"$VOL_DIR\" in *broken*) echo disk full on purpose >&2; exit 7;; esac\nmkdir -m 0777 -p \"$VOL_DIR\"\n"}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run"]);
    let asked = std::time::Instant::now();
    create(
        &cluster,
        claim_on("broken", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let message = event_for(&cluster, "default", "broken", "ProvisioningFailed").await;
    assert!(
        asked.elapsed() <= Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        message.contains("exit code 7")
            && message.contains("disk full on purpose")
            && message.contains("node agent"),
        "{message}"
    );
    // No agent on node-2: a helper pod does the job, and the claim is told why.
    let volume = provisioned(
        &cluster,
        claim_on("elsewhere", "local-path", Some("node-2"), "ReadWriteOnce"),
    )
    .await;
    assert!(cluster.node_path("node-2", &volume_path(&volume)).is_dir());
    let why = event_for(&cluster, "default", "elsewhere", "NodeAgentUnavailable").await;
    assert!(why.contains("no node agent on node node-2"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_setup_times_out_alone_while_the_claims_beside_it_are_provisioned() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    agents(&cluster, &["/opt/local-path-provisioner"], 2).await;
    set_config(
        &cluster,
        json!({"config.json": r#"{"executor":"agent","cmdTimeoutSeconds":2,"nodePathMap":[
            {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/opt/local-path-provisioner"]}]}"#,
               "setup": "#!/bin/sh\nset -eu\ncase \"$VOL_DIR\" in *stuck*) echo waiting forever; sleep 600;; esac\nmkdir -m 0777 -p \"$VOL_DIR\"\n"}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run"]);
    // Created together, so that they share the node's batches.
    create(
        &cluster,
        claim_on("stuck", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    for i in 0..3 {
        create(
            &cluster,
            claim_on(
                &format!("beside-{i}"),
                "local-path",
                Some("node-1"),
                "ReadWriteOnce",
            ),
        )
        .await;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    for i in 0..3 {
        wait_for(&claims, &format!("beside-{i}"), WAIT, is_bound).await;
    }
    let message = event_for(&cluster, "default", "stuck", "ProvisioningFailed").await;
    assert!(
        message.contains("did not finish within 2s (cmdTimeoutSeconds)")
            && message.contains("waiting forever"),
        "{message}"
    );
    let stuck = claims.get("stuck").await.unwrap();
    assert!(!is_bound(&stuck), "the stuck claim has no volume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_added_to_the_config_is_mounted_by_the_agents_and_served() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    agents(&cluster, &["/opt/local-path-provisioner"], 2).await;
    set_config(&cluster, json!({"config.json": AGENT_CONFIG})).await;
    let runner = cluster.spawn_lpp(["run"]);
    runner.wait_provisioning().await;
    set_config(
        &cluster,
        json!({"config.json": r#"{"executor":"agent","nodePathMap":[
            {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/opt/local-path-provisioner","/srv/fast"]}]}"#}),
    )
    .await;
    runner
        .wait_for_log("now mounts [\"/srv/fast\"]", WAIT)
        .await;
    // The DaemonSet rolls: every agent ends up mounting the new path.
    agents_ready(&cluster, 2, |p| {
        lpp::provision::agent::AgentPod::of(p).is_some_and(|a| a.reaches("/srv/fast"))
    })
    .await;
    cluster.sandbox().reset_request_counts();
    class(&cluster).await;
    let volume = provisioned(
        &cluster,
        claim_on("fast", "fast", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let path = volume_path(&volume);
    assert!(path.starts_with("/srv/fast/"), "{path}");
    assert!(cluster.node_path("node-1", &path).is_dir());
    assert_eq!(pod_creates(&cluster), 0, "served by the agent");
}

async fn class(cluster: &TestCluster) {
    let class: k8s_openapi::api::storage::v1::StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "fast"}, "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete",
        "parameters": {"nodePath": "/srv/fast"}}))
    .unwrap();
    Api::<k8s_openapi::api::storage::v1::StorageClass>::all(cluster.client())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_and_two_runs_converge_to_one_volume_per_claim() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    agents(&cluster, &["/opt/local-path-provisioner"], 2).await;
    // A setup that takes a moment, so that batches are surely under way at the kill.
    set_config(
        &cluster,
        json!({"config.json": AGENT_CONFIG,
               "setup": "#!/bin/sh\nset -eu\nsleep 0.3\nmkdir -m 0777 -p \"$VOL_DIR\"\n"}),
    )
    .await;
    let first = cluster.spawn_lpp(["run", "--no-leader-election"]);
    burst(&cluster, 20).await;
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let made = volumes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        if made > 0 && made < 20 {
            break;
        }
        assert!(
            made < 20 && tokio::time::Instant::now() < deadline,
            "{made} volumes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop(); // SIGKILL with execs under way
    let _second = cluster.spawn_lpp(["run", "--no-leader-election"]);
    let _third = cluster.spawn_lpp(["run", "--no-leader-election"]);
    assert_converged(&cluster, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_with_the_agent_executor_runs_agents_that_status_shows_and_run_uses() {
    let cluster = TestCluster::start().await;
    let manifests = cluster.lpp(["manifests", "--executor", "agent"]).await;
    assert_eq!(manifests.code, 0, "{manifests:?}");
    assert!(
        manifests.stdout.contains("kind: DaemonSet")
            && manifests.stdout.contains("name: local-path-agent")
            && manifests.stdout.contains("\"executor\": \"agent\"")
            && manifests.stdout.contains("pods/exec"),
        "{}",
        manifests.stdout
    );
    let installed = cluster
        .lpp(["install", "--yes", "--executor", "agent"])
        .await;
    assert_eq!(installed.code, 0, "{installed:?}");
    assert!(
        installed.stdout.contains("local-path-agent"),
        "{}",
        installed.stdout
    );
    agents_ready(&cluster, 2, |_| true).await;
    let runner = cluster.spawn_lpp(["run"]);
    runner.wait_provisioning().await;
    cluster.sandbox().reset_request_counts();
    provisioned(
        &cluster,
        claim_on("via-agent", "local-path", Some("node-2"), "ReadWriteOnce"),
    )
    .await;
    assert_eq!(pod_creates(&cluster), 0, "no helper pod");
    let status = cluster.lpp(["status", "-o", "json"]).await;
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(report["executor"], "agent", "{}", status.stdout);
    let agents = report["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{}", status.stdout);
    assert!(
        agents.iter().all(|a| a["ready"] == true),
        "{}",
        status.stdout
    );
    let table = cluster.lpp(["status"]).await;
    assert!(
        table.stdout.contains("AGENT") && table.stdout.contains("agent"),
        "{}",
        table.stdout
    );
    // Uninstall removes the agents with the rest.
    Api::<PersistentVolumeClaim>::namespaced(cluster.client(), "default")
        .delete("via-agent", &DeleteParams::default())
        .await
        .unwrap();
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    let deadline = tokio::time::Instant::now() + WAIT;
    while !volumes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "never reclaimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(runner);
    let removed = cluster.lpp(["uninstall", "--yes"]).await;
    assert_eq!(removed.code, 0, "{removed:?}");
    let sets: Api<DaemonSet> = Api::namespaced(cluster.client(), "local-path-storage");
    assert!(sets.get_opt("local-path-agent").await.unwrap().is_none());
}
