//! Conformance of the sandbox's API server, driven only through `kube::Api` (over HTTP unless
//! said otherwise), and `lpp sandbox up` as a process.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, PersistentVolumeClaim};
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{TestCluster, wait_for, wait_gone};

const T: Duration = Duration::from_secs(10);

fn cm(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("configmap")
}

fn status_code(err: kube::Error) -> (u16, String, String) {
    match err {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_ready_with_hostname_labels_and_roots() {
    let cluster = TestCluster::with_nodes(3).await;
    let nodes: Api<Node> = Api::all(cluster.client());
    let list = nodes
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    let names: Vec<String> = list.items.iter().map(|n| n.name_any()).collect();
    assert_eq!(names, ["node-1", "node-2", "node-3"]);
    for node in &list.items {
        assert_eq!(
            node.labels().get("kubernetes.io/hostname"),
            Some(&node.name_any())
        );
        let status = node.status.as_ref().expect("status");
        let ready = status
            .conditions
            .as_ref()
            .expect("conditions")
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready, "{node:?}");
        assert!(
            status
                .capacity
                .as_ref()
                .expect("capacity")
                .contains_key("ephemeral-storage")
        );
        assert!(cluster.sandbox().node_root(&node.name_any()).is_dir());
    }
    assert_eq!(
        cluster.node_path("node-1", "/opt/local-path-provisioner/x"),
        cluster
            .dir()
            .join("nodes/node-1/opt/local-path-provisioner/x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_update_conflict_and_delete() {
    let cluster = TestCluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let created = api
        .create(&PostParams::default(), &cm("a", json!({"k": "v"})))
        .await
        .expect("create");
    assert!(created.uid().is_some());
    assert!(created.creation_timestamp().is_some());
    let rv1 = created.resource_version().expect("rv");

    let (code, reason, message) = status_code(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .expect_err("duplicate"),
    );
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (409, "AlreadyExists", "configmaps \"a\" already exists")
    );

    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .expect("update");
    assert_ne!(updated.resource_version().expect("rv"), rv1);
    let (code, reason, message) = status_code(
        api.replace("a", &PostParams::default(), &changed)
            .await
            .expect_err("stale"),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("the object has been modified"),
        "{message}"
    );

    let (code, _, message) = status_code(api.get("missing").await.expect_err("missing"));
    assert_eq!(
        (code, message.as_str()),
        (404, "configmaps \"missing\" not found")
    );

    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(api.get_opt("a").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_name_selectors_and_pages() {
    let cluster = TestCluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    for i in 0..5 {
        let mut obj = cm("", json!({}));
        obj.metadata.name = None;
        obj.metadata.generate_name = Some("gen-".into());
        obj.metadata.labels = Some([("n".to_string(), (i % 2).to_string())].into());
        let made = api
            .create(&PostParams::default(), &obj)
            .await
            .expect("create");
        assert!(
            made.name_any().starts_with("gen-") && made.name_any().len() == 9,
            "{}",
            made.name_any()
        );
    }
    let odd = api
        .list(&ListParams::default().labels("n=1"))
        .await
        .expect("list");
    assert_eq!(odd.items.len(), 2);
    let not_odd = api
        .list(&ListParams::default().labels("n notin (1)"))
        .await
        .expect("list");
    assert_eq!(not_odd.items.len(), 3);
    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("continue token");
    // Changes between the pages are not in them: every page is the list at the first page's
    // resourceVersion, so that a watch from it sees each change once.
    let mut early = cm("aaa-made-between-pages", json!({}));
    early.metadata.labels = Some([("n".to_string(), "0".to_string())].into());
    api.create(&PostParams::default(), &early)
        .await
        .expect("create between pages");
    let last = api.list(&ListParams::default()).await.expect("list").items;
    let changed = last.last().expect("a last object").name_any();
    api.patch(
        &changed,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .expect("change between pages");
    let rest = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(rest.items.len(), 3);
    assert!(rest.metadata.continue_.as_deref().unwrap_or("").is_empty());
    assert_eq!(
        rest.metadata.resource_version,
        first.metadata.resource_version
    );
    let page_two_last = rest.items.last().expect("page 2 has objects");
    assert_eq!(page_two_last.name_any(), changed);
    assert!(
        page_two_last
            .data
            .as_ref()
            .is_none_or(|d| !d.contains_key("k")),
        "{page_two_last:?}"
    );
    assert!(
        rest.items
            .iter()
            .all(|c| c.name_any() != "aaa-made-between-pages")
    );
    let (code, _, message) = status_code(
        api.list(&ListParams::default().continue_token("not-a-token"))
            .await
            .expect_err("a bad continue token"),
    );
    assert_eq!(code, 400, "{message}");
    api.delete("aaa-made-between-pages", &DeleteParams::default())
        .await
        .expect("delete");
    let one = api
        .list(
            &ListParams::default().fields(&format!("metadata.name={}", first.items[0].name_any())),
        )
        .await
        .expect("by name");
    assert_eq!(one.items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_decoded_strictly_and_validated() {
    let cluster = TestCluster::start().await;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        cluster.client(),
        "default",
        &kube::api::ApiResource::erase::<ConfigMap>(&()),
    );
    let bad: kube::api::DynamicObject = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"x": true}}),
    )
    .expect("dynamic");
    let (code, reason, message) = status_code(
        api.create(&PostParams::default(), &bad)
            .await
            .expect_err("typed"),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"), "{message}");
    let (code, reason, _) = status_code(
        api.patch("b", &PatchParams::apply("t"), &Patch::Apply(&bad))
            .await
            .expect_err("typed apply"),
    );
    assert_eq!((code, reason.as_str()), (500, "InternalError"));
    let bad_name: kube::api::DynamicObject = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}}),
    )
    .expect("dynamic");
    let (code, reason, message) = status_code(
        api.create(&PostParams::default(), &bad_name)
            .await
            .expect_err("name"),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        message.starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name"),
        "{message}"
    );
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let pvc: PersistentVolumeClaim =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": {}})).expect("pvc");
    let (code, _, message) = status_code(
        pvcs.create(&PostParams::default(), &pvc)
            .await
            .expect_err("pvc"),
    );
    assert_eq!(code, 422, "{message}");
    let nowhere: Api<ConfigMap> = Api::namespaced(cluster.client(), "nope");
    let (code, _, message) = status_code(
        nowhere
            .create(&PostParams::default(), &cm("x", json!({})))
            .await
            .expect_err("ns"),
    );
    assert_eq!(
        (code, message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_merge_strategic_json_and_apply() {
    let cluster = TestCluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    api.create(
        &PostParams::default(),
        &cm("p", json!({"a": "1", "b": "2"})),
    )
    .await
    .expect("create");
    let merged = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .expect("merge");
    assert_eq!(
        merged.data.expect("data"),
        [
            ("b".to_string(), "2".to_string()),
            ("c".to_string(), "3".to_string())
        ]
        .into()
    );
    let strategic = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"finalizers": ["x/y"]}})),
        )
        .await
        .expect("strategic");
    assert_eq!(strategic.finalizers(), ["x/y"]);
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}]))
            .expect("json patch");
    let jsoned = api
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .expect("json");
    assert!(jsoned.finalizers().is_empty());

    let ssa = PatchParams::apply("lpp");
    let applied = api
        .patch("s", &ssa, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"x": "1", "y": "2"}})))
        .await
        .expect("apply creates");
    let rv = applied.resource_version();
    let again = api
        .patch("s", &ssa, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"x": "1", "y": "2"}})))
        .await
        .expect("apply again");
    assert_eq!(
        again.resource_version(),
        rv,
        "an apply that changes nothing keeps the resourceVersion"
    );
    let dropped = api
        .patch("s", &ssa, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"x": "1"}})))
        .await
        .expect("apply drops y");
    assert_eq!(
        dropped.data.expect("data"),
        [("x".to_string(), "1".to_string())].into()
    );
    let (code, reason, message) = status_code(
        api.patch("s", &PatchParams::apply("other"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"x": "2"}})))
            .await
            .expect_err("conflict"),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(message.contains("conflict with \"lpp\""), "{message}");
    let forced = api
        .patch("s", &PatchParams::apply("other").force(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"x": "2"}})))
        .await
        .expect("forced");
    assert_eq!(forced.data.expect("data")["x"], "2");
    let dry = api
        .patch("s", &PatchParams::apply("lpp").force().dry_run(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"x": "9"}})))
        .await
        .expect("dry run");
    assert_eq!(dry.data.expect("data")["x"], "9");
    assert_eq!(
        api.get("s").await.expect("get").data.expect("data")["x"],
        "2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion_and_namespaces_take_their_objects() {
    let cluster = TestCluster::start().await;
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create ns");
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "team");
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held)
        .await
        .expect("create held");
    api.create(&PostParams::default(), &cm("free", json!({})))
        .await
        .expect("create free");

    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete held");
    let marked = api.get("held").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .expect("delete ns");
    wait_gone(&api, "free", T).await;
    let terminating = namespaces
        .get("team")
        .await
        .expect("namespace waits for the finalizer");
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    wait_gone(&api, "held", T).await;
    wait_gone(&namespaces, "team", T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_list_resume_filter_and_expire() {
    let cluster = TestCluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let start = api.list(&ListParams::default()).await.expect("list");
    let rv = start.metadata.resource_version.clone().expect("list rv");
    api.create(&PostParams::default(), &cm("w1", json!({})))
        .await
        .expect("create");
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "b"}})),
    )
    .await
    .expect("patch");
    api.delete("w1", &DeleteParams::default())
        .await
        .expect("delete");

    let stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .expect("watch");
    let events: Vec<_> = stream.take(3).try_collect().await.expect("events");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            _ => "OTHER",
        })
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);

    // A watch with a label selector sees an object leave the selection as DELETED.
    let mut labelled = cm("w2", json!({}));
    labelled.metadata.labels = Some([("sel".to_string(), "yes".to_string())].into());
    let now = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    api.create(&PostParams::default(), &labelled)
        .await
        .expect("create");
    api.patch(
        "w2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "no"}}})),
    )
    .await
    .expect("relabel");
    let stream = api
        .watch(&WatchParams::default().labels("sel=yes").timeout(5), &now)
        .await
        .expect("watch");
    let events: Vec<_> = stream.take(2).try_collect().await.expect("events");
    assert!(
        matches!(events[0], WatchEvent::Added(_)) && matches!(events[1], WatchEvent::Deleted(_)),
        "{events:?}"
    );

    // kube's watcher (list, then watch from the list's resourceVersion) sees new objects.
    let watcher = kube::runtime::watcher(api.clone(), kube::runtime::watcher::Config::default());
    let creator = api.clone();
    let watches = || -> u64 {
        cluster
            .sandbox()
            .request_counts()
            .iter()
            .filter(|(k, _)| k.starts_with("watch configmaps"))
            .map(|(_, n)| n)
            .sum()
    };
    let before = watches();
    let create = async move {
        // Created once the watcher's watch (after its list) has reached the server.
        while watches() == before {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        creator
            .create(&PostParams::default(), &cm("late", json!({})))
            .await
            .expect("create late");
    };
    let seen = async {
        let mut s = std::pin::pin!(kube::runtime::WatchStreamExt::applied_objects(watcher));
        while let Some(obj) = s.try_next().await.expect("watcher") {
            if obj.name_any() == "late" {
                return true;
            }
        }
        false
    };
    let (seen, ()) = tokio::time::timeout(T, futures::future::join(seen, create))
        .await
        .expect("watcher in time");
    assert!(seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_client_has_the_same_semantics() {
    let cluster = TestCluster::start().await;
    cluster.sandbox().reset_request_counts();
    let api: Api<ConfigMap> = Api::namespaced(cluster.in_process_client(), "default");
    api.create(&PostParams::default(), &cm("i", json!({"a": "b"})))
        .await
        .expect("create in-process");
    let over_http: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let got = wait_for(&over_http, "i", T, |c| c.data.is_some()).await;
    assert_eq!(got.data.expect("data")["a"], "b");
    let version = cluster
        .in_process_client()
        .apiserver_version()
        .await
        .expect("version");
    assert_eq!(version.git_version, "v1.33.0-lpp-sandbox");
    let counts = cluster.sandbox().request_counts();
    assert_eq!(counts.get("create configmaps"), Some(&1), "{counts:?}");
    assert!(
        counts.get("get configmaps").is_some_and(|n| *n >= 1),
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_serves_every_group() {
    let cluster = TestCluster::start().await;
    let discovery = kube::Discovery::new(cluster.client())
        .run()
        .await
        .expect("discovery");
    let mut kinds: Vec<String> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources().into_iter().map(|(r, _)| r.kind))
        .collect();
    kinds.sort();
    for kind in [
        "ConfigMap",
        "DaemonSet",
        "Lease",
        "PersistentVolume",
        "Pod",
        "StorageClass",
        "ClusterRoleBinding",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_answer_errors_when_asked() {
    let cluster = TestCluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.in_process_client(), "default");
    cluster.set_faults(lpp::sandbox::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let (code, _, _) = status_code(api.list(&ListParams::default()).await.expect_err("fault"));
    assert_eq!(code, 500);
    cluster.set_faults(lpp::sandbox::Faults {
        throttle_rate: 1.0,
        ..Default::default()
    });
    let (code, _, _) = status_code(api.list(&ListParams::default()).await.expect_err("fault"));
    assert_eq!(code, 429);
    cluster.set_faults(lpp::sandbox::Faults::default());
    api.list(&ListParams::default())
        .await
        .expect("healthy again");
}

#[test]
fn sandbox_up_serves_kubectl_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let kubeconfig = tmp.path().join("kc");
    let mut child = crate::support::lpp_in(tmp.path())
        .args(["sandbox", "up", "--dir"])
        .arg(tmp.path().join("sb"))
        .args(["--nodes", "1", "--port", "0", "--write-kubeconfig"])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lpp sandbox up");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no kubeconfig within 30 s"
        );
        assert!(
            child.try_wait().expect("poll").is_none(),
            "lpp sandbox up exited early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut kubectl = std::process::Command::new("kubectl");
    kubectl
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", tmp.path());
    let got = crate::support::run(
        kubectl,
        ["get", "nodes", "-o", "name"],
        Duration::from_secs(30),
    );
    assert_eq!(
        (got.code, got.stdout.trim()),
        (0, "node/node-1"),
        "{}",
        got.stderr
    );
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("poll") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lpp sandbox up did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("export KUBECONFIG="), "{stderr}");
}

#[test]
fn sandbox_up_refuses_an_unusable_dir() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("file");
    std::fs::write(&file, "").expect("file");
    let got = crate::support::lpp(["sandbox", "up", "--dir", file.to_str().expect("utf-8")]);
    assert_eq!(got.code, 1, "{}", got.stderr);
    assert!(got.stderr.contains("cannot use"), "{}", got.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_judges_impersonated_users_and_service_account_tokens() {
    let cluster = TestCluster::start().await;
    let alice = cluster.client_as("alice", &["devs"]).await;
    let as_alice: Api<ConfigMap> = Api::namespaced(alice.clone(), "default");
    let (code, reason, message) = status_code(
        as_alice
            .create(&PostParams::default(), &cm("x", json!({})))
            .await
            .expect_err("forbidden"),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "configmaps is forbidden: User \"alice\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    let (_, _, message) = status_code(
        Api::<Node>::all(alice.clone())
            .list(&ListParams::default())
            .await
            .expect_err("forbidden"),
    );
    assert!(message.ends_with("at the cluster scope"), "{message}");

    let admin = cluster.client();
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "metadata": {"name": "cm-writer"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "list"]}]
    }))
    .expect("role");
    Api::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "devs-write"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-writer"},
        "subjects": [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"},
                     {"kind": "ServiceAccount", "name": "default", "namespace": "default"}]
    }))
    .expect("binding");
    Api::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    as_alice
        .create(&PostParams::default(), &cm("x", json!({})))
        .await
        .expect("allowed through the group");
    let (code, _, _) = status_code(
        as_alice
            .delete("x", &DeleteParams::default())
            .await
            .expect_err("no delete"),
    );
    assert_eq!(code, 403);

    // A TokenRequest's token authenticates as its service account.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(admin.clone(), "default");
    let tr = sas
        .create_token_request(
            "default",
            &PostParams::default(),
            &k8s_openapi::api::authentication::v1::TokenRequest::default(),
        )
        .await
        .expect("token");
    let token = tr.status.expect("status").token;
    let mut config = kube::Config::new(format!("http://{}", cluster.addr()).parse().expect("url"));
    config.auth_info.token = Some(token.into());
    let sa_client = kube::Client::try_from(config).expect("client");
    let as_sa: Api<ConfigMap> = Api::namespaced(sa_client, "default");
    as_sa.get("x").await.expect("the service account may get");
    let (_, _, message) = status_code(
        as_sa
            .delete("x", &DeleteParams::default())
            .await
            .expect_err("forbidden"),
    );
    assert!(
        message.contains("User \"system:serviceaccount:default:default\" cannot delete"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_refuses_host_paths_in_labelled_namespaces() {
    let cluster = TestCluster::start().await;
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "locked",
        "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}))
    .expect("ns");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(cluster.client(), "locked");
    let pod = serde_json::from_value(json!({"metadata": {"name": "helper"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "data", "hostPath": {"path": "/opt"}}]}}))
    .expect("pod");
    let (code, reason, message) = status_code(
        pods.create(&PostParams::default(), &pod)
            .await
            .expect_err("refused"),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "pods \"helper\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"data\")"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_reviews_answer_from_rbac() {
    use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
    let cluster = TestCluster::start().await;
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": {"resourceAttributes": {"verb": "create", "group": "storage.k8s.io",
                                        "resource": "storageclasses"}}
    }))
    .expect("review");
    let as_carol: Api<SelfSubjectAccessReview> = Api::all(cluster.client_as("carol", &[]).await);
    let answer = as_carol
        .create(&PostParams::default(), &review)
        .await
        .expect("review");
    assert!(!answer.status.expect("status").allowed);
    let as_admin: Api<SelfSubjectAccessReview> = Api::all(cluster.client());
    let answer = as_admin
        .create(&PostParams::default(), &review)
        .await
        .expect("review");
    assert!(answer.status.expect("status").allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_conflicts_with_fields_another_manager_updated() {
    let cluster = TestCluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let pp = PostParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..PostParams::default()
    };
    let created = api
        .create(&pp, &cm("owned", json!({"x": "1", "y": "1"})))
        .await
        .expect("create");
    let entries = created.metadata.managed_fields.expect("managedFields");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].manager.as_deref(),
        Some("kubectl-client-side-apply")
    );
    assert_eq!(entries[0].operation.as_deref(), Some("Update"));

    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"},
                      "data": {"x": "2", "y": "1"}});
    let (code, _, message) = status_code(
        api.patch("owned", &PatchParams::apply("lpp"), &Patch::Apply(&body))
            .await
            .expect_err("conflict"),
    );
    assert_eq!(code, 409);
    assert_eq!(
        message,
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\": .data.x"
    );
    let taken = api
        .patch(
            "owned",
            &PatchParams::apply("lpp").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("force takes over");
    assert_eq!(taken.data.expect("data")["x"], "2");
    let entries = taken.metadata.managed_fields.expect("managedFields");
    let csa = entries
        .iter()
        .find(|e| e.manager.as_deref() == Some("kubectl-client-side-apply"))
        .expect("the old manager keeps y");
    let fields = serde_json::to_value(&csa.fields_v1).expect("fields");
    assert_eq!(fields, json!({"f:data": {"f:y": {}}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_goes_through_its_subresource_and_running_pods_end_gracefully() {
    use k8s_openapi::api::core::v1::Pod;
    let cluster = TestCluster::start().await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "c"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "none"}
    }))
    .expect("pvc");
    pvcs.create(&PostParams::default(), &pvc)
        .await
        .expect("pvc");
    let main = pvcs
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Bound"}, "metadata": {"labels": {"a": "b"}}}),
            ),
        )
        .await
        .expect("main patch");
    assert_eq!(
        main.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
    assert_eq!(main.metadata.labels.expect("labels")["a"], "b");
    let status = pvcs
        .patch_status(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Lost"}, "spec": {"volumeName": "x"}})),
        )
        .await
        .expect("status patch");
    assert_eq!(status.status.and_then(|s| s.phase).as_deref(), Some("Lost"));
    assert!(status.spec.and_then(|s| s.volume_name).is_none());

    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "runner"},
        "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": 5,
                 "containers": [{"name": "c", "image": "busybox",
                                 "command": ["sh", "-c", "while true; do sleep 1; done"]}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    wait_for(&pods, "runner", T, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    let marked = pods
        .delete("runner", &DeleteParams::default())
        .await
        .expect("delete");
    let marked = marked.left().expect("a running pod is only marked");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(5));
    wait_gone(&pods, "runner", T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_through_either_api_read_through_both() {
    use k8s_openapi::api::core::v1::{Event, ObjectReference};
    use kube::runtime::events::{Event as Publish, EventType, Recorder, Reporter};
    let cluster = TestCluster::start().await;
    let recorder = Recorder::new(
        cluster.client(),
        Reporter {
            controller: "lpp".into(),
            instance: Some("lpp-0".into()),
        },
    );
    let claim = ObjectReference {
        kind: Some("PersistentVolumeClaim".into()),
        name: Some("c".into()),
        namespace: Some("default".into()),
        api_version: Some("v1".into()),
        ..ObjectReference::default()
    };
    let event = Publish {
        type_: EventType::Normal,
        reason: "Provisioning".into(),
        note: Some("External provisioner is provisioning volume for claim \"default/c\"".into()),
        action: "Provision".into(),
        secondary: None,
    };
    recorder.publish(&event, &claim).await.expect("publish");
    recorder
        .publish(&event, &claim)
        .await
        .expect("publish again");

    let core: Api<Event> = Api::namespaced(cluster.client(), "default");
    let found = core
        .list(
            &ListParams::default()
                .fields("involvedObject.kind=PersistentVolumeClaim,involvedObject.name=c"),
        )
        .await
        .expect("core events");
    assert_eq!(found.items.len(), 1, "{found:?}");
    let e = &found.items[0];
    assert_eq!(e.reason.as_deref(), Some("Provisioning"));
    assert!(
        e.message
            .as_deref()
            .unwrap_or("")
            .starts_with("External provisioner")
    );
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(Some(2)));
    assert_eq!(e.reporting_component.as_deref(), Some("lpp"));

    let direct: Event = serde_json::from_value(json!({
        "metadata": {"name": "core-made"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Started", "message": "Started container c", "type": "Normal",
        "source": {"component": "kubelet"}
    }))
    .expect("event");
    core.create(&PostParams::default(), &direct)
        .await
        .expect("core create");
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(cluster.client(), "default");
    let seen = v1
        .get("core-made")
        .await
        .expect("read through events.k8s.io");
    assert_eq!(seen.note.as_deref(), Some("Started container c"));
    assert_eq!(seen.regarding.and_then(|r| r.name).as_deref(), Some("p"));
    assert_eq!(seen.reporting_controller.as_deref(), Some("kubelet"));
}

#[test]
fn sandbox_up_names_a_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("sb");
    let got = crate::support::lpp([
        "sandbox",
        "up",
        "--dir",
        dir.to_str().expect("utf-8"),
        "--port",
        &port,
    ]);
    assert_eq!(got.code, 1, "{}", got.stderr);
    assert!(
        got.stderr
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        got.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_watch_drops_end_streams_that_watchers_resume() {
    let cluster = TestCluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    cluster.set_faults(lpp::sandbox::Faults {
        watch_drop_rate: 1.0,
        ..Default::default()
    });
    let stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("watch");
    api.create(&PostParams::default(), &cm("d1", json!({})))
        .await
        .expect("create");
    let events: Vec<_> = tokio::time::timeout(T, stream.collect::<Vec<_>>())
        .await
        .expect("the dropped stream ends");
    assert!(
        events.is_empty(),
        "dropped before the first event: {events:?}"
    );
    cluster.set_faults(lpp::sandbox::Faults::default());
    let resumed = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .expect("resume");
    let first: Vec<_> = resumed.take(1).try_collect().await.expect("event");
    assert!(matches!(&first[0], WatchEvent::Added(o) if o.name_any() == "d1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_bound_once_through_the_binding_subresource() {
    let cluster = TestCluster::start().await;
    let client = cluster.client();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    let pod = serde_json::from_value(json!({"metadata": {"name": "placed"},
        "spec": {"schedulerName": "someone-else",
                 "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 1"]}]}}))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    let bind = |node: &str| {
        let body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": "placed"}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}}))
        .expect("json");
        http::Request::post("/api/v1/namespaces/default/pods/placed/binding")
            .header("Content-Type", "application/json")
            .body(body)
            .expect("request")
    };
    let status: serde_json::Value = client.request(bind("node-2")).await.expect("bound");
    assert_eq!(status["status"], "Success");
    let placed = pods.get("placed").await.expect("pod");
    assert_eq!(
        placed.spec.and_then(|s| s.node_name).as_deref(),
        Some("node-2")
    );
    let err = client
        .request::<serde_json::Value>(bind("node-1"))
        .await
        .expect_err("already bound");
    let (code, _, message) = status_code(err);
    assert_eq!(code, 409);
    assert!(
        message.contains("already assigned to node \"node-2\""),
        "{message}"
    );
}

#[test]
fn sandbox_up_fault_flags_reach_the_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let kubeconfig = tmp.path().join("kc");
    let child = crate::support::lpp_in(tmp.path())
        .args([
            "sandbox",
            "up",
            "--nodes",
            "1",
            "--fault-error-rate",
            "1",
            "--dir",
        ])
        .arg(tmp.path().join("sb"))
        .arg("--write-kubeconfig")
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn lpp sandbox up");
    // Killed however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no kubeconfig within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut kubectl = std::process::Command::new("kubectl");
    kubectl
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", tmp.path());
    let got = crate::support::run(
        kubectl,
        ["get", "configmaps", "--request-timeout=5s"],
        Duration::from_secs(60),
    );
    assert_ne!(got.code, 0, "{}", got.stdout);
    assert!(
        got.stderr.contains("an error on the server"),
        "{}",
        got.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_apply_of_a_defaulted_workload_changes_nothing() {
    use k8s_openapi::api::apps::v1::Deployment;
    let cluster = TestCluster::start().await;
    let api: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "prov"},
        "spec": {"selector": {"matchLabels": {"app": "prov"}},
                 "template": {"metadata": {"labels": {"app": "prov"}},
                              "spec": {"containers": [{"name": "c", "image": "lpp:dev",
                                                       "args": ["run"], "env": [{"name": "A", "value": "1"}]}]}}}});
    let ssa = PatchParams::apply("lpp").force();
    let first = api
        .patch("prov", &ssa, &Patch::Apply(&body))
        .await
        .expect("apply");
    // Another writer in between (a label added by hand) must not make the next apply a change.
    api.patch(
        "prov",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"by-hand": "yes"}}})),
    )
    .await
    .expect("label");
    let between = api.get("prov").await.expect("get");
    let again = api
        .patch("prov", &ssa, &Patch::Apply(&body))
        .await
        .expect("apply again");
    assert_ne!(first.resource_version(), between.resource_version());
    assert_eq!(again.resource_version(), between.resource_version());
    let c = &again
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec")
        .containers[0];
    assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_lists_and_watches() {
    let cluster = TestCluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    api.create(&PostParams::default(), &cm("m1", json!({"big": "x"})))
        .await
        .expect("create");
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("m1"));
    let one = api.get_metadata("m1").await.expect("metadata get");
    assert_eq!(one.metadata.name.as_deref(), Some("m1"));
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(cluster.client(), "default");
    let watcher = kube::runtime::watcher(meta_api, kube::runtime::watcher::Config::default());
    let found = tokio::time::timeout(T, async {
        let mut s = std::pin::pin!(kube::runtime::WatchStreamExt::applied_objects(watcher));
        while let Some(obj) = s.try_next().await.expect("metadata watcher") {
            if obj.metadata.name.as_deref() == Some("m1") {
                return true;
            }
        }
        false
    })
    .await
    .expect("in time");
    assert!(found);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_lpp_runs_against_the_cluster_until_stopped() {
    let cluster = TestCluster::start().await;
    let mut child = cluster.spawn_lpp(["version"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "lpp version did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = child.stop();
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(
        done.stdout.contains("v1.33.0-lpp-sandbox"),
        "{}",
        done.stdout
    );
}

#[test]
fn the_runner_collects_more_output_than_a_pipe_holds() {
    let got = crate::support::run(
        std::process::Command::new("sh"),
        ["-c", "head -c 300000 /dev/zero | tr '\\0' a"],
        Duration::from_secs(30),
    );
    assert_eq!((got.code, got.stdout.len()), (0, 300_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_go_with_their_only_owner() {
    let cluster = TestCluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .expect("owner");
    let other = api
        .create(&PostParams::default(), &cm("other", json!({})))
        .await
        .expect("other");
    let reference = |o: &ConfigMap| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.name_any(), "uid": o.uid().expect("uid")});
    let mut only = cm("only-child", json!({}));
    only.metadata.owner_references = Some(vec![
        serde_json::from_value(reference(&owner)).expect("ref"),
    ]);
    api.create(&PostParams::default(), &only)
        .await
        .expect("child");
    let mut shared = cm("shared-child", json!({}));
    shared.metadata.owner_references = Some(vec![
        serde_json::from_value(reference(&owner)).expect("ref"),
        serde_json::from_value(reference(&other)).expect("ref"),
    ]);
    api.create(&PostParams::default(), &shared)
        .await
        .expect("child");
    api.delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    wait_gone(&api, "only-child", T).await;
    assert!(
        api.get_opt("shared-child").await.expect("get").is_some(),
        "a dependent with another owner stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_affinity_matches_a_hostname_label_that_differs_from_the_node_name() {
    use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
    let cluster = TestCluster::builder()
        .nodes(2)
        .hostname("node-2", "ip-10-0-0-2")
        .start()
        .await;
    let client = cluster.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let node2 = nodes.get("node-2").await.expect("node-2");
    assert_eq!(
        node2
            .labels()
            .get("kubernetes.io/hostname")
            .map(String::as_str),
        Some("ip-10-0-0-2")
    );
    let node1 = nodes.get("node-1").await.expect("node-1");
    assert_eq!(
        node1
            .labels()
            .get("kubernetes.io/hostname")
            .map(String::as_str),
        Some("node-1")
    );
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = serde_json::from_value(json!({
        "metadata": {"name": "pinned"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "manual", "hostPath": {"path": "/opt/pinned", "type": "DirectoryOrCreate"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["ip-10-0-0-2"]}]}]}}}
    }))
    .expect("pv");
    volumes
        .create(&PostParams::default(), &pv)
        .await
        .expect("create pv");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim = serde_json::from_value(json!({
        "metadata": {"name": "pinned"},
        "spec": {"storageClassName": "manual", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .expect("claim");
    claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create claim");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, extra: serde_json::Value| -> Pod {
        let mut spec = json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "echo hi > /data/f"], "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "pinned"}}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("pod")
    };
    pods.create(&PostParams::default(), &pod("writer", json!({})))
        .await
        .expect("create pod");
    let done = wait_for(&pods, "writer", T, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await;
    assert_eq!(
        done.spec.and_then(|s| s.node_name).as_deref(),
        Some("node-2")
    );
    assert_eq!(
        std::fs::read_to_string(cluster.node_path("node-2", "/opt/pinned/f")).expect("file"),
        "hi\n"
    );
    // A selector naming the node by its name matches no hostname label.
    pods.create(
        &PostParams::default(),
        &pod(
            "by-name",
            json!({"nodeSelector": {"kubernetes.io/hostname": "node-2"}}),
        ),
    )
    .await
    .expect("create pod");
    let pending = wait_for(&pods, "by-name", T, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "PodScheduled" && c.status == "False")
            })
    })
    .await;
    let message = pending
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "PodScheduled"))
        .and_then(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains("node(s) didn't match Pod's node affinity/selector"),
        "{message}"
    );
}

