//! Patches (JSON patch, merge patch, strategic merge patch) and server-side apply: field
//! ownership in `managedFields`, 409 conflicts with other managers unless `force`, and the
//! `Update` entries non-apply writes record.

use http::Response;
use serde_json::{Value, json};

use super::{ApiServer, Body, Convert, Query, json_response, meta, meta_mut, parse_body};
use crate::sandbox::objects;
use crate::sandbox::patch;
use crate::sandbox::resources::Resource;
use crate::sandbox::status::ApiError;
use crate::sandbox::store::Write;

impl ApiServer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn patch(
        &self,
        resource: &Resource,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        content_type: &str,
        body: &[u8],
        query: &Query,
    ) -> Result<Response<Body>, ApiError> {
        let kind = content_type.split(';').next().unwrap_or("").trim();
        if kind == "application/apply-patch+yaml" {
            return self.apply(resource, ns, name, sub, body, query);
        }
        let patch_doc = parse_body(body)?;
        self.patch_converted(resource, ns, name, sub, kind, &patch_doc, query, None)
            .map(|v| json_response(200, &v))
    }

    /// A non-apply patch; with `convert`, the patch applies to another API's view of the
    /// stored object (`(to view, back to storage)`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn patch_converted(
        &self,
        resource: &Resource,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        kind: &str,
        patch_doc: &Value,
        query: &Query,
        convert: Option<(Convert, Convert)>,
    ) -> Result<Value, ApiError> {
        let dry = query.dry_run();
        let strict = query.strict();
        let patch_doc = patch_doc.clone();
        let manager = query.get("fieldManager");
        let mut removed = false;
        let admit = self.admit(resource, sub);
        let out = self.store.write(resource.id(), ns, name, |cur, _| {
            let cur = cur.ok_or_else(|| ApiError::not_found(resource, name))?;
            let mut new = match convert {
                Some((to_view, _)) => to_view(cur),
                None => cur.clone(),
            };
            match kind {
                "application/json-patch+json" => {
                    let p: json_patch::Patch = serde_json::from_value(patch_doc)
                        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                    json_patch::patch(&mut new, &p).map_err(|e| {
                        ApiError::new(422, "Invalid", format!("the JSON patch could not be applied: {e}"))
                    })?;
                }
                "application/merge-patch+json" => json_patch::merge(&mut new, &patch_doc),
                "application/strategic-merge-patch+json" => {
                    patch::strategic_merge(&mut new, &patch_doc)
                }
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"),
                    ));
                }
            }
            if let Some((_, back)) = convert {
                new = back(&new);
            }
            let mut d = Self::decide_update(resource, cur, new, sub, dry, strict, &admit)?;
            if let (Write::Put(v), Some(m)) = (&mut d, manager) {
                record_update(resource, cur, v, m, sub);
            }
            removed = matches!(d, Write::Remove);
            Ok(d)
        })?;
        if removed {
            self.after_removal(ns, &out);
        }
        Ok(out)
    }

    fn apply(
        &self,
        resource: &Resource,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        body: &[u8],
        query: &Query,
    ) -> Result<Response<Body>, ApiError> {
        let manager = query
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "PATCH, application/apply-patch+yaml requires a non-empty fieldManager",
                )
            })?
            .to_string();
        let force = query.flag("force");
        let dry = query.dry_run();
        let strict = query.strict();
        let applied = parse_body(body)?;
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration is not an object",
            ));
        }
        if let Some(n) = meta(&applied, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if strict {
            let decoded = objects::normalize(resource, &applied).unwrap_or(Value::Null);
            let unknown = objects::unknown_fields(&applied, &decoded);
            if !unknown.is_empty() && decoded.is_object() {
                let text: Vec<String> = unknown
                    .iter()
                    .map(|f| format!(".{f}: field not declared in schema"))
                    .collect();
                return Err(ApiError::bad_request(text.join(", ")));
            }
        }
        objects::typed_check(resource, &applied).map_err(|e| {
            ApiError::internal(format!(
                "failed to create typed patch object ({}): {e}",
                resource.api_version()
            ))
        })?;
        let fields = patch::field_set(&applied);
        let entry = |time: String| {
            let mut e = json!({"manager": manager, "operation": "Apply", "apiVersion": resource.api_version(),
                               "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields});
            if let Some(s) = sub {
                e["subresource"] = json!(s);
            }
            e
        };
        let existing = self.store.get(resource.id(), ns, name);
        if existing.is_none() {
            let mut object = applied.clone();
            meta_mut(&mut object).insert("name".into(), json!(name));
            let mut object = self.prepare_new(resource, ns, object, false)?;
            self.check_namespace(resource, ns)?;
            meta_mut(&mut object).insert("managedFields".into(), json!([entry(objects::now())]));
            let created = self.store.write(resource.id(), ns, name, |cur, _| {
                if cur.is_some() {
                    return Err(ApiError::conflict(resource, name));
                }
                Ok(if dry {
                    Write::Unchanged(object)
                } else {
                    Write::Put(object)
                })
            })?;
            if !dry && resource.kind == "Namespace" {
                self.seed_namespace(name);
            }
            return Ok(json_response(201, &created));
        }
        let mut removed = false;
        let admit = self.admit(resource, sub);
        let out = self.store.write(resource.id(), ns, name, |cur, _| {
            let cur = cur.ok_or_else(|| ApiError::not_found(resource, name))?;
            let managed: Vec<Value> = cur
                .pointer("/metadata/managedFields")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mine = |e: &Value| {
                e.get("manager").and_then(Value::as_str) == Some(manager.as_str())
                    && e.get("operation").and_then(Value::as_str) == Some("Apply")
                    && e.get("subresource").and_then(Value::as_str) == sub
            };
            if !force {
                conflicts(
                    resource,
                    name,
                    cur,
                    &applied,
                    &fields,
                    managed.iter().filter(|e| !mine(e)),
                )?;
            }
            let mut new = cur.clone();
            let mut body = applied.clone();
            if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
                m.remove("managedFields");
            }
            patch::strategic_merge(&mut new, &body);
            if let Some(old) = managed
                .iter()
                .find(|e| mine(e))
                .and_then(|e| e.get("fieldsV1"))
            {
                patch::remove_dropped(&mut new, old, &fields);
            }
            let old_time = managed
                .iter()
                .find(|e| mine(e))
                .and_then(|e| e.get("time"))
                .and_then(Value::as_str)
                .map(str::to_string);
            // This manager's entry keeps its place, so that an apply changing nothing leaves
            // managedFields (and the resourceVersion) exactly as they were.
            let my_index = managed.iter().position(&mine);
            let mut entries: Vec<Value> = managed.iter().filter(|e| !mine(e)).cloned().collect();
            if force {
                // Forcing takes only the conflicting fields; equal values stay shared.
                for e in entries.iter_mut() {
                    if let Some(f) = e.get_mut("fieldsV1") {
                        let taken = set_of(&conflicting(f, &fields, cur, &applied));
                        patch::subtract(f, &taken);
                    }
                }
                entries.retain(|e| {
                    e.get("fieldsV1")
                        .is_some_and(|f| f.as_object().is_some_and(|m| !m.is_empty()))
                });
            }
            let at = my_index.unwrap_or(entries.len()).min(entries.len());
            entries.insert(at, entry(old_time.unwrap_or_else(objects::now)));
            meta_mut(&mut new).insert("managedFields".into(), Value::Array(entries));
            let mut d = Self::decide_update(resource, cur, new, sub, dry, strict, &admit)?;
            if let Write::Put(v) = &mut d {
                // A changed object records when this manager last applied.
                if let Some(Value::Array(mf)) = v.pointer_mut("/metadata/managedFields")
                    && let Some(last) = mf.get_mut(at)
                {
                    last["time"] = json!(objects::now());
                }
            }
            removed = matches!(d, Write::Remove);
            Ok(d)
        })?;
        if removed {
            self.after_removal(ns, &out);
        }
        Ok(json_response(200, &out))
    }
}

