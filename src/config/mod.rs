//! The upstream-compatible configuration (`local-path-config`): parse, validate, defaults. Pure.
//!
//! The ConfigMap has four keys: [`CONFIG_JSON_KEY`] (where volumes go, parsed by [`json`] with Go's
//! quirks and validated into a [`Config`]), [`SETUP_KEY`] and [`TEARDOWN_KEY`] (the scripts the
//! helper pods run) and [`HELPER_POD_KEY`] (the helper pod template); lpp also reads the
//! optional [`RESIZE_KEY`] (the script run when a claim grows). [`ConfigMapContents::from_data`]
//! reads them all; [`default_config_map_data`] and [`config_map_data`] render them, so `lpp
//! install` and `lpp run` share one set of defaults.

pub mod json;
pub mod path;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

pub use json::{ClassJson, ConfigJson, NodePathsJson, PathOptionsJson};

/// The ConfigMap's usual name.
pub const CONFIG_MAP_NAME: &str = crate::upstream::CONFIG_MAP;
/// The ConfigMap key holding `config.json`.
pub const CONFIG_JSON_KEY: &str = "config.json";
/// The ConfigMap key holding the setup script.
pub const SETUP_KEY: &str = "setup";
/// The ConfigMap key holding the teardown script.
pub const TEARDOWN_KEY: &str = "teardown";
/// The optional ConfigMap key holding the resize script (lpp's own; upstream has none): run when
/// a claim grows, with the setup environment and the new size. Absent: nothing runs.
pub const RESIZE_KEY: &str = "resize";
/// The ConfigMap key holding the helper pod template.
pub const HELPER_POD_KEY: &str = "helperPod.yaml";

/// The `nodePathMap` entry that applies to every node not listed by name.
pub const DEFAULT_NODE: &str = "DEFAULT_PATH_FOR_NON_LISTED_NODES";
/// Where volumes go when nothing else is configured.
pub const DEFAULT_PATH: &str = "/opt/local-path-provisioner";
/// How long a helper pod may run when `cmdTimeoutSeconds` is unset, zero or negative.
pub const DEFAULT_CMD_TIMEOUT_SECONDS: u64 = 120;
/// The helper pod image of the default template.
pub const DEFAULT_HELPER_IMAGE: &str = "busybox";

/// The default setup script (upstream's, byte for byte).
pub const DEFAULT_SETUP_SCRIPT: &str = "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"";
/// The default teardown script (upstream's, byte for byte).
pub const DEFAULT_TEARDOWN_SCRIPT: &str = "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"";

/// The default helper pod template with `image` as the container's image (upstream's template:
/// one container `helper-pod`, `IfNotPresent`, `system-node-critical`, tolerating disk pressure).
pub fn default_helper_pod_yaml(image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: helper-pod
spec:
  priorityClassName: system-node-critical
  tolerations:
    - key: node.kubernetes.io/disk-pressure
      operator: Exists
      effect: NoSchedule
  containers:
  - name: helper-pod
    image: {image}
    imagePullPolicy: IfNotPresent"
    )
}

/// The default `config.json`: every node keeps its volumes under [`DEFAULT_PATH`].
pub fn default_config_json() -> ConfigJson {
    ConfigJson {
        default_class: ClassJson {
            node_path_map: vec![NodePathsJson {
                node: DEFAULT_NODE.to_string(),
                paths: vec![DEFAULT_PATH.to_string()],
            }],
            shared_file_system_path: String::new(),
        },
        ..ConfigJson::default()
    }
}

/// Renders `config.json` text as people read it (indented, upstream key spelling).
pub fn render_config_json(config: &ConfigJson) -> String {
    // Serializing plain strings, lists and maps cannot fail; fall back to compact text anyway.
    serde_json::to_string_pretty(config).unwrap_or_else(|_| String::from("{}"))
}

/// The ConfigMap data for `config` with the default scripts and the default helper pod template
/// using `helper_image`: what `lpp install` writes and `lpp run` reads back.
pub fn config_map_data(config: &ConfigJson, helper_image: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CONFIG_JSON_KEY.to_string(), render_config_json(config)),
        (SETUP_KEY.to_string(), DEFAULT_SETUP_SCRIPT.to_string()),
        (
            TEARDOWN_KEY.to_string(),
            DEFAULT_TEARDOWN_SCRIPT.to_string(),
        ),
        (
            HELPER_POD_KEY.to_string(),
            default_helper_pod_yaml(helper_image),
        ),
    ])
}

/// The ConfigMap data of a default install: [`default_config_json`], the default scripts and
/// template with [`DEFAULT_HELPER_IMAGE`].
pub fn default_config_map_data() -> BTreeMap<String, String> {
    config_map_data(&default_config_json(), DEFAULT_HELPER_IMAGE)
}

