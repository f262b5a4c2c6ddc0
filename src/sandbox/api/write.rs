//! Writes: create (with the object a request body becomes), update, delete and
//! deletecollection (finalizers, graceful pod deletion, namespaces emptied before they go,
//! dependents garbage-collected), `pods/binding`, and the decision update, patch and apply share.

use http::Response;
use serde_json::{Value, json};

use super::admit::{Admit, strict_check};
use super::apply::record_update;
use super::{ApiServer, Body, Query, json_response, meta, meta_mut, parse_body};
use crate::sandbox::objects;
use crate::sandbox::resources::{self, RESOURCES, Resource};
use crate::sandbox::selector::{FieldSelector, LabelSelector};
use crate::sandbox::status::ApiError;
use crate::sandbox::store::Write;

fn finalizers(object: &Value) -> usize {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Fields the server owns: kept from the stored object whatever the client sends.
fn keep_server_fields(current: &Value, new: &mut Value) {
    let m = meta_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
        "generateName",
    ] {
        match current.get("metadata").and_then(|c| c.get(field)) {
            Some(v) => {
                m.insert(field.into(), v.clone());
            }
            None => {
                m.remove(field);
            }
        }
    }
    if !m.contains_key("managedFields")
        && let Some(mf) = current.pointer("/metadata/managedFields")
    {
        m.insert("managedFields".into(), mf.clone());
    }
}

/// Compares objects ignoring resourceVersion and managedFields timestamps.
fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        let m = meta_mut(&mut v);
        m.remove("resourceVersion");
        if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
            for e in mf.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("time");
            }
        }
        v
    };
    strip(a) == strip(b)
}

