//! "Nothing lost, nobody in": the attacks of a hostile tenant and the mistakes of a careless admin,
//! each reproduced against the real `lpp run` on the sandbox, and refused.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::run::{
    WAIT, claim_on, class, create, event_for, is_bound, provisioned, set_config, volume_path,
};
use crate::support::{TestCluster, install_basics, wait_for, wait_gone};

/// A claim `namespace/name` of `class` on node-1 with annotation `x: <x>`.
fn annotated(namespace: &str, name: &str, class: &str, x: &str) -> PersistentVolumeClaim {
    let mut c = claim_on(name, class, Some("node-1"), "ReadWriteOnce");
    c.metadata.namespace = Some(namespace.into());
    c.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("x".into(), x.into());
    c
}

async fn create_in(cluster: &TestCluster, claim: &PersistentVolumeClaim) {
    let ns = claim.metadata.namespace.clone().unwrap();
    Api::<PersistentVolumeClaim>::namespaced(cluster.client(), &ns)
        .create(&PostParams::default(), claim)
        .await
        .unwrap();
}

async fn namespace(cluster: &TestCluster, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(cluster.client())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// Every PV's name and path.
async fn volumes(cluster: &TestCluster) -> Vec<(String, String)> {
    Api::<PersistentVolume>::all(cluster.client())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|v| (v.metadata.name.clone().unwrap(), volume_path(v)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_pattern_never_reaches_another_claims_directory() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    class(
        &cluster,
        "patterned",
        json!({"parameters": {"pathPattern":
            "{{ .PVC.Namespace }}/{{ .PVC.Name }}/{{ .PVC.Annotations.x }}"}}),
    )
    .await;
    namespace(&cluster, "victim").await;
    let _runner = cluster.spawn_lpp(["run"]);
    let victim = annotated("victim", "v1", "patterned", "data");
    create_in(&cluster, &victim).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "victim");
    wait_for(&claims, "v1", WAIT, is_bound).await;
    let victim_dir = cluster.node_path("node-1", "/opt/local-path-provisioner/victim/v1/data");
    std::fs::write(victim_dir.join("precious"), "victim's data").unwrap();

    // Climbing out of the claim's own prefix and back down into the victim's, or up to the
    // namespace: both refused, whatever the cleaned path would look like.
    for (name, x) in [("p3b", "../../victim/v1/data"), ("up", "..")] {
        create_in(&cluster, &annotated("default", name, "patterned", x)).await;
        let refusal = event_for(&cluster, "default", name, "ProvisioningFailed").await;
        assert!(refusal.contains("invalid references"), "{name}: {refusal}");
    }
    let all = volumes(&cluster).await;
    assert_eq!(all.len(), 1, "only the victim has a volume: {all:?}");
    assert_eq!(
        std::fs::read_to_string(victim_dir.join("precious")).unwrap(),
        "victim's data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_volume_is_made_where_another_lives_and_a_refused_claim_gets_one_once_it_is_free() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    // An admin opted out of the prefix rule: claims name their own directory.
    class(
        &cluster,
        "free",
        json!({"parameters": {"pathPattern": "shared/{{ .PVC.Annotations.x }}",
                              "allowUnsafePathPattern": "true"}}),
    )
    .await;
    let _runner = cluster.spawn_lpp(["run"]);
    let first = provisioned(&cluster, annotated("default", "first", "free", "a")).await;
    let first_name = first.metadata.name.clone().unwrap();
    assert_eq!(volume_path(&first), "/opt/local-path-provisioner/shared/a");
    // Inside it, and around it: both refused, naming the volume that owns the path.
    create_in(&cluster, &annotated("default", "inside", "free", "a/sub")).await;
    let refusal = event_for(&cluster, "default", "inside", "ProvisioningFailed").await;
    assert!(
        refusal.contains(&first_name) && refusal.contains("already used"),
        "{refusal}"
    );
    create_in(&cluster, &annotated("default", "around", "free", ".")).await;
    let refusal = event_for(&cluster, "default", "around", "ProvisioningFailed").await;
    assert!(refusal.contains(&first_name), "{refusal}");
    assert_eq!(volumes(&cluster).await.len(), 1);

    // Once the first volume is gone, the refused claim is looked at again and provisioned.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    claims
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(
        &Api::<PersistentVolume>::all(cluster.client()),
        &first_name,
        WAIT,
    )
    .await;
    let bound = wait_for(&claims, "inside", WAIT, is_bound).await;
    let volume = Api::<PersistentVolume>::all(cluster.client())
        .get(&bound.spec.unwrap().volume_name.unwrap())
        .await
        .unwrap();
    assert_eq!(
        volume_path(&volume),
        "/opt/local-path-provisioner/shared/a/sub"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teardown_never_removes_a_directory_another_volume_uses() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let _runner = cluster.spawn_lpp(["run"]);
    let ours = provisioned(
        &cluster,
        claim_on("ours", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let ours_name = ours.metadata.name.clone().unwrap();
    let dir = volume_path(&ours);
    // Someone made a PV by hand for a directory inside ours.
    let theirs: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "hand-made"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual",
                 "hostPath": {"path": format!("{dir}/kept")},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}]}}}
    }))
    .unwrap();
    Api::<PersistentVolume>::all(cluster.client())
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let on_disk = cluster.node_path("node-1", &format!("{dir}/kept"));
    std::fs::create_dir_all(&on_disk).unwrap();
    std::fs::write(on_disk.join("file"), "theirs").unwrap();

    Api::<PersistentVolumeClaim>::namespaced(cluster.client(), "default")
        .delete("ours", &DeleteParams::default())
        .await
        .unwrap();
    let warning = event_for(&cluster, "default", &ours_name, "VolumeFailedDelete").await;
    assert!(
        warning.contains("hand-made") && warning.contains("kept"),
        "{warning}"
    );
    wait_gone(
        &Api::<PersistentVolume>::all(cluster.client()),
        &ours_name,
        WAIT,
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(on_disk.join("file")).unwrap(),
        "theirs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_deleted_while_its_setup_runs_gets_no_volume_and_no_directory() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    // A setup that waits for the test's word, so the claim can go while it runs.
    set_config(
        &cluster,
        json!({"setup": "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n\
                         until [ -e \"$VOL_DIR/../go\" ]; do sleep 0.05; done\n"}),
    )
    .await;
    let runner = cluster.spawn_lpp(["run"]);
    create(
        &cluster,
        claim_on("brief", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "local-path-storage");
    let deadline = tokio::time::Instant::now() + WAIT;
    let dir = loop {
        let running = pods.list(&ListParams::default()).await.unwrap().items;
        let made = running.iter().find_map(|p| {
            let env = p.spec.as_ref()?.containers.first()?.env.clone()?;
            let dir = env.iter().find(|e| e.name == "VOL_DIR")?.value.clone()?;
            cluster.node_path("node-1", &dir).exists().then_some(dir)
        });
        if let Some(dir) = made {
            break dir;
        }
        assert!(tokio::time::Instant::now() < deadline, "setup never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    claims
        .delete("brief", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&claims, "brief", WAIT).await;
    std::fs::write(
        cluster.node_path("node-1", "/opt/local-path-provisioner/go"),
        "",
    )
    .unwrap();
    // The positive signal: the run says it removes the directory of a claim that is gone.
    while !runner
        .output()
        .1
        .contains("was deleted while its directory was made")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            runner.output().1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while cluster.node_path("node-1", &dir).exists() {
        assert!(tokio::time::Instant::now() < deadline, "{dir} stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(volumes(&cluster).await.is_empty(), "no PV for nobody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_template_is_an_invalid_config_and_a_fixed_config_serves_refused_claims() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let _runner = cluster.spawn_lpp(["run"]);
    // A first volume: the run has loaded a good configuration.
    provisioned(
        &cluster,
        claim_on("first", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;
    // A template with host networking: reported on the ConfigMap, the last good one stays.
    set_config(
        &cluster,
        json!({"helperPod.yaml": "spec:\n  hostNetwork: true\n  containers:\n  - name: helper-pod\n    image: busybox\n"}),
    )
    .await;
    let invalid = event_for(
        &cluster,
        "local-path-storage",
        "local-path-config",
        "InvalidConfiguration",
    )
    .await;
    assert!(invalid.contains("hostNetwork"), "{invalid}");
    provisioned(
        &cluster,
        claim_on("still", "local-path", Some("node-1"), "ReadWriteOnce"),
    )
    .await;

    // A valid config that serves no path on node-2 refuses its claim; fixing it serves it.
    set_config(
        &cluster,
        json!({"helperPod.yaml": lpp::config::default_helper_pod_yaml("busybox"),
               "config.json": r#"{"nodePathMap":[{"node":"node-2","paths":[]},
                 {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/opt/local-path-provisioner"]}]}"#}),
    )
    .await;
    create(
        &cluster,
        claim_on("later", "local-path", Some("node-2"), "ReadWriteOnce"),
    )
    .await;
    let refusal = event_for(&cluster, "default", "later", "ProvisioningFailed").await;
    assert!(
        refusal.contains("no paths for node \"node-2\""),
        "{refusal}"
    );
    // The node cannot host it: handed back to the scheduler (its selected node removed).
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    wait_for(&claims, "later", WAIT, |c| {
        c.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| !a.contains_key("volume.kubernetes.io/selected-node"))
    })
    .await;
    set_config(
        &cluster,
        json!({"config.json": r#"{"nodePathMap":[
                 {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/opt/local-path-provisioner"]}]}"#}),
    )
    .await;
    // The scheduler picks node-2 again (no pod here: the test does it), and now it serves.
    claims
        .patch(
            "later",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                &json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "node-2"}}}),
            ),
        )
        .await
        .unwrap();
    wait_for(&claims, "later", WAIT, is_bound).await;
}
