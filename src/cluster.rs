//! Reaching a cluster: kubeconfig resolution by kubectl's rules, and the one `kube::Client`.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// How to reach the cluster, from the global flags.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `--kubeconfig`: only this file. Without it, the `KUBECONFIG` list merged, else
    /// `~/.kube/config`, else the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`; without it, the kubeconfig's current context.
    pub context: Option<String>,
    /// `--request-timeout`: `None` keeps the client's defaults, `Some(ZERO)` means no timeout
    /// (as kubectl reads `0`).
    pub request_timeout: Option<Duration>,
    /// Whether the caller's creates may be sent again after a server error (500-504): true
    /// only where every create names its object (or is a review) and reads a 409 as "already
    /// made", as `lpp run` does. Other commands' creates are sent once.
    pub creates_repeatable: bool,
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    /// The client every request to this cluster goes through, with lpp's retries and
    /// `--request-timeout` deadline.
    pub client: kube::Client,
    /// The kube context's name (`in-cluster` for the service account).
    pub context: String,
    /// The API server's URL.
    pub server: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("context", &self.context)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Why the cluster cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kubeconfig file cannot be read or parsed.
    #[error("cannot read the kubeconfig {}: {}", path.display(), kubeconfig_cause(source))]
    ReadFile {
        /// The kubeconfig file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: KubeconfigError,
    },

    /// A file of the `KUBECONFIG` list conflicts with the files before it.
    #[error("cannot merge the kubeconfig {} with the files before it in KUBECONFIG: {source}", path.display())]
    Merge {
        /// The file that does not merge.
        path: PathBuf,
        /// Why it does not merge.
        #[source]
        source: KubeconfigError,
    },

    /// No kubeconfig anywhere kubectl would look, and no in-cluster service account.
    #[error(
        "no kubeconfig found (no --kubeconfig, KUBECONFIG or ~/.kube/config) and not running in a \
         cluster; point --kubeconfig at one, or try `lpp demo --sandbox`"
    )]
    NotFound,

    /// The `--context` asked for is not in the kubeconfig.
    #[error("context `{context}` is not in the kubeconfig; contexts there: {available}")]
    UnknownContext {
        /// The context asked for.
        context: String,
        /// The kubeconfig's context names, comma-separated, or `none`.
        available: String,
    },

    /// No `--context` and the kubeconfig's current-context is unset or empty; the text lists the
    /// kubeconfig's context names, comma-separated, or `none`.
    #[error("the kubeconfig has no current context; pass --context (contexts there: {0})")]
    NoCurrentContext(String),

    /// The chosen context does not make a usable client configuration (a missing cluster or
    /// user entry, unreadable certificates, a failing auth plugin).
    #[error(
        "cannot use the kubeconfig's context `{context}`: {}",
        kubeconfig_cause(source)
    )]
    Config {
        /// The context's name.
        context: String,
        /// What is wrong with it.
        #[source]
        source: KubeconfigError,
    },

    /// The client for the API server cannot be built from the context's configuration (its TLS
    /// settings, say).
    #[error("cannot build a client for {server}: {}", describe(source))]
    Client {
        /// The API server's URL.
        server: String,
        /// Why the client cannot be built.
        #[source]
        source: kube::Error,
    },
}

/// A kubeconfig error without the path the message around it already names.
fn kubeconfig_cause(error: &KubeconfigError) -> String {
    match error {
        KubeconfigError::ReadConfig(io, _) => io_cause(io),
        other => other.to_string(),
    }
}

/// The files of the `KUBECONFIG` list that exist, in order. kubectl skips the missing ones.
fn kubeconfig_list(value: &std::ffi::OsStr) -> Vec<PathBuf> {
    std::env::split_paths(value)
        .filter(|p| !p.as_os_str().is_empty() && p.exists())
        .collect()
}

