//! The demo's steps, one method each: install (when the class is missing), the claim, the pod,
//! the PV bound, a file written by exec, the same file found on the node, and the reclaim.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, Namespace, PersistentVolume, PersistentVolumeClaim, Pod,
    PodSpec, Volume, VolumeMount,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{
    Api, AttachParams, DeleteParams, ListParams, LogParams, ObjectMeta, PostParams, ResourceExt,
};
use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt;

use crate::cluster::{self};
use crate::demo::{CLAIM_MANIFEST, Error, PAYLOAD, POD_MANIFEST};
use crate::ui::{self};

use super::tables::{claim_table, volume_table};
use super::{CLAIM, POD, SELECTED_NODE};
use super::{Walk, delete_and_wait};

impl Walk<'_> {
    pub(super) async fn install(
        &mut self,
        facts: &mut BTreeMap<&'static str, String>,
    ) -> Result<(), String> {
        let classes: Api<StorageClass> = Api::all(self.client.clone());
        let name = self.options.storage_class.clone();
        let existing = classes
            .get_opt(&name)
            .await
            .map_err(|e| format!("cannot read StorageClass {name}: {}", cluster::describe(&e)))?;
        let class = match existing {
            Some(class) => {
                facts.insert("installed", "already".into());
                class
            }
            None => {
                let settings = demo_install(&name);
                let applied = crate::install::apply(&self.client, &settings, false)
                    .await
                    .map_err(|e| e.to_string())?;
                facts.insert("installed", format!("{} objects applied", applied.len()));
                classes.get(&name).await.map_err(|e| {
                    format!(
                        "cannot read StorageClass {name} after installing: {}",
                        cluster::describe(&e)
                    )
                })?
            }
        };
        facts.insert("class", name.clone());
        facts.insert("provisioner", class.provisioner.clone());
        let lease_name = crate::controller::lease_name_for(&class.provisioner);
        match self.lease_holder(&lease_name).await? {
            Some(holder) => {
                facts.insert(
                    "provisioning",
                    format!("by {holder} (holds Lease {lease_name})"),
                );
            }
            None => {
                self.start_loop(&class.provisioner);
                facts.insert(
                    "provisioning",
                    "in-process for the demo's duration (nobody held the Lease)".into(),
                );
            }
        }
        Ok(())
    }

    /// Runs the provisioning loop inside the demo until the demo ends.
    pub(super) fn start_loop(&mut self, provisioner: &str) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = crate::controller::RunOptions {
            namespace: crate::cli::DEFAULT_NAMESPACE.into(),
            provisioner_name: provisioner.to_owned(),
            config_map: crate::config::CONFIG_MAP_NAME.into(),
            config_file: None,
            helper_pod_file: None,
            service_account_name: crate::install::objects::SERVICE_ACCOUNT.into(),
            helper_image: None,
            workers: 8,
            provisioning_retry_count: None,
            deletion_retry_count: None,
            allow_unsafe_helper_pod_template: false,
            metrics_addr: None,
            log_format: crate::controller::LogFormat::Text,
            lease_name: Some(crate::controller::lease_name_for(provisioner)),
            origin: String::new(),
            executor: None,
            // The walkthrough measures nothing: it shows one volume, not the disks.
            usage_interval: std::time::Duration::ZERO,
            usage_with_helper_pods: false,
            extra_provisioner_names: Vec::new(),
        };
        let client = self.client.clone();
        let (lines, received) = tokio::sync::mpsc::unbounded_channel();
        self.provisioner_log = Some(received);
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let run = crate::controller::run_reporting(client, options, shutdown, Some(lines));
            if let Err(e) = run.await {
                tracing::warn!("the demo's provisioning loop stopped: {e}");
            }
        });
        self.provisioner = Some((stop, task));
    }

    /// Who holds the provisioner's Lease right now, in any namespace.
    pub(super) async fn lease_holder(&self, lease_name: &str) -> Result<Option<String>, String> {
        let leases: Api<Lease> = Api::all(self.client.clone());
        let list = leases
            .list(&ListParams::default().fields(&format!("metadata.name={lease_name}")))
            .await
            .map_err(|e| format!("cannot list Leases: {}", cluster::describe(&e)))?;
        let now = jiff::Timestamp::now();
        Ok(list.items.into_iter().find_map(|lease| {
            let spec = lease.spec?;
            let holder = spec.holder_identity.filter(|h| !h.is_empty())?;
            let renewed = spec.renew_time?.0;
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            (renewed + jiff::SignedDuration::from_secs(duration) > now).then_some(holder)
        }))
    }

    pub(super) async fn claim(
        &mut self,
        facts: &mut BTreeMap<&'static str, String>,
    ) -> Result<(), String> {
        facts.insert("namespace", self.ns().to_owned());
        let mut claim: PersistentVolumeClaim = parse(CLAIM_MANIFEST, "examples/pvc.yaml")?;
        if let Some(spec) = claim.spec.as_mut() {
            spec.storage_class_name = Some(self.options.storage_class.clone());
        }
        let claims: Api<PersistentVolumeClaim> = self.api();
        let claim = claims
            .create(&PostParams::default(), &claim)
            .await
            .map_err(|e| format!("cannot create claim {CLAIM}: {}", cluster::describe(&e)))?;
        let phase = claim
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into());
        facts.insert("claim", format!("{CLAIM} ({phase})"));
        Ok(())
    }

    pub(super) async fn ensure_namespace(&self) -> Result<(String, bool), String> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if let Some(name) = &self.options.namespace {
            let existing = namespaces
                .get_opt(name)
                .await
                .map_err(|e| format!("cannot read namespace {name}: {}", cluster::describe(&e)))?;
            if existing.is_some() {
                return Ok((name.clone(), false));
            }
        }
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: self.options.namespace.clone(),
                generate_name: self
                    .options
                    .namespace
                    .is_none()
                    .then(|| "lpp-demo-".to_owned()),
                labels: Some(
                    [("app.kubernetes.io/managed-by".to_owned(), "lpp".to_owned())].into(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| {
                format!(
                    "cannot create the demo namespace: {}",
                    cluster::describe(&e)
                )
            })?;
        Ok((created.name_any(), true))
    }

    pub(super) async fn pod(
        &mut self,
        facts: &mut BTreeMap<&'static str, String>,
    ) -> Result<(), String> {
        let mut pod: Pod = parse(POD_MANIFEST, "examples/pod.yaml")?;
        if let Some(spec) = pod.spec.as_mut() {
            for container in &mut spec.containers {
                container.image = Some(self.options.image.clone());
            }
        }
        let pods: Api<Pod> = self.api();
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| format!("cannot create pod {POD}: {}", cluster::describe(&e)))?;
        let claim = self
            .wait_for(
                self.api::<PersistentVolumeClaim>(),
                CLAIM,
                "the scheduler to choose a node",
                |claim: Option<&PersistentVolumeClaim>| {
                    claim.is_some_and(|c| c.annotations().contains_key(SELECTED_NODE))
                },
            )
            .await?;
        let node = claim
            .and_then(|c| c.annotations().get(SELECTED_NODE).cloned())
            .unwrap_or_default();
        facts.insert("selectedNode", node);
        Ok(())
    }

    pub(super) async fn bound(
        &mut self,
        facts: &mut BTreeMap<&'static str, String>,
    ) -> Result<(), String> {
        let claim = self
            .wait_for(
                self.api::<PersistentVolumeClaim>(),
                CLAIM,
                "the claim to be Bound",
                |claim: Option<&PersistentVolumeClaim>| {
                    claim
                        .and_then(|c| c.status.as_ref())
                        .and_then(|s| s.phase.as_deref())
                        == Some("Bound")
                },
            )
            .await?
            .ok_or_else(|| format!("claim {CLAIM} disappeared"))?;
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .ok_or_else(|| format!("claim {CLAIM} is Bound but names no volume"))?;
        self.wait_for(
            self.api::<Pod>(),
            POD,
            "the pod to be Running",
            kube::runtime::conditions::is_pod_running(),
        )
        .await?;
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let volume = volumes
            .get(&volume_name)
            .await
            .map_err(|e| format!("cannot read PV {volume_name}: {}", cluster::describe(&e)))?;
        let (node, path) = volume_location(&volume)
            .ok_or_else(|| format!("PV {volume_name} has no hostPath or local path with a node"))?;
        self.show(&ui::render_table(&volume_table(&volume)))?;
        self.show(&ui::render_table(&claim_table(&claim)))?;
        let events = self.events_of("PersistentVolumeClaim", CLAIM).await;
        if !events.is_empty() {
            self.show(&format!(
                "  events of {CLAIM}:\n    {}",
                events.join("\n    ")
            ))?;
        }
        self.show_provisioner_log()?;
        facts.insert("volume", volume_name.clone());
        facts.insert("node", node.clone());
        facts.insert("path", path.clone());
        self.volume = Some((volume_name, node, path));
        Ok(())
    }

    pub(super) async fn write(
        &mut self,
        facts: &mut BTreeMap<&'static str, String>,
    ) -> Result<(), String> {
        let write = format!("echo {} > /data/test", PAYLOAD.trim_end());
        self.exec(&["sh", "-c", &write]).await?;
        let read = self.exec(&["cat", "/data/test"]).await?;
        facts.insert("read", read.trim_end().to_owned());
        if read == PAYLOAD {
            Ok(())
        } else {
            Err(format!(
                "read back {read:?} from /data/test, expected {PAYLOAD:?}"
            ))
        }
    }

    pub(super) async fn exec(&self, command: &[&str]) -> Result<String, String> {
        let pods: Api<Pod> = self.api();
        let shown = command.join(" ");
        let params = AttachParams::default().stdout(true).stderr(true);
        let attached = pods.exec(POD, command.iter().map(|s| s.to_string()), &params);
        let run = async {
            let mut process = attached
                .await
                .map_err(|e| format!("cannot exec `{shown}` in {POD}: {e}"))?;
            let mut stdout = String::new();
            let mut stderr = String::new();
            let status = process.take_status();
            if let Some(mut out) = process.stdout() {
                out.read_to_string(&mut stdout)
                    .await
                    .map_err(|e| format!("reading the output of `{shown}`: {e}"))?;
            }
            if let Some(mut err) = process.stderr() {
                let _ = err.read_to_string(&mut stderr).await;
            }
            let status = match status {
                Some(status) => status.await,
                None => None,
            };
            match status {
                Some(s) if s.status.as_deref() != Some("Success") => Err(format!(
                    "`{shown}` failed in {POD}: {} {}",
                    s.message.unwrap_or_default(),
                    stderr.trim()
                )),
                _ => Ok(stdout),
            }
        };
        tokio::time::timeout(self.options.step_timeout, run)
            .await
            .map_err(|_| format!("`{shown}` in {POD} did not finish in time"))?
    }

    pub(super) async fn node_file(
        &mut self,
        facts: &mut BTreeMap<&'static str, String>,
    ) -> Result<(), String> {
        let (_, node, path) = self
            .volume
            .clone()
            .ok_or("the volume is not known: an earlier step failed")?;
        let file = format!("{path}/test");
        let output = self.on_node(&node, &path, &format!("cat '{file}'")).await?;
        facts.insert("node", node.clone());
        facts.insert("file", file.clone());
        facts.insert("content", output.trim_end().to_owned());
        if let Some(sandbox) = &self.sandbox {
            let on_disk = sandbox.node_root(&node).join(file.trim_start_matches('/'));
            let bytes = std::fs::read(&on_disk)
                .map_err(|e| format!("cannot read {}: {e}", on_disk.display()))?;
            facts.insert("sandboxFile", on_disk.display().to_string());
            if bytes != PAYLOAD.as_bytes() {
                return Err(format!(
                    "{} holds {:?}, expected {PAYLOAD:?}",
                    on_disk.display(),
                    String::from_utf8_lossy(&bytes)
                ));
            }
        }
        if output == PAYLOAD {
            Ok(())
        } else {
            Err(format!(
                "{file} on {node} holds {output:?}, expected {PAYLOAD:?}"
            ))
        }
    }

    /// Runs `script` in a short-lived pod pinned to `node` that mounts the parent of `dir`, and
    /// returns its output.
    pub(super) async fn on_node(
        &mut self,
        node: &str,
        dir: &str,
        script: &str,
    ) -> Result<String, String> {
        self.readers += 1;
        let name = format!("lpp-demo-reader-{}", self.readers);
        let parent = std::path::Path::new(dir)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        let pod = reader_pod(&name, node, &parent, &self.options.image, script);
        let pods: Api<Pod> = self.api();
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| {
                format!(
                    "cannot create pod {name} on {node}: {}",
                    cluster::describe(&e)
                )
            })?;
        let finished = self
            .wait_for(
                self.api::<Pod>(),
                &name,
                &format!("pod {name} on {node} to finish"),
                |pod: Option<&Pod>| {
                    matches!(
                        pod.and_then(|p| p.status.as_ref())
                            .and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
                },
            )
            .await;
        let logs = pods.logs(&name, &LogParams::default()).await;
        let _ = pods.delete(&name, &DeleteParams::default()).await;
        let pod = finished?.ok_or_else(|| format!("pod {name} disappeared"))?;
        let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
        let logs =
            logs.map_err(|e| format!("cannot read the logs of {name}: {}", cluster::describe(&e)))?;
        if phase == "Succeeded" {
            Ok(logs)
        } else {
            Err(format!("pod {name} on {node} failed: {}", logs.trim()))
        }
    }

    pub(super) async fn reclaim(
        &mut self,
        facts: &mut BTreeMap<&'static str, String>,
    ) -> Result<(), String> {
        let (volume, node, path) = self
            .volume
            .clone()
            .ok_or("the volume is not known: an earlier step failed")?;
        let pods: Api<Pod> = self.api();
        delete_and_wait(self, pods, POD).await?;
        let claims: Api<PersistentVolumeClaim> = self.api();
        delete_and_wait(self, claims, CLAIM).await?;
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        self.wait_for(
            volumes,
            &volume,
            &format!("PV {volume} to be reclaimed"),
            |pv: Option<&PersistentVolume>| pv.is_none(),
        )
        .await?;
        facts.insert("volume", format!("{volume} deleted"));
        self.show_provisioner_log()?;
        let name = std::path::Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = std::path::Path::new(&path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let script =
            format!("if [ -e '{parent}/{name}' ]; then echo present; else echo absent; fi");
        let answer = self.on_node(&node, &path, &script).await?;
        facts.insert("directory", format!("{node}:{path} {}", answer.trim()));
        if let Some(sandbox) = &self.sandbox {
            let on_disk = sandbox.node_root(&node).join(path.trim_start_matches('/'));
            if on_disk.exists() {
                return Err(format!(
                    "{} is still there after the PV was deleted",
                    on_disk.display()
                ));
            }
        }
        if answer.trim() == "absent" {
            Ok(())
        } else {
            Err(format!(
                "{path} is still on {node} after the PV was deleted"
            ))
        }
    }

    /// Prints what the in-process provisioner did since the last look.
    pub(super) fn show_provisioner_log(&mut self) -> Result<(), String> {
        let Some(log) = self.provisioner_log.as_mut() else {
            return Ok(());
        };
        let mut lines = Vec::new();
        while let Ok(line) = log.try_recv() {
            lines.push(line);
        }
        if lines.is_empty() {
            return Ok(());
        }
        self.show(&format!("  provisioner log:\n    {}", lines.join("\n    ")))
    }

    /// Stops the in-process provisioning loop, if the demo started one (it releases its Lease).
    pub(super) async fn stop_loop(&mut self) {
        if let Some((stop, task)) = self.provisioner.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

pub(super) fn parse<T: DeserializeOwned>(manifest: &str, name: &'static str) -> Result<T, String> {
    serde_saphyr::from_str(manifest).map_err(|e| {
        Error::Manifest {
            name,
            message: e.to_string(),
        }
        .to_string()
    })
}

/// The node and directory of a node-local PV.
pub(super) fn volume_location(volume: &PersistentVolume) -> Option<(String, String)> {
    match crate::provision::volume_location(volume)? {
        (Some(node), path) => Some((node, path)),
        (None, _) => None,
    }
}

pub(super) fn reader_pod(name: &str, node: &str, parent: &str, image: &str, script: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([("app.kubernetes.io/managed-by".to_owned(), "lpp".to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            restart_policy: Some("Never".into()),
            containers: vec![Container {
                name: "reader".into(),
                image: Some(image.to_owned()),
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(vec!["sh".into(), "-c".into(), script.to_owned()]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "base".into(),
                    mount_path: parent.to_owned(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "base".into(),
                host_path: Some(HostPathVolumeSource {
                    path: parent.to_owned(),
                    type_: Some("Directory".into()),
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// What the demo installs on a cluster that has no local-path class: the defaults of
/// `lpp install`.
pub(super) fn demo_install(storage_class: &str) -> crate::install::ManifestSettings {
    crate::install::ManifestSettings {
        namespace: crate::cli::DEFAULT_NAMESPACE.into(),
        storage_class: storage_class.to_owned(),
        provisioner_name: crate::cli::DEFAULT_PROVISIONER.into(),
        base_paths: crate::install::BasePaths::Nodes(vec![(
            None,
            crate::config::DEFAULT_PATH.to_owned(),
        )]),
        default_class: false,
        allow_expansion: false,
        reclaim_policy: "Delete".into(),
        binding_mode: "WaitForFirstConsumer".into(),
        volume_type: "hostPath".into(),
        helper_image: crate::config::DEFAULT_HELPER_IMAGE.into(),
        in_cluster_image: None,
        executor: crate::config::ExecutorKind::HelperPod,
        capacity_tracking: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_found_by_annotation_then_affinity() {
        let mut volume: PersistentVolume = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pvc-1"},
            "spec": {
                "hostPath": {"path": "/opt/local-path-provisioner/pvc-1_ns_c"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}
                ]}]}}
            }
        }))
        .unwrap();
        assert_eq!(
            volume_location(&volume),
            Some((
                "node-2".into(),
                "/opt/local-path-provisioner/pvc-1_ns_c".into()
            ))
        );
        volume.metadata.annotations = Some(
            [(
                "local.path.provisioner/selected-node".to_owned(),
                "node-1".to_owned(),
            )]
            .into(),
        );
        assert_eq!(volume_location(&volume).unwrap().0, "node-1");
    }

    #[test]
    fn the_reader_pod_mounts_the_parent_read_only_on_its_node() {
        let pod = reader_pod("r", "node-1", "/opt/base", "busybox", "cat x");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
        assert_eq!(mount.mount_path, "/opt/base");
        assert_eq!(mount.read_only, Some(true));
        let volume = &spec.volumes.unwrap()[0];
        assert_eq!(
            volume.host_path.as_ref().unwrap().type_.as_deref(),
            Some("Directory")
        );
    }
}
