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
        });
    }
    Ok(applied)
}

/// The install set as text: YAML documents, or a JSON `List`.
pub fn render(settings: &ManifestSettings, format: Format) -> Result<String, Error> {
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
    let cluster = cluster::connect(target).await?;
    let server_dry_run = options.dry_run == Some(DryRun::Server);
    let objects = apply(&cluster.client, &options.manifest, server_dry_run).await?;
    ui.print(&InstallReport {
        objects,
        dry_run: server_dry_run,
    })?;
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
