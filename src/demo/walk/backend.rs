//! Where the demo runs: the current context, or an embedded sandbox offered when the cluster
//! cannot be reached (or asked for with `--sandbox`).

use std::time::Duration;

use crate::cluster::{self, Target};
use crate::demo::Error;
use crate::sandbox::{Faults, Sandbox, SandboxOptions};
use crate::ui::{self, Ui};

/// Where the demo runs: the current context, or an embedded sandbox in a temporary directory
/// that goes when the demo ends.
pub(super) struct Backend {
    pub(super) client: kube::Client,
    pub(super) sandbox: Option<Sandbox>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    pub(super) async fn connect(ui: &Ui, target: &Target, sandbox: bool) -> Result<Backend, Error> {
        if sandbox {
            return Backend::sandbox(ui).await;
        }
        let cluster = cluster::connect(target).await?;
        let probe = tokio::time::timeout(REACH_TIMEOUT, cluster.client.apiserver_version()).await;
        let unreachable = match probe {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {}", ui::age(REACH_TIMEOUT))),
        };
        let Some(why) = unreachable else {
            // A real cluster: say which one before anything is created there.
            ui.confirm(&format!(
                "Run the demo on context {} ({})? It installs the provisioner there if the \
                 class is missing and creates a claim and a pod in a fresh namespace",
                cluster.context, cluster.server
            ))?;
            return Ok(Backend {
                client: cluster.client,
                sandbox: None,
                _dir: None,
            });
        };
        let question = format!(
            "cannot reach the cluster of context {} ({}): {why}. Run the demo on the embedded sandbox instead",
            cluster.context, cluster.server
        );
        match ui.confirm(&question) {
            Ok(()) => Backend::sandbox(ui).await,
            Err(_) => Err(Error::Setup(format!(
                "cannot reach the cluster of context {} ({}): {why}; check the kubeconfig, or run `lpp demo --sandbox` to use the embedded sandbox",
                cluster.context, cluster.server
            ))),
        }
    }

    pub(super) async fn sandbox(ui: &Ui) -> Result<Backend, Error> {
        let dir = tempfile::Builder::new()
            .prefix("lpp-demo-sandbox-")
            .tempdir()
            .map_err(|e| Error::Setup(format!("cannot make a directory for the sandbox: {e}")))?;
        let sandbox = Sandbox::start(SandboxOptions {
            dir: dir.path().to_path_buf(),
            nodes: 2,
            faults: Faults::default(),
            ..SandboxOptions::default()
        })
        .await
        .map_err(|e| Error::Setup(e.to_string()))?;
        ui.note(&format!(
            "Running on the embedded sandbox: nodes node-1 and node-2 are directories under {}",
            sandbox.dir().display()
        ));
        Ok(Backend {
            client: sandbox.client(),
            sandbox: Some(sandbox),
            _dir: Some(dir),
        })
    }

    pub(super) async fn stop(self) {
        if let Some(sandbox) = self.sandbox {
            sandbox.shutdown().await;
        }
    }
}

/// How long to wait for the API server before offering the sandbox.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);
