//! `/openapi/v3`: just enough of the OpenAPI documents for kubectl. Each group-version document
//! lists the resources' paths, and every PATCH operation declares the `fieldValidation` query
//! parameter with the `x-kubernetes-group-version-kind` extension, which is how kubectl decides
//! to let the server validate (`fieldValidation=Strict`) instead of fetching schemas.

use serde_json::{Value, json};

use super::resources::{self, RESOURCES};

/// The path key of a group-version in the index (`api/v1`, `apis/apps/v1`).
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub fn index() -> Value {
    let mut gvs = vec![(String::new(), "v1".to_string())];
    gvs.extend(
        resources::groups()
            .into_iter()
            .map(|(g, v)| (g.to_string(), v.to_string())),
    );
    let mut paths = serde_json::Map::new();
    for (g, v) in gvs {
        let key = gv_path(&g, &v);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash=lpp-sandbox-1")}),
        );
    }
    json!({ "paths": paths })
}

fn parameters() -> Value {
    json!([
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
    ])
}

/// `/openapi/v3/<gv path>`: the document of one group-version, or `None` if not served.
pub fn document(path: &str) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return None,
    };
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": parameters(),
                "responses": {"200": {"description": "OK"}}
            })
        };
        let prefix = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let collection = item.trim_end_matches("/{name}").to_string();
        paths.insert(
            item.clone(),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        paths.insert(collection, json!({"get": op("list"), "post": op("post")}));
        for s in r.subresources.iter().filter(|s| **s == "status") {
            paths.insert(
                format!("{item}/{s}"),
                json!({"get": op("get"), "put": op("put"), "patch": op("patch")}),
            );
        }
        let schema_name = format!(
            "io.k8s.api.{}.{}.{}",
            schema_package(r.group),
            r.version,
            r.kind
        );
        schemas.insert(
            schema_name,
            json!({"type": "object", "x-kubernetes-group-version-kind": [gvk]}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::api::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas}
    }))
}

fn schema_package(group: &str) -> &str {
    match group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_patch_operation_declares_field_validation() {
        let index = index();
        let paths = index["paths"].as_object().expect("paths");
        assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
        for key in paths.keys() {
            let doc = document(key).expect("document");
            for (path, item) in doc["paths"].as_object().expect("paths") {
                if let Some(patch) = item.get("patch") {
                    let params = patch["parameters"].as_array().expect("parameters");
                    assert!(
                        params.iter().any(|p| p["name"] == "fieldValidation"),
                        "{path}"
                    );
                    assert!(patch["x-kubernetes-group-version-kind"]["kind"].is_string());
                }
            }
        }
        assert!(document("apis/nothing/v1").is_none());
    }
}