/// Why a configuration cannot be used. Each message names the key, node or path and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The ConfigMap lacks a required key.
    #[error("ConfigMap has no `{key}` key: add it (see `lpp manifests` for the default)")]
    MissingKey {
        /// The missing key, such as `config.json`.
        key: &'static str,
    },

    #[error(
        "config.json is not valid: {0} (fix the JSON; keys as upstream: nodePathMap, sharedFileSystemPath, storageClassConfigs, ...)"
    )]
    /// `config.json` does not parse.
    Json(String),

    #[error(
        "{place}: path {path:?} on node {node:?} {why}: write the directory as a plain absolute path"
    )]
    /// A configured path has a `..` element or a control character.
    UnsafePath {
        /// Where the path is configured: the class or the ConfigMap.
        place: String,
        /// Node the path is listed for.
        node: String,
        /// The path as written.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },

    /// A configured path is not absolute.
    #[error("{place}: path {path:?} on node {node:?} must be absolute (start with /)")]
    RelativePath {
        /// Where the path is configured: the class or the ConfigMap.
        place: String,
        /// Node the path is listed for.
        node: String,
        /// The path as written.
        path: String,
    },

    #[error(
        "{place}: node {node:?} cannot use the root directory `/` as a path (pick a directory such as {DEFAULT_PATH})"
    )]
    /// A node is given `/` as its base path.
    RootPath {
        /// Where the setting is: the class or the ConfigMap.
        place: String,
        /// Node whose path is `/`.
        node: String,
    },

    #[error(
        "{place}: node {node:?} is listed more than once in nodePathMap: merge its paths into one entry"
    )]
    /// `nodePathMap` lists a node twice.
    DuplicateNode {
        /// Where the setting is: the class or the ConfigMap.
        place: String,
        /// The repeated node.
        node: String,
    },

    #[error(
        "{place}: path {path:?} is listed more than once for node {node:?}: remove the duplicate"
    )]
    /// A node lists the same path twice.
    DuplicatePath {
        /// Where the path is configured: the class or the ConfigMap.
        place: String,
        /// Node the path is listed for.
        node: String,
        /// The repeated path.
        path: String,
    },

    /// `sharedFileSystemPath` is relative or `/`.
    #[error("{place}: sharedFileSystemPath {path:?} must be an absolute directory other than `/`")]
    BadSharedPath {
        /// Where the setting is: the class or the ConfigMap.
        place: String,
        /// The path as written.
        path: String,
    },

    #[error(
        "config.json: executor {0:?} is not known: use \"helperPod\" (the default) or \"agent\""
    )]
    /// The `executor` key names an unknown executor.
    Executor(String),

    /// A `pathOptions` entry is not valid.
    #[error("config.json: pathOptions {path:?} {why}")]
    PathOption {
        /// The `pathOptions` key.
        path: String,
        /// What is wrong with the entry.
        why: String,
    },

    /// `helperPod.yaml` does not parse as a Pod.
    #[error("helperPod.yaml is not a valid Pod: {0}")]
    HelperPod(String),

    #[error(
        "helperPod.yaml defines no container: give it one container (the default template has `helper-pod`)"
    )]
    /// `helperPod.yaml` has no container.
    NoContainer,
}

/// Why no base path can be chosen for a class on a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error(
        "storage class {class:?} is not served: config.json lists storageClassConfigs only for {served:?}; add an entry for it"
    )]
    /// The StorageClass has no entry in `storageClassConfigs`.
    ClassNotServed {
        /// The StorageClass asked for.
        class: String,
        /// The classes `storageClassConfigs` lists.
        served: Vec<String>,
    },

    /// Both `nodePathMap` and `sharedFileSystemPath` are set.
    #[error("{place} defines both nodePathMap and sharedFileSystemPath: keep only one")]
    BothConfigured {
        /// Where the setting is: the class or the ConfigMap.
        place: String,
    },

    /// Neither `nodePathMap` nor `sharedFileSystemPath` is set.
    #[error("{place} defines neither nodePathMap nor sharedFileSystemPath: add one")]
    NeitherConfigured {
        /// Where the setting is: the class or the ConfigMap.
        place: String,
    },

    /// The node is not listed and there is no `DEFAULT_PATH_FOR_NON_LISTED_NODES` entry.
    #[error("{place} has no entry for node {node:?} and no {DEFAULT_NODE} entry: add one of them")]
    NodeNotListed {
        /// Where the setting is: the class or the ConfigMap.
        place: String,
        /// The node the volume goes to.
        node: String,
    },

    /// A node's entry has an empty path list.
    #[error("{place} lists no paths for node {node:?}, so volumes are never provisioned there")]
    NoPathsOnNode {
        /// Where the setting is: the class or the ConfigMap.
        place: String,
        /// The node with no paths.
        node: String,
    },

    #[error(
        "storage class parameter nodePath {requested:?} is not a configured path on node {node:?} (configured: {configured:?})"
    )]
    /// A claim's `nodePath` parameter names a path not configured on its node.
    NodePathNotConfigured {
        /// The `nodePath` parameter as given.
        requested: String,
        /// The node the volume goes to.
        node: String,
        /// The paths configured on that node.
        configured: Vec<String>,
    },
}

