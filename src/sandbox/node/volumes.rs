//! Where each volume of a pod lives on this machine, and the mount table of each container
//! (pure, symlinks read through a function passed in: the kubelet materialises the plan
//! afterwards).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PersistentVolume, PersistentVolumeClaim, Pod};

use super::mounts::{Mount, MountError, MountTable, container_path, resolve_in_root, under_root};

/// What backs one pod volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A node path (hostPath, or the path of a claim's volume), with the hostPath `type`.
    Node {
        /// The hostPath type (`DirectoryOrCreate`, `Directory`, `FileOrCreate`, `File`, `""`...).
        kind: String,
        /// The node's root directory.
        root: PathBuf,
        /// The path on the node, as the spec writes it.
        path: String,
    },
    /// An empty directory private to the pod.
    EmptyDir,
    /// Files from a ConfigMap.
    ConfigMap {
        /// The ConfigMap's name.
        name: String,
        /// `key → relative path`; empty means every key under its own name.
        items: Vec<(String, String)>,
        /// Whether a missing ConfigMap is fine.
        optional: bool,
    },
    /// Files from a Secret.
    Secret {
        /// The Secret's name.
        name: String,
        /// `key → relative path`; empty means every key under its own name.
        items: Vec<(String, String)>,
        /// Whether a missing Secret is fine.
        optional: bool,
    },
}

/// One pod volume and the host directory (or file) behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    /// The volume's name in the pod.
    pub name: String,
    /// Where it lives on this machine, joined lexically.
    pub host: PathBuf,
    /// What fills it.
    pub backing: Backing,
}

impl VolumePlan {
    /// Where it lives on this machine now: a node path has the symlinks under the node's root
    /// resolved inside that root, as the node would; a pod-private volume is where it is.
    pub fn resolve(
        &self,
        read_link: impl FnMut(&Path) -> Option<PathBuf>,
    ) -> Result<PathBuf, VolumeProblem> {
        match &self.backing {
            Backing::Node { root, path, .. } => {
                resolve_in_root(root, path, read_link).map_err(|source| VolumeProblem::Path {
                    volume: self.name.clone(),
                    source,
                })
            }
            _ => Ok(self.host.clone()),
        }
    }
}

/// Why a pod's volumes cannot be set up (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeProblem {
    /// A claim the pod uses does not exist or is not bound yet: wait.
    #[error("persistentvolumeclaim \"{0}\" is not bound yet")]
    Unbound(String),
    /// A claim's volume has no path on a node.
    #[error("persistentvolume \"{volume}\" has no hostPath or local path the sandbox can mount")]
    NoPath {
        /// The volume.
        volume: String,
    },
    /// A volume type the sandbox does not model.
    #[error(
        "volume \"{0}\" has a type the sandbox does not support (hostPath, persistentVolumeClaim, emptyDir, configMap, secret, projected, downwardAPI)"
    )]
    Unsupported(String),
    /// A path is malformed or climbs out of the node.
    #[error("volume \"{volume}\": {source}")]
    Path {
        /// The volume.
        volume: String,
        /// What is wrong with its path.
        source: MountError,
    },
}

fn items(list: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>) -> Vec<(String, String)> {
    list.into_iter()
        .flatten()
        .map(|i| (i.key.clone(), i.path.clone()))
        .collect()
}

