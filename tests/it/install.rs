//! `lpp manifests` and `lpp install` against the sandbox, with the real binary and kubectl.

use serde_json::Value;

use crate::support::{TestCluster, lpp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_are_real_kubernetes_and_install_is_idempotent() {
    let printed = lpp(["manifests"]);
    assert_eq!(printed.code, 0, "{printed:?}");
    assert!(
        printed.stdout.contains("kind: StorageClass"),
        "{}",
        printed.stdout
    );
    let json = lpp(["manifests", "-o", "json"]);
    let list: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 8);

    let cluster = TestCluster::start().await;
    let file = cluster.dir().join("install.yaml");
    std::fs::write(&file, &printed.stdout).unwrap();
    let checked = cluster
        .kubectl(["apply", "--dry-run=client", "-f", file.to_str().unwrap()])
        .await;
    assert_eq!(checked.code, 0, "{checked:?}");
    assert!(
        checked
            .stdout
            .contains("storageclass.storage.k8s.io/local-path created (dry run)"),
        "{}",
        checked.stdout
    );

    let first = cluster.lpp(["install", "-o", "json"]).await;
    assert_eq!(first.code, 0, "{first:?}");
    let first: Value = serde_json::from_str(&first.stdout).unwrap();
    assert!(
        first["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "created"),
        "{first}"
    );
    let second = cluster.lpp(["install", "-o", "json"]).await;
    assert_eq!(second.code, 0, "{second:?}");
    let second: Value = serde_json::from_str(&second.stdout).unwrap();
    assert!(
        second["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "unchanged"),
        "{second}"
    );
    let got = cluster
        .kubectl(["get", "storageclass", "local-path", "-o", "json"])
        .await;
    let class: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(class["provisioner"], "rancher.io/local-path");
    assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(
        class["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "lpp"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_refuses_while_volumes_exist_and_then_names_the_data_left() {
    use k8s_openapi::api::core::v1::PersistentVolume;
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{Api, PostParams};
    let cluster = TestCluster::start().await;
    assert_eq!(cluster.lpp(["install"]).await.code, 0);
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    let volume: PersistentVolume = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pvc-kept", "annotations": {"local.path.provisioner/selected-node": "node-1"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "local-path", "hostPath": {"path": "/opt/local-path-provisioner/pvc-kept"}}
    }))
    .unwrap();
    volumes
        .create(&PostParams::default(), &volume)
        .await
        .unwrap();

    let refused = cluster.lpp(["uninstall"]).await;
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(
        refused.stderr.contains("pvc-kept") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    let classes: Api<StorageClass> = Api::all(cluster.client());
    assert!(
        classes.get_opt("local-path").await.unwrap().is_some(),
        "nothing changed"
    );

    // A dry run shows what would happen even while volumes exist, and says what a real run
    // would need.
    let dry = cluster.lpp(["uninstall", "--dry-run", "-o", "name"]).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout
            .contains("storageclass.storage.k8s.io/local-path"),
        "{}",
        dry.stdout
    );
    assert!(dry.stderr.contains("--force"), "{}", dry.stderr);
    assert!(
        classes.get_opt("local-path").await.unwrap().is_some(),
        "a dry run changes nothing"
    );

    // --force asks first, listing what goes and what stays; without a terminal it needs --yes.
    let unconfirmed = cluster.lpp(["uninstall", "--force"]).await;
    assert_eq!(unconfirmed.code, 3, "{unconfirmed:?}");
    assert!(
        unconfirmed
            .stderr
            .contains("delete StorageClass local-path")
            && unconfirmed
                .stderr
                .contains("keep pvc-kept node-1:/opt/local-path-provisioner/pvc-kept")
            && unconfirmed.stderr.contains("add --yes"),
        "{}",
        unconfirmed.stderr
    );
    assert!(
        classes.get_opt("local-path").await.unwrap().is_some(),
        "nothing changed without --yes"
    );

    let done = cluster.lpp(["uninstall", "--force", "--yes"]).await;
    assert_eq!(done.code, 0, "{done:?}");
    assert!(
        done.stderr
            .contains("node-1:/opt/local-path-provisioner/pvc-kept"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("lpp gc"), "{}", done.stderr);
    assert!(classes.get_opt("local-path").await.unwrap().is_none());
    assert!(
        volumes.get_opt("pvc-kept").await.unwrap().is_some(),
        "PVs are not uninstall's to delete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_what_needs_attention_and_is_healthy_once_a_provisioner_runs() {
    let cluster = TestCluster::start().await;
    let bare = cluster.lpp(["status", "-o", "json"]).await;
    assert_eq!(bare.code, 3, "{bare:?}");
    assert!(bare.stdout.contains("lpp install"), "{}", bare.stdout);

    assert_eq!(cluster.lpp(["install"]).await.code, 0);
    let idle = cluster.lpp(["status", "-o", "json"]).await;
    assert_eq!(idle.code, 3, "{idle:?}");
    let report: Value = serde_json::from_str(&idle.stdout).unwrap();
    assert_eq!(report["lease"]["held"], false);
    assert_eq!(report["classes"][0]["name"], "local-path");
    assert_eq!(report["installedVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["apiVersion"], "lpp.dev/v1alpha1");
    assert_eq!(report["kind"], "StatusReport");

    let _runner = cluster.spawn_lpp(["run"]);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = cluster.lpp(["status", "-o", "json"]).await;
        if out.code == 0 {
            let report: Value = serde_json::from_str(&out.stdout).unwrap();
            assert_eq!(report["lease"]["held"], true);
            assert!(report["lease"]["holder"].as_str().unwrap().contains('/'));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never healthy: {out:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let table = cluster.lpp(["status"]).await;
    assert!(table.stdout.contains("LEASE HOLDER"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_over_an_upstream_install_needs_yes_and_changes_nothing_without_it() {
    let cluster = TestCluster::start().await;
    // An install as k3s ships it: upstream's class and an edited ConfigMap, not labelled by lpp.
    crate::support::install_basics(&cluster).await;
    let before = cluster
        .kubectl(["get", "storageclass", "local-path", "-o", "json"])
        .await;
    let refused = cluster.lpp(["install"]).await;
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(
        refused.stderr.contains("was not installed by lpp"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    let after = cluster
        .kubectl(["get", "storageclass", "local-path", "-o", "json"])
        .await;
    assert_eq!(before.stdout, after.stdout, "nothing changed");

    let taken = cluster.lpp(["install", "--yes"]).await;
    assert_eq!(taken.code, 0, "{taken:?}");
    let again = cluster.lpp(["install", "-o", "json"]).await;
    assert_eq!(
        again.code, 0,
        "an install of our own needs no confirmation: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_adds_a_least_privilege_deployment_of_lpp_run() {
    let printed = lpp(["manifests", "--in-cluster", "-o", "json"]);
    assert_eq!(printed.code, 0, "{printed:?}");
    let list: Value = serde_json::from_str(&printed.stdout).unwrap();
    let deployment = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment")
        .clone();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"][0], "run");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(
        container["image"]
            .as_str()
            .unwrap()
            .starts_with("ghcr.io/lpp-dev/lpp:")
    );

    let cluster = TestCluster::start().await;
    // YAML: kubectl validates a JSON `List` through /openapi/v2, which the sandbox does not serve.
    let yaml = lpp(["manifests", "--in-cluster"]);
    let file = cluster.dir().join("in-cluster.yaml");
    std::fs::write(&file, &yaml.stdout).unwrap();
    let checked = cluster
        .kubectl(["apply", "--dry-run=client", "-f", file.to_str().unwrap()])
        .await;
    assert_eq!(checked.code, 0, "{checked:?}");
    let installed = cluster.lpp(["install", "--in-cluster", "-o", "name"]).await;
    assert!(
        installed
            .stdout
            .contains("deployment.apps/local-path-provisioner"),
        "{installed:?}"
    );
    let removed = cluster.lpp(["uninstall", "-o", "name"]).await;
    assert!(
        removed
            .stdout
            .contains("deployment.apps/local-path-provisioner"),
        "{removed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_clear_usage_error_and_changes_nothing() {
    for (args, names) in [
        (vec!["manifests", "--path", "relative"], "\"relative\""),
        (vec!["manifests", "--path", "/"], "`/`"),
        (vec!["manifests", "--storage-class", "Bad_Name"], "Bad_Name"),
    ] {
        let out = lpp(&args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(names), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    }
    let cluster = TestCluster::start().await;
    let out = cluster
        .lpp(["install", "--node-path", "node-9=/data"])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("node-9") && out.stderr.contains("node-1"),
        "{}",
        out.stderr
    );
    let classes: kube::Api<k8s_openapi::api::storage::v1::StorageClass> =
        kube::Api::all(cluster.client());
    assert!(
        classes.get_opt("local-path").await.unwrap().is_none(),
        "nothing applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_has_a_deadline_and_says_what_it_waited_for() {
    let cluster = TestCluster::start().await;
    // The sandbox runs no Deployment controller, so the replica never becomes available.
    let out = cluster
        .lpp(["install", "--in-cluster", "--wait", "--timeout", "2s"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("no available replica after 2s"),
        "{}",
        out.stderr
    );
    let gone = cluster
        .lpp(["uninstall", "--wait", "--timeout", "30s"])
        .await;
    assert_eq!(gone.code, 0, "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_verb_is_named_and_nothing_is_applied() {
    let cluster = TestCluster::start().await;
    let restricted = cluster.kubeconfig_as("jane", &[]);
    let out = cluster
        .lpp(["--kubeconfig", restricted.to_str().unwrap(), "install"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("forbidden"), "{}", out.stderr);
    assert!(
        out.stderr.contains("User \"jane\" cannot"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_rides_out_server_errors_and_throttling() {
    // 20 % of requests answered 500 and 10 % 429: retried with backoff, as kubectl does.
    let cluster = TestCluster::start().await;
    cluster.set_faults(lpp::sandbox::Faults {
        error_rate: 0.2,
        throttle_rate: 0.1,
        ..Default::default()
    });
    for _ in 0..2 {
        let out = cluster
            .lpp_with_timeout(
                ["install", "-o", "json"],
                std::time::Duration::from_secs(120),
            )
            .await;
        assert_eq!(out.code, 0, "{out:?}");
    }
    let status = cluster
        .lpp_with_timeout(
            ["status", "-o", "json"],
            std::time::Duration::from_secs(120),
        )
        .await;
    assert_eq!(status.code, 3, "{status:?}");
    cluster.set_faults(lpp::sandbox::Faults::default());
    let again = cluster.lpp(["install", "-o", "json"]).await;
    let report: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert!(
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "unchanged"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_wide_shows_more_and_watch_prints_again_on_a_change() {
    use k8s_openapi::api::core::v1::PersistentVolume;
    use kube::api::{Api, PostParams};
    let cluster = TestCluster::start().await;
    assert_eq!(cluster.lpp(["install"]).await.code, 0);
    let table = cluster.lpp(["status"]).await;
    let wide = cluster.lpp(["status", "-o", "wide"]).await;
    assert!(!table.stdout.contains("HELPER IMAGE"), "{}", table.stdout);
    assert!(
        wide.stdout.contains("HELPER IMAGE") && wide.stdout.contains("busybox"),
        "{}",
        wide.stdout
    );
    assert!(wide.stdout.contains("CLAIM UID"), "{}", wide.stdout);

    let watcher = cluster.spawn_lpp(["status", "-w"]);
    let seen = |text: &'static str| {
        let watcher = &watcher;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let (stdout, stderr) = watcher.output();
                if stdout.contains(text) {
                    return stdout;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "`{text}` not printed within 60s:\n{stdout}\n{stderr}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    seen("PROVISIONER").await;
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    let volume: PersistentVolume = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pvc-watched", "annotations": {
            "local.path.provisioner/selected-node": "node-1",
            "pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "local-path", "persistentVolumeReclaimPolicy": "Retain",
                 "hostPath": {"path": "/opt/local-path-provisioner/pvc-watched"}}
    }))
    .unwrap();
    volumes
        .create(&PostParams::default(), &volume)
        .await
        .unwrap();
    let printed = seen("pvc-watched").await;
    assert!(printed.matches("PROVISIONER").count() >= 2, "{printed}");
    let out =
        tokio::task::spawn_blocking(move || watcher.interrupt(std::time::Duration::from_secs(30)))
            .await
            .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
}
