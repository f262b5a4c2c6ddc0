//! Volume expansion: `lpp run` is the external resizer of its volumes. A bound claim of a class
//! with `allowVolumeExpansion: true` grows; one over its path's room is refused and recovered by
//! a lower request; a failing `resize` script is in the event; a run killed mid-resize and a new
//! one converge.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::run::{WAIT, claim_on, class, event_for, provisioned, set_config, volume_path};
use crate::support::{TestCluster, install_basics, wait_for};

fn storage(
    map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Option<String> {
    map.and_then(|m| m.get("storage")).map(|q| q.0.clone())
}

fn capacity(claim: &PersistentVolumeClaim) -> Option<String> {
    storage(claim.status.as_ref().and_then(|s| s.capacity.as_ref()))
}

fn resize_status(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.allocated_resource_statuses.as_ref())
        .and_then(|m| m.get("storage").cloned())
}

fn condition<'a>(claim: &'a PersistentVolumeClaim, type_: &str) -> Option<&'a str> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
        .map(|c| c.message.as_deref().unwrap_or(""))
}

fn volume_capacity(volume: &PersistentVolume) -> Option<String> {
    storage(volume.spec.as_ref().and_then(|s| s.capacity.as_ref()))
}

async fn ask(cluster: &TestCluster, name: &str, size: &str) {
    Api::<PersistentVolumeClaim>::namespaced(cluster.client(), "default")
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"resources": {"requests": {"storage": size}}}})),
        )
        .await
        .unwrap();
}

/// Waits until the claim reports `size` with no resize under way, and returns it.
async fn grown(cluster: &TestCluster, name: &str, size: &str) -> PersistentVolumeClaim {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    wait_for(&claims, name, WAIT, |c| {
        capacity(c).as_deref() == Some(size) && resize_status(c).is_none()
    })
    .await
}