/// The validated places of one class (or of all classes when `storageClassConfigs` is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Node-local directories: node name (or [`DEFAULT_NODE`]) → clean base paths in config
    /// order. An empty list means "never here".
    Nodes(BTreeMap<String, Vec<String>>),
    /// One filesystem shared by all nodes.
    Shared(String),
    /// Misconfigured: upstream loads such a config and fails each claim of the class, and so
    /// does lpp (other classes keep working). The error says why.
    Unusable(PathError),
}

/// Where a volume of a class on a node may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasePaths<'a> {
    /// The node's own base directories (at least one).
    Node(&'a [String]),
    /// The shared filesystem; no node affinity.
    Shared(&'a str),
}

/// A validated `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `None`: every class uses `default`; `Some`: only the listed classes are served.
    classes: Option<BTreeMap<String, Storage>>,
    default: Storage,
    /// How long a helper pod may run.
    pub cmd_timeout: Duration,
    /// Command run instead of the setup script, when set.
    pub setup_command: Option<String>,
    /// Command run instead of the teardown script, when set.
    pub teardown_command: Option<String>,
    /// How scripts run on nodes, when `config.json` says (`lpp run --executor` wins).
    pub executor: Option<ExecutorKind>,
    /// lpp's mount guard per base path (clean), from `pathOptions`.
    pub path_options: BTreeMap<String, PathOptions>,
}

/// The mount guard of a base path (`pathOptions` in `config.json`): a path failing it is not
/// used, so that a disk that did not mount never lets volumes fill the filesystem below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathOptions {
    /// The path must be a mount point of its own.
    pub require_mount_point: bool,
    /// Its filesystem must be one of these types (lower case); empty: any.
    pub fs_types: Vec<String>,
}

impl PathOptions {
    /// Whether the options ask for anything.
    pub fn guards(&self) -> bool {
        self.require_mount_point || !self.fs_types.is_empty()
    }
}

/// How scripts run on nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// A short-lived helper pod per job, as upstream.
    HelperPod,
    /// An exec into the node's agent pod (the `local-path-agent` DaemonSet), a helper pod where
    /// no agent can serve.
    Agent,
}

impl ExecutorKind {
    /// Reads `helperPod` or `agent` (any case).
    pub fn parse(text: &str) -> Option<ExecutorKind> {
        match text.to_ascii_lowercase().as_str() {
            "helperpod" => Some(ExecutorKind::HelperPod),
            "agent" => Some(ExecutorKind::Agent),
            _ => None,
        }
    }

    /// The spelling in `config.json` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::HelperPod => "helperPod",
            ExecutorKind::Agent => "agent",
        }
    }
}