/// The DaemonSet's pods by the node they run on (names of live pods only).
async fn daemon_pods(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let list = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .expect("list pods");
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for p in list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        out.entry(node).or_default().push(p.name_any());
    }
    out
}

async fn wait_daemon_pods_on(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    nodes: &[&str],
) -> std::collections::BTreeMap<String, Vec<String>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = daemon_pods(pods).await;
        let on: Vec<&str> = now.keys().map(String::as_str).collect();
        if on == nodes && now.values().all(|v| v.len() == 1) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "daemon pods are on {now:?}, not one on each of {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_set_runs_one_pod_per_eligible_node_and_follows_the_nodes() {
    use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
    use k8s_openapi::api::core::v1::Pod;
    let cluster = TestCluster::with_nodes(3).await;
    let client = cluster.client();
    let nodes: Api<Node> = Api::all(client.clone());
    // node-3 is reserved: its taint keeps the DaemonSet off.
    nodes
        .patch(
            "node-3",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": [{"key": "reserved", "value": "db", "effect": "NoSchedule"}]}})),
        )
        .await
        .expect("taint node-3");
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}
    }))
    .expect("daemonset");
    let created = sets
        .create(&PostParams::default(), &ds)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created
            .annotations()
            .get("deprecated.daemonset.template.generation")
            .map(String::as_str),
        Some("1")
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let placed = wait_daemon_pods_on(&pods, &["node-1", "node-2"]).await;
    let one = pods.get(&placed["node-1"][0]).await.expect("pod");
    let owner = &one.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("DaemonSet", "agent", Some(true))
    );
    assert_eq!(
        one.labels()
            .get("pod-template-generation")
            .map(String::as_str),
        Some("1")
    );
    let hash = one
        .labels()
        .get("controller-revision-hash")
        .cloned()
        .expect("hash label");
    let pinned = serde_json::to_value(&one.spec.as_ref().expect("spec").affinity).expect("json");
    assert_eq!(
        pinned["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"],
        json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}])
    );
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let revision = revisions
        .get(&format!("agent-{hash}"))
        .await
        .expect("the revision");
    assert_eq!(revision.revision, 1);
    let done = wait_for(&sets, "agent", T, |d| {
        d.status.as_ref().is_some_and(|s| {
            s.desired_number_scheduled == 2
                && s.number_ready == 2
                && s.number_available == Some(2)
                && s.updated_number_scheduled == Some(2)
                && s.observed_generation == Some(1)
        })
    })
    .await;
    let status = done.status.expect("status");
    assert_eq!(
        (
            status.current_number_scheduled,
            status.number_misscheduled,
            status.number_unavailable
        ),
        (2, 0, Some(0))
    );

    // A NoExecute taint the pod does not tolerate takes it off node-2.
    nodes
        .patch(
            "node-2",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"taints": [{"key": "maintenance", "effect": "NoExecute"}]}}),
            ),
        )
        .await
        .expect("taint node-2");
    wait_daemon_pods_on(&pods, &["node-1"]).await;
    // Lifting node-3's reservation brings a pod there; so does a new node.
    nodes
        .patch(
            "node-3",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": null}})),
        )
        .await
        .expect("untaint node-3");
    let node4: Node = serde_json::from_value(json!({
        "metadata": {"name": "node-4", "labels": {"kubernetes.io/hostname": "node-4"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .expect("node");
    nodes
        .create(&PostParams::default(), &node4)
        .await
        .expect("create node-4");
    wait_daemon_pods_on(&pods, &["node-1", "node-3", "node-4"]).await;
    wait_for(&sets, "agent", T, |d| {
        d.status
            .as_ref()
            .is_some_and(|s| s.desired_number_scheduled == 3 && s.number_available == Some(3))
    })
    .await;

    // Deleting the DaemonSet takes its pods and history.
    sets.delete("agent", &DeleteParams::default())
        .await
        .expect("delete");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .expect("list")
        .items
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "daemon pods stay");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_gone(&revisions, &format!("agent-{hash}"), T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_sets_are_validated_as_the_apiserver_does() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    let cluster = TestCluster::start().await;
    let sets: Api<DaemonSet> = Api::namespaced(cluster.client(), "default");
    let ds = |selector: serde_json::Value, restart: &str| -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": selector,
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"restartPolicy": restart,
                                           "containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .expect("daemonset")
    };
    let err = sets
        .create(
            &PostParams::default(),
            &ds(json!({"matchLabels": {"app": "other"}}), "Never"),
        )
        .await
        .expect_err("refused");
    let (code, reason, message) = status_code(err);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        message.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"agent\"}: `selector` does not match template `labels`"),
        "{message}"
    );
    assert!(
        message.contains("spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""),
        "{message}"
    );
    sets.create(
        &PostParams::default(),
        &ds(json!({"matchLabels": {"app": "agent"}}), "Always"),
    )
    .await
    .expect("valid");
    let err = sets
        .patch(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"selector": {"matchLabels": {"app": "agent", "x": "y"}},
                                           "template": {"metadata": {"labels": {"x": "y"}}}}}),
            ),
        )
        .await
        .expect_err("immutable");
    let (code, _, message) = status_code(err);
    assert_eq!(code, 422);
    assert!(message.contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"agent\", \"x\":\"y\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"), "{message}");
    // A template change bumps generation and the template generation; other spec changes only
    // the generation.
    let changed = sets
        .patch(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"minReadySeconds": 1}})),
        )
        .await
        .expect("patch");
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(
        changed
            .annotations()
            .get("deprecated.daemonset.template.generation")
            .map(String::as_str),
        Some("1")
    );
    let changed = sets
        .patch(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"deprecated.daemonset.template.generation": "7"}},
                                  "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}}})),
        )
        .await
        .expect("patch");
    assert_eq!(changed.metadata.generation, Some(3));
    assert_eq!(
        changed
            .annotations()
            .get("deprecated.daemonset.template.generation")
            .map(String::as_str),
        Some("2"),
        "the server owns the template generation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csi_storage_capacity_decides_where_a_waiting_claim_is_provisioned() {
    use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
    use k8s_openapi::api::storage::v1::{CSIDriver, CSIStorageCapacity, StorageClass};
    let cluster = TestCluster::start().await;
    let client = cluster.client();
    let drivers: Api<CSIDriver> = Api::all(client.clone());
    let driver: CSIDriver = serde_json::from_value(json!({
        "metadata": {"name": "local.csi.example.com"}, "spec": {"storageCapacity": true}}))
    .expect("driver");
    let created = drivers
        .create(&PostParams::default(), &driver)
        .await
        .expect("create driver");
    assert_eq!(created.spec.attach_required, Some(true), "defaulted");
    let classes: Api<StorageClass> = Api::all(client.clone());
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "measured"}, "provisioner": "local.csi.example.com",
        "volumeBindingMode": "WaitForFirstConsumer"}))
    .expect("class");
    classes
        .create(&PostParams::default(), &class)
        .await
        .expect("create class");
    let capacities: Api<CSIStorageCapacity> = Api::namespaced(client.clone(), "kube-system");
    let capacity: CSIStorageCapacity = serde_json::from_value(json!({
        "metadata": {"name": "node-2-measured"}, "storageClassName": "measured",
        "nodeTopology": {"matchLabels": {"kubernetes.io/hostname": "node-2"}},
        "capacity": "10Gi"}))
    .expect("capacity");
    capacities
        .create(&PostParams::default(), &capacity)
        .await
        .expect("create capacity");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let claim_and_pod = |name: &str, size: &str| -> (PersistentVolumeClaim, Pod) {
        (
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"storageClassName": "measured", "accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": size}}}}))
            .expect("claim"),
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                         "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": name}}]}}))
            .expect("pod"),
        )
    };
    let (claim, pod) = claim_and_pod("fits", "1Gi");
    let claim = claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("claim");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    let selected = wait_for(&claims, "fits", T, |c| {
        c.annotations()
            .contains_key("volume.kubernetes.io/selected-node")
    })
    .await;
    assert_eq!(
        selected.annotations()["volume.kubernetes.io/selected-node"],
        "node-2",
        "the only node with published room"
    );
    // Play the provisioner: a volume on node-2 for the claim; the pod follows it there.
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "pv-fits"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "measured",
                 "hostPath": {"path": "/opt/measured/fits", "type": "DirectoryOrCreate"},
                 "claimRef": {"namespace": "default", "name": "fits", "uid": claim.uid()},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}]}]}}}
    }))
    .expect("pv");
    volumes
        .create(&PostParams::default(), &pv)
        .await
        .expect("pv");
    let running = wait_for(&pods, "fits", T, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    assert_eq!(
        running.spec.and_then(|s| s.node_name).as_deref(),
        Some("node-2")
    );

    let (claim, pod) = claim_and_pod("too-big", "20Gi");
    claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("claim");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    let pending = wait_for(&pods, "too-big", T, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "PodScheduled" && c.status == "False")
            })
    })
    .await;
    let condition = pending
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "PodScheduled"))
        .expect("condition");
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(
        condition.message.as_deref(),
        Some("0/2 nodes are available: 2 node(s) did not have enough free storage.")
    );
    let waiting = claims.get("too-big").await.expect("claim");
    assert!(
        !waiting
            .annotations()
            .contains_key("volume.kubernetes.io/selected-node"),
        "no node is chosen for a claim that fits nowhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_expansion_is_admitted_validated_and_reported_as_the_apiserver_does() {
    use k8s_openapi::api::core::v1::PersistentVolume;
    use k8s_openapi::api::storage::v1::StorageClass;
    let cluster = TestCluster::start().await;
    let client = cluster.client();
    let classes: Api<StorageClass> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    for (name, expands) in [("grows", true), ("fixed", false)] {
        let class: StorageClass = serde_json::from_value(json!({"metadata": {"name": name},
            "provisioner": "kubernetes.io/no-provisioner", "allowVolumeExpansion": expands}))
        .expect("class");
        classes
            .create(&PostParams::default(), &class)
            .await
            .expect("class");
        let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": format!("pv-{name}")},
            "spec": {"storageClassName": name, "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "local": {"path": format!("/opt/{name}")},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}]}}}}))
        .expect("pv");
        volumes
            .create(&PostParams::default(), &pv)
            .await
            .expect("pv");
        let claim: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"storageClassName": name, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}))
            .expect("claim");
        claims
            .create(&PostParams::default(), &claim)
            .await
            .expect("claim");
        wait_for(&claims, name, T, |c| {
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        })
        .await;
    }
    let resize = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
    let pp = PatchParams::default();
    let err = claims
        .patch("fixed", &pp, &Patch::Merge(&resize("2Gi")))
        .await
        .expect_err("refused");
    assert_eq!(
        status_code(err),
        (
            403,
            "Forbidden".to_string(),
            "persistentvolumeclaims \"fixed\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize".to_string()
        )
    );
    // A dry run is judged by admission too.
    let dry = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    assert_eq!(
        status_code(
            claims
                .patch("fixed", &dry, &Patch::Merge(&resize("2Gi")))
                .await
                .expect_err("refused")
        )
        .0,
        403
    );
    let grown = claims
        .patch("grows", &pp, &Patch::Merge(&resize("3Gi")))
        .await
        .expect("grow");
    assert_eq!(
        grown
            .spec
            .expect("spec")
            .resources
            .expect("resources")
            .requests
            .expect("requests")["storage"]
            .0,
        "3Gi"
    );
    let (code, reason, message) = status_code(
        claims
            .patch("grows", &pp, &Patch::Merge(&resize("512Mi")))
            .await
            .expect_err("shrink"),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        message,
        "PersistentVolumeClaim \"grows\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
    );
    claims
        .patch("grows", &pp, &Patch::Merge(&resize("2Gi")))
        .await
        .expect("back down from a failed expansion, above the capacity");
    // The resize fields of v1.33 round-trip through /status, and only there.
    let status = json!({"status": {
        "allocatedResources": {"storage": "2Gi"},
        "allocatedResourceStatuses": {"storage": "NodeResizePending"},
        "conditions": [{"type": "FileSystemResizePending", "status": "True",
                        "message": "Waiting for user to (re-)start a pod to finish file system resize of volume on node."}]}});
    claims
        .patch_status("grows", &pp, &Patch::Merge(&status))
        .await
        .expect("status");
    let read = claims.get("grows").await.expect("get");
    let s = read.status.expect("status");
    assert_eq!(
        s.allocated_resources.expect("allocated")["storage"].0,
        "2Gi"
    );
    assert_eq!(
        s.allocated_resource_statuses.expect("statuses")["storage"],
        "NodeResizePending"
    );
    assert_eq!(
        s.conditions.expect("conditions")[0].type_,
        "FileSystemResizePending"
    );
    let ignored = claims
        .patch(
            "grows",
            &pp,
            &Patch::Merge(&json!({"status": {"allocatedResources": {"storage": "9Gi"}}})),
        )
        .await
        .expect("main resource update");
    assert_eq!(
        ignored
            .status
            .expect("status")
            .allocated_resources
            .expect("allocated")["storage"]
            .0,
        "2Gi",
        "status is not written through the main resource"
    );
    let (code, _, message) = status_code(
        claims
            .patch_status(
                "grows",
                &pp,
                &Patch::Merge(&json!({"status": {"allocatedResources": {"cpu": "1"}}})),
            )
            .await
            .expect_err("cpu"),
    );
    assert_eq!(code, 422);
    assert!(
        message.contains(
            "status.allocatedResources: Unsupported value: \"cpu\": supported values: \"storage\""
        ),
        "{message}"
    );
}

