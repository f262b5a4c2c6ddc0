//! `--metrics-addr`: `/metrics` in the Prometheus text format, `/healthz` and `/readyz`.
//!
//! A handful of counters and gauges, written by hand in the text exposition format: the
//! prometheus-client crate would add a dependency for what is a few lines here.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::Error;

/// What `lpp run` counts.
#[derive(Debug, Default)]
pub struct Metrics {
    pub provisioned: AtomicU64,
    pub provision_failures: AtomicU64,
    pub reclaimed: AtomicU64,
    pub reclaim_failures: AtomicU64,
    /// Operations under way (including those waiting on a helper pod).
    pub in_flight: AtomicI64,
    /// Sum of the seconds successful provisions took, in milliseconds.
    pub provision_millis: AtomicU64,
    /// Set once the Lease is held (or leader election is off) and the watches run.
    pub ready: AtomicBool,
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP lpp_provisions_total Volumes provisioned, by result."
        );
        let _ = writeln!(out, "# TYPE lpp_provisions_total counter");
        let _ = writeln!(
            out,
            "lpp_provisions_total{{result=\"success\"}} {}",
            load(&self.provisioned)
        );
        let _ = writeln!(
            out,
            "lpp_provisions_total{{result=\"failure\"}} {}",
            load(&self.provision_failures)
        );
        let _ = writeln!(
            out,
            "# HELP lpp_deletions_total Volumes reclaimed, by result."
        );
        let _ = writeln!(out, "# TYPE lpp_deletions_total counter");
        let _ = writeln!(
            out,
            "lpp_deletions_total{{result=\"success\"}} {}",
            load(&self.reclaimed)
        );
        let _ = writeln!(
            out,
            "lpp_deletions_total{{result=\"failure\"}} {}",
            load(&self.reclaim_failures)
        );
        let _ = writeln!(
            out,
            "# HELP lpp_provision_seconds_sum Seconds successful provisions took, summed."
        );
        let _ = writeln!(out, "# TYPE lpp_provision_seconds_sum counter");
        let _ = writeln!(
            out,
            "lpp_provision_seconds_sum {:.3}",
            load(&self.provision_millis) as f64 / 1000.0
        );
        let _ = writeln!(out, "# HELP lpp_operations_in_flight Operations under way.");
        let _ = writeln!(out, "# TYPE lpp_operations_in_flight gauge");
        let _ = writeln!(
            out,
            "lpp_operations_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
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
    fn the_exposition_counts_by_result() {
        let metrics = Metrics::default();
        metrics.provisioned.fetch_add(2, Ordering::Relaxed);
        metrics.reclaim_failures.fetch_add(1, Ordering::Relaxed);
        let text = metrics.render();
        assert!(
            text.contains("lpp_provisions_total{result=\"success\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("lpp_deletions_total{result=\"failure\"} 1"),
            "{text}"
        );
        assert_eq!(
            answer(&metrics, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.ready.store(true, Ordering::Relaxed);
        assert_eq!(answer(&metrics, "/readyz").status(), StatusCode::OK);
        assert_eq!(answer(&metrics, "/nope").status(), StatusCode::NOT_FOUND);
    }
}
