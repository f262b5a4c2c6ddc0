//! `lpp install`, `manifests`, `uninstall` and `status`: the cluster objects as typed values, applied
//! with server-side apply, inspected and removed.

use std::time::Duration;

/// Where a node's volumes go: `--path` for every node, `--node-path NODE=DIR` for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasePaths {
    /// Per-node base directories; the entry for `None` applies to nodes not listed.
    Nodes(Vec<(Option<String>, String)>),
    /// One filesystem shared by all nodes (`--shared-path`).
    Shared(String),
}

/// What the installed objects look like (`install` and `manifests`).
#[derive(Debug, Clone)]
pub struct ManifestSettings {
    /// Namespace the provisioner and its objects live in.
    pub namespace: String,
    /// Name of the StorageClass to create.
    pub storage_class: String,
    /// Provisioner name the StorageClass points at (`provisioner:`).
    pub provisioner_name: String,
    /// Where each node's volumes go.
    pub base_paths: BasePaths,
    /// Mark the class as the cluster default (`storageclass.kubernetes.io/is-default-class`).
    pub default_class: bool,
    /// `--allow-expansion`: the class's `allowVolumeExpansion: true`.
    pub allow_expansion: bool,
    /// `Delete` or `Retain`, as Kubernetes spells it.
    pub reclaim_policy: String,
    /// `WaitForFirstConsumer` or `Immediate`.
    pub binding_mode: String,
    /// `hostPath` or `local`.
    pub volume_type: String,
    /// Image of the helper pods that create and delete volume directories.
    pub helper_image: String,
    /// The image of the in-cluster Deployment, when `--in-cluster`.
    pub in_cluster_image: Option<String>,
    /// `--executor`: with `agent`, the node agent DaemonSet and the ConfigMap's `executor` key.
    pub executor: crate::config::ExecutorKind,
    /// `--capacity-tracking`: the class and CSIDriver of lpp's own provisioner name.
    pub capacity_tracking: bool,
}

/// `--dry-run` of `install`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Render the objects locally without sending them.
    Client,
    /// Send the objects with the server's dry run: validated, not stored.
    Server,
}

/// What `lpp install` does.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The objects to apply.
    pub manifest: ManifestSettings,
    /// `--dry-run`; `None` applies for real.
    pub dry_run: Option<DryRun>,
    /// `--wait` with its `--timeout`.
    pub wait: Option<Duration>,
}

/// What `lpp uninstall` does.
#[derive(Debug, Clone)]
pub struct UninstallOptions {
    /// Namespace the provisioner was installed in.
    pub namespace: String,
    /// `--force`: go ahead although PVs of lpp's classes still exist; their data stays on the nodes.
    pub force: bool,
    /// `--dry-run`: report what would be deleted, delete nothing.
    pub dry_run: bool,
    /// `--wait` with its `--timeout`: how long to wait for the namespace to go; `None` returns at once.
    pub wait: Option<Duration>,
}

/// What `lpp status` inspects.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Namespace the provisioner was installed in.
    pub namespace: String,
    /// Provisioner name whose classes and volumes to list.
    pub provisioner_name: String,
    /// How far back to show events.
    pub events_since: Duration,
    /// `-w`: print again on every change until Ctrl-C.
    pub watch: bool,
}

pub mod objects;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::{self, Target};
use crate::exit::Exit;
use crate::ui::{self, Format, Report, Ui};
use objects::Object;

/// The field manager of everything lpp applies.
pub const FIELD_MANAGER: &str = "lpp";

/// Why install cannot do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed: `<verb> <what>: <the server's message>`, or why the server could not
    /// be reached.
    #[error("{}", cluster::request_failed(verb, what, source))]
    Request {
        /// What was being done: `get`, `apply`, `delete`, ...
        verb: &'static str,
        /// The object it was done to.
        what: String,
        #[source]
        /// The client's error.
        source: kube::Error,
    },
    /// The cluster is in a state the command will not act on (exit `Refused`).
    #[error("{0}")]
    Refused(String),
    /// The options contradict each other or name something unknown (exit `Usage`).
    #[error("{0}")]
    Usage(String),
    /// `--wait` ran out of time before the objects were ready or gone.
    #[error("{0}")]
    Wait(String),
    /// The objects could not be built from the options.
    #[error("cannot render the manifests: {0}")]
    Render(String),
    /// No connection to the cluster could be set up.
    #[error(transparent)]
    Connect(#[from] cluster::Error),
    /// The report could not be printed.
    #[error(transparent)]
    Ui(#[from] ui::Error),
}

impl Error {
    /// The process exit status this error maps to.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Ui(e) => e.exit(),
            Error::Refused(_) => Exit::Refused,
            Error::Usage(_) => Exit::Usage,
            _ => Exit::Failure,
        }
    }
}

