//! The kubelet's client-side rate limit. A real kubelet talks to the API server through a
//! client limited to `kubeAPIQPS` requests a second with bursts of `kubeAPIBurst`
//! (`pkg/kubelet/apis/config/v1beta1/defaults.go`: 50 and 100 since v1.27), a token bucket as
//! client-go's `flowcontrol.NewTokenBucketRateLimiter` makes it, which every request waits on.
//! So a node reports the status of only so many pods a second, whatever the API server could
//! take: what a burst of short-lived pods on one node costs. Each sandbox node's kubelet gets a
//! client of its own behind such a bucket.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};

/// `kubeAPIQPS`'s default.
pub const KUBE_API_QPS: f64 = 50.0;
/// `kubeAPIBurst`'s default.
pub const KUBE_API_BURST: f64 = 100.0;

/// A token bucket: `burst` tokens at most, `qps` more each second; a taker that finds none
/// reserves the next and waits for it (golang.org/x/time/rate's `Wait`, which client-go uses).
#[derive(Debug)]
pub struct Bucket {
    qps: f64,
    burst: f64,
    /// Tokens (negative: reserved ahead) as of the instant.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A full bucket.
    pub fn new(qps: f64, burst: f64) -> Bucket {
        Bucket {
            qps,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// How long the caller must wait for its token, which is taken now.
    pub fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }

    /// [`Bucket::reserve`] at `now`.
    fn reserve_at(&self, now: Instant) -> Duration {
        let Ok(mut state) = self.state.lock() else {
            return Duration::ZERO;
        };
        let (tokens, at) = *state;
        let now = now.max(at);
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * self.qps).min(self.burst);
        let left = tokens - 1.0;
        *state = (left, now);
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.qps)
        }
    }
}

/// A kube client whose every request first waits for a token of `bucket`.
#[derive(Clone)]
pub struct Throttled {
    client: kube::Client,
    bucket: Arc<Bucket>,
}

/// `client` behind a bucket of the kubelet's defaults, as a kube client.
pub fn client(client: kube::Client) -> kube::Client {
    let namespace = client.default_namespace().to_owned();
    kube::Client::new(
        Throttled {
            client,
            bucket: Arc::new(Bucket::new(KUBE_API_QPS, KUBE_API_BURST)),
        },
        namespace,
    )
}

impl tower::Service<Request<kube::client::Body>> for Throttled {
    type Response = Response<kube::client::Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let client = self.client.clone();
        let wait = self.bucket.reserve();
        Box::pin(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            client.send(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_at_once_and_the_rest_at_the_rate() {
        let bucket = Bucket::new(50.0, 100.0);
        let start = bucket.state.lock().unwrap().1;
        let waits: Vec<Duration> = (0..150).map(|_| bucket.reserve_at(start)).collect();
        assert!(waits[..100].iter().all(|w| w.is_zero()), "the burst waits");
        // The 101st waits one token's time, the 150th fifty.
        assert_eq!(waits[100], Duration::from_millis(20));
        assert_eq!(waits[149], Duration::from_secs(1));
        // A second later fifty more tokens came, all reserved already: the next waits a token.
        let later = start + Duration::from_secs(1);
        assert_eq!(bucket.reserve_at(later), Duration::from_millis(20));
    }

    #[test]
    fn an_idle_bucket_fills_up_to_its_burst_only() {
        let bucket = Bucket::new(50.0, 100.0);
        let start = bucket.state.lock().unwrap().1;
        for _ in 0..100 {
            assert!(bucket.reserve_at(start).is_zero());
        }
        let later = start + Duration::from_secs(60);
        let free = (0..200)
            .take_while(|_| bucket.reserve_at(later).is_zero())
            .count();
        assert_eq!(free, 100);
    }
}