/// Plans every volume of `pod` on a node whose root is `node_root`, with the pod's own
/// directory `pod_dir`. Claims resolve through their bound volume's hostPath or local path.
pub fn plan(
    pod: &Pod,
    node_root: &Path,
    pod_dir: &Path,
    claims: &[PersistentVolumeClaim],
    volumes: &[PersistentVolume],
) -> Result<Vec<VolumePlan>, VolumeProblem> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let name = v.name.clone();
        let node_path = |path: &str, kind: &str| -> Result<VolumePlan, VolumeProblem> {
            let host = under_root(node_root, path).map_err(|source| VolumeProblem::Path {
                volume: name.clone(),
                source,
            })?;
            Ok(VolumePlan {
                name: name.clone(),
                host,
                backing: Backing::Node {
                    kind: kind.to_string(),
                    root: node_root.to_path_buf(),
                    path: path.to_string(),
                },
            })
        };
        let private = pod_dir.join("volumes").join(&name);
        let planned = if let Some(hp) = &v.host_path {
            node_path(&hp.path, hp.type_.as_deref().unwrap_or(""))?
        } else if let Some(src) = &v.persistent_volume_claim {
            let claim = claims.iter().find(|c| {
                c.metadata.namespace.as_deref() == Some(namespace)
                    && c.metadata.name.as_deref() == Some(src.claim_name.as_str())
            });
            let bound = claim.and_then(|c| {
                let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
                let vname = c.spec.as_ref().and_then(|s| s.volume_name.as_deref())?;
                (phase == Some("Bound")).then_some(vname)
            });
            let pv = bound
                .and_then(|b| {
                    volumes
                        .iter()
                        .find(|p| p.metadata.name.as_deref() == Some(b))
                })
                .ok_or_else(|| VolumeProblem::Unbound(src.claim_name.clone()))?;
            let spec = pv.spec.as_ref();
            let volume_name = pv.metadata.name.clone().unwrap_or_default();
            if let Some(hp) = spec.and_then(|s| s.host_path.as_ref()) {
                node_path(&hp.path, hp.type_.as_deref().unwrap_or(""))?
            } else if let Some(local) = spec.and_then(|s| s.local.as_ref()) {
                node_path(&local.path, "Directory")?
            } else {
                return Err(VolumeProblem::NoPath {
                    volume: volume_name,
                });
            }
        } else if v.empty_dir.is_some() || v.projected.is_some() || v.downward_api.is_some() {
            // Projected and downward API volumes (the service-account token a real API server
            // adds, pod metadata) are modelled as empty private directories: nothing the
            // sandbox's containers read.
            VolumePlan {
                name: name.clone(),
                host: private,
                backing: Backing::EmptyDir,
            }
        } else if let Some(cm) = &v.config_map {
            VolumePlan {
                name: name.clone(),
                host: private,
                backing: Backing::ConfigMap {
                    name: cm.name.clone(),
                    items: items(cm.items.as_ref()),
                    optional: cm.optional == Some(true),
                },
            }
        } else if let Some(secret) = &v.secret {
            VolumePlan {
                name: name.clone(),
                host: private,
                backing: Backing::Secret {
                    name: secret.secret_name.clone().unwrap_or_default(),
                    items: items(secret.items.as_ref()),
                    optional: secret.optional == Some(true),
                },
            }
        } else {
            return Err(VolumeProblem::Unsupported(name));
        };
        out.push(planned);
    }
    Ok(out)
}

/// The mount table of one container: its volumeMounts (with `subPath`, resolved inside the
/// volume, and `readOnly`), `/tmp` as the pod's own tmp directory, `/root` as the container's
/// home and the termination-message file. Symlinks are read with `read_link` (see
/// [`VolumePlan::resolve`]).
pub fn mount_table(
    container: &Container,
    plans: &[VolumePlan],
    pod_dir: &Path,
    mut read_link: impl FnMut(&Path) -> Option<PathBuf>,
) -> Result<MountTable, VolumeProblem> {
    let termination = container
        .termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("/dev/termination-log");
    let mut mounts = vec![
        Mount {
            container: "/tmp".to_string(),
            host: pod_dir.join("tmp"),
            read_only: false,
        },
        Mount {
            container: "/root".to_string(),
            host: home_dir(pod_dir, &container.name),
            read_only: false,
        },
        Mount {
            container: container_path(termination).map_err(|source| VolumeProblem::Path {
                volume: "terminationMessagePath".into(),
                source,
            })?,
            host: termination_file(pod_dir, &container.name),
            read_only: false,
        },
    ];
    for vm in container.volume_mounts.iter().flatten() {
        let problem = |source| VolumeProblem::Path {
            volume: vm.name.clone(),
            source,
        };
        let plan = plans
            .iter()
            .find(|p| p.name == vm.name)
            .ok_or_else(|| VolumeProblem::Unsupported(vm.name.clone()))?;
        let mut host = plan.resolve(&mut read_link)?;
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            // A subPath stays inside its volume, symlinks and all, as the kubelet's does.
            host = resolve_in_root(&host, &format!("/{sub}"), &mut read_link).map_err(problem)?;
        }
        // The kubelet writes configMap and secret files; containers only read them.
        let kubelet_written = matches!(
            plan.backing,
            Backing::ConfigMap { .. } | Backing::Secret { .. }
        );
        mounts.push(Mount {
            container: container_path(&vm.mount_path).map_err(problem)?,
            host,
            read_only: vm.read_only == Some(true) || kubelet_written,
        });
    }
    Ok(MountTable::new(mounts))
}

/// The host directory behind a container's `/root` (its `HOME` and default working directory).
pub fn home_dir(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("containers").join(container).join("home")
}

