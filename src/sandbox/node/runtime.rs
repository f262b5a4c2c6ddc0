//! The container runtime of the sandbox: local processes in their own process group, output
//! kept (host paths mapped back) for the log subresource, SIGTERM then SIGKILL to stop.

use std::path::Path;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::mounts::MountTable;

/// At most this much output is kept per container instance; older bytes are dropped.
pub const LOG_LIMIT: usize = 8 << 20;

/// How long output pipes may stay open after the main process ended before we stop reading.
const DRAIN: Duration = Duration::from_secs(2);

/// A stream of log bytes (`pods/log`).
pub type LogStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

#[derive(Debug, Default)]
struct LogState {
    /// Absolute offset of `data[0]` (bytes dropped from the front so far).
    base: usize,
    data: Vec<u8>,
}

/// The output of one container instance: appended by the runtime, read by `pods/log`.
#[derive(Debug)]
pub struct LogBuffer {
    state: Mutex<LogState>,
    /// (end offset, closed)
    changed: watch::Sender<(usize, bool)>,
}

impl Default for LogBuffer {
    fn default() -> Self {
        LogBuffer {
            state: Mutex::new(LogState::default()),
            changed: watch::channel((0, false)).0,
        }
    }
}

impl LogBuffer {
    /// Appends output.
    pub fn append(&self, bytes: &[u8]) {
        let end = {
            let Ok(mut s) = self.state.lock() else { return };
            s.data.extend_from_slice(bytes);
            if s.data.len() > LOG_LIMIT {
                let drop = s.data.len() - LOG_LIMIT;
                s.data.drain(..drop);
                s.base += drop;
            }
            s.base + s.data.len()
        };
        self.changed.send_modify(|v| v.0 = end);
    }

    /// Marks the end of output: followers finish.
    pub fn close(&self) {
        self.changed.send_modify(|v| v.1 = true);
    }

    /// Everything kept so far, as text.
    pub fn text(&self) -> String {
        self.state
            .lock()
            .map(|s| String::from_utf8_lossy(&s.data).into_owned())
            .unwrap_or_default()
    }

    /// Bytes from absolute offset `from` (clamped to what is kept) and the new end offset.
    fn read_from(&self, from: usize) -> (Vec<u8>, usize) {
        let Ok(s) = self.state.lock() else {
            return (Vec::new(), from);
        };
        let start = from.max(s.base) - s.base;
        let start = start.min(s.data.len());
        (s.data[start..].to_vec(), s.base + s.data.len())
    }

    /// The output as a stream: the last `tail_lines` lines (all when `None`), then, when
    /// `follow`, whatever comes next until the container ends.
    pub fn stream(self: &Arc<Self>, follow: bool, tail_lines: Option<i64>) -> LogStream {
        let (first, end) = self.read_from(0);
        let first = match tail_lines {
            Some(n) => tail(&first, usize::try_from(n.max(0)).unwrap_or(0)).to_vec(),
            None => first,
        };
        let rx = self.changed.subscribe();
        let buffer = Arc::clone(self);
        let head = futures::stream::iter((!first.is_empty()).then(|| Bytes::from(first)));
        if !follow {
            return Box::pin(head);
        }
        let rest = futures::stream::unfold((buffer, rx, end), |(buffer, mut rx, pos)| async move {
            loop {
                let (bytes, end) = buffer.read_from(pos);
                if !bytes.is_empty() {
                    return Some((Bytes::from(bytes), (buffer, rx, end)));
                }
                if rx.borrow_and_update().1 {
                    return None;
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        });
        Box::pin(futures::StreamExt::chain(head, rest))
    }
}

/// The last `n` lines of `data`.
fn tail(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

/// What a process needs to start: argv, env and cwd already mapped to host paths.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub cwd: std::path::PathBuf,
}

/// A running container process.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pgid: Option<u32>,
    pumps: Vec<JoinHandle<()>>,
}

/// Starts a process in its own process group; its stdout and stderr (one pipe) are read line by line,
/// mapped back to container paths and appended to `log`.
pub fn spawn(
    spec: &ProcessSpec,
    table: &MountTable,
    log: &Arc<LogBuffer>,
) -> std::io::Result<Process> {
    // One pipe for both streams keeps their relative order, as a terminal would show it.
    let (reader, writer) = std::io::pipe()?;
    let child = command(spec)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()?;
    let reader =
        tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))?;
    let pumps = vec![tokio::spawn(pump_lines(
        reader,
        table.clone(),
        Arc::clone(log),
    ))];
    Ok(Process {
        pgid: child.id(),
        child,
        pumps,
    })
}

