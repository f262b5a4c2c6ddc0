//! The pure provisioning core against the sandbox over HTTP: the default ConfigMap is accepted by
//! a strictly decoding API server, the helper pods the builder makes run on their node and make
//! (then remove) the directory, and the PV the plan builds binds the claim.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use lpp::config::{self, ConfigMapContents};
use lpp::provision::{self, ClaimDecision, ClaimInput, HelperOutcome, HelperPods, ReclaimDecision};
use serde_json::{Value, json};

use crate::support::{TestCluster, wait_for, wait_gone};

const DEADLINE: Duration = Duration::from_secs(30);
const NS: &str = "local-path-storage";
const PROVISIONER: &str = "rancher.io/local-path";

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Creates the helper pod, waits for it to finish, deletes it, and returns how it ended.
async fn run_helper(pods: &Api<Pod>, pod: &Pod) -> HelperOutcome {
    let name = pod.metadata.name.clone().unwrap();
    pods.create(&PostParams::default(), pod).await.unwrap();
    let done = wait_for(pods, &name, DEADLINE, |p| {
        provision::helper_outcome(p) != HelperOutcome::Running
    })
    .await;
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_gone(pods, &name, DEADLINE).await;
    provision::helper_outcome(&done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_volume_is_made_bound_and_torn_down_on_its_node() {
    let c = TestCluster::start().await;
    let client = c.client();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": NS}})),
        )
        .await
        .unwrap();
    let data = config::default_config_map_data();
    let cm: ConfigMap = from(json!({"metadata": {"name": config::CONFIG_MAP_NAME}, "data": data}));
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let stored = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get(config::CONFIG_MAP_NAME)
        .await
        .unwrap();
    let contents = ConfigMapContents::from_data(&stored.data.unwrap(), None, None).unwrap();
    let helpers = HelperPods::new(
        contents.helper_pod.clone(),
        false,
        NS,
        "local-path-provisioner-service-account",
        None,
        config::CONFIG_MAP_NAME,
    )
    .unwrap();

    let class: StorageClass = from(json!({
        "metadata": {"name": "local-path"}, "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}));
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    claims
        .create(
            &PostParams::default(),
            &from(json!({
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "resources": {"requests": {"storage": "64Mi"}}}})),
        )
        .await
        .unwrap();
    let pods_default: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods_default
        .create(
            &PostParams::default(),
            &from(json!({
            "metadata": {"name": "consumer"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                                     "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
                     "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]}})),
        )
        .await
        .unwrap();

    let claim = wait_for(&claims, "data", DEADLINE, |c| {
        provision::selected_node(c).is_some()
    })
    .await;
    let node_name = provision::selected_node(&claim).unwrap().to_string();
    let node = Api::<Node>::all(client.clone())
        .get(&node_name)
        .await
        .unwrap();
    let class = Api::<StorageClass>::all(client.clone())
        .get("local-path")
        .await
        .unwrap();
    let decision = provision::decide_claim(&ClaimInput {
        claim: &claim,
        class: Some(&class),
        node: Some(&node),
        contents: &contents,
        provisioner: PROVISIONER,
        volume_exists: false,
        choice: 7,
        volumes: &[],
        capacity: None,
    });
    let ClaimDecision::Provision(plan) = decision else {
        panic!("expected a plan: {decision:?}")
    };

    let helper_pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let create = helpers.for_volume(&plan.helper).unwrap();
    assert_eq!(
        run_helper(&helper_pods, &create).await,
        HelperOutcome::Succeeded
    );
    let on_disk = c.node_path(&node_name, &plan.path);
    assert!(on_disk.is_dir(), "{} was not made", on_disk.display());

    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    volumes
        .create(&PostParams::default(), &plan.volume)
        .await
        .unwrap();
    let bound = wait_for(&claims, "data", DEADLINE, |c| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await;
    assert_eq!(
        bound.spec.unwrap().volume_name.as_deref(),
        Some(plan.pv_name.as_str())
    );

    // Release: the consumer and the claim go, the volume is Released, the teardown runs.
    pods_default
        .delete("consumer", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods_default, "consumer", DEADLINE).await;
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    let released = wait_for(&volumes, &plan.pv_name, DEADLINE, |v| {
        v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released")
    })
    .await;
    let nodes: BTreeMap<String, ()> = BTreeMap::from([(node_name.clone(), ())]);
    let ReclaimDecision::Teardown { job, .. } = provision::decide_reclaim(
        &released,
        PROVISIONER,
        &contents,
        |n| nodes.contains_key(n),
        |_, _| None,
    ) else {
        panic!("expected a teardown");
    };
    let delete = helpers.for_volume(&job).unwrap();
    assert_eq!(
        run_helper(&helper_pods, &delete).await,
        HelperOutcome::Succeeded
    );
    assert!(!on_disk.exists(), "{} was not removed", on_disk.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_setup_reports_its_own_message() {
    let c = TestCluster::start().await;
    let client = c.client();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": NS}})),
        )
        .await
        .unwrap();
    let mut data = config::default_config_map_data();
    data.insert(
        config::SETUP_KEY.into(),
        "#!/bin/sh\necho \"refusing $VOL_DIR\" >&2\nexit 3\n".into(),
    );
    let cm: ConfigMap = from(json!({"metadata": {"name": config::CONFIG_MAP_NAME}, "data": data}));
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let contents = ConfigMapContents::from_data(&data, None, None).unwrap();
    let helpers = HelperPods::new(
        contents.helper_pod.clone(),
        false,
        NS,
        "default",
        None,
        config::CONFIG_MAP_NAME,
    )
    .unwrap();
    let job = provision::VolumeJob {
        action: provision::Action::Create,
        pv_name: "pvc-f".into(),
        node: Some("node-1".into()),
        path: "/opt/local-path-provisioner/pvc-f_default_x".into(),
        mode: "Filesystem".into(),
        size_bytes: 1024,
        user: String::new(),
        group: String::new(),
        perm: String::new(),
        script: contents.setup.clone(),
        shared: false,
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let outcome = run_helper(&pods, &helpers.for_volume(&job).unwrap()).await;
    let HelperOutcome::Failed(summary) = outcome else {
        panic!("expected a failure: {outcome:?}")
    };
    assert!(summary.contains("exit code 3"), "{summary}");
    assert!(
        summary.contains("refusing /opt/local-path-provisioner/pvc-f_default_x"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_script_keys_the_default_script_runs_inline() {
    let c = TestCluster::start().await;
    let client = c.client();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": NS}})),
        )
        .await
        .unwrap();
    let data = BTreeMap::from([(
        config::CONFIG_JSON_KEY.to_string(),
        config::render_config_json(&config::default_config_json()),
    )]);
    let contents = ConfigMapContents::from_data(&data, None, None).unwrap();
    assert!(matches!(contents.setup, config::Script::Inline(_)));
    let helpers = HelperPods::new(
        contents.helper_pod.clone(),
        false,
        NS,
        "default",
        None,
        config::CONFIG_MAP_NAME,
    )
    .unwrap();
    let job = provision::VolumeJob {
        action: provision::Action::Create,
        pv_name: "pvc-i".into(),
        node: Some("node-2".into()),
        path: "/opt/local-path-provisioner/pvc-i_default_x".into(),
        mode: "Filesystem".into(),
        size_bytes: 1024,
        user: String::new(),
        group: String::new(),
        perm: String::new(),
        script: contents.setup.clone(),
        shared: false,
    };
    let pod = helpers.for_volume(&job).unwrap();
    // No ConfigMap volume: nothing to mount from a ConfigMap that lacks the key.
    assert_eq!(
        pod.spec.as_ref().unwrap().volumes.as_ref().unwrap().len(),
        1
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    assert_eq!(run_helper(&pods, &pod).await, HelperOutcome::Succeeded);
    assert!(c.node_path("node-2", &job.path).is_dir());

    // The controller finds its helpers with one selector; a script job is not among them.
    let script = helpers
        .for_script(&provision::ScriptJob {
            name: "lpp-inventory-node-2".into(),
            action: "inventory".into(),
            node: Some("node-2".into()),
            host_dirs: vec![provision::HostDir {
                path: "/opt/local-path-provisioner".into(),
                mount_path: None,
                kind: provision::helper_pod::HostPathType::Directory,
                read_only: true,
            }],
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "ls -1 \"$1\"".into(),
                "sh".into(),
            ],
            args: vec!["/opt/local-path-provisioner".into()],
            env: vec![],
        })
        .unwrap();
    pods.create(&PostParams::default(), &script).await.unwrap();
    let volume_helpers = pods
        .list(
            &kube::api::ListParams::default().labels(provision::helper_pod::VOLUME_HELPER_SELECTOR),
        )
        .await
        .unwrap();
    assert!(volume_helpers.items.is_empty());
    let all_helpers = pods
        .list(&kube::api::ListParams::default().labels(provision::helper_pod::HELPER_SELECTOR))
        .await
        .unwrap();
    assert_eq!(all_helpers.items.len(), 1);
    let done = wait_for(&pods, "lpp-inventory-node-2", DEADLINE, |p| {
        provision::helper_outcome(p) != HelperOutcome::Running
    })
    .await;
    assert_eq!(provision::helper_outcome(&done), HelperOutcome::Succeeded);
    let logs = pods
        .logs("lpp-inventory-node-2", &Default::default())
        .await
        .unwrap();
    assert_eq!(logs.trim(), "pvc-i_default_x");
}
