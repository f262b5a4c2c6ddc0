//! `lpp run` when the API server is slow, a retry is waiting, or an earlier run left work behind:
//! the latent bugs of the provisioning core, each reproduced through the real binary.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::run::{WAIT, claim_on, create, is_bound, provisioned, set_config, volume_path};
use crate::support::{TestCluster, install_basics, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_renew_its_lease_stops_before_it_expires() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let runner = cluster.spawn_lpp(["run"]);
    runner.wait_provisioning().await;
    // Every request now stalls longer than a Lease request may take.
    cluster.set_faults(lpp::sandbox::Faults {
        latency: Duration::from_secs(4),
        ..lpp::sandbox::Faults::default()
    });
    let stalled = std::time::Instant::now();
    let log = runner
        .wait_for_log("could not renew the Lease", Duration::from_secs(30))
        .await;
    // Stopped within the renew deadline, well before the 15 s a Lease lives after its renewal.
    assert!(
        stalled.elapsed() < Duration::from_secs(15),
        "stopped only after {:?}:\n{log}",
        stalled.elapsed()
    );
    assert!(
        log.contains("stopped before it expires") && !log.contains("another provisioner took over"),
        "{log}"
    );
    cluster.set_faults(lpp::sandbox::Faults::default());
    let out = runner.terminate(Duration::from_secs(30));
    assert_eq!(out.code, 1, "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_bounds_requests_not_watches() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    // A setup that outlasts the request timeout twice: a watch cut by the timeout would restart.
    set_config(
        &cluster,
        json!({"setup": "#!/bin/sh\nset -eu\nsleep 2.5\nmkdir -m 0777 -p \"$VOL_DIR\"\n"}),
    )
    .await;
    let runner = cluster.spawn_lpp(["run", "--request-timeout", "1s"]);
    runner.wait_provisioning().await;
    // A first volume shows the run's watches are up; counted from then on.
    provisioned(
        &cluster,
        claim_on("first", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    cluster.sandbox().reset_request_counts();
    provisioned(
        &cluster,
        claim_on("slow", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let counts = cluster.sandbox().request_counts();
    for watched in ["persistentvolumeclaims", "persistentvolumes", "pods"] {
        let watches: u64 = counts
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("watch {watched}")))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            watches, 0,
            "{watched} watched again {watches} times: {counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_claim_wakes_its_retry_at_once() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    set_config(
        &cluster,
        json!({"setup": "#!/bin/sh\necho not yet >&2\nexit 1\n"}),
    )
    .await;
    let runner = cluster.spawn_lpp(["run", "-v", "--provisioning-retry-count", "0"]);
    create(
        &cluster,
        claim_on("patient", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    // Wait until a retry is waiting for a delay of several seconds.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = runner.output().1;
        let long_wait = log.lines().any(|l| {
            l.contains("claim default/patient")
                && l.split("retrying in ")
                    .nth(1)
                    .and_then(|t| t.split('s').next())
                    .and_then(|t| t.parse::<f64>().ok())
                    .is_some_and(|secs| secs >= 4.0)
        });
        if long_wait {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The user fixes the script and touches the claim: it is looked at now, not after the delay.
    set_config(
        &cluster,
        json!({"setup": lpp::config::DEFAULT_SETUP_SCRIPT}),
    )
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let touched = std::time::Instant::now();
    claims
        .patch(
            "patient",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"fixed": "yes"}}})),
        )
        .await
        .unwrap();
    wait_for(&claims, "patient", WAIT, is_bound).await;
    runner
        .wait_for_log("changed while waiting to retry", WAIT)
        .await;
    assert!(
        touched.elapsed() < Duration::from_secs(4),
        "bound only after {:?}",
        touched.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_left_for_another_path_is_replaced_not_adopted() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    // A setup that waits for the test's word, so the run can be killed with it under way.
    set_config(
        &cluster,
        json!({"setup": "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n\
                         until [ -e \"$VOL_DIR/../go\" ]; do sleep 0.05; done\n"}),
    )
    .await;
    let first = cluster.spawn_lpp(["run"]);
    create(
        &cluster,
        claim_on("moved", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    let deadline = tokio::time::Instant::now() + WAIT;
    while pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "no helper pod");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop(); // SIGKILL, with the helper under way
    // Meanwhile the admin moves new volumes elsewhere; the Lease of the killed run expires.
    set_config(
        &cluster,
        json!({"config.json": r#"{"nodePathMap":[
            {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/srv/volumes"]}]}"#}),
    )
    .await;
    Api::<Lease>::namespaced(cluster.client(), "local-path-storage")
        .delete("rancher.io-local-path", &Default::default())
        .await
        .unwrap();
    let second = cluster.spawn_lpp(["run"]);
    second.wait_for_log("replacing helper pod", WAIT).await;
    for base in ["/opt/local-path-provisioner", "/srv/volumes"] {
        let go = cluster.node_path("node-1", &format!("{base}/go"));
        std::fs::create_dir_all(go.parent().unwrap()).unwrap();
        std::fs::write(go, "").unwrap();
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let bound = wait_for(&claims, "moved", WAIT, is_bound).await;
    let volume = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(cluster.client())
        .get(&bound.spec.unwrap().volume_name.unwrap())
        .await
        .unwrap();
    let path = volume_path(&volume);
    assert!(path.starts_with("/srv/volumes/"), "{path}");
    assert!(cluster.node_path("node-1", &path).is_dir(), "{path} made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_without_its_node_annotation_is_reclaimed_on_the_node_carrying_its_label() {
    // As on clouds: node-2's kubernetes.io/hostname is not its name.
    let cluster = TestCluster::builder()
        .nodes(2)
        .hostname("node-2", "ip-10-0-0-2")
        .start()
        .await;
    install_basics(&cluster).await;
    let _runner = cluster.spawn_lpp(["run"]);
    let volume = provisioned(
        &cluster,
        claim_on("cloudy", "local-path", Some("node-2"), "ReadWriteOnce"),
    )
    .await;
    let name = volume.metadata.name.clone().unwrap();
    let affinity = serde_json::to_string(&volume.spec.as_ref().unwrap().node_affinity).unwrap();
    assert!(affinity.contains("ip-10-0-0-2"), "{affinity}");
    let dir = cluster.node_path("node-2", &volume_path(&volume));
    assert!(dir.is_dir());
    // A PV made by upstream (or an older lpp) has no selected-node annotation.
    let volumes: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(cluster.client());
    volumes
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {
                "local.path.provisioner/selected-node": null}}})),
        )
        .await
        .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(cluster.client(), "default")
        .delete("cloudy", &Default::default())
        .await
        .unwrap();
    crate::support::wait_gone(&volumes, &name, WAIT).await;
    assert!(!dir.exists(), "{} was left behind", dir.display());
}
