//! `lpp demo`: the classic local-path walkthrough as a narrated script, and its reverse.
//!
//! The blog post that made local-path-provisioner popular takes six steps: install, a claim, a pod
//! mounting it, the PV Bound, a file written by exec, the same file found on the node. `lpp demo`
//! runs them against the current context (or the embedded sandbox with `--sandbox`) and adds a
//! seventh: delete the pod and the claim and watch the volume and its directory go.
//!
//! The steps are data ([`Step`]: title, what happens underneath, the kubectl equivalent); the walk
//! in [`walk`] carries them out with a deadline on every wait, and each step ends in a
//! [`StepRecord`] whose `ok` says whether its check passed. The demo exits 0 only when every
//! check passed.

mod walk;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub use walk::run;

/// The manifests of the walkthrough, the same ones a user applies by hand with kubectl.
pub const CLAIM_MANIFEST: &str = include_str!("../../examples/pvc.yaml");
/// The pod of the walkthrough.
pub const POD_MANIFEST: &str = include_str!("../../examples/pod.yaml");

/// What the demo writes into the volume, and expects to read back on the pod and on the node.
pub const PAYLOAD: &str = "local-path-test\n";

/// How `lpp demo` runs, as the command line asked.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Run on the embedded sandbox cluster instead of the current kubeconfig context
    /// (`--sandbox`).
    pub sandbox: bool,
    /// Run straight through (`--yes`, `--non-interactive`, or stdin not a terminal).
    pub non_interactive: bool,
    /// Stop after finding the file on the node and leave the namespace, claim and pod in place
    /// (`--keep`); the reclaim step is then skipped.
    pub keep: bool,
    /// The demo's namespace; `None` means a fresh `lpp-demo-*` one.
    pub namespace: Option<String>,
    /// The StorageClass the demo's claim asks for (`--storage-class`, by default upstream's
    /// `local-path`).
    pub storage_class: String,
    /// The container image of the demo pod and the node readers (`--image`, by default
    /// `busybox`).
    pub image: String,
    /// How long each wait of a step may take before the step fails (`--timeout`, by default two
    /// minutes); the clean-up waits as long for the volume to go.
    pub step_timeout: Duration,
}

/// One step of the walkthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Install the provisioner: its StorageClass, ConfigMap and Deployment.
    Install,
    /// Create the claim `local-path-pvc`, which stays Pending until a pod uses it.
    Claim,
    /// Create the pod `volume-test` mounting the claim, which makes the provisioner create a PV
    /// on the pod's node.
    Pod,
    /// See the PV created and the claim Bound to it.
    Bound,
    /// Write a file into the volume by exec in the pod, and read it back.
    Write,
    /// Find the same file in the volume's directory on the node.
    NodeFile,
    /// Delete the pod and the claim, and watch the PV and its directory go.
    Reclaim,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 7] = [
        Step::Install,
        Step::Claim,
        Step::Pod,
        Step::Bound,
        Step::Write,
        Step::NodeFile,
        Step::Reclaim,
    ];

    /// 1-based position.
    pub fn number(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }

    /// The step's one-line title, as the narration shows it.
    pub fn title(self) -> &'static str {
        match self {
            Step::Install => "Install the provisioner",
            Step::Claim => "Create the claim local-path-pvc",
            Step::Pod => "Create the pod volume-test, mounting the claim at /data",
            Step::Bound => "See the PV created and the claim Bound",
            Step::Write => "Write a file into the volume by exec, and read it back",
            Step::NodeFile => "Find the same file in the node's storage directory",
            Step::Reclaim => "Delete the pod and the claim, and watch the volume go",
        }
    }

    /// One sentence of what happens underneath.
    pub fn underneath(self) -> &'static str {
        match self {
            Step::Install => {
                "The StorageClass names the provisioner; the ConfigMap local-path-config says where \
                 volumes live on each node; a provisioning loop holding the Lease does the work."
            }
            Step::Claim => {
                "The class binds WaitForFirstConsumer, so the claim stays Pending until a pod uses \
                 it: only then is it known which node's disk to use."
            }
            Step::Pod => {
                "The scheduler picks a node and writes it into the claim's \
                 volume.kubernetes.io/selected-node annotation; the provisioner runs a helper pod \
                 there that makes the directory, then creates a PV pinned to that node."
            }
            Step::Bound => {
                "The PV controller binds the PV to the claim through its claimRef; the kubelet then \
                 starts the pod with the directory mounted at /data."
            }
            Step::Write => {
                "The write goes through the container's /data straight into the directory on the \
                 node's own disk."
            }
            Step::NodeFile => {
                "A short-lived pod pinned to that node mounts the PV's directory and prints the \
                 file: no ssh needed."
            }
            Step::Reclaim => {
                "With reclaimPolicy Delete the released PV's directory is removed by a teardown \
                 helper pod on its node, then the PV itself is deleted."
            }
        }
    }

    /// The kubectl commands that do the same by hand.
    pub fn kubectl(self, namespace: &str) -> Vec<String> {
        let ns = namespace;
        match self {
            Step::Install => vec!["lpp install   # or: lpp manifests | kubectl apply -f -".into()],
            Step::Claim => vec![format!("kubectl -n {ns} apply -f examples/pvc.yaml")],
            Step::Pod => vec![format!("kubectl -n {ns} apply -f examples/pod.yaml")],
            Step::Bound => vec![
                "kubectl get pv".into(),
                format!("kubectl -n {ns} get pvc local-path-pvc"),
            ],
            Step::Write => vec![
                format!(
                    "kubectl -n {ns} exec volume-test -- sh -c 'echo local-path-test > /data/test'"
                ),
                format!("kubectl -n {ns} exec volume-test -- cat /data/test"),
            ],
            Step::NodeFile => {
                vec!["kubectl debug node/<node> -it --image=busybox -- cat /host<path>/test".into()]
            }
            Step::Reclaim => vec![
                format!("kubectl -n {ns} delete pod volume-test"),
                format!("kubectl -n {ns} delete pvc local-path-pvc"),
                "kubectl get pv -w".into(),
            ],
        }
    }
}