/// What applying one object did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Kubernetes kind, such as `ConfigMap`.
    pub kind: &'static str,
    /// Object name.
    pub name: String,
    /// Namespace; `None` for cluster-scoped objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `created`, `configured` or `unchanged`, as kubectl says it.
    pub result: &'static str,
}

impl Applied {
    /// The name as `kubectl -o name` spells it: the resource, dot, its API group, slash, the
    /// name (`role.rbac.authorization.k8s.io/x`, `configmap/y`).
    pub fn kubectl_name(&self) -> String {
        let resource = match self.kind {
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => {
                format!("{}.rbac.authorization.k8s.io", self.kind.to_lowercase())
            }
            "StorageClass" => "storageclass.storage.k8s.io".to_owned(),
            "Deployment" => "deployment.apps".to_owned(),
            "DaemonSet" => "daemonset.apps".to_owned(),
            "CSIDriver" => "csidriver.storage.k8s.io".to_owned(),
            "CSIStorageCapacity" => "csistoragecapacity.storage.k8s.io".to_owned(),
            "Lease" => "lease.coordination.k8s.io".to_owned(),
            other => other.to_lowercase(),
        };
        format!("{resource}/{}", self.name)
    }
}

/// The install report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallReport {
    /// `apiVersion` and `kind` of the report.
    #[serde(flatten)]
    pub type_meta: ui::TypeMeta,
    /// Every object applied, in order.
    pub objects: Vec<Applied>,
    /// Whether this was a dry run (nothing stored).
    pub dry_run: bool,
}

impl Report for InstallReport {
    fn tables(&self, _wide: bool) -> Vec<comfy_table::Table> {
        let mut table = ui::table(["kind", "name", "namespace", "result"]);
        for a in &self.objects {
            let result = if self.dry_run {
                format!("{} (server dry run)", a.result)
            } else {
                a.result.to_owned()
            };
            table.add_row(vec![
                a.kind.to_owned(),
                a.name.clone(),
                a.namespace.clone().unwrap_or_default(),
                result,
            ]);
        }
        vec![table]
    }

    fn names(&self) -> Vec<String> {
        self.objects.iter().map(Applied::kubectl_name).collect()
    }
}

async fn apply_one<K>(api: Api<K>, object: &K, params: &PatchParams) -> Result<Applied, Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    <K as Resource>::DynamicType: Default,
{
    let kind: &'static str = match K::kind(&Default::default()).as_ref() {
        "Namespace" => "Namespace",
        "ServiceAccount" => "ServiceAccount",
        "Role" => "Role",
        "ClusterRole" => "ClusterRole",
        "RoleBinding" => "RoleBinding",
        "ClusterRoleBinding" => "ClusterRoleBinding",
        "StorageClass" => "StorageClass",
        "ConfigMap" => "ConfigMap",
        "Deployment" => "Deployment",
        "DaemonSet" => "DaemonSet",
        "CSIDriver" => "CSIDriver",
        _ => "object",
    };
    let name = object.name_any();
    let fail = |verb| {
        let what = format!("{kind} {name}");
        move |source| Error::Request { verb, what, source }
    };
    let before = api.get_opt(&name).await.map_err(fail("get"))?;
    let after = api
        .patch(&name, params, &Patch::Apply(object))
        .await
        .map_err(fail("apply"))?;
    let result = match before {
        None => "created",
        Some(b) if b.resource_version() == after.resource_version() => "unchanged",
        Some(_) => "configured",
    };
    Ok(Applied {
        kind,
        name,
        namespace: object.namespace(),
        result,
    })
}

fn namespaced<K>(client: &kube::Client, object: &K) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    Api::namespaced(client.clone(), &object.namespace().unwrap_or_default())
}

