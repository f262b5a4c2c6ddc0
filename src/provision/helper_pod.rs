//! Helper pods: the short-lived pods that create and delete volume directories on nodes (and run
//! lpp's own scripts for `gc` and the demo), built from the ConfigMap's template, and the
//! template's safety check (upstream's GHSA-7fxv-8wr2-mfc4 rules).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EnvVar, HostPathVolumeSource, KeyToPath, Pod, Toleration, Volume,
    VolumeMount,
};

use crate::config::{Script, path};

/// Label every helper pod carries, with the value [`MANAGED_BY`]: one selector watches them all.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "lpp";
/// Label naming what the helper pod does: `create`, `delete`, or a script's own word.
pub const ACTION_LABEL: &str = "lpp.dev/helper-action";
/// Label naming the volume a create/delete helper pod works on.
pub const VOLUME_LABEL: &str = "lpp.dev/volume";
/// The label selector that matches every helper pod lpp starts (volume helpers and script jobs
/// such as gc inventories).
pub const HELPER_SELECTOR: &str = "app.kubernetes.io/managed-by=lpp,lpp.dev/helper-action";
/// The label selector that matches only the create, delete and resize helpers of volumes.
pub const VOLUME_HELPER_SELECTOR: &str =
    "app.kubernetes.io/managed-by=lpp,lpp.dev/helper-action in (create,delete,resize)";

/// Where the ConfigMap's scripts are mounted.
pub const SCRIPT_DIR: &str = "/script";
const DATA_VOLUME: &str = "data";
const SCRIPT_VOLUME: &str = "script";
const MAX_NAME: usize = 63;

/// What a volume helper pod does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run the setup script: make the directory.
    Create,
    /// Run the teardown script: remove the directory.
    Delete,
    /// Run the resize script: the claim grew (`VOL_SIZE_BYTES` is the new size).
    Resize,
}

impl Action {
    /// `create`, `delete` or `resize`, as in pod names, args and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Delete => "delete",
            Action::Resize => "resize",
        }
    }

    /// Every action, for the places that recognise volume helpers by their label.
    pub const ALL: [Action; 3] = [Action::Create, Action::Delete, Action::Resize];
}

/// Why a helper pod template is refused, or a helper pod cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelperPodError {
    /// The template has not exactly one container; the count it has.
    #[error("helper pod template must specify exactly one container (it has {0})")]
    ContainerCount(usize),
    /// The template asks for something unsafe (privileged, host namespaces, ...) without `--allow-unsafe-helper-pod-template`.
    #[error("helper pod template must not {0} unless --allow-unsafe-helper-pod-template is set")]
    Unsafe(String),
    /// The volume path is relative or `/`.
    #[error("volume path {0:?} must be absolute and below a directory (not `/`)")]
    BadVolumePath(String),
    /// The volume is not on a shared filesystem and no node was given; the volume's name.
    #[error("helper pod for volume {0:?} needs a node: the volume is not on a shared filesystem")]
    NoNode(String),
}