async fn volume(cluster: &TestCluster, name: &str) -> PersistentVolume {
    Api::<PersistentVolume>::all(cluster.client())
        .get(name)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_claim_grows_and_one_whose_class_forbids_it_is_untouched() {
    let cluster = TestCluster::start().await;
    let installed = cluster
        .lpp([
            "install",
            "--yes",
            "--allow-expansion",
            "--storage-class",
            "grows",
        ])
        .await;
    assert_eq!(installed.code, 0, "{installed:?}");
    class(&cluster, "local-path", json!({})).await;
    // As the service account `lpp install` sets up: its roles let it resize.
    let account = cluster.kubeconfig_as(
        "system:serviceaccount:local-path-storage:local-path-provisioner-service-account",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:local-path-storage",
        ],
    );
    let runner = cluster.spawn_lpp(["--kubeconfig", account.to_str().unwrap(), "run"]);
    let pv = provisioned(
        &cluster,
        claim_on("data", "grows", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let pv_name = pv.metadata.name.clone().unwrap();
    let fixed = provisioned(
        &cluster,
        claim_on("fixed", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;

    ask(&cluster, "data", "2Gi").await;
    let claim = grown(&cluster, "data", "2Gi").await;
    let status = claim.status.as_ref().unwrap();
    assert_eq!(
        storage(status.allocated_resources.as_ref()).as_deref(),
        Some("2Gi")
    );
    assert!(
        status
            .conditions
            .iter()
            .flatten()
            .all(|c| c.type_ != "Resizing"),
        "{status:?}"
    );
    assert_eq!(
        volume_capacity(&volume(&cluster, &pv_name).await).as_deref(),
        Some("2Gi")
    );
    assert_eq!(
        event_for(&cluster, "default", "data", "Resizing").await,
        format!("External resizer is resizing volume {pv_name}")
    );
    assert_eq!(
        event_for(&cluster, "default", "data", "VolumeResizeSuccessful").await,
        "Resize volume succeeded"
    );
    let log = runner
        .wait_for_log("resized default/data to 2Gi", WAIT)
        .await;
    assert!(!log.contains("volume expansion is off"), "{log}");
    // What people look at says so.
    let shown = cluster
        .kubectl(["get", "pvc", "data", "--no-headers"])
        .await;
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(
        shown.stdout.contains(&pv_name) && shown.stdout.contains("2Gi"),
        "{}",
        shown.stdout
    );
    let shown = cluster
        .kubectl(["get", "pv", &pv_name, "--no-headers"])
        .await;
    assert!(shown.stdout.contains("2Gi"), "{}", shown.stdout);

    // A class without allowVolumeExpansion: the API server refuses the edit, nothing changes.
    let refused = cluster
        .kubectl([
            "patch",
            "pvc",
            "fixed",
            "-p",
            r#"{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}"#,
        ])
        .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("storageclass that provisions the pvc must support resize"),
        "{}",
        refused.stderr
    );
    let fixed_now = volume(&cluster, fixed.metadata.name.as_deref().unwrap()).await;
    assert_eq!(volume_capacity(&fixed_now).as_deref(), Some("1Gi"));
}

#[test]
fn manifests_show_allow_expansion_only_when_asked() {
    let grows = crate::support::lpp(["manifests", "--allow-expansion"]);
    assert_eq!(grows.code, 0, "{grows:?}");
    assert!(
        grows.stdout.contains("allowVolumeExpansion: true"),
        "{}",
        grows.stdout
    );
    assert!(
        grows.stdout.contains("persistentvolumeclaims/status"),
        "{}",
        grows.stdout
    );
    let plain = crate::support::lpp(["manifests"]);
    assert!(
        !plain.stdout.contains("allowVolumeExpansion"),
        "{}",
        plain.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_may_not_write_claim_status_provisions_without_resizing() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let installed = cluster.lpp(["install", "--yes"]).await;
    assert_eq!(installed.code, 0, "{installed:?}");
    // A ClusterRole as an older lpp (or upstream) installed it: no claim status.
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(cluster.client());
    let mut role = roles.get("local-path-provisioner-role").await.unwrap();
    role.rules.iter_mut().flatten().for_each(|r| {
        r.resources.iter_mut().flatten().for_each(|x| {
            if x == "persistentvolumeclaims/status" {
                *x = "persistentvolumeclaims".into();
            }
        })
    });
    roles
        .replace("local-path-provisioner-role", &Default::default(), &role)
        .await
        .unwrap();
    let account = cluster.kubeconfig_as(
        "system:serviceaccount:local-path-storage:local-path-provisioner-service-account",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:local-path-storage",
        ],
    );
    let runner = cluster.spawn_lpp(["--kubeconfig", account.to_str().unwrap(), "run"]);
    runner
        .wait_for_log(
            "volume expansion is off: this account may not patch persistentvolumeclaims/status",
            WAIT,
        )
        .await;
    let pv = provisioned(
        &cluster,
        claim_on("plain", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    assert!(cluster.node_path("node-1", &volume_path(&pv)).is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_over_the_paths_room_is_refused_and_recovered_by_a_lower_request() {
    let cluster = TestCluster::builder()
        .disk("node-1:/opt/local-path-provisioner=3Gi")
        .start()
        .await;
    install_basics(&cluster).await;
    class(&cluster, "grows", json!({"allowVolumeExpansion": true})).await;
    let _runner = cluster.spawn_lpp(["run"]);
    let pv = provisioned(
        &cluster,
        claim_on("big", "grows", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let pv_name = pv.metadata.name.clone().unwrap();

    ask(&cluster, "big", "100Gi").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let refused = wait_for(&claims, "big", WAIT, |c| {
        resize_status(c).as_deref() == Some("ControllerResizeInfeasible")
            && condition(c, "ControllerResizeError").is_some()
    })
    .await;
    let message = condition(&refused, "ControllerResizeError").unwrap();
    assert!(
        message.starts_with("failed to expand pvc with not enough space to grow the volume from 1Gi to 100Gi: it needs 99GiB more, and node-1:/opt/local-path-provisioner has "),
        "{message}"
    );
    assert_eq!(capacity(&refused).as_deref(), Some("1Gi"));
    let event = event_for(&cluster, "default", "big", "VolumeResizeFailed").await;
    assert!(
        event.starts_with(&format!(
            "resize volume \"{pv_name}\" by resizer \"rancher.io/local-path\" failed: not enough space"
        )),
        "{event}"
    );
    assert_eq!(
        volume_capacity(&volume(&cluster, &pv_name).await).as_deref(),
        Some("1Gi")
    );
    let described = cluster.kubectl(["describe", "pvc", "big"]).await;
    assert_eq!(described.code, 0, "{described:?}");
    for said in [
        "ControllerResizeError",
        "not enough space",
        "VolumeResizeFailed",
    ] {
        assert!(
            described.stdout.contains(said),
            "{said}: {}",
            described.stdout
        );
    }

    // RecoverVolumeExpansionFailure: a lower request (still above the capacity) is tried.
    ask(&cluster, "big", "2Gi").await;
    let claim = grown(&cluster, "big", "2Gi").await;
    assert!(
        condition(&claim, "ControllerResizeError").is_none(),
        "{:?}",
        claim.status
    );
    assert_eq!(
        volume_capacity(&volume(&cluster, &pv_name).await).as_deref(),
        Some("2Gi")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resize_script_gets_the_new_size_and_its_failure_is_in_the_event() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    class(&cluster, "grows", json!({"allowVolumeExpansion": true})).await;
    set_config(
        &cluster,
        json!({"resize": "#!/bin/sh\necho \"quota tool says no to $VOL_SIZE_BYTES\" >&2\nexit 4\n"}),
    )
    .await;
    let runner = cluster.spawn_lpp(["run"]);
    let pv = provisioned(
        &cluster,
        claim_on("quota", "grows", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let dir = cluster.node_path("node-1", &volume_path(&pv));

    ask(&cluster, "quota", "2Gi").await;
    let event = event_for(&cluster, "default", "quota", "VolumeResizeFailed").await;
    assert!(
        event.contains("exit code 4") && event.contains("quota tool says no to 2147483648"),
        "{event}"
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let failed = wait_for(&claims, "quota", WAIT, |c| {
        condition(c, "ControllerResizeError").is_some()
    })
    .await;
    assert_eq!(
        resize_status(&failed).as_deref(),
        Some("ControllerResizeInProgress")
    );
    assert_eq!(capacity(&failed).as_deref(), Some("1Gi"));
    // Retried with backoff: recording the failure on the claim does not wake the retry.
    runner.wait_for_log("retrying in", WAIT).await;

    // Fixed: the retry runs the new script, with the setup environment and the new size.
    set_config(
        &cluster,
        json!({"resize": "#!/bin/sh\nset -eu\nprintf '%s %s %s' \"$VOL_SIZE_BYTES\" \"$VOL_MODE\" \"$*\" > \"$VOL_DIR/size\"\n"}),
    )
    .await;
    grown(&cluster, "quota", "2Gi").await;
    let written = std::fs::read_to_string(dir.join("size")).unwrap();
    assert!(
        written.starts_with("2147483648 Filesystem -p ")
            && written.ends_with("-s 2147483648 -m Filesystem -a resize"),
        "{written}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_resize_and_the_next_one_converge() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    class(&cluster, "grows", json!({"allowVolumeExpansion": true})).await;
    // A resize that waits for the test's word, so the run can be killed with it under way.
    set_config(
        &cluster,
        json!({"resize": "#!/bin/sh\nset -eu\nuntil [ -e \"$VOL_DIR/go\" ]; do sleep 0.05; done\n\
                          echo \"$VOL_SIZE_BYTES\" >> \"$VOL_DIR/resized\"\n"}),
    )
    .await;
    let first = cluster.spawn_lpp(["run"]);
    let pv = provisioned(
        &cluster,
        claim_on("crash", "grows", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let pv_name = pv.metadata.name.clone().unwrap();
    let dir = cluster.node_path("node-1", &volume_path(&pv));

    ask(&cluster, "crash", "3Gi").await;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    let resizing = ListParams::default().labels("lpp.dev/helper-action=resize");
    let deadline = tokio::time::Instant::now() + WAIT;
    while pods.list(&resizing).await.unwrap().items.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no resize helper pod"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let marked = claims.get("crash").await.unwrap();
    assert_eq!(
        resize_status(&marked).as_deref(),
        Some("ControllerResizeInProgress")
    );
    first.stop(); // SIGKILL, with the resize under way
    Api::<Lease>::namespaced(cluster.client(), "local-path-storage")
        .delete("rancher.io-local-path", &Default::default())
        .await
        .unwrap();

    let second = cluster.spawn_lpp(["run"]);
    second.wait_provisioning().await;
    std::fs::write(dir.join("go"), "").unwrap();
    grown(&cluster, "crash", "3Gi").await;
    assert_eq!(
        volume_capacity(&volume(&cluster, &pv_name).await).as_deref(),
        Some("3Gi")
    );
    // The script ran for the new size: once when the next run adopted the killed run's helper
    // pod, or again when that pod finished first and went as a leftover (scripts are
    // idempotent; the room was not asked for twice: the size is on the claim, not in memory).
    let resized = std::fs::read_to_string(dir.join("resized")).unwrap();
    assert!(
        !resized.is_empty() && resized.lines().all(|l| l == "3221225472"),
        "{resized}"
    );
    // Finished once. (It may start twice: when the killed run's helper pod goes as a
    // leftover while the new run waits on it, the operation retries.)
    let log = second.output().1;
    assert_eq!(
        log.matches("resized default/crash to 3Gi").count(),
        1,
        "{log}"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pods.list(&resizing).await.unwrap().items.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resize helper pod stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs an example quota script as a helper pod would, with `dir` as `VOL_DIR`.
fn quota_script(fs: &str, script: &str, dir: &std::path::Path) -> crate::support::Finished {
    let path = crate::support::repo_root().join(format!("examples/quota/{fs}/{script}"));
    let mut sh = std::process::Command::new("sh");
    sh.env("VOL_DIR", dir)
        .env("VOL_SIZE_BYTES", "1073741824")
        .env("VOL_MODE", "Filesystem")
        .arg(path);
    crate::support::run(sh, ["-a", script], Duration::from_secs(30))
}

#[test]
fn the_quota_examples_are_posix_sh_and_say_clearly_when_the_filesystem_cannot_enforce() {
    let tmp = tempfile::tempdir().unwrap();
    for fs in ["xfs", "ext4"] {
        for script in ["setup", "resize", "teardown"] {
            let path = crate::support::repo_root().join(format!("examples/quota/{fs}/{script}"));
            let checked = std::process::Command::new("sh")
                .arg("-n")
                .arg(&path)
                .output()
                .unwrap();
            assert!(checked.status.success(), "{}: {checked:?}", path.display());
        }
        // This machine's temporary directory enforces no project quota (or lacks the tools):
        // setup and resize refuse with the reason, and record nothing.
        let base = tmp.path().join(fs);
        std::fs::create_dir_all(&base).unwrap();
        let dir = base.join("pvc-1234_default_data");
        let clear = [
            "not XFS",
            "not ext4",
            "not found: the helper image needs",
            "not enforced on",
            "not on for",
        ];
        for script in ["setup", "resize"] {
            if script == "resize" {
                std::fs::create_dir_all(&dir).unwrap();
            }
            let out = quota_script(fs, script, &dir);
            assert_eq!(out.code, 1, "{fs} {script}: {out:?}");
            assert!(
                out.stderr.starts_with(&format!("{fs} quota {script}: "))
                    && clear.iter().any(|c| out.stderr.contains(c)),
                "{fs} {script}: {}",
                out.stderr
            );
            assert!(!base.join(".lpp-quota-projects").exists());
        }
        // A volume that never had a quota is only removed, as often as asked.
        for _ in 0..2 {
            let out = quota_script(fs, "teardown", &dir);
            assert_eq!(out.code, 0, "{fs} teardown: {out:?}");
            assert!(!dir.exists());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xfs_quota_setup_where_quotas_cannot_be_enforced_fails_the_claim_with_why() {
    let cluster = TestCluster::builder()
        .disk("node-1:/opt/local-path-provisioner=3Gi,fs=xfs")
        .start()
        .await;
    install_basics(&cluster).await;
    let setup =
        std::fs::read_to_string(crate::support::repo_root().join("examples/quota/xfs/setup"))
            .unwrap();
    set_config(&cluster, json!({ "setup": setup })).await;
    let _runner = cluster.spawn_lpp(["run"]);
    crate::run::create(
        &cluster,
        claim_on("quoted", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let event = event_for(&cluster, "default", "quoted", "ProvisioningFailed").await;
    // The script's own reason reaches the claim. Which one depends on what a helper sees at the
    // declared disk: this machine's filesystem type ("not XFS") until the sandbox's `df`/`stat`
    // stand-ins answer from the declaration, then the missing tools (or, where xfs_quota
    // exists, the mount's quota state).
    assert!(event.contains("xfs quota setup: "), "{event}");
    assert!(
        [
            "not XFS: these scripts need an XFS filesystem",
            "xfs_quota not found: the helper image needs xfsprogs",
            "project quotas are not enforced on",
        ]
        .iter()
        .any(|why| event.contains(why)),
        "{event}"
    );
}
