//! Leader election on a coordination.k8s.io/v1 Lease: take it when free or expired, renew it,
//! give it back. Every write carries the resourceVersion read, so two runs cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

use super::Error;

/// How long a holder that stopped renewing keeps the Lease.
const DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a run waiting for the Lease looks again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

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

/// A Lease this run holds or wants.
pub struct Lease {
    api: Api<LeaseObject>,
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
        Lease {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            holder: format!("{host}/{}", std::process::id()),
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

    /// One attempt: true when this run holds the Lease afterwards.
    async fn try_take(&self) -> Result<bool, kube::Error> {
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = LeaseObject {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(true, None)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                if !may_take(&spec, &self.holder, jiff::Timestamp::now()) {
                    return Ok(false);
                }
                let ours = spec.holder_identity.as_deref() == Some(self.holder.as_str());
                lease.spec = Some(self.spec(!ours, Some(&spec)));
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this run holds the Lease.
    pub async fn acquire(&self) -> Result<(), Error> {
        let mut said = false;
        loop {
            match self.try_take().await {
                Ok(true) => return Ok(()),
                Ok(false) if !said => {
                    tracing::info!(lease = %self.name, "another provisioner holds the Lease; standing by");
                    said = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(lease = %self.name, "cannot take the Lease yet: {e}"),
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    /// Renews the Lease until it is lost; returns why.
    pub async fn keep(&self) -> Result<(), Error> {
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match self.try_take().await {
                Ok(true) => failing_since = None,
                Ok(false) => {
                    return Err(Error::LeaseLost {
                        lease: self.name.clone(),
                        why: "someone else holds it".into(),
                    });
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() + RENEW_EVERY >= DURATION {
                        return Err(Error::LeaseLost {
                            lease: self.name.clone(),
                            why: format!("cannot renew it: {e}"),
                        });
                    }
                }
            }
        }
    }

    /// Gives the Lease back (clears the holder) if this run still holds it.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
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
            Duration::from_secs(5),
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
