//! The node agents end to end against a small fake API server: helper pods on a named node,
//! failures with their termination message, containers confined to their own root, the
//! WaitForFirstConsumer dance, logs, exec, image pull failures, pods on missing nodes, NotReady
//! nodes.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::NodeAgents;
use super::fake_api::FakeApi;

const DEADLINE: Duration = Duration::from_secs(20);

struct Fixture {
    api: FakeApi,
    agents: NodeAgents,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("lpp=debug,kube=debug")
            .with_test_writer()
            .try_init();
        let api = FakeApi::new();
        for n in ["node-1", "node-2"] {
            api.put("nodes", node(n, true));
        }
        let dir = tempfile::tempdir().unwrap();
        let agents = NodeAgents::start(api.client(), dir.path().to_path_buf());
        Fixture { api, agents, dir }
    }

    fn node_path(&self, node: &str, path: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join("nodes")
            .join(node)
            .join(path.trim_start_matches('/'))
    }

    /// Waits until `check` holds for the object, printing it on timeout.
    async fn until(
        &self,
        plural: &str,
        ns: &str,
        name: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = tokio::time::Instant::now();
        loop {
            let obj = self.api.get(plural, ns, name);
            if let Some(o) = &obj
                && check(o)
            {
                return o.clone();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting on {plural}/{name}: {obj:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn until_gone(&self, plural: &str, ns: &str, name: &str) {
        let start = tokio::time::Instant::now();
        while let Some(o) = self.api.get(plural, ns, name) {
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {plural}/{name} to go: {o:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn node(name: &str, ready: bool) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
    })
}

fn phase(o: &Value) -> &str {
    o["status"]["phase"].as_str().unwrap_or("")
}

fn helper_pod(name: &str, node: &str, script_key: &str, vol_dir: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "local-path-storage"},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [{
                "name": "helper-pod", "image": "busybox",
                "command": ["/bin/sh", format!("/script/{script_key}")],
                "args": ["-p", vol_dir, "-s", "1073741824", "-m", "Filesystem", "-a", "create"],
                "env": [{"name": "VOL_DIR", "value": vol_dir}],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "data", "mountPath": "/opt/local-path-provisioner/"},
                                 {"name": "script", "mountPath": "/script"}]
            }],
            "volumes": [
                {"name": "data", "hostPath": {"path": "/opt/local-path-provisioner/", "type": "DirectoryOrCreate"}},
                {"name": "script", "configMap": {"name": "local-path-config",
                    "items": [{"key": "setup", "path": "setup"}, {"key": "fail", "path": "fail"}]}}
            ]
        }
    })
}

