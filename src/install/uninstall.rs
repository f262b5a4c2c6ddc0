//! `lpp uninstall`: what install made, found by its managed-by label and deleted, refusing while
//! volumes of its classes exist unless forced; data directories on the nodes are never touched.

use kube::api::Api;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::objects;
use super::{Applied, Error, UninstallOptions};
use crate::cluster::{self, Target};
use crate::exit::Exit;
use crate::ui::{self, Report, Ui};

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
    let read = |what: &'static str| cluster::failed("list", what);
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
                return Err(cluster::failed("delete", format!("{kind} {name}"))(source).into());
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
