//! The install set as typed objects, built by pure functions from [`ManifestSettings`]. Names and
//! shape mirror upstream's `deploy/local-path-storage.yaml`, so a cluster can switch either way.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, ContainerPort, HTTPGetAction, Namespace,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use serde::Serialize;

use super::{BasePaths, ManifestSettings};
use crate::config::{ConfigJson, config_map_data};

/// The service account the provisioner and its helper pods run as (upstream's name).
pub const SERVICE_ACCOUNT: &str = crate::upstream::SERVICE_ACCOUNT;
/// The name of the Role, ClusterRole and their bindings (upstream's names).
pub const ROLE: &str = crate::upstream::ROLE;
const BINDING: &str = crate::upstream::BINDING;

/// The label every object lpp installs carries; uninstall finds them by it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "lpp");

/// One object of the install set.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Object {
    /// The provisioner's namespace.
    Namespace(Namespace),
    /// The provisioner's service account.
    ServiceAccount(ServiceAccount),
    /// The namespaced permissions: helper pods, the ConfigMap, the Lease, the node agents.
    Role(Role),
    /// The cluster-wide permissions: PVs, claims, nodes, classes, events.
    ClusterRole(ClusterRole),
    /// Binds the Role to the service account.
    RoleBinding(RoleBinding),
    /// Binds the ClusterRole to the service account.
    ClusterRoleBinding(ClusterRoleBinding),
    /// The StorageClass that names the provisioner.
    StorageClass(StorageClass),
    /// The provisioner's ConfigMap, as upstream lays it out.
    ConfigMap(ConfigMap),
    /// The in-cluster provisioner, with `--in-cluster`.
    Deployment(Box<Deployment>),
    /// The node agents, with `--executor agent`.
    DaemonSet(Box<k8s_openapi::api::apps::v1::DaemonSet>),
    /// With `--capacity-tracking`: the CSIDriver that has kube-scheduler check capacity.
    CSIDriver(k8s_openapi::api::storage::v1::CSIDriver),
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (
            "app.kubernetes.io/name".to_owned(),
            "local-path-provisioner".to_owned(),
        ),
        ("app.kubernetes.io/part-of".to_owned(), "lpp".to_owned()),
        (
            "app.kubernetes.io/version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let owned = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect());
    PolicyRule {
        api_groups: owned(groups),
        resources: owned(resources),
        verbs: owned(verbs).unwrap_or_default(),
        ..PolicyRule::default()
    }
}

/// The config.json the settings ask for.
pub fn config_json(settings: &ManifestSettings) -> ConfigJson {
    let mut config = match &settings.base_paths {
        BasePaths::Shared(path) => ConfigJson::with_shared_path(path),
        BasePaths::Nodes(entries) => {
            ConfigJson::with_node_paths(entries.iter().map(|(n, p)| (n.as_deref(), p.as_str())))
        }
    };
    if settings.executor == crate::config::ExecutorKind::Agent {
        config.executor = settings.executor.as_str().to_owned();
    }
    config
}

/// The port of `/metrics`, `/healthz` and `/readyz` in the in-cluster Deployment.
pub const METRICS_PORT: i32 = 8080;