/// Checks a helper pod template as upstream does since GHSA-7fxv-8wr2-mfc4: one container and
/// nothing that widens what the pod can reach on the node. Hardening fields (runAsNonRoot,
/// fsGroup, seccompProfile, readOnlyRootFilesystem, ...) stay allowed. `allow_unsafe` skips all.
pub fn check_template(pod: &Pod, allow_unsafe: bool) -> Result<(), HelperPodError> {
    if allow_unsafe {
        return Ok(());
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Err(HelperPodError::ContainerCount(0));
    };
    if spec.containers.len() != 1 {
        return Err(HelperPodError::ContainerCount(spec.containers.len()));
    }
    let c = &spec.containers[0];
    let yes = |b: &Option<bool>| b.unwrap_or(false);
    let non_empty = |v: Option<usize>| v.unwrap_or(0) > 0;
    let mut checks: Vec<(bool, String)> = vec![
        (
            non_empty(spec.init_containers.as_ref().map(Vec::len)),
            "define initContainers".into(),
        ),
        (
            non_empty(spec.ephemeral_containers.as_ref().map(Vec::len)),
            "define ephemeralContainers".into(),
        ),
        (
            non_empty(spec.volumes.as_ref().map(Vec::len)),
            "define custom volumes (spec.volumes)".into(),
        ),
        (
            yes(&spec.host_network),
            "enable host namespaces (spec.hostNetwork)".into(),
        ),
        (
            yes(&spec.host_pid),
            "enable host namespaces (spec.hostPID)".into(),
        ),
        (
            yes(&spec.host_ipc),
            "enable host namespaces (spec.hostIPC)".into(),
        ),
        (
            spec.node_name.as_deref().is_some_and(|n| !n.is_empty()),
            "set spec.nodeName".into(),
        ),
        (
            spec.service_account_name
                .as_deref()
                .is_some_and(|n| !n.is_empty()),
            "set spec.serviceAccountName".into(),
        ),
        (
            non_empty(c.volume_mounts.as_ref().map(Vec::len)),
            "define custom volumeMounts".into(),
        ),
        (
            non_empty(c.env_from.as_ref().map(Vec::len)),
            "define envFrom".into(),
        ),
        (
            c.lifecycle.is_some(),
            "define container lifecycle hooks".into(),
        ),
        (
            c.liveness_probe.is_some(),
            "define container livenessProbe".into(),
        ),
        (
            c.readiness_probe.is_some(),
            "define container readinessProbe".into(),
        ),
        (
            c.startup_probe.is_some(),
            "define container startupProbe".into(),
        ),
    ];
    for env in c.env.iter().flatten() {
        checks.push((
            env.value_from.is_some(),
            format!("define env.valueFrom (env {:?})", env.name),
        ));
    }
    for port in c.ports.iter().flatten() {
        checks.push((
            port.host_port.is_some_and(|p| p != 0),
            format!("bind a hostPort (port {})", port.container_port),
        ));
    }
    checks.push((
        spec.runtime_class_name
            .as_deref()
            .is_some_and(|n| !n.is_empty()),
        "set spec.runtimeClassName".into(),
    ));
    // Profiles named in annotations (the older spelling, still honoured by kubelets).
    for (key, value) in pod.metadata.annotations.iter().flatten() {
        let seccomp = key.starts_with("seccomp.security.alpha.kubernetes.io/")
            || key == "container.seccomp.security.alpha.kubernetes.io";
        let apparmor = key.starts_with("container.apparmor.security.beta.kubernetes.io/");
        checks.push((
            (seccomp || apparmor) && value.eq_ignore_ascii_case("unconfined"),
            format!("set annotation {key}: {value}"),
        ));
    }
    let contexts = [
        (
            "pod",
            spec.security_context
                .as_ref()
                .and_then(|s| s.seccomp_profile.clone()),
            spec.security_context
                .as_ref()
                .and_then(|s| s.app_armor_profile.clone()),
            spec.security_context
                .as_ref()
                .and_then(|s| s.se_linux_options.clone()),
            spec.security_context
                .as_ref()
                .and_then(|s| s.windows_options.clone()),
        ),
        (
            "container",
            c.security_context
                .as_ref()
                .and_then(|s| s.seccomp_profile.clone()),
            c.security_context
                .as_ref()
                .and_then(|s| s.app_armor_profile.clone()),
            c.security_context
                .as_ref()
                .and_then(|s| s.se_linux_options.clone()),
            c.security_context
                .as_ref()
                .and_then(|s| s.windows_options.clone()),
        ),
    ];
    for (level, seccomp, apparmor, selinux, windows) in contexts {
        checks.push((
            seccomp.is_some_and(|p| p.type_ == "Unconfined"),
            format!("set {level} seccompProfile type Unconfined"),
        ));
        checks.push((
            apparmor.is_some_and(|p| p.type_ == "Unconfined"),
            format!("set {level} appArmorProfile type Unconfined"),
        ));
        checks.push((
            selinux
                .as_ref()
                .and_then(|o| o.type_.as_deref())
                .is_some_and(|t| t == "spc_t" || t == "unconfined_t"),
            format!("set {level} seLinuxOptions type to an unconfined SELinux type"),
        ));
        checks.push((
            windows.and_then(|w| w.host_process).unwrap_or(false),
            format!("set {level} windowsOptions.hostProcess"),
        ));
    }
    if let Some(psc) = &spec.security_context {
        checks.push((
            psc.run_as_user == Some(0),
            "set pod runAsUser to 0 (root)".into(),
        ));
        checks.push((
            psc.run_as_group == Some(0),
            "set pod runAsGroup to 0 (root)".into(),
        ));
        checks.push((
            non_empty(psc.sysctls.as_ref().map(Vec::len)),
            "define sysctls".into(),
        ));
    }
    if let Some(sc) = &c.security_context {
        checks.push((yes(&sc.privileged), "set privileged: true".into()));
        checks.push((
            non_empty(
                sc.capabilities
                    .as_ref()
                    .and_then(|c| c.add.as_ref())
                    .map(Vec::len),
            ),
            "add capabilities".into(),
        ));
        checks.push((
            yes(&sc.allow_privilege_escalation),
            "set allowPrivilegeEscalation: true".into(),
        ));
        checks.push((
            sc.proc_mount.as_deref() == Some("Unmasked"),
            "set procMount: Unmasked".into(),
        ));
    }
    match checks.into_iter().find(|(bad, _)| *bad) {
        Some((_, what)) => Err(HelperPodError::Unsafe(what)),
        None => Ok(()),
    }
}

