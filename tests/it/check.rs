//! `lpp check` through the real binary: each fault upstream's users meet, made on the sandbox,
//! is named with its fix; a healthy install is all ✓ and exits 0.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::run::{claim_on, class, create, event_for, provisioned, set_config, volume_path};
use crate::support::{Finished, TestCluster, TestClusterBuilder};

/// Two nodes whose base path is a declared disk with room. A path with little free space is a
/// warning, and on the bare sandbox the free space is this machine's own disk, which the tests
/// that expect no warning must not depend on.
fn roomy() -> TestClusterBuilder {
    TestCluster::builder()
        .nodes(2)
        .disk("node-1:/opt/local-path-provisioner=50Gi")
        .disk("node-2:/opt/local-path-provisioner=50Gi")
}

/// The checks of a `-o json` report.
fn checks(out: &Finished) -> Vec<serde_json::Value> {
    let report: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: not JSON: {}", out.stdout));
    assert_eq!(report["kind"], "CheckReport", "{report}");
    assert_eq!(report["apiVersion"], "lpp.dev/v1alpha1", "{report}");
    report["checks"].as_array().unwrap().clone()
}

/// The one check named `name` (on `node`, at `path` when given); panics when there is not
/// exactly one.
fn find<'a>(
    checks: &'a [serde_json::Value],
    name: &str,
    node: Option<&str>,
    path: Option<&str>,
) -> &'a serde_json::Value {
    let found: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| {
            c["name"] == name
                && node.is_none_or(|n| c["node"] == n)
                && path.is_none_or(|p| c["path"] == p)
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {node:?} {path:?}: {checks:#?}");
    found[0]
}

/// Asserts `check` came out `status` and that what it saw and its fix say these words.
fn says(check: &serde_json::Value, status: &str, seen: &[&str], fix: &[&str]) {
    assert_eq!(check["status"], status, "{check:#}");
    let text = check["seen"].as_str().unwrap();
    for word in seen {
        assert!(text.contains(word), "{word:?} not in {check:#}");
    }
    let remedy = check["fix"].as_str().unwrap_or("");
    for word in fix {
        assert!(
            remedy.contains(word),
            "{word:?} not in the fix of {check:#}"
        );
    }
}

async fn check_json(cluster: &TestCluster, args: &[&str]) -> (Finished, Vec<serde_json::Value>) {
    let mut all = vec!["check", "-o", "json"];
    all.extend(args);
    let out = cluster.lpp(all).await;
    let checks = checks(&out);
    (out, checks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_install_checks_all_ok_and_exits_0_before_and_after() {
    let cluster = roomy().start().await;
    // Before an install: nothing is refused, nothing runs on nodes.
    let pre = cluster.lpp(["check", "--pre"]).await;
    assert_eq!(pre.code, 0, "{pre:?}");
    assert!(pre.stdout.contains("✓ takeover"), "{}", pre.stdout);
    assert!(
        pre.stdout
            .contains("does not exist yet: `lpp install` creates it"),
        "{}",
        pre.stdout
    );
    assert!(!pre.stdout.contains("node-1 helper"), "{}", pre.stdout);

    let installed = cluster.lpp(["install", "--yes"]).await;
    assert_eq!(installed.code, 0, "{installed:?}");
    let runner = cluster.spawn_lpp(["run"]);
    runner.wait_provisioning().await;
    let volume = provisioned(
        &cluster,
        claim_on("data", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    assert!(cluster.node_path("node-1", &volume_path(&volume)).is_dir());

    let out = cluster.lpp(["check"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stdout.contains('✗') && !out.stdout.contains(" ! "),
        "{}",
        out.stdout
    );
    for line in [
        "✓ reachable",
        "✓ permissions-run",
        "✓ permissions-expand",
        "✓ pod-security",
        "✓ lease",
        "✓ node-1 helper",
        "✓ node-2 /opt/local-path-provisioner",
        "✓ orphans",
        "✓ missing",
    ] {
        assert!(out.stdout.contains(line), "{line}: {}", out.stdout);
    }
    assert!(
        out.stdout.contains(", 0 warnings, 0 failed"),
        "{}",
        out.stdout
    );
    // node-1 holds a volume: its base path is a writable directory, looked at through a helper.
    assert!(
        out.stdout.contains("a writable directory"),
        "{}",
        out.stdout
    );
    // The probes leave nothing behind.
    let left: Vec<_> =
        std::fs::read_dir(cluster.node_path("node-1", "/opt/local-path-provisioner"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
    assert_eq!(left.len(), 1, "only the volume's directory: {left:?}");

    // The same for scripts, in JSON and YAML.
    let (json, all) = check_json(&cluster, &[]).await;
    assert_eq!(json.code, 0, "{json:?}");
    assert!(all.iter().all(|c| c["status"] == "ok"), "{all:#?}");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["summary"]["failed"], 0);
    // The holder says which lpp it is (its Lease's app.kubernetes.io/version label).
    says(
        find(&all, "lease", None, None),
        "ok",
        &[&format!("(lpp {}) holds Lease", env!("CARGO_PKG_VERSION"))],
        &[],
    );
    let yaml = cluster
        .lpp(["check", "-o", "yaml", "--node", "node-2"])
        .await;
    assert_eq!(yaml.code, 0, "{yaml:?}");
    assert!(yaml.stdout.contains("kind: CheckReport"), "{}", yaml.stdout);
    assert!(yaml.stdout.contains("node: node-2"), "{}", yaml.stdout);
    assert!(!yaml.stdout.contains("node: node-1"), "{}", yaml.stdout);

    let unknown = cluster.lpp(["check", "--node", "node-9"]).await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("node-9"), "{}", unknown.stderr);

    let status = cluster.lpp(["status"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert!(!status.stderr.contains("lpp check"), "{}", status.stderr);

    // data: a directory no PV references, two days old, and a volume whose directory is gone.
    let base = cluster.node_path("node-1", "/opt/local-path-provisioner");
    let orphan = base.join("pvc-0b6c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21_default_gone");
    std::fs::create_dir(&orphan).unwrap();
    std::fs::write(orphan.join("data"), b"old data").unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    for path in [orphan.join("data"), orphan.clone()] {
        std::fs::File::open(&path)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
    }
    std::fs::remove_dir_all(cluster.node_path("node-1", &volume_path(&volume))).unwrap();
    let (out, all) = check_json(&cluster, &[]).await;
    assert_eq!(out.code, 3, "{out:?}");
    says(
        find(&all, "orphans", None, None),
        "warning",
        &["1 directory no PV references", "node-1"],
        &["lpp gc prune"],
    );
    says(
        find(&all, "missing", None, None),
        "failed",
        &[
            "1 volume has no directory on its node",
            volume.metadata.name.as_deref().unwrap(),
        ],
        &["lpp gc -o wide"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_a_file_a_path_that_cannot_be_made_and_a_taint_are_named_with_their_fix() {
    let cluster = TestCluster::start().await;
    let installed = cluster.lpp(["install", "--yes"]).await;
    assert_eq!(installed.code, 0, "{installed:?}");
    let _runner = cluster.spawn_lpp(["run"]);

    // Pod Security `restricted` refuses hostPath helpers: named in install and on each node.
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let enforce = |level: &str| json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": level}}});
    namespaces
        .patch(
            "local-path-storage",
            &PatchParams::default(),
            &Patch::Merge(&enforce("restricted")),
        )
        .await
        .unwrap();
    let (out, all) = check_json(&cluster, &[]).await;
    assert_eq!(out.code, 3, "{out:?}");
    let label = "kubectl label --overwrite namespace local-path-storage pod-security.kubernetes.io/enforce=privileged";
    says(
        find(&all, "pod-security", None, None),
        "failed",
        &["enforce=restricted", "hostPath"],
        &[label],
    );
    says(
        find(&all, "helper", Some("node-1"), None),
        "failed",
        &["refused", "PodSecurity \"restricted"],
        &[label],
    );
    // Before an install into it, the same namespace is only worth a look: install relabels it.
    let pre = cluster.lpp(["check", "--pre", "-o", "json"]).await;
    says(
        find(&checks(&pre), "pod-security", None, None),
        "warning",
        &[
            "enforce=restricted",
            "`lpp install` sets enforce=privileged",
        ],
        &[label],
    );
    namespaces
        .patch(
            "local-path-storage",
            &PatchParams::default(),
            &Patch::Merge(&enforce("privileged")),
        )
        .await
        .unwrap();

    // A file where node-1's base path should be; node-2 tainted NoExecute.
    let base = cluster.node_path("node-1", "/opt/local-path-provisioner");
    std::fs::create_dir_all(base.parent().unwrap()).unwrap();
    std::fs::write(&base, b"not a directory").unwrap();
    let nodes: Api<Node> = Api::all(cluster.client());
    nodes
        .patch(
            "node-2",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": [
                {"key": "dedicated", "value": "db", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    let (out, all) = check_json(&cluster, &[]).await;
    assert_eq!(out.code, 3, "{out:?}");
    says(
        find(
            &all,
            "path",
            Some("node-1"),
            Some("/opt/local-path-provisioner"),
        ),
        "failed",
        &["a file where the directory should be"],
        &[
            "nodePathMap",
            "kubectl -n local-path-storage edit configmap local-path-config",
        ],
    );
    says(
        find(&all, "taints", Some("node-2"), None),
        "failed",
        &["dedicated=db:NoExecute", "keeps helper pods off"],
        &[
            "{key: dedicated, operator: Exists, effect: NoExecute}",
            "helperPod.yaml",
        ],
    );
    // A node the helpers cannot reach is not probed.
    says(
        find(&all, "paths", Some("node-2"), None),
        "warning",
        &["taints keep helper pods off"],
        &[],
    );
    let text = cluster.lpp(["check"]).await;
    assert_eq!(text.code, 3, "{text:?}");
    assert!(
        text.stdout.contains("✗ node-1 /opt/local-path-provisioner")
            && text.stdout.contains("→ move or remove it on the node"),
        "{}",
        text.stdout
    );

    // A base path whose parent is a file cannot be made: the helper never starts, and the node
    // is reported at its deadline with the kubelet's event, not waited for.
    std::fs::remove_file(&base).unwrap();
    nodes
        .patch(
            "node-2",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": null}})),
        )
        .await
        .unwrap();
    std::fs::write(cluster.node_path("node-1", "/opt/f"), b"x").unwrap();
    set_config(
        &cluster,
        json!({"config.json": json!({"nodePathMap": [
            {"node": "node-1", "paths": ["/opt/f/x"]},
            {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/opt/local-path-provisioner"]}
        ]}).to_string()}),
    )
    .await;
    let (out, all) = check_json(&cluster, &["--timeout", "3s"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    says(
        find(&all, "helper", Some("node-1"), None),
        "failed",
        &["no answer from this node within 3s", "FailedMount"],
        &["cannot be mounted", "nodePathMap"],
    );
    says(find(&all, "helper", Some("node-2"), None), "ok", &[], &[]);
    says(
        find(
            &all,
            "path",
            Some("node-2"),
            Some("/opt/local-path-provisioner"),
        ),
        "ok",
        &["does not exist yet"],
        &[],
    );

    // On a terminal, a progress line on stderr while the nodes are checked (util-linux's
    // `script` gives it one); the report still goes to stdout.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let typescript = dir.path().join("typescript");
    let mut script = std::process::Command::new("script");
    script
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .env("HOME", dir.path())
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null());
    let shell = format!(
        "'{}' check --timeout 3s > '{}'",
        crate::support::lpp_bin().display(),
        report.display()
    );
    let out = tokio::task::spawn_blocking(move || {
        crate::support::run(
            script,
            [
                std::ffi::OsStr::new("-qec"),
                shell.as_ref(),
                typescript.as_os_str(),
            ],
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    assert_eq!(out.code, 3, "{out:?}");
    let terminal = std::fs::read_to_string(dir.path().join("typescript")).unwrap();
    assert!(terminal.contains("checking nodes"), "{terminal:?}");
    let printed = std::fs::read_to_string(&report).unwrap();
    assert!(printed.contains("✗ node-1 helper"), "{printed}");
    assert!(!printed.contains("checking nodes"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_label_an_unpullable_image_a_second_default_and_a_second_provisioner() {
    let cluster = roomy().hostname("node-2", "ip-10-0-0-2").start().await;
    let installed = cluster
        .lpp([
            "install",
            "--yes",
            "--default-class",
            "--helper-image",
            "registry.invalid/busybox",
        ])
        .await;
    assert_eq!(installed.code, 0, "{installed:?}");
    let _runner = cluster.spawn_lpp(["run"]);
    class(
        &cluster,
        "fast",
        json!({"provisioner": "example.com/fast",
               "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}),
    )
    .await;
    // k3s's bundled provisioner, or a manual upstream install, serving the same name.
    let upstream: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "local-path-provisioner", "namespace": "kube-system"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "upstream"}},
                 "template": {"metadata": {"labels": {"app": "upstream"}},
                              "spec": {"containers": [{"name": "p",
                                  "image": "rancher/local-path-provisioner:v0.0.31",
                                  "command": ["local-path-provisioner", "start"]}]}}}
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), "kube-system");
    deployments
        .create(&PostParams::default(), &upstream)
        .await
        .unwrap();

    let (out, all) = check_json(&cluster, &[]).await;
    assert_eq!(out.code, 3, "{out:?}");
    says(
        find(&all, "hostname", Some("node-2"), None),
        "warning",
        &["kubernetes.io/hostname=ip-10-0-0-2 differs from the node name"],
        &["upstream"],
    );
    says(find(&all, "hostname", Some("node-1"), None), "ok", &[], &[]);
    for node in ["node-1", "node-2"] {
        says(
            find(&all, "helper", Some(node), None),
            "failed",
            &["registry.invalid/busybox cannot be pulled", "ErrImagePull"],
            &["mirror the image", "--helper-image"],
        );
    }
    says(
        find(&all, "default-class", None, None),
        "failed",
        &["2 default StorageClasses", "fast", "local-path"],
        &["kubectl annotate storageclass fast storageclass.kubernetes.io/is-default-class-"],
    );
    says(
        find(&all, "other-provisioners", None, None),
        "failed",
        &[
            "kube-system/local-path-provisioner",
            "also serves rancher.io/local-path",
        ],
        &["kubectl -n kube-system scale deployment local-path-provisioner --replicas=0"],
    );

    // Fixed as told, only the hostname's warning is left: exit 0, and 3 with --strict.
    deployments
        .patch(
            "local-path-provisioner",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    let annotated = cluster
        .kubectl([
            "annotate",
            "storageclass",
            "fast",
            "storageclass.kubernetes.io/is-default-class-",
        ])
        .await;
    assert_eq!(annotated.code, 0, "{annotated:?}");
    let reinstalled = cluster.lpp(["install", "--yes", "--default-class"]).await;
    assert_eq!(reinstalled.code, 0, "{reinstalled:?}");
    let (out, all) = check_json(&cluster, &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let not_ok: Vec<&serde_json::Value> = all.iter().filter(|c| c["status"] != "ok").collect();
    assert_eq!(not_ok.len(), 1, "{not_ok:#?}");
    assert_eq!(not_ok[0]["name"], "hostname");
    let strict = cluster.lpp(["check", "--strict"]).await;
    assert_eq!(strict.code, 3, "{strict:?}");
    assert!(
        strict.stdout.contains("! node-2 hostname"),
        "{}",
        strict.stdout
    );
    assert!(
        strict.stdout.contains("1 warning, 0 failed"),
        "{}",
        strict.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_permissions_a_dead_lease_holder_and_a_stuck_claim() {
    let cluster = TestCluster::start().await;
    let installed = cluster.lpp(["install", "--yes"]).await;
    assert_eq!(installed.code, 0, "{installed:?}");

    // An account with no permissions: told, per command, all that is missing at once.
    let jane = cluster.kubeconfig_as("jane", &[]);
    let out = cluster
        .lpp([
            "--kubeconfig",
            jane.to_str().unwrap(),
            "check",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let all = checks(&out);
    says(
        find(&all, "permissions-run", None, None),
        "failed",
        &[
            "`lpp run` would stop at start",
            "create/delete/get/list/watch pods in local-path-storage",
            "get/create/update leases in local-path-storage",
        ],
        &["local-path-provisioner-role"],
    );
    says(
        find(&all, "permissions-install", None, None),
        "warning",
        &["get/create/patch namespaces"],
        &["cluster admin"],
    );
    says(
        find(&all, "permissions-expand", None, None),
        "warning",
        &["patch persistentvolumeclaims/status"],
        &["`lpp install` grants it"],
    );
    let pre = cluster
        .lpp([
            "--kubeconfig",
            jane.to_str().unwrap(),
            "check",
            "--pre",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(pre.code, 3, "{pre:?}");
    says(
        find(&checks(&pre), "permissions-install", None, None),
        "failed",
        &["`lpp install` would be refused"],
        &[],
    );

    // A holder that stopped renewing: nobody provisions.
    let renewed = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "rancher.io-local-path", "namespace": "local-path-storage"},
        "spec": {"holderIdentity": "gone-host/4242", "leaseDurationSeconds": 15,
                 "acquireTime": renewed.to_string(), "renewTime": renewed.to_string()}
    }))
    .unwrap();
    Api::<Lease>::namespaced(cluster.client(), "local-path-storage")
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
    let (out, all) = check_json(&cluster, &[]).await;
    assert_eq!(out.code, 3, "{out:?}");
    says(
        find(&all, "lease", None, None),
        "failed",
        &["gone-host/4242 stopped renewing", "10m ago"],
        &["lpp run"],
    );
    let status = cluster.lpp(["status"]).await;
    assert_eq!(status.code, 3, "{status:?}");
    assert!(status.stderr.contains("`lpp check`"), "{}", status.stderr);

    // A claim that cannot be provisioned: named with the reason from its event.
    let runner = cluster.spawn_lpp(["run"]);
    runner.wait_provisioning().await;
    create(
        &cluster,
        claim_on("stuck", "local-path", Some("node-9"), "ReadWriteOnce"),
    )
    .await;
    event_for(&cluster, "default", "stuck", "ProvisioningFailed").await;
    let (out, all) = check_json(&cluster, &[]).await;
    assert_eq!(out.code, 3, "{out:?}");
    says(find(&all, "lease", None, None), "ok", &["holds Lease"], &[]);
    says(
        find(&all, "claim", None, None),
        "failed",
        &[
            "default/stuck is Pending on node node-9",
            "ProvisioningFailed",
            "node-9",
        ],
        &["kubectl -n default describe pvc stuck"],
    );
    // Worded for people too.
    let text = cluster.lpp(["check"]).await;
    assert!(
        text.stdout.contains("✗ claim") && text.stdout.contains("→ fix what the event says"),
        "{}",
        text.stdout
    );
}

/// A read-only filesystem mounted on a node path for the life of a test (unmounted on drop,
/// before the sandbox's directory goes).
struct ReadOnlyMount(std::path::PathBuf);

impl ReadOnlyMount {
    fn new(path: std::path::PathBuf) -> ReadOnlyMount {
        std::fs::create_dir_all(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=64m", "lpp-check-ro"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a read-only tmpfs needs root, as CI and the sandbox's isolation have: {out:?}"
        );
        ReadOnlyMount(path)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_base_path_and_one_that_cannot_be_made_there_are_named_with_their_fix() {
    let cluster = TestCluster::start().await;
    let installed = cluster.lpp(["install", "--yes"]).await;
    assert_eq!(installed.code, 0, "{installed:?}");
    let _runner = cluster.spawn_lpp(["run"]);
    // As on Talos, Flatcar or NixOS: a path on a read-only filesystem.
    let _mount = ReadOnlyMount::new(cluster.node_path("node-1", "/var/ro"));
    set_config(
        &cluster,
        json!({"config.json": json!({"nodePathMap": [
            {"node": "node-1", "paths": ["/var/ro", "/var/ro/volumes"]},
            {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/opt/local-path-provisioner"]}
        ]}).to_string()}),
    )
    .await;
    let (out, all) = check_json(&cluster, &["--node", "node-1"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    let writable = "point nodePathMap at a writable directory";
    says(
        find(&all, "path", Some("node-1"), Some("/var/ro")),
        "failed",
        &[
            "the helper cannot write here",
            "Read-only file system",
            "tmpfs",
            "a mount of its own",
        ],
        &[
            writable,
            "kubectl -n local-path-storage edit configmap local-path-config",
        ],
    );
    says(
        find(&all, "path", Some("node-1"), Some("/var/ro/volumes")),
        "failed",
        &["does not exist, and cannot be made", "read-only"],
        &[writable],
    );
    // Nothing was written to the node's path, and no probe pod is left.
    assert_eq!(
        std::fs::read_dir(cluster.node_path("node-1", "/var/ro"))
            .unwrap()
            .count(),
        0
    );
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(cluster.client(), "local-path-storage");
    let left = pods.list(&Default::default()).await.unwrap();
    // The check's own probe pods (the running `lpp run` measures usage with pods of its own).
    assert!(
        left.items
            .iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("lpp-check-"))
            })
            .all(|p| p.metadata.deletion_timestamp.is_some()),
        "{:?}",
        left.items
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    );
}
