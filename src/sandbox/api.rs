//! The REST layer: routes a request to a resource, runs the apiserver's semantics for each verb
//! on the [`Store`], and writes objects, lists, watch streams and `Status` errors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Faults;
use super::admission;
use super::auth::{self, Attributes};
use super::node::NodeAgents;
use super::objects;
use super::openapi;
use super::patch;
use super::resources::{self, RESOURCES, Resource};
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{ChangeKind, Store, Write};
use super::table::{self, Representation};

/// The body of every response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The version the sandbox reports.
pub const GIT_VERSION: &str = "v1.33.0-lpp-sandbox";

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// The API server's state, shared by every connection.
pub struct ApiServer {
    /// The objects.
    pub store: Store,
    /// Fault injection.
    pub faults: Mutex<Faults>,
    /// Cancelled on shutdown: ends watches and connections.
    pub stop: CancellationToken,
    /// Service account tokens issued through `serviceaccounts/<name>/token`.
    pub tokens: auth::Tokens,
    /// Requests served per `"<verb> <resource>[/<subresource>]"`.
    pub requests: Mutex<std::collections::BTreeMap<String, u64>>,
    /// The node agents, once started (pods/log, pods/exec, graceful pod deletion).
    pub agents: OnceLock<NodeAgents>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").finish_non_exhaustive()
    }
}

/// Where a request goes.
#[derive(Debug, PartialEq)]
enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    GroupVersion(String, String),
    OpenApiIndex,
    OpenApiDocument(String),
    Object {
        resource: &'static Resource,
        namespace: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
}

fn route(path: &str) -> Result<Route, ApiError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => return Ok(Route::Health),
        ["api"] => return Ok(Route::CoreVersions),
        ["openapi", "v3"] => return Ok(Route::OpenApiIndex),
        ["openapi", "v3", rest @ ..] => return Ok(Route::OpenApiDocument(rest.join("/"))),
        ["apis"] => return Ok(Route::Groups),
        ["api", v] => return Ok(Route::GroupVersion(String::new(), v.to_string())),
        ["apis", g, v] => return Ok(Route::GroupVersion(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let found =
        |plural: &str| resources::find(group, version, plural).ok_or_else(ApiError::no_route);
    let namespaced_route = rest.len() >= 3
        && rest[0] == "namespaces"
        && resources::find(group, version, rest[2]).is_some();
    let (resource, namespace, name, sub) = if namespaced_route {
        let resource = found(rest[2])?;
        if !resource.namespaced || rest.len() > 5 {
            return Err(ApiError::no_route());
        }
        (
            resource,
            Some(rest[1].to_string()),
            rest.get(3).map(|s| s.to_string()),
            rest.get(4).map(|s| s.to_string()),
        )
    } else {
        let Some(first) = rest.first() else {
            return Err(ApiError::no_route());
        };
        let resource = found(first)?;
        if rest.len() > 3 || (resource.namespaced && rest.len() > 1) {
            return Err(ApiError::no_route());
        }
        (
            resource,
            None,
            rest.get(1).map(|s| s.to_string()),
            rest.get(2).map(|s| s.to_string()),
        )
    };
    if let Some(s) = &sub
        && !resource.subresources.contains(&s.as_str())
    {
        return Err(ApiError::no_route());
    }
    Ok(Route::Object {
        resource,
        namespace,
        name,
        sub,
    })
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as a map (last value wins) plus repeated keys (`command` for exec).
#[derive(Debug, Default)]
pub struct Query {
    single: HashMap<String, String>,
    all: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        let mut q = Query::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (percent_decode(k), percent_decode(v));
            q.single.insert(k.clone(), v.clone());
            q.all.push((k, v));
        }
        q
    }

    /// One parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.single.get(key).map(String::as_str)
    }

    /// Every value of a repeated parameter.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.all
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Sets `fieldManager` from the User-Agent when the client named none, as the apiserver
    /// does (`kubectl/v1.33 (linux)` → `kubectl`).
    fn default_manager(&mut self, user_agent: &str) {
        if self.single.contains_key("fieldManager") {
            return;
        }
        let manager = user_agent.split('/').next().unwrap_or("").trim();
        let manager = if manager.is_empty() {
            "unknown"
        } else {
            manager
        };
        self.single
            .insert("fieldManager".into(), manager.to_string());
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn strict(&self) -> bool {
        self.get("fieldValidation") == Some("Strict")
    }

    fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

/// A full JSON response.
pub fn json_response(code: u16, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `Status` error response.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let mut resp = json_response(err.code, &err.to_status());
    if err.code == 429 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

/// A streamed response fed by a channel.
fn stream_response(content_type: &'static str, rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

/// Parses a body as JSON, or as YAML (server-side apply bodies may be YAML).
fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return Ok(v);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        ApiError::bad_request(format!("the request body is neither JSON nor YAML: {e}"))
    })
}

