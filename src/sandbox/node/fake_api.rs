//! A deliberately small API server for the node agents' own tests, so they can run before and
//! apart from the sandbox's real one: list, watch (with replay from a resourceVersion), get,
//! create, merge patch (main and status), pods/binding, and delete with finalizers and graceful
//! pod deletion. Nothing else; the conformance of the real one is tested elsewhere.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::broadcast;

type Key = (String, String, String);

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    history: Vec<(u64, String, String, Value)>,
    rv: u64,
    uid: u64,
}

/// The fake server: clone it freely.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<(u64, String, String, Value)>,
}

fn status(code: u16, reason: &str, message: &str) -> Response<BoxBody<Bytes, Infallible>> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    respond(code, &body)
}

fn respond(code: u16, body: &Value) -> Response<BoxBody<Bytes, Infallible>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn kind_of(plural: &str) -> (&'static str, &'static str) {
    match plural {
        "pods" => ("v1", "Pod"),
        "nodes" => ("v1", "Node"),
        "persistentvolumes" => ("v1", "PersistentVolume"),
        "persistentvolumeclaims" => ("v1", "PersistentVolumeClaim"),
        "configmaps" => ("v1", "ConfigMap"),
        "secrets" => ("v1", "Secret"),
        "storageclasses" => ("storage.k8s.io/v1", "StorageClass"),
        "daemonsets" => ("apps/v1", "DaemonSet"),
        "controllerrevisions" => ("apps/v1", "ControllerRevision"),
        "csidrivers" => ("storage.k8s.io/v1", "CSIDriver"),
        "csistoragecapacities" => ("storage.k8s.io/v1", "CSIStorageCapacity"),
        _ => ("v1", "Unknown"),
    }
}

impl FakeApi {
    /// An empty server.
    pub fn new() -> FakeApi {
        FakeApi {
            state: Arc::default(),
            events: broadcast::channel(4096).0,
        }
    }

    /// A kube client talking to it with no socket.
    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(req).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Stores an object directly (as a test's setup).
    pub fn put(&self, plural: &str, mut obj: Value) {
        let Ok(mut s) = self.state.lock() else { return };
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        s.rv += 1;
        s.uid += 1;
        let (v, k) = kind_of(plural);
        obj["apiVersion"] = json!(v);
        obj["kind"] = json!(k);
        if obj["metadata"]["uid"].is_null() {
            obj["metadata"]["uid"] = json!(format!("uid-{}", s.uid));
        }
        obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        let event = if s
            .objects
            .contains_key(&(plural.into(), ns.clone(), name.clone()))
        {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.objects.insert((plural.into(), ns, name), obj.clone());
        self.emit(&mut s, event, plural, obj);
    }

    /// Reads an object.
    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .ok()?
            .objects
            .get(&(plural.into(), ns.into(), name.into()))
            .cloned()
    }

    fn emit(&self, s: &mut State, event: &str, plural: &str, obj: Value) {
        let item = (s.rv, event.to_string(), plural.to_string(), obj);
        s.history.push(item.clone());
        let _ = self.events.send(item);
    }

    async fn handle(
        &self,
        req: Request<kube::client::Body>,
    ) -> Response<BoxBody<Bytes, Infallible>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest: &[&str] = match segs.as_slice() {
            ["api", "v1", rest @ ..] => rest,
            ["apis", _, _, rest @ ..] => rest,
            _ => return status(404, "NotFound", "no such path"),
        };
        let (ns, plural, name, sub) = match rest {
            ["namespaces", ns, plural, more @ ..] => (
                ns.to_string(),
                plural.to_string(),
                more.first(),
                more.get(1),
            ),
            [plural, more @ ..] => (String::new(), plural.to_string(), more.first(), more.get(1)),
            [] => return status(404, "NotFound", "no such path"),
        };
        let name = name.map(|s| s.to_string());
        let sub = sub.map(|s| s.to_string());
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match (parts.method.as_str(), name) {
            ("GET", None) if query.contains("watch=true") || query.contains("watch=1") => {
                self.watch(&plural, &ns, &query)
            }
            ("GET", None) => self.list(&plural, &ns),
            ("GET", Some(name)) => match self.get(&plural, &ns, &name) {
                Some(o) => respond(200, &o),
                None => status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
            },
            ("POST", None) => self.create(&plural, &ns, body),
            ("POST", Some(name)) if sub.as_deref() == Some("binding") => {
                let node = body["target"]["name"].clone();
                self.patch(
                    &plural,
                    &ns,
                    &name,
                    None,
                    json!({"spec": {"nodeName": node}}),
                )
            }
            ("PATCH", Some(name)) => self.patch(&plural, &ns, &name, sub.as_deref(), body),
            ("DELETE", Some(name)) => self.delete(&plural, &ns, &name, &body, &query),
            _ => status(405, "MethodNotAllowed", "not supported by the fake"),
        }
    }

