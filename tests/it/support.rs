//! Small fixtures shared by the integration tests.

// Fixtures are shared by every area; not every area uses every one.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `lpp` binary under test.
pub fn lpp_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lpp"))
}

/// A `lpp` command isolated from the developer's kubeconfig: HOME points at `home`, KUBECONFIG and
/// NO_COLOR are cleared, stdin is closed.
pub fn lpp_in(home: &Path) -> Command {
    let mut cmd = Command::new(lpp_bin());
    cmd.env("HOME", home)
        .env_remove("KUBECONFIG")
        .env_remove("NO_COLOR")
        .env_remove("LPP_LOG")
        .stdin(Stdio::null());
    cmd
}

/// The result of a finished command.
#[derive(Debug)]
pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to completion, killing it after `timeout`.
pub fn run<I, S>(mut cmd: Command, args: I, timeout: Duration) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the command");
    // Drained while it runs: a command printing more than a pipe holds must not stall.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut out);
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the command") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Runs `lpp <args>` isolated in a fresh temporary HOME, with a 60 s limit.
pub fn lpp<I, S>(args: I) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let home = tempfile::tempdir().expect("temporary HOME");
    run(lpp_in(home.path()), args, Duration::from_secs(60))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A sandbox cluster inside the test process, served over HTTP on a free port, with a
/// kubeconfig file pointing at it. Dropping it stops the sandbox and kills its processes.
pub struct TestCluster {
    sandbox: lpp::sandbox::Sandbox,
    addr: std::net::SocketAddr,
    kubeconfig: PathBuf,
    client: kube::Client,
    // Kept last: the directory goes after everything that uses it.
    _tmp: tempfile::TempDir,
}

impl TestCluster {
    /// Starts a two-node sandbox.
    pub async fn start() -> TestCluster {
        TestCluster::with_nodes(2).await
    }

    /// Starts a sandbox with `nodes` nodes.
    pub async fn with_nodes(nodes: u32) -> TestCluster {
        TestCluster::builder().nodes(nodes).start().await
    }

    /// A sandbox with more options than the node count:
    /// `TestCluster::builder().nodes(2).hostname("node-2", "ip-10-0-0-2").start().await`.
    pub fn builder() -> TestClusterBuilder {
        TestClusterBuilder {
            options: lpp::sandbox::SandboxOptions::default(),
        }
    }

    async fn from_options(mut options: lpp::sandbox::SandboxOptions) -> TestCluster {
        let tmp = tempfile::tempdir().expect("temporary sandbox dir");
        options.dir = tmp.path().join("sandbox");
        let sandbox = lpp::sandbox::Sandbox::start(options)
            .await
            .expect("start the sandbox");
        let addr = sandbox.serve(0).await.expect("serve the sandbox");
        let kubeconfig = tmp.path().join("kubeconfig");
        std::fs::write(&kubeconfig, sandbox.kubeconfig(addr)).expect("write the kubeconfig");
        let config = kube::config::Kubeconfig::read_from(&kubeconfig).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .expect("kubeconfig to config");
        let client = kube::Client::try_from(config).expect("HTTP client");
        TestCluster {
            sandbox,
            addr,
            kubeconfig,
            client,
            _tmp: tmp,
        }
    }

    /// The kubeconfig file (server `http://127.0.0.1:<port>`, context `lpp-sandbox`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The sandbox directory (node roots are `<dir>/nodes/<node>`).
    pub fn dir(&self) -> &Path {
        self.sandbox.dir()
    }

    /// The server address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// A client talking HTTP to the sandbox through the kubeconfig.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The sandbox's in-process client (no socket).
    pub fn in_process_client(&self) -> kube::Client {
        self.sandbox.client()
    }

    /// The sandbox itself.
    pub fn sandbox(&self) -> &lpp::sandbox::Sandbox {
        &self.sandbox
    }

    /// Where node path `path` of `node` lives on this machine.
    pub fn node_path(&self, node: &str, path: &str) -> PathBuf {
        self.sandbox
            .node_root(node)
            .join(path.trim_start_matches('/'))
    }

    /// Turns fault injection on or off.
    pub fn set_faults(&self, faults: lpp::sandbox::Faults) {
        self.sandbox.set_faults(faults);
    }

    /// A `lpp` command pointed at this cluster (`KUBECONFIG` set, isolated HOME).
    pub fn lpp_command(&self) -> Command {
        let mut cmd = lpp_in(self._tmp.path());
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs `lpp <args>` against this cluster with a 60 s limit (off the async runtime).
    pub async fn lpp<I, S>(&self, args: I) -> Finished
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.lpp_with_timeout(args, Duration::from_secs(60)).await
    }

