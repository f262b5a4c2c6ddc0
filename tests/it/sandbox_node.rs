//! The sandbox's nodes over HTTP: the kubelet runs helper pods on their node with the host path
//! mapped, confines containers to their own root, reports failures with their termination
//! message, serves logs; the PV controller and the scheduler run the WaitForFirstConsumer dance;
//! image pulls fail realistically; pods on missing nodes are collected; a NotReady node stops
//! its pods.

use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Node, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::{TestCluster, wait_for, wait_gone};

const DEADLINE: Duration = Duration::from_secs(30);

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn terminated(p: &Pod) -> Value {
    serde_json::to_value(p).unwrap()["status"]["containerStatuses"][0]["state"]["terminated"]
        .clone()
}

async fn setup_scripts(c: &TestCluster) {
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.client());
    let _ = ns
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "local-path-storage"}})),
        )
        .await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "local-path-storage");
    cms.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "local-path-config"},
            "data": {"setup": "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\necho created \"$VOL_DIR\"\n",
                     "teardown": "#!/bin/sh\necho cannot remove \"$VOL_DIR\"\necho 'rm: Permission denied' >&2\nexit 7\n"}})),
    )
    .await
    .unwrap();
}

fn helper_pod(name: &str, node: &str, action: &str, vol_dir: &str) -> Pod {
    from(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [{
                "name": "helper-pod", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", format!("/script/{action}")],
                "args": ["-p", vol_dir, "-s", "134217728", "-m", "Filesystem", "-a", action],
                "env": [{"name": "VOL_DIR", "value": vol_dir}, {"name": "VOL_MODE", "value": "Filesystem"}],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "data", "mountPath": "/opt/local-path-provisioner/"},
                                 {"name": "script", "mountPath": "/script"}]
            }],
            "volumes": [
                {"name": "data", "hostPath": {"path": "/opt/local-path-provisioner/", "type": "DirectoryOrCreate"}},
                {"name": "script", "configMap": {"name": "local-path-config",
                    "items": [{"key": "setup", "path": "setup"}, {"key": "teardown", "path": "teardown"}]}}
            ]
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_pods_run_on_their_node_and_fail_with_their_output_as_message() {
    let c = TestCluster::start().await;
    setup_scripts(&c).await;
    let pods: Api<Pod> = Api::namespaced(c.client(), "local-path-storage");
    let vol = "/opt/local-path-provisioner/pvc-1_default_data";

    pods.create(
        &PostParams::default(),
        &helper_pod("helper-pod-create-pvc-1", "node-2", "setup", vol),
    )
    .await
    .unwrap();
    let pod = wait_for(&pods, "helper-pod-create-pvc-1", DEADLINE, |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    assert_eq!(phase(&pod), "Succeeded", "{pod:#?}");
    assert_eq!(terminated(&pod)["reason"], "Completed");
    assert!(c.node_path("node-2", vol).is_dir());
    assert!(!c.node_path("node-1", vol).exists());
    let logs = pods
        .logs("helper-pod-create-pvc-1", &LogParams::default())
        .await
        .unwrap();
    assert_eq!(
        logs,
        format!("created {vol}\n"),
        "logs read with container paths"
    );

    pods.create(
        &PostParams::default(),
        &helper_pod("helper-pod-delete-pvc-1", "node-2", "teardown", vol),
    )
    .await
    .unwrap();
    let pod = wait_for(&pods, "helper-pod-delete-pvc-1", DEADLINE, |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    assert_eq!(phase(&pod), "Failed");
    let t = terminated(&pod);
    assert_eq!(t["exitCode"], 7);
    assert_eq!(t["reason"], "Error");
    assert_eq!(
        t["message"],
        format!("cannot remove {vol}\nrm: Permission denied\n")
    );

    // The kubelet finishes a graceful deletion of a finished pod at once.
    pods.delete("helper-pod-delete-pvc-1", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "helper-pod-delete-pvc-1", DEADLINE).await;
    // ... and cleans its pod directory up, leaving the node paths alone.
    let uid = pod.metadata.uid.clone().unwrap();
    let pod_dir = c.node_path("node-2", &format!("/var/lib/kubelet/pods/{uid}"));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while pod_dir.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} stays",
            pod_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(c.node_path("node-2", vol).is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_waits_for_its_first_consumer_then_binds_and_the_pod_runs_on_the_volume_node() {
    let c = TestCluster::start().await;
    let classes: Api<StorageClass> = Api::all(c.client());
    classes
        .create(
            &PostParams::default(),
            &from(
                json!({"metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
                         "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"}),
            ),
        )
        .await
        .unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client(), "default");
    claims
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "local-path-pvc"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                         "resources": {"requests": {"storage": "128Mi"}}}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    pods.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "volume-test"},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "volume-test", "image": "busybox",
                                     "command": ["sh", "-c", "echo started; while true; do sleep 3600; done"],
                                     "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
                     "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "local-path-pvc"}}]}})),
    )
    .await
    .unwrap();

    let selected = "volume.kubernetes.io/selected-node";
    let claim = wait_for(&claims, "local-path-pvc", DEADLINE, |pvc| {
        let a = pvc.metadata.annotations.clone().unwrap_or_default();
        a.contains_key(selected)
            && a.get("volume.kubernetes.io/storage-provisioner")
                .map(String::as_str)
                == Some("rancher.io/local-path")
    })
    .await;
    let node = claim.metadata.annotations.clone().unwrap_or_default()[selected].clone();
    assert_eq!(
        claim.metadata.finalizers,
        Some(vec!["kubernetes.io/pvc-protection".to_string()])
    );
    let pending = pods.get("volume-test").await.unwrap();
    assert!(
        pending.spec.as_ref().unwrap().node_name.is_none(),
        "the pod waits for its claim to be bound"
    );

    // The provisioner's part: a volume on the selected node pointing at the claim.
    let path = "/opt/local-path-provisioner/pvc-x_default_local-path-pvc";
    let volumes: Api<PersistentVolume> = Api::all(c.client());
    volumes
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "pvc-x"},
                "spec": {"capacity": {"storage": "128Mi"}, "accessModes": ["ReadWriteOnce"],
                         "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-path",
                         "hostPath": {"path": path, "type": "DirectoryOrCreate"},
                         "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "default",
                                      "name": "local-path-pvc", "uid": claim.metadata.uid},
                         "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                             {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})),
        )
        .await
        .unwrap();
    let claim = wait_for(&claims, "local-path-pvc", DEADLINE, |pvc| {
        pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await;
    assert_eq!(claim.spec.unwrap().volume_name.as_deref(), Some("pvc-x"));
    wait_for(&volumes, "pvc-x", DEADLINE, |pv| {
        pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await;
    let pod = wait_for(&pods, "volume-test", DEADLINE, |p| phase(p) == "Running").await;
    assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some(node.as_str()));
    assert!(
        c.node_path(&node, path).is_dir(),
        "the kubelet creates a DirectoryOrCreate volume"
    );
    // (WaitForFirstConsumer may or may not be told: the scheduler can pick the node first.)
    wait_for_events(&c, "local-path-pvc", &["ExternalProvisioning"]).await;
    wait_for_events(&c, "volume-test", &["Scheduled", "Started"]).await;

    // Exec through the node agents, as `lpp demo` does in-process.
    let agents = c.sandbox().node_agents().expect("node agents");
    let mut session = agents
        .exec(
            "default",
            "volume-test",
            None,
            vec![
                "sh".into(),
                "-c".into(),
                "echo local-path-test > /data/test".into(),
            ],
            false,
            false,
        )
        .await
        .unwrap();
    let code = tokio::time::timeout(DEADLINE, &mut session.exit)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(c.node_path(&node, &format!("{path}/test"))).unwrap(),
        "local-path-test\n"
    );

    // While the pod runs the claim is protected; once the pod is gone the claim goes and its
    // volume is Released.
    claims
        .delete("local-path-pvc", &DeleteParams::default())
        .await
        .unwrap();
    let claim = claims.get("local-path-pvc").await.unwrap();
    assert!(claim.metadata.deletion_timestamp.is_some());
    pods.delete("volume-test", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "volume-test", DEADLINE).await;
    wait_gone(&claims, "local-path-pvc", DEADLINE).await;
    wait_for(&volumes, "pvc-x", DEADLINE, |pv| {
        pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released")
    })
    .await;
}

/// Waits until events with all these reasons exist for the object `name` in `default`.
async fn wait_for_events(c: &TestCluster, name: &str, reasons: &[&str]) {
    let events: Api<Event> = Api::namespaced(c.client(), "default");
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let seen: Vec<String> = events
            .list(&params)
            .await
            .map(|l| l.items.into_iter().filter_map(|e| e.reason).collect())
            .unwrap_or_default();
        if reasons.iter().all(|r| seen.iter().any(|s| s == r)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events of {name}: wanted {reasons:?}, saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpullable_images_back_off_and_pods_on_missing_nodes_are_collected() {
    let c = TestCluster::start().await;
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    pods.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "bad-image"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "registry.invalid/busybox:1"}]}})),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "lost"},
            "spec": {"nodeName": "node-9", "containers": [{"name": "c", "image": "busybox"}]}})),
    )
    .await
    .unwrap();
    let waiting = |p: &Pod| {
        serde_json::to_value(p).unwrap()["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].clone()
    };
    let pod = wait_for(&pods, "bad-image", DEADLINE, |p| {
        waiting(p) == "ErrImagePull"
    })
    .await;
    assert_eq!(phase(&pod), "Pending");
    wait_for(&pods, "bad-image", DEADLINE, |p| {
        waiting(p) == "ImagePullBackOff"
    })
    .await;
    let lost = pods.get("lost").await.unwrap();
    assert!(
        lost.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Pending")
    );
    wait_gone(&pods, "lost", DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_marked_not_ready_stops_its_pods() {
    let c = TestCluster::start().await;
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    pods.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "looper"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox",
                     "command": ["sh", "-c", "echo up; while true; do sleep 0.1; done"]}]}})),
    )
    .await
    .unwrap();
    wait_for(&pods, "looper", DEADLINE, |p| phase(p) == "Running").await;
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods.log_stream("looper", &follow).await.unwrap().lines();
    let first = tokio::time::timeout(DEADLINE, lines.try_next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.as_deref(), Some("up"));

    let nodes: Api<Node> = Api::all(c.client());
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}});
    nodes
        .patch_status("node-1", &PatchParams::default(), &Patch::Merge(&not_ready))
        .await
        .unwrap();
    // The container is killed: its log stream ends.
    let end = tokio::time::timeout(DEADLINE, async {
        while lines.try_next().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the pod kept running on a NotReady node");
}

/// Retries a write through injected faults.
async fn retry<T, F, Fut>(what: &str, f: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), f()).await {
            Ok(Ok(v)) => return v,
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: still failing: {why}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_agents_get_through_injected_faults() {
    let c = TestCluster::start().await;
    setup_scripts(&c).await;
    c.set_faults(lpp::sandbox::Faults {
        error_rate: 0.15,
        throttle_rate: 0.1,
        watch_drop_rate: 0.05,
        latency: Duration::from_millis(2),
    });
    let pods: Api<Pod> = Api::namespaced(c.client(), "local-path-storage");
    let vol = "/opt/local-path-provisioner/pvc-f_default_data";
    let pod = helper_pod("helper-pod-create-pvc-f", "node-1", "setup", vol);
    let pp = PostParams::default();
    let dp = DeleteParams::default();
    retry("create the helper pod", || async {
        match pods.create(&pp, &pod).await {
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await;
    let done = wait_for(&pods, "helper-pod-create-pvc-f", DEADLINE, |p| {
        phase(p) == "Succeeded"
    })
    .await;
    assert_eq!(terminated(&done)["exitCode"], 0);
    assert!(c.node_path("node-1", vol).is_dir());
    retry("delete the helper pod", || async {
        match pods.delete("helper-pod-create-pvc-f", &dp).await {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await;
    wait_gone(&pods, "helper-pod-create-pvc-f", DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_node_stops_its_pods_and_they_are_collected() {
    let c = TestCluster::start().await;
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    pods.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "on-node-2"},
            "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "busybox",
                     "command": ["sh", "-c", "echo up; while true; do sleep 0.1; done"]}]}})),
    )
    .await
    .unwrap();
    wait_for(&pods, "on-node-2", DEADLINE, |p| phase(p) == "Running").await;
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods.log_stream("on-node-2", &follow).await.unwrap().lines();
    let first = tokio::time::timeout(DEADLINE, lines.try_next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.as_deref(), Some("up"));

    let nodes: Api<Node> = Api::all(c.client());
    nodes
        .delete("node-2", &DeleteParams::default())
        .await
        .unwrap();
    let end = tokio::time::timeout(DEADLINE, async {
        while lines.try_next().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the pod kept running on a deleted node");
    wait_gone(&pods, "on-node-2", DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_cannot_see_or_touch_what_it_did_not_mount() {
    let c = TestCluster::start().await;
    // A file of this machine, outside every node.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("marker"), "host\n").unwrap();
    let o = outside.path().display();
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    pods.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "confined"},
            "spec": {"nodeName": "node-1", "restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox",
                        "command": ["sh", "-c", format!(
                            "d=/data; printf '%s/%s\\n' \"$d\" x > /data/x; cat /data/x; \
                             cat {o}/marker || echo unseen; rm -rf {o}; ls /opt")],
                        "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                     "volumes": [{"name": "d", "hostPath": {"path": "/srv/confined"}}]}})),
    )
    .await
    .unwrap();
    let pod = wait_for(&pods, "confined", DEADLINE, |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    // `ls /opt` fails: the container's root has no /opt, whatever this machine has.
    assert_eq!(terminated(&pod)["exitCode"], 2, "{pod:#?}");
    let logs = pods.logs("confined", &LogParams::default()).await.unwrap();
    assert!(logs.starts_with("/data/x\n"), "{logs}");
    assert!(logs.contains("unseen\n"), "{logs}");
    assert_eq!(
        std::fs::read_to_string(c.node_path("node-1", "/srv/confined/x")).unwrap(),
        "/data/x\n"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("marker")).unwrap(),
        "host\n"
    );
}