impl Config {
    /// Parses and validates `config.json` text.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let raw = json::parse(text).map_err(|e| Error::Json(e.to_string()))?;
        Config::from_json(&raw)
    }

    /// Validates parsed `config.json` as upstream does: absolute paths, never `/`, no duplicate
    /// node, no duplicate path on a node (paths compared once cleaned).
    pub fn from_json(raw: &ConfigJson) -> Result<Config, Error> {
        let (classes, default) = if raw.storage_class_configs.is_empty() {
            (None, storage_of(&raw.default_class, "config.json")?)
        } else {
            let mut classes = BTreeMap::new();
            for (name, class) in &raw.storage_class_configs {
                let place = format!("storageClassConfigs[{name:?}]");
                classes.insert(name.clone(), storage_of(class, &place)?);
            }
            // Upstream ignores the top-level places once classes are listed.
            (
                Some(classes),
                Storage::Unusable(PathError::NeitherConfigured {
                    place: "config.json".into(),
                }),
            )
        };
        let cmd_timeout = if raw.cmd_timeout_seconds > 0 {
            raw.cmd_timeout_seconds.unsigned_abs()
        } else {
            DEFAULT_CMD_TIMEOUT_SECONDS
        };
        let executor = match raw.executor.as_str() {
            "" => None,
            text => Some(ExecutorKind::parse(text).ok_or_else(|| Error::Executor(text.into()))?),
        };
        let mut path_options = BTreeMap::new();
        for (raw, options) in &raw.path_options {
            let bad = |why: &str| Error::PathOption {
                path: raw.clone(),
                why: why.to_owned(),
            };
            if !raw.starts_with('/') || unsafe_path(raw).is_some() || path::clean(raw) == "/" {
                return Err(bad(
                    "must be an absolute directory other than `/`, with no `..` element or control character",
                ));
            }
            let mut fs_types = Vec::new();
            for t in &options.fs_types {
                if t.is_empty() || t.contains(|c: char| c.is_whitespace() || c.is_control()) {
                    return Err(bad(&format!(
                        "has fsTypes entry {t:?}: name a filesystem type such as xfs or ext4"
                    )));
                }
                fs_types.push(t.to_ascii_lowercase());
            }
            path_options.insert(
                path::clean(raw),
                PathOptions {
                    require_mount_point: options.require_mount_point,
                    fs_types,
                },
            );
        }
        Ok(Config {
            path_options,
            executor,
            classes,
            default,
            cmd_timeout: Duration::from_secs(cmd_timeout),
            setup_command: non_empty(&raw.setup_command),
            teardown_command: non_empty(&raw.teardown_command),
        })
    }

    /// The places of `class`, or why the class is not served.
    pub fn storage_for_class(&self, class: &str) -> Result<&Storage, PathError> {
        match &self.classes {
            None => Ok(&self.default),
            Some(classes) => classes.get(class).ok_or_else(|| PathError::ClassNotServed {
                class: class.to_string(),
                served: classes.keys().cloned().collect(),
            }),
        }
    }

    /// Whether `class` uses a shared filesystem (`None` when it is not served or misconfigured).
    pub fn is_shared(&self, class: &str) -> Option<bool> {
        match self.storage_for_class(class).ok()? {
            Storage::Nodes(_) => Some(false),
            Storage::Shared(_) => Some(true),
            Storage::Unusable(_) => None,
        }
    }

    /// The base paths a volume of `class` may use on `node` (the node's own entry, else the
    /// [`DEFAULT_NODE`] entry), or the shared path, or why there are none.
    pub fn paths_for(&self, class: &str, node: &str) -> Result<BasePaths<'_>, PathError> {
        let place = match &self.classes {
            None => "config.json".to_string(),
            Some(_) => format!("storageClassConfigs[{class:?}]"),
        };
        match self.storage_for_class(class)? {
            Storage::Unusable(e) => Err(e.clone()),
            Storage::Shared(p) => Ok(BasePaths::Shared(p)),
            Storage::Nodes(nodes) => {
                let paths = nodes
                    .get(node)
                    .or_else(|| nodes.get(DEFAULT_NODE))
                    .ok_or_else(|| PathError::NodeNotListed {
                        place: place.clone(),
                        node: node.to_string(),
                    })?;
                if paths.is_empty() {
                    return Err(PathError::NoPathsOnNode {
                        place,
                        node: node.to_string(),
                    });
                }
                Ok(BasePaths::Node(paths))
            }
        }
    }

    /// Every base path that may hold volumes on `node`, over all classes, shared paths included
    /// (a shared filesystem is mounted on every node). `lpp gc` inventories these.
    pub fn base_paths_on(&self, node: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for storage in self.all_storage() {
            match storage {
                Storage::Nodes(nodes) => {
                    if let Some(paths) = nodes.get(node).or_else(|| nodes.get(DEFAULT_NODE)) {
                        out.extend(paths.iter().cloned());
                    }
                }
                Storage::Shared(p) => {
                    out.insert(p.clone());
                }
                Storage::Unusable(_) => {}
            }
        }
        out
    }

    /// Every base path of every node and class, shared paths included: what a node agent
    /// DaemonSet (one pod template for all nodes) mounts.
    pub fn all_base_paths(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for storage in self.all_storage() {
            match storage {
                Storage::Nodes(nodes) => out.extend(nodes.values().flatten().cloned()),
                Storage::Shared(p) => {
                    out.insert(p.clone());
                }
                Storage::Unusable(_) => {}
            }
        }
        out
    }

    /// Every shared filesystem path over all classes.
    pub fn shared_paths(&self) -> BTreeSet<String> {
        self.all_storage()
            .filter_map(|s| match s {
                Storage::Shared(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// The served classes, or `None` when every class is served.
    pub fn served_classes(&self) -> Option<Vec<&str>> {
        self.classes
            .as_ref()
            .map(|c| c.keys().map(String::as_str).collect())
    }

    /// Misconfigured classes (both or neither place set), to log when the config is loaded.
    pub fn problems(&self) -> Vec<&PathError> {
        self.all_storage()
            .filter_map(|s| match s {
                Storage::Unusable(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn all_storage(&self) -> Box<dyn Iterator<Item = &Storage> + '_> {
        match &self.classes {
            None => Box::new(std::iter::once(&self.default)),
            Some(classes) => Box::new(classes.values()),
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn storage_of(class: &ClassJson, place: &str) -> Result<Storage, Error> {
    let mut nodes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in &class.node_path_map {
        if nodes.contains_key(&entry.node) {
            return Err(Error::DuplicateNode {
                place: place.into(),
                node: entry.node.clone(),
            });
        }
        let mut paths: Vec<String> = Vec::with_capacity(entry.paths.len());
        for raw in &entry.paths {
            if !raw.starts_with('/') {
                return Err(Error::RelativePath {
                    place: place.into(),
                    node: entry.node.clone(),
                    path: raw.clone(),
                });
            }
            if let Some(why) = unsafe_path(raw) {
                return Err(Error::UnsafePath {
                    place: place.into(),
                    node: entry.node.clone(),
                    path: raw.clone(),
                    why,
                });
            }
            let cleaned = path::clean(raw);
            if cleaned == "/" {
                return Err(Error::RootPath {
                    place: place.into(),
                    node: entry.node.clone(),
                });
            }
            if paths.contains(&cleaned) {
                return Err(Error::DuplicatePath {
                    place: place.into(),
                    node: entry.node.clone(),
                    path: raw.clone(),
                });
            }
            paths.push(cleaned);
        }
        nodes.insert(entry.node.clone(), paths);
    }
    let shared = &class.shared_file_system_path;
    if !shared.is_empty()
        && (!shared.starts_with('/') || path::clean(shared) == "/" || unsafe_path(shared).is_some())
    {
        return Err(Error::BadSharedPath {
            place: place.into(),
            path: shared.clone(),
        });
    }
    Ok(match (nodes.is_empty(), shared.is_empty()) {
        (false, false) => Storage::Unusable(PathError::BothConfigured {
            place: place.into(),
        }),
        (true, true) => Storage::Unusable(PathError::NeitherConfigured {
            place: place.into(),
        }),
        (false, true) => Storage::Nodes(nodes),
        (true, false) => Storage::Shared(path::clean(shared)),
    })
}

/// Why a base path is refused although absolute: a `..` element (`/opt/../etc` is `/etc`, which
/// nobody meant), or a control character (a newline or NUL breaks every script and listing).
fn unsafe_path(raw: &str) -> Option<&'static str> {
    if path::has_parent_element(raw) {
        Some("has a `..` element")
    } else if path::control_character(raw).is_some() {
        Some("holds a control character (newline, NUL, ...)")
    } else {
        None
    }
}

/// Where a helper pod's script comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// The ConfigMap has the key: a helper pod mounts it at `/script/<key>` and runs
    /// `/bin/sh /script/<key>`; a node agent runs the same text (read with the operation, so an
    /// edit applies to the next volume either way).
    ConfigMapKey {
        /// `setup`, `teardown` or `resize`.
        key: &'static str,
        /// The script itself.
        text: String,
    },
    /// The ConfigMap lacks the key: run the default script inline with `/bin/sh -c`.
    Inline(String),
    /// `setupCommand`/`teardownCommand` is set: run it as the container's command.
    Command(String),
}

/// Everything `lpp run` reads from the ConfigMap (or from `--config` and `--helper-pod-file`).
/// Comparable, so a reload can keep the last good contents and skip unchanged ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigMapContents {
    /// The validated `config.json`.
    pub config: Config,
    /// What the create helper pod runs.
    pub setup: Script,
    /// What the delete helper pod runs.
    pub teardown: Script,
    /// What runs when a claim grows: the `resize` key's script, or nothing when it is absent
    /// (growing a directory volume is then bookkeeping only).
    pub resize: Option<Script>,
    /// The helper pod template, parsed but not yet checked for safety (the provision module
    /// checks it, honouring `--allow-unsafe-helper-pod-template`).
    pub helper_pod: Pod,
}

impl ConfigMapContents {
    /// Reads ConfigMap data. `config.json` is required (as upstream); a missing `helperPod.yaml`
    /// means the default template; a missing `setup`/`teardown` means the default script, run
    /// inline. `config_file` and `helper_pod_file` are the texts of `--config` and
    /// `--helper-pod-file`, which take the place of the ConfigMap's keys.
    pub fn from_data(
        data: &BTreeMap<String, String>,
        config_file: Option<&str>,
        helper_pod_file: Option<&str>,
    ) -> Result<ConfigMapContents, Error> {
        let config_text = config_file
            .or_else(|| data.get(CONFIG_JSON_KEY).map(String::as_str))
            .ok_or(Error::MissingKey {
                key: CONFIG_JSON_KEY,
            })?;
        let config = Config::parse(config_text)?;
        let default_template = default_helper_pod_yaml(DEFAULT_HELPER_IMAGE);
        let pod_text = helper_pod_file
            .or_else(|| data.get(HELPER_POD_KEY).map(String::as_str))
            .unwrap_or(&default_template);
        let helper_pod = parse_helper_pod(pod_text)?;
        let script = |command: &Option<String>, key: &'static str, default: &str| match command {
            Some(c) => Script::Command(c.clone()),
            None => match data.get(key) {
                Some(text) => Script::ConfigMapKey {
                    key,
                    text: text.clone(),
                },
                None => Script::Inline(default.to_string()),
            },
        };
        Ok(ConfigMapContents {
            setup: script(&config.setup_command, SETUP_KEY, DEFAULT_SETUP_SCRIPT),
            teardown: script(
                &config.teardown_command,
                TEARDOWN_KEY,
                DEFAULT_TEARDOWN_SCRIPT,
            ),
            resize: data.get(RESIZE_KEY).map(|text| Script::ConfigMapKey {
                key: RESIZE_KEY,
                text: text.clone(),
            }),
            config,
            helper_pod,
        })
    }
}

/// Parses a helper pod template (YAML or JSON) into a Pod with at least one container.
pub fn parse_helper_pod(text: &str) -> Result<Pod, Error> {
    let pod: Pod = serde_saphyr::from_str(text).map_err(|e| Error::HelperPod(e.to_string()))?;
    if pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
        return Err(Error::NoContainer);
    }
    Ok(pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    #[test]
    fn path_options_are_validated_and_keyed_by_clean_path() {
        let c = config(
            r#"{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/mnt/disk1"]}],
                "pathOptions":{"/mnt//disk1/":{"requireMountPoint":true,"fsTypes":["XFS"]}}}"#,
        );
        let guard = &c.path_options["/mnt/disk1"];
        assert!(guard.require_mount_point && guard.guards());
        assert_eq!(guard.fs_types, ["xfs"]);
        for bad in [
            r#"{"pathOptions":{"relative":{"requireMountPoint":true}}}"#,
            r#"{"pathOptions":{"/":{"requireMountPoint":true}}}"#,
            r#"{"pathOptions":{"/a/../b":{}}}"#,
            r#"{"pathOptions":{"/a":{"fsTypes":[""]}}}"#,
        ] {
            let e = Config::parse(bad).unwrap_err();
            assert!(e.to_string().contains("pathOptions"), "{bad}: {e}");
        }
    }

    #[test]
    fn default_data_round_trips() {
        let data = default_config_map_data();
        assert_eq!(data.len(), 4);
        let contents = ConfigMapContents::from_data(&data, None, None).unwrap();
        assert_eq!(
            contents.setup,
            Script::ConfigMapKey {
                key: SETUP_KEY,
                text: DEFAULT_SETUP_SCRIPT.into()
            }
        );
        assert!(matches!(
            contents.teardown,
            Script::ConfigMapKey {
                key: TEARDOWN_KEY,
                ..
            }
        ));
        assert_eq!(contents.resize, None);
        let mut with_resize = data.clone();
        with_resize.insert(RESIZE_KEY.into(), "#!/bin/sh\ntrue".into());
        assert_eq!(
            ConfigMapContents::from_data(&with_resize, None, None)
                .unwrap()
                .resize,
            Some(Script::ConfigMapKey {
                key: RESIZE_KEY,
                text: "#!/bin/sh\ntrue".into()
            })
        );
        assert_eq!(contents.config.cmd_timeout, Duration::from_secs(120));
        assert_eq!(
            contents.config.paths_for("local-path", "node-1").unwrap(),
            BasePaths::Node(&[DEFAULT_PATH.to_string()])
        );
        let spec = contents.helper_pod.spec.unwrap();
        assert_eq!(
            spec.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        assert_eq!(spec.containers[0].name, "helper-pod");
        assert_eq!(spec.containers[0].image.as_deref(), Some("busybox"));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        let toleration = &spec.tolerations.unwrap()[0];
        assert_eq!(
            toleration.key.as_deref(),
            Some("node.kubernetes.io/disk-pressure")
        );
        assert_eq!(toleration.effect.as_deref(), Some("NoSchedule"));
    }

    #[test]
    fn upstream_deploy_config_parses() {
        let c = config(
            "{\n        \"nodePathMap\":[\n        {\n                \"node\":\"DEFAULT_PATH_FOR_NON_LISTED_NODES\",\n                \"paths\":[\"/opt/local-path-provisioner\"]\n        }\n        ]\n}",
        );
        assert_eq!(c, config(&render_config_json(&default_config_json())));
    }

    #[test]
    fn missing_keys_default_or_fail() {
        let err = ConfigMapContents::from_data(&BTreeMap::new(), None, None).unwrap_err();
        assert_eq!(
            err,
            Error::MissingKey {
                key: CONFIG_JSON_KEY
            }
        );
        let data = BTreeMap::from([(
            CONFIG_JSON_KEY.to_string(),
            r#"{"nodePathMap":[],"sharedFileSystemPath":"/mnt/s","teardownCommand":"/bin/td"}"#
                .to_string(),
        )]);
        let c = ConfigMapContents::from_data(&data, None, None).unwrap();
        assert_eq!(c.setup, Script::Inline(DEFAULT_SETUP_SCRIPT.into()));
        assert_eq!(c.teardown, Script::Command("/bin/td".into()));
        // No resize key: nothing runs when a claim grows.
        assert_eq!(c.resize, None);
        assert!(c.helper_pod.spec.is_some());
        // Files given by flag take the place of the ConfigMap's keys.
        let c = ConfigMapContents::from_data(
            &BTreeMap::new(),
            Some(r#"{"sharedFileSystemPath":"/x"}"#),
            Some("spec:\n  containers:\n  - name: c\n    image: alpine\n"),
        )
        .unwrap();
        assert_eq!(
            c.config.paths_for("any", "n").unwrap(),
            BasePaths::Shared("/x")
        );
        assert_eq!(
            c.helper_pod.spec.unwrap().containers[0].image.as_deref(),
            Some("alpine")
        );
    }

    #[test]
    fn validation_errors_name_the_culprit() {
        let err = |t: &str| Config::parse(t).unwrap_err().to_string();
        let e = err(r#"{"nodePathMap":[{"node":"n1","paths":["opt/x"]}]}"#);
        assert!(
            e.contains("\"opt/x\"") && e.contains("\"n1\"") && e.contains("absolute"),
            "{e}"
        );
        let e = err(r#"{"nodePathMap":[{"node":"n1","paths":["/opt/.."]}]}"#);
        assert!(e.contains("..") && e.contains("n1"), "{e}");
        let e = err(r#"{"nodePathMap":[{"node":"n1","paths":["/opt/../etc"]}]}"#);
        assert!(
            e.contains("`..` element") && e.contains("/opt/../etc"),
            "{e}"
        );
        let e = err(r#"{"nodePathMap":[{"node":"n1","paths":["/opt/a\nb"]}]}"#);
        assert!(e.contains("control character"), "{e}");
        let e = err(r#"{"nodePathMap":[{"node":"n1","paths":["/opt/a\u0000b"]}]}"#);
        assert!(e.contains("control character"), "{e}");
        let e = err(r#"{"sharedFileSystemPath":"/mnt/../etc"}"#);
        assert!(e.contains("sharedFileSystemPath"), "{e}");
        let e = err(r#"{"nodePathMap":[{"node":"n1","paths":["//"]}]}"#);
        assert!(e.contains("root") && e.contains("n1"), "{e}");
        let e =
            err(r#"{"nodePathMap":[{"node":"n1","paths":["/a"]},{"node":"n1","paths":["/b"]}]}"#);
        assert!(e.contains("more than once") && e.contains("n1"), "{e}");
        let e = err(r#"{"nodePathMap":[{"node":"n1","paths":["/a","/a/"]}]}"#);
        assert!(e.contains("\"/a/\"") && e.contains("more than once"), "{e}");
        let e = err(r#"{"nodePathMap":[{"node":"n1","paths":[""]}]}"#);
        assert!(e.contains("absolute"), "{e}");
        let e = err(r#"{"storageClassConfigs":{"fast":{"sharedFileSystemPath":"rel"}}}"#);
        assert!(e.contains("fast") && e.contains("rel"), "{e}");
        let e = err(r#"{"nodePathMap":"#);
        assert!(e.starts_with("config.json is not valid"), "{e}");
    }

    #[test]
    fn paths_per_node() {
        let c = config(
            r#"{"nodePathMap":[
                {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/d"]},
                {"node":"n1","paths":["/a","/b//"]},
                {"node":"n2","paths":[]}]}"#,
        );
        assert_eq!(
            c.paths_for("x", "n1").unwrap(),
            BasePaths::Node(&["/a".into(), "/b".into()])
        );
        assert_eq!(
            c.paths_for("x", "n9").unwrap(),
            BasePaths::Node(&["/d".into()])
        );
        assert_eq!(
            c.paths_for("x", "n2").unwrap_err(),
            PathError::NoPathsOnNode {
                place: "config.json".into(),
                node: "n2".into()
            }
        );
        assert_eq!(c.is_shared("x"), Some(false));
        assert_eq!(c.base_paths_on("n2"), BTreeSet::new());
        assert_eq!(
            c.base_paths_on("n1"),
            BTreeSet::from(["/a".into(), "/b".into()])
        );
        let c = config(r#"{"nodePathMap":[{"node":"n1","paths":["/a"]}]}"#);
        let e = c.paths_for("x", "n2").unwrap_err();
        assert!(
            e.to_string().contains("DEFAULT_PATH_FOR_NON_LISTED_NODES"),
            "{e}"
        );
    }

    #[test]
    fn storage_class_configs_serve_only_listed_classes() {
        let c = config(
            r#"{"nodePathMap":[{"node":"n1","paths":["/ignored"]}],
                "storageClassConfigs":{
                  "local":{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/l"]}]},
                  "shared":{"sharedFileSystemPath":"/mnt/nfs/"},
                  "both":{"sharedFileSystemPath":"/s","nodePathMap":[{"node":"n","paths":["/p"]}]},
                  "none":{}}}"#,
        );
        assert_eq!(
            c.paths_for("local", "n1").unwrap(),
            BasePaths::Node(&["/l".into()])
        );
        assert_eq!(
            c.paths_for("shared", "n1").unwrap(),
            BasePaths::Shared("/mnt/nfs")
        );
        assert!(matches!(
            c.paths_for("both", "n1"),
            Err(PathError::BothConfigured { .. })
        ));
        assert!(matches!(
            c.paths_for("none", "n1"),
            Err(PathError::NeitherConfigured { .. })
        ));
        let e = c.paths_for("other", "n1").unwrap_err();
        assert!(
            e.to_string().contains("\"other\"") && e.to_string().contains("local"),
            "{e}"
        );
        assert_eq!(c.problems().len(), 2);
        assert_eq!(
            c.served_classes().unwrap(),
            vec!["both", "local", "none", "shared"]
        );
        assert_eq!(
            c.base_paths_on("n1"),
            BTreeSet::from(["/l".into(), "/mnt/nfs".into()])
        );
        assert_eq!(c.shared_paths(), BTreeSet::from(["/mnt/nfs".into()]));
        // Misconfigured classes ("both", "none") add nothing.
        assert_eq!(
            c.all_base_paths(),
            BTreeSet::from(["/l".into(), "/mnt/nfs".into()])
        );
        assert_eq!(c.is_shared("shared"), Some(true));
        assert_eq!(c.is_shared("other"), None);
    }

    #[test]
    fn the_executor_key_is_read_and_checked() {
        let with = |v: &str| {
            Config::parse(&format!(
                r#"{{"sharedFileSystemPath":"/s","executor":{v:?}}}"#
            ))
        };
        assert_eq!(with("agent").unwrap().executor, Some(ExecutorKind::Agent));
        assert_eq!(
            with("helperPod").unwrap().executor,
            Some(ExecutorKind::HelperPod)
        );
        assert_eq!(config(r#"{"sharedFileSystemPath":"/s"}"#).executor, None);
        let e = with("ssh").unwrap_err().to_string();
        assert!(e.contains("\"ssh\"") && e.contains("agent"), "{e}");
    }

    #[test]
    fn cmd_timeout_defaults_when_not_positive() {
        assert_eq!(
            config(r#"{"sharedFileSystemPath":"/s","cmdTimeoutSeconds":-3}"#).cmd_timeout,
            Duration::from_secs(120)
        );
        assert_eq!(
            config(r#"{"sharedFileSystemPath":"/s","cmdTimeoutSeconds":5}"#).cmd_timeout,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn helper_pod_template_errors() {
        assert_eq!(
            parse_helper_pod("spec:\n  containers: []\n").unwrap_err(),
            Error::NoContainer
        );
        assert_eq!(
            parse_helper_pod("metadata:\n  name: x\n").unwrap_err(),
            Error::NoContainer
        );
        assert!(matches!(
            parse_helper_pod("spec: [1"),
            Err(Error::HelperPod(_))
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = Config::parse(&s);
            let _ = parse_helper_pod(&s);
        }

        #[test]
        fn valid_paths_are_clean_absolute_and_not_root(p in "[/a.]{1,12}") {
            let text = format!(r#"{{"nodePathMap":[{{"node":"n","paths":[{p:?}]}}]}}"#);
            if let Ok(c) = Config::parse(&text) {
                let BasePaths::Node(paths) = c.paths_for("x", "n").unwrap() else {
                    panic!("not node paths");
                };
                prop_assert!(paths[0].starts_with('/'));
                prop_assert_ne!(paths[0].as_str(), "/");
                prop_assert_eq!(path::clean(&paths[0]), paths[0].clone());
            }
        }
    }
}
