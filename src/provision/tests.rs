//! Fixtures and cross-cutting tests: a representative claim through the whole decision, with
//! snapshots of the PV and helper pods a person reviews against what upstream builds.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use proptest::prelude::*;

use super::helper_pod::{HelperPods, HostDir, ScriptJob, check_template};
use super::volume::*;
use crate::config::{self, ConfigMapContents};

pub(crate) const UID: &str = "0b5c4f4e-8f0a-4a53-9d0e-3f0f5b7c2a11";

pub(crate) fn claim(ns: &str, name: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            uid: Some(UID.into()),
            resource_version: Some("42".into()),
            annotations: Some(BTreeMap::from([
                (CLAIM_SELECTED_NODE.to_string(), "node-1".to_string()),
                (
                    CLAIM_PROVISIONER.to_string(),
                    "rancher.io/local-path".to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity("128Mi".into()),
                )])),
                ..Default::default()
            }),
            storage_class_name: Some("local-path".into()),
            volume_mode: Some("Filesystem".into()),
            ..Default::default()
        }),
        status: None,
    }
}

pub(crate) fn class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some("local-path".into()),
            ..ObjectMeta::default()
        },
        provisioner: "rancher.io/local-path".into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..StorageClass::default()
    }
}

pub(crate) fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".into(),
                name.into(),
            )])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

pub(crate) fn contents(config_json: &str) -> ConfigMapContents {
    let mut data = config::default_config_map_data();
    data.insert(config::CONFIG_JSON_KEY.into(), config_json.into());
    ConfigMapContents::from_data(&data, None, None).unwrap()
}

pub(crate) fn default_contents() -> ConfigMapContents {
    ConfigMapContents::from_data(&config::default_config_map_data(), None, None).unwrap()
}

pub(crate) fn helper_pods(contents: &ConfigMapContents, image: Option<&str>) -> HelperPods {
    HelperPods::new(
        contents.helper_pod.clone(),
        false,
        "local-path-storage",
        "local-path-provisioner-service-account",
        image,
        "local-path-config",
    )
    .unwrap()
}

fn decide(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    contents: &ConfigMapContents,
) -> ClaimDecision {
    let n = node("node-1");
    decide_claim(&ClaimInput {
        claim,
        class: Some(class),
        node: Some(&n),
        contents,
        provisioner: "rancher.io/local-path",
        volume_exists: false,
        choice: 0,
        volumes: &[],
        capacity: None,
    })
}

fn plan_of(d: ClaimDecision) -> VolumePlan {
    match d {
        ClaimDecision::Provision(p) => *p,
        other => panic!("expected a plan, got {other:?}"),
    }
}

