//! A pod's status as its kubelet reports it: a pure model of its containers' states, the
//! phase and `status` object derived from it as a real kubelet derives them, and the one task
//! per pod that writes that status to the API whenever the model changes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(super) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// One container's state, as the status reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running: why.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since.
    Running {
        /// RFC 3339.
        started_at: String,
    },
    /// Ended.
    Terminated {
        /// The exit code.
        exit_code: i32,
        /// `Completed`, `Error`, `StartError`.
        reason: String,
        /// The termination message.
        message: Option<String>,
        /// RFC 3339.
        started_at: String,
        /// RFC 3339.
        finished_at: String,
    },
}

impl State {
    fn json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
            } => json!({"terminated": {
                "exitCode": exit_code, "reason": reason, "message": message,
                "startedAt": started_at, "finishedAt": finished_at,
            }}),
        }
    }
}

/// One container in the pod's status model.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerModel {
    /// Its name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Whether it is an init container.
    pub init: bool,
    /// The current state.
    pub state: State,
    /// The previous instance's end, after a restart.
    pub last: Option<State>,
    /// Restarts so far.
    pub restarts: i32,
    /// The runtime id of the current instance.
    pub id: String,
}

/// The pod's status as the kubelet knows it; [`status`] renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodModel {
    /// Init containers first, then the others.
    pub containers: Vec<ContainerModel>,
    /// When the kubelet took the pod.
    pub start_time: String,
    /// `Never`, `OnFailure` or `Always`.
    pub restart_policy: String,
    /// A pod-level failure (e.g. a refused volume), which makes the pod Failed.
    pub failure: Option<(String, String)>,
}

impl PodModel {
    pub(super) fn new(pod: &Pod) -> PodModel {
        let spec = pod.spec.clone().unwrap_or_default();
        let model = |c: &Container, init: bool| ContainerModel {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            init,
            state: State::Waiting {
                reason: if init || spec.init_containers.as_ref().is_none_or(Vec::is_empty) {
                    "ContainerCreating".into()
                } else {
                    "PodInitializing".into()
                },
                message: None,
            },
            last: None,
            restarts: 0,
            id: String::new(),
        };
        let mut containers: Vec<ContainerModel> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| model(c, true))
            .collect();
        containers.extend(spec.containers.iter().map(|c| model(c, false)));
        PodModel {
            containers,
            start_time: now(),
            restart_policy: spec.restart_policy.unwrap_or_else(|| "Always".into()),
            failure: None,
        }
    }

    pub(super) fn container(&mut self, name: &str, init: bool) -> Option<&mut ContainerModel> {
        self.containers
            .iter_mut()
            .find(|c| c.name == name && c.init == init)
    }
}

/// The pod phase for a model, as a real kubelet derives it.
pub fn phase(model: &PodModel) -> &'static str {
    if model.failure.is_some() {
        return "Failed";
    }
    let init_failed_for_good = model.containers.iter().any(|c| {
        c.init
            && model.restart_policy == "Never"
            && matches!(c.state, State::Terminated { exit_code, .. } if exit_code != 0)
    });
    if init_failed_for_good {
        return "Failed";
    }
    let init_done = model
        .containers
        .iter()
        .filter(|c| c.init)
        .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
    if !init_done {
        return "Pending";
    }
    let main: Vec<&ContainerModel> = model.containers.iter().filter(|c| !c.init).collect();
    if main
        .iter()
        .any(|c| matches!(c.state, State::Waiting { .. }) && c.last.is_none())
    {
        return "Pending";
    }
    if main
        .iter()
        .any(|c| matches!(c.state, State::Running { .. } | State::Waiting { .. }))
    {
        return "Running";
    }
    if main
        .iter()
        .any(|c| matches!(c.state, State::Terminated { exit_code, .. } if exit_code != 0))
    {
        "Failed"
    } else {
        "Succeeded"
    }
}