fn scripts(api: &FakeApi) {
    api.put(
        "configmaps",
        json!({"metadata": {"name": "local-path-config", "namespace": "local-path-storage"},
               "data": {"setup": "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\necho made $VOL_DIR\n",
                        "fail": "#!/bin/sh\necho trying $VOL_DIR\necho 'mkdir: cannot create directory: Permission denied' >&2\nexit 3\n"}}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_pod_runs_to_success_on_its_node_with_the_host_path_mapped() {
    let f = Fixture::new();
    scripts(&f.api);
    let vol = "/opt/local-path-provisioner/pvc-1_default_c";
    f.api.put(
        "pods",
        helper_pod("helper-pod-create-pvc-1", "node-2", "setup", vol),
    );
    let pod = f
        .until(
            "pods",
            "local-path-storage",
            "helper-pod-create-pvc-1",
            |o| phase(o) == "Succeeded",
        )
        .await;
    assert!(f.node_path("node-2", vol).is_dir());
    assert!(!f.node_path("node-1", vol).exists());
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 0);
    assert_eq!(t["reason"], "Completed");
    // Logs read with container paths.
    let mut logs = f
        .agents
        .logs(
            "local-path-storage",
            "helper-pod-create-pvc-1",
            None,
            false,
            None,
        )
        .await
        .unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut logs).await {
        text.extend_from_slice(&chunk);
    }
    assert_eq!(String::from_utf8_lossy(&text), format!("made {vol}\n"));
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_helper_reports_exit_code_and_the_tail_of_its_output() {
    let f = Fixture::new();
    scripts(&f.api);
    let vol = "/opt/local-path-provisioner/pvc-2_default_c";
    f.api
        .put("pods", helper_pod("helper-fail", "node-1", "fail", vol));
    let pod = f
        .until("pods", "local-path-storage", "helper-fail", |o| {
            phase(o) == "Failed"
        })
        .await;
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 3);
    assert_eq!(t["reason"], "Error");
    assert_eq!(
        t["message"],
        format!("trying {vol}\nmkdir: cannot create directory: Permission denied\n")
    );
    f.agents.shutdown().await;
}

/// The whole output of a container.
async fn logs(f: &Fixture, ns: &str, pod: &str) -> String {
    let mut logs = f.agents.logs(ns, pod, None, false, None).await.unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut logs).await {
        text.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_sees_and_touches_only_its_own_root() {
    let f = Fixture::new();
    // A directory of this machine that no volume mounts.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("marker"), "host\n").unwrap();
    let o = outside.path().display().to_string();
    // Plain `/` everywhere: nothing reads the command any more.
    let script = format!(
        "base=/data; printf '%s/%s\\n' \"$base\" x; s=$(printf '\\057'); echo \"${{s}}data\"; \
         ls /; cat {o}/marker || echo no marker; rm -rf {o} /usr/no-such /; echo rm=$?; \
         ls /data; echo bye > /dev/termination-log"
    );
    std::fs::create_dir_all(f.node_path("node-1", "/srv/d/kept")).unwrap();
    f.api.put(
        "pods",
        json!({"metadata": {"name": "confined", "namespace": "default"},
               "spec": {"nodeName": "node-1", "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script],
                                        "volumeMounts": [{"name": "d", "mountPath": "/data", "readOnly": true}]}],
                        "volumes": [{"name": "d", "hostPath": {"path": "/srv/d"}}]}}),
    );
    let pod = f
        .until("pods", "default", "confined", |o| {
            matches!(phase(o), "Succeeded" | "Failed")
        })
        .await;
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 0, "{t}");
    assert_eq!(t["message"], "bye\n");
    let text = logs(&f, "default", "confined").await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["/data/x", "/data"], "{text}");
    // `ls /`: the container's root, nothing else of this machine.
    let mut root: Vec<String> = super::runtime::system_dirs()
        .iter()
        .cloned()
        .chain(["data", "dev", "etc", "proc", "root", "tmp"].map(String::from))
        .collect();
    root.sort();
    assert_eq!(lines[2..2 + root.len()], root, "{text}");
    assert!(text.contains("no marker\n"), "{text}");
    assert!(text.contains("kept\n"), "{text}");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("marker")).unwrap(),
        "host\n",
        "rm -rf of a path the container did not mount leaves this machine alone"
    );
    assert!(f.node_path("node-1", "/srv/d/kept").is_dir(), "readOnly");
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_mount_at_new_paths_and_the_termination_message_path_is_honoured() {
    let f = Fixture::new();
    f.api.put(
        "configmaps",
        json!({"metadata": {"name": "conf", "namespace": "default"},
               "data": {"app.yaml": "answer: 42\n", "extra": "more\n"}}),
    );
    f.api.put(
        "pods",
        json!({"metadata": {"name": "files", "namespace": "default"},
               "spec": {"nodeName": "node-2", "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox", "workingDir": "/srv/work",
                            "command": ["sh", "-c", "pwd; cat /opt/app/app.yaml /etc/extra.conf; cat /etc/hostname; \
                                         echo done > /var/log/term; exit 2"],
                            "terminationMessagePath": "/var/log/term",
                            "volumeMounts": [
                                {"name": "conf", "mountPath": "/opt/app/app.yaml", "subPath": "app.yaml"},
                                {"name": "conf", "mountPath": "/etc/extra.conf", "subPath": "extra"}]}],
                        "volumes": [{"name": "conf", "configMap": {"name": "conf"}}]}}),
    );
    let pod = f
        .until("pods", "default", "files", |o| phase(o) == "Failed")
        .await;
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 2, "{t}");
    assert_eq!(t["message"], "done\n");
    assert_eq!(
        logs(&f, "default", "files").await,
        "/srv/work\nanswer: 42\nmore\nfiles\n"
    );
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_a_start_error() {
    let f = Fixture::new();
    f.api.put(
        "pods",
        json!({"metadata": {"name": "typo", "namespace": "default"},
               "spec": {"nodeName": "node-1", "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox", "command": ["no-such-program", "x"]}]}}),
    );
    let pod = f
        .until("pods", "default", "typo", |o| phase(o) == "Failed")
        .await;
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 128);
    assert_eq!(t["reason"], "StartError");
    assert_eq!(
        t["message"],
        "failed to start container \"c\": exec: \"no-such-program\": executable file not found in $PATH"
    );
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_on_a_node_resolves_on_that_node() {
    let f = Fixture::new();
    // As a container with the node's `/` as a hostPath could plant it.
    std::fs::create_dir_all(f.node_path("node-1", "/opt")).unwrap();
    std::fs::create_dir_all(f.node_path("node-1", "/var/node-only")).unwrap();
    std::os::unix::fs::symlink("/", f.node_path("node-1", "/opt/evil")).unwrap();
    f.api.put(
        "pods",
        json!({"metadata": {"name": "follows", "namespace": "default"},
               "spec": {"nodeName": "node-1", "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox", "command": ["ls", "/data/var"],
                                        "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                        "volumes": [{"name": "d", "hostPath": {"path": "/opt/evil", "type": "Directory"}}]}}),
    );
    f.until("pods", "default", "follows", |o| phase(o) == "Succeeded")
        .await;
    // The node's /var (its kubelet's `lib` and what the test put there), not this machine's.
    assert_eq!(logs(&f, "default", "follows").await, "lib\nnode-only\n");
    f.agents.shutdown().await;
}

fn wffc_objects(api: &FakeApi) {
    api.put(
        "storageclasses",
        json!({"metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
               "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"}),
    );
    api.put(
        "persistentvolumeclaims",
        json!({"metadata": {"name": "local-path-pvc", "namespace": "default"},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                        "resources": {"requests": {"storage": "128Mi"}}}}),
    );
    api.put(
        "pods",
        json!({"metadata": {"name": "volume-test", "namespace": "default"},
               "spec": {"containers": [{"name": "volume-test", "image": "busybox",
                                        "command": ["sh", "-c", "while true; do sleep 3600; done"],
                                        "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
                        "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "local-path-pvc"}}]}}),
    );
}

/// What the provisioner under test would do: a PV on the selected node, pointing at the claim.
fn provision(api: &FakeApi, claim: &Value, node: &str, path: &str) {
    api.put(
        "persistentvolumes",
        json!({"metadata": {"name": "pvc-x", "annotations": {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}},
               "spec": {"capacity": {"storage": "128Mi"}, "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-path",
                        "hostPath": {"path": path, "type": "DirectoryOrCreate"},
                        "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "default",
                                     "name": "local-path-pvc", "uid": claim["metadata"]["uid"]},
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_first_consumer_dance_then_exec_writes_on_the_node() {
    let f = Fixture::new();
    wffc_objects(&f.api);
    let annotated =
        |o: &Value| !o["metadata"]["annotations"]["volume.kubernetes.io/selected-node"].is_null();
    let claim = f
        .until(
            "persistentvolumeclaims",
            "default",
            "local-path-pvc",
            annotated,
        )
        .await;
    let node = claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
        .as_str()
        .unwrap()
        .to_string();
    let claim = f
        .until("persistentvolumeclaims", "default", "local-path-pvc", |o| {
            o["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"]
                == "rancher.io/local-path"
        })
        .await;
    assert_eq!(
        claim["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    // The pod is still unscheduled while the claim waits for its volume.
    assert!(f.api.get("pods", "default", "volume-test").unwrap()["spec"]["nodeName"].is_null());
    let path = "/opt/local-path-provisioner/pvc-x_default_local-path-pvc";
    provision(&f.api, &claim, &node, path);
    let claim = f
        .until("persistentvolumeclaims", "default", "local-path-pvc", |o| {
            phase(o) == "Bound"
        })
        .await;
    assert_eq!(claim["spec"]["volumeName"], "pvc-x");
    assert_eq!(claim["status"]["capacity"]["storage"], "128Mi");
    f.until("persistentvolumes", "", "pvc-x", |o| phase(o) == "Bound")
        .await;
    let pod = f
        .until("pods", "default", "volume-test", |o| phase(o) == "Running")
        .await;
    assert_eq!(pod["spec"]["nodeName"], json!(node));

    let mut session = f
        .agents
        .exec(
            "default",
            "volume-test",
            None,
            vec![
                "sh".into(),
                "-c".into(),
                "echo local-path-test > /data/test; ls /data".into(),
            ],
            false,
            false,
        )
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(DEADLINE, session.stdout.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, "test\n");
    assert_eq!(
        tokio::time::timeout(DEADLINE, session.exit)
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert_eq!(
        std::fs::read_to_string(f.node_path(&node, &format!("{path}/test"))).unwrap(),
        "local-path-test\n"
    );

    // Deleting the pod stops it (graceful: the kubelet finishes the deletion) ...
    delete(&f, "pods", "default", "volume-test").await;
    f.until_gone("pods", "default", "volume-test").await;
    // ... then the claim can go, and its volume is Released.
    delete(&f, "persistentvolumeclaims", "default", "local-path-pvc").await;
    f.until_gone("persistentvolumeclaims", "default", "local-path-pvc")
        .await;
    f.until("persistentvolumes", "", "pvc-x", |o| phase(o) == "Released")
        .await;
    f.agents.shutdown().await;
}

async fn delete(f: &Fixture, plural: &str, ns: &str, name: &str) {
    let client = f.api.client();
    let dp = kube::api::DeleteParams::default();
    let r = match plural {
        "pods" => kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client, ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        _ => kube::Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(client, ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
    };
    r.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpullable_image_backs_off_and_a_missing_node_gets_its_pod_collected() {
    let f = Fixture::new();
    f.api.put(
        "pods",
        json!({"metadata": {"name": "bad-image", "namespace": "default"},
               "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "registry.invalid/busybox"}]}}),
    );
    f.api.put(
        "pods",
        json!({"metadata": {"name": "lost", "namespace": "default"},
               "spec": {"nodeName": "node-9", "containers": [{"name": "c", "image": "busybox"}]}}),
    );
    let reason =
        |o: &Value| o["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].clone();
    let pod = f
        .until("pods", "default", "bad-image", |o| {
            reason(o) == "ErrImagePull"
        })
        .await;
    assert_eq!(phase(&pod), "Pending");
    f.until("pods", "default", "bad-image", |o| {
        reason(o) == "ImagePullBackOff"
    })
    .await;
    assert!(f.api.get("pods", "default", "lost").unwrap()["status"].is_null());
    f.until_gone("pods", "default", "lost").await;
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_ready_node_stops_its_pods() {
    let f = Fixture::new();
    let marker = "/tmp/lpp-sandbox-node-flows-alive";
    f.api.put(
        "pods",
        json!({"metadata": {"name": "looper", "namespace": "default"},
               "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox",
                        "command": ["sh", "-c", format!("while true; do date > {marker}; sleep 0.05; done")]}]}}),
    );
    f.until("pods", "default", "looper", |o| phase(o) == "Running")
        .await;
    let logs_ok = f
        .agents
        .logs("default", "looper", Some("c"), false, None)
        .await
        .is_ok();
    assert!(logs_ok);
    f.api.put("nodes", node("node-1", false));
    // The exec endpoint sees the container stop.
    let start = tokio::time::Instant::now();
    loop {
        let r = f
            .agents
            .exec("default", "looper", None, vec!["true".into()], false, false)
            .await;
        if r.is_err() {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the container kept running on a NotReady node"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!Path::new(marker).exists(), "/tmp must be the pod's own");
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_pod_reports_container_paths() {
    let f = Fixture::new();
    let base = "/opt/local-path-provisioner";
    std::fs::create_dir_all(f.node_path("node-1", &format!("{base}/pvc-a_default_a"))).unwrap();
    std::fs::create_dir_all(f.node_path("node-1", &format!("{base}/orphan"))).unwrap();
    f.api.put(
        "pods",
        json!({"metadata": {"name": "inventory", "namespace": "default"},
               "spec": {"nodeName": "node-1", "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox",
                            "command": ["sh", "-c", "find \"$BASE\" -mindepth 1 -maxdepth 1 -type d | sort; echo \"node=$NODE\""],
                            "env": [{"name": "BASE", "value": base},
                                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                            "volumeMounts": [{"name": "base", "mountPath": base, "readOnly": true}]}],
                        "volumes": [{"name": "base", "hostPath": {"path": base, "type": "Directory"}}]}}),
    );
    f.until("pods", "default", "inventory", |o| phase(o) == "Succeeded")
        .await;
    let mut logs = f
        .agents
        .logs("default", "inventory", None, false, None)
        .await
        .unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut logs).await {
        text.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8_lossy(&text),
        format!("{base}/orphan\n{base}/pvc-a_default_a\nnode=node-1\n")
    );
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_first_and_always_restarts_with_a_count() {
    let f = Fixture::new();
    f.api.put(
        "pods",
        json!({"metadata": {"name": "restarts", "namespace": "default"},
               "spec": {"nodeName": "node-2",
                        "initContainers": [{"name": "init", "image": "busybox",
                            "command": ["sh", "-c", "echo ready > /work/flag"],
                            "volumeMounts": [{"name": "w", "mountPath": "/work"}]}],
                        "containers": [{"name": "c", "image": "busybox",
                            "command": ["sh", "-c", "cat /work/flag; exit 1"],
                            "volumeMounts": [{"name": "w", "mountPath": "/work"}]}],
                        "volumes": [{"name": "w", "emptyDir": {}}]}}),
    );
    let pod = f
        .until("pods", "default", "restarts", |o| {
            o["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
                >= 2
        })
        .await;
    assert_eq!(
        pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    assert_eq!(
        pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    assert_eq!(phase(&pod), "Running");
    let mut logs = f
        .agents
        .logs("default", "restarts", Some("c"), false, None)
        .await
        .unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut logs).await {
        text.extend_from_slice(&chunk);
    }
    assert_eq!(String::from_utf8_lossy(&text), "ready\n");
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_takes_stdin_and_cannot_reach_unmounted_paths() {
    let f = Fixture::new();
    f.api.put(
        "pods",
        json!({"metadata": {"name": "web", "namespace": "default"},
               "spec": {"nodeName": "node-1",
                        "containers": [{"name": "nginx", "image": "nginx",
                            "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                        "volumes": [{"name": "d", "hostPath": {"path": "/srv/web"}}]}}),
    );
    f.until("pods", "default", "web", |o| phase(o) == "Running")
        .await;
    let mut s = f
        .agents
        .exec(
            "default",
            "web",
            Some("nginx"),
            vec!["sh".into(), "-c".into(), "cat > /data/in; pwd >&2".into()],
            true,
            false,
        )
        .await
        .unwrap();
    let mut stdin = s.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"hello\n")
        .await
        .unwrap();
    drop(stdin);
    assert_eq!(
        tokio::time::timeout(DEADLINE, s.exit)
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert_eq!(
        std::fs::read_to_string(f.node_path("node-1", "/srv/web/in")).unwrap(),
        "hello\n"
    );
    let mut s = f
        .agents
        .exec(
            "default",
            "web",
            None,
            vec!["sh".into(), "-c".into(), "pwd; echo $HOME $TMPDIR".into()],
            false,
            false,
        )
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(DEADLINE, s.stdout.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out, "/root\n/root /tmp\n",
        "the container's own paths, never the host's"
    );
    // Paths of this machine the container did not mount are not there for exec either.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("marker"), "host\n").unwrap();
    let o = outside.path().display().to_string();
    let mut s = f
        .agents
        .exec(
            "default",
            "web",
            None,
            vec!["cat".into(), format!("{o}/marker")],
            false,
            false,
        )
        .await
        .unwrap();
    let mut err = String::new();
    tokio::time::timeout(DEADLINE, s.stderr.read_to_string(&mut err))
        .await
        .unwrap()
        .unwrap();
    assert!(err.contains("No such file or directory"), "{err}");
    assert_eq!(
        tokio::time::timeout(DEADLINE, s.exit)
            .await
            .unwrap()
            .unwrap(),
        1
    );
    let s = f
        .agents
        .exec(
            "default",
            "web",
            None,
            vec!["rm".into(), "-rf".into(), o.clone(), "/srv".into()],
            false,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(DEADLINE, s.exit)
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert!(outside.path().join("marker").is_file());
    assert!(f.node_path("node-1", "/srv/web/in").is_file());
    let missing = f
        .agents
        .exec("default", "nope", None, vec!["true".into()], false, false)
        .await;
    assert!(matches!(&missing, Err(e) if e.status_code() == 404));
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_past_its_active_deadline_is_killed_and_failed() {
    let f = Fixture::new();
    // 3 s: the deadline counts from the pod's start, and a container's own start may take a
    // second on a machine busy with other tests; this test is about a running one.
    f.api.put(
        "pods",
        json!({"metadata": {"name": "slow", "namespace": "default"},
               "spec": {"nodeName": "node-1", "restartPolicy": "Never", "activeDeadlineSeconds": 3,
                        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 30"]}]}}),
    );
    // Failed at the deadline, then its container's end is reported once it is stopped.
    let pod = f
        .until("pods", "default", "slow", |o| {
            phase(o) == "Failed"
                && !o["status"]["containerStatuses"][0]["state"]["terminated"].is_null()
        })
        .await;
    assert_eq!(pod["status"]["reason"], "DeadlineExceeded");
    // Killed by SIGTERM (143) or, past the grace period, SIGKILL (137).
    let code = &pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"];
    assert!(*code == 143 || *code == 137, "{code}");
    f.agents.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_local_volume_binds_to_its_first_consumer() {
    let f = Fixture::new();
    f.api.put(
        "storageclasses",
        json!({"metadata": {"name": "local-storage"}, "provisioner": "kubernetes.io/no-provisioner",
               "volumeBindingMode": "WaitForFirstConsumer"}),
    );
    std::fs::create_dir_all(f.node_path("node-2", "/mnt/disks/vol1")).unwrap();
    f.api.put(
        "persistentvolumes",
        json!({"metadata": {"name": "local-pv"},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "local-storage", "local": {"path": "/mnt/disks/vol1"},
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}]}]}}},
               "status": {"phase": "Available"}}),
    );
    f.api.put(
        "persistentvolumeclaims",
        json!({"metadata": {"name": "data", "namespace": "default"},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-storage",
                        "resources": {"requests": {"storage": "100Mi"}}}}),
    );
    f.api.put(
        "pods",
        json!({"metadata": {"name": "writer", "namespace": "default"},
               "spec": {"restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo hi > /data/f"],
                                        "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
                        "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]}}),
    );
    let pod = f
        .until("pods", "default", "writer", |o| phase(o) == "Succeeded")
        .await;
    assert_eq!(pod["spec"]["nodeName"], "node-2");
    f.until("persistentvolumeclaims", "default", "data", |o| {
        phase(o) == "Bound"
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(f.node_path("node-2", "/mnt/disks/vol1/f")).unwrap(),
        "hi\n"
    );
    f.agents.shutdown().await;
}
