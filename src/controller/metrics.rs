//! `--metrics-addr`: `/metrics` in the OpenMetrics text format, `/healthz` and `/readyz`.
//!
//! Counted with the prometheus-client crate: operations by result, their latency and the helper
//! pods' run time as histograms, and the queue (operations under way, operations waiting for a
//! `--workers` permit).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::Error;

/// How an operation or a helper pod ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write as _;
        encoder.write_str(match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByResult {
    result: Outcome,
}

/// Which script a helper pod ran.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Action {
    Setup,
    Teardown,
    Resize,
}

impl Action {
    /// `setup`, `teardown` or `resize`.
    pub fn word(self) -> &'static str {
        match self {
            Action::Setup => "setup",
            Action::Teardown => "teardown",
            Action::Resize => "resize",
        }
    }
}

impl EncodeLabelValue for Action {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write as _;
        encoder.write_str(self.word())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByActionAndResult {
    action: Action,
    result: Outcome,
}

/// Buckets from 50 ms to about 7 minutes, doubling: helper pods take from well under a second
/// (a warm node) to minutes (an image pull, a slow disk).
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// What `lpp run` counts.
pub struct Metrics {
    registry: Registry,
    provisions: Family<ByResult, Counter>,
    deletions: Family<ByResult, Counter>,
    resizes: Family<ByResult, Counter>,
    provision_seconds: Histogram,
    deletion_seconds: Histogram,
    helper_seconds: Family<ByActionAndResult, Histogram, fn() -> Histogram>,
    /// Operations under way, including those waiting on a helper pod or a retry.
    pub in_flight: Gauge,
    /// Operations waiting for a `--workers` permit.
    pub queued: Gauge,
    /// Set once the Lease is held (or leader election is off) and the watches run.
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lpp");
        let provisions = Family::<ByResult, Counter>::default();
        let deletions = Family::<ByResult, Counter>::default();
        let resizes = Family::<ByResult, Counter>::default();
        let provision_seconds = seconds_histogram();
        let deletion_seconds = seconds_histogram();
        let helper_seconds =
            Family::<ByActionAndResult, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        let in_flight = Gauge::default();
        let queued = Gauge::default();
        // Both results of each count exist from the start: a dashboard sees zeros, not gaps.
        for result in [Outcome::Success, Outcome::Failure] {
            drop(provisions.get_or_create(&ByResult { result }));
            drop(deletions.get_or_create(&ByResult { result }));
            drop(resizes.get_or_create(&ByResult { result }));
        }
        registry.register(
            "provisions",
            "Volumes provisioned, by result (a failure is one failed attempt)",
            provisions.clone(),
        );
        registry.register(
            "deletions",
            "Volumes reclaimed, by result (a failure is one failed attempt)",
            deletions.clone(),
        );
        registry.register(
            "resizes",
            "Volumes grown, by result (a failure is one failed or refused attempt)",
            resizes.clone(),
        );
        registry.register_with_unit(
            "provision_duration",
            "From picking up a claim to its PV created, for volumes provisioned",
            Unit::Seconds,
            provision_seconds.clone(),
        );
        registry.register_with_unit(
            "deletion_duration",
            "From picking up a released volume to its PV deleted, for volumes reclaimed",
            Unit::Seconds,
            deletion_seconds.clone(),
        );
        registry.register_with_unit(
            "helper_pod_duration",
            "From creating a helper pod to seeing it finish, by script and result",
            Unit::Seconds,
            helper_seconds.clone(),
        );
        registry.register(
            "operations_in_flight",
            "Operations under way, including those waiting on a helper pod or a retry",
            in_flight.clone(),
        );
        registry.register(
            "queue_depth",
            "Operations waiting for a --workers permit",
            queued.clone(),
        );
        Metrics {
            registry,
            provisions,
            deletions,
            resizes,
            provision_seconds,
            deletion_seconds,
            helper_seconds,
            in_flight,
            queued,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// One provision attempt ended; `took` is set for a volume provisioned.
    pub fn provision(&self, result: Outcome, took: Option<Duration>) {
        self.provisions.get_or_create(&ByResult { result }).inc();
        if let Some(took) = took {
            self.provision_seconds.observe(took.as_secs_f64());
        }
    }

    /// One reclaim attempt ended; `took` is set for a volume reclaimed.
    pub fn deletion(&self, result: Outcome, took: Option<Duration>) {
        self.deletions.get_or_create(&ByResult { result }).inc();
        if let Some(took) = took {
            self.deletion_seconds.observe(took.as_secs_f64());
        }
    }

    /// One resize attempt ended.
    pub fn resize(&self, result: Outcome) {
        self.resizes.get_or_create(&ByResult { result }).inc();
    }

    /// A helper pod ran `action` for `took`.
    pub fn helper(&self, action: Action, result: Outcome, took: Duration) {
        self.helper_seconds
            .get_or_create(&ByActionAndResult { action, result })
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn answer(metrics: &Metrics, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (StatusCode::OK, metrics.render()),
        "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
        "/readyz" if metrics.ready.load(Ordering::Relaxed) => (StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the Lease\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let kind = if path == "/metrics" {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(kind),
    );
    response
}

/// Binds `addr` (so a bad address fails before any work) and serves in the background.
pub async fn serve(addr: &str, metrics: Arc<Metrics>) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Options(format!("--metrics-addr {addr}: cannot listen there: {e}")))?;
    tracing::info!("serving /metrics, /healthz and /readyz on {addr}");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let response = answer(&metrics, req.uri().path());
                        async move { Ok::<_, Infallible>(response) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_by_result_with_histograms_and_the_queue() {
        let metrics = Metrics::default();
        metrics.provision(Outcome::Success, Some(Duration::from_millis(300)));
        metrics.provision(Outcome::Success, Some(Duration::from_secs(3)));
        metrics.deletion(Outcome::Failure, None);
        metrics.resize(Outcome::Success);
        metrics.helper(Action::Teardown, Outcome::Failure, Duration::from_secs(1));
        metrics.queued.set(4);
        let text = metrics.render();
        for line in [
            "lpp_provisions_total{result=\"success\"} 2",
            "lpp_provisions_total{result=\"failure\"} 0",
            "lpp_deletions_total{result=\"failure\"} 1",
            "lpp_resizes_total{result=\"success\"} 1",
            "lpp_resizes_total{result=\"failure\"} 0",
            "lpp_provision_duration_seconds_count 2",
            "lpp_provision_duration_seconds_bucket{le=\"0.4\"} 1",
            "lpp_provision_duration_seconds_bucket{le=\"3.2\"} 2",
            "lpp_deletion_duration_seconds_count 0",
            "lpp_helper_pod_duration_seconds_count{action=\"teardown\",result=\"failure\"} 1",
            "lpp_queue_depth 4",
            "lpp_operations_in_flight 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        assert_eq!(
            answer(&metrics, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.ready.store(true, Ordering::Relaxed);
        assert_eq!(answer(&metrics, "/readyz").status(), StatusCode::OK);
        assert_eq!(answer(&metrics, "/nope").status(), StatusCode::NOT_FOUND);
    }
}
