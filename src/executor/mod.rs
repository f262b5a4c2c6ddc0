//! One way to run a script on a node: "run this with these host paths mounted there, and give me
//! its exit status and output". Provisioning, reclaim, gc inventories and prunes all ask the
//! [`Executor`]; none builds pods itself.
//!
//! What runs is decided by pure code ([`crate::provision::VolumeJob`],
//! [`crate::provision::ScriptJob`], turned into pods by [`crate::provision::HelperPods`]); the
//! executor only carries it out:
//!
//! - [`helper_pod`]: a short-lived helper pod per job, as upstream does, observed on one shared
//!   watch (a waiting job holds nothing but a subscription);
//! - [`agent`]: an exec into the node's agent pod (the `local-path-agent` DaemonSet), volume jobs
//!   batched per agent ([`batch`]).
//!
//! Which one runs a job is the caller's [`ExecutorKind`] (flag or config, per operation); with
//! `agent`, a job no agent can serve (none on the node, not Ready, exec refused, a path it does
//! not mount) runs in a helper pod, and the caller is told why. A helper pod an earlier run left
//! for the same volume is always waited for first, so two scripts never run at once for one
//! volume, across executors and restarts; within the agent, a per-volume lock does the same.

pub mod agent;
pub mod batch;
pub mod helper_pod;
pub mod session;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::config::{ExecutorKind, path};
use crate::provision::agent::serving;
use crate::provision::helper_pod::helper_pod_name;
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
    Refused {
        /// Helper pod name.
        pod: String,
        /// The server's message.
        why: String,
    },
    /// The script ran and failed: exit code and the tail of its output.
    #[error("{0}")]
    Failed(String),
    /// It cannot start and will not by itself (image, scheduling, a missing key).
    #[error("{0}")]
    Stuck(String),
    /// It did not finish in time.
    #[error("helper pod {pod} did not finish within {}s (cmdTimeoutSeconds)", .after.as_secs())]
    TimedOut {
        /// Helper pod name.
        pod: String,
        /// How long it was given.
        after: Duration,
    },
    /// Someone deleted it before it finished.
    #[error("helper pod {0} was deleted before it finished")]
    Gone(String),
    /// Talking to the API server failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        #[source]
        /// The client's error.
        source: kube::Error,
    },
    /// The run is stopping; the job's pod is left for the next run to adopt.
    #[error("stopped watching helper pod {0}")]
    Stopped(String),
    /// The node agent could not be reached (the exec did not start): nothing ran.
    #[error("{0}")]
    AgentUnavailable(String),
}

/// How a volume job went, and how it ran.
#[derive(Debug)]
pub struct Ran {
    /// Whether it ran in a helper pod (which [`Executor::volume_done`] then deletes).
    pub helper_pod: bool,
    /// Why a helper pod ran although the agent executor was asked for.
    pub fallback: Option<String>,
    /// The job's result.
    pub result: Result<(), JobError>,
}

/// Carries out jobs in the provisioner namespace.
pub struct Executor {
    client: kube::Client,
    namespace: String,
    helper_pods: helper_pod::Runner,
    /// Started on first use of the agent executor.
    agents: OnceLock<Arc<agent::Agents>>,
}

impl Executor {
    /// An executor whose helper pods are watched with one shared watch on `selector` (see
    /// [`helper_pod::Runner::start`]); `delete_leftovers` makes it delete finished volume
    /// helper pods no job follows (left by a run that was killed).
    pub fn start(client: kube::Client, namespace: &str, delete_leftovers: bool) -> Executor {
        Executor {
            helper_pods: helper_pod::Runner::start(client.clone(), namespace, delete_leftovers),
            client,
            namespace: namespace.to_owned(),
            agents: OnceLock::new(),
        }
    }

    fn agents(&self) -> &Arc<agent::Agents> {
        self.agents
            .get_or_init(|| Arc::new(agent::Agents::start(self.client.clone(), &self.namespace)))
    }

