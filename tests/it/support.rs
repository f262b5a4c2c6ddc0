//! Small fixtures shared by the integration tests.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("poll the command").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let Output { stdout, stderr, .. } = child.wait_with_output().expect("collect output");
            panic!(
                "{cmd:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("collect output");
    Finished {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
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