/// Applies the install set with server-side apply (field manager `lpp`, taking over fields
/// another manager set), without prompts: what `lpp install` does after its checks, and what
/// `lpp demo` runs on a bare cluster.
pub async fn apply(
    client: &kube::Client,
    settings: &ManifestSettings,
    server_dry_run: bool,
) -> Result<Vec<Applied>, Error> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = server_dry_run;
    let all = |c: &kube::Client| c.clone();
    let mut applied: Vec<Applied> = Vec::new();
    for object in objects::install_set(settings) {
        // A server dry run does not create the namespace, so what goes into a new one could only
        // fail with "namespace not found": it would be created, and is reported so.
        let namespace = match &object {
            Object::ServiceAccount(o) => o.namespace(),
            Object::Role(o) => o.namespace(),
            Object::RoleBinding(o) => o.namespace(),
            Object::ConfigMap(o) => o.namespace(),
            Object::Deployment(o) => o.namespace(),
            Object::DaemonSet(o) => o.namespace(),
            _ => None,
        };
        let in_new_namespace = server_dry_run
            && namespace.as_deref().is_some_and(|ns| {
                applied
                    .iter()
                    .any(|a| a.kind == "Namespace" && a.name == ns && a.result == "created")
            });
        if in_new_namespace {
            let (kind, name) = match &object {
                Object::ServiceAccount(o) => ("ServiceAccount", o.name_any()),
                Object::Role(o) => ("Role", o.name_any()),
                Object::RoleBinding(o) => ("RoleBinding", o.name_any()),
                Object::ConfigMap(o) => ("ConfigMap", o.name_any()),
                Object::Deployment(o) => ("Deployment", o.name_any()),
                Object::DaemonSet(o) => ("DaemonSet", o.name_any()),
                _ => ("object", String::new()),
            };
            applied.push(Applied {
                kind,
                name,
                namespace,
                result: "created",
            });
            continue;
        }
        applied.push(match &object {
            Object::Namespace(o) => apply_one(Api::all(all(client)), o, &params).await?,
            Object::ServiceAccount(o) => apply_one(namespaced(client, o), o, &params).await?,
            Object::Role(o) => apply_one(namespaced(client, o), o, &params).await?,
            Object::ClusterRole(o) => apply_one(Api::all(all(client)), o, &params).await?,
            Object::RoleBinding(o) => apply_one(namespaced(client, o), o, &params).await?,
            Object::ClusterRoleBinding(o) => apply_one(Api::all(all(client)), o, &params).await?,
            Object::StorageClass(o) => apply_one(Api::all(all(client)), o, &params).await?,
            Object::ConfigMap(o) => apply_one(namespaced(client, o), o, &params).await?,
            Object::Deployment(o) => {
                apply_one(namespaced(client, o.as_ref()), o.as_ref(), &params).await?
            }
            Object::DaemonSet(o) => {
                apply_one(namespaced(client, o.as_ref()), o.as_ref(), &params).await?
            }
            Object::CSIDriver(o) => apply_one(Api::all(all(client)), o, &params).await?,
        });
    }
    Ok(applied)
}

/// Checks the settings before anything is rendered or applied: a valid class name, and paths
/// that config.json's own validation accepts (absolute, not `/`, no duplicates).
pub fn validate(settings: &ManifestSettings) -> Result<(), Error> {
    let name = &settings.storage_class;
    let dns_subdomain = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !dns_subdomain {
        return Err(Error::Usage(format!(
            "--storage-class {name:?}: not a valid StorageClass name (lower-case letters, digits, '-' and '.'; e.g. local-path)"
        )));
    }
    crate::config::Config::from_json(&objects::config_json(settings))
        .map_err(|e| Error::Usage(format!("{e} (check --path, --node-path and --shared-path)")))?;
    Ok(())
}

/// The install set as text: YAML documents, or a JSON `List`.
pub fn render(settings: &ManifestSettings, format: Format) -> Result<String, Error> {
    validate(settings)?;
    let objects = objects::install_set(settings);
    match format {
        Format::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            serde_json::to_string_pretty(&list).map_err(|e| Error::Render(e.to_string()))
        }
        _ => {
            let mut out = String::new();
            for object in &objects {
                out.push_str("---\n");
                out.push_str(&ui::to_yaml(object)?);
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            Ok(out)
        }
    }
}

