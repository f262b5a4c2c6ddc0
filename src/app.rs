//! Carries out a resolved command: builds the user interface, reaches the cluster when the command
//! needs one, and calls the module that does the work.

use std::time::Duration;

use serde::Serialize;

use crate::cli::{Invocation, Plan};
use crate::cluster;
use crate::error::Error;
use crate::exit::Exit;
use crate::ui::{self, Report, Ui};

/// Runs the command; the caller maps the result to the process exit code.
pub async fn execute(invocation: Invocation) -> Result<Exit, Error> {
    let ui = Ui::new(invocation.ui);
    let target = invocation.target;
    match invocation.plan {
        Plan::Completion(shell) => {
            let mut script = Vec::new();
            crate::cli::write_completion(shell, &mut script)
                .map_err(|e| Error::Ui(ui::Error::Write(e)))?;
            ui.write_stdout(&String::from_utf8_lossy(&script))?;
            Ok(Exit::Success)
        }
        Plan::Generate(dir) => {
            let written = crate::cli::write_docs(&dir).map_err(Error::Generate)?;
            ui.note(&format!(
                "wrote {} files under {}",
                written.len(),
                dir.display()
            ));
            Ok(Exit::Success)
        }
        Plan::Version { client_only } => version(&ui, &target, client_only).await,
        Plan::Manifests(settings) => Ok(crate::install::manifests(&ui, &settings)?),
        Plan::Install(options) => Ok(crate::install::install(&ui, &target, options).await?),
        Plan::Uninstall(options) => Ok(crate::install::uninstall(&ui, &target, options).await?),
        Plan::Status(options) => Ok(crate::install::status(&ui, &target, options).await?),
        Plan::Run(mut options) => {
            // Every request of the loop gets a deadline well inside the Lease's duration, so a
            // stalled one cannot outlive the Lease (watches and exec are not bounded).
            let target = cluster::Target {
                request_timeout: target.request_timeout.or(Some(RUN_REQUEST_DEADLINE)),
                creates_repeatable: true,
                ..target
            };
            let cluster = cluster::connect(&target).await?;
            options.origin = format!("context {} at {}", cluster.context, cluster.server);
            // A second Ctrl-C is `interrupted_twice`, which main.rs watches.
            crate::controller::run(cluster.client, options, shutdown_signal()).await?;
            Ok(Exit::Success)
        }
        Plan::Check(options) => Ok(crate::check::check(&ui, &target, options).await?),
        Plan::Gc(options) => Ok(crate::gc::list(&ui, &target, options).await?),
        Plan::GcPrune(options) => Ok(crate::gc::prune(&ui, &target, options).await?),
        Plan::Usage(options) => Ok(crate::capacity::usage(&ui, &target, options).await?),
        Plan::Demo(options) => Ok(crate::demo::run(&ui, &target, options).await?),
        Plan::Adopt(options) => Ok(crate::mobility::adopt::adopt(&ui, &target, options).await?),
        Plan::Move(options) => Ok(crate::mobility::r#move::run(&ui, &target, options).await?),
        Plan::SandboxUp(options) => {
            crate::sandbox::up(options).await?;
            Ok(Exit::Success)
        }
    }
}

/// The deadline of each request `lpp run` makes when `--request-timeout` is not given.
const RUN_REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// `lpp version`: what kubectl version prints, for lpp.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionReport {
    #[serde(flatten)]
    type_meta: ui::TypeMeta,
    client_version: ClientVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<k8s_openapi::apimachinery::pkg::version::Info>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientVersion {
    version: &'static str,
    git_commit: &'static str,
    target: &'static str,
}

impl VersionReport {
    fn client() -> ClientVersion {
        ClientVersion {
            version: env!("CARGO_PKG_VERSION"),
            git_commit: env!("LPP_GIT_COMMIT"),
            target: env!("LPP_TARGET"),
        }
    }
}

impl Report for VersionReport {
    fn tables(&self, _wide: bool) -> Vec<comfy_table::Table> {
        let mut table = ui::table(["component", "version", "detail"]);
        let c = &self.client_version;
        table.add_row(vec![
            "client".to_owned(),
            c.version.to_owned(),
            format!("git {} · {}", c.git_commit, c.target),
        ]);
        match (&self.server_version, &self.server_error) {
            (Some(info), _) => {
                table.add_row(vec![
                    "server".to_owned(),
                    info.git_version.clone(),
                    format!("{} · {}", info.platform, info.go_version),
                ]);
            }
            (None, Some(_)) => {
                table.add_row(vec!["server".to_owned(), "unreachable".to_owned()]);
            }
            (None, None) => {}
        }
        vec![table]
    }
}

/// `lpp version`: the client's version, and the server's unless `--client`. Exits 1 when the
/// server was asked and did not answer, as `kubectl version` does.
async fn version(ui: &Ui, target: &cluster::Target, client_only: bool) -> Result<Exit, Error> {
    let mut report = VersionReport {
        type_meta: ui::TypeMeta::new("VersionReport"),
        client_version: VersionReport::client(),
        server_version: None,
        server_error: None,
    };
    if !client_only {
        let wait = target
            .request_timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(5));
        report.server_error = match cluster::connect(target).await {
            Ok(cluster) => {
                match tokio::time::timeout(wait, cluster.client.apiserver_version()).await {
                    Ok(Ok(info)) => {
                        report.server_version = Some(info);
                        None
                    }
                    Ok(Err(e)) => Some(cluster::request_failed("get", "version", &e)),
                    Err(_) => Some(format!(
                        "cannot reach {} (context {}): no answer within {}",
                        cluster.server,
                        cluster.context,
                        ui::duration(wait)
                    )),
                }
            }
            Err(e) => Some(e.to_string()),
        };
    }
    ui.print(&report)?;
    match report.server_error {
        Some(error) => Err(Error::Server(error)),
        None => Ok(Exit::Success),
    }
}

/// Resolves on the second Ctrl-C or SIGTERM: a command that stops gracefully on the first
/// ([`crate::cli::Plan::stops_gracefully`]) stops at once on the second.
pub async fn interrupted_twice() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    for _ in 0..2 {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
