//! One way to run a script on a node: "run this with these host paths mounted there, and give me
//! its exit status and output". Provisioning, reclaim, gc inventories and prunes all ask the
//! [`Executor`]; none builds pods itself.
//!
//! What runs is decided by pure code ([`crate::provision::VolumeJob`],
//! [`crate::provision::ScriptJob`], turned into pods by [`crate::provision::HelperPods`]); the
//! executor only carries it out:
//!
//! - [`helper_pod`]: a short-lived helper pod per job, as upstream does, observed on one shared
//!   watch (a waiting job holds nothing but a subscription).

pub mod helper_pod;

use std::time::Duration;

use crate::provision::{HelperPods, ScriptJob, VolumeJob};

/// Why a job did not succeed. The message of each says what happened to which pod, with the
/// script's own output where there is one.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job could not be described as a pod (a bad path, no node).
    #[error("cannot build the helper pod: {0}")]
    Build(#[from] crate::provision::HelperPodError),
    /// The API server refused to create it (admission, quota, permissions), in its words.
    #[error("cannot create helper pod {pod}: {why}")]
    Refused { pod: String, why: String },
    /// The script ran and failed: exit code and the tail of its output.
    #[error("{0}")]
    Failed(String),
    /// It cannot start and will not by itself (image, scheduling, a missing key).
    #[error("{0}")]
    Stuck(String),
    /// It did not finish in time.
    #[error("helper pod {pod} did not finish within {}s (cmdTimeoutSeconds)", .after.as_secs())]
    TimedOut { pod: String, after: Duration },
    /// Someone deleted it before it finished.
    #[error("helper pod {0} was deleted before it finished")]
    Gone(String),
    /// Talking to the API server failed.
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The run is stopping; the job's pod is left for the next run to adopt.
    #[error("stopped watching helper pod {0}")]
    Stopped(String),
}

/// Carries out jobs in the provisioner namespace.
pub struct Executor {
    helper_pods: helper_pod::Runner,
}

impl Executor {
    /// An executor whose helper pods are watched with one shared watch on `selector` (see
    /// [`helper_pod::Runner::start`]); `delete_leftovers` makes it delete finished volume
    /// helper pods no job follows (left by a run that was killed).
    pub fn start(client: kube::Client, namespace: &str, delete_leftovers: bool) -> Executor {
        Executor {
            helper_pods: helper_pod::Runner::start(client, namespace, delete_leftovers),
        }
    }

    /// Runs a volume's setup or teardown script on its node. A helper pod left by an earlier
    /// run for the same volume, action and path is adopted; one for another path is replaced.
    pub async fn volume(
        &self,
        helpers: &HelperPods,
        job: &VolumeJob,
        timeout: Duration,
    ) -> Result<(), JobError> {
        let pod = helpers.for_volume(job)?;
        self.helper_pods.run(pod, timeout, false).await.map(drop)
    }

    /// Ends a volume job that succeeded, once its PV was made or deleted: its helper pod goes.
    /// (It stays until then so that a run killed in between adopts the finished pod instead of
    /// running the script again.)
    pub async fn volume_done(&self, helpers: &HelperPods, job: &VolumeJob) {
        let name = crate::provision::helper_pod::helper_pod_name(
            helpers.template_name(),
            job.action,
            &job.pv_name,
        );
        self.helper_pods.remove(&name).await;
    }

    /// Runs a script job and returns its standard output.
    pub async fn script(
        &self,
        helpers: &HelperPods,
        job: &ScriptJob,
        timeout: Duration,
    ) -> Result<String, JobError> {
        let pod = helpers.for_script(job)?;
        self.helper_pods.run(pod, timeout, true).await
    }

    /// Whether the shared watch is following (false once its stream ended).
    pub fn healthy(&self) -> bool {
        self.helper_pods.healthy()
    }
}