/// The in-cluster Deployment: one replica of `lpp run` with least privilege.
fn deployment(settings: &ManifestSettings, image: &str) -> Deployment {
    let ns = settings.namespace.as_str();
    let selector = BTreeMap::from([(
        "app.kubernetes.io/name".to_owned(),
        "local-path-provisioner".to_owned(),
    )]);
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("metrics".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    let quantity = |q: &str| Quantity(q.to_owned());
    Deployment {
        metadata: meta(crate::upstream::DEPLOYMENT, Some(ns)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(SERVICE_ACCOUNT.into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![Container {
                        name: "lpp".into(),
                        image: Some(image.to_owned()),
                        args: Some(
                            vec![
                                "run".into(),
                                "--namespace".into(),
                                ns.to_owned(),
                                "--provisioner-name".into(),
                                settings.provisioner_name.clone(),
                                "--metrics-addr".into(),
                                format!("0.0.0.0:{METRICS_PORT}"),
                            ]
                            .into_iter()
                            .chain(
                                settings
                                    .capacity_tracking
                                    .then(|| "--capacity-tracking".to_owned()),
                            )
                            .collect(),
                        ),
                        ports: Some(vec![ContainerPort {
                            name: Some("metrics".into()),
                            container_port: METRICS_PORT,
                            ..ContainerPort::default()
                        }]),
                        liveness_probe: Some(probe("/healthz")),
                        readiness_probe: Some(probe("/readyz")),
                        resources: Some(ResourceRequirements {
                            requests: Some(BTreeMap::from([
                                ("cpu".to_owned(), quantity("10m")),
                                ("memory".to_owned(), quantity("32Mi")),
                            ])),
                            limits: Some(BTreeMap::from([(
                                "memory".to_owned(),
                                quantity("128Mi"),
                            )])),
                            ..ResourceRequirements::default()
                        }),
                        security_context: Some(SecurityContext {
                            allow_privilege_escalation: Some(false),
                            read_only_root_filesystem: Some(true),
                            capabilities: Some(Capabilities {
                                drop: Some(vec!["ALL".into()]),
                                ..Capabilities::default()
                            }),
                            ..SecurityContext::default()
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// Every object `lpp install` applies, in apply order.
pub fn install_set(settings: &ManifestSettings) -> Vec<Object> {
    let ns = settings.namespace.as_str();
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: SERVICE_ACCOUNT.into(),
        namespace: Some(ns.to_owned()),
        ..Subject::default()
    };
    let mut namespace_labels = labels();
    // Helper pods mount hostPath volumes, which the baseline and restricted Pod Security levels
    // refuse: the provisioner namespace has to admit privileged pods.
    for mode in ["enforce", "audit", "warn"] {
        namespace_labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "privileged".into(),
        );
    }
    let mut class_annotations = BTreeMap::new();
    if settings.default_class {
        class_annotations.insert(
            "storageclass.kubernetes.io/is-default-class".to_owned(),
            "true".to_owned(),
        );
    }
    if settings.volume_type == "local" {
        class_annotations.insert("defaultVolumeType".to_owned(), "local".to_owned());
    }
    let mut set = vec![
        Object::Namespace(Namespace {
            metadata: ObjectMeta {
                labels: Some(namespace_labels),
                ..meta(ns, None)
            },
            ..Namespace::default()
        }),
        Object::ServiceAccount(ServiceAccount {
            metadata: meta(SERVICE_ACCOUNT, Some(ns)),
            ..ServiceAccount::default()
        }),
        Object::Role(Role {
            metadata: meta(ROLE, Some(ns)),
            rules: Some(vec![
                rule(
                    &[""],
                    &["pods"],
                    &["get", "list", "watch", "create", "delete"],
                ),
                rule(&[""], &["configmaps"], &["get", "list", "watch"]),
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["get", "create", "update"],
                ),
                // The node agents: scripts run by exec into them, and `lpp run` adds base paths
                // to their DaemonSet when the ConfigMap gains one.
                rule(&[""], &["pods/exec"], &["create", "get"]),
                rule(&["apps"], &["daemonsets"], &["get", "patch"]),
            ]),
        }),
        Object::ClusterRole(ClusterRole {
            metadata: meta(ROLE, None),
            rules: Some(vec![
                rule(&[""], &["nodes", "pods"], &["get", "list", "watch"]),
                rule(&[""], &["pods/log"], &["get"]),
                rule(
                    &[""],
                    &["persistentvolumeclaims"],
                    &["get", "list", "watch", "update", "patch"],
                ),
                // Growing claims: lpp is the external resizer of its volumes.
                rule(
                    &[""],
                    &["persistentvolumeclaims/status"],
                    &["patch", "update"],
                ),
                rule(
                    &[""],
                    &["persistentvolumes"],
                    &[
                        "get", "list", "watch", "create", "patch", "update", "delete",
                    ],
                ),
                rule(&[""], &["events"], &["create", "patch"]),
                rule(
                    &["storage.k8s.io"],
                    &["storageclasses"],
                    &["get", "list", "watch"],
                ),
            ]),
            ..ClusterRole::default()
        }),
        Object::RoleBinding(RoleBinding {
            metadata: meta(BINDING, Some(ns)),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: ROLE.into(),
            },
            subjects: Some(vec![subject.clone()]),
        }),
        Object::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta(BINDING, None),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: ROLE.into(),
            },
            subjects: Some(vec![subject]),
        }),
        Object::StorageClass(StorageClass {
            metadata: ObjectMeta {
                annotations: (!class_annotations.is_empty()).then_some(class_annotations),
                ..meta(&settings.storage_class, None)
            },
            provisioner: settings.provisioner_name.clone(),
            allow_volume_expansion: settings.allow_expansion.then_some(true),
            reclaim_policy: Some(settings.reclaim_policy.clone()),
            volume_binding_mode: Some(settings.binding_mode.clone()),
            ..StorageClass::default()
        }),
        Object::ConfigMap(ConfigMap {
            metadata: meta(crate::config::CONFIG_MAP_NAME, Some(ns)),
            data: Some(config_map_data(
                &config_json(settings),
                &settings.helper_image,
            )),
            ..ConfigMap::default()
        }),
    ];
    if let Some(image) = &settings.in_cluster_image {
        set.push(Object::Deployment(Box::new(deployment(settings, image))));
    }
    if settings.executor == crate::config::ExecutorKind::Agent {
        set.push(Object::DaemonSet(Box::new(agent_daemon_set(settings))));
    }
    if settings.capacity_tracking {
        capacity_tracking(&mut set, settings);
    }
    set
}

/// `--capacity-tracking`: the class of lpp's own provisioner name (a CSIDriver cannot carry
/// upstream's, which has a slash), the CSIDriver that makes kube-scheduler check capacity for
/// it, and the Role's permission to publish CSIStorageCapacity objects.
fn capacity_tracking(set: &mut Vec<Object>, settings: &ManifestSettings) {
    use crate::provision::capacity::{CAPACITY_CLASS, CAPACITY_PROVISIONER};
    use k8s_openapi::api::storage::v1::{CSIDriver, CSIDriverSpec};
    for object in set.iter_mut() {
        if let Object::Role(role) = object {
            role.rules.get_or_insert_with(Vec::new).push(rule(
                &["storage.k8s.io"],
                &["csistoragecapacities"],
                &["get", "list", "watch", "create", "update", "delete"],
            ));
        }
    }
    set.push(Object::CSIDriver(CSIDriver {
        metadata: meta(CAPACITY_PROVISIONER, None),
        spec: CSIDriverSpec {
            // No CSI driver runs: the volumes are hostPath or local, which the kubelet mounts
            // itself; the object is there for the scheduler's capacity check.
            attach_required: Some(false),
            pod_info_on_mount: Some(false),
            storage_capacity: Some(true),
            volume_lifecycle_modes: Some(vec!["Persistent".into()]),
            ..CSIDriverSpec::default()
        },
    }));
    set.push(Object::StorageClass(StorageClass {
        metadata: meta(CAPACITY_CLASS, None),
        provisioner: CAPACITY_PROVISIONER.to_owned(),
        reclaim_policy: Some(settings.reclaim_policy.clone()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..StorageClass::default()
    }));
}

/// The node agents of `--executor agent`: built from the same helper pod template and image the
/// ConfigMap gets, mounting every base path it names.
fn agent_daemon_set(settings: &ManifestSettings) -> k8s_openapi::api::apps::v1::DaemonSet {
    let config = config_json(settings);
    let paths = crate::config::Config::from_json(&config)
        .map(|c| c.all_base_paths())
        .unwrap_or_default();
    let template = crate::config::parse_helper_pod(&crate::config::default_helper_pod_yaml(
        &settings.helper_image,
    ))
    .unwrap_or_default();
    let mut set = crate::provision::agent::daemon_set(&template, None, &settings.namespace, &paths);
    // Its own labels, plus the install set's version, so `lpp uninstall` finds it.
    set.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(
            labels()
                .into_iter()
                .filter(|(k, _)| k != "app.kubernetes.io/name"),
        );
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ManifestSettings {
        ManifestSettings {
            namespace: "local-path-storage".into(),
            storage_class: "local-path".into(),
            provisioner_name: "rancher.io/local-path".into(),
            base_paths: BasePaths::Nodes(vec![(None, "/opt/local-path-provisioner".into())]),
            default_class: false,
            allow_expansion: false,
            reclaim_policy: "Delete".into(),
            binding_mode: "WaitForFirstConsumer".into(),
            volume_type: "hostPath".into(),
            helper_image: "busybox".into(),
            in_cluster_image: Some("ghcr.io/lpp-dev/lpp:test".into()),
            executor: crate::config::ExecutorKind::HelperPod,
            capacity_tracking: false,
        }
    }

    /// The whole install set, reviewed by eye against upstream's deploy manifest; a change to
    /// any object shows up here.
    #[test]
    fn the_install_set() {
        let text = crate::install::render(&defaults(), crate::ui::Format::Yaml).unwrap();
        let text = text.replace(env!("CARGO_PKG_VERSION"), "VERSION");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn allow_expansion_is_set_on_the_class() {
        let class = |settings: &ManifestSettings| {
            install_set(settings)
                .into_iter()
                .find_map(|o| match o {
                    Object::StorageClass(c) => Some(c),
                    _ => None,
                })
                .unwrap()
        };
        assert_eq!(class(&defaults()).allow_volume_expansion, None);
        let grows = ManifestSettings {
            allow_expansion: true,
            ..defaults()
        };
        assert_eq!(class(&grows).allow_volume_expansion, Some(true));
    }
}
