//! The REST layer: routes a request to a resource, runs the apiserver's semantics for each verb
//! on the [`Store`], and writes objects, lists, watch streams and `Status` errors.
//!
//! Here: the [`ApiServer`], a request's way in (faults, authentication, authorization, routing
//! to a verb), the query string, request bodies and responses. The verbs live by what they do:
//!
//! - `read.rs`: list, watch (selectors, bookmarks, resuming) and `pods/log`, in the
//!   representation asked for (full objects, metadata only, Tables).
//! - `write.rs`: create, update, delete (finalizers, graceful pod deletion, namespaces, garbage
//!   collection), `pods/binding`, and the decision update, patch and apply share.
//! - `apply.rs`: JSON, merge and strategic-merge patches, server-side apply (conflicts, `force`),
//!   and the `managedFields` entries every write records.
//! - `admit.rs`: admission (Pod Security, namespace lifecycle, claim resize) and
//!   `fieldValidation=Strict`.
//! - `access.rs`: RBAC authorization, access reviews and service account tokens.
//! - `discovery.rs`: `/version`, the API groups and each group version's resources.

mod access;
mod admit;
mod apply;
mod discovery;
mod read;
mod write;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Faults;
use super::auth::{self, Attributes};
use super::node::NodeAgents;
use super::objects;
use super::openapi;
use super::resources::{self, Resource};
use super::status::ApiError;
use super::store::Store;
use super::table::Representation;

pub use discovery::{GIT_VERSION, version};
use discovery::{group_list, resource_list};
use read::render_one;

/// The body of every response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

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
}

/// A conversion between an API's view of an object and its stored shape.
type Convert = fn(&Value) -> Value;

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