/// Runs `sh -c script` with `bin` first on PATH; returns stdout, panicking on failure.
fn run_with_stand_ins(bin: &std::path::Path, script: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_disks_report_their_size_and_what_is_stored_through_df_and_stat() {
    use lpp::sandbox::node::disks::{self, ContainerMount, Programs, Side};
    let cluster = TestCluster::builder()
        .nodes(2)
        .disk("node-1:/opt/local-path-provisioner=1Gi")
        .disk("node-1:/var/lib/data=2Gi,fs=xfs,mountpoint=false")
        .start()
        .await;
    let declared = cluster.sandbox().disks().to_vec();
    assert_eq!(declared.len(), 2);
    let base = cluster.node_path("node-1", "/opt/local-path-provisioner");
    assert!(base.is_dir(), "the declared directory is made");
    let volume = base.join("pvc-1_default_data");
    std::fs::create_dir_all(&volume).expect("volume dir");
    std::fs::write(volume.join("blob"), vec![7u8; 300 * 1024]).expect("write");
    // A helper pod with the base path mounted where the node has it, and the node's / at
    // /host, as the kubelet would hand them to the hook (host-path side: the programs see
    // host directories).
    let root = cluster.sandbox().node_root("node-1");
    let mounts = [
        ContainerMount {
            container_path: "/opt/local-path-provisioner".into(),
            host_dir: base.clone(),
        },
        ContainerMount {
            container_path: "/host".into(),
            host_dir: root.clone(),
        },
    ];
    let entries = disks::view(&declared, "node-1", &root, &mounts);
    let bin = cluster.dir().join("stand-ins");
    disks::install(&bin, &entries, Side::Host, &Programs::find()).expect("install");

    let used = disks::used_bytes(&base).expect("measure");
    let (total, used_k, avail, pct) = disks::df_row(1 << 30, used);
    let df = run_with_stand_ins(&bin, &format!("df -P -k {}", volume.display()));
    let lines: Vec<Vec<&str>> = df.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines[0],
        [
            "Filesystem",
            "1024-blocks",
            "Used",
            "Available",
            "Capacity",
            "Mounted",
            "on"
        ]
    );
    assert_eq!(
        lines[1][1..],
        [
            total.to_string().as_str(),
            used_k.to_string().as_str(),
            avail.to_string().as_str(),
            pct.as_str(),
            base.to_str().expect("utf-8")
        ],
        "{df}"
    );
    assert_eq!(total, 1_048_576);
    assert!(used_k >= 300, "what is stored counts: {df}");
    let s = disks::statfs(1 << 30, used);
    let stat = run_with_stand_ins(
        &bin,
        &format!("stat -f -c '%S %b %f %a %T' {}", base.display()),
    );
    assert_eq!(
        stat,
        format!("4096 {} {} {} ext2/ext3\n", s.blocks, s.free, s.available)
    );
    // The plain directory on a disk mounted higher up: its size, mounted on the /host mount.
    let data = cluster.node_path("node-1", "/var/lib/data");
    let df = run_with_stand_ins(&bin, &format!("df -P -T {}", data.display()));
    let row: Vec<&str> = df.lines().nth(1).expect("row").split_whitespace().collect();
    assert_eq!(
        (row[1], row[2], row[6]),
        ("xfs", "2097152", root.to_str().expect("utf-8"))
    );
    // du measures the real directory; a path on no declared disk gets this machine's df;
    // stat without -f is this machine's stat.
    let du = run_with_stand_ins(&bin, &format!("du -sk {}", base.display()));
    assert_eq!(
        du.split_whitespace().next(),
        Some(used_k.to_string().as_str())
    );
    let elsewhere = run_with_stand_ins(&bin, &format!("df -P -k {}", cluster.dir().display()));
    assert!(
        !elsewhere.contains("sandbox:") && elsewhere.starts_with("Filesystem"),
        "{elsewhere}"
    );
    let plain = run_with_stand_ins(&bin, &format!("stat -c %F {}", base.display()));
    assert_eq!(plain, "directory\n");
    // Filling past the size leaves nothing available (the size is not enforced).
    std::fs::write(volume.join("big"), vec![1u8; 3 << 20]).expect("write");
    let tiny = cluster.sandbox().dir().join("tiny-bin");
    let mut small = declared[0].clone();
    small.capacity = 1 << 20;
    disks::install(
        &tiny,
        &disks::view(&[small], "node-1", &root, &mounts),
        Side::Host,
        &Programs::find(),
    )
    .expect("install");
    let full = run_with_stand_ins(&tiny, &format!("df -P -k {}", base.display()));
    let row: Vec<&str> = full
        .lines()
        .nth(1)
        .expect("row")
        .split_whitespace()
        .collect();
    assert_eq!((row[1], row[3], row[4]), ("1024", "0", "100%"), "{full}");
}