fn command(spec: &ProcessSpec) -> Command {
    let program = spec.argv.first().cloned().unwrap_or_default();
    let mut cmd = Command::new(program);
    cmd.args(spec.argv.iter().skip(1))
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

async fn pump_lines(reader: impl AsyncRead + Unpin, table: MountTable, log: Arc<LogBuffer>) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                log.append(table.to_container(&text).as_bytes());
            }
        }
    }
}

/// The exit code of a status: the code, or 128 + the signal, as container runtimes report.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Sends a signal to a whole process group with the system's `kill`.
pub async fn signal_group(pgid: u32, signal: &str) {
    let run = Command::new("kill")
        .args([format!("-{signal}"), "--".to_string(), format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(5), run).await;
}

impl Process {
    /// Waits for the process to end, or for `stop`; then SIGTERM, `grace`, SIGKILL. Whatever
    /// the main process left behind in its group is killed too, as when a container's PID
    /// namespace goes away. Returns the exit code.
    pub async fn wait(mut self, stop: &CancellationToken, grace: Duration) -> i32 {
        let status = tokio::select! {
            s = self.child.wait() => s.ok(),
            _ = stop.cancelled() => {
                if let Some(pgid) = self.pgid {
                    signal_group(pgid, "TERM").await;
                }
                match tokio::time::timeout(grace, self.child.wait()).await {
                    Ok(s) => s.ok(),
                    Err(_) => {
                        if let Some(pgid) = self.pgid {
                            signal_group(pgid, "KILL").await;
                        }
                        let _ = self.child.start_kill();
                        tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.ok().and_then(Result::ok)
                    }
                }
            }
        };
        if let Some(pgid) = self.pgid.take() {
            signal_group(pgid, "KILL").await;
        }
        for pump in std::mem::take(&mut self.pumps) {
            let abort = pump.abort_handle();
            if tokio::time::timeout(DRAIN, pump).await.is_err() {
                abort.abort();
            }
        }
        status.map_or(137, exit_code)
    }
}

/// Kills a process group when dropped while still armed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group_now(pgid);
        }
    }
}

/// Sends SIGKILL to a process group without waiting on the runtime (for drop paths).
fn kill_group_now(pgid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Process {
    /// A process dropped before [`Process::wait`] finished (its task was aborted, the runtime
    /// went away) takes its whole group with it, not only the leader `kill_on_drop` reaches.
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_group_now(pgid);
        }
    }
}

/// A command running in a container (`pods/exec`).
pub struct ExecSession {
    /// The command's stdin, when asked for.
    pub stdin: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    /// Its stdout, host paths mapped back to container paths.
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    /// Its stderr, mapped the same way.
    pub stderr: Pin<Box<dyn AsyncRead + Send>>,
    /// Resolves to the exit code when the command ends (dropped if the pod is stopped first,
    /// then the code is 137).
    pub exit: tokio::sync::oneshot::Receiver<i32>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("stdin", &self.stdin.is_some())
            .finish_non_exhaustive()
    }
}

/// Starts an exec process; it is killed when `stop` fires (the pod stops) or when it ends.
pub fn exec(
    spec: &ProcessSpec,
    table: &MountTable,
    stdin: bool,
    stop: CancellationToken,
) -> std::io::Result<ExecSession> {
    let mut child = command(spec)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pgid = child.id();
    let stdin_pipe: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>> = child
        .stdin
        .take()
        .map(|s| Box::pin(s) as Pin<Box<dyn tokio::io::AsyncWrite + Send>>);
    let stdout = mapped(child.stdout.take(), table.clone());
    let stderr = mapped(child.stderr.take(), table.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut guard = GroupGuard(pgid);
        let code = tokio::select! {
            s = child.wait() => s.map(exit_code).unwrap_or(1),
            _ = stop.cancelled() => {
                let _ = child.start_kill();
                137
            }
        };
        // Whatever the command left running in its group goes with it.
        if let Some(pgid) = guard.0.take() {
            signal_group(pgid, "KILL").await;
        }
        let _ = tx.send(code);
    });
    Ok(ExecSession {
        stdin: stdin_pipe,
        stdout,
        stderr,
        exit: rx,
    })
}

