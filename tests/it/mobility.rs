//! `lpp adopt` and `lpp move` through the real binary on the sandbox: adopted directories bound
//! to new and Pending claims, every refusal, moves whose data is read back on the target node,
//! kill -9 at each step of a move and the rerun that finishes or undoes it, and the evacuation
//! of a node.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::json;

use crate::run::{WAIT, claim_on, is_bound, provisioned, volume_path};
use crate::support::{Finished, LppChild, TestCluster, install_basics, wait_for, wait_gone};

const BASE: &str = "/opt/local-path-provisioner";
/// Each move step the `LPP_MOVE_PAUSE_AFTER` test hook can hold a move at.
const PAUSE_POINTS: [&str; 5] = ["created", "copied", "retained", "claim-deleted", "rebound"];

/// A sandbox with the basics installed and `lpp run` provisioning.
async fn running() -> (TestCluster, LppChild) {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let runner = cluster.spawn_lpp(["run"]);
    runner.wait_provisioning().await;
    (cluster, runner)
}

fn ok(what: &str, out: &Finished) {
    assert_eq!(
        out.code, 0,
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

/// Exit 3 with `needle` in the error.
fn refused(what: &str, out: &Finished, needle: &str) {
    assert_eq!(
        out.code, 3,
        "{what} was not refused\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(needle),
        "{what}: no {needle:?} in\n{}",
        out.stderr
    );
}

/// Fills `dir` with what a move must carry: names with spaces, a nested directory, an empty
/// one, a symlink to a file, a dangling absolute symlink, an executable, a private file of
/// another owner and 3 MB that are not all alike.
fn fill(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub dir/deeper")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("sub dir/a file.txt"), "hello, moved world\n").unwrap();
    std::os::unix::fs::symlink("sub dir/a file.txt", dir.join("link to a file")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at all", dir.join("dangling")).unwrap();
    std::fs::write(dir.join("run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("secret"), "s3cret\n").unwrap();
    std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(dir.join("secret"), Some(1000), Some(1000)).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let big: Vec<u8> = (0..3_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(dir.join("sub dir/deeper/big data.bin"), big).unwrap();
}

/// Lists a directory as the tests compare it: every entry's type, mode, owner and link target,
/// every file's size and sha256. The same script runs on this machine and in pods.
const LISTING: &str = r#"cd "$1" && { find . ! -type f -printf '%y %m %U:%G %p -> %l\n'; find . -type f -printf 'f %m %U:%G %s %p\n'; find . -type f -exec sha256sum {} +; } | LC_ALL=C sort"#;

/// [`LISTING`] of a directory on this machine.
fn listing(dir: &Path) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", LISTING, "listing"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "listing {}: {out:?}", dir.display());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("big data.bin"), "{text}");
    text
}

/// A claim's volume, once Bound.
async fn volume_of(cluster: &TestCluster, namespace: &str, claim: &str) -> PersistentVolume {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), namespace);
    let bound = wait_for(&claims, claim, WAIT, is_bound).await;
    Api::<PersistentVolume>::all(cluster.client())
        .get(&bound.spec.unwrap().volume_name.unwrap())
        .await
        .unwrap()
}

fn node_of(volume: &PersistentVolume) -> String {
    volume.metadata.annotations.as_ref().unwrap()["local.path.provisioner/selected-node"].clone()
}

/// A claim of `default` provisioned on `node`, filled with [`fill`]; returns its PV and its
/// directory on this machine.
async fn filled(cluster: &TestCluster, name: &str, node: &str) -> (PersistentVolume, String) {
    let volume = provisioned(
        cluster,
        claim_on(name, "local-path", Some(node), "ReadWriteOnce"),
    )
    .await;
    let dir = cluster.node_path(node, &volume_path(&volume));
    fill(&dir);
    (volume, listing(&dir))
}

/// Runs a pod using `claim` that prints [`LISTING`] of it, and returns the node it ran on and
/// what it printed.
async fn read_back(cluster: &TestCluster, claim: &str) -> (String, String) {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let name = format!("reader-{claim}");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "c", "image": "busybox",
                     "command": ["sh", "-c", LISTING, "listing", "/data"],
                     "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
                 "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let done = wait_for(&pods, &name, WAIT, |p| {
        matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    })
    .await;
    let logs = pods.logs(&name, &LogParams::default()).await.unwrap();
    assert_eq!(
        done.status.unwrap().phase.as_deref(),
        Some("Succeeded"),
        "{logs}"
    );
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_gone(&pods, &name, WAIT).await;
    (done.spec.unwrap().node_name.unwrap(), logs)
}

/// A pod that keeps using `claim`, owned (as far as the API says) by StatefulSet `owner`.
async fn user(cluster: &TestCluster, name: &str, claim: &str, owner: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
            "name": owner, "uid": "6f1c7a52-0000-4000-8000-000000000001", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                  "command": ["sh", "-c", "while true; do sleep 3600; done"],
                  "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
                 "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    pods.create(&PostParams::default(), &pod).await.unwrap();
    wait_for(&pods, name, WAIT, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_binds_a_new_and_a_pending_claim_and_refuses_each_unsafe_case() {
    let (cluster, _runner) = running().await;
    let client = cluster.client();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let restored = cluster.node_path("node-1", &format!("{BASE}/restored"));
    fill(&restored);
    let expected = listing(&restored);
    let location = format!("node-1:{BASE}/restored");

    // --dry-run prints the PV and the claim and makes nothing.
    let dry = cluster
        .lpp([
            "adopt",
            &location,
            "--claim",
            "default/restored",
            "--dry-run",
        ])
        .await;
    ok("adopt --dry-run", &dry);
    for needle in [
        "kind: PersistentVolume",
        "lpp.dev/adopted: 'true'",
        &format!("path: {BASE}/restored"),
        "persistentVolumeReclaimPolicy: Retain",
        "kind: PersistentVolumeClaim",
    ] {
        assert!(
            dry.stdout.contains(needle) || dry.stdout.contains(&needle.replace('\'', "\"")),
            "no {needle:?} in\n{}",
            dry.stdout
        );
    }
    assert!(
        volumes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(claims.get_opt("restored").await.unwrap().is_none());
    // Without a terminal and --yes it asks no one and changes nothing.
    let unconfirmed = cluster
        .lpp(["adopt", &location, "--claim", "default/restored"])
        .await;
    refused("adopt without --yes", &unconfirmed, "--yes");
    assert!(claims.get_opt("restored").await.unwrap().is_none());

    // Into a new claim: created pre-bound, the directory where it was, Retain.
    let adopted = cluster
        .lpp(["adopt", &location, "--claim", "default/restored", "--yes"])
        .await;
    ok("adopt", &adopted);
    assert!(
        adopted.stderr.contains("reclaim policy Retain"),
        "{}",
        adopted.stderr
    );
    let volume = volume_of(&cluster, "default", "restored").await;
    assert_eq!(volume_path(&volume), format!("{BASE}/restored"));
    let annotations = volume.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["lpp.dev/adopted"], "true");
    assert_eq!(
        annotations["pv.kubernetes.io/provisioned-by"],
        "rancher.io/local-path"
    );
    let spec = volume.spec.clone().unwrap();
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
    let affinity = serde_json::to_string(&spec.node_affinity).unwrap();
    assert!(affinity.contains("\"node-1\""), "{affinity}");
    let (node, seen) = read_back(&cluster, "restored").await;
    assert_eq!(
        (node.as_str(), seen.as_str()),
        ("node-1", expected.as_str())
    );
    // status shows it adopted; gc no longer lists the directory.
    let status = cluster.lpp(["status"]).await;
    assert!(status.stdout.contains("(adopted)"), "{}", status.stdout);
    let orphan = cluster.node_path("node-1", &format!("{BASE}/left-behind"));
    std::fs::create_dir_all(&orphan).unwrap();
    let gc = cluster.lpp(["gc", "--older-than", "0"]).await;
    ok("gc", &gc);
    assert!(
        gc.stdout.contains("left-behind"),
        "gc sees orphans: {}",
        gc.stdout
    );
    assert!(!gc.stdout.contains("restored"), "{}", gc.stdout);

    // Into a Pending claim of the class, through the PV's claimRef; --reclaim-policy Delete.
    let waiting = cluster.node_path("node-2", &format!("{BASE}/from-backup"));
    std::fs::create_dir_all(&waiting).unwrap();
    std::fs::write(waiting.join("dump.sql"), "select 1;\n").unwrap();
    claims
        .create(&PostParams::default(), &crate::run::claim("waiting"))
        .await
        .unwrap();
    let pending = claims.get("waiting").await.unwrap();
    assert!(!is_bound(&pending));
    let into_pending = cluster
        .lpp([
            "adopt",
            &format!("node-2:{BASE}/from-backup"),
            "--claim",
            "default/waiting",
            "--reclaim-policy",
            "Delete",
            "--yes",
        ])
        .await;
    ok("adopt into a Pending claim", &into_pending);
    let bound = wait_for(&claims, "waiting", WAIT, is_bound).await;
    assert_eq!(bound.metadata.uid, pending.metadata.uid, "the same claim");
    let volume = volume_of(&cluster, "default", "waiting").await;
    assert_eq!(volume_path(&volume), format!("{BASE}/from-backup"));
    assert_eq!(
        volume
            .spec
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Delete")
    );
    assert!(waiting.join("dump.sql").exists());

    // Each refusal: one clear line, exit 3, nothing made.
    let before = volumes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    std::fs::create_dir_all(cluster.node_path("node-1", &format!("{BASE}/spare"))).unwrap();
    std::fs::create_dir_all(cluster.node_path("node-1", "/srv/outside")).unwrap();
    std::fs::create_dir_all(restored.join("inner")).unwrap();
    claims
        .create(
            &PostParams::default(),
            &claim_on("other-class", "fast", None, "ReadWriteOnce"),
        )
        .await
        .unwrap();
    let spare = format!("node-1:{BASE}/spare");
    for (args, needle) in [
        (
            vec![
                "adopt",
                "node-9:/opt/local-path-provisioner/spare",
                "--claim",
                "default/x",
            ],
            "node node-9 does not exist",
        ),
        (
            vec![
                "adopt",
                "node-1:/opt/local-path-provisioner/nothing",
                "--claim",
                "default/x",
            ],
            "does not exist on node node-1",
        ),
        (
            vec!["adopt", "node-1:/srv/outside", "--claim", "default/x"],
            "--allow-outside-base",
        ),
        (vec!["adopt", &location, "--claim", "default/x"], "uses it"),
        (
            vec![
                "adopt",
                "node-1:/opt/local-path-provisioner/restored/inner",
                "--claim",
                "default/x",
            ],
            "contains it",
        ),
        (
            vec!["adopt", &spare, "--claim", "default/restored"],
            "already bound",
        ),
        (
            vec!["adopt", &spare, "--claim", "default/other-class"],
            "StorageClass",
        ),
    ] {
        let mut args = args.clone();
        args.push("--yes");
        let out = cluster.lpp(&args).await;
        refused(&args.join(" "), &out, needle);
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    }
    // A base path itself, and a directory volumes lie inside.
    let parent = cluster
        .lpp([
            "adopt",
            &format!("node-1:{BASE}"),
            "--claim",
            "default/x",
            "--yes",
        ])
        .await;
    refused("adopt of a base path", &parent, "is a base path");
    let parent = cluster
        .lpp([
            "adopt",
            "node-1:/opt",
            "--claim",
            "default/x",
            "--allow-outside-base",
            "--yes",
        ])
        .await;
    refused("adopt of a volume's parent", &parent, "lies inside it");
    assert_eq!(
        volumes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        before
    );
    assert!(claims.get_opt("x").await.unwrap().is_none());
    // Outside the base paths with --allow-outside-base.
    let outside = cluster
        .lpp([
            "adopt",
            "node-1:/srv/outside",
            "--claim",
            "default/outside",
            "--allow-outside-base",
            "--yes",
        ])
        .await;
    ok("adopt --allow-outside-base", &outside);
    assert_eq!(
        volume_path(&volume_of(&cluster, "default", "outside").await),
        "/srv/outside"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_refuses_while_used_then_copies_verifies_and_rebinds_on_the_target() {
    let (cluster, _runner) = running().await;
    let client = cluster.client();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let (old, expected) = filled(&cluster, "data", "node-1").await;
    let old_name = old.metadata.name.clone().unwrap();
    let old_dir = cluster.node_path("node-1", &volume_path(&old));
    // What the user gave the claim, to be kept.
    claims
        .patch(
            "data",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"app": "db"},
                "annotations": {"team": "storage"}}})),
        )
        .await
        .unwrap();
    let before = claims.get("data").await.unwrap();

    // In use: refused, naming the pod and its owner; nothing changes.
    user(&cluster, "web-0", "data", "web").await;
    let busy = cluster
        .lpp(["move", "default/data", "--to", "node-2", "--yes"])
        .await;
    refused("move while used", &busy, "pod web-0 (StatefulSet/web)");
    assert_eq!(
        claims.get("data").await.unwrap().metadata.uid,
        before.metadata.uid
    );
    assert_eq!(
        volumes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // Same node: refused as pointless.
    let same = cluster
        .lpp(["move", "default/data", "--to", "node-1", "--yes"])
        .await;
    refused("move to the same node", &same, "already on node node-1");

    // --wait waits until the pod is gone (the user scaled down), then moves.
    let waiting = cluster.spawn_lpp([
        "move",
        "default/data",
        "--to",
        "node-2",
        "--wait",
        "--yes",
        "-o",
        "json",
    ]);
    waiting
        .wait_for_log("waiting until no pod uses claim default/data", WAIT)
        .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    let moved = waiting.wait(Duration::from_secs(120)).await;
    ok("move --wait", &moved);
    let report: serde_json::Value = serde_json::from_str(&moved.stdout).unwrap();
    assert_eq!(report["kind"], "MoveReport");
    let result = &report["moves"][0];
    assert_eq!(result["outcome"], "moved");
    assert_eq!(result["files"], 4);
    assert!(result["bytes"].as_u64().unwrap() > 3_000_000);
    assert_eq!(result["sourceKept"], true);

    // The claim: recreated with what the user gave it, Bound to a new PV on node-2.
    let after = wait_for(&claims, "data", WAIT, is_bound).await;
    assert_ne!(after.metadata.uid, before.metadata.uid);
    assert_eq!(after.metadata.labels, before.metadata.labels);
    assert_eq!(
        after.metadata.annotations.as_ref().unwrap()["team"],
        "storage"
    );
    let (a, b) = (after.spec.clone().unwrap(), before.spec.clone().unwrap());
    assert_eq!(
        (a.resources, a.access_modes, a.storage_class_name),
        (b.resources, b.access_modes, b.storage_class_name)
    );
    let new = volume_of(&cluster, "default", "data").await;
    assert_eq!(node_of(&new), "node-2");
    let new_annotations = new.metadata.annotations.clone().unwrap();
    assert!(!new_annotations.contains_key("lpp.dev/move-step"));
    assert_eq!(
        new_annotations["lpp.dev/moved-from"],
        format!("node-1:{}", volume_path(&old))
    );
    assert_eq!(
        new.spec
            .as_ref()
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Delete"),
        "the old volume's policy is given back"
    );
    assert!(volumes.get_opt(&old_name).await.unwrap().is_none());
    // The data, read back from a pod on the target node; the source stays where it was.
    let (node, seen) = read_back(&cluster, "data").await;
    assert_eq!(node, "node-2");
    assert_eq!(seen, expected);
    assert_eq!(listing(&old_dir), expected, "the source is kept");
    let status = cluster.lpp(["status"]).await;
    assert!(!status.stdout.contains("moving"), "{}", status.stdout);
}

/// Kill -9 after each step of a move: the source is intact whatever the step, and the rerun
/// finishes the move with the data verified. Killed before the point of return and asked to
/// move back, it rolls back instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_killed_at_any_step_is_finished_or_rolled_back_by_a_rerun() {
    let (cluster, _runner) = running().await;
    let client = cluster.client();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    for point in PAUSE_POINTS {
        let name = format!("at-{point}");
        let (old, expected) = filled(&cluster, &name, "node-1").await;
        let old_dir = cluster.node_path("node-1", &volume_path(&old));
        let claim = format!("default/{name}");
        let killed = cluster.spawn_lpp_env(
            ["move", &claim, "--to", "node-2", "--yes"],
            &[("LPP_MOVE_PAUSE_AFTER", point)],
        );
        killed
            .wait_for_log(&format!("paused after {point}"), WAIT)
            .await;
        killed.stop();
        // Whatever the step, the source is all there.
        assert_eq!(listing(&old_dir), expected, "{point}: the source");
        let status = cluster.lpp(["status"]).await;
        assert!(
            status
                .stdout
                .contains(&format!("a move of claim {claim} to node-2 stopped")),
            "{point}: {}",
            status.stdout
        );
        let rerun = cluster
            .lpp(["move", &claim, "--to", "node-2", "--yes", "-o", "json"])
            .await;
        ok(&format!("rerun after {point}"), &rerun);
        assert!(
            rerun.stderr.contains("was interrupted at step"),
            "{}",
            rerun.stderr
        );
        let report: serde_json::Value = serde_json::from_str(&rerun.stdout).unwrap();
        assert_eq!(report["moves"][0]["outcome"], "resumed", "{point}");
        let new = volume_of(&cluster, "default", &name).await;
        assert_eq!(node_of(&new), "node-2", "{point}");
        assert!(
            !new.metadata
                .annotations
                .as_ref()
                .unwrap()
                .contains_key("lpp.dev/move-step"),
            "{point}"
        );
        let new_dir = cluster.node_path("node-2", &volume_path(&new));
        assert_eq!(listing(&new_dir), expected, "{point}: the copy");
        assert_eq!(listing(&old_dir), expected, "{point}: the source is kept");
        assert!(
            volumes
                .get_opt(old.metadata.name.as_deref().unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }

    // Killed after the copy, then asked to move to the node it is on: rolled back.
    let (old, expected) = filled(&cluster, "back", "node-1").await;
    let old_name = old.metadata.name.clone().unwrap();
    let uid = claims.get("back").await.unwrap().metadata.uid;
    let killed = cluster.spawn_lpp_env(
        ["move", "default/back", "--to", "node-2", "--yes"],
        &[("LPP_MOVE_PAUSE_AFTER", "copied")],
    );
    killed.wait_for_log("paused after copied", WAIT).await;
    killed.stop();
    let partial: Vec<PersistentVolume> = volumes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|v| {
            v.metadata.annotations.as_ref().is_some_and(|a| {
                a.get("lpp.dev/move-claim").map(String::as_str) == Some("default/back")
            })
        })
        .collect();
    assert_eq!(partial.len(), 1);
    let partial_dir = cluster.node_path("node-2", &volume_path(&partial[0]));
    assert_eq!(listing(&partial_dir), expected, "the copy was made");
    let back = cluster
        .lpp([
            "move",
            "default/back",
            "--to",
            "node-1",
            "--yes",
            "-o",
            "json",
        ])
        .await;
    ok("move back", &back);
    let report: serde_json::Value = serde_json::from_str(&back.stdout).unwrap();
    assert_eq!(report["moves"][0]["outcome"], "rolledBack");
    let claim = wait_for(&claims, "back", WAIT, is_bound).await;
    assert_eq!(claim.metadata.uid, uid, "the claim never left");
    assert_eq!(
        claim.spec.unwrap().volume_name.as_deref(),
        Some(old_name.as_str())
    );
    let old = volumes.get(&old_name).await.unwrap();
    assert_eq!(
        old.spec
            .as_ref()
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Delete")
    );
    wait_gone(&volumes, partial[0].metadata.name.as_deref().unwrap(), WAIT).await;
    assert!(!partial_dir.exists(), "the partial copy is removed");
    assert_eq!(
        listing(&cluster.node_path("node-1", &volume_path(&old))),
        expected
    );
    // Killed past the point of return (the claim deleted), then asked to move back: the move is
    // finished first, then the data moves back, verified both ways.
    let (_, expected) = filled(&cluster, "forth", "node-1").await;
    let killed = cluster.spawn_lpp_env(
        ["move", "default/forth", "--to", "node-2", "--yes"],
        &[("LPP_MOVE_PAUSE_AFTER", "claim-deleted")],
    );
    killed
        .wait_for_log("paused after claim-deleted", WAIT)
        .await;
    killed.stop();
    assert!(claims.get_opt("forth").await.unwrap().is_none());
    let back = cluster
        .lpp(["move", "default/forth", "--to", "node-1", "--yes"])
        .await;
    ok("move back after the point of return", &back);
    assert!(back.stderr.contains("finishing it"), "{}", back.stderr);
    let volume = volume_of(&cluster, "default", "forth").await;
    assert_eq!(node_of(&volume), "node-1");
    assert_eq!(
        listing(&cluster.node_path("node-1", &volume_path(&volume))),
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_from_evacuates_a_node_one_claim_at_a_time_after_the_plan() {
    let (cluster, _runner) = running().await;
    let mut sources = Vec::new();
    for name in ["one", "two", "three"] {
        let (volume, expected) = filled(&cluster, name, "node-1").await;
        sources.push((
            name,
            cluster.node_path("node-1", &volume_path(&volume)),
            expected,
        ));
    }
    let stays = provisioned(
        &cluster,
        claim_on("elsewhere", "local-path", Some("node-2"), "ReadWriteOnce"),
    )
    .await;
    // The plan, then a refusal without --yes: nothing moved.
    let asked = cluster
        .lpp(["move", "--all-from", "node-1", "--to", "node-2"])
        .await;
    refused("evacuation without --yes", &asked, "--yes");
    assert!(
        asked
            .stderr
            .contains("plan: move 3 volumes from node-1 to node-2"),
        "{}",
        asked.stderr
    );
    for (name, _, _) in &sources {
        assert!(
            asked.stderr.contains(&format!("default/{name}")),
            "{}",
            asked.stderr
        );
        assert_eq!(
            node_of(&volume_of(&cluster, "default", name).await),
            "node-1"
        );
    }

    let evacuated = cluster
        .lpp_with_timeout(
            [
                "move",
                "--all-from",
                "node-1",
                "--to",
                "node-2",
                "--yes",
                "--delete-source",
            ],
            Duration::from_secs(180),
        )
        .await;
    ok("evacuation", &evacuated);
    for (name, old_dir, expected) in &sources {
        let volume = volume_of(&cluster, "default", name).await;
        assert_eq!(node_of(&volume), "node-2", "{name}");
        let dir = cluster.node_path("node-2", &volume_path(&volume));
        assert_eq!(&listing(&dir), expected, "{name}");
        assert!(
            !old_dir.exists(),
            "--delete-source removed {}",
            old_dir.display()
        );
        assert!(
            evacuated.stdout.contains(&format!("default/{name}")),
            "{}",
            evacuated.stdout
        );
    }
    assert!(
        evacuated.stdout.contains("source deleted"),
        "{}",
        evacuated.stdout
    );
    assert_eq!(
        volume_of(&cluster, "default", "elsewhere")
            .await
            .metadata
            .name,
        stays.metadata.name
    );
    let (node, _) = read_back(&cluster, "two").await;
    assert_eq!(node, "node-2");
}

/// With node agents serving, the tar streams go through exec into the agents: no helper pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_node_agents_a_move_streams_through_them() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    crate::agent::agents(&cluster, &[BASE], 2).await;
    crate::run::set_config(&cluster, json!({"config.json": crate::agent::AGENT_CONFIG})).await;
    let runner = cluster.spawn_lpp(["run"]);
    runner.wait_provisioning().await;
    let (_, expected) = filled(&cluster, "data", "node-1").await;
    let moved = cluster
        .lpp(["move", "default/data", "--to", "node-2", "--yes", "-v"])
        .await;
    ok("move through the agents", &moved);
    for node in ["node-1", "node-2"] {
        assert!(
            moved
                .stderr
                .contains(&format!("session on {node}: node agent pod")),
            "{}",
            moved.stderr
        );
    }
    assert!(!moved.stderr.contains(": helper pod"), "{}", moved.stderr);
    let new = volume_of(&cluster, "default", "data").await;
    assert_eq!(node_of(&new), "node-2");
    let dir = cluster.node_path("node-2", &volume_path(&new));
    assert_eq!(listing(&dir), expected);
}
