//! Patches: strategic merge (with a merge-key table for the types the sandbox serves and the
//! `$patch` directives), and server-side apply's field sets (`managedFields` in the FieldsV1
//! shape) so that a field a manager stops applying is removed. JSON patch and JSON merge patch
//! come from the `json-patch` crate.

use serde_json::{Map, Value};

/// The merge key of a list field, as the types' `patchMergeKey` declares it (`None`: the list is
/// replaced as a whole).
pub fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" => "containerPort",
        "conditions" | "addresses" => "type",
        "taints" => "key",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of strings merged as sets.
fn is_primitive_set(field: &str) -> bool {
    field == "finalizers"
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch to `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = strip_directives(patch);
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if patch_map.get("$patch").and_then(Value::as_str) == Some("delete") {
        *target = Value::Object(Map::new());
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (key, value) in patch_map {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(gone)) = (map.get_mut(field), value) {
                list.retain(|v| !gone.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(_) => {
                let slot = map.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, value);
            }
            Value::Array(items) => match (merge_key(key), map.get_mut(key)) {
                (Some(mk), Some(Value::Array(existing))) => merge_list(existing, items, mk),
                (None, Some(Value::Array(existing))) if is_primitive_set(key) => {
                    for item in items {
                        if !existing.contains(item) {
                            existing.push(item.clone());
                        }
                    }
                }
                _ => {
                    let kept: Vec<Value> = items
                        .iter()
                        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                        .map(strip_directives)
                        .collect();
                    map.insert(key.clone(), Value::Array(kept));
                }
            },
            other => {
                map.insert(key.clone(), other.clone());
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key);
        let directive = item.get("$patch").and_then(Value::as_str);
        if directive == Some("delete") {
            existing.retain(|e| e.get(key) != id);
            continue;
        }
        match existing
            .iter_mut()
            .find(|e| id.is_some() && e.get(key) == id)
        {
            Some(found) => strategic_merge(found, item),
            None => existing.push(strip_directives(item)),
        }
    }
}

/// The FieldsV1 set of an applied configuration: `f:<field>` for fields, `k:{...}` for list
/// items with a merge key, `v:<value>` for set members, `.` for an item's own presence.
pub fn field_set(applied: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(map) = applied {
        for (k, v) in map {
            if matches!(k.as_str(), "apiVersion" | "kind") {
                continue;
            }
            out.insert(format!("f:{k}"), field_set_of(k, v));
        }
    }
    if let Some(Value::Object(meta)) = out.get_mut("f:metadata") {
        meta.remove("f:generateName");
        for k in [
            "f:name",
            "f:namespace",
            "f:resourceVersion",
            "f:uid",
            "f:managedFields",
            "f:creationTimestamp",
        ] {
            meta.remove(k);
        }
    }
    if out
        .get("f:metadata")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        out.remove("f:metadata");
    }
    Value::Object(out)
}

fn field_set_of(field: &str, v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(format!("f:{k}"), field_set_of(k, v));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Map::new();
            if let Some(mk) = merge_key(field) {
                for item in items {
                    if let Some(id) = item.get(mk) {
                        let mut child = match field_set_of("", item) {
                            Value::Object(m) => m,
                            _ => Map::new(),
                        };
                        child.insert(".".into(), Value::Object(Map::new()));
                        out.insert(item_key(mk, id), Value::Object(child));
                    }
                }
            } else if is_primitive_set(field) {
                for item in items {
                    out.insert(format!("v:{item}"), Value::Object(Map::new()));
                }
            }
            Value::Object(out)
        }
        _ => Value::Object(Map::new()),
    }
}

fn item_key(mk: &str, id: &Value) -> String {
    let mut m = Map::new();
    m.insert(mk.to_string(), id.clone());
    format!("k:{}", Value::Object(m))
}

/// Removes from `object` every field in `old` (a field set) that is not in `new`, i.e. what a
/// manager applied before and no longer applies.
pub fn remove_dropped(object: &mut Value, old: &Value, new: &Value) {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return;
    };
    for (key, old_child) in old {
        if key == "." {
            continue;
        }
        let new_child = new.get(key);
        if let Some(field) = key.strip_prefix("f:") {
            let Some(map) = object.as_object_mut() else {
                continue;
            };
            match new_child {
                None => {
                    map.remove(field);
                }
                Some(new_child) => {
                    if let Some(child) = map.get_mut(field) {
                        if let Value::Array(items) = child {
                            remove_dropped_items(items, old_child, new_child);
                        } else {
                            remove_dropped(child, old_child, new_child);
                        }
                    }
                }
            }
        }
    }
}

fn remove_dropped_items(items: &mut Vec<Value>, old: &Value, new: &Value) {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return;
    };
    for (key, old_child) in old {
        let matches = |item: &Value| -> bool {
            if let Some(k) = key.strip_prefix("k:") {
                serde_json::from_str::<Map<String, Value>>(k)
                    .is_ok_and(|want| want.iter().all(|(f, v)| item.get(f) == Some(v)))
            } else if let Some(v) = key.strip_prefix("v:") {
                serde_json::from_str::<Value>(v).is_ok_and(|want| *item == want)
            } else {
                false
            }
        };
        match new.get(key) {
            None => items.retain(|i| !matches(i)),
            Some(new_child) => {
                for item in items.iter_mut().filter(|i| matches(i)) {
                    remove_dropped(item, old_child, new_child);
                }
            }
        }
    }
}

/// The field set of what `new` sets differently from `old` (added or changed leaves), as an
/// update's manager comes to own it. Lists are owned whole.
pub fn changed_fields(old: &Value, new: &Value) -> Value {
    let mut out = Map::new();
    if let (Some(n), o) = (new.as_object(), old.as_object()) {
        for (k, v) in n {
            let before = o.and_then(|o| o.get(k));
            if before == Some(v) {
                continue;
            }
            let child = match (before, v) {
                (Some(b @ Value::Object(_)), Value::Object(_)) => changed_fields(b, v),
                (None, Value::Object(_)) => changed_fields(&Value::Null, v),
                _ => Value::Object(Map::new()),
            };
            // An object whose members did not change (an empty map set again) owns nothing.
            if v.is_object() && child.as_object().is_some_and(Map::is_empty) {
                continue;
            }
            out.insert(format!("f:{k}"), child);
        }
    }
    Value::Object(out)
}

/// Adds every field of `more` to the field set `set`.
pub fn union(set: &mut Value, more: &Value) {
    let Some(more) = more.as_object() else {
        return;
    };
    if !set.is_object() {
        *set = Value::Object(Map::new());
    }
    if let Some(s) = set.as_object_mut() {
        for (k, v) in more {
            let slot = s
                .entry(k.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            union(slot, v);
        }
    }
}

/// Removes from a field set every field in `taken` (the fields move to another manager).
pub fn subtract(set: &mut Value, taken: &Value) {
    let (Some(set), Some(taken)) = (set.as_object_mut(), taken.as_object()) else {
        return;
    };
    for (k, t) in taken {
        let leaf = t.as_object().is_none_or(|m| m.is_empty());
        if leaf {
            set.remove(k);
        } else if let Some(child) = set.get_mut(k) {
            subtract(child, t);
            if child.as_object().is_some_and(|m| m.is_empty()) {
                set.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_directives_delete() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
                                      "tolerations": [{"key": "k"}]},
                             "metadata": {"finalizers": ["f1"], "labels": {"a": "1", "b": "2"}}});
        strategic_merge(
            &mut pod,
            &json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "a", "$patch": "delete"}],
                             "tolerations": [{"key": "j"}]},
                    "metadata": {"finalizers": ["f2"], "labels": {"a": null}}}),
        );
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "b", "image": "z"}])
        );
        assert_eq!(pod["spec"]["tolerations"], json!([{"key": "j"}]));
        assert_eq!(pod["metadata"]["finalizers"], json!(["f1", "f2"]));
        assert_eq!(pod["metadata"]["labels"], json!({"b": "2"}));
    }

    #[test]
    fn a_field_no_longer_applied_is_removed() {
        let first = json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}},
                           "spec": {"containers": [{"name": "c", "image": "i", "args": ["x"]}]}});
        let second = json!({"metadata": {"name": "x", "labels": {"a": "1"}},
                            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let mut live = first.clone();
        live["metadata"]["labels"]["other"] = json!("kept");
        strategic_merge(&mut live, &second);
        remove_dropped(&mut live, &field_set(&first), &field_set(&second));
        assert_eq!(
            live["metadata"]["labels"],
            json!({"a": "1", "other": "kept"})
        );
        assert_eq!(
            live["spec"]["containers"],
            json!([{"name": "c", "image": "i"}])
        );
    }

    #[test]
    fn updates_own_what_they_change() {
        let old = json!({"data": {"a": "1", "b": "2"}, "metadata": {"labels": {"x": "1"}}});
        let new =
            json!({"data": {"a": "1", "b": "3", "c": "4"}, "metadata": {"labels": {"x": "1"}}});
        let changed = changed_fields(&old, &new);
        assert_eq!(changed, json!({"f:data": {"f:b": {}, "f:c": {}}}));
        let mut owned = json!({"f:data": {"f:a": {}, "f:b": {}}});
        subtract(&mut owned, &changed);
        assert_eq!(owned, json!({"f:data": {"f:a": {}}}));
        union(&mut owned, &changed);
        assert_eq!(owned, json!({"f:data": {"f:a": {}, "f:b": {}, "f:c": {}}}));
    }

    #[test]
    fn field_sets_use_the_fieldsv1_shape() {
        let set = field_set(
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
                                    "spec": {"containers": [{"name": "c"}]}}),
        );
        assert_eq!(
            set,
            json!({"f:metadata": {"f:labels": {"f:a": {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}}}}})
        );
    }
}
