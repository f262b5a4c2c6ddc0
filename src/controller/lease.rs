//! Leader election on a coordination.k8s.io/v1 Lease: take it when free or expired, renew it,
//! give it back. Every write carries the resourceVersion read, so two runs cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

use super::Error;

/// How long a holder that stopped renewing keeps the Lease (client-go's default).
const DURATION: Duration = Duration::from_secs(15);
/// How long the holder keeps trying to renew before it stops working: well inside
/// [`DURATION`], so that it has stopped before anyone else may take the Lease.
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the holder renews, and retries a failed renewal; how often a run waiting for the
/// Lease looks again.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// What a write answered with 404 means: the namespace is not there.
const NO_NAMESPACE: &str = "its namespace does not exist";
/// The deadline of one request about the Lease: a stalled request must not outlive it.
const CALL_DEADLINE: Duration = Duration::from_secs(3);

/// Whether `lease` may be taken by `holder` at `now`: nobody holds it, it is ours, or its holder
/// stopped renewing more than its duration ago.
pub fn may_take(lease: &LeaseSpec, holder: &str, now: jiff::Timestamp) -> bool {
    let Some(current) = lease.holder_identity.as_deref().filter(|h| !h.is_empty()) else {
        return true;
    };
    if current == holder {
        return true;
    }
    let Some(renewed) = lease.renew_time.as_ref() else {
        return true;
    };
    let duration = i64::from(lease.lease_duration_seconds.unwrap_or(15));
    renewed.0 + jiff::SignedDuration::from_secs(duration) < now
}

/// A request's answer within [`CALL_DEADLINE`], or what went wrong, as one line.
fn bounded<T>(
    what: &str,
    answer: Result<Result<T, kube::Error>, tokio::time::error::Elapsed>,
) -> Result<T, String> {
    match answer {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {}", crate::cluster::describe(&e))),
        Err(_) => Err(format!(
            "{what}: no answer within {}s",
            CALL_DEADLINE.as_secs()
        )),
    }
}

/// Who holds a Lease and when they last renewed it.
fn holder_of(lease: &LeaseSpec) -> (String, Option<jiff::Timestamp>) {
    (
        lease.holder_identity.clone().unwrap_or_default(),
        lease.renew_time.as_ref().map(|t| t.0),
    )
}

/// A Lease this run holds or wants.
pub struct Lease {
    api: Api<LeaseObject>,
    namespace: String,
    name: String,
    holder: String,
}

