//! `lpp install` and `lpp manifests`: the install set checked, rendered as text, or applied with
//! server-side apply, then (with `--wait`) waited for.

use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::objects::{self, Object};
use super::{Applied, BasePaths, DryRun, Error, FIELD_MANAGER, InstallOptions, ManifestSettings};
use crate::cluster::{self, Target};
use crate::exit::Exit;
use crate::ui::{self, Format, Report, Ui};

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
    let fail = |verb| cluster::failed(verb, format!("{kind} {name}"));
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
            serde_json::to_string_pretty(&list).map_err(Error::Render)
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
        Ok(Err(source)) => Err(Error::Watch {
            what: format!("Deployment {name}"),
            source,
        }),
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
        .map_err(cluster::failed("list", "nodes"))?
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
    let ours = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(objects::MANAGED_BY.0).map(String::as_str) == Some(objects::MANAGED_BY.1)
    };
    let mut concerns = Vec::new();
    let classes = Api::<StorageClass>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(cluster::failed("list", "storageclasses"))?
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
        .map_err(cluster::failed(
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
        .map_err(cluster::failed(
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
