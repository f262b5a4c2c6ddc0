//! Sessions: a place on a node where several commands run one after another (or side by side)
//! with their standard streams attached, so that data can flow through lpp between nodes (a tar
//! stream out of one node's session into another's). Jobs ([`super::Executor::script`]) answer
//! with their whole output once they finish; a session streams.
//!
//! A session is the node's agent pod when one serves the node and the directories (nothing to
//! make), else a helper pod from the ConfigMap's template that idles (`sleep`) with the
//! directories mounted, under a unique name, and is deleted by [`Session::finish`]. Such a pod
//! lives only while lpp keeps it alive: lpp touches a file in it every [`KEEPALIVE`], and it
//! exits by itself [`ABANDONED_AFTER`] after the last touch, so a session whose lpp was killed
//! ends within minutes and never holds its mounts for long. The finished pods such runs leave
//! are deleted by the next session made in that namespace.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::ResourceExt;
use kube::api::{Api, AttachParams, AttachedProcess, DeleteParams, ListParams, PostParams};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::{Executor, JobError};
use crate::config::{ExecutorKind, path};
use crate::provision::agent::{AGENT_CONTAINER, serving};
use crate::provision::helper_pod::{
    ACTION_LABEL, HelperOutcome, HelperPods, HostDir, MANAGED_BY, MANAGED_BY_LABEL, ScriptJob,
    helper_outcome,
};

/// The [`ACTION_LABEL`] of session helper pods.
pub const SESSION_ACTION: &str = "session";
/// How often lpp tells a session helper pod it is still wanted.
pub const KEEPALIVE: Duration = Duration::from_secs(20);
/// How long after the last keepalive a session helper pod ends by itself.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(120);
/// The file whose modification time is the last keepalive.
const ALIVE_FILE: &str = "/tmp/lpp-session-alive";
/// How many bytes of a command's standard error are kept for its error message.
const STDERR_TAIL: usize = 4096;
/// The buffer between the WebSocket and the caller, each way.
const STREAM_BUFFER: usize = 256 * 1024;

/// What a session helper pod runs: nothing, until lpp stops touching [`ALIVE_FILE`] or deletes
/// it. `date -r FILE +%s` (a file's modification time) is in busybox and GNU date.
pub fn idle_script() -> String {
    format!(
        "trap 'exit 0' TERM INT; touch {ALIVE_FILE}; \
         while [ $(( $(date +%s) - $(date -r {ALIVE_FILE} +%s) )) -lt {} ]; do sleep 5 & wait $!; done",
        ABANDONED_AFTER.as_secs()
    )
}