fn read_kubeconfig(path: &std::path::Path) -> Result<Kubeconfig, Error> {
    Kubeconfig::read_from(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

/// The kubeconfig as kubectl finds it: `--kubeconfig`, else the `KUBECONFIG` list merged (missing
/// entries skipped), else `~/.kube/config`; `None` when there is none.
fn find_kubeconfig(target: &Target) -> Result<Option<Kubeconfig>, Error> {
    if let Some(path) = &target.kubeconfig {
        return read_kubeconfig(path).map(Some);
    }
    if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let mut merged: Option<Kubeconfig> = None;
        for path in kubeconfig_list(&value) {
            let next = read_kubeconfig(&path)?;
            merged = Some(match merged {
                None => next,
                Some(before) => before
                    .merge(next)
                    .map_err(|source| Error::Merge { path, source })?,
            });
        }
        return Ok(merged);
    }
    match dirs::home_dir().map(|home| home.join(".kube").join("config")) {
        Some(path) if path.exists() => read_kubeconfig(&path).map(Some),
        _ => Ok(None),
    }
}

/// The context names of the kubeconfig kubectl would read (for completion); none on any error.
pub fn context_names() -> Vec<String> {
    match find_kubeconfig(&Target::default()) {
        Ok(Some(kubeconfig)) => kubeconfig.contexts.into_iter().map(|c| c.name).collect(),
        _ => Vec::new(),
    }
}

/// What [`names`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// The cluster's namespaces.
    Namespaces,
    /// The cluster's nodes.
    Nodes,
}

/// The names of the namespaces or nodes of `target`'s cluster (for completion); none on any
/// error.
pub async fn names(target: &Target, listed: Listed) -> Vec<String> {
    use k8s_openapi::api::core::v1::{Namespace, Node};
    use kube::ResourceExt;
    let Ok(cluster) = connect(target).await else {
        return Vec::new();
    };
    let params = kube::api::ListParams::default();
    let listed = match listed {
        Listed::Namespaces => kube::Api::<Namespace>::all(cluster.client)
            .list_metadata(&params)
            .await
            .map(|l| l.items.iter().map(|o| o.name_any()).collect()),
        Listed::Nodes => kube::Api::<Node>::all(cluster.client)
            .list_metadata(&params)
            .await
            .map(|l| l.items.iter().map(|o| o.name_any()).collect()),
    };
    listed.unwrap_or_default()
}

/// Connects as kubectl would: reads the kubeconfig, picks the context, builds the client.
/// Nothing is sent to the server yet.
///
/// Every request of the client is retried as kubectl retries (see [`retry_delay`]), and a
/// request that cannot reach the server fails naming the server, the context and the cause.
pub async fn connect(target: &Target) -> Result<Cluster, Error> {
    let (mut config, context) = match find_kubeconfig(target)? {
        Some(kubeconfig) => {
            let available = || {
                let names: Vec<&str> = kubeconfig
                    .contexts
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            };
            let context = match &target.context {
                Some(context) => {
                    if !kubeconfig.contexts.iter().any(|c| &c.name == context) {
                        return Err(Error::UnknownContext {
                            context: context.clone(),
                            available: available(),
                        });
                    }
                    context.clone()
                }
                None => match &kubeconfig.current_context {
                    Some(current) if !current.is_empty() => current.clone(),
                    _ => return Err(Error::NoCurrentContext(available())),
                },
            };
            let options = KubeConfigOptions {
                context: Some(context.clone()),
                ..KubeConfigOptions::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|source| Error::Config {
                    context: context.clone(),
                    source,
                })?;
            (config, context)
        }
        None => match kube::Config::incluster() {
            Ok(config) => (config, "in-cluster".to_owned()),
            Err(_) => return Err(Error::NotFound),
        },
    };

    // --request-timeout bounds each request (the deadline layer below), never a watch, a
    // followed log or an exec: a read timeout on the connection would cut those.
    let timeout = target.request_timeout.filter(|t| !t.is_zero());
    if let Some(timeout) = timeout {
        config.connect_timeout = Some(timeout);
    }
    // kube's own retry covers 429, 503 and 504 only and up to 15 times; ours is below.
    config.default_retry = false;
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let client_error = |source| Error::Client {
        server: server.clone(),
        source,
    };
    let builder = kube::client::ClientBuilder::try_from(config.clone()).map_err(client_error)?;
    let reach = Reach {
        server: server.clone(),
        context: context.clone(),
        timeout: target.request_timeout.filter(|t| !t.is_zero()),
    };
    let client = builder
        .with_layer(&deadline::Deadline(timeout))
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(Retry {
            retries: 0,
            creates_repeatable: target.creates_repeatable,
        }))
        .with_layer(&tower::layer::layer_fn(|inner| NameServer {
            inner,
            reach: reach.clone(),
        }))
        .build();
    Ok(Cluster {
        client,
        context,
        server,
    })
}

