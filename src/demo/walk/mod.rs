//! Carries out the demo's steps against a cluster: every wait has the step timeout, and a wait that
//! times out reports the object's events and conditions.
//!
//! Here: the walk itself (its state, narration, pauses and waits). Where it runs (a cluster or
//! an embedded sandbox) is in `backend.rs`, the seven steps in `steps.rs`, the clean-up in
//! `cleanup.rs`, and the kubectl-like tables it shows in `tables.rs`.

mod backend;
mod cleanup;
mod steps;
mod tables;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write as _;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::wait::{Condition, await_condition};
use serde::de::DeserializeOwned;

use crate::cluster::{self, Target};
use crate::demo::{DemoOptions, Error, Step, StepRecord};
use crate::exit::Exit;
use crate::sandbox::Sandbox;
use crate::ui::{self, Format, Ui};

use backend::Backend;

const CLAIM: &str = "local-path-pvc";
const POD: &str = "volume-test";
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// `lpp demo`: runs the walkthrough and cleans up after it, also on Ctrl-C.
pub async fn run(ui: &Ui, target: &Target, options: DemoOptions) -> Result<Exit, Error> {
    let backend = Backend::connect(ui, target, options.sandbox).await?;
    let mut walk = Walk::new(backend.client.clone(), ui, options);
    walk.sandbox = backend.sandbox.clone();
    let outcome = tokio::select! {
        outcome = walk.steps() => outcome,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted { left: None }),
    };
    let left = walk.clean_up().await;
    walk.stop_loop().await;
    backend.stop().await;
    match outcome {
        Err(Error::Interrupted { .. }) => Err(Error::Interrupted { left }),
        Err(Error::Quit { step, .. }) => Err(Error::Quit { step, left }),
        other => {
            if let Some(left) = left {
                ui.warn(&left);
            }
            other.map(|()| Exit::Success)
        }
    }
}

