//! Events the node agents record, as their real counterparts do (`Scheduled`,
//! `FailedScheduling`, `WaitForFirstConsumer`, `ExternalProvisioning`, `Started`, `Failed`,
//! `BackOff`, `Killing`, `FailedMount`), so `kubectl describe` and `lpp status` see them.

use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::Event;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regarding {
    /// `Pod`, `PersistentVolumeClaim`...
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

impl Regarding {
    /// An event about a pod.
    pub fn pod(namespace: &str, name: &str, uid: &str) -> Regarding {
        Regarding {
            kind: "Pod".into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }
}

/// Writes events as one component (`default-scheduler`, `persistentvolume-controller`,
/// `kubelet`) without making the caller wait.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
    host: Option<String>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl Recorder {
    /// A recorder for `component`, optionally on node `host`.
    pub fn new(client: Client, component: &'static str, host: Option<String>) -> Recorder {
        Recorder {
            client,
            component,
            host,
        }
    }

    /// Records a `Normal` or `Warning` event in the background; failures are only logged.
    pub fn record(&self, regarding: &Regarding, type_: &str, reason: &str, message: &str) {
        let namespace = if regarding.namespace.is_empty() {
            "default".to_string()
        } else {
            regarding.namespace.clone()
        };
        let now = jiff::Timestamp::now();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let suffix = format!(
            "{:x}",
            (now.as_nanosecond() as u128).wrapping_add(u128::from(seq)) & 0xffff_ffff_ffff_ffff
        );
        let at = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let api_version = match regarding.kind.as_str() {
            "StorageClass" => "storage.k8s.io/v1",
            "DaemonSet" => "apps/v1",
            _ => "v1",
        };
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{suffix}", regarding.name), "namespace": namespace},
            "involvedObject": {
                "kind": regarding.kind, "apiVersion": api_version, "name": regarding.name,
                "namespace": (!regarding.namespace.is_empty()).then_some(&regarding.namespace),
                "uid": regarding.uid,
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.component, "host": self.host},
            "firstTimestamp": at,
            "lastTimestamp": at,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.host.clone().unwrap_or_else(|| self.component.to_string()),
        });
        let Ok(event) = serde_json::from_value::<Event>(event) else {
            return;
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, "sandbox node agents: cannot record an event");
            }
        });
    }
}
