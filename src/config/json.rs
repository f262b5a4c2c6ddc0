//! `config.json` as upstream's Go `encoding/json` reads it: keys match field names
//! case-insensitively (with Go's Unicode folding: `ſ` is an `s`, the Kelvin sign a `k`), unknown
//! keys are ignored, a key given twice (in any spelling) takes its last value, `null` leaves a
//! string or number alone and empties a list, and a repeated `storageClassConfigs` object merges
//! into the one before it. Existing configs rely on these quirks, so lpp keeps them.
//!
//! "Last one wins" holds even over an exact-case match earlier in the object (golang/go#43664,
//! #28190). One corner differs: Go may decode a repeated list into the elements of the earlier
//! one (golang/go#21092); lpp replaces the list whole.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// `config.json` as written: the upstream schema, before validation. Serializes back to the
/// upstream spelling (empty fields left out), which is how `lpp install` renders it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigJson {
    /// The places volumes go when `storageClassConfigs` is absent.
    #[serde(flatten)]
    pub default_class: ClassJson,
    /// Per-class places; once non-empty only the classes listed here are served.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_class_configs: BTreeMap<String, ClassJson>,
    /// Seconds a helper pod may run; zero or negative means the default (120).
    #[serde(skip_serializing_if = "is_zero")]
    pub cmd_timeout_seconds: i64,
    /// A command run in the helper pod instead of the `setup` script.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub setup_command: String,
    /// A command run in the helper pod instead of the `teardown` script.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub teardown_command: String,
    /// lpp's own key (upstream ignores unknown keys): how scripts run on nodes, `helperPod`
    /// (the default) or `agent`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub executor: String,
    /// lpp's own key: per base path options (`{"/mnt/disk1": {"requireMountPoint": true,
    /// "fsTypes": ["xfs"]}}`), the mount guard.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub path_options: BTreeMap<String, PathOptionsJson>,
}

/// One `pathOptions` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathOptionsJson {
    /// The path must be a mount point of its own (not a directory of the filesystem above it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_mount_point: bool,
    /// The path's filesystem must be one of these types (`df -T`'s names: `xfs`, `ext4`...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fs_types: Vec<String>,
}

impl ConfigJson {
    /// A config with node-local base paths: `(None, path)` entries go to
    /// `DEFAULT_PATH_FOR_NON_LISTED_NODES`, `(Some(node), path)` to that node; paths of one node
    /// are grouped in the order given.
    pub fn with_node_paths<'a>(
        entries: impl IntoIterator<Item = (Option<&'a str>, &'a str)>,
    ) -> ConfigJson {
        let mut map: Vec<NodePathsJson> = Vec::new();
        for (node, path) in entries {
            let node = node.unwrap_or(super::DEFAULT_NODE);
            match map.iter_mut().find(|e| e.node == node) {
                Some(e) => e.paths.push(path.to_string()),
                None => map.push(NodePathsJson {
                    node: node.to_string(),
                    paths: vec![path.to_string()],
                }),
            }
        }
        ConfigJson {
            default_class: ClassJson {
                node_path_map: map,
                shared_file_system_path: String::new(),
            },
            ..ConfigJson::default()
        }
    }

    /// A config with one filesystem shared by every node.
    pub fn with_shared_path(path: &str) -> ConfigJson {
        ConfigJson {
            default_class: ClassJson {
                node_path_map: Vec::new(),
                shared_file_system_path: path.to_string(),
            },
            ..ConfigJson::default()
        }
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Where one class's volumes go, as written: a node path map or a shared filesystem path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassJson {
    /// Base directories per node, with the magic node `DEFAULT_PATH_FOR_NON_LISTED_NODES`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_path_map: Vec<NodePathsJson>,
    /// One directory every node mounts (RWX, no node affinity).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub shared_file_system_path: String,
}

