//! Capacity through the real binary on the sandbox: node paths declared as disks of different
//! sizes (`--disk`: the sandbox's `df`/`stat` answer from the declaration), `lpp usage`, the
//! `mostFree` path choice, budgets, the reschedule to another node, the mount guard, the
//! over-request warning and the usage metrics of `lpp run --usage-interval`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::run::{WAIT, claim_on, class, create, event_for, is_bound, set_config, volume_path};
use crate::support::{TestCluster, install_basics, wait_for};

/// A claim of `class` asking for `size`.
fn claim_of(name: &str, class: &str, size: &str) -> PersistentVolumeClaim {
    claim_on(name, class, None, "ReadWriteOnce").tap_size(size)
}

/// A pod using `claim`, optionally pinned to `node`.
fn pod_using(name: &str, claim: Option<&str>, node: Option<&str>) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox",
                          "command": ["sh", "-c", "while true; do sleep 3600; done"]}]});
    if let Some(claim) = claim {
        spec["containers"][0]["volumeMounts"] = json!([{"name": "v", "mountPath": "/data"}]);
        spec["volumes"] = json!([{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]);
    }
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn start_pod(cluster: &TestCluster, pod: Pod) {
    Api::<Pod>::namespaced(cluster.client(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// The `reason` events on `name` (in `default`), repeats counted.
async fn event_count(cluster: &TestCluster, name: &str, reason: &str) -> i32 {
    Api::<Event>::namespaced(cluster.client(), "default")
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.count.unwrap_or(1))
        .sum()
}

/// Waits until the metrics endpoint shows a line starting with `prefix` and satisfying `ok`.
async fn metric_line(addr: &str, prefix: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = crate::run::http_get(addr, "/metrics").await;
        if let Some(line) = text.lines().find(|l| l.starts_with(prefix) && ok(l)) {
            return line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {prefix} line as wanted in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A sandbox of two nodes with these disks (`--disk` declarations).
async fn two_nodes(disks: &[&str]) -> TestCluster {
    disks
        .iter()
        .fold(TestCluster::builder().nodes(2), |b, d| b.disk(d))
        .start()
        .await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_most_free_over_request_warning_once_and_metrics() {
    let cluster = two_nodes(&[
        "node-1:/mnt/a=1Gi",
        "node-1:/mnt/b=4Gi,fs=xfs",
        "node-2:/mnt/a=2Gi",
        "node-2:/mnt/b=1Gi",
    ])
    .await;
    install_basics(&cluster).await;
    set_config(
        &cluster,
        json!({"config.json": json!({"nodePathMap": [
            {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/mnt/a", "/mnt/b"]}]}).to_string()}),
    )
    .await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let runner = cluster.spawn_lpp([
        "run",
        "--usage-interval",
        "1s",
        "--metrics-addr",
        &metrics_addr,
    ]);
    runner.wait_provisioning().await;

    // mostFree: node-1's 4Gi disk, whatever the random number.
    let volume = crate::run::provisioned(
        &cluster,
        claim_on("data", "local-path", Some("node-1"), "ReadWriteOnce").tap_size("1Mi"),
    )
    .await;
    let path = volume_path(&volume);
    assert!(path.starts_with("/mnt/b/"), "{path}");
    // node-2: /mnt/a has 2Gi.
    let other = crate::run::provisioned(
        &cluster,
        claim_on("other", "local-path", Some("node-2"), "ReadWriteOnce").tap_size("1Mi"),
    )
    .await;
    assert!(volume_path(&other).starts_with("/mnt/a/"), "{other:?}");

    // 2 MiB in a volume that asked for 1 MiB.
    let dir = cluster.node_path("node-1", &path);
    std::fs::write(dir.join("blob"), vec![1u8; 2 << 20]).unwrap();

    let table = cluster.lpp(["usage"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    for row in [
        ["node-1", "/mnt/a", "1.0GiB"],
        ["node-1", "/mnt/b", "4.0GiB"],
    ] {
        assert!(
            table.stdout.lines().any(|l| row
                .iter()
                .all(|cell| l.split_whitespace().any(|w| w == *cell))),
            "no row {row:?}:\n{}",
            table.stdout
        );
    }
    let df = cluster
        .lpp(["df", "--volumes", "--node", "node-1", "-o", "json"])
        .await;
    assert_eq!(df.code, 0, "{}", df.stderr);
    let report: serde_json::Value = serde_json::from_str(&df.stdout).unwrap();
    assert_eq!(report["kind"], "UsageReport");
    let paths = report["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 2, "--node node-1 only: {report}");
    let b = paths.iter().find(|p| p["path"] == "/mnt/b").unwrap();
    assert_eq!(b["sizeBytes"], 4u64 << 30);
    assert_eq!(b["fsType"], "xfs");
    assert_eq!(b["requestedBytes"], 1 << 20);
    assert_eq!(b["volumes"], 1);
    assert!(b["usedBytes"].as_u64().unwrap() >= 2 << 20, "{b}");
    assert!(
        b["availableBytes"].as_u64().unwrap() <= (4u64 << 30) - (2 << 20),
        "{b}"
    );
    let volumes = report["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1, "{report}");
    assert_eq!(volumes[0]["claim"], "data");
    assert_eq!(volumes[0]["overRequest"], true);
    assert!(volumes[0]["usedBytes"].as_u64().unwrap() >= 2 << 20);
    let wide = cluster.lpp(["usage", "--volumes"]).await;
    assert!(
        wide.stdout
            .lines()
            .any(|l| l.contains("default/data") && l.contains("over")),
        "{}",
        wide.stdout
    );
    let unknown = cluster.lpp(["usage", "--node", "node-9"]).await;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);

    // lpp run: the warning, the metrics.
    let message = event_for(&cluster, "default", "data", "VolumeOverRequest").await;
    assert!(
        message.contains("/mnt/b") && message.contains("1.0MiB"),
        "{message}"
    );
    metric_line(
        &metrics_addr,
        "lpp_path_capacity_bytes{node=\"node-1\",path=\"/mnt/b\"}",
        |l| l.ends_with(" 4294967296"),
    )
    .await;
    metric_line(&metrics_addr, "lpp_path_available_bytes{", |_| true).await;
    // A later refresh sees 3 MiB: still over, not warned again.
    std::fs::write(dir.join("blob2"), vec![1u8; 1 << 20]).unwrap();
    metric_line(
        &metrics_addr,
        "lpp_volume_used_bytes{node=\"node-1\"",
        |l| {
            l.contains("claim=\"data\"")
                && l.rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= 3 << 20)
        },
    )
    .await;
    assert_eq!(event_count(&cluster, "data", "VolumeOverRequest").await, 1);
    assert_eq!(event_count(&cluster, "other", "VolumeOverRequest").await, 0);
}

/// Sets a claim's request.
trait TapSize {
    fn tap_size(self, size: &str) -> Self;
}

impl TapSize for PersistentVolumeClaim {
    fn tap_size(mut self, size: &str) -> Self {
        self.spec
            .as_mut()
            .unwrap()
            .resources
            .as_mut()
            .unwrap()
            .requests = Some(
            [(
                "storage".to_owned(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity(size.to_owned()),
            )]
            .into(),
        );
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_refusal_says_what_the_path_has_reschedules_and_gives_up_after_three() {
    let cluster = two_nodes(&[
        "node-1:/opt/local-path-provisioner=1Gi",
        "node-2:/opt/local-path-provisioner=4Gi",
    ])
    .await;
    install_basics(&cluster).await;
    class(
        &cluster,
        "budget",
        json!({"parameters": {"capacityBudget": "true"}}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run", "--usage-interval", "0"]);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");

    // The scheduler picks node-1 (no pods anywhere: ties go to the first name); 2Gi does not
    // fit its 1Gi: handed back, with what the path has and what was asked.
    create(&cluster, claim_of("big", "budget", "2Gi")).await;
    start_pod(&cluster, pod_using("user", Some("big"), None)).await;
    let message = event_for(&cluster, "default", "big", "ProvisioningFailed").await;
    for part in [
        "node node-1 cannot host the claim",
        "no room for 2.0GiB on node-1 (capacityBudget)",
        "/opt/local-path-provisioner has 1",
        "reschedule 1 of 3",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    // kube-scheduler breaks ties between equal nodes at random; the sandbox's is the first
    // name, so a pod on node-1 tips its next choice to node-2.
    start_pod(&cluster, pod_using("ballast", None, Some("node-1"))).await;
    let bound = wait_for(&claims, "big", WAIT, is_bound).await;
    let volume = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(cluster.client())
        .get(bound.spec.as_ref().unwrap().volume_name.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        volume.metadata.annotations.as_ref().unwrap()["local.path.provisioner/selected-node"],
        "node-2"
    );

    // 8Gi fits nowhere: the scheduler keeps picking node-1 (one pod each now; ties to the
    // first name); after three hand-backs, one clear failure.
    create(&cluster, claim_of("huge", "budget", "8Gi")).await;
    start_pod(&cluster, pod_using("user2", Some("huge"), None)).await;
    let given_up = wait_for(&claims, "huge", WAIT, |c| {
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("lpp.dev/reschedules"))
            .is_some_and(|n| n == "3")
            && c.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("volume.kubernetes.io/selected-node"))
    })
    .await;
    assert!(!is_bound(&given_up));
    let deadline = tokio::time::Instant::now() + WAIT;
    let last = loop {
        let events = Api::<Event>::namespaced(cluster.client(), "default")
            .list(&ListParams::default().fields("involvedObject.name=huge"))
            .await
            .unwrap();
        if let Some(e) = events
            .items
            .iter()
            .find(|e| e.message.as_deref().is_some_and(|m| m.contains("given up")))
        {
            break e.message.clone().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        last.contains("no room for 8.0GiB") && last.contains("3 time(s)"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_failing_its_mount_guard_is_not_used_and_status_says_so() {
    let cluster = two_nodes(&[
        "node-1:/opt/local-path-provisioner=1Gi,mountpoint=false",
        "node-2:/opt/local-path-provisioner=1Gi",
    ])
    .await;
    install_basics(&cluster).await;
    set_config(
        &cluster,
        json!({"config.json": json!({
            "nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                             "paths": ["/opt/local-path-provisioner"]}],
            "pathOptions": {"/opt/local-path-provisioner": {"requireMountPoint": true}}}).to_string()}),
    )
    .await;
    let runner = cluster.spawn_lpp(["run", "--usage-interval", "1s"]);
    runner.wait_provisioning().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    create(&cluster, claim_of("data", "local-path", "10Mi")).await;
    start_pod(&cluster, pod_using("user", Some("data"), None)).await;
    let message = event_for(&cluster, "default", "data", "ProvisioningFailed").await;
    assert!(
        message.contains("node-1:/opt/local-path-provisioner is not a mount point of its own"),
        "{message}"
    );
    assert!(
        !cluster
            .node_path("node-1", "/opt/local-path-provisioner")
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("pvc-")),
        "nothing made on node-1"
    );
    start_pod(&cluster, pod_using("ballast", None, Some("node-1"))).await;
    let bound = wait_for(&claims, "data", WAIT, is_bound).await;
    assert!(bound.spec.unwrap().volume_name.is_some());

    let usage = cluster.lpp(["usage", "-o", "json"]).await;
    let report: serde_json::Value = serde_json::from_str(&usage.stdout).unwrap();
    let guarded = report["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node"] == "node-1")
        .unwrap()
        .clone();
    assert_eq!(guarded["usable"], false, "{guarded}");
    assert_eq!(guarded["mountPoint"], false, "{guarded}");
    // The refresh warns on the ConfigMap; status lists it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = cluster.lpp(["status"]).await;
        if status.stdout.contains("MountGuardFailed") || status.stderr.contains("MountGuardFailed")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}\n{}",
            status.stdout,
            status.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The CSIStorageCapacity objects lpp published, by name, once `cond` holds for them.
async fn capacities_until(
    cluster: &TestCluster,
    what: &str,
    cond: impl Fn(&[k8s_openapi::api::storage::v1::CSIStorageCapacity]) -> bool,
) -> Vec<k8s_openapi::api::storage::v1::CSIStorageCapacity> {
    let api: Api<k8s_openapi::api::storage::v1::CSIStorageCapacity> =
        Api::namespaced(cluster.client(), "local-path-storage");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let items = api.list(&ListParams::default()).await.unwrap().items;
        if cond(&items) {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "capacities never {what}: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The maximum volume size the object for `node` offers, in bytes.
fn max_size_on(
    items: &[k8s_openapi::api::storage::v1::CSIStorageCapacity],
    node: &str,
) -> Option<u64> {
    items
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(&format!("lpp-local-path-capacity-{node}")))
        .and_then(|c| c.maximum_volume_size.as_ref())
        .and_then(|q| q.0.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_tracking_publishes_per_node_and_the_scheduler_uses_it() {
    let cluster = two_nodes(&[
        "node-1:/opt/local-path-provisioner=1Gi",
        "node-2:/opt/local-path-provisioner=4Gi",
    ])
    .await;
    let install = cluster
        .lpp(["install", "--capacity-tracking", "--yes"])
        .await;
    assert_eq!(install.code, 0, "{}", install.stderr);
    for object in [
        "csidriver.storage.k8s.io/local-path.lpp.dev",
        "storageclass.storage.k8s.io/local-path-capacity",
    ] {
        assert!(
            install.stdout.contains(object.rsplit('/').next().unwrap()),
            "{object}: {}",
            install.stdout
        );
    }
    let runner = cluster.spawn_lpp(["run", "--capacity-tracking", "--usage-interval", "1s"]);
    runner.wait_provisioning().await;

    // Published: one per node, what each disk has.
    let items = capacities_until(&cluster, "published for both nodes", |items| {
        max_size_on(items, "node-1").is_some() && max_size_on(items, "node-2").is_some()
    })
    .await;
    let on1 = max_size_on(&items, "node-1").unwrap();
    let on2 = max_size_on(&items, "node-2").unwrap();
    assert!(on1 <= 1 << 30 && on1 > 1000 << 20, "{on1}");
    assert!(on2 <= 4 << 30 && on2 > 4000 << 20, "{on2}");

    // 2Gi: the scheduler (which would pick node-1 first: ties go to the first name) sees that
    // only node-2 has room, and selects it; lpp never has to hand the claim back.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    create(&cluster, claim_of("big", "local-path-capacity", "2Gi")).await;
    start_pod(&cluster, pod_using("user", Some("big"), None)).await;
    let bound = wait_for(&claims, "big", WAIT, is_bound).await;
    assert_eq!(
        bound.metadata.annotations.as_ref().unwrap()["volume.kubernetes.io/selected-node"],
        "node-2"
    );
    let volume = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(cluster.client())
        .get(bound.spec.as_ref().unwrap().volume_name.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        volume.metadata.annotations.as_ref().unwrap()["pv.kubernetes.io/provisioned-by"],
        "local-path.lpp.dev"
    );
    assert_eq!(event_count(&cluster, "big", "ProvisioningFailed").await, 0);
    // Status knows both names: the class and the volume.
    let status = cluster.lpp(["status", "-o", "json"]).await;
    for wanted in [
        "local-path-capacity",
        volume.metadata.name.as_deref().unwrap(),
    ] {
        assert!(
            status.stdout.contains(wanted),
            "{wanted}: {}",
            status.stdout
        );
    }

    // Updated: node-2 promised 2Gi of its 4Gi.
    capacities_until(&cluster, "updated for node-2", |items| {
        max_size_on(items, "node-2").is_some_and(|n| n <= 2 << 30)
    })
    .await;

    // Removed with the class.
    Api::<k8s_openapi::api::storage::v1::StorageClass>::all(cluster.client())
        .delete("local-path-capacity", &Default::default())
        .await
        .unwrap();
    capacities_until(&cluster, "removed", <[_]>::is_empty).await;

    // Uninstall knows the CSIDriver too.
    let uninstall = cluster.lpp(["uninstall", "--yes"]).await;
    assert_eq!(uninstall.code, 0, "{}", uninstall.stderr);
    assert!(
        Api::<k8s_openapi::api::storage::v1::CSIDriver>::all(cluster.client())
            .get_opt("local-path.lpp.dev")
            .await
            .unwrap()
            .is_none(),
        "{}",
        uninstall.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_under_a_budget_counts_what_the_other_volumes_were_promised() {
    let cluster = two_nodes(&["node-1:/opt/local-path-provisioner=3Gi"]).await;
    install_basics(&cluster).await;
    class(
        &cluster,
        "grows",
        json!({"allowVolumeExpansion": true, "parameters": {"capacityBudget": "true"}}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run", "--usage-interval", "0"]);
    crate::run::provisioned(
        &cluster,
        claim_on("data", "grows", Some("node-1"), "ReadWriteOnce").tap_size("2Gi"),
    )
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let ask = |size: &'static str| {
        let claims = claims.clone();
        async move {
            claims
                .patch(
                    "data",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(
                        &json!({"spec": {"resources": {"requests": {"storage": size}}}}),
                    ),
                )
                .await
                .unwrap();
        }
    };
    // 2Gi more: the disk has 3Gi available, but 2Gi of it is promised to this very volume.
    ask("4Gi").await;
    let refused = wait_for(&claims, "data", WAIT, |c| {
        c.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "ControllerResizeError"))
    })
    .await;
    let message = refused
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "ControllerResizeError")
        .and_then(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains("node-1:/opt/local-path-provisioner (capacityBudget"),
        "{message}"
    );
    // 512Mi more fits the room left.
    ask("2560Mi").await;
    wait_for(&claims, "data", WAIT, |c| {
        c.status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .is_some_and(|q| q.0 == "2560Mi")
    })
    .await;
}

/// With helper pods and no `--usage-interval`, `lpp run` does not start a pod per node per
/// minute to measure: it says it skipped the refresh, and no usage pod exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_helper_pods_are_not_started_to_measure() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let runner = cluster.spawn_lpp(["run", "-v"]);
    runner
        .wait_for_log(
            "usage refresh skipped: it would start a helper pod per node",
            WAIT,
        )
        .await;
    let pods = Api::<Pod>::namespaced(cluster.client(), "local-path-storage")
        .list(&ListParams::default())
        .await
        .unwrap();
    let usage: Vec<_> = pods
        .items
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .filter(|n| n.starts_with("lpp-usage-"))
        .collect();
    assert!(usage.is_empty(), "{usage:?}");
}
