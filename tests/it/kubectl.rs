//! The sandbox driven by the real `kubectl` on this machine: proof that it speaks Kubernetes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::support::{TestCluster, wait_for};

const T: Duration = Duration::from_secs(20);

fn ok(step: &str, got: &crate::support::Finished) {
    assert_eq!(
        got.code, 0,
        "{step}\nstdout:\n{}\nstderr:\n{}",
        got.stdout, got.stderr
    );
}

fn write(cluster: &TestCluster, name: &str, text: &str) -> std::path::PathBuf {
    let path = cluster.dir().join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}

const WRITER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: writer
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo hello > /data/file && echo wrote /data/file']
    volumeMounts:
    - {name: d, mountPath: /data}
  volumes:
  - name: d
    hostPath: {path: /opt/kubectl-test, type: DirectoryOrCreate}
";

const SLEEPER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: sleeper
  labels: {app: sleeper}
spec:
  nodeName: node-2
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'while true; do sleep 3600; done']
    volumeMounts:
    - {name: d, mountPath: /data}
  volumes:
  - name: d
    hostPath: {path: /opt/exec-test, type: DirectoryOrCreate}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_a_hostpath_pod_then_logs_and_the_file_on_the_node() {
    let cluster = TestCluster::start().await;
    let manifest = write(&cluster, "writer.yaml", WRITER);
    ok(
        "apply",
        &cluster
            .kubectl(["apply", "-f", manifest.to_str().expect("utf-8")])
            .await,
    );
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let pod = wait_for(&pods, "writer", T, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await;
    let node = pod.spec.and_then(|s| s.node_name).expect("scheduled");
    let file = cluster.node_path(&node, "/opt/kubectl-test/file");
    assert_eq!(
        std::fs::read_to_string(&file).expect("file on the node"),
        "hello\n"
    );
    let logs = cluster.kubectl(["logs", "writer"]).await;
    ok("logs", &logs);
    assert_eq!(
        logs.stdout, "wrote /data/file\n",
        "container paths in the log"
    );
    let table = cluster.kubectl(["get", "pods"]).await;
    ok("get", &table);
    let header: Vec<&str> = table
        .stdout
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(table.stdout.contains("Completed"), "{}", table.stdout);
    let waited = cluster
        .kubectl([
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/writer",
            "--timeout=10s",
        ])
        .await;
    ok("wait", &waited);
    ok(
        "delete",
        &cluster
            .kubectl(["delete", "-f", manifest.to_str().expect("utf-8")])
            .await,
    );
    let gone = cluster.kubectl(["get", "pod", "writer"]).await;
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains("pods \"writer\" not found"),
        "{}",
        gone.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_in_the_container_with_its_exit_code_and_stdin() {
    let cluster = TestCluster::start().await;
    let manifest = write(&cluster, "sleeper.yaml", SLEEPER);
    ok(
        "apply",
        &cluster
            .kubectl(["apply", "-f", manifest.to_str().expect("utf-8")])
            .await,
    );
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    wait_for(&pods, "sleeper", T, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    let wrote = cluster
        .kubectl([
            "exec",
            "sleeper",
            "--",
            "sh",
            "-c",
            "echo local-path-test > /data/test && echo done",
        ])
        .await;
    ok("exec", &wrote);
    assert_eq!(wrote.stdout, "done\n");
    assert_eq!(
        std::fs::read_to_string(cluster.node_path("node-2", "/opt/exec-test/test")).expect("file"),
        "local-path-test\n"
    );
    let failed = cluster
        .kubectl(["exec", "sleeper", "--", "sh", "-c", "exit 3"])
        .await;
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    let mut cmd = std::process::Command::new("kubectl");
    cmd.env("KUBECONFIG", cluster.kubectl_env())
        .stdin(std::process::Stdio::piped());
    let echoed = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd
            .args(["exec", "-i", "sleeper", "--", "cat"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl exec -i");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"through stdin\n")
            .expect("write");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("poll").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("kubectl exec -i did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("exec -i");
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "through stdin\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_patches_json_output_and_validation() {
    let cluster = TestCluster::start().await;
    let cm = write(
        &cluster,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n  labels: {a: \"1\"}\ndata:\n  k: v\n",
    );
    let path = cm.to_str().expect("utf-8");
    ok(
        "apply --server-side",
        &cluster
            .kubectl(["apply", "--server-side", "-f", path])
            .await,
    );
    let first = cluster
        .kubectl([
            "get",
            "cm",
            "conf",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    ok(
        "apply again",
        &cluster
            .kubectl(["apply", "--server-side", "-f", path])
            .await,
    );
    let second = cluster
        .kubectl([
            "get",
            "cm",
            "conf",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    assert_eq!(
        first.stdout, second.stdout,
        "an unchanged apply keeps the resourceVersion"
    );
    ok(
        "strategic",
        &cluster
            .kubectl(["patch", "cm", "conf", "-p", r#"{"data":{"x":"y"}}"#])
            .await,
    );
    ok(
        "merge",
        &cluster
            .kubectl([
                "patch",
                "cm",
                "conf",
                "--type=merge",
                "-p",
                r#"{"data":{"z":"w"}}"#,
            ])
            .await,
    );
    ok(
        "json",
        &cluster
            .kubectl([
                "patch",
                "cm",
                "conf",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/data/x"}]"#,
            ])
            .await,
    );
    let json = cluster.kubectl(["get", "cm", "conf", "-o", "json"]).await;
    ok("get -o json", &json);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(value["data"], serde_json::json!({"k": "v", "z": "w"}));
    assert_eq!(value["kind"], "ConfigMap");

    let bad = write(
        &cluster,
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  x: yes\n",
    );
    let refused = cluster
        .kubectl(["apply", "-f", bad.to_str().expect("utf-8")])
        .await;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("BadRequest"), "{}", refused.stderr);
    let refused = cluster
        .kubectl(["apply", "--server-side", "-f", bad.to_str().expect("utf-8")])
        .await;
    assert!(
        refused
            .stderr
            .contains("failed to create typed patch object"),
        "{}",
        refused.stderr
    );
    let unknown = write(
        &cluster,
        "unknown.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: u\nbogus: 1\n",
    );
    let refused = cluster
        .kubectl(["apply", "-f", unknown.to_str().expect("utf-8")])
        .await;
    assert!(
        refused.stderr.contains("unknown field \"bogus\""),
        "{}",
        refused.stderr
    );
    ok("delete", &cluster.kubectl(["delete", "cm", "conf"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_changes_as_they_happen() {
    let cluster = TestCluster::start().await;
    let kubeconfig = cluster.kubectl_env();
    let watcher = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new("kubectl");
        cmd.env("KUBECONFIG", kubeconfig);
        crate::support::run(
            cmd,
            ["get", "configmaps", "-w", "--request-timeout=3s"],
            Duration::from_secs(20),
        )
    });
    // Created only once kubectl's watch has reached the server.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cluster
        .sandbox()
        .request_counts()
        .keys()
        .any(|k| k.starts_with("watch configmaps"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kubectl never watched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let manifest = write(
        &cluster,
        "watched.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: b\n",
    );
    let path = manifest.to_str().expect("utf-8");
    ok("create", &cluster.kubectl(["create", "-f", path]).await);
    let seen = watcher.await.expect("watcher");
    assert!(
        seen.stdout.lines().any(|l| l.starts_with("watched ")),
        "stdout:\n{}\nstderr:\n{}",
        seen.stdout,
        seen.stderr
    );
    let nodes = cluster.kubectl(["get", "nodes", "-o", "wide"]).await;
    ok("get nodes", &nodes);
    assert!(
        nodes.stdout.starts_with("NAME") && nodes.stdout.contains("node-2   Ready"),
        "{}",
        nodes.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_and_tokens_work_from_kubectl() {
    let cluster = TestCluster::start().await;
    let denied = cluster
        .kubectl(["get", "pods", "--as", "bob", "--as-group", "viewers"])
        .await;
    assert_eq!(denied.code, 1);
    assert!(
        denied.stderr.contains(
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        denied.stderr
    );
    let token = cluster
        .kubectl(["create", "token", "default", "-n", "default"])
        .await;
    ok("create token", &token);
    // kubectl sends no bearer token over plain HTTP, so the token is checked with kube-rs in
    // the conformance suite; here it only has to be issued.
    assert!(token.stdout.starts_with("lpp-sandbox."), "{}", token.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_subcommands_and_auth_can_i_speak_protobuf() {
    let cluster = TestCluster::start().await;
    ok(
        "create configmap",
        &cluster
            .kubectl(["create", "configmap", "c1", "--from-literal=a=b"])
            .await,
    );
    let data = cluster
        .kubectl(["get", "cm", "c1", "-o", "jsonpath={.data.a}"])
        .await;
    assert_eq!(data.stdout, "b");
    ok(
        "create secret",
        &cluster
            .kubectl([
                "create",
                "secret",
                "generic",
                "s1",
                "--from-literal=p=hello",
            ])
            .await,
    );
    let secret = cluster
        .kubectl(["get", "secret", "s1", "-o", "jsonpath={.data.p}"])
        .await;
    assert_eq!(secret.stdout, "aGVsbG8=");
    ok(
        "create ns",
        &cluster.kubectl(["create", "namespace", "team"]).await,
    );
    ok(
        "create role",
        &cluster
            .kubectl([
                "create",
                "role",
                "r",
                "--verb=get,list",
                "--resource=pods",
                "-n",
                "team",
            ])
            .await,
    );
    ok(
        "create rolebinding",
        &cluster
            .kubectl([
                "create",
                "rolebinding",
                "rb",
                "--role=r",
                "--user=bob",
                "-n",
                "team",
            ])
            .await,
    );
    let yes = cluster
        .kubectl(["auth", "can-i", "list", "pods", "-n", "team", "--as", "bob"])
        .await;
    assert_eq!(yes.stdout.trim(), "yes", "{}", yes.stderr);
    let no = cluster
        .kubectl([
            "auth", "can-i", "delete", "pods", "-n", "team", "--as", "bob",
        ])
        .await;
    assert_eq!(no.stdout.trim(), "no", "{}", no.stderr);
    let elsewhere = cluster
        .kubectl([
            "auth", "can-i", "list", "pods", "-n", "default", "--as", "bob",
        ])
        .await;
    assert_eq!(elsewhere.stdout.trim(), "no", "{}", elsewhere.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_streams_until_the_container_ends() {
    let cluster = TestCluster::start().await;
    let manifest = write(
        &cluster,
        "ticker.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  restartPolicy: Never
  nodeName: node-1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'for i in 1 2 3; do echo tick $i; sleep 0.3; done']
",
    );
    ok(
        "apply",
        &cluster
            .kubectl(["apply", "-f", manifest.to_str().expect("utf-8")])
            .await,
    );
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    wait_for(&pods, "ticker", T, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.state
                        .as_ref()
                        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
                })
            })
    })
    .await;
    let followed = cluster.kubectl(["logs", "-f", "ticker"]).await;
    ok("logs -f", &followed);
    assert_eq!(followed.stdout, "tick 1\ntick 2\ntick 3\n");
}

const AGENT: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: registry.k8s.io/pause:3.10
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_set_rolls_out_updates_and_back_under_kubectl_rollout() {
    let cluster = TestCluster::start().await;
    let manifest = write(&cluster, "agent.yaml", AGENT);
    ok(
        "apply",
        &cluster
            .kubectl(["apply", "-f", manifest.to_str().expect("utf-8")])
            .await,
    );
    let status = cluster
        .kubectl(["rollout", "status", "daemonset/agent", "--timeout=30s"])
        .await;
    ok("rollout status", &status);
    assert!(
        status
            .stdout
            .contains("daemon set \"agent\" successfully rolled out"),
        "{}",
        status.stdout
    );
    let table = cluster.kubectl(["get", "ds", "agent"]).await;
    ok("get ds", &table);
    let rows: Vec<Vec<&str>> = table
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
            "SELECTOR",
            "AGE"
        ]
    );
    assert_eq!(rows[1][..7], ["agent", "2", "2", "2", "2", "2", "<none>"]);

    ok(
        "set image",
        &cluster
            .kubectl([
                "set",
                "image",
                "daemonset/agent",
                "c=registry.k8s.io/pause:3.9",
            ])
            .await,
    );
    ok(
        "rollout status after the update",
        &cluster
            .kubectl(["rollout", "status", "daemonset/agent", "--timeout=60s"])
            .await,
    );
    let images = cluster
        .kubectl([
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.spec.containers[0].image} {.metadata.labels.pod-template-generation}{\"\\n\"}{end}",
        ])
        .await;
    ok("get pods", &images);
    let mut lines: Vec<&str> = images.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "node-1 registry.k8s.io/pause:3.9 2",
            "node-2 registry.k8s.io/pause:3.9 2"
        ],
        "every old pod was replaced"
    );
    let history = cluster
        .kubectl(["rollout", "history", "daemonset/agent"])
        .await;
    ok("rollout history", &history);
    let revisions: Vec<&str> = history
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{}", history.stdout);

    ok(
        "rollout undo",
        &cluster
            .kubectl(["rollout", "undo", "daemonset/agent"])
            .await,
    );
    ok(
        "rollout status after the undo",
        &cluster
            .kubectl(["rollout", "status", "daemonset/agent", "--timeout=60s"])
            .await,
    );
    let images = cluster
        .kubectl([
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ])
        .await;
    assert_eq!(
        images.stdout,
        "registry.k8s.io/pause:3.10 registry.k8s.io/pause:3.10"
    );
    let history = cluster
        .kubectl(["rollout", "history", "daemonset/agent"])
        .await;
    let revisions: Vec<&str> = history
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(
        revisions,
        ["2", "3"],
        "the undone revision is renumbered: {}",
        history.stdout
    );

    ok(
        "delete",
        &cluster
            .kubectl([
                "delete",
                "-f",
                manifest.to_str().expect("utf-8"),
                "--wait=true",
                "--timeout=30s",
            ])
            .await,
    );
    // The pods end gracefully (one second), the revisions go at once.
    let deadline = std::time::Instant::now() + T;
    loop {
        let left = cluster
            .kubectl(["get", "pods,controllerrevisions", "-o", "name"])
            .await;
        ok("get after delete", &left);
        if left.stdout.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still there after the DaemonSet went:\n{}",
            left.stdout
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csi_drivers_and_storage_capacities_print_and_validate_as_real_ones() {
    let cluster = TestCluster::start().await;
    let refused = write(
        &cluster,
        "refused.yaml",
        "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: rancher.io/local-path\nspec:\n  storageCapacity: true\n",
    );
    let got = cluster
        .kubectl(["create", "-f", refused.to_str().expect("utf-8")])
        .await;
    assert_eq!(got.code, 1, "{}", got.stdout);
    assert!(
        got.stderr.contains("The CSIDriver \"rancher.io/local-path\" is invalid: metadata.name: Invalid value: \"rancher.io/local-path\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        "{}",
        got.stderr
    );
    let objects = write(
        &cluster,
        "csi.yaml",
        "apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: local.csi.example.com
spec:
  storageCapacity: true
---
apiVersion: storage.k8s.io/v1
kind: CSIStorageCapacity
metadata:
  name: node-1-local
  namespace: default
storageClassName: local-path
nodeTopology:
  matchLabels: {kubernetes.io/hostname: node-1}
capacity: 5Gi
",
    );
    ok(
        "apply",
        &cluster
            .kubectl(["apply", "-f", objects.to_str().expect("utf-8")])
            .await,
    );
    let drivers = cluster.kubectl(["get", "csidrivers"]).await;
    ok("get csidrivers", &drivers);
    let rows: Vec<Vec<&str>> = drivers
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "ATTACHREQUIRED",
            "PODINFOONMOUNT",
            "STORAGECAPACITY",
            "TOKENREQUESTS",
            "REQUIRESREPUBLISH",
            "MODES",
            "AGE"
        ]
    );
    assert_eq!(
        rows[1][..7],
        [
            "local.csi.example.com",
            "true",
            "false",
            "true",
            "<unset>",
            "false",
            "Persistent"
        ]
    );
    let capacities = cluster.kubectl(["get", "csistoragecapacities"]).await;
    ok("get csistoragecapacities", &capacities);
    let rows: Vec<Vec<&str>> = capacities
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["NAME", "STORAGECLASSNAME", "CAPACITY"],
            vec!["node-1-local", "local-path", "5Gi"]
        ]
    );
    let moved = cluster
        .kubectl([
            "patch",
            "csistoragecapacity",
            "node-1-local",
            "--type",
            "merge",
            "-p",
            r#"{"capacity":"4Gi","storageClassName":"other"}"#,
        ])
        .await;
    assert_eq!(moved.code, 1);
    assert!(
        moved
            .stderr
            .contains("storageClassName: Invalid value: \"other\": field is immutable"),
        "{}",
        moved.stderr
    );
    ok(
        "resize",
        &cluster
            .kubectl([
                "patch",
                "csistoragecapacity",
                "node-1-local",
                "--type",
                "merge",
                "-p",
                r#"{"capacity":"4Gi"}"#,
            ])
            .await,
    );
}

const EXPANSION: &str = "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: grows}
provisioner: kubernetes.io/no-provisioner
allowVolumeExpansion: true
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fixed}
provisioner: kubernetes.io/no-provisioner
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-grows}
spec:
  storageClassName: grows
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /opt/grows}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-fixed}
spec:
  storageClassName: fixed
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /opt/fixed}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: grows}
spec:
  storageClassName: grows
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: fixed}
spec:
  storageClassName: fixed
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: waiting}
spec:
  storageClassName: grows
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 5Gi}}
";

fn storage_request(size: &str) -> String {
    format!(r#"{{"spec":{{"resources":{{"requests":{{"storage":"{size}"}}}}}}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_grow_only_when_bound_and_their_class_allows_and_never_shrink() {
    use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim};
    let cluster = TestCluster::start().await;
    let manifest = write(&cluster, "expansion.yaml", EXPANSION);
    ok(
        "apply",
        &cluster
            .kubectl(["apply", "-f", manifest.to_str().expect("utf-8")])
            .await,
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    for name in ["grows", "fixed"] {
        wait_for(&claims, name, T, |c| {
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        })
        .await;
    }
    let patch = |name: &'static str, size: &str| {
        let body = storage_request(size);
        let cluster = &cluster;
        async move {
            cluster
                .kubectl(["patch", "pvc", name, "--type", "merge", "-p", &body])
                .await
        }
    };
    ok("grow", &patch("grows", "2Gi").await);
    let refused = patch("fixed", "2Gi").await;
    assert_eq!(refused.code, 1);
    assert_eq!(
        refused.stderr.trim(),
        "Error from server (Forbidden): persistentvolumeclaims \"fixed\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
    );
    // An unbound claim's spec is immutable: validation refuses before admission is asked.
    let unbound = patch("waiting", "6Gi").await;
    assert_eq!(unbound.code, 1);
    assert!(
        unbound.stderr.contains("The PersistentVolumeClaim \"waiting\" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"),
        "{}",
        unbound.stderr
    );
    // Back down to the capacity is a shrink; above it is a recovery from the expansion.
    let shrink = patch("grows", "1Gi").await;
    assert_eq!(shrink.code, 1);
    assert!(
        shrink.stderr.contains("The PersistentVolumeClaim \"grows\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"),
        "{}",
        shrink.stderr
    );
    ok("lower the request", &patch("grows", "1536Mi").await);

    // The expand controller has no plugin for a hostPath volume: it says so and does nothing.
    let events: Api<Event> = Api::namespaced(cluster.client(), "default");
    let deadline = std::time::Instant::now() + T;
    let said = loop {
        let list = events
            .list(&kube::api::ListParams::default())
            .await
            .expect("events");
        let found: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some("grows")
                    && e.reason.as_deref() == Some("ExternalExpanding")
            })
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ExternalExpanding event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(said[0].type_.as_deref(), Some("Warning"));
    assert_eq!(
        said[0].message.as_deref(),
        Some("waiting for an external controller to expand this PVC")
    );
    assert_eq!(
        said[0].source.as_ref().and_then(|s| s.component.as_deref()),
        Some("volume_expand")
    );
    let grows = claims.get("grows").await.expect("claim");
    let status = grows.status.expect("status");
    assert_eq!(status.capacity.expect("capacity")["storage"].0, "1Gi");
    assert!(status.conditions.is_none() && status.allocated_resources.is_none());

    // What an external resizer writes goes through /status.
    ok(
        "status",
        &cluster
            .kubectl([
                "patch",
                "pvc",
                "grows",
                "--subresource",
                "status",
                "--type",
                "merge",
                "-p",
                r#"{"status":{"allocatedResources":{"storage":"1536Mi"},"allocatedResourceStatuses":{"storage":"ControllerResizeInProgress"},"conditions":[{"type":"Resizing","status":"True"}]}}"#,
            ])
            .await,
    );
    let shown = cluster
        .kubectl([
            "get",
            "pvc",
            "grows",
            "-o",
            "jsonpath={.status.allocatedResources.storage} {.status.allocatedResourceStatuses.storage} {.status.conditions[0].type}",
        ])
        .await;
    ok("get status", &shown);
    assert_eq!(shown.stdout, "1536Mi ControllerResizeInProgress Resizing");
    let bogus = cluster
        .kubectl([
            "patch",
            "pvc",
            "grows",
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"allocatedResourceStatuses":{"storage":"Shrinking"}}}"#,
        ])
        .await;
    assert_eq!(bogus.code, 1);
    assert!(
        bogus.stderr.contains("status.allocatedResourceStatus: Unsupported value: \"storage\": supported values: \"ControllerResizeInProgress\", \"ControllerResizeInfeasible\", \"NodeResizeInProgress\", \"NodeResizeInfeasible\", \"NodeResizePending\""),
        "{}",
        bogus.stderr
    );
}