    fn list(&self, plural: &str, ns: &str) -> Response<BoxBody<Bytes, Infallible>> {
        let Ok(s) = self.state.lock() else {
            return status(500, "InternalError", "poisoned");
        };
        let items: Vec<Value> = s
            .objects
            .iter()
            .filter(|((p, n, _), _)| p == plural && (ns.is_empty() || n == ns))
            .map(|(_, v)| v.clone())
            .collect();
        let (v, k) = kind_of(plural);
        respond(
            200,
            &json!({"apiVersion": v, "kind": format!("{k}List"),
                             "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
        )
    }

    fn watch(&self, plural: &str, ns: &str, query: &str) -> Response<BoxBody<Bytes, Infallible>> {
        let from: u64 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("resourceVersion="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let rx = self.events.subscribe();
        let replay: Vec<(u64, String, String, Value)> = self
            .state
            .lock()
            .map(|s| s.history.iter().filter(|e| e.0 > from).cloned().collect())
            .unwrap_or_default();
        let last = replay.last().map_or(from, |e| e.0);
        let plural_owned = plural.to_string();
        let ns_owned = ns.to_string();
        let live = tokio_stream_from(rx).filter(move |e| futures::future::ready(e.0 > last));
        let events = futures::stream::iter(replay)
            .chain(live)
            .filter(move |(_, _, p, o)| {
                futures::future::ready(
                    *p == plural_owned
                        && (ns_owned.is_empty() || o["metadata"]["namespace"] == json!(ns_owned)),
                )
            })
            .map(|(_, t, _, o)| {
                Ok::<_, Infallible>(Frame::data(Bytes::from(format!(
                    "{}\n",
                    json!({"type": t, "object": o})
                ))))
            });
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(events)));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        r
    }

    fn create(
        &self,
        plural: &str,
        ns: &str,
        mut obj: Value,
    ) -> Response<BoxBody<Bytes, Infallible>> {
        if !ns.is_empty() {
            obj["metadata"]["namespace"] = json!(ns);
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if self.get(plural, ns, &name).is_some() {
            return status(
                409,
                "AlreadyExists",
                &format!("{plural} \"{name}\" already exists"),
            );
        }
        self.put(plural, obj);
        match self.get(plural, ns, &name) {
            Some(o) => respond(201, &o),
            None => status(500, "InternalError", "lost"),
        }
    }

    fn patch(
        &self,
        plural: &str,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        patch: Value,
    ) -> Response<BoxBody<Bytes, Infallible>> {
        let Some(mut obj) = self.get(plural, ns, name) else {
            return status(404, "NotFound", &format!("{plural} \"{name}\" not found"));
        };
        let old_status = obj.get("status").cloned();
        if sub == Some("status") {
            json_patch::merge(
                &mut obj,
                &json!({"status": patch.get("status").cloned().unwrap_or(Value::Null)}),
            );
        } else {
            json_patch::merge(&mut obj, &patch);
            if let Some(s) = old_status {
                obj["status"] = s;
            }
        }
        let gone = !obj["metadata"]["deletionTimestamp"].is_null()
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if gone {
            self.remove(plural, ns, name);
            return respond(200, &obj);
        }
        self.put(plural, obj);
        match self.get(plural, ns, name) {
            Some(o) => respond(200, &o),
            None => status(500, "InternalError", "lost"),
        }
    }

    fn remove(&self, plural: &str, ns: &str, name: &str) {
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(mut obj) = s.objects.remove(&(plural.into(), ns.into(), name.into())) {
            s.rv += 1;
            obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            self.emit(&mut s, "DELETED", plural, obj);
        }
    }

    fn delete(
        &self,
        plural: &str,
        ns: &str,
        name: &str,
        body: &Value,
        query: &str,
    ) -> Response<BoxBody<Bytes, Infallible>> {
        let Some(mut obj) = self.get(plural, ns, name) else {
            return status(404, "NotFound", &format!("{plural} \"{name}\" not found"));
        };
        let grace = body["gracePeriodSeconds"].as_i64().or_else(|| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix("gracePeriodSeconds=")?.parse().ok())
        });
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let graceful = plural == "pods" && !obj["spec"]["nodeName"].is_null() && grace != Some(0);
        if has_finalizers || graceful {
            if obj["metadata"]["deletionTimestamp"].is_null() {
                obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                if graceful {
                    obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace.unwrap_or(30));
                }
                self.put(plural, obj.clone());
            }
            return respond(200, &obj);
        }
        self.remove(plural, ns, name);
        respond(200, &obj)
    }
}

fn tokio_stream_from(
    rx: broadcast::Receiver<(u64, String, String, Value)>,
) -> impl futures::Stream<Item = (u64, String, String, Value)> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Some((e, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