/// The pod's `status` object for a model.
pub fn status(model: &PodModel, pod_ip: &str) -> Value {
    let phase = phase(model);
    let statuses = |init: bool| -> Vec<Value> {
        model
            .containers
            .iter()
            .filter(|c| c.init == init)
            .map(|c| {
                let running = matches!(c.state, State::Running { .. });
                json!({
                    "name": c.name,
                    "image": c.image,
                    "imageID": if c.id.is_empty() { String::new() } else { format!("{}@sandbox", c.image) },
                    "containerID": if c.id.is_empty() { None } else { Some(format!("sandbox://{}", c.id)) },
                    "ready": running || (init && matches!(c.state, State::Terminated { exit_code: 0, .. })),
                    "started": running,
                    "restartCount": c.restarts,
                    "state": c.state.json(),
                    "lastState": c.last.as_ref().map_or(json!({}), State::json),
                })
            })
            .collect()
    };
    let init_done = model
        .containers
        .iter()
        .filter(|c| c.init)
        .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
    let all_running = model
        .containers
        .iter()
        .filter(|c| !c.init)
        .all(|c| matches!(c.state, State::Running { .. }));
    let ready = all_running && phase == "Running";
    let terminal = phase == "Succeeded" || phase == "Failed";
    let condition = |type_: &str, ok: bool| {
        let reason = match (type_, ok, terminal) {
            (_, true, _) => None,
            ("Ready" | "ContainersReady", false, true) => Some("PodCompleted"),
            ("Ready" | "ContainersReady", false, false) => Some("ContainersNotReady"),
            ("Initialized", false, _) => Some("ContainersNotInitialized"),
            _ => None,
        };
        json!({"type": type_, "status": if ok { "True" } else { "False" },
               "reason": reason, "lastTransitionTime": model.start_time})
    };
    let (reason, message) = match &model.failure {
        Some((r, m)) => (Some(r.clone()), Some(m.clone())),
        None => (None, None),
    };
    json!({
        "phase": phase,
        "reason": reason,
        "message": message,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": model.start_time,
        "qosClass": "BestEffort",
        "conditions": [
            condition("PodReadyToStartContainers", true),
            condition("Initialized", init_done),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", true),
        ],
        "initContainerStatuses": statuses(true),
        "containerStatuses": statuses(false),
    })
}

/// Shared status of one pod, written to the API by one writer task.
#[derive(Clone)]
pub(super) struct StatusSink {
    pub(super) model: Arc<Mutex<PodModel>>,
    pub(super) dirty: Arc<Notify>,
}

impl StatusSink {
    pub(super) fn update(&self, f: impl FnOnce(&mut PodModel)) {
        if let Ok(mut m) = self.model.lock() {
            f(&mut m);
        }
        self.dirty.notify_one();
    }

    fn snapshot(&self) -> Option<PodModel> {
        self.model.lock().ok().map(|m| m.clone())
    }
}

pub(super) async fn write_status(
    client: Client,
    namespace: String,
    name: String,
    sink: StatusSink,
    stop: CancellationToken,
) {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let mut last: Option<Value> = None;
    loop {
        let stopping = tokio::select! {
            _ = sink.dirty.notified() => false,
            _ = stop.cancelled() => true,
        };
        if stopping {
            return;
        }
        let Some(model) = sink.snapshot() else { return };
        let next = status(&model, "127.0.0.1");
        if last.as_ref() == Some(&next) {
            continue;
        }
        let patch = json!({ "status": next });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => last = Some(next),
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(e) => {
                tracing::debug!(pod = %name, error = %e, "sandbox kubelet: status write failed, retrying");
                sink.dirty.notify_one();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::node::termination;

    fn model(states: Vec<(bool, State)>, policy: &str) -> PodModel {
        PodModel {
            containers: states
                .into_iter()
                .enumerate()
                .map(|(i, (init, state))| ContainerModel {
                    name: format!("c{i}"),
                    image: "busybox".into(),
                    init,
                    state,
                    last: None,
                    restarts: 0,
                    id: String::new(),
                })
                .collect(),
            start_time: "2026-01-01T00:00:00Z".into(),
            restart_policy: policy.into(),
            failure: None,
        }
    }

    fn done(code: i32) -> State {
        State::Terminated {
            exit_code: code,
            reason: termination::reason(code).into(),
            message: None,
            started_at: String::new(),
            finished_at: String::new(),
        }
    }

    #[test]
    fn phases() {
        let waiting = State::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        let running = State::Running {
            started_at: String::new(),
        };
        assert_eq!(
            phase(&model(vec![(false, waiting.clone())], "Never")),
            "Pending"
        );
        assert_eq!(
            phase(&model(vec![(false, running.clone())], "Never")),
            "Running"
        );
        assert_eq!(phase(&model(vec![(false, done(0))], "Never")), "Succeeded");
        assert_eq!(
            phase(&model(vec![(false, done(0)), (false, done(2))], "Never")),
            "Failed"
        );
        assert_eq!(
            phase(&model(
                vec![(true, done(1)), (false, waiting.clone())],
                "Never"
            )),
            "Failed"
        );
        assert_eq!(
            phase(&model(vec![(true, running), (false, waiting)], "Always")),
            "Pending"
        );
    }

    #[test]
    fn a_failed_container_reports_its_termination() {
        let m = model(
            vec![(
                false,
                State::Terminated {
                    exit_code: 1,
                    reason: "Error".into(),
                    message: Some("mkdir: can't create directory\n".into()),
                    started_at: "a".into(),
                    finished_at: "b".into(),
                },
            )],
            "Never",
        );
        let s = status(&m, "127.0.0.1");
        assert_eq!(s["phase"], "Failed");
        let t = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 1);
        assert_eq!(t["reason"], "Error");
        assert_eq!(t["message"], "mkdir: can't create directory\n");
        assert_eq!(s["conditions"][2]["reason"], "PodCompleted");
    }
}