impl Lease {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Lease {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_else(|| "localhost".into());
        // In containers every run is pid 1 on a host named after its pod template: a random
        // part keeps two runs apart, as client-go's identities do.
        let random = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(jiff::Timestamp::now().as_nanosecond().unsigned_abs());
            h.finish() & 0xff_ffff
        };
        Lease {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            holder: format!("{host}/{}-{random:06x}", std::process::id()),
        }
    }

    /// Who this run is, as written in `holderIdentity`.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn spec(&self, acquired: bool, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(DURATION.as_secs() as i32),
            acquire_time: if acquired {
                Some(now.clone())
            } else {
                previous.and_then(|p| p.acquire_time.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(
                previous.and_then(|p| p.lease_transitions).unwrap_or(0) + i32::from(acquired),
            ),
            ..LeaseSpec::default()
        }
    }

    /// One attempt, bounded by [`CALL_DEADLINE`] per request: `Ok(None)` when this run holds
    /// the Lease afterwards, else who does and when they last renewed.
    async fn try_take(&self) -> Result<Option<(String, Option<jiff::Timestamp>)>, String> {
        let current = tokio::time::timeout(CALL_DEADLINE, self.api.get_opt(&self.name)).await;
        let current = bounded("cannot read it", current)?;
        let write = match current {
            None => {
                let lease = LeaseObject {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(true, None)),
                };
                tokio::time::timeout(
                    CALL_DEADLINE,
                    self.api.create(&PostParams::default(), &lease),
                )
                .await
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                if !may_take(&spec, &self.holder, jiff::Timestamp::now()) {
                    return Ok(Some(holder_of(&spec)));
                }
                let ours = spec.holder_identity.as_deref() == Some(self.holder.as_str());
                lease.spec = Some(self.spec(!ours, Some(&spec)));
                tokio::time::timeout(
                    CALL_DEADLINE,
                    self.api.replace(&self.name, &PostParams::default(), &lease),
                )
                .await
            }
        };
        match write {
            Ok(Err(kube::Error::Api(e))) if e.code == 404 => Err(NO_NAMESPACE.to_owned()),
            Ok(Err(kube::Error::Api(e))) if e.code == 409 => {
                // Someone wrote it since we read it: who, is seen on the next look.
                Ok(Some(("another provisioner".into(), None)))
            }
            other => bounded("cannot write it", other).map(|_| None),
        }
    }

    /// Waits until this run holds the Lease, saying who holds it meanwhile.
    pub async fn acquire(&self) -> Result<(), Error> {
        let mut said: Option<String> = None;
        loop {
            match self.try_take().await {
                Ok(None) => return Ok(()),
                Ok(Some((holder, renewed))) => {
                    if said.as_deref() != Some(holder.as_str()) {
                        let when = renewed
                            .map(|t| {
                                let ago = jiff::Timestamp::now().duration_since(t);
                                format!(", last renewed {}s ago", ago.as_secs().max(0))
                            })
                            .unwrap_or_default();
                        tracing::info!(
                            "the Lease {} is held by {holder}{when}; standing by until it is free \
                             or expires ({}s after its last renewal)",
                            self.name,
                            DURATION.as_secs()
                        );
                        said = Some(holder);
                    }
                }
                Err(e) if e == NO_NAMESPACE => {
                    return Err(Error::NoNamespace(self.namespace.clone()));
                }
                Err(e) => tracing::warn!("cannot take the Lease {} yet: {e}", self.name),
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    /// Renews the Lease every [`RETRY_EVERY`] until it is lost to another holder, or cannot be
    /// renewed for [`RENEW_DEADLINE`]; returns which.
    pub async fn keep(&self) -> Result<(), Error> {
        let mut renewed = tokio::time::Instant::now();
        let mut failing = false;
        loop {
            tokio::time::sleep(RETRY_EVERY).await;
            match self.try_take().await {
                Ok(None) => {
                    if failing {
                        tracing::info!("renewed the Lease {} again", self.name);
                        failing = false;
                    }
                    renewed = tokio::time::Instant::now();
                }
                Ok(Some((holder, _))) => {
                    return Err(Error::LeaseLost {
                        lease: self.name.clone(),
                        holder,
                    });
                }
                Err(why) => {
                    if renewed.elapsed() + RETRY_EVERY > RENEW_DEADLINE {
                        let stop = Error::LeaseNotRenewed {
                            lease: self.name.clone(),
                            within: RENEW_DEADLINE,
                            why,
                        };
                        // Said now: giving the Lease back may take a while on a stalled server.
                        tracing::error!("{stop}");
                        return Err(stop);
                    }
                    if !failing {
                        tracing::warn!("cannot renew the Lease {} ({why}); retrying", self.name);
                        failing = true;
                    }
                }
            }
        }
    }

    /// Gives the Lease back (clears the holder) if this run still holds it.
    pub async fn release(&self) {
        let current = tokio::time::timeout(CALL_DEADLINE, self.api.get_opt(&self.name)).await;
        let Ok(Ok(Some(mut lease))) = current else {
            tracing::warn!(lease = %self.name, "could not release the Lease; it expires in {}s", DURATION.as_secs());
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.holder.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        let released = tokio::time::timeout(
            CALL_DEADLINE,
            self.api.replace(&self.name, &PostParams::default(), &lease),
        )
        .await;
        if !matches!(released, Ok(Ok(_))) {
            tracing::warn!(lease = %self.name, "could not release the Lease; it expires in {}s", DURATION.as_secs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: i64) -> LeaseSpec {
        let now = jiff::Timestamp::now();
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: Some(MicroTime(
                now - jiff::SignedDuration::from_secs(renewed_secs_ago),
            )),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_ours_or_expired() {
        let now = jiff::Timestamp::now();
        assert!(may_take(&spec(None, 0), "me/1", now));
        assert!(may_take(&spec(Some(""), 0), "me/1", now));
        assert!(may_take(&spec(Some("me/1"), 0), "me/1", now));
        assert!(!may_take(&spec(Some("other/2"), 3), "me/1", now));
        assert!(may_take(&spec(Some("other/2"), 30), "me/1", now));
    }
}