    /// Runs `lpp <args>` against this cluster with a limit.
    pub async fn lpp_with_timeout<I, S>(&self, args: I, timeout: Duration) -> Finished
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let cmd = self.lpp_command();
        let args: Vec<std::ffi::OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        tokio::task::spawn_blocking(move || run(cmd, args, timeout))
            .await
            .expect("the lpp runner")
    }

    /// A kubeconfig file for the same cluster whose user impersonates `user` in `groups` (the
    /// `as`/`as-groups` fields, which kubectl and kube-rs turn into Impersonate headers).
    pub fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> PathBuf {
        let mut text = self.sandbox.kubeconfig(self.addr);
        let mut fields = format!("    as: {user:?}\n");
        if !groups.is_empty() {
            fields.push_str("    as-groups:\n");
            for g in groups {
                fields.push_str(&format!("    - {g:?}\n"));
            }
        }
        text = text.replace("  user: {}\n", &format!("  user:\n{fields}"));
        let path = self._tmp.path().join(format!(
            "kubeconfig-as-{}",
            user.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        ));
        std::fs::write(&path, text).expect("write the kubeconfig");
        path
    }

    /// A client over HTTP that impersonates `user` in `groups`.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> kube::Client {
        let path = self.kubeconfig_as(user, groups);
        let config = kube::config::Kubeconfig::read_from(&path).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .expect("kubeconfig to config");
        kube::Client::try_from(config).expect("HTTP client")
    }

    /// The value for `KUBECONFIG` to point other tools at this cluster.
    pub fn kubectl_env(&self) -> PathBuf {
        self.kubeconfig.clone()
    }

    /// Runs the real `kubectl` against this cluster with a 60 s limit.
    pub async fn kubectl<I, S>(&self, args: I) -> Finished
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self._tmp.path())
            .stdin(Stdio::null());
        let args: Vec<std::ffi::OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        tokio::task::spawn_blocking(move || run(cmd, args, Duration::from_secs(60)))
            .await
            .expect("the kubectl runner")
    }

    /// As [`TestCluster::spawn_lpp`], with environment variables set for it.
    pub fn spawn_lpp_env<I, S>(&self, args: I, env: &[(&str, &str)]) -> LppChild
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let id = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stdout = self._tmp.path().join(format!("lpp-{id}.stdout"));
        let stderr = self._tmp.path().join(format!("lpp-{id}.stderr"));
        let mut cmd = self.lpp_command();
        cmd.args(args)
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        LppChild {
            child: Some(cmd.spawn().expect("spawn lpp")),
            stdout,
            stderr,
        }
    }

    /// Starts a long-running `lpp <args>` (e.g. `lpp run`) against this cluster; it is killed
    /// when the returned handle is dropped. Its output goes to files (a pipe nobody reads would
    /// fill up and stall it), readable any time with [`LppChild::output`].
    pub fn spawn_lpp<I, S>(&self, args: I) -> LppChild
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let id = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stdout = self._tmp.path().join(format!("lpp-{id}.stdout"));
        let stderr = self._tmp.path().join(format!("lpp-{id}.stderr"));
        let mut cmd = self.lpp_command();
        cmd.args(args)
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        LppChild {
            child: Some(cmd.spawn().expect("spawn lpp")),
            stdout,
            stderr,
        }
    }
}

/// Options for [`TestCluster::builder`]; `start` starts the cluster.
pub struct TestClusterBuilder {
    options: lpp::sandbox::SandboxOptions,
}

impl TestClusterBuilder {
    /// How many nodes (default 2).
    pub fn nodes(mut self, nodes: u32) -> Self {
        self.options.nodes = nodes;
        self
    }

    /// Gives `node` a `kubernetes.io/hostname` label value other than its name.
    pub fn hostname(mut self, node: &str, hostname: &str) -> Self {
        self.options
            .hostnames
            .insert(node.to_string(), hostname.to_string());
        self
    }

    /// Declares a disk, as `lpp sandbox up --disk` takes it
    /// (`node-1:/opt/local-path-provisioner=1Gi[,fs=xfs][,mountpoint=false]`).
    pub fn disk(mut self, declaration: &str) -> Self {
        self.options
            .disks
            .push(declaration.parse().expect("a disk declaration"));
        self
    }

    /// Starts the cluster (in a fresh temporary directory), served over HTTP.
    pub async fn start(self) -> TestCluster {
        TestCluster::from_options(self.options).await
    }
}

impl TestCluster {
    /// Starts a long-running `lpp <args>` whose stdout and stderr are pipes nobody reads any
    /// more (as after `lpp run 2>&1 | tee run.log` and a Ctrl-C that ended `tee`): every write
    /// fails with a broken pipe. It is killed when the handle is dropped; it prints nothing
    /// anyone can read.
    pub fn spawn_lpp_with_closed_output<I, S>(&self, args: I) -> LppChild
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.lpp_command();
        cmd.args(args).stdout(closed_pipe()).stderr(closed_pipe());
        LppChild {
            child: Some(cmd.spawn().expect("spawn lpp")),
            stdout: self._tmp.path().join("closed-stdout"),
            stderr: self._tmp.path().join("closed-stderr"),
        }
    }
}