    /// Runs a volume's setup or teardown script on its node, as `kind` says. A helper pod left
    /// by an earlier run for the same volume, action and path is adopted (whatever `kind`); one
    /// for another path is replaced.
    pub async fn volume(
        &self,
        helpers: &HelperPods,
        job: &VolumeJob,
        timeout: Duration,
        kind: ExecutorKind,
    ) -> Ran {
        let fallback = match kind {
            ExecutorKind::HelperPod => None,
            ExecutorKind::Agent => {
                let name = helper_pod_name(helpers.template_name(), job.action, &job.pv_name);
                if self.helper_pods.present(&name) {
                    Some(format!(
                        "helper pod {name}, left by an earlier run, is finished first"
                    ))
                } else {
                    match self.on_agent(job, timeout).await {
                        Ok(result) => {
                            return Ran {
                                helper_pod: false,
                                fallback: None,
                                result,
                            };
                        }
                        Err(why) => Some(why),
                    }
                }
            }
        };
        let result = match helpers.for_volume(job) {
            Ok(pod) => self.helper_pods.run(pod, timeout, false).await.map(drop),
            Err(e) => Err(e.into()),
        };
        Ran {
            helper_pod: true,
            fallback,
            result,
        }
    }

    /// Runs `job` in the agent that serves its node, or says why no agent can.
    async fn on_agent(
        &self,
        job: &VolumeJob,
        timeout: Duration,
    ) -> Result<Result<(), JobError>, String> {
        let parent = path::split_parent(&path::clean(&job.path))
            .map(|(parent, _)| parent.to_owned())
            .ok_or_else(|| format!("volume path {} has no parent directory", job.path))?;
        let agents = self.agents();
        let known = agents.known().await;
        let node = if job.shared {
            None
        } else {
            job.node.as_deref()
        };
        let agent = serving(&known, node, &[parent.as_str()])?;
        match agents
            .run(&agent.name, &agent.node, job.clone(), timeout)
            .await
        {
            Err(JobError::AgentUnavailable(why)) => Err(why),
            result => Ok(result),
        }
    }

    /// Ends a volume job that succeeded, once its PV was made or deleted: its helper pod, if it
    /// ran in one, goes. (It stays until then so that a run killed in between adopts the
    /// finished pod instead of running the script again.)
    pub async fn volume_done(&self, helpers: &HelperPods, job: &VolumeJob, ran: &Ran) {
        if !ran.helper_pod {
            return;
        }
        let name = helper_pod_name(helpers.template_name(), job.action, &job.pv_name);
        self.helper_pods.remove(&name).await;
    }

    /// Runs a script job and returns its standard output: in the node's agent when `kind` is
    /// agent and one serves the job's node and directories, else in a helper pod.
    pub async fn script(
        &self,
        helpers: &HelperPods,
        job: &ScriptJob,
        timeout: Duration,
        kind: ExecutorKind,
    ) -> Result<String, JobError> {
        if kind == ExecutorKind::Agent {
            let agents = self.agents();
            let known = agents.known().await;
            let dirs: Vec<&str> = job.host_dirs.iter().map(|d| d.path.as_str()).collect();
            // An agent mounts host paths at themselves only.
            let same_paths = job.host_dirs.iter().all(|d| {
                d.mount_path
                    .as_deref()
                    .is_none_or(|m| path::clean(m) == path::clean(&d.path))
            });
            let agent = if same_paths {
                serving(&known, job.node.as_deref(), &dirs)
            } else {
                Err(format!(
                    "{} mounts host paths elsewhere than at themselves",
                    job.name
                ))
            };
            match agent {
                Ok(agent) => {
                    let mut argv = vec!["env".to_owned()];
                    argv.extend(job.env.iter().map(|(k, v)| format!("{k}={v}")));
                    argv.extend(job.command.iter().cloned());
                    argv.extend(job.args.iter().cloned());
                    let name = agent.name.clone();
                    match agents.script(&name, argv, timeout).await {
                        Err(JobError::AgentUnavailable(why)) => {
                            tracing::debug!("{why}; running {} in a helper pod", job.name);
                        }
                        other => return other,
                    }
                }
                Err(why) => tracing::debug!("{why}; running {} in a helper pod", job.name),
            }
        }
        let pod = helpers.for_script(job)?;
        self.helper_pods.run(pod, timeout, true).await
    }

    /// Whether the shared watch is following (false once its stream ended).
    pub fn healthy(&self) -> bool {
        self.helper_pods.healthy()
    }
}