/// `--wait`: with `--in-cluster`, until the Deployment has an available replica (the other
/// objects are ready once applied).
async fn wait_ready(
    ui: &Ui,
    client: &kube::Client,
    settings: &ManifestSettings,
    timeout: Duration,
) -> Result<(), Error> {
    use k8s_openapi::api::apps::v1::Deployment;
    if settings.in_cluster_image.is_none() {
        return Ok(());
    }
    let api: Api<Deployment> = Api::namespaced(client.clone(), &settings.namespace);
    let name = crate::upstream::DEPLOYMENT;
    let spinner = ui.spinner(&format!("waiting for Deployment {name} to be available"));
    let available =
        kube::runtime::wait::await_condition(api.clone(), name, |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.available_replicas)
                .is_some_and(|n| n > 0)
        });
    let waited = tokio::time::timeout(timeout, available).await;
    spinner.finish_and_clear();
    match waited {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Wait(format!(
            "watching Deployment {name} failed: {e}"
        ))),
        Err(_) => {
            let conditions = api
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|d| d.status)
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    format!(
                        "{}={} {}",
                        c.type_,
                        c.status,
                        c.message.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>();
            Err(Error::Wait(format!(
                "Deployment {}/{name} has no available replica after {}s (conditions: {}); check `kubectl -n {} describe deployment {name}`",
                settings.namespace,
                timeout.as_secs(),
                if conditions.is_empty() {
                    "none reported".to_owned()
                } else {
                    conditions.join("; ")
                },
                settings.namespace
            )))
        }
    }
}

/// Every node named by `--node-path` must exist.
async fn check_nodes(client: &kube::Client, settings: &ManifestSettings) -> Result<(), Error> {
    let BasePaths::Nodes(entries) = &settings.base_paths else {
        return Ok(());
    };
    let named: Vec<&str> = entries.iter().filter_map(|(n, _)| n.as_deref()).collect();
    if named.is_empty() {
        return Ok(());
    }
    let nodes: Vec<String> = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(|source| Error::Request {
            verb: "list",
            what: "nodes".into(),
            source,
        })?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    match named.iter().find(|n| !nodes.iter().any(|x| x == *n)) {
        Some(unknown) => Err(Error::Usage(format!(
            "--node-path {unknown}=...: no node {unknown} in the cluster (nodes: {})",
            nodes.join(", ")
        ))),
        None => Ok(()),
    }
}

/// What installing would take over or change beyond lpp's own objects: another install of the
/// same provisioner, another default StorageClass, a ConfigMap edited by hand.
pub async fn look(
    client: &kube::Client,
    settings: &ManifestSettings,
) -> Result<Vec<String>, Error> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::api::storage::v1::StorageClass;
    let fail =
        |verb: &'static str, what: String| move |source| Error::Request { verb, what, source };
    let ours = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(objects::MANAGED_BY.0).map(String::as_str) == Some(objects::MANAGED_BY.1)
    };
    let mut concerns = Vec::new();
    let classes = Api::<StorageClass>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(fail("list", "storageclasses".into()))?
        .items;
    for class in &classes {
        if class.provisioner == settings.provisioner_name && !ours(class.labels()) {
            concerns.push(format!(
                "StorageClass {} already serves provisioner {} and was not installed by lpp (k3s and kind ship upstream's)",
                class.name_any(),
                settings.provisioner_name
            ));
        }
        let is_default = class
            .annotations()
            .get("storageclass.kubernetes.io/is-default-class")
            .map(String::as_str)
            == Some("true");
        if settings.default_class && is_default && class.name_any() != settings.storage_class {
            concerns.push(format!(
                "StorageClass {} is the default class; --default-class makes {} the default instead (remove the annotation storageclass.kubernetes.io/is-default-class from {} to have one default)",
                class.name_any(),
                settings.storage_class,
                class.name_any()
            ));
        }
    }
    let upstream = Api::<Deployment>::namespaced(client.clone(), &settings.namespace)
        .get_opt(crate::upstream::DEPLOYMENT)
        .await
        .map_err(fail(
            "get",
            format!("deployment {}/local-path-provisioner", settings.namespace),
        ))?;
    if let Some(deployment) = upstream.filter(|d| !ours(d.labels())) {
        concerns.push(format!(
            "Deployment {}/{} (upstream's provisioner) exists: two provisioners would both act; scale it to 0 first (kubectl -n {} scale deployment {} --replicas=0)",
            settings.namespace,
            deployment.name_any(),
            settings.namespace,
            deployment.name_any()
        ));
    }
    let map = Api::<ConfigMap>::namespaced(client.clone(), &settings.namespace)
        .get_opt(crate::config::CONFIG_MAP_NAME)
        .await
        .map_err(fail(
            "get",
            format!(
                "configmap {}/{}",
                settings.namespace,
                crate::config::CONFIG_MAP_NAME
            ),
        ))?;
    if let Some(map) = map {
        let wanted =
            crate::config::config_map_data(&objects::config_json(settings), &settings.helper_image);
        let current = map.data.clone().unwrap_or_default();
        let changed: Vec<&str> = wanted
            .keys()
            .chain(current.keys())
            .filter(|k| wanted.get(*k) != current.get(*k))
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !changed.is_empty() {
            concerns.push(format!(
                "ConfigMap {}/{} differs from what install applies in {}: applying replaces those edits (see `lpp manifests`)",
                settings.namespace,
                crate::config::CONFIG_MAP_NAME,
                changed.join(", ")
            ));
        }
    }
    Ok(concerns)
}