/// The writing end of a pipe whose reading end is already closed.
pub fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer
}

/// Waits for a spawned command, killing it and panicking after `timeout`.
pub fn wait_child(mut child: std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll the command") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A long-running `lpp` child process, killed on drop.
pub struct LppChild {
    child: Option<std::process::Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl LppChild {
    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// What it printed so far (stdout, stderr).
    pub fn output(&self) -> (String, String) {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (read(&self.stdout), read(&self.stderr))
    }

    /// Waits until its stderr holds `needle` (the positive signal that it looked and decided),
    /// panicking with what it printed after `timeout`; returns the stderr so far.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (_, stderr) = self.output();
            if stderr.contains(needle) {
                return stderr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {needle:?} from lpp within {timeout:?}:\n{stderr}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `lpp run` holds its Lease and provisions.
    pub async fn wait_provisioning(&self) {
        self.wait_for_log("took the Lease; provisioning", Duration::from_secs(60))
            .await;
    }

    /// Sends it SIGTERM (what Ctrl-C and `kubectl delete pod` amount to), waits for it to exit
    /// (killing it and panicking after `timeout`) and returns what it printed.
    pub fn terminate(self, timeout: Duration) -> Finished {
        self.signal("-TERM", timeout)
    }

    /// Sends it SIGINT (Ctrl-C), waits for it to exit (killing it and panicking after
    /// `timeout`) and returns what it printed.
    pub fn interrupt(self, timeout: Duration) -> Finished {
        self.signal("-INT", timeout)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    fn signal(mut self, signal: &str, timeout: Duration) -> Finished {
        let mut child = self.child.take().expect("child present");
        let sent = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {signal}");
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("poll lpp") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "lpp did not exit within {timeout:?} of {signal}: {:?}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = self.output();
        Finished {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }

    /// Waits for it to exit by itself (killing it and panicking after `timeout`) and returns
    /// what it printed.
    pub async fn wait(mut self, timeout: Duration) -> Finished {
        let mut child = self.child.take().expect("child present");
        let deadline = tokio::time::Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("poll lpp") {
                break status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("lpp did not exit within {timeout:?}: {:?}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (stdout, stderr) = self.output();
        Finished {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }

    /// Kills it and returns what it printed.
    pub fn stop(mut self) -> Finished {
        let mut child = self.child.take().expect("child present");
        let _ = child.kill();
        let status = child.wait().expect("wait for lpp");
        let (stdout, stderr) = self.output();
        Finished {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

impl Drop for LppChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `cond` holds for the object `name` (checking every 50 ms), or panics after
/// `timeout` printing the object as last seen.
pub async fn wait_for<K, F>(api: &kube::Api<K>, name: &str, timeout: Duration, cond: F) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<K> = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), api.get_opt(name)).await {
            Ok(Ok(Some(obj))) => {
                if cond(&obj) {
                    return obj;
                }
                last = Some(obj);
            }
            Ok(Ok(None)) => last = None,
            _ => {}
        }
        if tokio::time::Instant::now() > deadline {
            let shown = last
                .as_ref()
                .map(|o| serde_json::to_string_pretty(o).unwrap_or_default())
                .unwrap_or_else(|| "<not found>".to_string());
            panic!("{name}: condition not met within {timeout:?}; last seen:\n{shown}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `name` is gone, or panics after `timeout` printing it.
pub async fn wait_gone<K>(api: &kube::Api<K>, name: &str, timeout: Duration)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), api.get_opt(name)).await {
            Ok(Ok(None)) => return,
            Ok(Ok(Some(obj))) if tokio::time::Instant::now() > deadline => panic!(
                "{name} still exists after {timeout:?}:\n{}",
                serde_json::to_string_pretty(&obj).unwrap_or_default()
            ),
            _ if tokio::time::Instant::now() > deadline => {
                panic!("{name}: could not check within {timeout:?}")
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What an install leaves, made directly: the namespace `local-path-storage`, upstream's default
/// ConfigMap `local-path-config` and the StorageClass `local-path` (WaitForFirstConsumer, Delete).
pub async fn install_basics(cluster: &TestCluster) {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{Api, ObjectMeta, PostParams};
    let client = cluster.client();
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: meta("local-path-storage"),
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "local-path-storage");
    let map = ConfigMap {
        metadata: meta("local-path-config"),
        data: Some(lpp::config::default_config_map_data()),
        ..ConfigMap::default()
    };
    maps.create(&PostParams::default(), &map).await.unwrap();
    let classes: Api<StorageClass> = Api::all(client);
    let class = StorageClass {
        metadata: meta("local-path"),
        provisioner: "rancher.io/local-path".into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..StorageClass::default()
    };
    classes
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
}