impl ApiServer {
    /// `pods/<name>/binding`: the scheduler's way to place a pod; only an unplaced pod can be
    /// bound.
    pub(super) fn bind(
        &self,
        resource: &Resource,
        ns: &str,
        name: &str,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        let binding = parse_body(body)?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    resource,
                    name,
                    &[("target.name".into(), "Required value".into())],
                )
            })?
            .to_string();
        let want_uid = binding
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.store.write(resource.id(), ns, name, |cur, _| {
            let cur = cur.ok_or_else(|| ApiError::not_found(resource, name))?;
            let uid = meta(cur, "uid").unwrap_or_default();
            if let Some(w) = want_uid.filter(|w| !w.is_empty() && *w != uid) {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on pods/binding \"{name}\": Precondition failed: UID in precondition: {w}, UID in object meta: {uid}"),
                ));
            }
            if let Some(on) = cur.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{on}\""),
                ));
            }
            if cur.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            let mut new = cur.clone();
            new["spec"]["nodeName"] = json!(node);
            Ok(Write::Put(new))
        })?;
        Ok(json_response(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    /// Turns a request body into the object to create: kind, namespace, name, defaults,
    /// server metadata, strict decoding and validation.
    pub(super) fn prepare_new(
        &self,
        resource: &Resource,
        ns: &str,
        mut object: Value,
        strict: bool,
    ) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request("the request body is not an object"));
        }
        let api_version = resource.api_version();
        if let Some(av) = object.get("apiVersion").and_then(Value::as_str)
            && av != api_version
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({api_version})"
            )));
        }
        if let Some(k) = object.get("kind").and_then(Value::as_str)
            && k != resource.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )));
        }
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(resource.kind);
        let m = meta_mut(&mut object);
        if resource.namespaced {
            match m.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty()
            && let Some(prefix) = m.get("generateName").and_then(Value::as_str)
        {
            let generated = format!("{prefix}{}", objects::name_suffix());
            m.insert("name".into(), json!(generated));
        }
        m.insert("uid".into(), json!(objects::uid()));
        m.insert("creationTimestamp".into(), json!(objects::now()));
        if matches!(resource.kind, "Deployment" | "DaemonSet") {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(f);
        }
        let decoded = objects::normalize(resource, &object).map_err(ApiError::bad_request)?;
        if strict {
            strict_check(&object, &decoded)?;
        }
        let mut object = decoded;
        let name = meta(&object, "name").unwrap_or_default();
        let causes = objects::validate(resource, &object);
        if !causes.is_empty() {
            return Err(ApiError::invalid(resource, &name, &causes));
        }
        objects::apply_defaults(resource, &mut object);
        objects::prepare_create(resource, &mut object);
        crate::sandbox::admission::storage_object_in_use(resource.kind, &mut object);
        Ok(object)
    }

    pub(super) fn create(
        &self,
        resource: &Resource,
        ns: &str,
        body: &[u8],
        query: &Query,
    ) -> Result<Value, ApiError> {
        let object = parse_body(body)?;
        let object = self.prepare_new(resource, ns, object, query.strict())?;
        self.check_namespace(resource, ns)?;
        if resource.kind == "Pod" {
            self.admit_pod(ns, &object)?;
        }
        let name = meta(&object, "name").unwrap_or_default();
        let dry = query.dry_run();
        let mut object = object;
        if let Some(m) = query.get("fieldManager") {
            record_update(resource, &json!({}), &mut object, m, None);
        }

        let created = self.store.write(resource.id(), ns, &name, |cur, _| {
            if cur.is_some() {
                return Err(ApiError::already_exists(resource, &name));
            }
            Ok(if dry {
                Write::Unchanged(object)
            } else {
                Write::Put(object)
            })
        })?;
        if !dry && resource.kind == "Namespace" {
            self.seed_namespace(&name);
        }
        Ok(created)
    }

    /// What a new namespace gets from the controllers of a real cluster: its `default`
    /// service account.
    pub fn seed_namespace(&self, ns: &str) {
        if let Some(sa) = resources::find("", "v1", "serviceaccounts") {
            let object = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                                "metadata": {"name": "default", "namespace": ns}});
            if let Ok(object) = self.prepare_new(sa, ns, object, false) {
                let _ = self.store.write(sa.id(), ns, "default", |cur, _| {
                    Ok(match cur {
                        Some(c) => Write::Unchanged(c.clone()),
                        None => Write::Put(object),
                    })
                });
            }
        }
    }

    /// Creates an object directly (used by the sandbox to seed nodes and namespaces).
    pub fn seed(&self, resource: &Resource, object: Value) -> Result<Value, ApiError> {
        let ns = meta(&object, "namespace").unwrap_or_default();
        let body = serde_json::to_vec(&object).unwrap_or_default();
        self.create(resource, &ns, &body, &Query::default())
    }

    /// The decision shared by update, patch and apply: the stored object becomes `new`
    /// (with server fields and status handled), is removed if its last finalizer went away
    /// during deletion, or stays unchanged if nothing differs.
    pub(super) fn decide_update(
        resource: &Resource,
        current: &Value,
        mut new: Value,
        sub: Option<&str>,
        dry: bool,
        strict: bool,
        admit: &Admit,
    ) -> Result<Write, ApiError> {
        let name = meta(current, "name").unwrap_or_default();
        if let Some(n) = meta(&new, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = meta(&new, "resourceVersion")
            && Some(&rv) != meta(current, "resourceVersion").as_ref()
        {
            return Err(ApiError::conflict(resource, &name));
        }
        new["apiVersion"] = json!(resource.api_version());
        new["kind"] = json!(resource.kind);
        keep_server_fields(current, &mut new);
        if resource.has_status() {
            let mut merged = if sub == Some("status") {
                let mut c = current.clone();
                match new.get("status") {
                    Some(s) => c["status"] = s.clone(),
                    None => {
                        if let Some(m) = c.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                c
            } else {
                let mut n = new;
                match current.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                n
            };
            if let Some(rv) = meta(current, "resourceVersion") {
                meta_mut(&mut merged).insert("resourceVersion".into(), json!(rv));
            }
            new = merged;
        }
        if resource.kind == "Namespace"
            && sub != Some("finalize")
            && let Some(f) = current.pointer("/spec/finalizers")
        {
            new["spec"]["finalizers"] = f.clone();
        }
        let decoded = objects::normalize(resource, &new).map_err(ApiError::bad_request)?;
        if strict {
            strict_check(&new, &decoded)?;
        }
        let mut new = decoded;
        objects::apply_defaults(resource, &mut new);
        if sub != Some("status") {
            objects::prepare_update(resource, current, &mut new);
        }
        let mut causes = objects::validate(resource, &new);
        if sub == Some("status") {
            causes.extend(objects::status_violations(resource, &new));
        } else {
            causes.extend(objects::update_violations(resource, current, &new));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(resource, &name, &causes));
        }
        if resource.group == "apps" && new.get("spec") != current.get("spec") {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        // Validating admission comes after validation, as in kube-apiserver.
        admit.check(resource, &name, current, &new)?;
        if new.pointer("/metadata/deletionTimestamp").is_some()
            && finalizers(&new) == 0
            && resource.kind != "Pod"
        {
            return Ok(if dry {
                Write::Unchanged(new)
            } else {
                Write::Remove
            });
        }
        if same_object(current, &new) {
            return Ok(Write::Unchanged(current.clone()));
        }
        Ok(if dry {
            Write::Unchanged(new)
        } else {
            Write::Put(new)
        })
    }

    pub(super) fn update(
        &self,
        resource: &Resource,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        body: &[u8],
        query: &Query,
    ) -> Result<Value, ApiError> {
        let new = parse_body(body)?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the request body is not an object"));
        }
        let dry = query.dry_run();
        let strict = query.strict();
        let manager = query.get("fieldManager");
        let mut removed = false;
        let admit = self.admit(resource, sub);
        let out = self.store.write(resource.id(), ns, name, |cur, _| {
            let cur = cur.ok_or_else(|| ApiError::not_found(resource, name))?;
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

    pub(super) fn delete(
        &self,
        resource: &Resource,
        ns: &str,
        name: &str,
        body: &[u8],
        query: &Query,
    ) -> Result<Value, ApiError> {
        let options = if body.is_empty() {
            Value::Null
        } else {
            parse_body(body).unwrap_or(Value::Null)
        };
        let dry = query.dry_run()
            || options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "All"));
        let grace = query
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse::<i64>().ok())
            .or_else(|| options.get("gracePeriodSeconds").and_then(Value::as_i64));
        let want_uid = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str);
        let want_rv = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str);
        let graceful_pods = self.agents.get().is_some();
        let mut removed = false;
        let out = self.store.write(resource.id(), ns, name, |cur, _| {
            let cur = cur.ok_or_else(|| ApiError::not_found(resource, name))?;
            let uid = meta(cur, "uid").unwrap_or_default();
            if let Some(w) = want_uid
                && w != uid {
                    return Err(ApiError::new(409, "Conflict", format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {w}, UID in object meta: {uid}",
                        resource.qualified()
                    )));
                }
            if let Some(w) = want_rv
                && Some(w.to_string()) != meta(cur, "resourceVersion") {
                    return Err(ApiError::new(409, "Conflict", format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {w}, ResourceVersion in object meta: {}",
                        resource.qualified(), meta(cur, "resourceVersion").unwrap_or_default()
                    )));
                }
            let marked = cur.pointer("/metadata/deletionTimestamp").is_some();
            let mut new = cur.clone();
            let pod_grace = if resource.kind == "Pod" && graceful_pods {
                let terminal = matches!(
                    cur.pointer("/status/phase").and_then(Value::as_str),
                    Some("Succeeded" | "Failed")
                );
                let scheduled = cur.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
                let g = grace
                    .or_else(|| cur.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64))
                    .or_else(|| cur.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
                    .unwrap_or(30);
                (scheduled && !terminal && g > 0).then_some(g)
            } else {
                None
            };
            if finalizers(cur) > 0 || pod_grace.is_some() {
                if marked && pod_grace.is_none() {
                    return Ok(Write::Unchanged(cur.clone()));
                }
                let g = pod_grace.unwrap_or(0);
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(g))
                    .unwrap_or_else(|_| jiff::Timestamp::now())
                    .round(jiff::Unit::Second)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                let m = meta_mut(&mut new);
                if !marked || pod_grace.is_some() {
                    if !marked {
                        m.insert("deletionTimestamp".into(), json!(at));
                    }
                    m.insert("deletionGracePeriodSeconds".into(), json!(g));
                }
                if resource.kind == "Namespace" {
                    new["status"]["phase"] = json!("Terminating");
                }
                if same_object(cur, &new) {
                    return Ok(Write::Unchanged(cur.clone()));
                }
                return Ok(if dry { Write::Unchanged(new) } else { Write::Put(new) });
            }
            if resource.kind == "Namespace" {
                // The namespace controller empties it first; see `finish_namespace`.
                let m = meta_mut(&mut new);
                m.insert("deletionTimestamp".into(), json!(objects::now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                new["status"]["phase"] = json!("Terminating");
                return Ok(if dry { Write::Unchanged(new) } else { Write::Put(new) });
            }
            removed = true;
            Ok(if dry { Write::Unchanged(cur.clone()) } else { Write::Remove })
        })?;
        if dry {
            return Ok(out);
        }
        if resource.kind == "Namespace" {
            self.finish_namespace(name);
        } else if removed {
            self.after_removal(ns, &out);
        }
        Ok(out)
    }

    pub(super) fn delete_collection(
        &self,
        resource: &Resource,
        ns: &str,
        query: &Query,
    ) -> Result<Response<Body>, ApiError> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let (items, rv) = self
            .store
            .list(resource.id(), (!ns.is_empty()).then_some(ns));
        let mut out = Vec::new();
        for item in items
            .iter()
            .filter(|i| labels.matches(i) && fields.matches(i))
        {
            let name = meta(item, "name").unwrap_or_default();
            let item_ns = meta(item, "namespace").unwrap_or_default();
            match self.delete(resource, &item_ns, &name, &[], query) {
                Ok(v) => out.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json_response(
            200,
            &json!({"kind": format!("{}List", resource.kind), "apiVersion": resource.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()}, "items": out}),
        ))
    }

    /// After an object in `ns` went away: its dependents go (background garbage collection:
    /// objects whose only owner it was), and a terminating namespace that is now empty goes too.
    pub(super) fn after_removal(&self, ns: &str, removed: &Value) {
        if let Some(uid) = meta(removed, "uid") {
            for (id, dep_ns, name) in self.store.dependents_of(&uid) {
                if let Some(r) = RESOURCES.iter().find(|r| r.id() == id) {
                    let _ = self.delete(r, &dep_ns, &name, &[], &Query::default());
                }
            }
        }
        if ns.is_empty() {
            return;
        }
        let Some(namespaces) = resources::find("", "v1", "namespaces") else {
            return;
        };
        if self
            .store
            .get(namespaces.id(), "", ns)
            .is_some_and(|n| n.pointer("/metadata/deletionTimestamp").is_some())
            && self.store.in_namespace(ns).is_empty()
        {
            let _ = self.store.write(namespaces.id(), "", ns, |cur, _| {
                Ok(match cur {
                    Some(c) if finalizers(c) == 0 => Write::Remove,
                    Some(c) => Write::Unchanged(c.clone()),
                    None => Write::Unchanged(Value::Null),
                })
            });
        }
    }

    /// Deletes everything in a terminating namespace (what the namespace controller does),
    /// then the namespace once it is empty.
    fn finish_namespace(&self, ns: &str) {
        for (id, name) in self.store.in_namespace(ns) {
            if let Some(r) = RESOURCES.iter().find(|r| r.id() == id) {
                let _ = self.delete(r, ns, &name, &[], &Query::default());
            }
        }
        self.after_removal(ns, &Value::Null);
    }
}
