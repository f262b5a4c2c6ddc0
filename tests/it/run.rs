//! `lpp run` against the sandbox over HTTP: the real binary provisions and reclaims.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{TestCluster, install_basics, wait_for, wait_gone};

pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) fn claim(name: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                 "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap()
}

/// A pod that writes `hello` into the claim mounted at /data, then idles.
pub(crate) fn pod(name: &str, claim: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                  "command": ["sh", "-c", "echo hi > /data/hello; while true; do sleep 3600; done"],
                  "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
                 "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_provisioned_on_its_node_and_reclaimed_when_deleted() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let runner = cluster.spawn_lpp(["run", "--metrics-addr", &metrics_addr]);
    let client = cluster.client();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    claims
        .create(&PostParams::default(), &claim("data"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("user", "data"))
        .await
        .unwrap();

    let bound = wait_for(&claims, "data", WAIT, is_bound).await;
    let volume_name = bound.spec.unwrap().volume_name.unwrap();
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume = volumes.get(&volume_name).await.unwrap();
    let annotations = volume.metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations["pv.kubernetes.io/provisioned-by"],
        "rancher.io/local-path"
    );
    let node = annotations["local.path.provisioner/selected-node"].clone();
    let path = volume
        .spec
        .as_ref()
        .unwrap()
        .host_path
        .as_ref()
        .unwrap()
        .path
        .clone();
    assert!(
        path.starts_with("/opt/local-path-provisioner/pvc-"),
        "{path}"
    );
    wait_for(&pods, "user", WAIT, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    let on_disk = cluster.node_path(&node, &path);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !on_disk.join("hello").exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            on_disk.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), "local-path-storage");
    let lease = leases.get("rancher.io-local-path").await.unwrap();
    assert!(lease.spec.unwrap().holder_identity.unwrap().contains('/'));

    pods.delete("user", &DeleteParams::default()).await.unwrap();
    wait_gone(&pods, "user", WAIT).await;
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&volumes, &volume_name, WAIT).await;
    assert!(
        !on_disk.exists(),
        "the teardown removed {}",
        on_disk.display()
    );
    let (_, log) = runner.output();
    assert!(log.contains("provisioned default/data"), "{log}");
    let expected = [
        "lpp_provisions_total{result=\"success\"} 1",
        "lpp_deletions_total{result=\"success\"} 1",
        "lpp_provision_duration_seconds_count 1",
        "lpp_deletion_duration_seconds_count 1",
        "lpp_helper_pod_duration_seconds_count{action=\"setup\",result=\"success\"} 1",
        "lpp_helper_pod_duration_seconds_count{action=\"teardown\",result=\"success\"} 1",
        "lpp_operations_in_flight 0",
        "lpp_queue_depth 0",
    ];
    // The reclaim is still under way for a moment after its PV is gone (its helper pod goes
    // next), so the figures are read until they settle.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = http_get(&metrics_addr, "/metrics").await;
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|line| !metrics.lines().any(|l| l == *line))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {missing:?} in\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        http_get(&metrics_addr, "/readyz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(log.contains(&format!("reclaimed {volume_name}")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_setup_script_is_reported_with_its_output_in_seconds() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let client = cluster.client();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "local-path-storage");
    let patch = json!({"data": {"setup": "#!/bin/sh\necho disk full on purpose >&2\nexit 7\n"}});
    maps.patch(
        "local-path-config",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let _runner = cluster.spawn_lpp(["run"]);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    claims
        .create(&PostParams::default(), &claim("broken"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("user", "broken"))
        .await
        .unwrap();
    let asked = std::time::Instant::now();
    let message = event_for(&cluster, "default", "broken", "ProvisioningFailed").await;
    // What the name promises, bounded generously: upstream needs its 120 s timeout.
    assert!(
        asked.elapsed() <= Duration::from_secs(10),
        "reported after {:?}",
        asked.elapsed()
    );
    assert!(message.contains("exit code 7"), "{message}");
    assert!(message.contains("disk full on purpose"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_provision_fifty_claims_with_one_volume_and_directory_each() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let _first = cluster.spawn_lpp(["run"]);
    let _second = cluster.spawn_lpp(["run"]);
    burst(&cluster, 50).await;
    assert_converged(&cluster, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_edit_applies_to_the_next_volume_and_an_invalid_one_keeps_the_last_good() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let runner = cluster.spawn_lpp(["run"]);
    let provision = |name: &'static str| async {
        let claim = claim_on(name, "local-path", Some("node-1"), "ReadWriteOnce");
        volume_path(&provisioned(&cluster, claim).await)
    };
    assert!(
        provision("before")
            .await
            .starts_with("/opt/local-path-provisioner/")
    );

    let valid = r#"{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/data/edited"]}]}"#;
    set_config(&cluster, json!({"config.json": valid})).await;
    assert!(provision("after").await.starts_with("/data/edited/"));

    set_config(&cluster, json!({"config.json": "{ not json"})).await;
    // Reported when the edit is made, with no claim waiting.
    let warning = event_for(
        &cluster,
        "local-path-storage",
        "local-path-config",
        "InvalidConfiguration",
    )
    .await;
    assert!(warning.contains("config.json"), "{warning}");
    assert!(
        provision("invalid").await.starts_with("/data/edited/"),
        "the last good config stays"
    );
    let (_, log) = runner.output();
    assert!(
        log.contains("invalid configuration rejected") && log.contains("the next volumes use it"),
        "{log}"
    );
}

pub(crate) fn is_bound(claim: &PersistentVolumeClaim) -> bool {
    claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

/// A plain HTTP/1.1 GET, whole answer as text.
pub(crate) async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let talk = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    };
    tokio::time::timeout(Duration::from_secs(10), talk)
        .await
        .expect("the metrics server answers")
}

pub(crate) async fn class(cluster: &TestCluster, name: &str, extra: serde_json::Value) {
    let mut object = json!({"metadata": {"name": name}, "provisioner": "rancher.io/local-path",
                            "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"});
    for (k, v) in extra.as_object().unwrap() {
        if k == "annotations" {
            object["metadata"]["annotations"] = v.clone();
        } else {
            object[k] = v.clone();
        }
    }
    let class: k8s_openapi::api::storage::v1::StorageClass =
        serde_json::from_value(object).unwrap();
    Api::all(cluster.client())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
}

pub(crate) fn claim_on(
    name: &str,
    class: &str,
    node: Option<&str>,
    mode: &str,
) -> PersistentVolumeClaim {
    let mut c = claim(name);
    let spec = c.spec.as_mut().unwrap();
    spec.storage_class_name = Some(class.into());
    spec.access_modes = Some(vec![mode.into()]);
    if let Some(node) = node {
        c.metadata.annotations = Some(
            [(
                "volume.kubernetes.io/selected-node".to_owned(),
                node.to_owned(),
            )]
            .into(),
        );
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_parameters_of_upstream_are_honoured_and_a_traversal_is_refused() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    class(
        &cluster,
        "local-type",
        json!({"annotations": {"defaultVolumeType": "local"}}),
    )
    .await;
    class(
        &cluster,
        "escape",
        json!({"parameters": {"pathPattern": "../../etc/{{ .PVC.Name }}"}}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run"]);
    create(
        &cluster,
        claim_on("e", "escape", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let volume = provisioned(
        &cluster,
        claim_on("l", "local-type", Some("node-2"), "ReadWriteOnce"),
    )
    .await;
    let spec = volume.spec.unwrap();
    assert!(
        spec.local.is_some() && spec.host_path.is_none(),
        "a local volume"
    );
    let refusal = event_for(&cluster, "default", "e", "ProvisioningFailed").await;
    assert!(refusal.contains("pathPattern"), "{refusal}");
    assert!(
        !cluster.node_path("node-1", "/etc/e").exists(),
        "nothing made outside the base"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_filesystem_serves_read_write_many_with_immediate_binding() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    set_config(
        &cluster,
        json!({"config.json": r#"{"sharedFileSystemPath": "/mnt/shared"}"#}),
    )
    .await;
    class(
        &cluster,
        "shared",
        json!({"volumeBindingMode": "Immediate"}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run"]);
    let volume = provisioned(&cluster, claim_on("s", "shared", None, "ReadWriteMany")).await;
    let spec = volume.spec.unwrap();
    assert!(
        spec.node_affinity.is_none(),
        "no node affinity on a shared filesystem"
    );
    assert!(spec.host_path.unwrap().path.starts_with("/mnt/shared/"));
}

/// The real race: two runs without leader election work on one burst at once, and still make
/// one volume and one directory per claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_without_leader_election_race_and_still_make_one_volume_per_claim() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let first = cluster.spawn_lpp(["run", "--no-leader-election"]);
    let second = cluster.spawn_lpp(["run", "--no-leader-election"]);
    burst(&cluster, 30).await;
    assert_converged(&cluster, 30).await;
    // Both did work: each logged provisioned lines (a run that only waited would not).
    for (which, run) in [("first", &first), ("second", &second)] {
        let log = run.output().1;
        assert!(
            log.contains("provisioned default/c"),
            "{which} did nothing:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_burst_and_a_restart_converge_to_one_volume_and_directory_per_claim() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    // Half the setups take a while (claims c10..c19), so that the run is surely killed with
    // work in flight: some volumes made, helpers of the others still running.
    set_config(
        &cluster,
        json!({"setup": "#!/bin/sh\nset -eu\ncase \"$VOL_DIR\" in *_c1[0-9]) sleep 5;; esac\nmkdir -m 0777 -p \"$VOL_DIR\"\n"}),
    )
    .await;
    let first = cluster.spawn_lpp(["run", "--no-leader-election"]);
    burst(&cluster, 20).await;
    // Kill only once work is in flight: some volumes made, some not, helper pods running.
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let made = volumes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        let helpers = pods.list(&ListParams::default()).await.unwrap().items.len();
        if made > 0 && made < 20 && helpers > 0 {
            break;
        }
        assert!(
            made < 20 && tokio::time::Instant::now() < deadline,
            "never caught in flight: {made} volumes, {helpers} helper pods"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop(); // SIGKILL, mid-burst
    let _second = cluster.spawn_lpp(["run", "--no-leader-election"]);
    assert_converged(&cluster, 20).await;
}

/// Creates claims `c0`..`c<count>` that already carry a selected node (as after scheduling, so
/// they need no pods), alternating between the two nodes.
pub(crate) async fn burst(cluster: &TestCluster, count: usize) {
    for i in 0..count {
        let node = if i % 2 == 0 { "node-1" } else { "node-2" };
        let claim = claim_on(&format!("c{i}"), "local-path", Some(node), "ReadWriteOnce");
        create(cluster, claim).await;
    }
}

/// Claims `c0`..`c<count>` all Bound, exactly `count` PVs, exactly `count` directories over both
/// nodes' default base path, and no helper pod left.
pub(crate) async fn assert_converged(cluster: &TestCluster, count: usize) {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    for i in 0..count {
        wait_for(&claims, &format!("c{i}"), WAIT, is_bound).await;
    }
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    let listed = volumes.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), count, "one PV per claim");
    let dirs: usize = ["node-1", "node-2"]
        .iter()
        .map(|n| {
            std::fs::read_dir(cluster.node_path(n, "/opt/local-path-provisioner"))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(dirs, count, "one directory per volume");
    helper_pods_until(cluster, "none is left", Vec::is_empty).await;
}

/// Waits until the helper pods in the provisioner namespace satisfy `cond`.
pub(crate) async fn helper_pods_until(
    cluster: &TestCluster,
    what: &str,
    cond: fn(&Vec<Pod>) -> bool,
) {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    let deadline = tokio::time::Instant::now() + WAIT;
    let helpers = ListParams::default().labels(lpp::provision::helper_pod::HELPER_SELECTOR);
    while !cond(&pods.list(&helpers).await.unwrap().items) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "helper pods: waited in vain until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The message of the first `reason` event on `namespace/name`, waiting up to 30 s for it.
pub(crate) async fn event_for(
    cluster: &TestCluster,
    namespace: &str,
    name: &str,
    reason: &str,
) -> String {
    let events: Api<Event> = Api::namespaced(cluster.client(), namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .unwrap();
        if let Some(event) = list
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some(reason))
        {
            return event.message.clone().unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} event on {namespace}/{name}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn create(cluster: &TestCluster, claim: PersistentVolumeClaim) {
    Api::<PersistentVolumeClaim>::namespaced(cluster.client(), "default")
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();
}

/// Creates `claim` in `default`, waits until it is Bound and returns its PV.
pub(crate) async fn provisioned(
    cluster: &TestCluster,
    claim: PersistentVolumeClaim,
) -> PersistentVolume {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let name = claim.metadata.name.clone().unwrap();
    create(cluster, claim).await;
    let bound = wait_for(&claims, &name, WAIT, is_bound).await;
    Api::<PersistentVolume>::all(cluster.client())
        .get(&bound.spec.unwrap().volume_name.unwrap())
        .await
        .unwrap()
}

/// The host path of a hostPath or local PV.
pub(crate) fn volume_path(volume: &PersistentVolume) -> String {
    let spec = volume.spec.as_ref().unwrap();
    match (&spec.host_path, &spec.local) {
        (Some(h), _) => h.path.clone(),
        (None, Some(l)) => l.path.clone(),
        (None, None) => panic!("neither hostPath nor local: {spec:?}"),
    }
}

pub(crate) async fn set_config(cluster: &TestCluster, data: serde_json::Value) {
    Api::<ConfigMap>::namespaced(cluster.client(), "local-path-storage")
        .patch(
            "local-path-config",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "data": data })),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_volume_and_its_directory_after_the_claim_is_gone() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    class(&cluster, "keep", json!({"reclaimPolicy": "Retain"})).await;
    let runner = cluster.spawn_lpp(["run", "-v"]);
    let volume = provisioned(
        &cluster,
        claim_on("kept", "keep", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let name = volume.metadata.name.clone().unwrap();
    assert_eq!(
        volume
            .spec
            .as_ref()
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Retain")
    );
    let on_disk = cluster.node_path("node-1", &volume_path(&volume));
    assert!(on_disk.is_dir(), "{} was made", on_disk.display());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    claims
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    wait_for(&volumes, &name, WAIT, |v| {
        v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released")
    })
    .await;
    // The positive signal: the run looked at the Released volume and decided to keep it.
    runner.wait_for_log(&format!("volume {name}"), WAIT).await;
    runner.wait_for_log("reclaim decision: Retain", WAIT).await;
    assert!(
        volumes.get_opt(&name).await.unwrap().is_some(),
        "the PV stays"
    );
    assert!(on_disk.is_dir(), "the data stays");
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no teardown helper ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_path_the_volume_type_annotation_and_a_selector_refused() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    set_config(
        &cluster,
        json!({"config.json": r#"{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES",
            "paths":["/opt/local-path-provisioner","/mnt/second"]}]}"#}),
    )
    .await;
    class(
        &cluster,
        "pinned",
        json!({"parameters": {"nodePath": "/mnt/second"}}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run"]);
    for i in 0..4 {
        let node = if i % 2 == 0 { "node-1" } else { "node-2" };
        let volume = provisioned(
            &cluster,
            claim_on(&format!("p{i}"), "pinned", Some(node), "ReadWriteOnce"),
        )
        .await;
        let path = volume_path(&volume);
        assert!(path.starts_with("/mnt/second/pvc-"), "{path}");
        assert!(cluster.node_path(node, &path).is_dir(), "{path} on {node}");
    }

    let mut local = claim_on("typed", "local-path", Some("node-2"), "ReadWriteOnce");
    local
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("volumeType".into(), "local".into());
    let volume = provisioned(&cluster, local).await;
    let spec = volume.spec.as_ref().unwrap();
    assert!(
        spec.local.is_some() && spec.host_path.is_none(),
        "the claim's volumeType wins over the class default: {spec:?}"
    );

    let mut selective = claim_on("picky", "local-path", Some("node-1"), "ReadWriteOnce");
    selective.spec.as_mut().unwrap().selector =
        Some(serde_json::from_value(json!({"matchLabels": {"disk": "ssd"}})).unwrap());
    create(&cluster, selective).await;
    let refusal = event_for(&cluster, "default", "picky", "ProvisioningFailed").await;
    assert!(refusal.contains("spec.selector"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_class_configs_serve_two_classes_each_from_its_own_paths_and_no_other() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    set_config(
        &cluster,
        json!({"config.json": r#"{"storageClassConfigs":{
            "fast":{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/mnt/fast"]}]},
            "slow":{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/mnt/slow"]}]}}}"#}),
    )
    .await;
    class(&cluster, "fast", json!({})).await;
    class(&cluster, "slow", json!({})).await;
    let _runner = cluster.spawn_lpp(["run"]);
    for (claim, class, node) in [("f", "fast", "node-1"), ("s", "slow", "node-2")] {
        let volume = provisioned(
            &cluster,
            claim_on(claim, class, Some(node), "ReadWriteOnce"),
        )
        .await;
        let path = volume_path(&volume);
        assert!(path.starts_with(&format!("/mnt/{class}/pvc-")), "{path}");
        assert!(cluster.node_path(node, &path).is_dir(), "{path} on {node}");
        assert_eq!(
            volume.spec.as_ref().unwrap().storage_class_name.as_deref(),
            Some(class)
        );
    }
    create(
        &cluster,
        claim_on("other", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let refusal = event_for(&cluster, "default", "other", "ProvisioningFailed").await;
    assert!(refusal.contains("local-path"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_operation_under_way_finish_releases_the_lease_and_exits_0() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    // A setup that takes a second, so the operation is under way when the signal comes.
    set_config(
        &cluster,
        json!({"setup": "#!/bin/sh\nset -eu\nsleep 1\nmkdir -m 0777 -p \"$VOL_DIR\"\n"}),
    )
    .await;
    let runner = cluster.spawn_lpp(["run", "--log-format", "json"]);
    let leases: Api<Lease> = Api::namespaced(cluster.client(), "local-path-storage");
    wait_for(&leases, "rancher.io-local-path", WAIT, |l| {
        l.spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            .is_some_and(|h| !h.is_empty())
    })
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    create(
        &cluster,
        claim_on("late", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    helper_pods_until(&cluster, "one runs", |pods| !pods.is_empty()).await;

    let finished = runner.terminate(Duration::from_secs(30));
    assert_eq!(finished.code, 0, "{}", finished.stderr);
    let bound = claims.get("late").await.unwrap();
    assert!(
        bound.spec.unwrap().volume_name.is_some(),
        "the operation under way finished before the exit"
    );
    let lease = leases.get("rancher.io-local-path").await.unwrap();
    assert_eq!(
        lease
            .spec
            .unwrap()
            .holder_identity
            .filter(|h| !h.is_empty()),
        None,
        "the Lease was given back"
    );
    let lines: Vec<serde_json::Value> = finished
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let provisioned = lines
        .iter()
        .find(|l| l["action"] == "provisioned")
        .unwrap_or_else(|| panic!("no provisioned line: {lines:?}"));
    assert_eq!(provisioned["object"], "default/late");
    assert_eq!(provisioned["node"], "node-1");
    assert!(
        provisioned["seconds"].as_f64().unwrap() >= 1.0,
        "{provisioned}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("letting 1 operations under way finish"))),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l["message"] == "released the Lease"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helpers_that_cannot_start_are_reported_in_seconds_image_admission_scheduling() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;

    // An image that cannot be pulled; this also shows --helper-image is what runs.
    let runner = cluster.spawn_lpp(["run", "--helper-image", "registry.invalid/busybox:1"]);
    create(
        &cluster,
        claim_on("image", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let cause = event_for(&cluster, "default", "image", "ProvisioningFailed").await;
    assert!(
        cause.contains("ErrImagePull") || cause.contains("ImagePullBackOff"),
        "{cause}"
    );
    // Its retry waits for a delay: SIGTERM hands it back at once and gives the Lease up.
    let stopped = runner.terminate(Duration::from_secs(30));
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);

    // Pod Security refuses the helper pod's hostPath volume.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client());
    let label = |level: Option<&str>| json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": level}}});
    namespaces
        .patch(
            "local-path-storage",
            &PatchParams::default(),
            &Patch::Merge(&label(Some("restricted"))),
        )
        .await
        .unwrap();
    let _runner = cluster.spawn_lpp(["run"]);
    create(
        &cluster,
        claim_on("admission", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let cause = event_for(&cluster, "default", "admission", "ProvisioningFailed").await;
    assert!(
        cause.contains("helper-pod-create-")
            && cause.contains("PodSecurity")
            && cause.contains("enforce=privileged"),
        "{cause}"
    );
    namespaces
        .patch(
            "local-path-storage",
            &PatchParams::default(),
            &Patch::Merge(&label(None)),
        )
        .await
        .unwrap();

    // A shared filesystem's helper goes through the scheduler; cordoned nodes take nothing.
    set_config(
        &cluster,
        json!({"config.json": r#"{"sharedFileSystemPath": "/mnt/shared"}"#}),
    )
    .await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client());
    for node in ["node-1", "node-2"] {
        nodes
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"unschedulable": true}})),
            )
            .await
            .unwrap();
    }
    class(
        &cluster,
        "shared",
        json!({"volumeBindingMode": "Immediate"}),
    )
    .await;
    create(
        &cluster,
        claim_on("scheduling", "shared", None, "ReadWriteMany"),
    )
    .await;
    let cause = event_for(&cluster, "default", "scheduling", "ProvisioningFailed").await;
    assert!(
        cause.contains("cannot be scheduled") && cause.contains("unschedulable"),
        "{cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_config_files_replace_the_config_map_and_bad_ones_stop_the_start() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    Api::<ConfigMap>::namespaced(cluster.client(), "local-path-storage")
        .delete("local-path-config", &DeleteParams::default())
        .await
        .unwrap();
    let write = |name: &str, text: &str| {
        let path = cluster.dir().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    // Keys in any case, as Go's encoding/json accepts them and upstream configs rely on.
    let config = write(
        "config.json",
        r#"{"NodePathMap":[{"NODE":"DEFAULT_PATH_FOR_NON_LISTED_NODES","Paths":["/srv/files"]}]}"#,
    );
    let template = write(
        "helperPod.yaml",
        &lpp::config::default_helper_pod_yaml("busybox"),
    );

    for (args, names) in [
        (
            vec!["--config", "/nonexistent/config.json"],
            "--config /nonexistent/config.json",
        ),
        (
            vec![
                "--config",
                &write(
                    "bad.json",
                    r#"{"nodePathMap":[{"node":"n","paths":["/"]}]}"#,
                ),
            ],
            "bad.json",
        ),
        (
            vec![
                "--helper-pod-file",
                &write(
                    "unsafe.yaml",
                    "spec:\n  hostNetwork: true\n  containers:\n  - name: helper-pod\n    image: busybox\n",
                ),
            ],
            "--allow-unsafe-helper-pod-template",
        ),
    ] {
        let refused = cluster.lpp([&["run"][..], &args].concat()).await;
        assert_eq!(refused.code, 2, "{args:?}: {}", refused.stderr);
        assert!(
            refused.stderr.contains(names),
            "{args:?}: {}",
            refused.stderr
        );
        assert_eq!(
            refused.stderr.trim().lines().count(),
            1,
            "one line: {}",
            refused.stderr
        );
    }

    let _runner = cluster.spawn_lpp(["run", "--config", &config, "--helper-pod-file", &template]);
    let volume = provisioned(
        &cluster,
        claim_on("filed", "local-path", Some("node-2"), "ReadWriteOnce"),
    )
    .await;
    let path = volume_path(&volume);
    assert!(path.starts_with("/srv/files/pvc-"), "{path}");
    assert!(cluster.node_path("node-2", &path).is_dir(), "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_patterns_an_affinity_key_and_immediate_binding_with_a_hand_set_node() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    set_config(
        &cluster,
        json!({"setup": "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\nprintf '%s:%s:%s' \"$VOL_USER\" \"$VOL_GROUP\" \"$VOL_PERM\" > \"$VOL_DIR/ids\"\n"}),
    )
    .await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client());
    nodes
        .patch(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"lpp.test/host": "h1"}}})),
        )
        .await
        .unwrap();
    class(
        &cluster,
        "owned",
        json!({"volumeBindingMode": "Immediate",
               "parameters": {"nodeAffinityKey": "lpp.test/host",
                              "userPattern": "{{ .PVC.Labels.uid }}",
                              "permPattern": "0750"},
               "annotations": {"groupPattern": "2000"}}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run"]);
    let mut owned = claim_on("owned", "owned", Some("node-1"), "ReadWriteOnce");
    owned.metadata.labels = Some([("uid".to_owned(), "1001".to_owned())].into());
    let volume = provisioned(&cluster, owned).await;
    let affinity = serde_json::to_value(&volume.spec.as_ref().unwrap().node_affinity).unwrap();
    let term = &affinity["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(
        term,
        &json!({"key": "lpp.test/host", "operator": "In", "values": ["h1"]})
    );
    let ids = cluster
        .node_path("node-1", &volume_path(&volume))
        .join("ids");
    assert_eq!(std::fs::read_to_string(&ids).unwrap(), "1001:2000:0750");
    // Reclaim goes by the node the directory was made on, not by the affinity value ("h1").
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    claims
        .delete("owned", &DeleteParams::default())
        .await
        .unwrap();
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    wait_gone(&volumes, &volume.metadata.name.clone().unwrap(), WAIT).await;
    assert!(!ids.exists(), "the teardown ran on node-1");

    create(
        &cluster,
        claim_on("nowhere", "owned", None, "ReadWriteOnce"),
    )
    .await;
    let refusal = event_for(&cluster, "default", "nowhere", "ProvisioningFailed").await;
    assert!(refusal.contains("WaitForFirstConsumer"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_whose_node_is_gone_is_deleted_with_a_warning_and_blocks_nothing() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let _runner = cluster.spawn_lpp(["run"]);
    let volume = provisioned(
        &cluster,
        claim_on("stranded", "local-path", Some("node-2"), "ReadWriteOnce"),
    )
    .await;
    let name = volume.metadata.name.clone().unwrap();
    let path = volume_path(&volume);
    Api::<k8s_openapi::api::core::v1::Node>::all(cluster.client())
        .delete("node-2", &DeleteParams::default())
        .await
        .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(cluster.client(), "default")
        .delete("stranded", &DeleteParams::default())
        .await
        .unwrap();
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    wait_gone(&volumes, &name, WAIT).await;
    let warning = event_for(&cluster, "default", &name, "VolumeFailedDelete").await;
    assert!(
        warning.contains("node-2") && warning.contains(&path),
        "names the node and the directory left: {warning}"
    );
    let next = provisioned(
        &cluster,
        claim_on("next", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    assert!(cluster.node_path("node-1", &volume_path(&next)).is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_without_the_permissions_is_told_all_that_is_missing_at_once() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let restricted = cluster.kubeconfig_as("jane", &[]);
    let out = cluster
        .lpp(["--kubeconfig", restricted.to_str().unwrap(), "run"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    for missing in [
        "watch persistentvolumeclaims",
        "create persistentvolumes",
        "create pods in local-path-storage",
        "update leases in local-path-storage",
        "lpp install",
    ] {
        assert!(out.stderr.contains(missing), "{missing}: {}", out.stderr);
    }

    // A role that lacks only the Lease's `create` is told so at start, not found by a loop.
    let installed = cluster.lpp(["install", "--yes"]).await;
    assert_eq!(installed.code, 0, "{installed:?}");
    let roles: Api<k8s_openapi::api::rbac::v1::Role> =
        Api::namespaced(cluster.client(), "local-path-storage");
    let mut role = roles.get("local-path-provisioner-role").await.unwrap();
    for rule in role.rules.iter_mut().flatten() {
        if rule.resources.iter().flatten().any(|r| r == "leases") {
            rule.verbs.retain(|v| v != "create");
        }
    }
    roles
        .replace("local-path-provisioner-role", &PostParams::default(), &role)
        .await
        .unwrap();
    let account = cluster.kubeconfig_as(
        "system:serviceaccount:local-path-storage:local-path-provisioner-service-account",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:local-path-storage",
        ],
    );
    let out = cluster
        .lpp(["--kubeconfig", account.to_str().unwrap(), "run"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("create leases in local-path-storage")
            && !out.stderr.contains("update leases"),
        "{}",
        out.stderr
    );

    // The service account `lpp install` sets up has all it needs.
    let installed = cluster.lpp(["install", "--yes"]).await;
    assert_eq!(installed.code, 0, "{installed:?}");
    let account = cluster.kubeconfig_as(
        "system:serviceaccount:local-path-storage:local-path-provisioner-service-account",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:local-path-storage",
        ],
    );
    let _runner = cluster.spawn_lpp(["--kubeconfig", account.to_str().unwrap(), "run"]);
    let volume = provisioned(
        &cluster,
        claim_on("as-sa", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    assert!(cluster.node_path("node-1", &volume_path(&volume)).is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_keeps_failing_is_given_up_after_the_retry_count() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    set_config(
        &cluster,
        json!({"setup": "#!/bin/sh\necho no room >&2\nexit 3\n"}),
    )
    .await;
    let runner = cluster.spawn_lpp(["run", "--provisioning-retry-count", "1"]);
    create(
        &cluster,
        claim_on("doomed", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !runner.output().1.contains("giving up after 2 attempts") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never gave up: {}",
            runner.output().1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events: Api<Event> = Api::namespaced(cluster.client(), "default");
    let failures = |list: Vec<Event>| {
        list.iter()
            .filter(|e| e.reason.as_deref() == Some("ProvisioningFailed"))
            .map(|e| e.count.unwrap_or(1))
            .sum::<i32>()
    };
    let seen = ListParams::default().fields("involvedObject.name=doomed");
    assert_eq!(
        failures(events.list(&seen).await.unwrap().items),
        2,
        "one event per attempt"
    );
    let bad = cluster
        .lpp(["run", "--provisioning-retry-count", "many"])
        .await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr.contains("--provisioning-retry-count"),
        "{}",
        bad.stderr
    );
}