/// A place on one node to run commands with attached streams.
pub struct Session {
    pods: Api<Pod>,
    pod: String,
    container: String,
    node: String,
    /// Whether the pod is a helper pod this session made (and deletes).
    owned: bool,
    keepalive: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pod", &self.pod)
            .field("node", &self.node)
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// Opens a session on `node` with `host_dirs` mounted (each at its own path when it runs in
    /// the node agent). With `kind` agent, the node's agent serves it when it is Ready, mounts
    /// every directory and answers an exec; otherwise (and with `helperPod`) a helper pod from
    /// `helpers`' template idles there until [`Session::finish`]. `timeout` bounds the wait for
    /// that pod to run.
    pub async fn session(
        &self,
        helpers: &HelperPods,
        node: &str,
        host_dirs: &[HostDir],
        kind: ExecutorKind,
        timeout: Duration,
    ) -> Result<Session, JobError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        if kind == ExecutorKind::Agent {
            match self.agent_session(&pods, node, host_dirs).await {
                Ok(session) => {
                    tracing::debug!("session on {node}: node agent pod {}", session.pod);
                    return Ok(session);
                }
                Err(why) => tracing::debug!("{why}; the session on {node} uses a helper pod"),
            }
        }
        delete_finished_sessions(&pods).await;
        let job = ScriptJob {
            name: format!("lpp-session-{node}-{}", crate::gc::scan::suffix()),
            action: SESSION_ACTION.into(),
            node: Some(node.to_owned()),
            host_dirs: host_dirs.to_vec(),
            command: vec!["/bin/sh".into(), "-c".into(), idle_script()],
            args: Vec::new(),
            env: Vec::new(),
        };
        let pod = helpers.for_script(&job)?;
        let name = pod.name_any();
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| JobError::Refused {
                pod: name.clone(),
                why: crate::cluster::describe(&e),
            })?;
        let mut session = Session {
            pods: pods.clone(),
            pod: name.clone(),
            container,
            node: node.to_owned(),
            owned: true,
            keepalive: None,
        };
        if let Err(e) = wait_running(&pods, &name, timeout).await {
            session.finish().await;
            return Err(e);
        }
        tracing::debug!("session on {node}: helper pod {name}");
        session.keepalive = Some(tokio::spawn(keep_alive(
            pods,
            name,
            session.container.clone(),
        )));
        Ok(session)
    }

    async fn agent_session(
        &self,
        pods: &Api<Pod>,
        node: &str,
        host_dirs: &[HostDir],
    ) -> Result<Session, String> {
        if let Some(elsewhere) = host_dirs.iter().find(|d| {
            d.mount_path
                .as_deref()
                .is_some_and(|m| path::clean(m) != path::clean(&d.path))
        }) {
            return Err(format!(
                "{} would be mounted elsewhere than at itself",
                elsewhere.path
            ));
        }
        let known = self.agents().known().await;
        let dirs: Vec<&str> = host_dirs.iter().map(|d| d.path.as_str()).collect();
        let agent = serving(&known, Some(node), &dirs)?;
        let session = Session {
            pods: pods.clone(),
            pod: agent.name.clone(),
            container: AGENT_CONTAINER.to_owned(),
            node: node.to_owned(),
            owned: false,
            keepalive: None,
        };
        // An exec that cannot start here would fail every command of the session: try one.
        session
            .run(vec!["true".into()], Duration::from_secs(30))
            .await
            .map_err(|e| format!("node agent {} does not answer: {e}", agent.name))?;
        Ok(session)
    }
}

impl Session {
    /// The node it runs on.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The pod commands run in (the node agent's, or the session's helper pod).
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// Starts `argv` in the session with standard input (when `stdin`) and output attached;
    /// standard error is kept (its tail) for the error message of [`Process::wait`].
    pub async fn exec(&self, argv: Vec<String>, stdin: bool) -> Result<Process, JobError> {
        let what = argv.first().cloned().unwrap_or_default();
        let params = AttachParams::default()
            .container(self.container.clone())
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .max_stdin_buf_size(STREAM_BUFFER)
            .max_stdout_buf_size(STREAM_BUFFER)
            .max_stderr_buf_size(STREAM_BUFFER);
        let mut process = self
            .pods
            .exec(&self.pod, argv, &params)
            .await
            .map_err(|e| {
                JobError::AgentUnavailable(format!(
                    "cannot exec into pod {} on node {}: {}",
                    self.pod,
                    self.node,
                    crate::cluster::describe(&e)
                ))
            })?;
        let status = process.take_status();
        let stderr = process.stderr().map(|mut err| {
            tokio::spawn(async move {
                let mut tail: Vec<u8> = Vec::new();
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > STDERR_TAIL {
                        tail.drain(..tail.len() - STDERR_TAIL);
                    }
                }
                String::from_utf8_lossy(&tail).into_owned()
            })
        });
        Ok(Process {
            stdin: process.stdin(),
            stdout: process.stdout(),
            status: status.map(|s| Box::pin(s) as StatusFuture),
            stderr,
            inner: Some(process),
            what: format!("{what} in pod {} on node {}", self.pod, self.node),
        })
    }

    /// Runs `argv` with no input and returns its standard output, failing when it exits
    /// non-zero (with the tail of its standard error) or takes longer than `timeout`.
    pub async fn run(&self, argv: Vec<String>, timeout: Duration) -> Result<String, JobError> {
        let what = argv.first().cloned().unwrap_or_default();
        let run = async {
            let mut process = self.exec(argv, false).await?;
            let mut text = String::new();
            if let Some(mut out) = process.stdout.take() {
                out.read_to_string(&mut text).await.map_err(|e| {
                    JobError::Failed(format!("reading the output of {}: {e}", process.what))
                })?;
            }
            process.wait().await?;
            Ok(text)
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| {
                Err(JobError::Failed(format!(
                    "{what} in pod {} on node {} did not finish within {}s",
                    self.pod,
                    self.node,
                    timeout.as_secs()
                )))
            })
    }

    /// Ends the session: its helper pod, if it made one, is deleted (an agent pod stays).
    pub async fn finish(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        if let Some(keepalive) = self.keepalive.take() {
            keepalive.abort();
        }
        if self.owned {
            self.owned = false;
            delete_pod(&self.pods, &self.pod).await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(keepalive) = self.keepalive.take() {
            keepalive.abort();
        }
        // Not finished (an error on the way): delete the pod in the background where a runtime
        // still runs; otherwise it ends by itself once the keepalives stop.
        if self.owned
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (pods, pod) = (self.pods.clone(), self.pod.clone());
            runtime.spawn(async move { delete_pod(&pods, &pod).await });
        }
    }
}

