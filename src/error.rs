//! The crate's top-level error, and the exit code ([`crate::exit`]) each kind of failure maps to,
//! in one place: [`Error::exit`].

use crate::exit::Exit;

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

    /// No connection to the cluster could be set up.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),

    /// Output or a confirmation failed.
    #[error(transparent)]
    Ui(#[from] crate::ui::Error),

    /// The `local-path-config` ConfigMap (or `--config`/`--helper-pod-file`) cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::Error),

    /// `lpp install`, `uninstall`, `manifests` or `status` failed.
    #[error(transparent)]
    Install(#[from] crate::install::Error),

    /// `lpp run` stopped.
    #[error(transparent)]
    Run(#[from] crate::controller::Error),

    /// `lpp gc` (or `usage`) failed.
    #[error(transparent)]
    Gc(#[from] crate::gc::Error),

    /// `lpp check` failed.
    #[error(transparent)]
    Check(#[from] crate::check::Error),

    /// `lpp demo` failed.
    #[error(transparent)]
    Demo(#[from] crate::demo::Error),

    /// Moving or adopting a volume failed.
    #[error(transparent)]
    Mobility(#[from] crate::mobility::Error),

    /// `lpp sandbox` failed.
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::Error),

    /// The server did not answer what was asked (`lpp version`).
    #[error("{0}")]
    Server(String),

    /// Writing the generated files failed.
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
            Error::Check(e) => e.exit(),
            Error::Install(e) => e.exit(),
            Error::Mobility(e) => e.exit(),
            _ => Exit::Failure,
        }
    }
}
