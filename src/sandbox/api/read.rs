//! Reads: list and watch (label and field selectors, `limit`/`continue`, bookmarks, resuming
//! from a resourceVersion), `pods/log`, and objects rendered as the client asked to see them
//! (full, metadata only, Tables).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    ApiServer, Body, Convert, Query, chance, json_response, meta, node_error, stream_response,
};
use crate::sandbox::resources::{self, Resource};
use crate::sandbox::selector::{FieldSelector, LabelSelector};
use crate::sandbox::status::ApiError;
use crate::sandbox::store::ChangeKind;
use crate::sandbox::table::{self, Representation};

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

impl ApiServer {
    pub(super) fn list(
        &self,
        resource: &Resource,
        ns: &str,
        query: &Query,
        repr: Representation,
    ) -> Result<Response<Body>, ApiError> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let (id, view) = storage_of(resource);
        let namespace = (!ns.is_empty()).then_some(ns);
        // A continue token is `<resourceVersion>:<last key>`: every page of one list is served
        // at its first page's resourceVersion (storage/etcd3/store.go GetList with a continue
        // key), so that a watch from the list's resourceVersion misses nothing.
        let token = query.get("continue").filter(|c| !c.is_empty());
        let (items, rv, after) = match token {
            None => {
                let (items, rv) = self.store.list(id, namespace);
                (items, rv, None)
            }
            Some(token) => {
                let (rv, after) = token
                    .split_once(':')
                    .and_then(|(rv, key)| Some((rv.parse::<u64>().ok()?, key)))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("continue key is not valid: {token:?}"))
                    })?;
                let items = self.store.list_at(id, namespace, rv).ok_or_else(|| {
                    ApiError::new(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent \
                         list result. You can start a new list without the continue parameter.",
                    )
                })?;
                (items, rv, Some(after))
            }
        };
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let mut out = Vec::new();
        let mut next = None;
        for item in items {
            let item = view(&item);
            let key = format!(
                "{}/{}",
                meta(&item, "namespace").unwrap_or_default(),
                meta(&item, "name").unwrap_or_default()
            );
            if after.is_some_and(|a| key.as_str() <= a) {
                continue;
            }
            if !labels.matches(&item) || !fields.matches(&item) {
                continue;
            }
            if limit.is_some_and(|l| out.len() >= l) {
                next = out.last().map(|last: &Value| {
                    format!(
                        "{rv}:{}/{}",
                        meta(last, "namespace").unwrap_or_default(),
                        meta(last, "name").unwrap_or_default()
                    )
                });
                break;
            }
            out.push(item);
        }
        for item in &mut out {
            if let Some(m) = item.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
        }
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if let Some(n) = next {
            metadata["continue"] = json!(n);
        }
        if let Representation::Table(include) = repr {
            let mut t = table::table(resource, &out, &rv.to_string(), include, true);
            t["metadata"] = metadata;
            return Ok(json_response(200, &t));
        }
        if repr == Representation::Metadata {
            let items: Vec<Value> = out.iter().map(table::partial).collect();
            return Ok(json_response(
                200,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                        "metadata": metadata, "items": items}),
            ));
        }
        Ok(json_response(
            200,
            &json!({
                "kind": format!("{}List", resource.kind),
                "apiVersion": resource.api_version(),
                "metadata": metadata,
                "items": out,
            }),
        ))
    }

    pub(super) fn watch(
        self: &Arc<Self>,
        resource: &'static Resource,
        ns: &str,
        query: &Query,
        repr: Representation,
    ) -> Result<Response<Body>, ApiError> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let bookmarks = query.flag("allowWatchBookmarks");
        let initial_end = query.flag("sendInitialEvents");
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let namespace = (!ns.is_empty()).then(|| ns.to_string());
        let (id, view) = storage_of(resource);
        let (tx, rx) = mpsc::channel::<Bytes>(1024);
        let from = query
            .get("resourceVersion")
            .filter(|rv| !rv.is_empty() && *rv != "0");
        let matches = move |o: &Value| labels.matches(o) && fields.matches(o);
        let mut renderer = Renderer {
            resource,
            repr,
            first: true,
        };
        let mut initial = Vec::new();
        let sub = match from {
            Some(rv) => {
                let rv: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                match self.store.subscribe(rv) {
                    Some(sub) => sub,
                    None => {
                        let err = ApiError::expired(rv);
                        let _ = tx.try_send(renderer.line("ERROR", &err.to_status()));
                        return Ok(stream_response("application/json", rx));
                    }
                }
            }
            None => {
                let (items, sub) = self.store.list_and_subscribe(id, namespace.as_deref());
                let items: Vec<Value> = items.iter().map(view).collect();
                for item in items.iter().filter(|i| matches(i)) {
                    initial.push(renderer.line("ADDED", item));
                }
                if initial_end {
                    initial.push(renderer.line(
                        "BOOKMARK",
                        &json!({"kind": resource.kind, "apiVersion": resource.api_version(),
                                "metadata": {"resourceVersion": sub.rv.to_string(),
                                             "annotations": {"k8s.io/initial-events-end": "true"}}}),
                    ));
                }
                sub
            }
        };
        let server = Arc::clone(self);
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut last_rv = sub.rv;
            let mut live = sub.live;
            for l in initial {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
            let mut pending = sub.backlog.into_iter();
            let mut tick = tokio::time::interval(BOOKMARK_EVERY);
            tick.tick().await;
            loop {
                let change = if let Some(c) = pending.next() {
                    c
                } else {
                    tokio::select! {
                        r = live.recv() => match r {
                            Ok(c) => c,
                            // Fell behind or closed: end the stream; the client resumes.
                            Err(_) => return,
                        },
                        _ = tick.tick() => {
                            if bookmarks {
                                let b = json!({"kind": resource.kind, "apiVersion": resource.api_version(),
                                               "metadata": {"resourceVersion": last_rv.to_string()}});
                                if tx.send(renderer.line("BOOKMARK", &b)).await.is_err() {
                                    return;
                                }
                            }
                            continue;
                        }
                        _ = tokio::time::sleep_until(deadline) => return,
                        _ = server.stop.cancelled() => return,
                        _ = tx.closed() => return,
                    }
                };
                last_rv = last_rv.max(change.rv);
                if change.resource != id
                    || namespace.as_deref().is_some_and(|n| n != change.namespace)
                {
                    continue;
                }
                let object = view(&change.object);
                let now = matches(&object);
                let before = change
                    .previous
                    .as_ref()
                    .map(view)
                    .is_some_and(|p| matches(&p));
                let kind = match change.kind {
                    ChangeKind::Added if now => "ADDED",
                    ChangeKind::Modified if now && before => "MODIFIED",
                    ChangeKind::Modified if now => "ADDED",
                    ChangeKind::Modified if before => "DELETED",
                    ChangeKind::Deleted if now => "DELETED",
                    _ => continue,
                };
                let drop_rate = server.faults().watch_drop_rate;
                if drop_rate > 0.0 && chance() < drop_rate {
                    return;
                }
                if tx.send(renderer.line(kind, &object)).await.is_err() {
                    return;
                }
            }
        });
        Ok(stream_response("application/json", rx))
    }

    pub(super) async fn logs(
        &self,
        ns: &str,
        name: &str,
        query: &Query,
    ) -> Result<Response<Body>, ApiError> {
        let pods = resources::find("", "v1", "pods").ok_or_else(ApiError::no_route)?;
        if self.store.get(pods.id(), ns, name).is_none() {
            return Err(ApiError::not_found(pods, name));
        }
        let agents = self.agents.get().ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} has no kubelet in this sandbox"))
        })?;
        let follow = query.flag("follow");
        let tail = query.get("tailLines").and_then(|t| t.parse::<i64>().ok());
        let mut stream = agents
            .logs(ns, name, query.get("container"), follow, tail)
            .await
            .map_err(|e| node_error(&e))?;
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    chunk = stream.next() => match chunk {
                        Some(c) => if tx.send(c).await.is_err() { return },
                        None => return,
                    },
                    _ = stop.cancelled() => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(stream_response("text/plain", rx))
    }
}

