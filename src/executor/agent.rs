//! The agent executor: volume scripts run by exec (WebSocket, as kube-rs does it) into the node's
//! agent pod, batched per pod: jobs for one agent that arrive within [`BATCH_WINDOW`] go in one
//! exec ([`super::batch`]), each with its own result, so a burst of claims costs a handful of
//! execs instead of a pod each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, oneshot, watch};

use super::JobError;
use super::batch::{self, Outcome};
use crate::provision::VolumeJob;
use crate::provision::agent::{AGENT_CONTAINER, AGENT_SELECTOR, AgentPod};

/// How long a first job waits for others to the same agent before its exec starts.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// At most this many jobs in one exec (its arguments travel in the request's URL).
const MAX_BATCH: usize = 48;
/// At most this many execs into one agent at a time; jobs arriving meanwhile wait and go in the
/// next, larger batch. Fewer, larger batches cost a node less: every exec starts a shell and
/// its own helpers, every job only its script's.
const EXECS_PER_AGENT: usize = 2;
/// An exec still running after this long (a slow or hung script) gives its slot up, so that
/// it cannot hold back the node's next jobs until its `cmdTimeoutSeconds`.
const SLOW_EXEC: Duration = Duration::from_secs(5);
/// How long the agents' first list may take before a job falls back to a helper pod.
const LISTED: Duration = Duration::from_secs(10);

struct Pending {
    job: VolumeJob,
    timeout: Duration,
    done: oneshot::Sender<Result<(), JobError>>,
}