/// `lpp manifests`.
pub fn manifests(ui: &Ui, settings: &ManifestSettings) -> Result<Exit, Error> {
    ui.write_stdout(&render(settings, ui.format())?)?;
    Ok(Exit::Success)
}

/// `lpp install`: applies the install set (`--dry-run=client` prints it instead).
pub async fn install(ui: &Ui, target: &Target, options: InstallOptions) -> Result<Exit, Error> {
    if options.dry_run == Some(DryRun::Client) {
        let format = if ui.format() == Format::Json {
            Format::Json
        } else {
            Format::Yaml
        };
        ui.write_stdout(&render(&options.manifest, format)?)?;
        return Ok(Exit::Success);
    }
    validate(&options.manifest)?;
    let cluster = cluster::connect(target).await?;
    let server_dry_run = options.dry_run == Some(DryRun::Server);
    check_nodes(&cluster.client, &options.manifest).await?;
    let concerns = look(&cluster.client, &options.manifest).await?;
    if !concerns.is_empty() {
        for concern in &concerns {
            ui.warn(concern);
        }
        if !server_dry_run {
            ui.confirm(&format!(
                "Install on context {} anyway, taking over what is listed above",
                cluster.context
            ))?;
        }
    }
    let objects = apply(&cluster.client, &options.manifest, server_dry_run).await?;
    ui.print(&InstallReport {
        type_meta: ui::TypeMeta::new("InstallReport"),
        objects,
        dry_run: server_dry_run,
    })?;
    if let Some(timeout) = options.wait.filter(|_| !server_dry_run) {
        wait_ready(ui, &cluster.client, &options.manifest, timeout).await?;
    }
    Ok(Exit::Success)
}

/// What uninstall removed (or would remove), and the data it leaves on the nodes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UninstallReport {
    /// `apiVersion` and `kind` of the report.
    #[serde(flatten)]
    pub type_meta: ui::TypeMeta,
    /// Every object deleted, or that would be on a dry run.
    pub deleted: Vec<Applied>,
    /// Whether this was a dry run (nothing deleted).
    pub dry_run: bool,
    /// `node:path` of every volume of the removed classes: the data stays there.
    pub data_left: Vec<String>,
}

impl Report for UninstallReport {
    fn tables(&self, _wide: bool) -> Vec<comfy_table::Table> {
        let mut table = ui::table(["kind", "name", "namespace", "result"]);
        for a in &self.deleted {
            table.add_row(vec![
                a.kind.to_owned(),
                a.name.clone(),
                a.namespace.clone().unwrap_or_default(),
                a.result.to_owned(),
            ]);
        }
        vec![table]
    }

    fn names(&self) -> Vec<String> {
        self.deleted.iter().map(Applied::kubectl_name).collect()
    }
}

async fn managed<K>(api: &Api<K>) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    <K as Resource>::DynamicType: Default,
{
    let selector = format!("{}={}", objects::MANAGED_BY.0, objects::MANAGED_BY.1);
    Ok(api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?
        .items)
}

