//! The container runtime of the sandbox. Each container is a local process in its own mount
//! and PID namespaces (util-linux's `unshare`), whose root is a tmpfs holding this machine's
//! programs read-only, a few device nodes, its own `proc`, and its volumes at their mount
//! paths (planned by [`super::mounts::layout`]), made `/` with `pivot_root` so that nothing
//! else of this machine can be named; `exec` enters those namespaces (`nsenter`). Output is
//! kept for the log subresource; SIGTERM, a grace period, then SIGKILL of the whole process
//! group stop a container.
//!
//! The kubelet's own setup runs inside the new namespaces before the container's program: a
//! short `sh` script ([`SETUP`]) mounts what the container's `fstab` lists, switches root,
//! enters the working directory, says `ok` on a pipe the runtime reads, and runs the program
//! as a child, so that the shell is the namespace's PID 1 (which ignores signals it has no
//! handler for) and the program gets SIGTERM as it would without namespaces. The program is
//! started through `env -i` with the container's environment, so nothing of that environment
//! reaches a program of this machine run before the switch (`LD_PRELOAD` and the like).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::mounts::{self, DEVICE_LINKS, DEVICES, Layout, MountPoint, SYSTEM_DIRS};

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

/// How long a container's setup (namespaces, mounts, new root) may take before it is given
/// up: it takes milliseconds, but thousands of containers starting at once on two cores queue.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the probe of what isolation works here may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `PATH` the runtime's own programs run with (they are named by absolute path; this is for
/// what they may run themselves).
const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// What stands in for an image's entrypoint when a container has neither command nor args: it
/// holds the container's namespaces so that `exec` has something to enter, until the pod stops.
/// By path, so that the container's `PATH` does not matter.
pub const ENTRYPOINT_STAND_IN: &[&str] = &["/bin/sleep", "infinity"];