/// The agent pods of a namespace, watched, and the batches on their way to them.
pub struct Agents {
    pods: Api<Pod>,
    store: Store<Pod>,
    listed: watch::Receiver<bool>,
    /// Jobs waiting per agent pod; an entry exists while a flusher serves that pod.
    batches: Arc<Mutex<HashMap<String, Vec<Pending>>>>,
    execs: Mutex<HashMap<String, Arc<Semaphore>>>,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for Agents {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl Agents {
    /// Starts watching the agent pods of `namespace`.
    pub fn start(client: kube::Client, namespace: &str) -> Agents {
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let (store, writer) = reflector::store();
        let (tell, listed) = watch::channel(false);
        let stream = watcher::watcher(
            pods.clone(),
            watcher::Config::default().labels(AGENT_SELECTOR),
        )
        .default_backoff()
        .reflect(writer);
        let watch = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        let _ = tell.send(true);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!("the node agent watch failed (retrying): {e}"),
                }
            }
        });
        Agents {
            pods,
            store,
            listed,
            batches: Arc::default(),
            execs: Mutex::default(),
            watch,
        }
    }

    /// The agent pods as last seen (after the first list, or [`LISTED`]).
    pub async fn known(&self) -> Vec<AgentPod> {
        let mut listed = self.listed.clone();
        let _ = tokio::time::timeout(LISTED, listed.wait_for(|l| *l)).await;
        self.store
            .state()
            .iter()
            .filter_map(|p| AgentPod::of(p))
            .collect()
    }

    /// Runs `job` in agent pod `pod`, in a batch with the jobs for it that arrive meanwhile.
    pub async fn run(
        self: &Arc<Self>,
        pod: &str,
        node: &str,
        job: VolumeJob,
        timeout: Duration,
    ) -> Result<(), JobError> {
        let (done, result) = oneshot::channel();
        let first = {
            let Ok(mut batches) = self.batches.lock() else {
                return Err(JobError::Failed("the agent batches are poisoned".into()));
            };
            let queue = batches.entry(pod.to_owned()).or_default();
            queue.push(Pending { job, timeout, done });
            queue.len() == 1
        };
        if first {
            let agents = Arc::clone(self);
            let (pod, node) = (pod.to_owned(), node.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(BATCH_WINDOW).await;
                agents.flush(&pod, &node).await;
            });
        }
        result
            .await
            .unwrap_or_else(|_| Err(JobError::Failed("the agent batch was dropped".into())))
    }

    /// Sends what waits for `pod`, in execs of at most [`MAX_BATCH`] jobs: a batch is taken only
    /// once an exec slot is free, so the jobs that arrive while the slots are busy go together.
    async fn flush(self: &Arc<Self>, pod: &str, node: &str) {
        let semaphore = {
            let Ok(mut execs) = self.execs.lock() else {
                return;
            };
            Arc::clone(
                execs
                    .entry(pod.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(EXECS_PER_AGENT))),
            )
        };
        loop {
            let Ok(permit) = Arc::clone(&semaphore).acquire_owned().await else {
                return;
            };
            let batch: Vec<Pending> = {
                let Ok(mut batches) = self.batches.lock() else {
                    return;
                };
                let Some(queue) = batches.get_mut(pod) else {
                    return;
                };
                let take = queue.len().min(MAX_BATCH);
                let batch: Vec<Pending> = queue.drain(..take).collect();
                if queue.is_empty() {
                    // The next job to arrive starts a new flusher.
                    batches.remove(pod);
                }
                batch
            };
            if batch.is_empty() {
                return;
            }
            let agents = Arc::clone(self);
            let (pod, node) = (pod.to_owned(), node.to_owned());
            tokio::spawn(async move {
                let exec = agents.exec(&pod, &node, batch);
                tokio::pin!(exec);
                tokio::select! {
                    () = &mut exec => return,
                    () = tokio::time::sleep(SLOW_EXEC) => {}
                }
                drop(permit);
                exec.await;
            });
        }
    }

    /// One exec of `batch` into `pod`; each job's sender gets its own result.
    async fn exec(&self, pod: &str, node: &str, batch: Vec<Pending>) {
        let timeout = batch
            .iter()
            .map(|p| p.timeout)
            .max()
            .unwrap_or(Duration::from_secs(120));
        let jobs: Vec<&VolumeJob> = batch.iter().map(|p| &p.job).collect();
        let argv = batch::command(&jobs, timeout);
        let started = std::time::Instant::now();
        let size = jobs.len();
        let answer = tokio::time::timeout(timeout + Duration::from_secs(30), self.call(pod, argv))
            .await
            .unwrap_or_else(|_| {
                Err(Unanswered::Failed(format!(
                    "exec into node agent {pod} gave no answer within {}s",
                    (timeout + Duration::from_secs(30)).as_secs()
                )))
            });
        tracing::debug!(
            "node agent {pod}: a batch of {size} jobs took {:.3}s",
            started.elapsed().as_secs_f64()
        );
        let outcomes = answer.and_then(|out| {
            batch::parse(&out, batch.len()).map_err(|e| {
                Unanswered::Failed(format!("the node agent {pod}'s answer is not valid: {e}"))
            })
        });
        match outcomes {
            Ok(outcomes) => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    let what = format!(
                        "{} of {} on {node} (node agent {pod})",
                        script_word(&pending.job),
                        pending.job.path
                    );
                    let result = match outcome {
                        Outcome::Succeeded => Ok(()),
                        Outcome::Failed { exit_code, output } => Err(JobError::Failed(
                            crate::provision::events::failure_summary(&what, exit_code, &output),
                        )),
                        Outcome::TimedOut { output } => Err(JobError::Failed(format!(
                            "{what} did not finish within {}s (cmdTimeoutSeconds){}",
                            pending.timeout.as_secs(),
                            last_line(&output)
                        ))),
                    };
                    let _ = pending.done.send(result);
                }
            }
            Err(Unanswered::NotStarted(why)) => {
                for pending in batch {
                    let _ = pending
                        .done
                        .send(Err(JobError::AgentUnavailable(why.clone())));
                }
            }
            Err(Unanswered::Failed(why)) => {
                for pending in batch {
                    let _ = pending.done.send(Err(JobError::Failed(why.clone())));
                }
            }
        }
    }

    /// Runs one script job's `argv` in `pod`, returning its standard output.
    pub async fn script(
        &self,
        pod: &str,
        argv: Vec<String>,
        timeout: Duration,
    ) -> Result<String, JobError> {
        match tokio::time::timeout(timeout, self.call(pod, argv)).await {
            Err(_) => Err(JobError::Failed(format!(
                "the job in node agent {pod} did not finish within {}s",
                timeout.as_secs()
            ))),
            Ok(Err(Unanswered::NotStarted(why))) => Err(JobError::AgentUnavailable(why)),
            Ok(Err(Unanswered::Failed(why))) => Err(JobError::Failed(why)),
            Ok(Ok(out)) => Ok(out),
        }
    }

    /// Execs `argv` in the agent container of `pod`; its standard output, or why not.
    async fn call(&self, pod: &str, argv: Vec<String>) -> Result<String, Unanswered> {
        let params = AttachParams::default()
            .container(AGENT_CONTAINER)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut process = self.pods.exec(pod, argv, &params).await.map_err(|e| {
            Unanswered::NotStarted(format!("cannot exec into node agent {pod}: {e}"))
        })?;
        let status = process.take_status();
        let mut stdout = process.stdout();
        let mut stderr = process.stderr();
        let read_out = async {
            let mut text = String::new();
            if let Some(out) = stdout.as_mut() {
                out.read_to_string(&mut text).await.map_err(|e| {
                    Unanswered::Failed(format!("reading node agent {pod}'s answer: {e}"))
                })?;
            }
            Ok::<_, Unanswered>(text)
        };
        let read_err = async {
            let mut text = String::new();
            if let Some(err) = stderr.as_mut() {
                let _ = err.read_to_string(&mut text).await;
            }
            text
        };
        let (out, err) = tokio::join!(read_out, read_err);
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let _ = process.join().await;
        match status {
            Some(s) if s.status.as_deref() != Some("Success") => Err(Unanswered::Failed(format!(
                "the command in node agent {pod} failed: {}{}",
                s.message.unwrap_or_default(),
                last_line(&err)
            ))),
            _ => out,
        }
    }
}

/// Why an exec gave no answer.
enum Unanswered {
    /// It did not start: nothing ran, another executor may.
    NotStarted(String),
    /// It started and then failed.
    Failed(String),
}

fn script_word(job: &VolumeJob) -> &'static str {
    match job.action {
        crate::provision::Action::Create => "setup",
        crate::provision::Action::Delete => "teardown",
        crate::provision::Action::Resize => "resize",
    }
}

fn last_line(output: &str) -> String {
    output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}