/// What one step did and whether its check passed; `-o json` prints one per line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// The `apiVersion` and `kind` (`DemoStep`) of the printed document.
    #[serde(flatten)]
    pub type_meta: crate::ui::TypeMeta,
    /// The step's 1-based position in the walkthrough.
    pub step: usize,
    /// Which step this is.
    pub name: Step,
    /// The step's title.
    pub title: &'static str,
    /// Whether the step's check passed.
    pub ok: bool,
    /// The step's findings, such as `node`, `volume`, `path`, `read`, `selectedNode`.
    pub facts: BTreeMap<&'static str, String>,
    /// Why the check failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("step {number} ({title}) failed: {problem}")]
    /// A step's check did not pass; the objects made so far are cleaned up.
    StepFailed {
        /// The step's 1-based position.
        number: usize,
        /// The step's title.
        title: &'static str,
        /// What went wrong, as the step found it.
        problem: String,
    },

    /// Ctrl-C stopped the demo.
    #[error("the demo was interrupted; {}", cleaned(left))]
    Interrupted {
        /// What the clean-up could not remove, and why; `None` when it removed everything.
        left: Option<String>,
    },

    /// The user answered q at the pause after a step.
    #[error("the demo was stopped at step {step}; {}", cleaned(left))]
    Quit {
        /// The 1-based position of the last step that ran.
        step: usize,
        /// What the clean-up could not remove, and why; `None` when it removed everything.
        left: Option<String>,
    },

    /// An embedded example manifest does not parse as its kind of object.
    #[error("cannot read the demo manifest {name}: {message}")]
    Manifest {
        /// The manifest's path in the repository, such as `examples/pvc.yaml`.
        name: &'static str,
        /// The parser's message.
        message: String,
    },

    /// Printing or asking on the terminal failed, or the user declined.
    #[error(transparent)]
    Ui(#[from] crate::ui::Error),

    /// The kubeconfig could not be read or the cluster could not be reached.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),

    /// The demo could not get ready: no cluster or sandbox to run on, no namespace, no terminal
    /// to read the answer from.
    #[error("{0}")]
    Setup(String),
}

/// What the clean-up after a stop achieved, for the message.
fn cleaned(left: &Option<String>) -> String {
    match left {
        None => "its objects were cleaned up".to_owned(),
        Some(left) => format!("its objects were cleaned up except: {left}"),
    }
}

impl Error {
    /// The process exit code this error ends `lpp demo` with.
    pub fn exit(&self) -> crate::exit::Exit {
        match self {
            Error::Ui(e) => e.exit(),
            Error::Interrupted { .. } => crate::exit::Exit::Interrupted,
            _ => crate::exit::Exit::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_in_order() {
        let numbers: Vec<usize> = Step::ALL.iter().map(|s| s.number()).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn every_step_is_narrated_with_a_kubectl_equivalent() {
        for step in Step::ALL {
            assert!(!step.title().is_empty());
            assert!(step.underneath().ends_with('.'), "{step:?}");
            let commands = step.kubectl("lpp-demo-x");
            assert!(!commands.is_empty(), "{step:?}");
        }
        assert!(Step::Claim.kubectl("ns1")[0].contains("-n ns1"));
    }

    #[test]
    fn the_example_manifests_are_the_classic_ones() {
        let claim: k8s_openapi::api::core::v1::PersistentVolumeClaim =
            serde_saphyr::from_str(CLAIM_MANIFEST).unwrap();
        assert_eq!(claim.metadata.name.as_deref(), Some("local-path-pvc"));
        let pod: k8s_openapi::api::core::v1::Pod = serde_saphyr::from_str(POD_MANIFEST).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("volume-test"));
        let mounts = pod.spec.unwrap().containers[0]
            .volume_mounts
            .clone()
            .unwrap();
        assert_eq!(mounts[0].mount_path, "/data");
    }
}