/// A reader whose chunks have host paths mapped back to container paths. Mapping is per
/// chunk read, so a path split across two reads is left as is.
fn mapped(
    reader: Option<impl AsyncRead + Unpin + Send + 'static>,
    table: MountTable,
) -> Pin<Box<dyn AsyncRead + Send>> {
    let (mut write, read) = tokio::io::duplex(64 * 1024);
    if let Some(mut reader) = reader {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if write
                            .write_all(table.to_container(&text).as_bytes())
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            let _ = write.shutdown().await;
        });
    }
    Box::pin(read)
}

/// Creates a directory and its parents, as the kubelet does for `DirectoryOrCreate`.
pub async fn ensure_dir(path: &Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(path).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::node::mounts::Mount;
    use futures::StreamExt;

    fn spec(script: &str, cwd: &Path) -> ProcessSpec {
        ProcessSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: cwd.to_path_buf(),
        }
    }

    #[test]
    fn tails_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 5), b"a\nb\nc");
        assert_eq!(tail(b"a\n", 0), b"");
    }

    #[tokio::test]
    async fn runs_a_process_and_keeps_mapped_output() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node/opt/x");
        std::fs::create_dir_all(&data).unwrap();
        let table = MountTable::new([Mount {
            container: "/data".into(),
            host: data.clone(),
        }]);
        let script = format!(
            "echo hello; echo in {}/f >&2; echo written > {}/f; exit 3",
            data.display(),
            data.display()
        );
        let log = Arc::new(LogBuffer::default());
        let p = spawn(&spec(&script, dir.path()), &table, &log).unwrap();
        let code = tokio::time::timeout(
            Duration::from_secs(10),
            p.wait(&CancellationToken::new(), Duration::from_secs(1)),
        )
        .await
        .unwrap();
        assert_eq!(code, 3);
        assert!(log.text().contains("hello\n"));
        assert!(log.text().contains("in /data/f\n"), "{}", log.text());
        assert_eq!(
            std::fs::read_to_string(data.join("f")).unwrap(),
            "written\n"
        );
    }

    #[tokio::test]
    async fn stop_sends_term_then_kill() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(LogBuffer::default());
        let p = spawn(
            &spec("trap '' TERM; echo up; sleep 30 & wait", dir.path()),
            &MountTable::default(),
            &log,
        )
        .unwrap();
        let stop = CancellationToken::new();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { p.wait(&stop, Duration::from_millis(200)).await }
        });
        let mut s = log.stream(true, None);
        let first = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .unwrap();
        assert_eq!(first.as_deref(), Some(&b"up\n"[..]));
        stop.cancel();
        let code = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code, 137);
    }

    #[tokio::test]
    async fn follow_ends_when_the_log_closes() {
        let log = Arc::new(LogBuffer::default());
        log.append(b"1\n2\n3\n");
        let mut s = log.stream(true, Some(1));
        assert_eq!(s.next().await.as_deref(), Some(&b"3\n"[..]));
        log.append(b"4\n");
        assert_eq!(s.next().await.as_deref(), Some(&b"4\n"[..]));
        log.close();
        let end = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap();
        assert!(end.is_none());
    }

    #[tokio::test]
    async fn exec_maps_output_and_reports_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let table = MountTable::new([Mount {
            container: "/data".into(),
            host: dir.path().to_path_buf(),
        }]);
        let script = format!("cat; echo {}/x", dir.path().display());
        let mut s = exec(
            &spec(&script, dir.path()),
            &table,
            true,
            CancellationToken::new(),
        )
        .unwrap();
        let mut stdin = s.stdin.take().unwrap();
        stdin.write_all(b"from stdin\n").await.unwrap();
        drop(stdin);
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.stdout.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, "from stdin\n/data/x\n");
        let code = tokio::time::timeout(Duration::from_secs(10), s.exit)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code, 0);
    }
}