/// Runs `script` in a pod on `node` with the node's `dir` mounted at the same path, and returns
/// its output once it succeeded.
async fn pod_output(
    cluster: &TestCluster,
    name: &str,
    node: &str,
    dir: &str,
    script: &str,
) -> String {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "restartPolicy": "Never",
                 "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script],
                                 "volumeMounts": [{"name": "d", "mountPath": dir}]}],
                 "volumes": [{"name": "d", "hostPath": {"path": dir, "type": "DirectoryOrCreate"}}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    let done = wait_for(&pods, name, Duration::from_secs(30), |p| {
        matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    })
    .await;
    let logs = pods
        .logs(name, &kube::api::LogParams::default())
        .await
        .expect("logs");
    assert_eq!(
        done.status.and_then(|s| s.phase).as_deref(),
        Some("Succeeded"),
        "{logs}"
    );
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_on_a_declared_disk_sees_its_size_type_and_real_usage() {
    use lpp::sandbox::node::disks;
    let cluster = TestCluster::builder()
        .nodes(2)
        .disk("node-1:/opt/local-path-provisioner=1Gi,fs=xfs")
        .start()
        .await;
    let base = cluster.node_path("node-1", "/opt/local-path-provisioner");
    std::fs::create_dir_all(base.join("pvc-1_default_data")).expect("volume dir");
    std::fs::write(base.join("pvc-1_default_data/blob"), vec![7u8; 300 * 1024]).expect("write");
    let used = disks::used_bytes(&base).expect("measure");
    let (total, used_k, avail, pct) = disks::df_row(1 << 30, used);
    let out = pod_output(
        &cluster,
        "measure",
        "node-1",
        "/opt/local-path-provisioner",
        "df -P -k /opt/local-path-provisioner; df -P -T /opt/local-path-provisioner/pvc-1_default_data; \
         stat -f -c '%T %S %b' /opt/local-path-provisioner; echo \"PATH=$PATH\"",
    )
    .await;
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0][1], "1024-blocks", "{out}");
    assert_eq!(
        lines[1][1..],
        [
            total.to_string().as_str(),
            used_k.to_string().as_str(),
            avail.to_string().as_str(),
            pct.as_str(),
            "/opt/local-path-provisioner"
        ],
        "the declared size and what is really stored: {out}"
    );
    assert!(used_k >= 300, "{out}");
    assert_eq!(
        (lines[3][1], lines[3][2]),
        ("xfs", "1048576"),
        "df -T inside the disk: {out}"
    );
    assert_eq!(lines[4], ["xfs", "4096", "262144"], "{out}");
    assert!(
        out.contains("PATH=/.sandbox/bin:"),
        "the stand-ins come first: {out}"
    );
    // A node without declared disks: this machine's programs, nothing else on PATH.
    let elsewhere = pod_output(
        &cluster,
        "plain",
        "node-2",
        "/opt/local-path-provisioner",
        "df -P -k /opt/local-path-provisioner; echo \"PATH=$PATH\"",
    )
    .await;
    assert!(!elsewhere.contains("sandbox:"), "{elsewhere}");
    assert!(!elsewhere.contains("/.sandbox"), "{elsewhere}");
}

#[test]
fn sandbox_up_refuses_a_disk_it_cannot_declare() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_str().expect("utf-8");
    let got = crate::support::lpp(["sandbox", "up", "--dir", dir, "--disk", "node-1:/opt"]);
    assert_eq!(got.code, 2, "{}", got.stderr);
    assert!(
        got.stderr
            .contains("write NODE:PATH=SIZE[,fs=TYPE][,mountpoint=false]"),
        "{}",
        got.stderr
    );
    let got = crate::support::lpp([
        "sandbox",
        "up",
        "--dir",
        dir,
        "--nodes",
        "1",
        "--disk",
        "node-2:/opt/local-path-provisioner=1Gi",
    ]);
    assert_eq!(got.code, 2, "a usage error: {}", got.stderr);
    assert!(
        got.stderr
            .contains("a disk is declared on node-2, but the sandbox's nodes are node-1 … node-1"),
        "{}",
        got.stderr
    );
}