type StatusFuture = std::pin::Pin<Box<dyn Future<Output = Option<Status>> + Send>>;

/// A command running in a session.
pub struct Process {
    /// Its standard input (when asked for); drop or shut it down to send end-of-file.
    pub stdin: Option<tokio::io::WriteHalf<tokio::io::SimplexStream>>,
    /// Its standard output.
    pub stdout: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>,
    status: Option<StatusFuture>,
    stderr: Option<tokio::task::JoinHandle<String>>,
    inner: Option<AttachedProcess>,
    what: String,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl Process {
    /// What runs where, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Waits for it to end: `Ok` when it exited 0, else its exit code and the tail of its
    /// standard error. Its standard output must have been read to the end (or dropped).
    pub async fn wait(mut self) -> Result<(), JobError> {
        drop(self.stdin.take());
        drop(self.stdout.take());
        let status = match self.status.take() {
            Some(status) => status.await,
            None => None,
        };
        let stderr = match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        if let Some(process) = self.inner.take() {
            let _ = process.join().await;
        }
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
            Some(s) => {
                let code = exit_code(&s).map_or_else(
                    || s.message.clone().unwrap_or_else(|| "failed".into()),
                    |c| format!("exit code {c}"),
                );
                Err(JobError::Failed(format!(
                    "{} failed ({code}){}",
                    self.what,
                    last_lines(&stderr)
                )))
            }
            None => Err(JobError::Failed(format!(
                "{} ended without an exit status (the connection was cut){}",
                self.what,
                last_lines(&stderr)
            ))),
        }
    }
}

/// Copies everything from `from` into `to`, calling `moved` with each chunk's size, and fails
/// when nothing moves for `stall` (a stuck stream never holds lpp forever). Returns the bytes.
pub async fn pump<R, W>(
    mut from: R,
    mut to: W,
    stall: Duration,
    mut moved: impl FnMut(u64),
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = tokio::time::timeout(stall, from.read(&mut buf))
            .await
            .map_err(|_| stalled(stall))??;
        if n == 0 {
            break;
        }
        tokio::time::timeout(stall, to.write_all(&buf[..n]))
            .await
            .map_err(|_| stalled(stall))??;
        total += n as u64;
        moved(n as u64);
    }
    tokio::time::timeout(stall, to.shutdown())
        .await
        .map_err(|_| stalled(stall))??;
    Ok(total)
}

fn stalled(after: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no data moved for {}s", after.as_secs()),
    )
}

