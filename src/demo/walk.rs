//! Carries out the demo's steps against a cluster: every wait has the step timeout, and a wait that
//! times out reports the object's events and conditions.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write as _;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Container, Event, HostPathVolumeSource, Namespace, PersistentVolume, PersistentVolumeClaim,
    Pod, PodSpec, Volume, VolumeMount,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{
    Api, AttachParams, DeleteParams, ListParams, LogParams, ObjectMeta, PostParams, ResourceExt,
};
use kube::runtime::wait::{Condition, await_condition};
use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt;

use super::{CLAIM_MANIFEST, DemoOptions, Error, PAYLOAD, POD_MANIFEST, Step, StepRecord};
use crate::cluster::{self, Target};
use crate::exit::Exit;
use crate::sandbox::{Faults, Sandbox, SandboxOptions};
use crate::ui::{self, Format, Ui};

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

/// Where the demo runs: the current context, or an embedded sandbox in a temporary directory
/// that goes when the demo ends.
struct Backend {
    client: kube::Client,
    sandbox: Option<Sandbox>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn connect(ui: &Ui, target: &Target, sandbox: bool) -> Result<Backend, Error> {
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

    async fn sandbox(ui: &Ui) -> Result<Backend, Error> {
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

    async fn stop(self) {
        if let Some(sandbox) = self.sandbox {
            sandbox.shutdown().await;
        }
    }
}

/// How long to wait for the API server before offering the sandbox.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

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

    async fn install(&mut self, facts: &mut BTreeMap<&'static str, String>) -> Result<(), String> {
        let classes: Api<StorageClass> = Api::all(self.client.clone());
        let name = self.options.storage_class.clone();
        let existing = classes
            .get_opt(&name)
            .await
            .map_err(|e| format!("cannot read StorageClass {name}: {}", cluster::describe(&e)))?;
        let class = match existing {
            Some(class) => {
                facts.insert("installed", "already".into());
                class
            }
            None => {
                let settings = demo_install(&name);
                let applied = crate::install::apply(&self.client, &settings, false)
                    .await
                    .map_err(|e| e.to_string())?;
                facts.insert("installed", format!("{} objects applied", applied.len()));
                classes.get(&name).await.map_err(|e| {
                    format!(
                        "cannot read StorageClass {name} after installing: {}",
                        cluster::describe(&e)
                    )
                })?
            }
        };
        facts.insert("class", name.clone());
        facts.insert("provisioner", class.provisioner.clone());
        let lease_name = crate::controller::lease_name_for(&class.provisioner);
        match self.lease_holder(&lease_name).await? {
            Some(holder) => {
                facts.insert(
                    "provisioning",
                    format!("by {holder} (holds Lease {lease_name})"),
                );
            }
            None => {
                self.start_loop(&class.provisioner);
                facts.insert(
                    "provisioning",
                    "in-process for the demo's duration (nobody held the Lease)".into(),
                );
            }
        }
        Ok(())
    }

    /// Runs the provisioning loop inside the demo until the demo ends.
    fn start_loop(&mut self, provisioner: &str) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = crate::controller::RunOptions {
            namespace: crate::cli::DEFAULT_NAMESPACE.into(),
            provisioner_name: provisioner.to_owned(),
            config_map: crate::config::CONFIG_MAP_NAME.into(),
            config_file: None,
            helper_pod_file: None,
            service_account_name: crate::install::objects::SERVICE_ACCOUNT.into(),
            helper_image: None,
            workers: 8,
            provisioning_retry_count: None,
            deletion_retry_count: None,
            allow_unsafe_helper_pod_template: false,
            metrics_addr: None,
            log_format: crate::controller::LogFormat::Text,
            lease_name: Some(crate::controller::lease_name_for(provisioner)),
            origin: String::new(),
            executor: None,
        };
        let client = self.client.clone();
        let (lines, received) = tokio::sync::mpsc::unbounded_channel();
        self.provisioner_log = Some(received);
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let run = crate::controller::run_reporting(client, options, shutdown, Some(lines));
            if let Err(e) = run.await {
                tracing::warn!("the demo's provisioning loop stopped: {e}");
            }
        });
        self.provisioner = Some((stop, task));
    }

    /// Who holds the provisioner's Lease right now, in any namespace.
    async fn lease_holder(&self, lease_name: &str) -> Result<Option<String>, String> {
        let leases: Api<Lease> = Api::all(self.client.clone());
        let list = leases
            .list(&ListParams::default().fields(&format!("metadata.name={lease_name}")))
            .await
            .map_err(|e| format!("cannot list Leases: {}", cluster::describe(&e)))?;
        let now = jiff::Timestamp::now();
        Ok(list.items.into_iter().find_map(|lease| {
            let spec = lease.spec?;
            let holder = spec.holder_identity.filter(|h| !h.is_empty())?;
            let renewed = spec.renew_time?.0;
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            (renewed + jiff::SignedDuration::from_secs(duration) > now).then_some(holder)
        }))
    }

    async fn claim(&mut self, facts: &mut BTreeMap<&'static str, String>) -> Result<(), String> {
        facts.insert("namespace", self.ns().to_owned());
        let mut claim: PersistentVolumeClaim = parse(CLAIM_MANIFEST, "examples/pvc.yaml")?;
        if let Some(spec) = claim.spec.as_mut() {
            spec.storage_class_name = Some(self.options.storage_class.clone());
        }
        let claims: Api<PersistentVolumeClaim> = self.api();
        let claim = claims
            .create(&PostParams::default(), &claim)
            .await
            .map_err(|e| format!("cannot create claim {CLAIM}: {}", cluster::describe(&e)))?;
        let phase = claim
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into());
        facts.insert("claim", format!("{CLAIM} ({phase})"));
        Ok(())
    }

    async fn ensure_namespace(&self) -> Result<(String, bool), String> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if let Some(name) = &self.options.namespace {
            let existing = namespaces
                .get_opt(name)
                .await
                .map_err(|e| format!("cannot read namespace {name}: {}", cluster::describe(&e)))?;
            if existing.is_some() {
                return Ok((name.clone(), false));
            }
        }
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: self.options.namespace.clone(),
                generate_name: self
                    .options
                    .namespace
                    .is_none()
                    .then(|| "lpp-demo-".to_owned()),
                labels: Some(
                    [("app.kubernetes.io/managed-by".to_owned(), "lpp".to_owned())].into(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| {
                format!(
                    "cannot create the demo namespace: {}",
                    cluster::describe(&e)
                )
            })?;
        Ok((created.name_any(), true))
    }

    async fn pod(&mut self, facts: &mut BTreeMap<&'static str, String>) -> Result<(), String> {
        let mut pod: Pod = parse(POD_MANIFEST, "examples/pod.yaml")?;
        if let Some(spec) = pod.spec.as_mut() {
            for container in &mut spec.containers {
                container.image = Some(self.options.image.clone());
            }
        }
        let pods: Api<Pod> = self.api();
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| format!("cannot create pod {POD}: {}", cluster::describe(&e)))?;
        let claim = self
            .wait_for(
                self.api::<PersistentVolumeClaim>(),
                CLAIM,
                "the scheduler to choose a node",
                |claim: Option<&PersistentVolumeClaim>| {
                    claim.is_some_and(|c| c.annotations().contains_key(SELECTED_NODE))
                },
            )
            .await?;
        let node = claim
            .and_then(|c| c.annotations().get(SELECTED_NODE).cloned())
            .unwrap_or_default();
        facts.insert("selectedNode", node);
        Ok(())
    }

    async fn bound(&mut self, facts: &mut BTreeMap<&'static str, String>) -> Result<(), String> {
        let claim = self
            .wait_for(
                self.api::<PersistentVolumeClaim>(),
                CLAIM,
                "the claim to be Bound",
                |claim: Option<&PersistentVolumeClaim>| {
                    claim
                        .and_then(|c| c.status.as_ref())
                        .and_then(|s| s.phase.as_deref())
                        == Some("Bound")
                },
            )
            .await?
            .ok_or_else(|| format!("claim {CLAIM} disappeared"))?;
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .ok_or_else(|| format!("claim {CLAIM} is Bound but names no volume"))?;
        self.wait_for(
            self.api::<Pod>(),
            POD,
            "the pod to be Running",
            kube::runtime::conditions::is_pod_running(),
        )
        .await?;
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let volume = volumes
            .get(&volume_name)
            .await
            .map_err(|e| format!("cannot read PV {volume_name}: {}", cluster::describe(&e)))?;
        let (node, path) = volume_location(&volume)
            .ok_or_else(|| format!("PV {volume_name} has no hostPath or local path with a node"))?;
        self.show(&ui::render_table(&volume_table(&volume)))?;
        self.show(&ui::render_table(&claim_table(&claim)))?;
        let events = self.events_of("PersistentVolumeClaim", CLAIM).await;
        if !events.is_empty() {
            self.show(&format!(
                "  events of {CLAIM}:\n    {}",
                events.join("\n    ")
            ))?;
        }
        self.show_provisioner_log()?;
        facts.insert("volume", volume_name.clone());
        facts.insert("node", node.clone());
        facts.insert("path", path.clone());
        self.volume = Some((volume_name, node, path));
        Ok(())
    }

    async fn write(&mut self, facts: &mut BTreeMap<&'static str, String>) -> Result<(), String> {
        let write = format!("echo {} > /data/test", PAYLOAD.trim_end());
        self.exec(&["sh", "-c", &write]).await?;
        let read = self.exec(&["cat", "/data/test"]).await?;
        facts.insert("read", read.trim_end().to_owned());
        if read == PAYLOAD {
            Ok(())
        } else {
            Err(format!(
                "read back {read:?} from /data/test, expected {PAYLOAD:?}"
            ))
        }
    }

    async fn exec(&self, command: &[&str]) -> Result<String, String> {
        let pods: Api<Pod> = self.api();
        let shown = command.join(" ");
        let params = AttachParams::default().stdout(true).stderr(true);
        let attached = pods.exec(POD, command.iter().map(|s| s.to_string()), &params);
        let run = async {
            let mut process = attached
                .await
                .map_err(|e| format!("cannot exec `{shown}` in {POD}: {e}"))?;
            let mut stdout = String::new();
            let mut stderr = String::new();
            let status = process.take_status();
            if let Some(mut out) = process.stdout() {
                out.read_to_string(&mut stdout)
                    .await
                    .map_err(|e| format!("reading the output of `{shown}`: {e}"))?;
            }
            if let Some(mut err) = process.stderr() {
                let _ = err.read_to_string(&mut stderr).await;
            }
            let status = match status {
                Some(status) => status.await,
                None => None,
            };
            match status {
                Some(s) if s.status.as_deref() != Some("Success") => Err(format!(
                    "`{shown}` failed in {POD}: {} {}",
                    s.message.unwrap_or_default(),
                    stderr.trim()
                )),
                _ => Ok(stdout),
            }
        };
        tokio::time::timeout(self.options.step_timeout, run)
            .await
            .map_err(|_| format!("`{shown}` in {POD} did not finish in time"))?
    }

    async fn node_file(
        &mut self,
        facts: &mut BTreeMap<&'static str, String>,
    ) -> Result<(), String> {
        let (_, node, path) = self
            .volume
            .clone()
            .ok_or("the volume is not known: an earlier step failed")?;
        let file = format!("{path}/test");
        let output = self.on_node(&node, &path, &format!("cat '{file}'")).await?;
        facts.insert("node", node.clone());
        facts.insert("file", file.clone());
        facts.insert("content", output.trim_end().to_owned());
        if let Some(sandbox) = &self.sandbox {
            let on_disk = sandbox.node_root(&node).join(file.trim_start_matches('/'));
            let bytes = std::fs::read(&on_disk)
                .map_err(|e| format!("cannot read {}: {e}", on_disk.display()))?;
            facts.insert("sandboxFile", on_disk.display().to_string());
            if bytes != PAYLOAD.as_bytes() {
                return Err(format!(
                    "{} holds {:?}, expected {PAYLOAD:?}",
                    on_disk.display(),
                    String::from_utf8_lossy(&bytes)
                ));
            }
        }
        if output == PAYLOAD {
            Ok(())
        } else {
            Err(format!(
                "{file} on {node} holds {output:?}, expected {PAYLOAD:?}"
            ))
        }
    }

    /// Runs `script` in a short-lived pod pinned to `node` that mounts the parent of `dir`, and
    /// returns its output.
    async fn on_node(&mut self, node: &str, dir: &str, script: &str) -> Result<String, String> {
        self.readers += 1;
        let name = format!("lpp-demo-reader-{}", self.readers);
        let parent = std::path::Path::new(dir)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        let pod = reader_pod(&name, node, &parent, &self.options.image, script);
        let pods: Api<Pod> = self.api();
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| {
                format!(
                    "cannot create pod {name} on {node}: {}",
                    cluster::describe(&e)
                )
            })?;
        let finished = self
            .wait_for(
                self.api::<Pod>(),
                &name,
                &format!("pod {name} on {node} to finish"),
                |pod: Option<&Pod>| {
                    matches!(
                        pod.and_then(|p| p.status.as_ref())
                            .and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
                },
            )
            .await;
        let logs = pods.logs(&name, &LogParams::default()).await;
        let _ = pods.delete(&name, &DeleteParams::default()).await;
        let pod = finished?.ok_or_else(|| format!("pod {name} disappeared"))?;
        let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
        let logs =
            logs.map_err(|e| format!("cannot read the logs of {name}: {}", cluster::describe(&e)))?;
        if phase == "Succeeded" {
            Ok(logs)
        } else {
            Err(format!("pod {name} on {node} failed: {}", logs.trim()))
        }
    }

    async fn reclaim(&mut self, facts: &mut BTreeMap<&'static str, String>) -> Result<(), String> {
        let (volume, node, path) = self
            .volume
            .clone()
            .ok_or("the volume is not known: an earlier step failed")?;
        let pods: Api<Pod> = self.api();
        delete_and_wait(self, pods, POD).await?;
        let claims: Api<PersistentVolumeClaim> = self.api();
        delete_and_wait(self, claims, CLAIM).await?;
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        self.wait_for(
            volumes,
            &volume,
            &format!("PV {volume} to be reclaimed"),
            |pv: Option<&PersistentVolume>| pv.is_none(),
        )
        .await?;
        facts.insert("volume", format!("{volume} deleted"));
        self.show_provisioner_log()?;
        let name = std::path::Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = std::path::Path::new(&path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let script =
            format!("if [ -e '{parent}/{name}' ]; then echo present; else echo absent; fi");
        let answer = self.on_node(&node, &path, &script).await?;
        facts.insert("directory", format!("{node}:{path} {}", answer.trim()));
        if let Some(sandbox) = &self.sandbox {
            let on_disk = sandbox.node_root(&node).join(path.trim_start_matches('/'));
            if on_disk.exists() {
                return Err(format!(
                    "{} is still there after the PV was deleted",
                    on_disk.display()
                ));
            }
        }
        if answer.trim() == "absent" {
            Ok(())
        } else {
            Err(format!(
                "{path} is still on {node} after the PV was deleted"
            ))
        }
    }

    /// Prints what the in-process provisioner did since the last look.
    fn show_provisioner_log(&mut self) -> Result<(), String> {
        let Some(log) = self.provisioner_log.as_mut() else {
            return Ok(());
        };
        let mut lines = Vec::new();
        while let Ok(line) = log.try_recv() {
            lines.push(line);
        }
        if lines.is_empty() {
            return Ok(());
        }
        self.show(&format!("  provisioner log:\n    {}", lines.join("\n    ")))
    }

    /// Stops the in-process provisioning loop, if the demo started one (it releases its Lease).
    async fn stop_loop(&mut self) {
        if let Some((stop, task)) = self.provisioner.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Removes what the demo made, unless `--keep` (then only the reader pods go), and waits
    /// (within the step timeout) for the claim's volume to be reclaimed. Returns what is left
    /// behind and why, when something is.
    async fn clean_up(&self) -> Option<String> {
        let (namespace, created) = self.namespace.as_ref()?;
        let pods: Api<Pod> = self.api();
        for n in 1..=self.readers {
            let _ = pods
                .delete(&format!("lpp-demo-reader-{n}"), &DeleteParams::default())
                .await;
        }
        if self.options.keep {
            return None;
        }
        let mut left = Vec::new();
        if *created {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            match namespaces.delete(namespace, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => left.push(format!(
                    "namespace {namespace} (cannot delete it: {})",
                    cluster::describe(&e)
                )),
            }
        } else {
            let _ = pods.delete(POD, &DeleteParams::default()).await;
            let claims: Api<PersistentVolumeClaim> = self.api();
            let _ = claims.delete(CLAIM, &DeleteParams::default()).await;
        }
        let spinner = self
            .ui
            .spinner("waiting for the demo's volume to be reclaimed");
        let volumes = self.wait_reclaimed(namespace).await;
        spinner.finish_and_clear();
        left.extend(volumes);
        (!left.is_empty()).then(|| left.join("; "))
    }

    /// Waits until no PV is bound to the demo's claim any more; what is still there after the
    /// step timeout is described with why and how to remove it.
    async fn wait_reclaimed(&self, namespace: &str) -> Vec<String> {
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let deadline = tokio::time::Instant::now() + self.options.step_timeout;
        loop {
            let listed = match volumes.list(&ListParams::default()).await {
                Ok(list) => list.items,
                Err(e) => {
                    return vec![format!(
                        "cannot check that the demo's volume was reclaimed: {}",
                        cluster::describe(&e)
                    )];
                }
            };
            let ours: Vec<&PersistentVolume> = listed
                .iter()
                .filter(|pv| {
                    pv.spec
                        .as_ref()
                        .and_then(|s| s.claim_ref.as_ref())
                        .is_some_and(|c| {
                            c.namespace.as_deref() == Some(namespace)
                                && c.name.as_deref() == Some(CLAIM)
                        })
                })
                .collect();
            let retained = ours.iter().any(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                    == Some("Retain")
            });
            if ours.is_empty() {
                return Vec::new();
            }
            if retained || tokio::time::Instant::now() > deadline {
                let why = if retained {
                    "its reclaim policy is Retain".to_owned()
                } else {
                    format!(
                        "it was not reclaimed within {} (is a provisioner running? `lpp status`)",
                        ui::age(self.options.step_timeout)
                    )
                };
                return ours
                    .iter()
                    .map(|pv| {
                        let name = pv.name_any();
                        let phase = pv
                            .status
                            .as_ref()
                            .and_then(|s| s.phase.clone())
                            .unwrap_or_default();
                        let place = crate::provision::volume_location(pv)
                            .map(|(node, path)| match node {
                                Some(node) => format!(" and its directory {node}:{path}"),
                                None => format!(" and its directory {path}"),
                            })
                            .unwrap_or_default();
                        format!(
                            "PV {name} ({phase}){place}: {why}; remove it with `kubectl delete pv \
                             {name}`, and the directory with `lpp gc prune` once the PV is gone"
                        )
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

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

fn parse<T: DeserializeOwned>(manifest: &str, name: &'static str) -> Result<T, String> {
    serde_saphyr::from_str(manifest).map_err(|e| {
        Error::Manifest {
            name,
            message: e.to_string(),
        }
        .to_string()
    })
}

/// The node and directory of a node-local PV.
fn volume_location(volume: &PersistentVolume) -> Option<(String, String)> {
    match crate::provision::volume_location(volume)? {
        (Some(node), path) => Some((node, path)),
        (None, _) => None,
    }
}

fn reader_pod(name: &str, node: &str, parent: &str, image: &str, script: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([("app.kubernetes.io/managed-by".to_owned(), "lpp".to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            restart_policy: Some("Never".into()),
            containers: vec![Container {
                name: "reader".into(),
                image: Some(image.to_owned()),
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(vec!["sh".into(), "-c".into(), script.to_owned()]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "base".into(),
                    mount_path: parent.to_owned(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "base".into(),
                host_path: Some(HostPathVolumeSource {
                    path: parent.to_owned(),
                    type_: Some("Directory".into()),
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn age_of(meta: &ObjectMeta) -> String {
    meta.creation_timestamp
        .as_ref()
        .map(|t| {
            let elapsed = jiff::Timestamp::now().duration_since(t.0);
            ui::age(Duration::try_from(elapsed).unwrap_or_default())
        })
        .unwrap_or_else(|| "<unknown>".into())
}

/// `kubectl get pv` for one volume.
fn volume_table(volume: &PersistentVolume) -> comfy_table::Table {
    let mut table = ui::table([
        "name",
        "capacity",
        "access modes",
        "reclaim policy",
        "status",
        "claim",
        "storageclass",
        "age",
    ]);
    let spec = volume.spec.clone().unwrap_or_default();
    let claim = spec
        .claim_ref
        .as_ref()
        .map(|c| {
            format!(
                "{}/{}",
                c.namespace.as_deref().unwrap_or(""),
                c.name.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default();
    table.add_row(vec![
        volume.name_any(),
        spec.capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_default(),
        access_modes(spec.access_modes.as_deref()),
        spec.persistent_volume_reclaim_policy.unwrap_or_default(),
        volume
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
        claim,
        spec.storage_class_name.unwrap_or_default(),
        age_of(&volume.metadata),
    ]);
    table
}

/// `kubectl get pvc` for one claim.
fn claim_table(claim: &PersistentVolumeClaim) -> comfy_table::Table {
    let mut table = ui::table([
        "name",
        "status",
        "volume",
        "capacity",
        "access modes",
        "storageclass",
        "age",
    ]);
    let spec = claim.spec.clone().unwrap_or_default();
    let status = claim.status.clone().unwrap_or_default();
    table.add_row(vec![
        claim.name_any(),
        status.phase.unwrap_or_default(),
        spec.volume_name.unwrap_or_default(),
        status
            .capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_default(),
        access_modes(status.access_modes.as_deref()),
        spec.storage_class_name.unwrap_or_default(),
        age_of(&claim.metadata),
    ]);
    table
}

/// `RWO,RWX` as kubectl abbreviates access modes.
fn access_modes(modes: Option<&[String]>) -> String {
    modes
        .unwrap_or_default()
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What the demo installs on a cluster that has no local-path class: the defaults of
/// `lpp install`.
fn demo_install(storage_class: &str) -> crate::install::ManifestSettings {
    crate::install::ManifestSettings {
        namespace: crate::cli::DEFAULT_NAMESPACE.into(),
        storage_class: storage_class.to_owned(),
        provisioner_name: crate::cli::DEFAULT_PROVISIONER.into(),
        base_paths: crate::install::BasePaths::Nodes(vec![(
            None,
            crate::config::DEFAULT_PATH.to_owned(),
        )]),
        default_class: false,
        allow_expansion: false,
        reclaim_policy: "Delete".into(),
        binding_mode: "WaitForFirstConsumer".into(),
        volume_type: "hostPath".into(),
        helper_image: crate::config::DEFAULT_HELPER_IMAGE.into(),
        in_cluster_image: None,
        executor: crate::config::ExecutorKind::HelperPod,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_found_by_annotation_then_affinity() {
        let mut volume: PersistentVolume = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pvc-1"},
            "spec": {
                "hostPath": {"path": "/opt/local-path-provisioner/pvc-1_ns_c"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}
                ]}]}}
            }
        }))
        .unwrap();
        assert_eq!(
            volume_location(&volume),
            Some((
                "node-2".into(),
                "/opt/local-path-provisioner/pvc-1_ns_c".into()
            ))
        );
        volume.metadata.annotations = Some(
            [(
                "local.path.provisioner/selected-node".to_owned(),
                "node-1".to_owned(),
            )]
            .into(),
        );
        assert_eq!(volume_location(&volume).unwrap().0, "node-1");
    }

    #[test]
    fn the_reader_pod_mounts_the_parent_read_only_on_its_node() {
        let pod = reader_pod("r", "node-1", "/opt/base", "busybox", "cat x");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
        assert_eq!(mount.mount_path, "/opt/base");
        assert_eq!(mount.read_only, Some(true));
        let volume = &spec.volumes.unwrap()[0];
        assert_eq!(
            volume.host_path.as_ref().unwrap().type_.as_deref(),
            Some("Directory")
        );
    }

    #[test]
    fn access_modes_are_abbreviated_as_kubectl_does() {
        let modes = vec!["ReadWriteOnce".to_owned(), "ReadWriteMany".to_owned()];
        assert_eq!(access_modes(Some(&modes)), "RWO,RWX");
        assert_eq!(access_modes(None), "");
    }
}