/// One `nodePathMap` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodePathsJson {
    /// The node name, or `DEFAULT_PATH_FOR_NON_LISTED_NODES`.
    pub node: String,
    /// Base directories on that node; empty means "never provision here".
    pub paths: Vec<String>,
}

/// Folds a JSON key the way Go's `encoding/json` does before comparing it with a field name:
/// ASCII upper case, and each non-ASCII letter to the smallest rune of its case-fold set (only
/// `ſ` → `S` and `K` (Kelvin) → `K` can ever meet our ASCII field names).
pub fn fold_key(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{017F}' => 'S',
            '\u{212A}' => 'K',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// Parses `config.json` text with Go's rules. The error is serde_json's, with line and column.
pub fn parse(text: &str) -> Result<ConfigJson, serde_json::Error> {
    let parsed: Option<ConfigJson> = serde_json::from_str(text)?;
    Ok(parsed.unwrap_or_default())
}

impl<'de> Deserialize<'de> for ConfigJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConfigJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a config.json object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConfigJson, A::Error> {
                let mut out = ConfigJson::default();
                while let Some(key) = map.next_key::<String>()? {
                    match fold_key(&key).as_str() {
                        "NODEPATHMAP" => {
                            out.default_class.node_path_map = map
                                .next_value::<Option<NodePathList>>()?
                                .map(|l| l.0)
                                .unwrap_or_default();
                        }
                        "SHAREDFILESYSTEMPATH" => {
                            if let Some(s) = map.next_value::<Option<String>>()? {
                                out.default_class.shared_file_system_path = s;
                            }
                        }
                        "STORAGECLASSCONFIGS" => {
                            match map.next_value::<Option<BTreeMap<String, Option<ClassJson>>>>()? {
                                // Go decodes into the map it already has: entries merge.
                                Some(classes) => {
                                    for (name, class) in classes {
                                        out.storage_class_configs
                                            .insert(name, class.unwrap_or_default());
                                    }
                                }
                                None => out.storage_class_configs.clear(),
                            }
                        }
                        "CMDTIMEOUTSECONDS" => {
                            if let Some(n) = map.next_value::<Option<i64>>()? {
                                out.cmd_timeout_seconds = n;
                            }
                        }
                        "SETUPCOMMAND" => {
                            if let Some(s) = map.next_value::<Option<String>>()? {
                                out.setup_command = s;
                            }
                        }
                        "TEARDOWNCOMMAND" => {
                            if let Some(s) = map.next_value::<Option<String>>()? {
                                out.teardown_command = s;
                            }
                        }
                        "EXECUTOR" => {
                            if let Some(s) = map.next_value::<Option<String>>()? {
                                out.executor = s;
                            }
                        }
                        "PATHOPTIONS" => {
                            match map
                                .next_value::<Option<BTreeMap<String, Option<PathOptionsJson>>>>()?
                            {
                                Some(paths) => {
                                    for (path, options) in paths {
                                        out.path_options.insert(path, options.unwrap_or_default());
                                    }
                                }
                                None => out.path_options.clear(),
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for ClassJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ClassJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a storage class config object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClassJson, A::Error> {
                let mut out = ClassJson::default();
                while let Some(key) = map.next_key::<String>()? {
                    match fold_key(&key).as_str() {
                        "NODEPATHMAP" => {
                            out.node_path_map = map
                                .next_value::<Option<NodePathList>>()?
                                .map(|l| l.0)
                                .unwrap_or_default();
                        }
                        "SHAREDFILESYSTEMPATH" => {
                            if let Some(s) = map.next_value::<Option<String>>()? {
                                out.shared_file_system_path = s;
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for PathOptionsJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathOptionsJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a {\"requireMountPoint\": true, \"fsTypes\": [...]} object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PathOptionsJson, A::Error> {
                let mut out = PathOptionsJson::default();
                while let Some(key) = map.next_key::<String>()? {
                    match fold_key(&key).as_str() {
                        "REQUIREMOUNTPOINT" => {
                            if let Some(b) = map.next_value::<Option<bool>>()? {
                                out.require_mount_point = b;
                            }
                        }
                        "FSTYPES" => {
                            out.fs_types = string_list(&mut map)?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// A list of strings as Go reads it: `null` is empty, a `null` entry an empty string.
fn string_list<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Vec<String>, A::Error> {
    Ok(map
        .next_value::<Option<Vec<Option<String>>>>()?
        .unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// A `nodePathMap` list; a `null` entry (which crashes upstream) is refused with its index.
struct NodePathList(Vec<NodePathsJson>);

impl<'de> Deserialize<'de> for NodePathList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodePathList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a nodePathMap list of {\"node\": ..., \"paths\": [...]} objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodePathList, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = seq.next_element::<Option<NodePathsJson>>()? {
                    match entry {
                        Some(e) => out.push(e),
                        None => {
                            return Err(de::Error::custom(format!(
                                "nodePathMap[{}] is null: remove it or give it a node and paths",
                                out.len()
                            )));
                        }
                    }
                }
                Ok(NodePathList(out))
            }
        }
        deserializer.deserialize_seq(V)
    }
}

impl<'de> Deserialize<'de> for NodePathsJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodePathsJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a {\"node\": ..., \"paths\": [...]} object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodePathsJson, A::Error> {
                let mut out = NodePathsJson::default();
                while let Some(key) = map.next_key::<String>()? {
                    match fold_key(&key).as_str() {
                        "NODE" => {
                            if let Some(s) = map.next_value::<Option<String>>()? {
                                out.node = s;
                            }
                        }
                        "PATHS" => {
                            // A `null` path is an empty string in Go; validation names it.
                            out.paths = string_list(&mut map)?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_match_in_any_case_and_unknown_keys_are_ignored() {
        let c = parse(
            r#"{"NodePathMap":[{"NODE":"n1","Paths":["/a"]}],"cmdtimeoutseconds":7,
                "SetupCommand":"/x","whatever":{"deep":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(
            c.default_class.node_path_map,
            vec![NodePathsJson {
                node: "n1".into(),
                paths: vec!["/a".into()]
            }]
        );
        assert_eq!(c.cmd_timeout_seconds, 7);
        assert_eq!(c.setup_command, "/x");
    }

    #[test]
    fn go_unicode_folding() {
        // U+017F (long s) folds to S and U+212A (Kelvin) to K in Go's encoding/json.
        let c = parse("{\"\u{17F}etupCommand\":\"/x\",\"\u{212A}\":1}").unwrap();
        assert_eq!(c.setup_command, "/x");
    }

    #[test]
    fn last_duplicate_wins_whatever_its_spelling() {
        let c = parse(
            r#"{"nodePathMap":[{"node":"a","paths":["/a"]}],
                "NODEPATHMAP":[{"node":"b","paths":["/b"]}],
                "cmdTimeoutSeconds":5,"CmdTimeoutSeconds":9}"#,
        )
        .unwrap();
        assert_eq!(c.default_class.node_path_map[0].node, "b");
        assert_eq!(c.cmd_timeout_seconds, 9);
    }

    #[test]
    fn null_keeps_scalars_and_empties_lists() {
        let c = parse(
            r#"{"setupCommand":"/x","setupCommand":null,
                "nodePathMap":[{"node":"a","paths":["/a"]}],"nodePathMap":null}"#,
        )
        .unwrap();
        assert_eq!(c.setup_command, "/x");
        assert!(c.default_class.node_path_map.is_empty());
        assert_eq!(parse("null").unwrap(), ConfigJson::default());
    }

    #[test]
    fn repeated_class_maps_merge_and_repeated_classes_replace() {
        let c = parse(
            r#"{"storageClassConfigs":{"a":{"sharedFileSystemPath":"/a"},"b":{"sharedFileSystemPath":"/b"}},
                "StorageClassConfigs":{"b":{"nodePathMap":[]},"c":null}}"#,
        )
        .unwrap();
        assert_eq!(c.storage_class_configs.len(), 3);
        assert_eq!(c.storage_class_configs["a"].shared_file_system_path, "/a");
        assert_eq!(c.storage_class_configs["b"], ClassJson::default());
        assert_eq!(c.storage_class_configs["c"], ClassJson::default());
    }

    #[test]
    fn wrong_types_and_null_entries_are_errors() {
        assert!(parse(r#"{"cmdTimeoutSeconds":"120"}"#).is_err());
        assert!(parse(r#"{"cmdTimeoutSeconds":1.5}"#).is_err());
        assert!(parse(r#"[]"#).is_err());
        assert!(parse(r#"{} x"#).is_err());
        let e = parse(r#"{"nodePathMap":[{"node":"a","paths":[]},null]}"#).unwrap_err();
        assert!(e.to_string().contains("nodePathMap[1] is null"), "{e}");
    }

    #[test]
    fn serializes_in_upstream_spelling() {
        let mut c = ConfigJson::default();
        c.default_class.node_path_map.push(NodePathsJson {
            node: "DEFAULT_PATH_FOR_NON_LISTED_NODES".into(),
            paths: vec!["/opt/local-path-provisioner".into()],
        });
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/opt/local-path-provisioner"]}]}"#
        );
        assert_eq!(parse(&text).unwrap(), c);
    }

    #[test]
    fn constructors_for_install() {
        let c = ConfigJson::with_node_paths([(None, "/a"), (Some("n1"), "/b"), (None, "/c")]);
        assert_eq!(
            c.default_class.node_path_map,
            vec![
                NodePathsJson {
                    node: "DEFAULT_PATH_FOR_NON_LISTED_NODES".into(),
                    paths: vec!["/a".into(), "/c".into()]
                },
                NodePathsJson {
                    node: "n1".into(),
                    paths: vec!["/b".into()]
                },
            ]
        );
        let s = ConfigJson::with_shared_path("/mnt/nfs");
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"sharedFileSystemPath":"/mnt/nfs"}"#
        );
    }

    #[test]
    fn path_options_are_lpps_own_key_read_as_go_would() {
        let c = parse(
            r#"{"pathOptions":{"/mnt/disk1":{"RequireMountPoint":true,"fstypes":["xfs","ext4"]},
                "/mnt/disk2":null},"PATHOPTIONS":{"/mnt/disk3":{"requireMountPoint":false}}}"#,
        )
        .unwrap();
        assert_eq!(c.path_options.len(), 3);
        assert_eq!(
            c.path_options["/mnt/disk1"],
            PathOptionsJson {
                require_mount_point: true,
                fs_types: vec!["xfs".into(), "ext4".into()]
            }
        );
        assert_eq!(c.path_options["/mnt/disk2"], PathOptionsJson::default());
        let text = serde_json::to_string(&c).unwrap();
        assert!(
            text.contains(r#""/mnt/disk1":{"requireMountPoint":true,"fsTypes":["xfs","ext4"]}"#),
            "{text}"
        );
        assert!(parse(r#"{"pathOptions":{"/a":{"requireMountPoint":"yes"}}}"#).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_json_like_text(s in r#"[\[\]{}",:0-9a-zA-Z/ nul]{0,120}"#) {
            let _ = parse(&s);
        }

        #[test]
        fn key_case_never_matters(mask in proptest::collection::vec(any::<bool>(), 11)) {
            let key: String = "nodePathMap"
                .chars()
                .zip(mask)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect();
            let text = format!(r#"{{"{key}":[{{"node":"n","paths":["/p"]}}]}}"#);
            let c = parse(&text).unwrap();
            prop_assert_eq!(c.default_class.node_path_map.len(), 1);
        }
    }
}