/// Records in `new`'s managedFields that `manager` (an update, create or non-apply patch)
/// now owns the fields it changed from `old`; other managers lose them.
pub(super) fn record_update(
    resource: &Resource,
    old: &Value,
    new: &mut Value,
    manager: &str,
    sub: Option<&str>,
) {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
            if resource.has_status() && sub != Some("status") {
                o.remove("status");
            }
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                for f in [
                    "resourceVersion",
                    "managedFields",
                    "generation",
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "name",
                    "namespace",
                ] {
                    m.remove(f);
                }
            }
        }
        if sub == Some("status") {
            json!({"status": v.get("status").cloned().unwrap_or(Value::Null)})
        } else {
            v
        }
    };
    let changed = patch::changed_fields(&strip(old), &strip(new));
    if changed.as_object().is_none_or(|m| m.is_empty()) {
        return;
    }
    let mut entries: Vec<Value> = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mine = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Update")
            && e.get("subresource").and_then(Value::as_str) == sub
    };
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        if let Some(f) = e.get_mut("fieldsV1") {
            patch::subtract(f, &changed);
        }
    }
    entries.retain(|e| {
        e.get("fieldsV1")
            .is_some_and(|f| f.as_object().is_some_and(|m| !m.is_empty()))
    });
    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            if let Some(f) = e.get_mut("fieldsV1") {
                patch::union(f, &changed);
            }
            e["time"] = json!(objects::now());
        }
        None => {
            let mut e = json!({"manager": manager, "operation": "Update", "apiVersion": resource.api_version(),
                               "time": objects::now(), "fieldsType": "FieldsV1", "fieldsV1": changed});
            if let Some(s) = sub {
                e["subresource"] = json!(s);
            }
            entries.push(e);
        }
    }
    meta_mut(new).insert("managedFields".into(), Value::Array(entries));
}

