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
    pub namespace: String,
    pub storage_class: String,
    pub provisioner_name: String,
    pub base_paths: BasePaths,
    pub default_class: bool,
    /// `Delete` or `Retain`, as Kubernetes spells it.
    pub reclaim_policy: String,
    /// `WaitForFirstConsumer` or `Immediate`.
    pub binding_mode: String,
    /// `hostPath` or `local`.
    pub volume_type: String,
    pub helper_image: String,
    /// The image of the in-cluster Deployment, when `--in-cluster`.
    pub in_cluster_image: Option<String>,
}

/// `--dry-run` of `install`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    Client,
    Server,
}

#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub manifest: ManifestSettings,
    pub dry_run: Option<DryRun>,
    /// `--wait` with its `--timeout`.
    pub wait: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct UninstallOptions {
    pub namespace: String,
    pub force: bool,
    pub dry_run: bool,
    pub wait: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub namespace: String,
    pub provisioner_name: String,
    pub events_since: Duration,
}

pub mod objects;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::{self, Target};
use crate::error::Exit;
use crate::ui::{self, Format, Report, Ui};
use objects::Object;

/// The field manager of everything lpp applies.
pub const FIELD_MANAGER: &str = "lpp";

/// Why install cannot do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot apply {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Wait(String),
    #[error("cannot render the manifests: {0}")]
    Render(String),
    #[error(transparent)]
    Connect(#[from] cluster::Error),
    #[error(transparent)]
    Ui(#[from] ui::Error),
}

impl Error {
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
pub struct Applied {
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `created`, `configured` or `unchanged`, as kubectl says it.
    pub result: &'static str,
}

/// The install report.
#[derive(Debug, Serialize)]
pub struct InstallReport {
    pub objects: Vec<Applied>,
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
        self.objects
            .iter()
            .map(|a| format!("{}/{}", a.kind.to_lowercase(), a.name))
            .collect()
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
        _ => "object",
    };
    let name = object.name_any();
    let fail = |source| Error::Apply {
        kind,
        name: name.clone(),
        source,
    };
    let before = api.get_opt(&name).await.map_err(fail)?;
    let after = api
        .patch(&name, params, &Patch::Apply(object))
        .await
        .map_err(fail)?;
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
    let mut applied = Vec::new();
    for object in objects::install_set(settings) {
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
    let name = "local-path-provisioner";
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
        .map_err(|source| Error::Apply {
            kind: "object",
            name: "nodes".into(),
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
    let fail = |kind: &'static str| {
        move |source| Error::Apply {
            kind,
            name: "(read)".into(),
            source,
        }
    };
    let ours = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(objects::MANAGED_BY.0).map(String::as_str) == Some(objects::MANAGED_BY.1)
    };
    let mut concerns = Vec::new();
    let classes = Api::<StorageClass>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(fail("StorageClass"))?
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
        .get_opt("local-path-provisioner")
        .await
        .map_err(fail("Deployment"))?;
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
        .map_err(fail("ConfigMap"))?;
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
pub struct UninstallReport {
    pub deleted: Vec<Applied>,
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
        self.deleted
            .iter()
            .map(|a| format!("{}/{}", a.kind.to_lowercase(), a.name))
            .collect()
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
    let read = |kind: &'static str| {
        move |source| Error::Apply {
            kind,
            name: "(list)".into(),
            source,
        }
    };
    let classes = managed(&Api::<StorageClass>::all(client.clone()))
        .await
        .map_err(read("StorageClass"))?;
    let class_names: Vec<String> = classes.iter().map(|c| c.name_any()).collect();
    let volumes: Vec<PersistentVolume> = Api::<PersistentVolume>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(read("PersistentVolume"))?
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
    if !volumes.is_empty() && !options.force {
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
        "ConfigMap",
        Api::<ConfigMap>::namespaced(client.clone(), ns)
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
        .map_err(read("Namespace"))?;
    if namespace.is_some_and(|n| {
        n.labels().get(objects::MANAGED_BY.0).map(String::as_str) == Some(objects::MANAGED_BY.1)
    }) {
        doomed.push(("Namespace", ns.to_owned(), None));
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
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), &nsd)
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
            Err(source) => return Err(Error::Apply { kind, name, source }),
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

/// `lpp status`: what is installed, who provisions, the volumes per node, what needs attention.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub provisioner: String,
    /// The lpp version that installed the provisioner namespace, when lpp did.
    pub installed_version: Option<String>,
    pub lease: LeaseStatus,
    pub classes: Vec<ClassStatus>,
    pub volumes: Vec<VolumeStatus>,
    pub pending_claims: Vec<PendingClaim>,
    pub warnings: Vec<String>,
    /// Everything that needs a look; empty when healthy.
    pub attention: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LeaseStatus {
    pub name: String,
    pub holder: Option<String>,
    /// Seconds since the holder last renewed.
    pub renewed_seconds_ago: Option<i64>,
    pub held: bool,
}

#[derive(Debug, Serialize)]
pub struct ClassStatus {
    pub name: String,
    pub default: bool,
    pub binding_mode: String,
    pub reclaim_policy: String,
}

#[derive(Debug, Serialize)]
pub struct VolumeStatus {
    pub node: String,
    pub name: String,
    pub path: String,
    pub capacity: String,
    pub phase: String,
    pub claim: String,
    pub age_seconds: i64,
}

#[derive(Debug, Serialize)]
pub struct PendingClaim {
    pub namespace: String,
    pub name: String,
    pub class: String,
    pub reason: String,
}

impl Report for StatusReport {
    fn tables(&self, _wide: bool) -> Vec<comfy_table::Table> {
        let mut summary = ui::table(["provisioner", "installed", "lease holder", "renewed"]);
        summary.add_row(vec![
            self.provisioner.clone(),
            self.installed_version
                .clone()
                .map_or("not by lpp".to_owned(), |v| format!("lpp {v}")),
            match (&self.lease.holder, self.lease.held) {
                (Some(h), true) => h.clone(),
                (Some(h), false) => format!("nobody ({h} stopped renewing)"),
                (None, _) => "nobody".to_owned(),
            },
            self.lease
                .renewed_seconds_ago
                .map_or("-".to_owned(), |s| format!("{}s ago", s)),
        ]);
        let mut classes = ui::table(["storageclass", "default", "binding", "reclaim"]);
        for c in &self.classes {
            classes.add_row(vec![
                c.name.clone(),
                if c.default { "yes" } else { "" }.to_owned(),
                c.binding_mode.clone(),
                c.reclaim_policy.clone(),
            ]);
        }
        let mut volumes = ui::table([
            "node", "volume", "path", "capacity", "phase", "claim", "age",
        ]);
        for v in &self.volumes {
            volumes.add_row(vec![
                v.node.clone(),
                v.name.clone(),
                v.path.clone(),
                v.capacity.clone(),
                v.phase.clone(),
                v.claim.clone(),
                ui::age(std::time::Duration::from_secs(v.age_seconds.max(0) as u64)),
            ]);
        }
        let mut tables = vec![summary, classes, volumes];
        if !self.pending_claims.is_empty() {
            let mut pending = ui::table(["pending claim", "class", "reason"]);
            for p in &self.pending_claims {
                pending.add_row(vec![
                    format!("{}/{}", p.namespace, p.name),
                    p.class.clone(),
                    p.reason.clone(),
                ]);
            }
            tables.push(pending);
        }
        if !self.attention.is_empty() {
            let mut attention = ui::table(["needs attention"]);
            for a in &self.attention {
                attention.add_row(vec![a.clone()]);
            }
            tables.push(attention);
        }
        tables
    }
}

/// `lpp status`. Exit 0 when healthy, 3 when something needs attention.
pub async fn status(ui: &Ui, target: &Target, options: StatusOptions) -> Result<Exit, Error> {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Event, Namespace, PersistentVolume, PersistentVolumeClaim};
    use k8s_openapi::api::storage::v1::StorageClass;
    let cluster = cluster::connect(target).await?;
    let client = &cluster.client;
    let fail = |kind: &'static str| {
        move |source| Error::Apply {
            kind,
            name: "(read)".into(),
            source,
        }
    };
    let now = jiff::Timestamp::now();
    let provisioner = options.provisioner_name.clone();
    let installed_version = Api::<Namespace>::all(client.clone())
        .get_opt(&options.namespace)
        .await
        .map_err(fail("Namespace"))?
        .and_then(|n| n.labels().get("app.kubernetes.io/version").cloned());
    let lease_name = crate::controller::lease_name_for(&provisioner);
    let lease = Api::<Lease>::namespaced(client.clone(), &options.namespace)
        .get_opt(&lease_name)
        .await
        .map_err(fail("Lease"))?
        .and_then(|l| l.spec);
    let holder = lease
        .as_ref()
        .and_then(|l| l.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let renewed = lease
        .as_ref()
        .and_then(|l| l.renew_time.as_ref())
        .map(|t| now.duration_since(t.0).as_secs());
    let duration = lease
        .as_ref()
        .and_then(|l| l.lease_duration_seconds)
        .unwrap_or(15);
    let held = holder.is_some() && renewed.is_some_and(|r| r <= i64::from(duration));
    let classes: Vec<StorageClass> = Api::<StorageClass>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(fail("StorageClass"))?
        .items
        .into_iter()
        .filter(|c| c.provisioner == provisioner)
        .collect();
    let class_names: Vec<String> = classes.iter().map(|c| c.name_any()).collect();
    let mut volumes: Vec<VolumeStatus> = Api::<PersistentVolume>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(fail("PersistentVolume"))?
        .items
        .iter()
        .filter(|v| v.annotations().get("pv.kubernetes.io/provisioned-by") == Some(&provisioner))
        .map(|v| {
            let (node, path) =
                crate::provision::volume_location(v).unwrap_or((None, String::new()));
            let spec = v.spec.clone().unwrap_or_default();
            VolumeStatus {
                node: node.unwrap_or_else(|| "shared".into()),
                name: v.name_any(),
                path,
                capacity: spec
                    .capacity
                    .and_then(|c| c.get("storage").map(|q| q.0.clone()))
                    .unwrap_or_default(),
                phase: v
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default(),
                claim: spec
                    .claim_ref
                    .map(|c| {
                        format!(
                            "{}/{}",
                            c.namespace.unwrap_or_default(),
                            c.name.unwrap_or_default()
                        )
                    })
                    .unwrap_or_default(),
                age_seconds: v
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(0, |t| now.duration_since(t.0).as_secs()),
            }
        })
        .collect();
    volumes.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
    let events: Vec<Event> = Api::<Event>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(fail("Event"))?
        .items;
    let latest_event = |kind: &str, namespace: &str, name: &str| {
        events
            .iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some(kind)
                    && e.involved_object.name.as_deref() == Some(name)
                    && e.involved_object.namespace.as_deref().unwrap_or("") == namespace
            })
            .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0))
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default()
                )
            })
    };
    let pending_claims: Vec<PendingClaim> = Api::<PersistentVolumeClaim>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(fail("PersistentVolumeClaim"))?
        .items
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
        .filter_map(|c| {
            let class = c.spec.as_ref()?.storage_class_name.clone()?;
            class_names.contains(&class).then(|| {
                let namespace = c.namespace().unwrap_or_default();
                PendingClaim {
                    reason: latest_event("PersistentVolumeClaim", &namespace, &c.name_any())
                        .unwrap_or_else(|| "no events".into()),
                    namespace,
                    name: c.name_any(),
                    class,
                }
            })
        })
        .collect();
    let since = i64::try_from(options.events_since.as_secs()).unwrap_or(i64::MAX);
    let warnings: Vec<String> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| {
            e.source.as_ref().and_then(|s| s.component.as_deref()) == Some(provisioner.as_str())
                || e.reporting_component.as_deref() == Some(provisioner.as_str())
        })
        .filter(|e| {
            e.last_timestamp
                .as_ref()
                .is_some_and(|t| now.duration_since(t.0).as_secs() <= since)
        })
        .map(|e| {
            format!(
                "{} {}: {}",
                e.involved_object.name.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
        .collect();
    let mut attention = Vec::new();
    if classes.is_empty() {
        attention.push(format!(
            "no StorageClass names provisioner {provisioner}: run `lpp install`"
        ));
    }
    if !held {
        attention.push(format!(
            "nobody holds the Lease {}/{lease_name}: no provisioner is running (`lpp run`, or `lpp install --in-cluster`)",
            options.namespace
        ));
    }
    for v in volumes
        .iter()
        .filter(|v| v.phase == "Released" || v.phase == "Failed")
    {
        attention.push(format!(
            "volume {} is {} ({}:{})",
            v.name, v.phase, v.node, v.path
        ));
    }
    for p in &pending_claims {
        attention.push(format!(
            "claim {}/{} is Pending: {}",
            p.namespace, p.name, p.reason
        ));
    }
    attention.extend(warnings.iter().map(|w| format!("warning: {w}")));
    let healthy = attention.is_empty();
    ui.print(&StatusReport {
        provisioner,
        installed_version,
        lease: LeaseStatus {
            name: lease_name,
            holder,
            renewed_seconds_ago: renewed,
            held,
        },
        classes: classes
            .iter()
            .map(|c| ClassStatus {
                name: c.name_any(),
                default: c
                    .annotations()
                    .get("storageclass.kubernetes.io/is-default-class")
                    .map(String::as_str)
                    == Some("true"),
                binding_mode: c
                    .volume_binding_mode
                    .clone()
                    .unwrap_or_else(|| "Immediate".into()),
                reclaim_policy: c.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            })
            .collect(),
        volumes,
        pending_claims,
        warnings,
        attention,
    })?;
    Ok(if healthy {
        Exit::Success
    } else {
        Exit::Refused
    })
}