fn reject_of(d: ClaimDecision) -> String {
    match d {
        ClaimDecision::Reject(m) => m,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn host_path_volume_and_its_helper_pods() {
    let contents = default_contents();
    let plan = plan_of(decide(&claim("default", "data"), &class(), &contents));
    assert_eq!(plan.pv_name, format!("pvc-{UID}"));
    assert_eq!(
        plan.path,
        format!("/opt/local-path-provisioner/pvc-{UID}_default_data")
    );
    assert_eq!(plan.node.as_deref(), Some("node-1"));
    assert_eq!(plan.helper.size_bytes, 128 * 1024 * 1024);
    insta::assert_yaml_snapshot!("pv_host_path", plan.volume);
    let pods = helper_pods(&contents, None);
    let create = pods.for_volume(&plan.helper).unwrap();
    assert_eq!(
        create.metadata.name.as_deref(),
        Some(format!("helper-pod-create-pvc-{UID}").as_str())
    );
    insta::assert_yaml_snapshot!("helper_pod_create", create);
    let mut delete_job = plan.helper.clone();
    delete_job.action = super::helper_pod::Action::Delete;
    delete_job.script = contents.teardown.clone();
    let delete = pods.for_volume(&delete_job).unwrap();
    insta::assert_yaml_snapshot!("helper_pod_delete", delete);
}

#[test]
fn local_volume_with_custom_affinity_key() {
    let mut c = claim("default", "data");
    c.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert("volumeType".into(), "Local".into());
    let mut k = class();
    k.parameters = Some(BTreeMap::from([(
        "nodeAffinityKey".into(),
        "topology.example.com/host".into(),
    )]));
    k.mount_options = Some(vec!["noatime".into()]);
    k.reclaim_policy = Some("Retain".into());
    let mut n = node("node-1");
    n.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("topology.example.com/host".into(), "rack1-h1".into());
    let contents = default_contents();
    let d = decide_claim(&ClaimInput {
        claim: &c,
        class: Some(&k),
        node: Some(&n),
        contents: &contents,
        provisioner: "rancher.io/local-path",
        volume_exists: false,
        choice: 0,
        volumes: &[],
        capacity: None,
    });
    let plan = plan_of(d);
    assert_eq!(plan.volume_type, VolumeType::Local);
    insta::assert_yaml_snapshot!("pv_local", plan.volume);
}

#[test]
fn shared_filesystem_volume_and_helper_pod() {
    let contents =
        contents(r#"{"sharedFileSystemPath":"/mnt/nfs","setupCommand":"/opt/setup.sh"}"#);
    let mut c = claim("default", "shared");
    c.spec.as_mut().unwrap().access_modes = Some(vec!["ReadWriteMany".into()]);
    c.metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(CLAIM_SELECTED_NODE);
    let mut k = class();
    k.volume_binding_mode = Some("Immediate".into());
    let plan = plan_of(decide(&c, &k, &contents));
    assert_eq!(plan.node, None);
    assert_eq!(plan.path, format!("/mnt/nfs/pvc-{UID}_default_shared"));
    insta::assert_yaml_snapshot!("pv_shared", plan.volume);
    let pod = helper_pods(&contents, Some("registry.example.com/busybox:1.36"))
        .for_volume(&plan.helper)
        .unwrap();
    insta::assert_yaml_snapshot!("helper_pod_create_shared", pod);
}

#[test]
fn skips_claims_that_are_not_ours_or_done() {
    let contents = default_contents();
    let mut other = class();
    other.provisioner = "ebs.csi.aws.com".into();
    assert_eq!(
        decide(&claim("d", "c"), &other, &contents),
        ClaimDecision::Skip(Skip::NotOurs)
    );
    let mut bound = claim("d", "c");
    bound.spec.as_mut().unwrap().volume_name = Some("pv-x".into());
    assert_eq!(
        decide(&bound, &class(), &contents),
        ClaimDecision::Skip(Skip::Bound)
    );
    let mut waiting = claim("d", "c");
    waiting
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(CLAIM_SELECTED_NODE);
    assert_eq!(
        decide(&waiting, &class(), &contents),
        ClaimDecision::Skip(Skip::WaitingForNode)
    );
    let n = node("node-1");
    let exists = decide_claim(&ClaimInput {
        claim: &claim("d", "c"),
        class: Some(&class()),
        node: Some(&n),
        contents: &contents,
        provisioner: "rancher.io/local-path",
        volume_exists: true,
        choice: 0,
        volumes: &[],
        capacity: None,
    });
    assert_eq!(exists, ClaimDecision::Skip(Skip::VolumeExists));
}

#[test]
fn a_claim_deleting_bound_or_with_its_volume_is_settled_on_any_copy() {
    let fresh = claim("d", "c");
    assert_eq!(settled(&fresh, false), None);
    assert_eq!(settled(&fresh, true), Some(Skip::VolumeExists));
    let mut bound = claim("d", "c");
    bound.spec.as_mut().unwrap().volume_name = Some("pv-x".into());
    assert_eq!(settled(&bound, false), Some(Skip::Bound));
    let mut empty_name = claim("d", "c");
    empty_name.spec.as_mut().unwrap().volume_name = Some(String::new());
    assert_eq!(settled(&empty_name, false), None);
    let mut deleting = bound.clone();
    deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
    assert_eq!(settled(&deleting, true), Some(Skip::Deleting));
}

#[test]
fn rejections_say_what_is_wrong() {
    let contents = default_contents();
    let mut c = claim("d", "c");
    c.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
    assert!(reject_of(decide(&c, &class(), &contents)).contains("spec.selector"));
    let mut c = claim("d", "c");
    c.spec.as_mut().unwrap().volume_mode = Some("Block".into());
    assert!(reject_of(decide(&c, &class(), &contents)).contains("block"));
    let mut c = claim("d", "c");
    c.spec.as_mut().unwrap().access_modes = Some(vec!["ReadWriteMany".into()]);
    assert!(reject_of(decide(&c, &class(), &contents)).contains("ReadWriteMany"));
    let mut c = claim("d", "c");
    c.metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(CLAIM_SELECTED_NODE);
    let mut immediate = class();
    immediate.volume_binding_mode = Some("Immediate".into());
    assert!(reject_of(decide(&c, &immediate, &contents)).contains("WaitForFirstConsumer"));
    let mut c = claim("d", "c");
    c.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("volumeType".into(), "nfs".into());
    assert!(
        reject_of(decide(&c, &class(), &contents))
            .contains("\"nfs\" is not a recognised volume type")
    );
    let listed = contents_with_classes();
    assert!(reject_of(decide(&claim("d", "c"), &class(), &listed)).contains("not served"));
    let none_here = self::contents(
        r#"{"nodePathMap":[{"node":"node-1","paths":[]},{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/x"]}]}"#,
    );
    // The scheduler's node has no path: the claim goes back to the scheduler, a few times.
    match decide(&claim("d", "c"), &class(), &none_here) {
        ClaimDecision::Reschedule(r) => {
            assert_eq!((r.node.as_str(), r.attempt), ("node-1", 1));
            assert!(r.reason.contains("no paths for node \"node-1\""), "{r:?}");
        }
        other => panic!("expected a reschedule, got {other:?}"),
    }
    let mut tried = claim("d", "c");
    tried
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(RESCHEDULES.into(), MAX_RESCHEDULES.to_string());
    let given_up = reject_of(decide(&tried, &class(), &none_here));
    assert!(
        given_up.contains("no paths for node \"node-1\"")
            && given_up.contains("given up after the scheduler was asked 3 time(s)"),
        "{given_up}"
    );
    // An Immediate class's node was named by hand: refused, not handed back.
    let mut immediate = class();
    immediate.volume_binding_mode = Some("Immediate".into());
    assert!(
        reject_of(decide(&claim("d", "c"), &immediate, &none_here))
            .contains("no paths for node \"node-1\"")
    );
    let mut k = class();
    k.parameters = Some(BTreeMap::from([("nodePath".into(), "/elsewhere".into())]));
    assert!(reject_of(decide(&claim("d", "c"), &k, &contents)).contains("/elsewhere"));
    // A nodeAffinityKey the node does not carry would pin the volume to no node.
    let mut k = class();
    k.parameters = Some(BTreeMap::from([(
        "nodeAffinityKey".into(),
        "topology.example.com/rack".into(),
    )]));
    let e = reject_of(decide(&claim("d", "c"), &k, &contents));
    assert!(
        e.contains("node-1") && e.contains("topology.example.com/rack"),
        "{e}"
    );
    // A path another PV uses, contains or lies inside is never taken.
    let others = [crate::provision::VolumeRef {
        name: "pvc-other".into(),
        node: Some("node-1".into()),
        path: "/opt/local-path-provisioner/d/c".into(),
    }];
    let mut k = class();
    k.parameters = Some(BTreeMap::from([(
        "pathPattern".into(),
        "{{ .PVC.Namespace }}/{{ .PVC.Name }}/data".into(),
    )]));
    let n = node("node-1");
    let taken = decide_claim(&ClaimInput {
        claim: &claim("d", "c"),
        class: Some(&k),
        node: Some(&n),
        contents: &contents,
        provisioner: "rancher.io/local-path",
        volume_exists: false,
        choice: 0,
        volumes: &others,
        capacity: None,
    });
    let e = reject_of(taken);
    assert!(e.contains("pvc-other") && e.contains("already used"), "{e}");
    let gone = decide_claim(&ClaimInput {
        claim: &claim("d", "c"),
        class: Some(&class()),
        node: None,
        contents: &contents,
        provisioner: "rancher.io/local-path",
        volume_exists: false,
        choice: 0,
        volumes: &[],
        capacity: None,
    });
    assert!(reject_of(gone).contains("does not exist"));
}

fn contents_with_classes() -> ConfigMapContents {
    contents(
        r#"{"storageClassConfigs":{"fast":{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/fast"]}]}}}"#,
    )
}

#[test]
fn base_path_choice_and_node_path() {
    let contents = contents(r#"{"nodePathMap":[{"node":"node-1","paths":["/a","/b","/c"]}]}"#);
    let n = node("node-1");
    let pick = |choice: u64, class: &StorageClass| {
        plan_of(decide_claim(&ClaimInput {
            claim: &claim("d", "c"),
            class: Some(class),
            node: Some(&n),
            contents: &contents,
            provisioner: "rancher.io/local-path",
            volume_exists: false,
            choice,
            volumes: &[],
            capacity: None,
        }))
        .base_path
    };
    assert_eq!(pick(0, &class()), "/a");
    assert_eq!(pick(4, &class()), "/b");
    let mut k = class();
    k.parameters = Some(BTreeMap::from([("nodePath".into(), "/c/".into())]));
    assert_eq!(pick(0, &k), "/c");
}

#[test]
fn the_nodes_disks_choose_the_path_and_a_budget_hands_the_claim_back() {
    use super::capacity::{NodeCapacity, PathUsage};
    let contents = contents(r#"{"nodePathMap":[{"node":"node-1","paths":["/a","/b"]}]}"#);
    let n = node("node-1");
    let disk = |available: u64| PathUsage {
        capacity_bytes: 1 << 30,
        used_bytes: (1 << 30) - available,
        available_bytes: available,
        fs_type: Some("ext4".into()),
        mount_point: Some(true),
    };
    let capacity = NodeCapacity {
        paths: BTreeMap::from([
            ("/a".into(), disk(64 << 20)),
            ("/b".into(), disk(512 << 20)),
        ]),
        placed: Vec::new(),
        unmeasured: None,
    };
    let decide_with = |class: &StorageClass| {
        decide_claim(&ClaimInput {
            claim: &claim("d", "c"),
            class: Some(class),
            node: Some(&n),
            contents: &contents,
            provisioner: "rancher.io/local-path",
            volume_exists: false,
            choice: 0,
            volumes: &[],
            capacity: Some(&capacity),
        })
    };
    let plan = plan_of(decide_with(&class()));
    assert_eq!(plan.base_path, "/b", "mostFree, the default");
    assert!(
        plan.path_choice.contains("mostFree"),
        "{}",
        plan.path_choice
    );
    let mut budget = class();
    budget.parameters = Some(BTreeMap::from([
        ("capacityBudget".into(), "true".into()),
        ("nodePath".into(), "/a".into()),
    ]));
    match decide_with(&budget) {
        ClaimDecision::Reschedule(r) => assert_eq!(
            r.reason,
            "no room for 128MiB on node-1 (capacityBudget): /a has 64MiB available"
        ),
        other => panic!("expected a reschedule, got {other:?}"),
    }
    let mut unknown = class();
    unknown.parameters = Some(BTreeMap::from([("pathSelection".into(), "fullest".into())]));
    assert!(reject_of(decide_with(&unknown)).contains("pathSelection"));
}

#[test]
fn path_pattern_rules() {
    let contents = default_contents();
    let with = |pattern: &str, unsafe_param: Option<&str>, unsafe_annotation: Option<&str>| {
        let mut k = class();
        let mut params = BTreeMap::from([("pathPattern".to_string(), pattern.to_string())]);
        if let Some(v) = unsafe_param {
            params.insert("allowUnsafePathPattern".into(), v.into());
        }
        k.parameters = Some(params);
        if let Some(v) = unsafe_annotation {
            k.metadata.annotations = Some(BTreeMap::from([(
                "allowUnsafePathPattern".into(),
                v.into(),
            )]));
        }
        let mut c = claim("team", "db");
        c.metadata.labels = Some(BTreeMap::from([("app".into(), "pg".into())]));
        decide(&c, &k, &contents)
    };
    let ok = plan_of(with(
        "{{ .PVC.Namespace }}/{{ .PVC.Name }}/{{ .PVC.Labels.app }}",
        None,
        None,
    ));
    assert_eq!(ok.path, "/opt/local-path-provisioner/team/db/pg");
    let e = reject_of(with("{{ .PVC.Labels.app }}", None, None));
    assert!(e.contains("must start with"), "{e}");
    let e = reject_of(with(
        "{{ .PVC.Namespace }}/{{ .PVC.Name }}/../../..",
        None,
        None,
    ));
    assert!(e.contains("invalid references"), "{e}");
    // The opt-out as parameter or (older) annotation; an unparsable parameter means false.
    assert_eq!(
        plan_of(with("shared/{{ .PVC.Name }}", Some("true"), None)).path,
        "/opt/local-path-provisioner/shared/db"
    );
    assert_eq!(
        plan_of(with("shared/{{ .PVC.Name }}", None, Some("1"))).path,
        "/opt/local-path-provisioner/shared/db"
    );
    assert!(
        reject_of(with("shared/{{ .PVC.Name }}", Some("yes"), Some("true")))
            .contains("must start with")
    );
    // Even unsafe, never the base itself or the root.
    assert!(reject_of(with(".", Some("true"), None)).contains("base path"));
}

#[test]
fn user_group_perm_patterns() {
    let contents = default_contents();
    let mut k = class();
    k.parameters = Some(BTreeMap::from([
        (
            "userPattern".to_string(),
            "{{ index .PVC.Annotations \"example.com/uid\" }}".to_string(),
        ),
        ("permPattern".to_string(), " 0750 ".to_string()),
    ]));
    k.metadata.annotations = Some(BTreeMap::from([(
        "groupPattern".into(),
        "{{ .PVC.Labels.gid }}".into(),
    )]));
    let mut c = claim("d", "c");
    c.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("example.com/uid".into(), "1001".into());
    c.metadata.labels = Some(BTreeMap::from([("gid".into(), "2002".into())]));
    let plan = plan_of(decide(&c, &k, &contents));
    assert_eq!(
        (
            plan.helper.user.as_str(),
            plan.helper.group.as_str(),
            plan.helper.perm.as_str()
        ),
        ("1001", "2002", "0750")
    );
    c.metadata.labels = None;
    let e = reject_of(decide(&c, &k, &contents));
    assert!(
        e.contains("failed to create group from pattern") && e.contains("gid"),
        "{e}"
    );
}

#[test]
fn quantities_in_bytes() {
    for (q, want) in [
        ("1Gi", 1 << 30),
        ("128Mi", 128 << 20),
        ("1G", 1_000_000_000),
        ("100", 100),
        ("1.5Ki", 1536),
        ("1e3", 1000),
        ("500m", 1),
    ] {
        assert_eq!(quantity_bytes(&Quantity(q.into())), Some(want), "{q}");
    }
    assert_eq!(quantity_bytes(&Quantity("lots".into())), None);
}

#[test]
fn template_safety_names_the_field() {
    let parse = |extra_spec: &str, extra_container: &str| {
        config::parse_helper_pod(&format!(
            "spec:\n{extra_spec}  containers:\n  - name: helper-pod\n    image: busybox\n{extra_container}"
        ))
        .unwrap()
    };
    assert!(check_template(&parse("", ""), false).is_ok());
    assert!(check_template(&parse("", "    securityContext:\n      runAsNonRoot: true\n      readOnlyRootFilesystem: true\n"), false).is_ok());
    for (spec, container, want) in [
        ("  runtimeClassName: kata\n", "", "runtimeClassName"),
        (
            "",
            "    ports:\n    - containerPort: 80\n      hostPort: 8080\n",
            "hostPort",
        ),
        (
            "  securityContext:\n    seccompProfile:\n      type: Unconfined\n",
            "",
            "seccompProfile",
        ),
        (
            "",
            "    securityContext:\n      appArmorProfile:\n        type: Unconfined\n",
            "appArmorProfile",
        ),
        (
            "",
            "    securityContext:\n      seLinuxOptions:\n        type: spc_t\n",
            "seLinuxOptions",
        ),
        (
            "",
            "    securityContext:\n      procMount: Unmasked\n",
            "procMount",
        ),
        (
            "  securityContext:\n    windowsOptions:\n      hostProcess: true\n",
            "",
            "hostProcess",
        ),
        ("  hostNetwork: true\n", "", "hostNetwork"),
        ("  hostPID: true\n", "", "hostPID"),
        ("  nodeName: n\n", "", "nodeName"),
        ("  serviceAccountName: admin\n", "", "serviceAccountName"),
        ("  volumes:\n  - name: x\n    emptyDir: {}\n", "", "volumes"),
        (
            "  initContainers:\n  - name: i\n    image: x\n",
            "",
            "initContainers",
        ),
        ("  securityContext:\n    runAsUser: 0\n", "", "runAsUser"),
        ("  securityContext:\n    runAsGroup: 0\n", "", "runAsGroup"),
        (
            "  securityContext:\n    sysctls:\n    - name: a\n      value: b\n",
            "",
            "sysctls",
        ),
        (
            "",
            "    securityContext:\n      privileged: true\n",
            "privileged",
        ),
        (
            "",
            "    securityContext:\n      allowPrivilegeEscalation: true\n",
            "allowPrivilegeEscalation",
        ),
        (
            "",
            "    securityContext:\n      capabilities:\n        add: [SYS_ADMIN]\n",
            "capabilities",
        ),
        (
            "",
            "    volumeMounts:\n    - name: x\n      mountPath: /x\n",
            "volumeMounts",
        ),
        (
            "",
            "    envFrom:\n    - secretRef:\n        name: s\n",
            "envFrom",
        ),
        (
            "",
            "    env:\n    - name: TOKEN\n      valueFrom:\n        secretKeyRef:\n          name: s\n          key: k\n",
            "TOKEN",
        ),
        (
            "",
            "    livenessProbe:\n      exec:\n        command: [true]\n",
            "livenessProbe",
        ),
        (
            "",
            "    lifecycle:\n      preStop:\n        exec:\n          command: [true]\n",
            "lifecycle",
        ),
    ] {
        let pod = parse(spec, container);
        let e = check_template(&pod, false).unwrap_err().to_string();
        assert!(
            e.contains(want) && e.contains("--allow-unsafe-helper-pod-template"),
            "{want}: {e}"
        );
        assert!(check_template(&pod, true).is_ok());
    }
    let annotated = config::parse_helper_pod(
        "metadata:\n  annotations:\n    container.apparmor.security.beta.kubernetes.io/helper-pod: unconfined\nspec:\n  containers:\n  - name: helper-pod\n    image: busybox\n",
    )
    .unwrap();
    let e = check_template(&annotated, false).unwrap_err().to_string();
    assert!(e.contains("apparmor"), "{e}");
    // Confining settings stay allowed.
    let confined = parse(
        "  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\n",
        "    securityContext:\n      seLinuxOptions:\n        level: s0:c1\n",
    );
    assert!(check_template(&confined, false).is_ok());
    let two = config::parse_helper_pod("spec:\n  containers:\n  - name: a\n  - name: b\n").unwrap();
    assert!(
        check_template(&two, false)
            .unwrap_err()
            .to_string()
            .contains("exactly one container")
    );
}

#[test]
fn helper_names_stay_valid() {
    use super::helper_pod::{Action, helper_pod_name};
    let long = "a-very-long-helper-pod-template-name-that-goes-on";
    let name = helper_pod_name(long, Action::Delete, &format!("pvc-{UID}"));
    assert!(name.len() <= 63, "{name}");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    assert_ne!(
        name,
        helper_pod_name(long, Action::Create, &format!("pvc-{UID}"))
    );
}

#[test]
fn script_jobs_mount_host_dirs() {
    let pods = helper_pods(&default_contents(), None);
    let pod = pods
        .for_script(&ScriptJob {
            name: "lpp-inventory-node-1".into(),
            action: "inventory".into(),
            node: Some("node-1".into()),
            host_dirs: vec![HostDir {
                path: "/opt/local-path-provisioner/".into(),
                mount_path: None,
                kind: super::helper_pod::HostPathType::Directory,
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
    let spec = pod.spec.unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    let volume = &spec.volumes.unwrap()[0];
    let host = volume.host_path.as_ref().unwrap();
    assert_eq!(
        (host.path.as_str(), host.type_.as_deref()),
        ("/opt/local-path-provisioner", Some("Directory"))
    );
    let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/opt/local-path-provisioner", Some(true))
    );
    assert_eq!(
        pod.metadata.labels.unwrap()[super::helper_pod::ACTION_LABEL],
        "inventory"
    );
}

proptest! {
    /// Whatever the claim's namespace, name, labels and annotations (`..`, `/`, unicode,
    /// newlines), a volume stays strictly below its base path, below `<namespace>/<name>/` when
    /// the prefix rule applies, and never on a path another PV uses, contains or lies inside.
    #[test]
    fn volume_never_escapes_its_prefix_or_meets_another(
        ns in "[a-z]{1,5}|[a-z./]{1,8}|\\.\\.",
        name in "[a-z]{1,5}|[a-z./]{1,8}|\\.\\.",
        label in "[a-z./\\\\]{0,12}",
        annotation in "((\\.\\./)|/|é|\n|[a-z.]){0,12}",
        pattern in proptest::sample::select(vec![
            "",
            "{{ .PVC.Namespace }}/{{ .PVC.Name }}/{{ .PVC.Labels.x }}",
            "{{ .PVC.Namespace }}/{{ .PVC.Name }}/{{ index .PVC.Annotations \"a/b\" }}",
            "{{ .PVC.Namespace }}/{{ .PVC.Name }}/../{{ .PVC.Labels.x }}",
            "{{ .PVC.Labels.x }}",
            "{{ .PVC.Namespace }}/{{ .PVC.Name }}/{{ .PVC.Labels.missing }}",
        ]),
        unsafe_opt_out in any::<bool>(),
        others in proptest::collection::vec("[a-z/.]{0,14}", 0..4),
    ) {
        let contents = default_contents();
        let mut c = claim(&ns, &name);
        c.metadata.labels = Some(BTreeMap::from([("x".to_string(), label)]));
        c.metadata.annotations.as_mut().unwrap().insert("a/b".into(), annotation);
        let mut k = class();
        let mut params = BTreeMap::new();
        if !pattern.is_empty() {
            params.insert("pathPattern".to_string(), pattern.to_string());
        }
        if unsafe_opt_out {
            params.insert("allowUnsafePathPattern".to_string(), "true".to_string());
        }
        k.parameters = Some(params);
        let base = "/opt/local-path-provisioner";
        let volumes: Vec<crate::provision::VolumeRef> = others
            .iter()
            .enumerate()
            .map(|(i, p)| crate::provision::VolumeRef {
                name: format!("other-{i}"),
                node: Some("node-1".into()),
                path: format!("{base}/{p}"),
            })
            .collect();
        let n = node("node-1");
        let decision = decide_claim(&ClaimInput {
            claim: &c,
            class: Some(&k),
            node: Some(&n),
            contents: &contents,
            provisioner: "rancher.io/local-path",
            volume_exists: false,
            choice: 0,
            volumes: &volumes,
            capacity: None,
        });
        if let ClaimDecision::Provision(plan) = decision {
            prop_assert!(config::path::is_inside(&plan.path, base), "{}", plan.path);
            prop_assert!(!plan.path.split('/').any(|e| e == ".." || e == "."), "{}", plan.path);
            prop_assert!(!plan.path.chars().any(char::is_control), "{:?}", plan.path);
            prop_assert_eq!(config::path::clean(&plan.path), plan.path.clone());
            if !pattern.is_empty() && !unsafe_opt_out {
                let prefix = config::path::join(base, &format!("{ns}/{name}"));
                prop_assert!(config::path::is_inside(&plan.path, &prefix), "{} not below {}", plan.path, prefix);
            }
            for v in &volumes {
                prop_assert!(!config::path::overlaps(&plan.path, &v.path), "{} meets {}", plan.path, v.path);
            }
        }
    }

    /// Template checks never panic, whatever the template.
    #[test]
    fn template_checks_never_panic(text in "\\PC{0,120}") {
        if let Ok(pod) = config::parse_helper_pod(&text) {
            let _ = check_template(&pod, false);
        }
    }
}

mod reclaim {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeStatus};

    use super::*;
    use crate::provision::reclaim::{NodeSource, ReclaimDecision, decide_reclaim};

    fn released(
        contents: &ConfigMapContents,
        claim: &PersistentVolumeClaim,
        class: &StorageClass,
    ) -> PersistentVolume {
        let mut pv = plan_of(decide(claim, class, contents)).volume;
        pv.status = Some(PersistentVolumeStatus {
            phase: Some("Released".into()),
            ..Default::default()
        });
        pv
    }

    const P: &str = "rancher.io/local-path";

    #[test]
    fn released_delete_tears_down_on_the_annotated_node() {
        let contents = default_contents();
        let mut k = class();
        k.parameters = Some(BTreeMap::from([(
            "nodeAffinityKey".into(),
            "topology.example.com/host".into(),
        )]));
        let n = {
            let mut n = node("node-1");
            n.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert("topology.example.com/host".into(), "rack1-h0".into());
            n
        };
        let mut pv = plan_of(decide_claim(&ClaimInput {
            claim: &claim("d", "c"),
            class: Some(&k),
            node: Some(&n),
            contents: &contents,
            provisioner: P,
            volume_exists: false,
            choice: 0,
            volumes: &[],
            capacity: None,
        }))
        .volume;
        pv.status = Some(PersistentVolumeStatus {
            phase: Some("Released".into()),
            ..Default::default()
        });
        // The affinity value is a label value, not the node name; the annotation wins.
        pv.spec
            .as_mut()
            .unwrap()
            .node_affinity
            .as_mut()
            .unwrap()
            .required
            .as_mut()
            .unwrap()
            .node_selector_terms[0]
            .match_expressions
            .as_mut()
            .unwrap()[0]
            .values = Some(vec!["rack1-h1".into()]);
        match decide_reclaim(&pv, P, &contents, |n| n == "node-1", |_, _| None) {
            ReclaimDecision::Teardown { job, node_source } => {
                assert_eq!(node_source, NodeSource::Annotation);
                assert_eq!(job.node.as_deref(), Some("node-1"));
                assert_eq!(
                    job.path,
                    format!("/opt/local-path-provisioner/pvc-{UID}_d_c")
                );
                assert_eq!(job.size_bytes, 128 << 20);
                let pod = helper_pods(&contents, None).for_volume(&job).unwrap();
                assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("node-1"));
            }
            other => panic!("{other:?}"),
        }
        // Without the annotation, the affinity value is the fallback.
        pv.metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(crate::provision::volume::SELECTED_NODE);
        match decide_reclaim(&pv, P, &contents, |_| true, |_, _| None) {
            ReclaimDecision::Teardown { job, node_source } => {
                assert_eq!(node_source, NodeSource::Affinity);
                assert_eq!(job.node.as_deref(), Some("rack1-h1"));
            }
            other => panic!("{other:?}"),
        }
        // ... a label value: the node is the one carrying that label, not one of that name.
        let labelled = |key: &str, value: &str| {
            (!key.is_empty() && value == "rack1-h1").then(|| "node-7".to_string())
        };
        match decide_reclaim(&pv, P, &contents, |n| n == "node-7", labelled) {
            ReclaimDecision::Teardown { job, node_source } => {
                assert_eq!(node_source, NodeSource::Affinity);
                assert_eq!(job.node.as_deref(), Some("node-7"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_outcomes() {
        let contents = default_contents();
        let pv = released(&contents, &claim("d", "c"), &class());
        assert_eq!(
            decide_reclaim(&pv, "other.io/x", &contents, |_| true, |_, _| None),
            ReclaimDecision::NotOurs
        );
        let mut bound = pv.clone();
        bound.status.as_mut().unwrap().phase = Some("Bound".into());
        assert_eq!(
            decide_reclaim(&bound, P, &contents, |_| true, |_, _| None),
            ReclaimDecision::InUse
        );
        let mut retain = pv.clone();
        retain
            .spec
            .as_mut()
            .unwrap()
            .persistent_volume_reclaim_policy = Some("Retain".into());
        assert_eq!(
            decide_reclaim(&retain, P, &contents, |_| true, |_, _| None),
            ReclaimDecision::Retain
        );
        match decide_reclaim(&pv, P, &contents, |_| false, |_, _| None) {
            ReclaimDecision::NodeGone {
                node,
                path,
                message,
            } => {
                assert_eq!(node, "node-1");
                assert!(
                    message.contains(&path) && message.contains("node-1"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        let mut no_path = pv.clone();
        no_path.spec.as_mut().unwrap().host_path = None;
        match decide_reclaim(&no_path, P, &contents, |_| true, |_, _| None) {
            ReclaimDecision::Fail(m) => assert!(m.contains("no path set"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shared_volumes_need_no_node() {
        let contents = contents(r#"{"sharedFileSystemPath":"/mnt/nfs"}"#);
        let mut c = claim("d", "c");
        c.metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(CLAIM_SELECTED_NODE);
        let mut k = class();
        k.volume_binding_mode = Some("Immediate".into());
        let pv = released(&contents, &c, &k);
        match decide_reclaim(&pv, P, &contents, |_| false, |_, _| None) {
            ReclaimDecision::Teardown { job, node_source } => {
                assert_eq!(node_source, NodeSource::Shared);
                assert_eq!(job.node, None);
                let pod = helper_pods(&contents, None).for_volume(&job).unwrap();
                assert_eq!(pod.spec.unwrap().node_name, None);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn helper_outcomes_from_status() {
    use super::helper_pod::{HelperOutcome, helper_outcome};
    let pod = |status: &str| -> k8s_openapi::api::core::v1::Pod {
        serde_saphyr::from_str(&format!("metadata:\n  name: h\nstatus:\n{status}")).unwrap()
    };
    assert_eq!(
        helper_outcome(&pod("  phase: Pending\n")),
        HelperOutcome::Running
    );
    assert_eq!(
        helper_outcome(&pod("  phase: Succeeded\n")),
        HelperOutcome::Succeeded
    );
    let failed = pod(
        "  phase: Failed\n  containerStatuses:\n  - name: helper-pod\n    image: busybox\n    imageID: ''\n    ready: false\n    restartCount: 0\n    state:\n      terminated:\n        exitCode: 1\n        reason: Error\n        message: \"mkdir: permission denied\\n\"\n",
    );
    assert_eq!(
        helper_outcome(&failed),
        HelperOutcome::Failed(
            "helper pod h failed with exit code 1 (Error): mkdir: permission denied".into()
        )
    );
    let stuck = pod(
        "  phase: Pending\n  containerStatuses:\n  - name: helper-pod\n    image: nope\n    imageID: ''\n    ready: false\n    restartCount: 0\n    state:\n      waiting:\n        reason: ImagePullBackOff\n        message: Back-off pulling image nope\n",
    );
    assert_eq!(
        helper_outcome(&stuck),
        HelperOutcome::Stuck(
            "helper pod h cannot start: ImagePullBackOff: Back-off pulling image nope".into()
        )
    );
    let unschedulable = pod(
        "  phase: Pending\n  conditions:\n  - type: PodScheduled\n    status: 'False'\n    reason: Unschedulable\n    message: '0/2 nodes are available: 2 node(s) had untolerated taint {dedicated: db}.'\n",
    );
    assert_eq!(
        helper_outcome(&unschedulable),
        HelperOutcome::Stuck(
            "helper pod h cannot be scheduled: 0/2 nodes are available: 2 node(s) had untolerated taint {dedicated: db}.".into()
        )
    );
    assert_eq!(
        super::volume::selected_node(&claim("d", "c")),
        Some("node-1")
    );
}

proptest! {
    /// A template passes the safety check exactly when none of the unsafe settings is present,
    /// and the error always names a field and the opt-out flag.
    #[test]
    fn template_check_refuses_exactly_the_unsafe_settings(flags in proptest::collection::vec(any::<bool>(), 8)) {
        let spec_lines = [
            "  hostNetwork: true\n",
            "  hostIPC: true\n",
            "  nodeName: n1\n",
            "  securityContext:\n    runAsUser: 0\n",
        ];
        let container_lines = [
            "    envFrom:\n    - configMapRef:\n        name: c\n",
            "    startupProbe:\n      exec:\n        command: [\"true\"]\n",
            "    readinessProbe:\n      exec:\n        command: [\"true\"]\n",
            "    securityContext:\n      privileged: true\n",
        ];
        let mut spec = String::new();
        let mut container = String::new();
        for (i, on) in flags.iter().enumerate() {
            if *on {
                if i < 4 { spec.push_str(spec_lines[i]) } else { container.push_str(container_lines[i - 4]) }
            }
        }
        let text = format!("spec:\n{spec}  containers:\n  - name: helper-pod\n    image: busybox\n{container}");
        let pod = config::parse_helper_pod(&text).unwrap();
        let result = check_template(&pod, false);
        prop_assert_eq!(result.is_ok(), !flags.iter().any(|f| *f), "{:?}", result);
        if let Err(e) = result {
            prop_assert!(e.to_string().contains("--allow-unsafe-helper-pod-template"));
        }
        prop_assert!(check_template(&pod, true).is_ok());
    }
}

#[test]
fn folder_names_round_trip() {
    let name = folder_name_of(&format!("pvc-{UID}"), "team-a", "data.0");
    assert_eq!(
        parse_folder_name(&name),
        Some((format!("pvc-{UID}").as_str(), "team-a", "data.0"))
    );
    for bad in [
        "pvc-1_ns",
        "x_ns_c",
        "pvc-1_ns_c_d",
        "pvc-1__c",
        "pvc-1_n/s_c",
        "lost+found",
    ] {
        assert_eq!(parse_folder_name(bad), None, "{bad}");
    }
}