/// `--request-timeout`, as kubectl applies it: a deadline on each request, but not on the
/// long-lived ones (watches, followed logs, exec), which would otherwise be cut every few seconds.
mod deadline {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tower::{BoxError, Layer, Service};

    /// The layer: requests that do not answer within the duration fail (`None`: no deadline).
    #[derive(Debug, Clone, Copy)]
    pub struct Deadline(pub Option<Duration>);

    impl<S> Layer<S> for Deadline {
        type Service = WithDeadline<S>;

        fn layer(&self, inner: S) -> WithDeadline<S> {
            WithDeadline {
                inner,
                timeout: self.0,
            }
        }
    }

    /// The service [`Deadline`] makes.
    #[derive(Debug, Clone)]
    pub struct WithDeadline<S> {
        inner: S,
        timeout: Option<Duration>,
    }

    /// Whether a request stays open by design: a watch, followed logs, or an upgrade (exec).
    pub fn long_running<B>(request: &http::Request<B>) -> bool {
        let query = request.uri().query().unwrap_or("");
        query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1" || pair == "follow=true")
            || request.headers().contains_key(http::header::UPGRADE)
    }

    impl<S, B> Service<http::Request<B>> for WithDeadline<S>
    where
        S: Service<http::Request<B>>,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        type Response = S::Response;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            self.inner.poll_ready(cx).map_err(Into::into)
        }

        fn call(&mut self, request: http::Request<B>) -> Self::Future {
            let timeout = self.timeout.filter(|_| !long_running(&request));
            let answer = self.inner.call(request);
            Box::pin(async move {
                let Some(timeout) = timeout else {
                    return answer.await.map_err(Into::into);
                };
                match tokio::time::timeout(timeout, answer).await {
                    Ok(answer) => answer.map_err(Into::into),
                    Err(elapsed) => Err(Box::new(elapsed) as BoxError),
                }
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn watches_logs_and_exec_are_not_bounded() {
            let get = |uri: &str| http::Request::get(uri).body(()).unwrap_or_default();
            assert!(long_running(&get(
                "/api/v1/pods?watch=true&resourceVersion=1"
            )));
            assert!(long_running(&get(
                "/api/v1/namespaces/x/pods/p/log?follow=true"
            )));
            assert!(!long_running(&get(
                "/api/v1/pods?labelSelector=watch%3Dtrue"
            )));
            assert!(!long_running(&get("/api/v1/pods")));
            let mut exec = get("/api/v1/namespaces/x/pods/p/exec?command=sh");
            exec.headers_mut().insert(
                http::header::UPGRADE,
                http::HeaderValue::from_static("websocket"),
            );
            assert!(long_running(&exec));
        }
    }
}

/// How many times a request is sent at most, the first time included: client-go's 10. Under a
/// server failing 30 % of requests, 5 tries still lose one request in 400, which fails an install
/// of 20 requests one time in 20; 10 tries lose one in 170,000.
pub const MAX_TRIES: u32 = 10;

/// The delay before sending a request again after the answer `status`, or `None` when it is not
/// sent again. As client-go: 429 (the server did not act on it) is always retried; 500, 502,
/// 503 and 504 only for requests that may safely be sent twice (reads, PUT with its
/// resourceVersion, DELETE, server-side apply and merge patches). `Retry-After` (seconds) is
/// honoured, up to 30 s; otherwise the delay doubles from 250 ms up to 2 s, scaled by `jitter`
/// in [0, 1] into [50 %, 100 %]. `retries` is how many retries were already made.
pub fn retry_delay(
    method: &http::Method,
    content_type: Option<&str>,
    status: http::StatusCode,
    retry_after: Option<&str>,
    retries: u32,
    jitter: f64,
) -> Option<Duration> {
    if retries + 1 >= MAX_TRIES {
        return None;
    }
    let idempotent = match *method {
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS => true,
        http::Method::PUT | http::Method::DELETE => true,
        http::Method::PATCH => content_type.is_some_and(|c| {
            c.starts_with("application/apply-patch")
                || c.starts_with("application/merge-patch")
                || c.starts_with("application/strategic-merge-patch")
        }),
        _ => false,
    };
    let retryable = match status.as_u16() {
        429 => true,
        500 | 502 | 503 | 504 => idempotent,
        _ => false,
    };
    if !retryable {
        return None;
    }
    if let Some(seconds) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds.min(30)));
    }
    let base = Duration::from_millis(250).saturating_mul(1 << retries.min(3));
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(base.min(Duration::from_secs(2)).mul_f64(0.5 + 0.5 * jitter))
}