/// Fields of `fields` set by another manager's entry to a different value than `applied` →
/// 409 Conflict, as server-side apply reports it.
fn conflicts<'a>(
    resource: &Resource,
    name: &str,
    current: &Value,
    applied: &Value,
    fields: &Value,
    others: impl Iterator<Item = &'a Value>,
) -> Result<(), ApiError> {
    let mut found = Vec::new();
    for entry in others {
        let Some(theirs) = entry.get("fieldsV1") else {
            continue;
        };
        let manager = entry.get("manager").and_then(Value::as_str).unwrap_or("");
        for p in conflicting(theirs, fields, current, applied) {
            let dotted: String = p
                .iter()
                .map(|k| format!(".{}", k.trim_start_matches("f:")))
                .collect();
            found.push(format!("conflict with \"{manager}\": {dotted}"));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let message = if found.len() == 1 {
        format!("Apply failed with 1 conflict: {}", found[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            found.len(),
            found.join("\n")
        )
    };
    Err(ApiError {
        details: Some(json!({"name": name, "group": resource.group, "kind": resource.plural})),
        ..ApiError::new(409, "Conflict", message)
    })
}

fn overlapping_leaves(
    theirs: &Value,
    mine: &Value,
    current: &Value,
    applied: &Value,
    path: &[String],
    out: &mut Vec<Vec<String>>,
) {
    let (Some(theirs), Some(mine)) = (theirs.as_object(), mine.as_object()) else {
        return;
    };
    for (k, their_child) in theirs {
        let Some(my_child) = mine.get(k) else {
            continue;
        };
        let Some(field) = k.strip_prefix("f:") else {
            continue;
        };
        let cur = current.get(field).unwrap_or(&Value::Null);
        let app = applied.get(field).unwrap_or(&Value::Null);
        // Two maps are compared member by member; a map owned as a whole is a leaf only when
        // the other side names no members.
        let leaf = (my_child.as_object().is_none_or(|m| m.is_empty())
            || their_child.as_object().is_none_or(|m| m.is_empty()))
            && !(cur.is_object()
                && app.is_object()
                && (my_child.as_object().is_some_and(|m| !m.is_empty())
                    || their_child.as_object().is_some_and(|m| !m.is_empty())));
        let mut here = path.to_vec();
        here.push(k.clone());
        if leaf {
            if cur != app {
                out.push(here);
            }
        } else if cur.is_object() {
            overlapping_leaves(their_child, my_child, cur, app, &here, out);
        }
    }
}

/// The fields another manager's `theirs` set owns that `applied` would change.
fn conflicting(theirs: &Value, mine: &Value, current: &Value, applied: &Value) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    overlapping_leaves(theirs, mine, current, applied, &[], &mut out);
    out
}

/// A field set made of paths of `f:` keys.
fn set_of(paths: &[Vec<String>]) -> Value {
    let mut set = json!({});
    for p in paths {
        let mut cur = &mut set;
        for k in p {
            cur = &mut cur[k.as_str()];
            if !cur.is_object() {
                *cur = json!({});
            }
        }
    }
    set
}
