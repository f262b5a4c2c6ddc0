//! `lpp gc` and `lpp gc prune` against the sandbox, running the real binary.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::support::TestCluster;

const BASE: &str = "/opt/local-path-provisioner";
const UID: &str = "0b6c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21";

/// A sandbox with the provisioner's namespace, ConfigMap and class.
async fn installed() -> TestCluster {
    let cluster = TestCluster::start().await;
    crate::support::install_basics(&cluster).await;
    cluster
}

async fn create_volume(cluster: &TestCluster, name: &str, source: Value, provisioner: &str) {
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    let mut spec = json!({
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "local-path",
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}]}},
    });
    for (k, v) in source.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": provisioner}},
        "spec": spec,
    }))
    .unwrap();
    volumes
        .create(&PostParams::default(), &volume)
        .await
        .unwrap();
}

/// A layout with every kind of orphan and every kind of reference on node-1.
async fn layout(cluster: &TestCluster) -> BTreeMap<&'static str, PathBuf> {
    let base = cluster.node_path("node-1", BASE);
    let mut paths = BTreeMap::new();
    let deleted = base.join(format!("pvc-{UID}_default_gone"));
    std::fs::create_dir_all(&deleted).unwrap();
    std::fs::write(deleted.join("data"), b"old data").unwrap();
    paths.insert("deleted", deleted);
    let empty = base.join("team-a");
    std::fs::create_dir_all(&empty).unwrap();
    paths.insert("empty", empty);
    let foreign = base.join("manual-backup");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("dump.sql"), b"keep").unwrap();
    paths.insert("foreign", foreign);
    for (key, name) in [
        ("host", "pvc-host"),
        ("local", "pvc-local"),
        ("nested", "team-b"),
    ] {
        let dir = base.join(name);
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        paths.insert(key, dir);
    }
    // Referenced by PVs of another provisioner, as hostPath and as local, and a nested one.
    create_volume(
        cluster,
        "pvc-host",
        json!({"hostPath": {"path": format!("{BASE}/pvc-host")}}),
        "example.com/other",
    )
    .await;
    create_volume(
        cluster,
        "pvc-local",
        json!({"local": {"path": format!("{BASE}/pvc-local")}}),
        "rancher.io/local-path",
    )
    .await;
    create_volume(
        cluster,
        "pvc-nested",
        json!({"hostPath": {"path": format!("{BASE}/team-b/inner")}}),
        "rancher.io/local-path",
    )
    .await;
    // Ours, with its directory gone.
    create_volume(
        cluster,
        "pvc-missing",
        json!({"hostPath": {"path": format!("{BASE}/pvc-missing")}}),
        "rancher.io/local-path",
    )
    .await;
    // A symlink that points out of the base path.
    let outside = cluster.dir().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"precious").unwrap();
    std::os::unix::fs::symlink(&outside, base.join("escape")).unwrap();
    paths.insert("outside", outside);
    paths
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_orphan_is_found_and_referenced_directories_never_are() {
    let cluster = installed().await;
    layout(&cluster).await;
    let out = cluster
        .lpp(["gc", "--older-than", "0s", "-o", "json", "--exit-code"])
        .await;
    assert_eq!(out.code, 1, "--exit-code with orphans: {out:?}");
    let report = json_of(&out.stdout);
    let mut found: Vec<(String, String, bool)> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_owned(),
                o["reason"].as_str().unwrap().to_owned(),
                o["prunable"].as_bool().unwrap(),
            )
        })
        .collect();
    found.sort();
    let mut expected = vec![
        ("escape".to_owned(), "foreign".to_owned(), false),
        ("manual-backup".to_owned(), "foreign".to_owned(), false),
        (
            format!("pvc-{UID}_default_gone"),
            "volume-deleted".to_owned(),
            true,
        ),
        ("team-a".to_owned(), "empty-parent".to_owned(), true),
    ];
    expected.sort();
    assert_eq!(found, expected, "{}", out.stdout);
    assert!(
        report["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["node"] == "node-1"),
        "{}",
        out.stdout
    );
    assert_eq!(
        report["missing"][0]["volume"], "pvc-missing",
        "{}",
        out.stdout
    );
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n["ok"] == true), "{}", out.stdout);

    let table = cluster.lpp(["gc", "--older-than", "0s"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.contains("NODE"), "{}", table.stdout);
    assert!(
        table.stdout.contains(&format!("{BASE}/team-a")),
        "{}",
        table.stdout
    );

    let fresh = cluster.lpp(["gc", "-o", "json"]).await;
    assert_eq!(
        json_of(&fresh.stdout)["orphans"],
        json!([]),
        "24h by default: nothing fresh is listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_refuses_without_yes_then_archives_only_what_it_may() {
    let cluster = installed().await;
    let paths = layout(&cluster).await;

    let refused = cluster.lpp(["gc", "prune", "--older-than", "0s"]).await;
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(
        paths["deleted"].join("data").exists(),
        "nothing deleted on refusal"
    );

    let dry = cluster
        .lpp([
            "gc",
            "prune",
            "--older-than",
            "0s",
            "--dry-run",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_eq!(
        json_of(&dry.stdout)["results"].as_array().unwrap().len(),
        2,
        "{}",
        dry.stdout
    );
    assert!(
        paths["deleted"].exists() && paths["empty"].exists(),
        "a dry run changes nothing"
    );

    let done = cluster
        .lpp([
            "gc",
            "prune",
            "--older-than",
            "0s",
            "--archive",
            "--yes",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(done.code, 0, "{done:?}");
    let done_report = json_of(&done.stdout);
    let outcomes: Vec<&str> = done_report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["done", "done"], "{}", done.stdout);
    let base = cluster.node_path("node-1", BASE);
    assert!(!paths["deleted"].exists() && !paths["empty"].exists());
    assert_eq!(
        std::fs::read(base.join(format!(".lpp-trash/pvc-{UID}_default_gone/data"))).unwrap(),
        b"old data",
        "--archive keeps the data"
    );
    for key in ["foreign", "host", "local", "nested"] {
        assert!(paths[key].exists(), "{key} must stay");
    }
    assert_eq!(
        std::fs::read(paths["outside"].join("precious")).unwrap(),
        b"precious"
    );
    assert!(
        base.join("escape").symlink_metadata().is_ok(),
        "the symlink itself stays"
    );

    let after = cluster
        .lpp(["gc", "--older-than", "0s", "-o", "json"])
        .await;
    let after_report = json_of(&after.stdout);
    let names: Vec<&str> = after_report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "only the never-pruned entries remain: {}",
        after.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_or_unknown_node_is_one_clear_error() {
    let cluster = TestCluster::start().await;
    let out = cluster.lpp(["gc"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("local-path-config"), "{}", out.stderr);
    assert!(out.stderr.contains("lpp install"), "{}", out.stderr);

    let cluster = installed().await;
    let out = cluster.lpp(["gc", "--node", "node-9"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("node-9") && out.stderr.contains("node-1"),
        "{}",
        out.stderr
    );
}

/// A prune helper pod left by a killed run (or a concurrent prune) used to take the one fixed
/// name `lpp-gc-prune-<node>`, so the next prune failed with a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_pod_left_by_a_killed_prune_does_not_block_the_next() {
    use k8s_openapi::api::core::v1::Pod;
    let cluster = installed().await;
    let paths = layout(&cluster).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    let leftover: Pod = serde_json::from_value(json!({
        "metadata": {"name": "lpp-gc-prune-node-1", "labels": {
            "app.kubernetes.io/managed-by": "lpp", "lpp.dev/helper-action": "prune"}},
        "spec": {"nodeName": "node-1", "restartPolicy": "Never", "containers": [{
            "name": "helper-pod", "image": "busybox", "command": ["sh", "-c", "exit 0"]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &leftover)
        .await
        .unwrap();

    let done = cluster
        .lpp(["gc", "prune", "--older-than", "0s", "--yes", "-o", "json"])
        .await;
    assert_eq!(done.code, 0, "{done:?}");
    let report = json_of(&done.stdout);
    let outcomes: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(outcomes, vec!["done", "done"], "{}", done.stdout);
    assert!(!paths["deleted"].exists() && !paths["empty"].exists());

    let left: Vec<String> = pods
        .list(
            &kube::api::ListParams::default().labels("lpp.dev/helper-action in (inventory,prune)"),
        )
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(
        left,
        vec!["lpp-gc-prune-node-1".to_owned()],
        "gc's own helper pods are deleted; the leftover is not its business"
    );
}

const UID2: &str = "1b6c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21";
const UID3: &str = "2b6c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21";

/// On node-1: `/alias` → the base path and `/srv/link` → a directory deep inside a volume
/// directory (relative symlinks, so they resolve inside the node's root); a PV spelled through
/// each; and one real orphan. Returns (aliased, deep, orphan).
async fn symlinked_layout(cluster: &TestCluster) -> (PathBuf, PathBuf, PathBuf) {
    let base = cluster.node_path("node-1", BASE);
    let aliased = base.join(format!("pvc-{UID}_default_aliased"));
    let deep = base.join(format!("pvc-{UID2}_default_deep"));
    let orphan = base.join(format!("pvc-{UID3}_default_gone"));
    for dir in [&aliased, &deep.join("sub/data"), &orphan] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for dir in [&aliased, &deep, &orphan] {
        std::fs::write(dir.join("file"), b"data").unwrap();
    }
    std::os::unix::fs::symlink(
        "opt/local-path-provisioner",
        cluster.node_path("node-1", "/alias"),
    )
    .unwrap();
    std::fs::create_dir_all(cluster.node_path("node-1", "/srv")).unwrap();
    std::os::unix::fs::symlink(
        format!("../opt/local-path-provisioner/pvc-{UID2}_default_deep/sub"),
        cluster.node_path("node-1", "/srv/link"),
    )
    .unwrap();
    create_volume(
        cluster,
        "pvc-aliased",
        json!({"hostPath": {"path": format!("/alias/pvc-{UID}_default_aliased")}}),
        "rancher.io/local-path",
    )
    .await;
    // No node affinity: it counts on every node.
    create_volume(
        cluster,
        "pvc-deep",
        json!({"hostPath": {"path": "/srv/link/data"}, "nodeAffinity": null}),
        "example.com/other",
    )
    .await;
    (aliased, deep, orphan)
}

/// A Bound PV whose hostPath spells the base path through a symlink (`/alias/pvc-…`) used to
/// be listed as an orphan and deleted by `gc prune`: gc compared path strings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_a_pv_uses_through_a_symlinked_path_is_never_pruned() {
    let cluster = installed().await;
    let (aliased, deep, orphan) = symlinked_layout(&cluster).await;

    let out = cluster
        .lpp(["gc", "--older-than", "0s", "-o", "json"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let report = json_of(&out.stdout);
    let listed: Vec<(&str, bool)> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap(),
                o["prunable"].as_bool().unwrap(),
            )
        })
        .collect();
    let gone = format!("pvc-{UID3}_default_gone");
    assert_eq!(listed, vec![(gone.as_str(), true)], "{}", out.stdout);

    let done = cluster
        .lpp(["gc", "prune", "--older-than", "0s", "--yes", "-o", "json"])
        .await;
    assert_eq!(done.code, 0, "{done:?}");
    assert!(!orphan.exists(), "the real orphan goes: {}", done.stdout);
    assert_eq!(std::fs::read(aliased.join("file")).unwrap(), b"data");
    assert_eq!(std::fs::read(deep.join("file")).unwrap(), b"data");
    assert!(deep.join("sub/data").is_dir());
}

/// Right before acting, the prune's helper pod looks on the node where each PV it is given
/// really is, and refuses a directory one uses through a symlinked spelling (as when the PV
/// was made after the scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prune_job_refuses_on_the_node_what_a_pv_uses_through_a_symlink() {
    use lpp::gc::classify::VolumeRecord;
    use lpp::gc::prune::{self, Action, Outcome, Target};
    let cluster = installed().await;
    let (aliased, deep, orphan) = symlinked_layout(&cluster).await;
    let helpers = lpp::provision::HelperPods::new(
        lpp::config::ConfigMapContents::from_data(
            &lpp::config::default_config_map_data(),
            None,
            None,
        )
        .unwrap()
        .helper_pod,
        false,
        "local-path-storage",
        "local-path-provisioner-service-account",
        None,
        "local-path-config",
    )
    .unwrap();
    let target = |dir: &PathBuf| Target {
        node: "node-1".into(),
        base: BASE.into(),
        name: dir.file_name().unwrap().to_str().unwrap().into(),
        path: format!("{BASE}/{}", dir.file_name().unwrap().to_str().unwrap()),
        size_bytes: 0,
        action: Action::Delete,
    };
    let targets = [target(&aliased), target(&deep), target(&orphan)];
    let volume = |path: &str, node: Option<&str>| VolumeRecord {
        name: "pv".into(),
        path: path.into(),
        node: node.map(str::to_owned),
        ours: true,
    };
    let volumes = [
        volume(&format!("/alias/pvc-{UID}_default_aliased"), Some("node-1")),
        volume("/srv/link/data", None),
    ];
    let job = prune::job(
        "node-1",
        &targets.iter().collect::<Vec<_>>(),
        &volumes.iter().collect::<Vec<_>>(),
        "test",
    );
    let executor = lpp::executor::Executor::start(cluster.client(), "local-path-storage", false);
    let output = executor
        .script(
            &helpers,
            &job,
            std::time::Duration::from_secs(60),
            lpp::config::ExecutorKind::HelperPod,
        )
        .await
        .unwrap();
    assert_eq!(
        prune::parse_outcomes(&output, 3),
        vec![Outcome::InUse, Outcome::InUse, Outcome::Done],
        "{output}"
    );
    assert!(aliased.join("file").exists() && deep.join("file").exists());
    assert!(!orphan.exists());
}

/// A PV whose path ends in a symlink cannot be resolved from inside a helper pod: its node's
/// orphans are listed with the reason, and none is pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pv_gc_cannot_locate_holds_its_node() {
    let cluster = installed().await;
    let paths = layout(&cluster).await;
    std::fs::create_dir_all(cluster.node_path("node-1", "/srv")).unwrap();
    std::os::unix::fs::symlink(
        format!("../opt/local-path-provisioner/pvc-{UID}_default_gone"),
        cluster.node_path("node-1", "/srv/current"),
    )
    .unwrap();
    create_volume(
        &cluster,
        "pvc-current",
        json!({"hostPath": {"path": "/srv/current"}}),
        "example.com/other",
    )
    .await;

    let out = cluster
        .lpp(["gc", "--older-than", "0s", "-o", "json"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("node-1") && out.stderr.contains("pvc-current"),
        "{}",
        out.stderr
    );
    let report = json_of(&out.stdout);
    let deleted = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["reason"] == "volume-deleted")
        .unwrap_or_else(|| panic!("still listed: {}", out.stdout));
    assert_eq!(deleted["prunable"], false, "{}", out.stdout);
    assert!(
        deleted["held"].as_str().unwrap().contains("symlink"),
        "{}",
        out.stdout
    );

    let done = cluster
        .lpp(["gc", "prune", "--older-than", "0s", "--yes"])
        .await;
    assert_eq!(done.code, 0, "{done:?}");
    assert!(paths["deleted"].join("data").exists() && paths["empty"].exists());
}

/// `gc prune --archive` used to follow a symlinked `<base>/.lpp-trash` and move the data out of
/// the base path. A trash that is a symlink or not a directory is refused, with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_never_follows_a_symlinked_trash() {
    let cluster = installed().await;
    let paths = layout(&cluster).await;
    let elsewhere = cluster.node_path("node-1", "/opt/elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let trash = cluster.node_path("node-1", &format!("{BASE}/.lpp-trash"));
    std::os::unix::fs::symlink("../elsewhere", &trash).unwrap();

    let done = cluster
        .lpp([
            "gc",
            "prune",
            "--older-than",
            "0s",
            "--archive",
            "--yes",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(done.code, 1, "the archive was not done: {done:?}");
    let report = json_of(&done.stdout);
    let outcomes: Vec<(&str, &str)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap_or("none"),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![("archive", "trash-unsafe"), ("remove-empty", "done")],
        "{}",
        done.stdout
    );
    assert!(
        done.stderr.contains(".lpp-trash") && done.stderr.contains("remove or rename"),
        "{}",
        done.stderr
    );
    assert_eq!(
        std::fs::read(paths["deleted"].join("data")).unwrap(),
        b"old data",
        "the data stays where it was"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing appears at the symlink's target"
    );
    assert!(trash.symlink_metadata().unwrap().file_type().is_symlink());

    // A trash that is a file is refused the same way.
    std::fs::remove_file(&trash).unwrap();
    std::fs::write(&trash, b"not a directory").unwrap();
    let again = cluster
        .lpp([
            "gc",
            "prune",
            "--older-than",
            "0s",
            "--archive",
            "--yes",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(again.code, 1, "{again:?}");
    assert_eq!(
        json_of(&again.stdout)["results"][0]["outcome"],
        "trash-unsafe",
        "{}",
        again.stdout
    );
    assert!(paths["deleted"].join("data").exists());
}

/// A name with a newline used to break the table into two rows; it is shown escaped there (as
/// `ls -b` does) and exactly in JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_control_characters_keep_one_row_each() {
    let cluster = installed().await;
    let base = cluster.node_path("node-1", BASE);
    std::fs::create_dir_all(base.join("bad\nname\tx\\y")).unwrap();

    let table = cluster.lpp(["gc", "--older-than", "0s"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row: {}", table.stdout);
    assert!(
        lines[1].contains(&format!("{BASE}/bad\\nname\\tx\\\\y")),
        "{}",
        table.stdout
    );
    let names = cluster
        .lpp(["gc", "--older-than", "0s", "-o", "name"])
        .await;
    assert_eq!(names.stdout.lines().count(), 1, "{}", names.stdout);

    let json = cluster
        .lpp(["gc", "--older-than", "0s", "-o", "json"])
        .await;
    let report = json_of(&json.stdout);
    assert_eq!(report["orphans"][0]["name"], "bad\nname\tx\\y");

    let pruned = cluster
        .lpp(["gc", "prune", "--older-than", "0s", "--dry-run"])
        .await;
    assert_eq!(pruned.code, 0, "{pruned:?}");
    assert_eq!(pruned.stdout.lines().count(), 2, "{}", pruned.stdout);
}

/// `--storage-class nosuch` used to scan nothing and exit 0; like `--node nosuch` it is a usage
/// error naming the classes there are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_storage_class_is_a_usage_error() {
    let cluster = installed().await;
    for args in [
        vec!["gc", "--storage-class", "nosuch"],
        vec!["gc", "prune", "--storage-class", "nosuch", "--yes"],
    ] {
        let out = cluster.lpp(&args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("nosuch") && out.stderr.contains("local-path"),
            "{}",
            out.stderr
        );
    }
    let known = cluster
        .lpp(["gc", "--storage-class", "local-path", "-o", "json"])
        .await;
    assert_eq!(known.code, 0, "{known:?}");
}