/// The retry policy of every client `connect` builds: [`retry_delay`] per answer.
#[derive(Debug, Clone, Default)]
struct Retry {
    retries: u32,
    /// Creates may be sent twice too ([`Target::creates_repeatable`]).
    creates_repeatable: bool,
}

impl<B> tower::retry::Policy<http::Request<kube::client::Body>, http::Response<B>, tower::BoxError>
    for Retry
{
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut http::Request<kube::client::Body>,
        result: &mut Result<http::Response<B>, tower::BoxError>,
    ) -> Option<Self::Future> {
        let response = result.as_ref().ok()?;
        let header = |map: &http::HeaderMap, name| {
            map.get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let jitter = f64::from(jiff::Timestamp::now().subsec_nanosecond() % 1000) / 1000.0;
        // A create whose name is fixed answers 409 the second time, which its caller reads as
        // "already there": as safe to send twice as a PUT.
        let method = if self.creates_repeatable && request.method() == http::Method::POST {
            &http::Method::PUT
        } else {
            request.method()
        };
        let delay = retry_delay(
            method,
            header(request.headers(), http::header::CONTENT_TYPE).as_deref(),
            response.status(),
            header(response.headers(), http::header::RETRY_AFTER).as_deref(),
            self.retries,
            jitter,
        )?;
        self.retries += 1;
        tracing::debug!(
            "{} {} answered {}; sending it again in {delay:?}",
            request.method(),
            request.uri().path(),
            response.status()
        );
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(
        &mut self,
        request: &http::Request<kube::client::Body>,
    ) -> Option<http::Request<kube::client::Body>> {
        // Only bodies held in memory can be sent twice; a streamed body is never retried.
        let body = request.body().try_clone()?;
        let mut copy = http::Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone())
            .version(request.version())
            .body(body)
            .ok()?;
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

/// Which server a client talks to, for messages.
#[derive(Debug, Clone)]
struct Reach {
    server: String,
    context: String,
    timeout: Option<Duration>,
}

/// A request that did not get an answer from the server: says which server, which context and
/// why, as kubectl does ("the connection to the server ... was refused").
#[derive(Debug, thiserror::Error)]
#[error("{}", self.line())]
pub struct Unreachable {
    server: String,
    context: String,
    timeout: Option<Duration>,
    #[source]
    source: tower::BoxError,
}

impl Unreachable {
    fn line(&self) -> String {
        let timed_out = chain(self.source.as_ref()).any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                || e.downcast_ref::<tokio::time::error::Elapsed>().is_some()
        });
        let cause = if timed_out {
            match self.timeout {
                Some(t) => format!("timed out after {}", crate::ui::duration(t)),
                None => "timed out".to_owned(),
            }
        } else {
            innermost(self.source.as_ref())
        };
        format!(
            "cannot reach {} (context {}): {cause}",
            self.server, self.context
        )
    }
}