/// Where a helper pod stands, read from its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperOutcome {
    /// Not finished yet.
    Running,
    /// Exited 0: the directory is made (or removed).
    Succeeded,
    /// Failed, with a one-line cause for the event ([`super::events::helper_failure_summary`]).
    Failed(String),
    /// Cannot start and will not by itself (bad image, missing ConfigMap key, ...): fail now
    /// instead of waiting for the timeout.
    Stuck(String),
}

/// Waiting reasons that do not clear up without someone changing something.
const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Reads a helper pod's outcome from its status.
pub fn helper_outcome(pod: &Pod) -> HelperOutcome {
    let name = pod.metadata.name.as_deref().unwrap_or("helper pod");
    let Some(status) = pod.status.as_ref() else {
        return HelperOutcome::Running;
    };
    let container = status.container_statuses.iter().flatten().next();
    let terminated = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    match status.phase.as_deref() {
        Some("Succeeded") => return HelperOutcome::Succeeded,
        Some("Failed") => {
            return HelperOutcome::Failed(match terminated {
                Some(t) => super::events::helper_failure_summary(name, t),
                None => {
                    let why = status
                        .message
                        .as_deref()
                        .or(status.reason.as_deref())
                        .unwrap_or("no reason given");
                    format!("helper pod {name} failed: {why}")
                }
            });
        }
        _ => {}
    }
    if let Some(t) = terminated.filter(|t| t.exit_code != 0) {
        return HelperOutcome::Failed(super::events::helper_failure_summary(name, t));
    }
    // A helper pod of a shared filesystem goes through the scheduler; one no node can take
    // waits until someone changes the nodes, so it is reported now.
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(condition) = unschedulable {
        let message = condition.message.as_deref().unwrap_or("no node fits");
        return HelperOutcome::Stuck(format!("helper pod {name} cannot be scheduled: {message}"));
    }
    let waiting = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref());
    if let Some(w) = waiting
        && let Some(reason) = w.reason.as_deref().filter(|r| STUCK_REASONS.contains(r))
    {
        let message = w.message.as_deref().unwrap_or("");
        return HelperOutcome::Stuck(
            format!("helper pod {name} cannot start: {reason}: {message}")
                .trim_end_matches([' ', ':'])
                .to_string(),
        );
    }
    HelperOutcome::Running
}