/// `lpp uninstall`: deletes what install made (found by the managed-by label), refusing while
/// volumes of those classes exist unless `--force`. Never touches data directories.
pub async fn uninstall(ui: &Ui, target: &Target, options: UninstallOptions) -> Result<Exit, Error> {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolume, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use k8s_openapi::api::storage::v1::StorageClass;
    let cluster = cluster::connect(target).await?;
    let client = &cluster.client;
    let ns = options.namespace.as_str();
    let read = |what: &'static str| {
        move |source| Error::Request {
            verb: "list",
            what: what.to_owned(),
            source,
        }
    };
    let classes = managed(&Api::<StorageClass>::all(client.clone()))
        .await
        .map_err(read("storageclasses"))?;
    let class_names: Vec<String> = classes.iter().map(|c| c.name_any()).collect();
    let volumes: Vec<PersistentVolume> = Api::<PersistentVolume>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(read("persistentvolumes"))?
        .items
        .into_iter()
        .filter(|v| {
            v.spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_ref())
                .is_some_and(|c| class_names.contains(c))
        })
        .collect();
    let data_left: Vec<String> = volumes
        .iter()
        .filter_map(|v| {
            let (node, path) = crate::provision::volume_location(v)?;
            Some(format!(
                "{} {}:{path}",
                v.name_any(),
                node.unwrap_or_else(|| "shared".into())
            ))
        })
        .collect();
    if !volumes.is_empty() && !options.force && !options.dry_run {
        return Err(Error::Refused(format!(
            "{} PVs of StorageClass {} still exist ({}): delete their claims first, or pass --force to uninstall anyway (their data stays on the nodes)",
            volumes.len(),
            class_names.join(", "),
            volumes
                .iter()
                .map(|v| v.name_any())
                .take(5)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut doomed: Vec<(&'static str, String, Option<String>)> = Vec::new();
    for c in &classes {
        doomed.push(("StorageClass", c.name_any(), None));
    }
    macro_rules! collect {
        ($name:literal, $api:expr) => {
            for o in managed(&$api).await.map_err(read($name))? {
                doomed.push(($name, o.name_any(), o.namespace()));
            }
        };
    }
    collect!(
        "Deployment",
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), ns)
    );
    collect!(
        "DaemonSet",
        Api::<k8s_openapi::api::apps::v1::DaemonSet>::namespaced(client.clone(), ns)
    );
    collect!(
        "ConfigMap",
        Api::<ConfigMap>::namespaced(client.clone(), ns)
    );
    collect!(
        "CSIStorageCapacity",
        Api::<k8s_openapi::api::storage::v1::CSIStorageCapacity>::namespaced(client.clone(), ns)
    );
    collect!(
        "CSIDriver",
        Api::<k8s_openapi::api::storage::v1::CSIDriver>::all(client.clone())
    );
    collect!(
        "RoleBinding",
        Api::<RoleBinding>::namespaced(client.clone(), ns)
    );
    collect!("Role", Api::<Role>::namespaced(client.clone(), ns));
    collect!(
        "ServiceAccount",
        Api::<ServiceAccount>::namespaced(client.clone(), ns)
    );
    collect!(
        "ClusterRoleBinding",
        Api::<ClusterRoleBinding>::all(client.clone())
    );
    collect!("ClusterRole", Api::<ClusterRole>::all(client.clone()));
    // Only the provisioner namespace itself, and only when lpp made it.
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(ns)
        .await
        .map_err(read("namespaces"))?;
    if namespace.is_some_and(|n| {
        n.labels().get(objects::MANAGED_BY.0).map(String::as_str) == Some(objects::MANAGED_BY.1)
    }) {
        doomed.push(("Namespace", ns.to_owned(), None));
    }
    if options.dry_run && !volumes.is_empty() && !options.force {
        ui.warn(&format!(
            "{} PVs of StorageClass {} still exist: `lpp uninstall` refuses until their claims are \
             deleted, or goes ahead with --force and leaves their data on the nodes",
            volumes.len(),
            class_names.join(", ")
        ));
    }
    if options.force && !options.dry_run {
        // What is about to go, and what stays without a provisioner, before the question.
        for line in crate::gc::listing(doomed.iter().map(
            |(kind, name, namespace)| match namespace {
                Some(ns) => format!("delete {kind} {ns}/{name}"),
                None => format!("delete {kind} {name}"),
            },
        )) {
            ui.note(&format!("  {line}"));
        }
        for line in crate::gc::listing(data_left.iter().map(|v| format!("keep {v}"))) {
            ui.note(&format!("  {line}"));
        }
        ui.confirm(&format!(
            "Uninstall from context {}: delete these {} objects{}",
            cluster.context,
            doomed.len(),
            if volumes.is_empty() {
                String::new()
            } else {
                format!(
                    ", leaving {} volumes (and their data) with no provisioner",
                    volumes.len()
                )
            }
        ))?;
    }
    let params = kube::api::DeleteParams {
        dry_run: options.dry_run,
        ..Default::default()
    };
    let mut deleted = Vec::new();
    for (kind, name, namespace) in doomed {
        let nsd = namespace.clone().unwrap_or_default();
        let outcome = match kind {
            "StorageClass" => Api::<StorageClass>::all(client.clone())
                .delete(&name, &params)
                .await
                .map(|_| ()),
            "Deployment" => {
                Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &nsd)
                    .delete(&name, &params)
                    .await
                    .map(|_| ())
            }
            "DaemonSet" => {
                Api::<k8s_openapi::api::apps::v1::DaemonSet>::namespaced(client.clone(), &nsd)
                    .delete(&name, &params)
                    .await
                    .map(|_| ())
            }
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), &nsd)
                .delete(&name, &params)
                .await
                .map(|_| ()),
            "CSIStorageCapacity" => {
                Api::<k8s_openapi::api::storage::v1::CSIStorageCapacity>::namespaced(
                    client.clone(),
                    &nsd,
                )
                .delete(&name, &params)
                .await
                .map(|_| ())
            }
            "CSIDriver" => Api::<k8s_openapi::api::storage::v1::CSIDriver>::all(client.clone())
                .delete(&name, &params)
                .await
                .map(|_| ()),
            "RoleBinding" => Api::<RoleBinding>::namespaced(client.clone(), &nsd)
                .delete(&name, &params)
                .await
                .map(|_| ()),
            "Role" => Api::<Role>::namespaced(client.clone(), &nsd)
                .delete(&name, &params)
                .await
                .map(|_| ()),
            "ServiceAccount" => Api::<ServiceAccount>::namespaced(client.clone(), &nsd)
                .delete(&name, &params)
                .await
                .map(|_| ()),
            "ClusterRoleBinding" => Api::<ClusterRoleBinding>::all(client.clone())
                .delete(&name, &params)
                .await
                .map(|_| ()),
            "ClusterRole" => Api::<ClusterRole>::all(client.clone())
                .delete(&name, &params)
                .await
                .map(|_| ()),
            _ => Api::<Namespace>::all(client.clone())
                .delete(&name, &params)
                .await
                .map(|_| ()),
        };
        match outcome {
            Ok(()) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Request {
                    verb: "delete",
                    what: format!("{kind} {name}"),
                    source,
                });
            }
        }
        deleted.push(Applied {
            kind,
            name,
            namespace,
            result: if options.dry_run {
                "deleted (dry run)"
            } else {
                "deleted"
            },
        });
    }
    if let Some(timeout) = options.wait.filter(|_| !options.dry_run) {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let gone = kube::runtime::wait::await_condition(namespaces, ns, |n: Option<&Namespace>| {
            n.is_none_or(|n| n.labels().get(objects::MANAGED_BY.0).is_none())
        });
        if tokio::time::timeout(timeout, gone).await.is_err() {
            return Err(Error::Wait(format!(
                "namespace {ns} is still terminating after {}s; check `kubectl get namespace {ns} -o yaml`",
                timeout.as_secs()
            )));
        }
    }
    ui.print(&UninstallReport {
        type_meta: ui::TypeMeta::new("UninstallReport"),
        deleted,
        dry_run: options.dry_run,
        data_left: data_left.clone(),
    })?;
    if !data_left.is_empty() {
        ui.note("Data stays on the nodes (lpp never deletes volume directories on uninstall):");
        for line in &data_left {
            ui.note(&format!("  {line}"));
        }
        ui.note("`lpp gc` lists directories no PV references once their PVs are gone.");
    }
    Ok(Exit::Success)
}

pub mod status;
pub use status::{StatusReport, status};