fn identity(v: &Value) -> Value {
    v.clone()
}

/// Where a resource's objects are stored and how they read through this resource: events.k8s.io
/// Events live in the core Event storage.
fn storage_of(resource: &Resource) -> (super::resources::ResourceId, Convert) {
    if resource.group == "events.k8s.io"
        && let Some(core) = resources::find("", "v1", "events")
    {
        return (core.id(), super::super::events::to_events_v1);
    }
    (resource.id(), identity)
}

/// One object as the client asked to see it.
pub(super) fn render_one(resource: &Resource, repr: Representation, object: &Value) -> Value {
    match repr {
        Representation::Full => object.clone(),
        Representation::Metadata => table::partial(object),
        Representation::Table(include) => {
            let rv = meta(object, "resourceVersion").unwrap_or_default();
            table::table(resource, std::slice::from_ref(object), &rv, include, true)
        }
    }
}

/// Writes watch events in the representation asked for; a Table watch sends its column
/// definitions only in the first event, as the real server does.
struct Renderer {
    resource: &'static Resource,
    repr: Representation,
    first: bool,
}

impl Renderer {
    fn line(&mut self, kind: &str, object: &Value) -> Bytes {
        let rendered = match (kind, self.repr) {
            ("ERROR" | "BOOKMARK", _) | (_, Representation::Full) => object.clone(),
            (_, Representation::Metadata) => table::partial(object),
            (_, Representation::Table(include)) => {
                let rv = meta(object, "resourceVersion").unwrap_or_default();
                let t = table::table(
                    self.resource,
                    std::slice::from_ref(object),
                    &rv,
                    include,
                    self.first,
                );
                self.first = false;
                t
            }
        };
        let mut v =
            serde_json::to_vec(&json!({"type": kind, "object": rendered})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }
}