/// How helper pods are made: the checked template and the settings of `lpp run`.
#[derive(Debug, Clone)]
pub struct HelperPods {
    template: Pod,
    /// The provisioner namespace the pods run in.
    pub namespace: String,
    /// The service account the pods run as.
    pub service_account: String,
    /// `--helper-image`: replaces the template's image when set.
    pub image: Option<String>,
    /// The ConfigMap holding the `setup` and `teardown` scripts.
    pub config_map: String,
}

/// What the kubelet checks before mounting a host directory (the hostPath `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathType {
    /// `Directory`: it must exist.
    Directory,
    /// `DirectoryOrCreate`: the kubelet creates it when missing.
    DirectoryOrCreate,
    /// `""`: no check at all (container runtimes create a missing source, empty).
    Unchecked,
}

/// A host directory a script helper pod mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDir {
    /// Absolute directory on the node.
    pub path: String,
    /// Where the container sees it; `None`: at `path` itself.
    pub mount_path: Option<String>,
    /// What the kubelet checks before mounting it.
    pub kind: HostPathType,
    /// Mount read-only.
    pub read_only: bool,
}

/// A generic job: run `command` with `args` on `node` with `host_dirs` mounted (gc inventory,
/// demo file reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptJob {
    /// The pod name (kept valid: at most 63 characters).
    pub name: String,
    /// The word put in [`ACTION_LABEL`], e.g. `inventory`.
    pub action: String,
    /// The node to run on; `None` lets the scheduler choose.
    pub node: Option<String>,
    /// Host directories to mount.
    pub host_dirs: Vec<HostDir>,
    /// The container command, e.g. `["/bin/sh", "-c", "ls -1 /opt/x"]`.
    pub command: Vec<String>,
    /// The container args.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

/// A volume directory job: create or delete `path` for volume `pv_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeJob {
    /// Create or delete.
    pub action: Action,
    /// The PV name (`pvc-<uid>`).
    pub pv_name: String,
    /// The node; `None` only for a shared filesystem.
    pub node: Option<String>,
    /// The volume directory, absolute.
    pub path: String,
    /// The volume mode, `Filesystem`.
    pub mode: String,
    /// The requested size in bytes.
    pub size_bytes: i64,
    /// `VOL_USER`, rendered from `userPattern` (empty when unset).
    pub user: String,
    /// `VOL_GROUP`, rendered from `groupPattern`.
    pub group: String,
    /// `VOL_PERM`, rendered from `permPattern`.
    pub perm: String,
    /// What to run.
    pub script: Script,
    /// Whether the volume lives on a shared filesystem (then no node is needed).
    pub shared: bool,
}

/// The name of a volume's helper pod: `<template name>-<action>-<pv name>`, at most 63
/// characters (a long name is cut and given a hash suffix so it stays unique and valid).
pub fn helper_pod_name(template_name: &str, action: Action, pv_name: &str) -> String {
    let base = if template_name.is_empty() {
        "helper-pod"
    } else {
        template_name
    };
    fit_name(&format!("{base}-{}-{pv_name}", action.as_str()))
}

fn fit_name(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_string();
    }
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut cut: String = name.chars().take(MAX_NAME - 9).collect();
    while cut.ends_with(['-', '.']) {
        cut.pop();
    }
    format!("{cut}-{:08x}", hash as u32)
}

impl HelperPods {
    /// Checks `template` (unless `allow_unsafe`) and keeps it with the pods' settings.
    pub fn new(
        template: Pod,
        allow_unsafe: bool,
        namespace: &str,
        service_account: &str,
        image: Option<&str>,
        config_map: &str,
    ) -> Result<HelperPods, HelperPodError> {
        check_template(&template, allow_unsafe)?;
        let containers = template.spec.as_ref().map_or(0, |s| s.containers.len());
        if containers == 0 {
            return Err(HelperPodError::ContainerCount(0));
        }
        Ok(HelperPods {
            template,
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            image: image.map(str::to_string),
            config_map: config_map.to_string(),
        })
    }

