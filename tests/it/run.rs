//! `lpp run` against the sandbox over HTTP: the real binary provisions and reclaims.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{TestCluster, install_basics, wait_for, wait_gone};

const WAIT: Duration = Duration::from_secs(60);

fn claim(name: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                 "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap()
}

fn pod(name: &str, claim: &str) -> Pod {
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

    let bound = wait_for(&claims, "data", WAIT, |c| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await;
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
    let metrics = http_get(&metrics_addr, "/metrics").await;
    assert!(
        metrics.contains("lpp_provisions_total{result=\"success\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lpp_deletions_total{result=\"success\"} 1"),
        "{metrics}"
    );
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
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=broken"))
            .await
            .unwrap();
        let failed = list
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("ProvisioningFailed"));
        if let Some(event) = failed {
            let message = event.message.clone().unwrap_or_default();
            assert!(message.contains("exit code 7"), "{message}");
            assert!(message.contains("disk full on purpose"), "{message}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ProvisioningFailed: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_provision_fifty_claims_with_one_volume_and_directory_each() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let _first = cluster.spawn_lpp(["run"]);
    let _second = cluster.spawn_lpp(["run"]);
    let client = cluster.client();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    // Claims that already carry a selected node (as after scheduling) need no pods.
    for i in 0..50 {
        let mut c = claim(&format!("c{i}"));
        let node = if i % 2 == 0 { "node-1" } else { "node-2" };
        c.metadata.annotations = Some(
            [(
                "volume.kubernetes.io/selected-node".to_owned(),
                node.to_owned(),
            )]
            .into(),
        );
        claims.create(&PostParams::default(), &c).await.unwrap();
    }
    for i in 0..50 {
        wait_for(&claims, &format!("c{i}"), WAIT, |c| {
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        })
        .await;
    }
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    assert_eq!(
        volumes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        50
    );
    assert_converged(&cluster, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_edit_applies_to_the_next_volume_and_an_invalid_one_keeps_the_last_good() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let _runner = cluster.spawn_lpp(["run"]);
    let client = cluster.client();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "local-path-storage");
    let provision = |name: &'static str| {
        let claims = claims.clone();
        let volumes = volumes.clone();
        async move {
            let mut c = claim(name);
            c.metadata.annotations = Some(
                [(
                    "volume.kubernetes.io/selected-node".to_owned(),
                    "node-1".to_owned(),
                )]
                .into(),
            );
            claims.create(&PostParams::default(), &c).await.unwrap();
            let bound = wait_for(&claims, name, WAIT, |c| {
                c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
            })
            .await;
            let pv = volumes
                .get(&bound.spec.unwrap().volume_name.unwrap())
                .await
                .unwrap();
            pv.spec.unwrap().host_path.unwrap().path
        }
    };
    assert!(
        provision("before")
            .await
            .starts_with("/opt/local-path-provisioner/")
    );

    let edit = |config: &str| json!({"data": {"config.json": config}});
    let valid = r#"{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/data/edited"]}]}"#;
    maps.patch(
        "local-path-config",
        &PatchParams::default(),
        &Patch::Merge(&edit(valid)),
    )
    .await
    .unwrap();
    assert!(provision("after").await.starts_with("/data/edited/"));

    maps.patch(
        "local-path-config",
        &PatchParams::default(),
        &Patch::Merge(&edit("{ not json")),
    )
    .await
    .unwrap();
    assert!(
        provision("invalid").await.starts_with("/data/edited/"),
        "the last good config stays"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "local-path-storage");
    let list = events
        .list(&ListParams::default().fields("involvedObject.name=local-path-config"))
        .await
        .unwrap();
    let warning = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("InvalidConfiguration"))
        .unwrap_or_else(|| panic!("no InvalidConfiguration event: {list:?}"));
    assert!(
        warning.message.as_deref().unwrap().contains("config.json"),
        "{warning:?}"
    );
}

/// A plain HTTP/1.1 GET, whole answer as text.
async fn http_get(addr: &str, path: &str) -> String {
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

async fn class(cluster: &TestCluster, name: &str, extra: serde_json::Value) {
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

fn claim_on(name: &str, class: &str, node: Option<&str>, mode: &str) -> PersistentVolumeClaim {
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
    let client = cluster.client();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    claims
        .create(
            &PostParams::default(),
            &claim_on("l", "local-type", Some("node-2"), "ReadWriteOnce"),
        )
        .await
        .unwrap();
    claims
        .create(
            &PostParams::default(),
            &claim_on("e", "escape", Some("node-1"), "ReadWriteOnce"),
        )
        .await
        .unwrap();
    let bound = wait_for(&claims, "l", WAIT, |c| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume = volumes
        .get(&bound.spec.unwrap().volume_name.unwrap())
        .await
        .unwrap();
    let spec = volume.spec.unwrap();
    assert!(
        spec.local.is_some() && spec.host_path.is_none(),
        "a local volume"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=e"))
            .await
            .unwrap();
        if let Some(e) = list
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("ProvisioningFailed"))
        {
            assert!(
                e.message.as_deref().unwrap_or("").contains("pathPattern"),
                "{e:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refusal: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !cluster.node_path("node-1", "/etc/e").exists(),
        "nothing made outside the base"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_filesystem_serves_read_write_many_with_immediate_binding() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), "local-path-storage");
    let shared = json!({"data": {"config.json": r#"{"sharedFileSystemPath": "/mnt/shared"}"#}});
    maps.patch(
        "local-path-config",
        &PatchParams::default(),
        &Patch::Merge(&shared),
    )
    .await
    .unwrap();
    class(
        &cluster,
        "shared",
        json!({"volumeBindingMode": "Immediate"}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run"]);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    claims
        .create(
            &PostParams::default(),
            &claim_on("s", "shared", None, "ReadWriteMany"),
        )
        .await
        .unwrap();
    let bound = wait_for(&claims, "s", WAIT, |c| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await;
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    let volume = volumes
        .get(&bound.spec.unwrap().volume_name.unwrap())
        .await
        .unwrap();
    let spec = volume.spec.unwrap();
    assert!(
        spec.node_affinity.is_none(),
        "no node affinity on a shared filesystem"
    );
    assert!(spec.host_path.unwrap().path.starts_with("/mnt/shared/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_burst_and_a_restart_converge_to_one_volume_and_directory_per_claim() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let first = cluster.spawn_lpp(["run", "--no-leader-election"]);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    for i in 0..20 {
        let node = if i % 2 == 0 { "node-1" } else { "node-2" };
        claims
            .create(
                &PostParams::default(),
                &claim_on(&format!("k{i}"), "local-path", Some(node), "ReadWriteOnce"),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    first.stop(); // SIGKILL, mid-burst
    let _second = cluster.spawn_lpp(["run", "--no-leader-election"]);
    for i in 0..20 {
        wait_for(&claims, &format!("k{i}"), WAIT, |c| {
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        })
        .await;
    }
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    assert_eq!(
        volumes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        20
    );
    assert_converged(&cluster, 20).await;
}

/// Exactly `count` directories over both nodes' default base path, and no helper pod left.
async fn assert_converged(cluster: &TestCluster, count: usize) {
    let dirs: usize = ["node-1", "node-2"]
        .iter()
        .map(|n| {
            std::fs::read_dir(cluster.node_path(n, "/opt/local-path-provisioner"))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(dirs, count, "one directory per volume");
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "helper pods left behind"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