fn meta(object: &Value, field: &str) -> Option<String> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let Value::Object(map) = object else {
        unreachable!("made an object above")
    };
    let slot = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    let Value::Object(m) = slot else {
        unreachable!("made an object above")
    };
    m
}

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
    /// A server over an empty store.
    pub fn new(faults: Faults) -> ApiServer {
        ApiServer {
            store: Store::new(),
            faults: Mutex::new(faults),
            stop: CancellationToken::new(),
            tokens: auth::Tokens::default(),
            requests: Mutex::default(),
            agents: OnceLock::new(),
        }
    }

    fn faults(&self) -> Faults {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Serves one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let faults = self.faults();
        if !faults.latency.is_zero() {
            tokio::time::sleep(faults.latency).await;
        }
        let api_call = req.uri().path().starts_with("/api");
        if api_call && faults.error_rate > 0.0 && chance() < faults.error_rate {
            return error_response(&ApiError::internal("injected fault: internal error"));
        }
        if api_call && faults.throttle_rate > 0.0 && chance() < faults.throttle_rate {
            return error_response(&ApiError::new(
                429,
                "TooManyRequests",
                "injected fault: the server has received too many requests and has asked us to try again later",
            ));
        }
        match self.dispatch(req).await {
            Ok(resp) => resp,
            Err(e) => error_response(&e),
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path().to_string();
        let mut query = Query::parse(req.uri().query());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        query.default_manager(&user_agent);
        let method = req.method().clone();
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let repr = Representation::from_request(&accept, query.get("includeObject"));
        let route = route(&path)?;
        match route {
            Route::Version => Ok(json_response(200, &version())),
            Route::Health => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"ok")).boxed_unsync());
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain"),
                );
                Ok(r)
            }
            Route::CoreVersions => Ok(json_response(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            )),
            Route::Groups => Ok(json_response(200, &group_list())),
            Route::OpenApiIndex => Ok(json_response(200, &openapi::index())),
            Route::OpenApiDocument(path) => openapi::document(&path)
                .map(|d| json_response(200, &d))
                .ok_or_else(ApiError::no_route),
            Route::GroupVersion(g, v) => resource_list(&g, &v)
                .map(|l| json_response(200, &l))
                .ok_or_else(ApiError::no_route),
            Route::Object {
                resource,
                namespace,
                name,
                sub,
            } => {
                let ns = namespace.unwrap_or_default();
                let user = auth::authenticate(req.headers(), &self.tokens)?;
                let verb = match (&method, name.is_some()) {
                    (&Method::GET, false) if query.flag("watch") => "watch",
                    (&Method::GET, false) => "list",
                    (&Method::GET, true) if sub.as_deref() == Some("exec") => "create",
                    (&Method::GET, true) => "get",
                    (&Method::POST, _) => "create",
                    (&Method::PUT, _) => "update",
                    (&Method::PATCH, _) => "patch",
                    (&Method::DELETE, false) => "deletecollection",
                    (&Method::DELETE, true) => "delete",
                    _ => return Err(ApiError::method_not_allowed()),
                };
                if let Ok(mut counts) = self.requests.lock() {
                    let key = match sub.as_deref() {
                        Some(sr) => format!("{verb} {}/{sr}", resource.qualified()),
                        None => format!("{verb} {}", resource.qualified()),
                    };
                    *counts.entry(key).or_default() += 1;
                }
                let attrs = Attributes {
                    verb,
                    resource,
                    subresource: sub.as_deref(),
                    namespace: &ns,
                    name: name.as_deref(),
                };
                if resource.is_review() {
                    if method != Method::POST || attrs.name.is_some() {
                        return Err(ApiError::method_not_allowed());
                    }
                    if resource.kind == "SubjectAccessReview" {
                        self.authorize(&user, &attrs)?;
                    }
                    let body = read_body(req).await?;
                    return self.access_review(resource, &user, &body);
                }
                self.authorize(&user, &attrs)?;
                let applying = req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|c| c.starts_with("application/apply-patch"));
                if method == Method::PATCH
                    && applying
                    && let Some(n) = name.as_deref()
                    && self.store.get(resource.id(), &ns, n).is_none()
                {
                    // Applying an object that does not exist creates it.
                    self.authorize(
                        &user,
                        &Attributes {
                            verb: "create",
                            ..attrs.clone()
                        },
                    )?;
                }
                if resource.group == "events.k8s.io" {
                    return self
                        .events_v1(req, method, resource, &ns, name, &query, repr)
                        .await;
                }
                match (method, name, sub.as_deref()) {
                    (Method::POST, Some(name), Some("binding")) => {
                        let body = read_body(req).await?;
                        self.bind(resource, &ns, &name, &body)
                    }
                    (Method::POST, Some(name), Some("token")) => {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        self.token_request(resource, &ns, &name, &body)
                    }
                    (Method::GET, None, _) if query.flag("watch") => {
                        self.watch(resource, &ns, &query, repr)
                    }
                    (Method::GET, None, _) => self.list(resource, &ns, &query, repr),
                    (Method::POST, None, _) => {
                        let body = read_body(req).await?;
                        self.create(resource, &ns, &body, &query)
                            .map(|v| json_response(201, &v))
                    }
                    (Method::DELETE, None, _) => self.delete_collection(resource, &ns, &query),
                    (Method::GET, Some(name), Some("log")) => self.logs(&ns, &name, &query).await,
                    (Method::GET | Method::POST, Some(name), Some("exec")) => {
                        super::exec::exec(Arc::clone(self), req, &ns, &name, &query).await
                    }
                    (Method::GET, Some(name), None | Some("status")) => self
                        .store
                        .get(resource.id(), &ns, &name)
                        .map(|v| json_response(200, &render_one(resource, repr, &v)))
                        .ok_or_else(|| ApiError::not_found(resource, &name)),
                    (Method::PUT, Some(name), None | Some("status")) => {
                        let body = read_body(req).await?;
                        self.update(resource, &ns, &name, sub.as_deref(), &body, &query)
                            .map(|v| json_response(200, &v))
                    }
                    (Method::PATCH, Some(name), None | Some("status")) => {
                        let content_type = req
                            .headers()
                            .get(header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let body = read_body(req).await?;
                        self.patch(
                            resource,
                            &ns,
                            &name,
                            sub.as_deref(),
                            &content_type,
                            &body,
                            &query,
                        )
                    }
                    (Method::DELETE, Some(name), None) => {
                        let body = read_body(req).await?;
                        self.delete(resource, &ns, &name, &body, &query)
                            .map(|v| json_response(200, &v))
                    }
                    _ => Err(ApiError::method_not_allowed()),
                }
            }
        }
    }

    fn list(
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
        let (items, rv) = self.store.list(id, (!ns.is_empty()).then_some(ns));
        let after = query.get("continue").filter(|c| !c.is_empty());
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
                        "{}/{}",
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

    fn watch(
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

    /// `events.k8s.io/v1` Events: stored as core Events, converted both ways.
    #[allow(clippy::too_many_arguments)]
    async fn events_v1(
        self: &Arc<Self>,
        req: Request<Incoming>,
        method: Method,
        resource: &'static Resource,
        ns: &str,
        name: Option<String>,
        query: &Query,
        repr: Representation,
    ) -> Result<Response<Body>, ApiError> {
        use super::events::{to_core, to_events_v1};
        let core = resources::find("", "v1", "events").ok_or_else(ApiError::no_route)?;
        let as_core = |body: &[u8]| -> Result<Vec<u8>, ApiError> {
            let v = parse_body(body)?;
            serde_json::to_vec(&to_core(&v)).map_err(|e| ApiError::internal(e.to_string()))
        };
        match (method, name) {
            (Method::GET, None) if query.flag("watch") => self.watch(resource, ns, query, repr),
            (Method::GET, None) => self.list(resource, ns, query, repr),
            (Method::GET, Some(n)) => self
                .store
                .get(core.id(), ns, &n)
                .map(|v| json_response(200, &render_one(resource, repr, &to_events_v1(&v))))
                .ok_or_else(|| ApiError::not_found(resource, &n)),
            (Method::POST, None) => {
                let body = as_core(&read_body(req).await?)?;
                self.create(core, ns, &body, query)
                    .map(|v| json_response(201, &to_events_v1(&v)))
            }
            (Method::PUT, Some(n)) => {
                let body = as_core(&read_body(req).await?)?;
                self.update(core, ns, &n, None, &body, query)
                    .map(|v| json_response(200, &to_events_v1(&v)))
            }
            (Method::PATCH, Some(n)) => {
                let content_type = req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let kind = content_type
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                if kind == "application/apply-patch+yaml" {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "server-side apply of events.k8s.io Events is not served by the sandbox; create or patch them",
                    ));
                }
                let doc = parse_body(&read_body(req).await?)?;
                self.patch_converted(
                    core,
                    ns,
                    &n,
                    None,
                    &kind,
                    &doc,
                    query,
                    Some((to_events_v1, to_core)),
                )
                .map(|v| json_response(200, &to_events_v1(&v)))
            }
            (Method::DELETE, Some(n)) => {
                let body = read_body(req).await?;
                self.delete(core, ns, &n, &body, query)
                    .map(|v| json_response(200, &to_events_v1(&v)))
            }
            (Method::DELETE, None) => self.delete_collection(core, ns, query),
            _ => Err(ApiError::method_not_allowed()),
        }
    }

    /// RBAC: cluster admins pass; anyone else needs a rule bound to them.
    fn authorize(&self, user: &auth::User, attrs: &Attributes<'_>) -> Result<(), ApiError> {
        if auth::allowed(user, attrs, &auth::Policy::default()) {
            return Ok(());
        }
        let load = |plural: &str, ns: Option<&str>| {
            resources::find("rbac.authorization.k8s.io", "v1", plural)
                .map(|r| self.store.list(r.id(), ns).0)
                .unwrap_or_default()
        };
        let policy = auth::Policy {
            cluster_roles: load("clusterroles", None),
            cluster_role_bindings: load("clusterrolebindings", None),
            roles: if attrs.namespace.is_empty() {
                Vec::new()
            } else {
                load("roles", Some(attrs.namespace))
            },
            role_bindings: if attrs.namespace.is_empty() {
                Vec::new()
            } else {
                load("rolebindings", Some(attrs.namespace))
            },
        };
        if auth::allowed(user, attrs, &policy) {
            Ok(())
        } else {
            Err(auth::forbidden(user, attrs))
        }
    }

    /// `selfsubjectaccessreviews` (may the caller …?) and `subjectaccessreviews` (may this user
    /// …?), answered from the same RBAC evaluation as real requests.
    fn access_review(
        &self,
        resource: &Resource,
        caller: &auth::User,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        let mut review = parse_body(body)?;
        let spec = review.get("spec").cloned().unwrap_or(Value::Null);
        let user = if resource.kind == "SubjectAccessReview" {
            auth::User {
                name: spec
                    .get("user")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                groups: spec
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|g| {
                        g.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        } else {
            caller.clone()
        };
        let allowed = match spec.get("resourceAttributes") {
            None => true,
            Some(ra) => {
                let field = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or("");
                match RESOURCES
                    .iter()
                    .find(|r| r.group == field("group") && r.plural == field("resource"))
                {
                    Some(target) => {
                        let sub = field("subresource");
                        let name = field("name");
                        let attrs = Attributes {
                            verb: field("verb"),
                            resource: target,
                            subresource: (!sub.is_empty()).then_some(sub),
                            namespace: field("namespace"),
                            name: (!name.is_empty()).then_some(name),
                        };
                        self.authorize(&user, &attrs).is_ok()
                    }
                    None => auth::allowed(
                        &user,
                        &Attributes {
                            verb: "",
                            resource,
                            subresource: None,
                            namespace: "",
                            name: None,
                        },
                        &auth::Policy::default(),
                    ),
                }
            }
        };
        review["apiVersion"] = json!(resource.api_version());
        review["kind"] = json!(resource.kind);
        review["status"] = if allowed {
            json!({"allowed": true, "reason": "RBAC: allowed by the sandbox's roles"})
        } else {
            json!({"allowed": false})
        };
        Ok(json_response(201, &review))
    }

    /// `pods/<name>/binding`: the scheduler's way to place a pod; only an unplaced pod can be
    /// bound.
    fn bind(
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

    /// `serviceaccounts/<name>/token`: a TokenRequest answered with a bearer token that this
    /// server maps back to the service account. The body (possibly protobuf from kubectl) only
    /// carries optional settings, so it is read when it is JSON and ignored otherwise.
    fn token_request(
        &self,
        resource: &Resource,
        ns: &str,
        name: &str,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        if self.store.get(resource.id(), ns, name).is_none() {
            return Err(ApiError::not_found(resource, name));
        }
        let asked: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let seconds = asked
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        let audiences = asked
            .pointer("/spec/audiences")
            .cloned()
            .unwrap_or_else(|| json!(["https://kubernetes.default.svc"]));
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let token = self.tokens.issue(ns, name);
        Ok(json_response(
            201,
            &json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                    "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
                    "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null},
                    "status": {"token": token, "expirationTimestamp": expires}}),
        ))
    }

    /// Pod Security admission for a pod about to be created in `ns`.
    fn admit_pod(&self, ns: &str, pod: &Value) -> Result<(), ApiError> {
        let Some(namespaces) = resources::find("", "v1", "namespaces") else {
            return Ok(());
        };
        let Some(namespace) = self.store.get(namespaces.id(), "", ns) else {
            return Ok(());
        };
        let labels = namespace.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let Some(level) = label("pod-security.kubernetes.io/enforce") else {
            return Ok(());
        };
        let violations = auth::pod_security_violations(level, pod);
        if violations.is_empty() {
            return Ok(());
        }
        let version = label("pod-security.kubernetes.io/enforce-version").unwrap_or("latest");
        let name = meta(pod, "name").unwrap_or_default();
        Err(ApiError::forbidden(format!(
            "pods \"{name}\" is forbidden: violates PodSecurity \"{level}:{version}\": {}",
            violations.join(", ")
        )))
    }

    fn check_namespace(&self, resource: &Resource, ns: &str) -> Result<(), ApiError> {
        if !resource.namespaced {
            return Ok(());
        }
        let Some(namespaces) = resources::find("", "v1", "namespaces") else {
            return Ok(());
        };
        match self.store.get(namespaces.id(), "", ns) {
            None => Err(ApiError::not_found(namespaces, ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    resource.qualified(),
                    "",
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// What validating admission an update of `resource` (or its `sub`resource) goes
    /// through, with what it reads taken now: the store is locked while an update decides.
    fn admit(&self, resource: &Resource, sub: Option<&str>) -> Admit {
        let resize = (resource.group, resource.kind, sub) == ("", "PersistentVolumeClaim", None);
        let classes = resize
            .then(|| resources::find("storage.k8s.io", "v1", "storageclasses"))
            .flatten()
            .map(|sc| self.store.list(sc.id(), None).0);
        Admit { classes }
    }

    /// Turns a request body into the object to create: kind, namespace, name, defaults,
    /// server metadata, strict decoding and validation.
    fn prepare_new(
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
        Ok(object)
    }

    fn create(
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
    fn decide_update(
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

    fn update(
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

    #[allow(clippy::too_many_arguments)]
    fn patch(
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
    fn patch_converted(
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

    fn delete(
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

    fn delete_collection(
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
    fn after_removal(&self, ns: &str, removed: &Value) {
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

    async fn logs(&self, ns: &str, name: &str, query: &Query) -> Result<Response<Body>, ApiError> {
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

/// A conversion between an API's view of an object and its stored shape.
type Convert = fn(&Value) -> Value;

/// The validating admission of one update (see [`ApiServer::admit`]).
struct Admit {
    /// The StorageClasses, for `PersistentVolumeClaimResize` (claims only).
    classes: Option<Vec<Value>>,
}

impl Admit {
    /// 403 in the admission plugin's words when the update is refused.
    fn check(
        &self,
        resource: &Resource,
        name: &str,
        current: &Value,
        new: &Value,
    ) -> Result<(), ApiError> {
        if let Some(classes) = &self.classes {
            admission::claim_resize(current, new, classes).map_err(|why| {
                ApiError::forbidden(format!(
                    "{} \"{name}\" is forbidden: {why}",
                    resource.qualified()
                ))
            })?;
        }
        Ok(())
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
        return (core.id(), super::events::to_events_v1);
    }
    (resource.id(), identity)
}

/// Records in `new`'s managedFields that `manager` (an update, create or non-apply patch)
/// now owns the fields it changed from `old`; other managers lose them.
fn record_update(
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

/// One object as the client asked to see it.
fn render_one(resource: &Resource, repr: Representation, object: &Value) -> Value {
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

/// A node agent's error as the apiserver answers it.
pub fn node_error(e: &super::node::NodeError) -> ApiError {
    let code = e.status_code();
    let reason = match code {
        404 => "NotFound",
        400 => "BadRequest",
        _ => "InternalError",
    };
    ApiError::new(code, reason, e.to_string())
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

/// `fieldValidation=Strict`: unknown fields are refused.
fn strict_check(input: &Value, decoded: &Value) -> Result<(), ApiError> {
    let unknown = objects::unknown_fields(input, decoded);
    if unknown.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    Err(ApiError::bad_request(format!(
        "strict decoding error: {}",
        text.join(", ")
    )))
}

async fn read_body(req: Request<Incoming>) -> Result<Vec<u8>, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("protobuf") {
        let raw = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        let object = super::protobuf::decode(&raw)
            .map_err(|e| ApiError::new(415, "UnsupportedMediaType", e))?;
        return serde_json::to_vec(&object).map_err(|e| ApiError::internal(e.to_string()));
    }
    if content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type})"
            ),
        ));
    }
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))
}

/// A number in [0, 1) for fault injection.
fn chance() -> f64 {
    (objects::random() >> 11) as f64 / (1u64 << 53) as f64
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_like_the_apiserver() {
        let Ok(Route::Object {
            resource,
            namespace,
            name,
            sub,
        }) = route("/api/v1/namespaces/default/pods/p/log")
        else {
            panic!("pod log route")
        };
        assert_eq!(
            (
                resource.plural,
                namespace.as_deref(),
                name.as_deref(),
                sub.as_deref()
            ),
            ("pods", Some("default"), Some("p"), Some("log"))
        );
        let Ok(Route::Object {
            resource,
            name,
            sub,
            ..
        }) = route("/api/v1/namespaces/x/status")
        else {
            panic!("namespace status route")
        };
        assert_eq!(
            (resource.plural, name.as_deref(), sub.as_deref()),
            ("namespaces", Some("x"), Some("status"))
        );
        assert!(route("/apis/storage.k8s.io/v1/namespaces/x/storageclasses").is_err());
        assert!(route("/api/v1/pods/p").is_err());
        assert!(route("/api/v1/pods").is_ok());
        assert_eq!(
            route("/apis/apps/v1"),
            Ok(Route::GroupVersion("apps".into(), "v1".into()))
        );
    }

    #[test]
    fn queries_decode_percent_escapes() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&command=sh&command=-c",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert_eq!(q.all("command"), vec!["sh".to_string(), "-c".to_string()]);
    }
}