/// The exit code a failed exec's Status carries (`details.causes[reason=ExitCode]`).
pub fn exit_code(status: &Status) -> Option<i32> {
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_deref()?
        .trim()
        .parse()
        .ok()
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join("; "))
    }
}

/// Waits until the session pod's container runs; a pod that fails or cannot start is an error
/// with its cause, and so is one that does not run within `timeout`.
async fn wait_running(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<(), JobError> {
    use kube::runtime::wait::await_condition;
    let ready = |pod: Option<&Pod>| match pod {
        None => true,
        Some(p) => running(p) || !matches!(helper_outcome(p), HelperOutcome::Running),
    };
    let seen = tokio::time::timeout(timeout, await_condition(pods.clone(), name, ready))
        .await
        .map_err(|_| JobError::TimedOut {
            pod: name.to_owned(),
            after: timeout,
        })?
        .map_err(|e| JobError::Failed(format!("watching pod {name}: {e}")))?;
    match seen {
        None => Err(JobError::Gone(name.to_owned())),
        Some(p) if running(&p) => Ok(()),
        Some(p) => match helper_outcome(&p) {
            HelperOutcome::Failed(why) | HelperOutcome::Stuck(why) => Err(JobError::Stuck(why)),
            _ => Err(JobError::Failed(format!("pod {name} ended before use"))),
        },
    }
}

fn running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

/// Tells the session pod every [`KEEPALIVE`] that lpp still wants it.
async fn keep_alive(pods: Api<Pod>, pod: String, container: String) {
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    loop {
        tokio::time::sleep(KEEPALIVE).await;
        let touch = async {
            if let Ok(mut process) = pods.exec(&pod, ["touch", ALIVE_FILE], &params).await {
                let status = process.take_status();
                if let Some(status) = status {
                    let _ = status.await;
                }
                let _ = process.join().await;
            }
        };
        if tokio::time::timeout(KEEPALIVE, touch).await.is_err() {
            tracing::debug!("keepalive of session pod {pod} took too long");
        }
    }
}

async fn delete_pod(pods: &Api<Pod>, name: &str) {
    for attempt in 1..=3 {
        match pods.delete(name, &DeleteParams::background()).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) if attempt == 3 => {
                tracing::warn!("cannot delete session pod {name}: {e}; it ends by itself");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300 * attempt)).await,
        }
    }
}

/// Deletes session pods that have ended (left by runs that were killed): they hold nothing,
/// but would pile up.
async fn delete_finished_sessions(pods: &Api<Pod>) {
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{ACTION_LABEL}={SESSION_ACTION}");
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else {
        return;
    };
    for pod in list.items {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed"))
            && pod.metadata.deletion_timestamp.is_none()
        {
            delete_pod(pods, &pod.name_any()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    #[test]
    fn the_exit_code_is_read_from_the_status() {
        let status = Status {
            status: Some("Failure".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("2".into()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(&status), Some(2));
        assert_eq!(exit_code(&Status::default()), None);
    }

    #[test]
    fn the_idle_script_ends_once_no_keepalive_comes() {
        let script = idle_script();
        assert!(script.contains(ALIVE_FILE));
        assert!(script.contains(&format!("-lt {}", ABANDONED_AFTER.as_secs())));
        assert!(KEEPALIVE * 3 < ABANDONED_AFTER);
    }

    #[tokio::test]
    async fn a_pump_counts_what_it_moves_and_fails_when_stalled() {
        let data = vec![7u8; 200_000];
        let mut seen = 0;
        let mut out = Vec::new();
        let n = pump(&data[..], &mut out, Duration::from_secs(5), |n| seen += n)
            .await
            .unwrap();
        assert_eq!((n, seen, out.len()), (200_000, 200_000, 200_000));
        let (reader, _writer) = tokio::io::simplex(16);
        let stalled = pump(reader, Vec::new(), Duration::from_millis(50), |_| {}).await;
        assert_eq!(stalled.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    }
}
