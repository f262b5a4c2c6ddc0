//! The crate's top-level error, and the exit code each kind of failure maps to.

/// The process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything went fine.
    Success,
    /// 1: something failed (or, with `gc --exit-code`, orphans were found).
    Failure,
    /// 2: the command line was wrong.
    Usage,
    /// 3: refused for safety, needs `--yes`, or a check found something that needs attention.
    Refused,
    /// 130: stopped by Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Refused => 3,
            Exit::Interrupted => 130,
        }
    }
}

/// Everything a command can fail with. Each module keeps its own typed error; this wraps them so
/// that the edge prints one line (the chain under `-v`) and picks the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),

    /// Refused for safety, or confirmation is needed and there is no terminal.
    #[error("{0}")]
    Refused(String),

    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),

    #[error(transparent)]
    Ui(#[from] crate::ui::Error),

    /// The `local-path-config` ConfigMap (or `--config`/`--helper-pod-file`) cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::Error),

    #[error(transparent)]
    Install(#[from] crate::install::Error),

    #[error(transparent)]
    Run(#[from] crate::controller::Error),

    #[error(transparent)]
    Gc(#[from] crate::gc::Error),

    #[error(transparent)]
    Demo(#[from] crate::demo::Error),

    #[error(transparent)]
    Mobility(#[from] crate::mobility::Error),

    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::Error),

    /// The server did not answer what was asked (`lpp version`).
    #[error("{0}")]
    Server(String),

    #[error("cannot write the generated files: {0}")]
    Generate(#[source] std::io::Error),
}

impl Error {
    /// The exit code this error ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Refused(_) => Exit::Refused,
            Error::Ui(e) => e.exit(),
            Error::Sandbox(crate::sandbox::Error::Options(_)) => Exit::Usage,
            Error::Run(crate::controller::Error::Options(_)) => Exit::Usage,
            Error::Demo(e) => e.exit(),
            Error::Gc(e) => e.exit(),
            Error::Install(e) => e.exit(),
            Error::Mobility(e) => e.exit(),
            _ => Exit::Failure,
        }
    }
}