struct Walk<'a> {
    client: kube::Client,
    ui: &'a Ui,
    options: DemoOptions,
    /// The demo's namespace once known, and whether the demo created it.
    namespace: Option<(String, bool)>,
    /// Set once the volume is known: (PV name, node, directory on the node).
    volume: Option<(String, String, String)>,
    readers: u32,
    /// Set when running on the embedded sandbox, whose node directories the demo can also show.
    sandbox: Option<Sandbox>,
    /// The in-process provisioning loop, when the demo started one: its stop signal and task.
    provisioner: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// The in-process provisioner's action lines.
    provisioner_log: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl<'a> Walk<'a> {
    fn new(client: kube::Client, ui: &'a Ui, options: DemoOptions) -> Self {
        Self {
            client,
            ui,
            options,
            namespace: None,
            volume: None,
            readers: 0,
            sandbox: None,
            provisioner: None,
            provisioner_log: None,
        }
    }

    fn ns(&self) -> &str {
        self.namespace.as_ref().map_or("default", |(ns, _)| ns)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), self.ns())
    }

    async fn steps(&mut self) -> Result<(), Error> {
        let last = if self.options.keep {
            Step::NodeFile
        } else {
            Step::Reclaim
        };
        for step in Step::ALL {
            if step == Step::Claim && self.namespace.is_none() {
                self.namespace = Some(self.ensure_namespace().await.map_err(Error::Setup)?);
            }
            self.announce(step)?;
            let mut facts = BTreeMap::new();
            let outcome = match step {
                Step::Install => self.install(&mut facts).await,
                Step::Claim => self.claim(&mut facts).await,
                Step::Pod => self.pod(&mut facts).await,
                Step::Bound => self.bound(&mut facts).await,
                Step::Write => self.write(&mut facts).await,
                Step::NodeFile => self.node_file(&mut facts).await,
                Step::Reclaim => self.reclaim(&mut facts).await,
            };
            let problem = outcome.err();
            self.record(StepRecord {
                type_meta: ui::TypeMeta::new("DemoStep"),
                step: step.number(),
                name: step,
                title: step.title(),
                ok: problem.is_none(),
                facts,
                problem: problem.clone(),
            })?;
            if let Some(problem) = problem {
                return Err(Error::StepFailed {
                    number: step.number(),
                    title: step.title(),
                    problem,
                });
            }
            if step == last {
                break;
            }
            self.pause(step).await?;
        }
        if self.options.keep {
            self.say(&format!(
                "Kept namespace {ns} with its claim and pod. Clean up with: kubectl delete namespace {ns}",
                ns = self.ns()
            ))?;
        }
        Ok(())
    }

    fn table_mode(&self) -> bool {
        matches!(self.ui.format(), Format::Table | Format::Wide)
    }

    /// Narration goes to stdout in table mode; `-o json` prints only the step records.
    fn say(&self, text: &str) -> Result<(), Error> {
        if self.table_mode() {
            self.ui.write_stdout(text)?;
        }
        Ok(())
    }

    /// [`Walk::say`] inside a step, whose problems are text.
    fn show(&self, text: &str) -> Result<(), String> {
        self.say(text).map_err(|e| e.to_string())
    }

    fn announce(&self, step: Step) -> Result<(), Error> {
        let mut text = format!(
            "\n{}\n  {}\n",
            self.ui
                .bold(&format!("[{}/7] {}", step.number(), step.title())),
            step.underneath()
        );
        for command in step.kubectl(self.ns()) {
            text.push_str(&format!("  {}\n", self.ui.dim(&format!("$ {command}"))));
        }
        self.say(&text)
    }

    fn record(&self, record: StepRecord) -> Result<(), Error> {
        if self.table_mode() {
            let mark = if record.ok {
                self.ui.good("✓")
            } else {
                self.ui.bad("✗")
            };
            let facts: Vec<String> = record
                .facts
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let mut line = format!("  {mark} {}", facts.join("  "));
            if let Some(problem) = &record.problem {
                line.push_str(&format!("\n  {}", self.ui.bad(problem)));
            }
            self.ui.write_stdout(&line)?;
        } else {
            let line = serde_json::to_string(&record).map_err(|e| ui::Error::Render {
                format: "json",
                message: e.to_string(),
            })?;
            self.ui.write_stdout(&line)?;
        }
        Ok(())
    }

    /// Waits for Enter (or q) between steps. The terminal is read on a blocking thread so that a
    /// Ctrl-C at the prompt stops the demo at once.
    async fn pause(&self, done: Step) -> Result<(), Error> {
        if self.options.non_interactive || !self.ui.interactive() {
            return Ok(());
        }
        {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "{}",
                self.ui.dim(&format!(
                    "Press Enter for step {}, or q and Enter to quit: ",
                    done.number() + 1
                ))
            );
            let _ = err.flush();
        }
        let answer = tokio::task::spawn_blocking(|| {
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer).map(|_| answer)
        })
        .await
        .map_err(|e| Error::Setup(format!("cannot read from the terminal: {e}")))?
        .map_err(|e| Error::Setup(format!("cannot read from the terminal: {e}")))?;
        if answer.trim().eq_ignore_ascii_case("q") {
            return Err(Error::Quit {
                step: done.number(),
                left: None,
            });
        }
        Ok(())
    }

    /// Waits for `condition` on the named object; on timeout the problem names the object's
    /// events and conditions.
    async fn wait_for<K>(
        &self,
        api: Api<K>,
        name: &str,
        what: &str,
        condition: impl Condition<K>,
    ) -> Result<Option<K>, String>
    where
        K: kube::Resource + Clone + Debug + Send + DeserializeOwned + serde::Serialize + 'static,
        <K as kube::Resource>::DynamicType: Default,
    {
        let spinner = self.ui.spinner(&format!("waiting for {what}"));
        let waited = tokio::time::timeout(
            self.options.step_timeout,
            await_condition(api, name, condition),
        )
        .await;
        spinner.finish_and_clear();
        match waited {
            Ok(Ok(object)) => Ok(object),
            Ok(Err(e)) => Err(format!("watching {name} failed: {e}")),
            Err(_) => {
                let kind = K::kind(&K::DynamicType::default()).to_string();
                let events = self.events_of(&kind, name).await;
                Err(format!(
                    "timed out after {} waiting for {what}; events of {kind} {name}: {}",
                    ui::age(self.options.step_timeout),
                    if events.is_empty() {
                        "none".to_owned()
                    } else {
                        events.join("; ")
                    }
                ))
            }
        }
    }

    /// `reason: message` of the object's events, oldest first.
    async fn events_of(&self, kind: &str, name: &str) -> Vec<String> {
        let namespaced = kind != "PersistentVolume";
        let api: Api<Event> = if namespaced {
            self.api()
        } else {
            Api::all(self.client.clone())
        };
        let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
        match api.list(&ListParams::default().fields(&selector)).await {
            Ok(list) => {
                let mut events = list.items;
                events.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
                events
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}: {}",
                            e.type_.as_deref().unwrap_or("Normal"),
                            e.reason.as_deref().unwrap_or(""),
                            e.message.as_deref().unwrap_or("").trim()
                        )
                    })
                    .collect()
            }
            Err(e) => vec![format!("(cannot list events: {})", cluster::describe(&e))],
        }
    }
}

/// Deletes the named object and waits (within the step timeout) until it is gone.
async fn delete_and_wait<K>(walk: &Walk<'_>, api: Api<K>, name: &str) -> Result<(), String>
where
    K: kube::Resource + Clone + Debug + Send + DeserializeOwned + serde::Serialize + 'static,
    <K as kube::Resource>::DynamicType: Default,
{
    api.delete(name, &DeleteParams::default())
        .await
        .map_err(|e| format!("cannot delete {name}: {}", cluster::describe(&e)))?;
    walk.wait_for(
        api,
        name,
        &format!("{name} to be deleted"),
        |o: Option<&K>| o.is_none(),
    )
    .await
    .map(|_| ())
}