/// The kubelet's setup, run by `sh` as PID 1 of the container's new PID namespace, in its new
/// mount namespace (see the module docs). Arguments: `mount`, `pivot_root`, `umount` and `env`
/// of this machine, the `fstab`, the directory the root is made on, the working directory, the
/// container's `PATH` and program, `mkdir`, then `NAME=VALUE` for its environment and its argv.
/// It says `ok` on fd 0 (a pipe the runtime reads; moved to fd 3, then closed) once the program
/// is found, or why not, and exits.
///
/// `pivot_root . .` stacks the old root on the new one and `umount -l .` detaches it, so that
/// no path leads back to this machine's `/` (a `chroot` can be climbed out of by a process with
/// root's capabilities, which a container has in its namespaces). The working directory is
/// made, if missing, inside the new root, where no symlink leads out. The program runs as a
/// child so that it gets the SIGTERM a stop sends its process group: the shell, PID 1 of its
/// PID namespace, ignores it. The child exists before `ok` is said, so that a stop right after
/// the start cannot reach the group before the program is in it.
pub const SETUP: &str = r#"exec 3>&0 0</dev/null
f() { printf '%s\n' "$1" >&3; exit 1; }
"$1" -a -T "$5" >&3 2>&3 || f "cannot mount the container's volumes and system directories"
cd "$6" && "$2" . . >&3 2>&3 && "$3" -l . >&3 2>&3 || f "cannot make the container's root its /"
cd "$7" 2>/dev/null || { "${10}" -p -- "$7" >&3 2>&3 && cd "$7"; } ||
f "cannot enter the working directory $7"
e=$4 PATH=$8
case $9 in */*) [ -f "$9" ] && [ -x "$9" ] ;; *) command -v -- "$9" >/dev/null ;; esac ||
f "exec: \"$9\": executable file not found in \$PATH"
shift 10
"$e" -i -- "$@" 3>&- &
echo ok >&3
exec 3>&-
wait $!
"#;

/// The programs of this machine the runtime runs, found once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// util-linux `unshare`: makes a container's namespaces.
    pub unshare: PathBuf,
    /// util-linux `nsenter`: enters them for `exec`.
    pub nsenter: PathBuf,
    /// util-linux `mount`: makes the container's mounts from its `fstab`.
    pub mount: PathBuf,
    /// util-linux `umount`: detaches this machine's root (run after the switch of root, so it
    /// must be under one of the system directories).
    pub umount: PathBuf,
    /// util-linux `pivot_root`: switches root.
    pub pivot_root: PathBuf,
    /// `env`: starts the program with exactly the container's environment (run after the
    /// switch of root too).
    pub env: PathBuf,
    /// `mkdir`: makes a missing working directory (run after the switch of root too).
    pub mkdir: PathBuf,
    /// `/bin/sh`: runs the setup.
    pub sh: PathBuf,
}

/// Whether a file is there and executable.
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Tools {
    /// Finds the programs on `PATH` and in the system's `bin` directories.
    fn find() -> Result<Tools, String> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from));
        let find = |name: &str, package: &str, in_container: bool| {
            let found = dirs
                .iter()
                .filter(|d| d.is_absolute())
                .map(|d| d.join(name))
                .find(|p| executable(p))
                .ok_or_else(|| {
                    format!(
                        "cannot find `{name}` ({package}) on PATH or in /usr/sbin, /usr/bin, /sbin, /bin; \
                         the sandbox runs every container in its own namespaces with it"
                    )
                })?;
            // Run inside the container's root, where only the system directories are.
            let lent = SYSTEM_DIRS
                .iter()
                .any(|d| found.starts_with(Path::new("/").join(d)));
            if in_container && !lent {
                return Err(format!(
                    "`{}` is not under /usr, /bin or /sbin, so a container's root cannot run it",
                    found.display()
                ));
            }
            Ok(found)
        };
        let sh = PathBuf::from("/bin/sh");
        if !executable(&sh) {
            return Err("cannot find /bin/sh, which runs every container's setup".into());
        }
        Ok(Tools {
            unshare: find("unshare", "util-linux", false)?,
            nsenter: find("nsenter", "util-linux", false)?,
            mount: find("mount", "util-linux", false)?,
            umount: find("umount", "util-linux", true)?,
            pivot_root: find("pivot_root", "util-linux", false)?,
            env: find("env", "coreutils", true)?,
            mkdir: find("mkdir", "coreutils", true)?,
            sh,
        })
    }
}

/// How containers are isolated on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// The programs used.
    pub tools: Tools,
    /// Whether a user namespace is made too, mapping the sandbox's user to root in it (when the
    /// sandbox does not run as root, mount namespaces need one).
    pub user_namespace: bool,
}

impl Isolation {
    /// The options of `unshare` for a container: its own mount namespace, private so that
    /// nothing mounted in it shows on this machine, and its own PID namespace, whose PID 1 is
    /// killed (and with it every process of the container) when `unshare` dies.
    fn unshare_args(&self) -> Vec<&'static str> {
        let mut args = Vec::new();
        if self.user_namespace {
            args.extend(["--user", "--map-root-user"]);
        }
        args.extend([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--kill-child",
        ]);
        args
    }

    /// Whether these namespaces can be made here, with a `proc` of their own.
    async fn probe(&self) -> Result<(), String> {
        let shown = format!(
            "{} {}",
            self.tools.unshare.display(),
            self.unshare_args().join(" ")
        );
        let mut cmd = Command::new(&self.tools.unshare);
        cmd.args(self.unshare_args())
            .arg("--mount-proc")
            .arg("--")
            .arg(&self.tools.sh)
            .args(["-c", ":"])
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match tokio::time::timeout(PROBE_TIMEOUT, cmd.output()).await {
            Err(_) => Err(format!("`{shown}` did not finish within 10 s")),
            Ok(Err(e)) => Err(format!("`{shown}`: {e}")),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(format!(
                "`{shown}`: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }
}

/// How containers are isolated here, found out once: namespaces as root if that works, else
/// with a user namespace too (a developer not running as root); or why neither works, which
/// every container then fails to start with.
pub async fn isolation() -> Result<&'static Isolation, String> {
    static ISOLATION: tokio::sync::OnceCell<Result<Isolation, String>> =
        tokio::sync::OnceCell::const_new();
    ISOLATION
        .get_or_init(detect)
        .await
        .as_ref()
        .map_err(String::clone)
}

async fn detect() -> Result<Isolation, String> {
    let tools = Tools::find()?;
    let mut failures = Vec::new();
    for user_namespace in [false, true] {
        let isolation = Isolation {
            tools: tools.clone(),
            user_namespace,
        };
        match isolation.probe().await {
            Ok(()) => {
                tracing::debug!(
                    user_namespace,
                    "sandbox runtime: containers run in their own mount and PID namespaces"
                );
                return Ok(isolation);
            }
            Err(e) => failures.push(e),
        }
    }
    let why = format!(
        "the sandbox runs every container in its own mount and PID namespaces with util-linux's \
         unshare, which fails here ({}); run it as root, or allow unprivileged user namespaces",
        failures.join("; ")
    );
    tracing::warn!("sandbox runtime: {why}");
    Err(why)
}

/// The names of this machine's [`SYSTEM_DIRS`] that are directories (or symlinks to them),
/// read once.
pub fn system_dirs() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        SYSTEM_DIRS
            .iter()
            .filter(|name| Path::new("/").join(name).is_dir())
            .map(|name| (*name).to_string())
            .collect()
    })
}

/// This machine's `/etc/resolv.conf`, read once (containers share its network).
fn resolv_conf() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

/// Creates a directory, or finds it there.
fn make_dir(path: &Path) -> Result<(), String> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(format!("cannot create {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Creates a symlink, or finds something there.
fn make_link(target: &Path, path: &Path) -> Result<(), String> {
    match std::os::unix::fs::symlink(target, path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(format!("cannot create {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Creates an empty file, or finds something there.
fn make_file(path: &Path) -> Result<(), String> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(format!("cannot create {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// What a node's kubelet keeps for the roots of its containers, below its
/// `/var/lib/kubelet`: the directory every container's root is mounted on (each in its own
/// mount namespace, so they never meet) and the template of every container's `/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDirs {
    /// The empty directory roots are mounted on.
    pub root: PathBuf,
    /// The `/dev` template.
    pub dev: PathBuf,
}

/// Makes a node's [`NodeDirs`] below `kubelet_dir` (the node's `/var/lib/kubelet`) unless
/// they are there, so that a container's start makes almost nothing on disk. Blocking.
pub fn node_dirs(kubelet_dir: &Path) -> Result<NodeDirs, String> {
    let dirs = NodeDirs {
        root: kubelet_dir.join("container-root"),
        dev: kubelet_dir.join("container-dev"),
    };
    // Made last below: when it is there, everything is.
    let done = dirs
        .dev
        .join(DEVICE_LINKS.last().map_or("stderr", |(name, _)| *name));
    if std::fs::symlink_metadata(&done).is_ok() {
        return Ok(dirs);
    }
    std::fs::create_dir_all(&dirs.dev)
        .map_err(|e| format!("cannot create {}: {e}", dirs.dev.display()))?;
    make_dir(&dirs.root)?;
    make_dir(&dirs.dev.join("shm"))?;
    for name in DEVICES.iter().chain(["termination-log"].iter()) {
        make_file(&dirs.dev.join(name))?;
    }
    for (name, target) in DEVICE_LINKS {
        make_link(Path::new(target), &dirs.dev.join(name))?;
    }
    Ok(dirs)
}

/// Writes a pod's `/etc` (who root is, the pod's name as hostname, how names resolve) into
/// `dir`. Blocking.
pub fn write_etc(dir: &Path, hostname: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, text) in mounts::etc_files(hostname, resolv_conf()) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// One container instance to run.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Its program and arguments, as the container names them.
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Its working directory, a normalised container path.
    pub working_dir: String,
    /// The directory its root is mounted on.
    pub root: PathBuf,
    /// Its root, planned.
    pub layout: Layout,
    /// Where its `fstab` is written.
    pub fstab: PathBuf,
}

/// Makes a mount point and the directories on the way, unless they are there. Never through a
/// symlink (one planted in a volume would otherwise have this machine's directories made).
fn make_point(point: &MountPoint) -> Result<(), String> {
    let mut path = point.base.clone();
    for (i, name) in point.rest.iter().enumerate() {
        path.push(name);
        let last = i + 1 == point.rest.len();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("{} is a symlink", path.display()));
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(format!("{} is not a directory", path.display()));
            }
            Ok(_) => {}
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("{}: {e}", path.display()));
            }
            Err(_) if last && point.file => make_file(&path)?,
            Err(_) => make_dir(&path)?,
        }
    }
    Ok(())
}

/// Makes what a container's root needs on this machine before it starts: the mount points the
/// kubelet makes (in volumes, in staged directories) and the `fstab`. Usually nothing but the
/// `fstab`: the root itself is a tmpfs. Blocking.
pub fn prepare_root(spec: &ContainerSpec) -> Result<(), String> {
    for point in &spec.layout.points {
        make_point(point).map_err(|e| format!("cannot make a mount point: {e}"))?;
    }
    std::fs::write(&spec.fstab, mounts::fstab(&spec.root, &spec.layout))
        .map_err(|e| format!("cannot write {}: {e}", spec.fstab.display()))
}

/// A running container: the `unshare` process (leader of the container's process group), its
/// output pumps, and the PID 1 of the container's namespaces.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pgid: Option<u32>,
    pumps: Vec<JoinHandle<()>>,
    namespace_pid: Option<u32>,
}

/// What the setup said on its pipe.
enum Word {
    /// `ok`: the program is starting.
    Ready,
    /// Anything else, then the end: why the setup failed.
    Failed(String),
}

/// Reads the setup's pipe until it says `ok` on a line of its own or closes.
async fn read_word(mut pipe: impl AsyncRead + Unpin) -> std::io::Result<Word> {
    let mut said = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            return Ok(Word::Failed(
                String::from_utf8_lossy(&said).trim().to_string(),
            ));
        }
        said.extend_from_slice(&buf[..n]);
        if said == b"ok\n" || said.ends_with(b"\nok\n") {
            return Ok(Word::Ready);
        }
    }
}

/// The first child of a process: the PID 1 of a container's namespaces is the only child of its
/// `unshare`.
fn child_of(pid: u32) -> Option<u32> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return text.split_whitespace().next()?.parse().ok();
    }
    // A kernel without CONFIG_PROC_CHILDREN: find the process whose parent it is.
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| parent_of(*p) == Some(pid))
}

/// The parent of a process, from `/proc/<pid>/stat` (its fourth field, after the name in
/// parentheses, which may hold anything).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(1)?.parse().ok()
}

/// Starts a container: `unshare` makes its namespaces in a new process group, the setup makes
/// its root and starts its program; stdout and stderr (one pipe) are appended to `log`. Returns
/// once the program is starting, or with why the container cannot start (its namespaces, its
/// mounts, its working directory, its program not found). If `stop` fires first, returns the
/// process for [`Process::wait`] to end.
pub async fn start(
    isolation: &Isolation,
    spec: &ContainerSpec,
    log: &Arc<LogBuffer>,
    stop: &CancellationToken,
) -> Result<Process, String> {
    let Some(program) = spec.argv.first() else {
        return Err("the container has no command".into());
    };
    if program.contains('=') {
        // `env` would read it as a variable.
        return Err(format!(
            "exec: {program:?}: the sandbox cannot start a program whose name holds \"=\""
        ));
    }
    let path = spec
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or("", |(_, v)| v.as_str());
    let io = |e: std::io::Error| format!("cannot start the container's process: {e}");
    let (ready_read, ready_write) = std::io::pipe().map_err(io)?;
    // One pipe for both streams keeps their relative order, as a terminal would show it.
    let (out_read, out_write) = std::io::pipe().map_err(io)?;
    let tools = &isolation.tools;
    let mut cmd = Command::new(&tools.unshare);
    cmd.args(isolation.unshare_args())
        .arg("--")
        .arg(&tools.sh)
        .arg("-c")
        .arg(SETUP)
        .arg("sandbox-setup")
        .arg(&tools.mount)
        .arg(&tools.pivot_root)
        .arg(&tools.umount)
        .arg(&tools.env)
        .arg(&spec.fstab)
        .arg(&spec.root)
        .arg(&spec.working_dir)
        .arg(path)
        .arg(program)
        .arg(&tools.mkdir)
        .args(spec.env.iter().map(|(k, v)| format!("{k}={v}")))
        .args(&spec.argv)
        // Nothing of the container's environment reaches this machine's programs.
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .current_dir(&spec.root)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(ready_write)))
        .stdout(out_write.try_clone().map_err(io)?)
        .stderr(out_write)
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", tools.unshare.display()))?;
    // Our ends of the child's pipes close with the command, so that the setup's pipe ends when
    // the setup does.
    drop(cmd);
    let output =
        tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(out_read))
            .map_err(io)?;
    let mut process = Process {
        pgid: child.id(),
        child,
        pumps: vec![tokio::spawn(pump(output, Arc::clone(log)))],
        namespace_pid: None,
    };
    let ready =
        tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(ready_read))
            .map_err(io)?;
    let said = tokio::select! {
        said = tokio::time::timeout(SETUP_TIMEOUT, read_word(ready)) => said,
        () = stop.cancelled() => return Ok(process),
    };
    let failure = match said {
        Ok(Ok(Word::Ready)) => {
            let pid = process.pgid;
            process.namespace_pid = tokio::task::spawn_blocking(move || pid.and_then(child_of))
                .await
                .ok()
                .flatten();
            return Ok(process);
        }
        Ok(Ok(Word::Failed(said))) => said,
        Ok(Err(e)) => format!("cannot read the container's setup: {e}"),
        Err(_) => format!(
            "the container's setup did not finish within {} s",
            SETUP_TIMEOUT.as_secs()
        ),
    };
    let code = process.wait(stop, Duration::ZERO).await;
    if !failure.is_empty() {
        return Err(failure);
    }
    // Nothing said: `unshare` itself failed, and said why on stderr.
    let told = log.text().trim().to_string();
    Err(if told.is_empty() {
        format!("the container's namespaces could not be made (exit code {code})")
    } else {
        told
    })
}

async fn pump(mut reader: impl AsyncRead + Unpin, log: Arc<LogBuffer>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => log.append(&buf[..n]),
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
    /// The PID (on this machine) of the container's PID 1, which `exec` enters.
    pub fn namespace_pid(&self) -> Option<u32> {
        self.namespace_pid
    }

    /// Waits for the process to end, or for `stop`; then SIGTERM, `grace`, SIGKILL to the
    /// process group. Whatever the program left behind goes with it: the kernel kills every
    /// process of a PID namespace when its PID 1 ends, and `unshare` takes PID 1 with it.
    /// Returns the exit code.
    pub async fn wait(mut self, stop: &CancellationToken, grace: Duration) -> i32 {
        let status = tokio::select! {
            s = self.child.wait() => s.ok(),
            () = stop.cancelled() => {
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
        // Ended, and its namespace with it: nothing left for `Drop` to kill.
        self.pgid = None;
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
    /// Its stdout.
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    /// Its stderr.
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

/// A command to run in a running container.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// The PID (on this machine) of the container's PID 1: its namespaces, root and working
    /// directory are entered.
    pub namespace_pid: u32,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The whole environment (the container's).
    pub env: Vec<(String, String)>,
}

/// Starts an exec process in a container's namespaces (`nsenter`, then `env` inside, so that
/// the container's environment reaches no program of this machine); it is killed when `stop`
/// fires (the pod stops) or when it ends.
pub fn exec(
    isolation: &Isolation,
    spec: &ExecSpec,
    stdin: bool,
    stop: CancellationToken,
) -> std::io::Result<ExecSession> {
    if spec.argv.first().is_none_or(|p| p.contains('=')) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the sandbox cannot exec an empty command or a program whose name holds \"=\"",
        ));
    }
    let tools = &isolation.tools;
    let mut cmd = Command::new(&tools.nsenter);
    cmd.arg("--target").arg(spec.namespace_pid.to_string());
    if isolation.user_namespace {
        // The sandbox's user is root in that namespace already; `nsenter` would otherwise
        // call setgroups, which a namespace made by an unprivileged user forbids.
        cmd.args(["--user", "--preserve-credentials"]);
    }
    cmd.args(["--mount", "--pid", "--root", "--wd", "--"])
        .arg(&tools.env)
        .args(["-i", "--"])
        .args(spec.env.iter().map(|(k, v)| format!("{k}={v}")))
        .args(&spec.argv)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .current_dir("/")
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let pgid = child.id();
    let stdin_pipe: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>> = child
        .stdin
        .take()
        .map(|s| Box::pin(s) as Pin<Box<dyn tokio::io::AsyncWrite + Send>>);
    let stdout: Pin<Box<dyn AsyncRead + Send>> = match child.stdout.take() {
        Some(s) => Box::pin(s),
        None => Box::pin(tokio::io::empty()),
    };
    let stderr: Pin<Box<dyn AsyncRead + Send>> = match child.stderr.take() {
        Some(s) => Box::pin(s),
        None => Box::pin(tokio::io::empty()),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut guard = GroupGuard(pgid);
        let code = tokio::select! {
            s = child.wait() => s.map(exit_code).unwrap_or(1),
            () = stop.cancelled() => {
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

/// Creates a directory and its parents, as the kubelet does for `DirectoryOrCreate`.
pub async fn ensure_dir(path: &Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(path).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::node::mounts::{Mount, MountTable};
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;

    const DEADLINE: Duration = Duration::from_secs(20);

    /// A container whose root and volumes live in `dir`: `/data` is `dir/data` (read-write),
    /// `/ro` is `dir/ro` (read-only).
    fn container(dir: &Path, script: &str) -> ContainerSpec {
        for d in ["data", "ro", "tmp", "home"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        write_etc(&dir.join("etc"), "pod-a").unwrap();
        let node = node_dirs(&dir.join("kubelet")).unwrap();
        let mount = |container: &str, host: &str, read_only: bool| Mount {
            container: container.into(),
            host: dir.join(host),
            read_only,
        };
        let table = MountTable::new([
            mount("/data", "data", false),
            mount("/ro", "ro", true),
            mount("/tmp", "tmp", false),
            mount("/root", "home", false),
        ]);
        let lent = mounts::Lent {
            system: system_dirs(),
            dev: &node.dev,
            etc: &dir.join("etc"),
            stage: &dir.join("stage"),
        };
        ContainerSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("HOME".into(), "/root".into()),
            ],
            working_dir: "/root".into(),
            root: node.root,
            layout: mounts::layout(&lent, &table, Path::is_file).unwrap(),
            fstab: dir.join("fstab"),
        }
    }

    async fn started(spec: &ContainerSpec, log: &Arc<LogBuffer>) -> Result<Process, String> {
        let isolation = isolation().await?;
        let spec = spec.clone();
        let spec = tokio::task::spawn_blocking(move || prepare_root(&spec).map(|()| spec))
            .await
            .unwrap()?;
        tokio::time::timeout(
            DEADLINE,
            start(isolation, &spec, log, &CancellationToken::new()),
        )
        .await
        .unwrap()
    }

    async fn run(spec: &ContainerSpec) -> (i32, String) {
        let log = Arc::new(LogBuffer::default());
        let p = started(spec, &log).await.unwrap();
        let code = tokio::time::timeout(
            DEADLINE,
            p.wait(&CancellationToken::new(), Duration::from_secs(1)),
        )
        .await
        .unwrap();
        (code, log.text())
    }

    #[test]
    fn tails_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 5), b"a\nb\nc");
        assert_eq!(tail(b"a\n", 0), b"");
    }

    #[tokio::test]
    async fn a_container_runs_in_its_own_root_with_its_volumes() {
        let dir = tempfile::tempdir().unwrap();
        // Something of this machine the container never mounted.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("marker"), "host\n").unwrap();
        let script = format!(
            "echo hello; echo written > /data/f; cat /etc/hostname; pwd; \
             cat {o}/marker || echo no marker; rm -rf {o}; \
             touch /ro/x || echo read-only; echo layer > /new; cat /new; \
             ls /proc/1/root/data; exit 3",
            o = outside.path().display()
        );
        let (code, log) = run(&container(dir.path(), &script)).await;
        assert_eq!(code, 3, "{log}");
        assert!(log.starts_with("hello\npod-a\n/root\n"), "{log}");
        assert!(log.contains("No such file or directory"), "{log}");
        assert!(log.contains("no marker\n"), "{log}");
        assert!(log.contains("read-only\nlayer\n"), "{log}");
        assert!(log.ends_with("f\n"), "{log}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("data/f")).unwrap(),
            "written\n"
        );
        assert_eq!(
            std::fs::read_to_string(outside.path().join("marker")).unwrap(),
            "host\n"
        );
        assert!(!dir.path().join("ro/x").exists());
    }

    #[tokio::test]
    async fn a_missing_program_or_working_directory_fails_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = container(dir.path(), "true");
        spec.argv = vec!["no-such-program".into()];
        let log = Arc::new(LogBuffer::default());
        let err = started(&spec, &log).await.unwrap_err();
        assert_eq!(
            err,
            "exec: \"no-such-program\": executable file not found in $PATH"
        );
        let mut spec = container(dir.path(), "true");
        spec.argv = vec!["/data/not-there".into()];
        let err = started(&spec, &log).await.unwrap_err();
        assert!(err.contains("\"/data/not-there\""), "{err}");
        // A working directory in a read-only mount cannot be made.
        let mut spec = container(dir.path(), "true");
        spec.working_dir = "/ro/x".into();
        let err = started(&spec, &log).await.unwrap_err();
        assert!(
            err.ends_with("cannot enter the working directory /ro/x"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn without_working_namespaces_a_container_fails_to_start_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let spec = container(dir.path(), "true");
        prepare_root(&spec).unwrap();
        let log = Arc::new(LogBuffer::default());
        let stop = CancellationToken::new();
        let mut isolation = Isolation {
            tools: Tools::find().unwrap(),
            user_namespace: false,
        };
        isolation.tools.unshare = "/nonexistent/unshare".into();
        let err = start(&isolation, &spec, &log, &stop).await.unwrap_err();
        assert!(
            err.starts_with("cannot run /nonexistent/unshare: "),
            "{err}"
        );
        assert!(isolation.probe().await.is_err());
        // An `unshare` that fails without a word.
        isolation.tools.unshare = "/bin/false".into();
        let err = tokio::time::timeout(DEADLINE, start(&isolation, &spec, &log, &stop))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err,
            "the container's namespaces could not be made (exit code 1)"
        );
        let why = isolation.probe().await.unwrap_err();
        assert!(why.starts_with("`/bin/false --mount"), "{why}");
    }

    #[tokio::test]
    async fn stop_sends_term_then_kill() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(LogBuffer::default());
        let spec = container(dir.path(), "trap '' TERM; echo up; sleep 30 & wait");
        let p = started(&spec, &log).await.unwrap();
        let stop = CancellationToken::new();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { p.wait(&stop, Duration::from_millis(200)).await }
        });
        let mut s = log.stream(true, None);
        let first = tokio::time::timeout(DEADLINE, s.next()).await.unwrap();
        assert_eq!(first.as_deref(), Some(&b"up\n"[..]));
        stop.cancel();
        let code = tokio::time::timeout(DEADLINE, waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code, 137);
    }

    #[tokio::test]
    async fn the_program_gets_the_sigterm_of_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(LogBuffer::default());
        // `sleep` as the program itself: it dies of the SIGTERM, not of the SIGKILL after a
        // grace period long enough to fail the test.
        let mut spec = container(dir.path(), "");
        spec.argv = vec!["sleep".into(), "30".into()];
        let p = started(&spec, &log).await.unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        let code = tokio::time::timeout(Duration::from_secs(10), p.wait(&stop, DEADLINE))
            .await
            .unwrap();
        assert_eq!(code, 143);
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
    async fn exec_enters_the_container_and_reports_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(LogBuffer::default());
        let mut spec = container(dir.path(), "echo up; exec sleep 30");
        // Missing: made in the root's tmpfs.
        spec.working_dir = "/work/dir".into();
        let p = started(&spec, &log).await.unwrap();
        let exec_spec = ExecSpec {
            namespace_pid: p.namespace_pid().unwrap(),
            argv: vec![
                "sh".into(),
                "-c".into(),
                "cat > /data/in; pwd; echo $HOME; ls /data; exit 4".into(),
            ],
            env: spec.env.clone(),
        };
        let stop = CancellationToken::new();
        let mut s = exec(isolation().await.unwrap(), &exec_spec, true, stop.clone()).unwrap();
        let mut stdin = s.stdin.take().unwrap();
        stdin.write_all(b"from stdin\n").await.unwrap();
        drop(stdin);
        let mut out = String::new();
        tokio::time::timeout(DEADLINE, s.stdout.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, "/work/dir\n/root\nin\n");
        let code = tokio::time::timeout(DEADLINE, s.exit)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code, 4);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("data/in")).unwrap(),
            "from stdin\n"
        );
        stop.cancel();
        let code = tokio::time::timeout(DEADLINE, p.wait(&stop, Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(code, 143);
    }
}
