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
    /// `--request-timeout`; `None` keeps the client's defaults.
    pub request_timeout: Option<Duration>,
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the kubeconfig {}: {source}; check the path given to --kubeconfig", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },

    #[error(
        "cannot read the kubeconfig: {0}; check the files listed in KUBECONFIG and ~/.kube/config"
    )]
    Read(#[source] KubeconfigError),

    #[error(
        "no kubeconfig found (no --kubeconfig, KUBECONFIG or ~/.kube/config) and not running in a \
         cluster; point --kubeconfig at one, or try `lpp demo --sandbox`"
    )]
    NotFound,

    #[error("context `{context}` is not in the kubeconfig; contexts there: {available}")]
    UnknownContext { context: String, available: String },

    #[error("the kubeconfig has no current context; pass --context (contexts there: {0})")]
    NoCurrentContext(String),

    #[error("cannot use the kubeconfig's context `{context}`: {source}")]
    Config {
        context: String,
        #[source]
        source: KubeconfigError,
    },

    #[error("cannot build a client for {server}: {source}")]
    Client {
        server: String,
        #[source]
        source: kube::Error,
    },
}

/// Connects as kubectl would: reads the kubeconfig, picks the context, builds the client.
/// Nothing is sent to the server yet.
pub async fn connect(target: &Target) -> Result<Cluster, Error> {
    let kubeconfig = match &target.kubeconfig {
        Some(path) => Some(
            Kubeconfig::read_from(path).map_err(|source| Error::ReadFile {
                path: path.clone(),
                source,
            })?,
        ),
        None => match Kubeconfig::from_env().map_err(Error::Read)? {
            Some(merged) => Some(merged),
            None => match dirs::home_dir().map(|home| home.join(".kube").join("config")) {
                Some(path) if path.exists() => Some(Kubeconfig::read_from(&path).map_err(
                    |source| Error::ReadFile {
                        path: path.clone(),
                        source,
                    },
                )?),
                _ => None,
            },
        },
    };

    let (mut config, context) = match kubeconfig {
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

    if let Some(timeout) = target.request_timeout {
        config.connect_timeout = Some(timeout);
    }
    let server = config.cluster_url.to_string();
    let builder =
        kube::client::ClientBuilder::try_from(config).map_err(|source| Error::Client {
            server: server.clone(),
            source,
        })?;
    let client = match target.request_timeout {
        Some(timeout) => builder.with_layer(&deadline::Deadline(timeout)).build(),
        None => builder.build(),
    };
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

    /// The layer: requests that do not answer within the duration fail.
    #[derive(Debug, Clone, Copy)]
    pub struct Deadline(pub Duration);

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
        timeout: Duration,
    }

    /// A request answered too late.
    #[derive(Debug, thiserror::Error)]
    #[error("no answer within {}s (--request-timeout)", .0.as_secs_f64())]
    pub struct TimedOut(Duration);

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
            let bounded = !long_running(&request);
            let timeout = self.timeout;
            let answer = self.inner.call(request);
            Box::pin(async move {
                if !bounded {
                    return answer.await.map_err(Into::into);
                }
                match tokio::time::timeout(timeout, answer).await {
                    Ok(answer) => answer.map_err(Into::into),
                    Err(_) => Err(Box::new(TimedOut(timeout)) as BoxError),
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
