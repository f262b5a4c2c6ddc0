//! Discovery: `/version`, the API groups (`/apis`) and each group version's resources
//! (`/api/v1`, `/apis/<group>/<version>`), as kubectl reads them.

use serde_json::{Value, json};

use crate::sandbox::resources::{self, RESOURCES};

/// The version the sandbox reports.
pub const GIT_VERSION: &str = "v1.33.0-lpp-sandbox";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub(super) fn group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(super) fn resource_list(group: &str, version: &str) -> Option<Value> {
    const VERBS: &[&str] = &[
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let mut out = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let verbs = if r.is_review() {
            &["create"][..]
        } else {
            VERBS
        };
        let mut entry = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                               "kind": r.kind, "verbs": verbs});
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        out.push(entry);
        for s in r.subresources {
            let (kind, verbs, extra): (&str, &[&str], Value) = match *s {
                "status" | "finalize" => (r.kind, &["get", "patch", "update"], json!({})),
                "log" => ("Pod", &["get"], json!({})),
                "exec" => ("PodExecOptions", &["create", "get"], json!({})),
                "binding" => ("Binding", &["create"], json!({})),
                "token" => (
                    "TokenRequest",
                    &["create"],
                    json!({"group": "authentication.k8s.io", "version": "v1"}),
                ),
                "scale" => (
                    "Scale",
                    &["get", "patch", "update"],
                    json!({"group": "autoscaling", "version": "v1"}),
                ),
                _ => continue,
            };
            let mut e = json!({"name": format!("{}/{s}", r.plural), "singularName": "", "namespaced": r.namespaced,
                               "kind": kind, "verbs": verbs});
            if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
                e.extend(x.clone());
            }
            out.push(e);
        }
    }
    if out.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}