/// The host file behind a container's termination-message path.
pub fn termination_file(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir
        .join("containers")
        .join(container)
        .join("termination-log")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn no_links(_: &Path) -> Option<PathBuf> {
        None
    }

    fn helper_pod() -> Pod {
        from(json!({
            "metadata": {"name": "helper-pod-create-pvc-1", "namespace": "local-path-storage"},
            "spec": {
                "nodeName": "node-1",
                "containers": [{"name": "helper-pod", "image": "busybox",
                    "command": ["/bin/sh", "/script/setup"],
                    "volumeMounts": [{"name": "data", "mountPath": "/opt/local-path-provisioner/"},
                                     {"name": "script", "mountPath": "/script"}]}],
                "volumes": [
                    {"name": "data", "hostPath": {"path": "/opt/local-path-provisioner/", "type": "DirectoryOrCreate"}},
                    {"name": "script", "configMap": {"name": "local-path-config",
                        "items": [{"key": "setup", "path": "setup"}, {"key": "teardown", "path": "teardown"}]}}
                ]
            }
        }))
    }

    #[test]
    fn a_helper_pod_maps_its_host_path_and_script() {
        let pod = helper_pod();
        let plans = plan(
            &pod,
            Path::new("/sb/nodes/node-1"),
            Path::new("/sb/pod"),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(
            plans[0].host,
            PathBuf::from("/sb/nodes/node-1/opt/local-path-provisioner")
        );
        assert_eq!(plans[1].host, PathBuf::from("/sb/pod/volumes/script"));
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let table = mount_table(container, &plans, Path::new("/sb/pod"), no_links).unwrap();
        let mounts: Vec<(&str, &Path, bool)> = table
            .mounts()
            .iter()
            .map(|m| (m.container.as_str(), m.host.as_path(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                (
                    "/root",
                    Path::new("/sb/pod/containers/helper-pod/home"),
                    false
                ),
                ("/script", Path::new("/sb/pod/volumes/script"), true),
                ("/tmp", Path::new("/sb/pod/tmp"), false),
                (
                    "/dev/termination-log",
                    Path::new("/sb/pod/containers/helper-pod/termination-log"),
                    false
                ),
                (
                    "/opt/local-path-provisioner",
                    Path::new("/sb/nodes/node-1/opt/local-path-provisioner"),
                    false
                ),
            ]
        );
    }

    #[test]
    fn a_claim_maps_to_its_bound_volume_path_on_the_node() {
        let pod: Pod = from(json!({
            "metadata": {"name": "volume-test", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
                     "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]}
        }));
        let claim: PersistentVolumeClaim =
            from(json!({"metadata": {"name": "c", "namespace": "default"},
            "spec": {"volumeName": "pvc-1"}, "status": {"phase": "Bound"}}));
        let pv: PersistentVolume = from(json!({"metadata": {"name": "pvc-1"},
            "spec": {"hostPath": {"path": "/opt/local-path-provisioner/pvc-1_default_c"}}}));
        let root = Path::new("/sb/nodes/node-2");
        assert_eq!(
            plan(&pod, root, Path::new("/p"), &[], &[]),
            Err(VolumeProblem::Unbound("c".into()))
        );
        let plans = plan(&pod, root, Path::new("/p"), &[claim], &[pv]).unwrap();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let table = mount_table(container, &plans, Path::new("/p"), no_links).unwrap();
        let data = table
            .mounts()
            .iter()
            .find(|m| m.container == "/data")
            .unwrap();
        assert_eq!(
            data.host,
            PathBuf::from("/sb/nodes/node-2/opt/local-path-provisioner/pvc-1_default_c")
        );
        // A symlink planted on the node (by a container with the parent directory as its
        // hostPath) resolves on the node, never to this machine's `/`.
        let planted = |p: &Path| {
            (p == Path::new("/sb/nodes/node-2/opt/local-path-provisioner/pvc-1_default_c"))
                .then(|| PathBuf::from("/"))
        };
        let table = mount_table(container, &plans, Path::new("/p"), planted).unwrap();
        let data = table
            .mounts()
            .iter()
            .find(|m| m.container == "/data")
            .unwrap();
        assert_eq!(data.host, PathBuf::from("/sb/nodes/node-2"));
    }

    #[test]
    fn escaping_paths_are_refused() {
        let pod: Pod = from(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/d", "subPath": "../../x"}]}],
                     "volumes": [{"name": "v", "hostPath": {"path": "/opt"}}]}
        }));
        let plans = plan(&pod, Path::new("/sb/n"), Path::new("/p"), &[], &[]).unwrap();
        assert!(matches!(
            mount_table(
                &pod.spec.as_ref().unwrap().containers[0],
                &plans,
                Path::new("/p"),
                no_links
            ),
            Err(VolumeProblem::Path { .. })
        ));
        let pod: Pod = from(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "v", "hostPath": {"path": "/../etc"}}]}
        }));
        assert!(matches!(
            plan(&pod, Path::new("/sb/n"), Path::new("/p"), &[], &[]),
            Err(VolumeProblem::Path { .. })
        ));
    }
}