/// The error chain of `error`, itself first.
fn chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

fn io_cause(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
        ErrorKind::NotFound => "no such file".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        ErrorKind::TimedOut => "timed out".to_owned(),
        _ => {
            // "Connection refused (os error 111)" reads better without the number.
            let text = error.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_lowercase(),
                None => text,
            }
        }
    }
}

/// The last cause in the chain, which is the one a person can act on ("connection refused",
/// "dns error: failed to lookup address information").
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let last = chain(error).last().unwrap_or(error);
    match last.downcast_ref::<std::io::Error>() {
        Some(io) => io_cause(io),
        None => last.to_string(),
    }
}

/// The layer that turns an unanswered request's error into [`Unreachable`].
#[derive(Clone)]
struct NameServer<S> {
    inner: S,
    reach: Reach,
}

impl<S, R> tower::Service<R> for NameServer<S>
where
    S: tower::Service<R>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Response, tower::BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let future = self.inner.call(request);
        let reach = self.reach.clone();
        Box::pin(async move {
            future.await.map_err(|e| {
                let source: tower::BoxError = e.into();
                let transport = chain(source.as_ref()).any(|e| {
                    e.is::<std::io::Error>()
                        || e.is::<hyper_util::client::legacy::Error>()
                        || e.is::<tokio::time::error::Elapsed>()
                });
                if transport {
                    Box::new(Unreachable {
                        server: reach.server,
                        context: reach.context,
                        timeout: reach.timeout,
                        source,
                    }) as tower::BoxError
                } else {
                    source
                }
            })
        })
    }
}

/// One line for a failed request, as kubectl would print it: the server's own message for an
/// API error (`namespaces "x" not found`), the server and cause for one that got no answer
/// (`cannot reach https://127.0.0.1:1 (context x): connection refused`). Never a Rust `Debug`.
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let message = status.message.trim();
            if !message.is_empty() {
                message.to_owned()
            } else if !status.reason.is_empty() {
                format!("{} ({})", status.reason, status.code)
            } else {
                format!("the server answered {}", status.code)
            }
        }
        kube::Error::Service(source) => {
            match chain(source.as_ref()).find_map(|e| e.downcast_ref::<Unreachable>()) {
                Some(unreachable) => unreachable.to_string(),
                None => innermost(source.as_ref()),
            }
        }
        kube::Error::HyperError(e) => innermost(e),
        kube::Error::SerdeError(e) => format!("cannot decode the server's answer: {e}"),
        kube::Error::ReadEvents(e) => format!("the watch stream broke: {}", io_cause(e)),
        other => other.to_string(),
    }
}

/// A request that failed: what was asked (`get`, `list`, `apply`, ...) of what (as kubectl names
/// it), and the client's error. Prints as [`request_failed`] words it.
#[derive(Debug, thiserror::Error)]
#[error("{}", request_failed(verb, what, source))]
pub struct RequestError {
    /// What was asked: `get`, `list`, `patch`, ...
    pub verb: &'static str,
    /// Of what: `nodes`, `configmap <namespace>/<name>`, ...
    pub what: String,
    /// The client's error.
    #[source]
    pub source: kube::Error,
}