    /// The template's name (`helper-pod` by default), the prefix of volume helper pod names.
    pub fn template_name(&self) -> &str {
        self.template
            .metadata
            .name
            .as_deref()
            .unwrap_or("helper-pod")
    }

    /// The pod that runs `job`'s script for a volume, as upstream builds it: the volume's parent
    /// directory mounted as `data` at the same path, the script from the ConfigMap at `/script`,
    /// args `-p <dir> -s <bytes> -m <mode> -a <action>` and env `VOL_DIR`, `VOL_MODE`,
    /// `VOL_SIZE_BYTES`, `VOL_USER`, `VOL_GROUP`, `VOL_PERM`.
    pub fn for_volume(&self, job: &VolumeJob) -> Result<Pod, HelperPodError> {
        let clean = path::clean(&job.path);
        let bad_path = || HelperPodError::BadVolumePath(job.path.clone());
        if !job.path.starts_with('/') {
            return Err(bad_path());
        }
        let (parent, dir) = path::split_parent(&clean).ok_or_else(bad_path)?;
        if !job.shared && job.node.as_deref().is_none_or(str::is_empty) {
            return Err(HelperPodError::NoNode(job.pv_name.clone()));
        }
        let mut pod = self.base_pod(
            &helper_pod_name(self.template_name(), job.action, &job.pv_name),
            job.action.as_str(),
            job.node.as_deref(),
        );
        pod.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(VOLUME_LABEL.to_string(), job.pv_name.clone());
        let spec = pod.spec.get_or_insert_with(Default::default);
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        volumes.push(host_path_volume(DATA_VOLUME, parent, "DirectoryOrCreate"));
        let (command, script_item) = match &job.script {
            Script::ConfigMapKey { key, .. } => (
                vec!["/bin/sh".to_string(), format!("{SCRIPT_DIR}/{key}")],
                Some(*key),
            ),
            Script::Inline(text) => (
                vec!["/bin/sh".into(), "-c".into(), text.clone(), "helper".into()],
                None,
            ),
            Script::Command(c) => (vec![c.clone()], None),
        };
        if let Some(key) = script_item {
            volumes.push(Volume {
                name: SCRIPT_VOLUME.to_string(),
                config_map: Some(ConfigMapVolumeSource {
                    name: self.config_map.clone(),
                    items: Some(vec![KeyToPath {
                        key: key.to_string(),
                        path: key.to_string(),
                        mode: None,
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        let Some(container) = spec.containers.first_mut() else {
            return Err(HelperPodError::ContainerCount(0));
        };
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        if script_item.is_some() {
            // The script always sits at /script, whatever a template mount says.
            add_mount(mounts, SCRIPT_VOLUME, SCRIPT_DIR).mount_path = SCRIPT_DIR.to_string();
        }
        // An unsafe template may mount `data` elsewhere; VOL_DIR follows it, as upstream.
        let mounted_parent = add_mount(mounts, DATA_VOLUME, parent).mount_path.clone();
        let vol_dir = path::join(&mounted_parent, dir);
        container.command = Some(command);
        container.args = Some(vec![
            "-p".into(),
            vol_dir.clone(),
            "-s".into(),
            job.size_bytes.to_string(),
            "-m".into(),
            job.mode.clone(),
            "-a".into(),
            job.action.as_str().into(),
        ]);
        let env = container.env.get_or_insert_with(Vec::new);
        for (name, value) in [
            ("VOL_DIR", vol_dir.as_str()),
            ("VOL_MODE", job.mode.as_str()),
            ("VOL_SIZE_BYTES", &job.size_bytes.to_string()),
            ("VOL_USER", job.user.as_str()),
            ("VOL_GROUP", job.group.as_str()),
            ("VOL_PERM", job.perm.as_str()),
        ] {
            env.push(EnvVar {
                name: name.into(),
                value: Some(value.into()),
                value_from: None,
            });
        }
        Ok(pod)
    }

    /// The pod that runs a generic script job on a node.
    pub fn for_script(&self, job: &ScriptJob) -> Result<Pod, HelperPodError> {
        let mut pod = self.base_pod(&fit_name(&job.name), &job.action, job.node.as_deref());
        let spec = pod.spec.get_or_insert_with(Default::default);
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        let mut mounts = Vec::new();
        for (i, dir) in job.host_dirs.iter().enumerate() {
            if !dir.path.starts_with('/') {
                return Err(HelperPodError::BadVolumePath(dir.path.clone()));
            }
            let mount_path = dir.mount_path.as_deref().unwrap_or(&dir.path);
            if !mount_path.starts_with('/') {
                return Err(HelperPodError::BadVolumePath(mount_path.to_owned()));
            }
            let name = format!("host-{i}");
            let kind = match dir.kind {
                HostPathType::Directory => "Directory",
                HostPathType::DirectoryOrCreate => "DirectoryOrCreate",
                HostPathType::Unchecked => "",
            };
            volumes.push(host_path_volume(&name, &path::clean(&dir.path), kind));
            mounts.push(VolumeMount {
                name,
                mount_path: path::clean(mount_path),
                read_only: dir.read_only.then_some(true),
                ..Default::default()
            });
        }
        let Some(container) = spec.containers.first_mut() else {
            return Err(HelperPodError::ContainerCount(0));
        };
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .extend(mounts);
        container.command = Some(job.command.clone());
        container.args = Some(job.args.clone());
        let env = container.env.get_or_insert_with(Vec::new);
        for (name, value) in &job.env {
            env.push(EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            });
        }
        Ok(pod)
    }

    fn base_pod(&self, name: &str, action: &str, node: Option<&str>) -> Pod {
        let mut pod = self.template.clone();
        pod.metadata.name = Some(name.to_string());
        pod.metadata.generate_name = None;
        pod.metadata.namespace = Some(self.namespace.clone());
        pod.metadata.resource_version = None;
        pod.metadata.uid = None;
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
        labels.insert(ACTION_LABEL.to_string(), action.to_string());
        pod.status = None;
        let spec = pod.spec.get_or_insert_with(Default::default);
        if spec.node_name.as_deref().is_none_or(str::is_empty) {
            spec.node_name = node.filter(|n| !n.is_empty()).map(str::to_string);
        }
        spec.service_account_name = Some(self.service_account.clone());
        spec.restart_policy = Some("Never".to_string());
        if spec.tolerations.is_none() {
            spec.tolerations = Some(vec![Toleration {
                key: Some("node.kubernetes.io/disk-pressure".into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }]);
        }
        if let Some(container) = spec.containers.first_mut() {
            if let Some(image) = &self.image {
                container.image = Some(image.clone());
            }
            // A failing script's last output lands in the pod status, seen on the same watch.
            container.termination_message_policy = Some("FallbackToLogsOnError".to_string());
        }
        pod
    }
}

fn host_path_volume(name: &str, path: &str, kind: &str) -> Volume {
    Volume {
        name: name.to_string(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_string(),
            type_: Some(kind.to_string()),
        }),
        ..Default::default()
    }
}

fn add_mount<'a>(
    mounts: &'a mut Vec<VolumeMount>,
    name: &str,
    mount_path: &str,
) -> &'a mut VolumeMount {
    let index = match mounts.iter().position(|m| m.name == name) {
        Some(i) => {
            if mounts[i].mount_path.is_empty() {
                mounts[i].mount_path = mount_path.to_string();
            }
            i
        }
        None => {
            mounts.push(VolumeMount {
                name: name.to_string(),
                mount_path: mount_path.to_string(),
                ..Default::default()
            });
            mounts.len() - 1
        }
    };
    &mut mounts[index]
}