/// For `map_err`: a client error of `verb` on `what` as a [`RequestError`].
pub fn failed(
    verb: &'static str,
    what: impl Into<String>,
) -> impl FnOnce(kube::Error) -> RequestError {
    let what = what.into();
    move |source| RequestError { verb, what, source }
}

/// `<verb> <what>: <cause>` for a request the server answered with an error, e.g. `get
/// namespace nosuchns: namespaces "nosuchns" not found`; when the request got no answer, only
/// the server and the cause, since the verb did not matter.
pub fn request_failed(verb: &str, what: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(_) => format!("{verb} {what}: {}", describe(error)),
        _ => describe(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, StatusCode};

    #[test]
    fn retries_follow_client_go() {
        let get = retry_delay(
            &Method::GET,
            None,
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            0,
            1.0,
        );
        assert_eq!(get, Some(Duration::from_millis(250)));
        let apply = retry_delay(
            &Method::PATCH,
            Some("application/apply-patch+yaml"),
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            2,
            1.0,
        );
        assert_eq!(apply, Some(Duration::from_secs(1)));
        // A create may have happened: only a 429 says it did not.
        assert_eq!(
            retry_delay(
                &Method::POST,
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                0,
                1.0
            ),
            None
        );
        assert_eq!(
            retry_delay(
                &Method::POST,
                None,
                StatusCode::TOO_MANY_REQUESTS,
                Some("2"),
                0,
                1.0
            ),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_delay(
                &Method::PATCH,
                Some("application/json-patch+json"),
                StatusCode::BAD_GATEWAY,
                None,
                0,
                1.0
            ),
            None
        );
        assert_eq!(
            retry_delay(&Method::GET, None, StatusCode::NOT_FOUND, None, 0, 1.0),
            None
        );
        assert_eq!(
            retry_delay(&Method::GET, None, StatusCode::CONFLICT, None, 0, 1.0),
            None
        );
        // Bounded: the tenth try is the last, and no wait exceeds 2 s.
        let throttled = |retries| {
            retry_delay(
                &Method::GET,
                None,
                StatusCode::TOO_MANY_REQUESTS,
                None,
                retries,
                1.0,
            )
        };
        assert_eq!(throttled(8), Some(Duration::from_secs(2)));
        assert_eq!(throttled(9), None);
        // Retry-After is honoured but bounded.
        assert_eq!(
            retry_delay(
                &Method::GET,
                None,
                StatusCode::TOO_MANY_REQUESTS,
                Some("3600"),
                0,
                0.0
            ),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn api_errors_read_as_the_server_wrote_them() {
        let status = kube::core::Status::failure("namespaces \"nosuchns\" not found", "NotFound")
            .with_code(404);
        let error = kube::Error::Api(Box::new(status));
        assert_eq!(describe(&error), "namespaces \"nosuchns\" not found");
        assert_eq!(
            request_failed("get", "namespace nosuchns", &error),
            "get namespace nosuchns: namespaces \"nosuchns\" not found"
        );
        assert!(!describe(&error).contains("Status {"));
    }

    #[test]
    fn unreachable_names_the_server_and_the_cause() {
        let refused = Unreachable {
            server: "https://127.0.0.1:1".into(),
            context: "x".into(),
            timeout: None,
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(
            describe(&kube::Error::Service(Box::new(refused))),
            "cannot reach https://127.0.0.1:1 (context x): connection refused"
        );
        let slow = Unreachable {
            server: "https://10.0.0.1:6443".into(),
            context: "prod".into(),
            timeout: Some(Duration::from_secs(2)),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        };
        assert_eq!(
            slow.to_string(),
            "cannot reach https://10.0.0.1:6443 (context prod): timed out after 2s"
        );
    }

    #[test]
    fn missing_kubeconfig_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "apiVersion: v1\nkind: Config\n").unwrap();
        let list = std::env::join_paths([dir.path().join("missing"), real.clone()]).unwrap();
        assert_eq!(kubeconfig_list(&list), vec![real]);
    }
}
