//! `lpp status`: what is installed, who provisions, the volumes per node, what needs attention;
//! with `-w`, again on every change until Ctrl-C.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::Api;
use serde::Serialize;

use super::{Error, StatusOptions};
use crate::cluster::{self, Target};
use crate::exit::Exit;
use crate::ui::{self, Report, Ui};

/// What `lpp status` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// `apiVersion` and `kind` of the report.
    #[serde(flatten)]
    pub type_meta: ui::TypeMeta,
    /// The provisioner name the report is about.
    pub provisioner: String,
    /// The lpp version that installed the provisioner namespace, when lpp did.
    pub installed_version: Option<String>,
    /// The helper pods' image, from the ConfigMap's template.
    pub helper_image: Option<String>,
    /// How scripts run on nodes, as the ConfigMap says (`lpp run --executor` may override it):
    /// `helperPod` or `agent`.
    pub executor: String,
    /// The node agents (the `local-path-agent` DaemonSet's pods), one per node where scheduled.
    pub agents: Vec<AgentStatus>,
    /// The leader-election Lease.
    pub lease: LeaseStatus,
    /// StorageClasses served by this provisioner.
    pub classes: Vec<ClassStatus>,
    /// PersistentVolumes of those classes.
    pub volumes: Vec<VolumeStatus>,
    /// Claims of those classes not yet bound.
    pub pending_claims: Vec<PendingClaim>,
    /// Recent Warning events of the provisioner.
    pub warnings: Vec<WarningEvent>,
    /// Everything that needs a look, each once; empty when healthy.
    pub attention: Vec<String>,
    /// When the report was made, for ages.
    #[serde(skip)]
    pub now: jiff::Timestamp,
}

/// One node agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// Node the agent pod runs on.
    pub node: String,
    /// Agent pod name.
    pub pod: String,
    /// Whether the pod is Ready.
    pub ready: bool,
    /// Image the pod runs.
    pub image: String,
}

/// The leader-election Lease of the provisioner.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseStatus {
    /// Lease name.
    pub name: String,
    /// Identity of the current leader; `None` when nobody holds it.
    pub holder: Option<String>,
    /// The lpp version of the holder, from the Lease's `app.kubernetes.io/version` label (a
    /// holder that is not lpp, or an older lpp, has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_version: Option<String>,
    /// When the holder last renewed (RFC 3339).
    pub renew_time: Option<jiff::Timestamp>,
    /// Whether the holder renewed within the lease duration, so a leader is active now.
    pub held: bool,
}

/// One StorageClass of the provisioner.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassStatus {
    /// StorageClass name.
    pub name: String,
    /// Whether it is the cluster's default class.
    pub default: bool,
    /// `WaitForFirstConsumer` or `Immediate`.
    pub binding_mode: String,
    /// `Delete` or `Retain`.
    pub reclaim_policy: String,
}

/// One PersistentVolume of the provisioner.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStatus {
    /// Node the volume lives on.
    pub node: String,
    /// PersistentVolume name.
    pub name: String,
    /// Directory of the volume on the node.
    pub path: String,
    /// Requested size, as Kubernetes spells it (`1Gi`).
    pub capacity: String,
    /// PV phase: `Bound`, `Released`, ...
    pub phase: String,
    /// `namespace/name` of the bound claim.
    pub claim: String,
    /// UID of the bound claim.
    pub claim_uid: String,
    /// StorageClass name.
    pub storage_class: String,
    /// `Delete` or `Retain`.
    pub reclaim_policy: String,
    /// `hostPath` or `local`.
    pub volume_type: String,
    /// When the PV was created.
    pub created: Option<jiff::Timestamp>,
    /// Made by `lpp adopt` for a directory that already existed.
    pub adopted: bool,
    /// The step an unfinished `lpp move` to this volume stopped at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub move_step: Option<String>,
}

/// A PersistentVolumeClaim of the provisioner's classes that is not bound yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingClaim {
    /// Claim namespace.
    pub namespace: String,
    /// Claim name.
    pub name: String,
    /// Claim UID.
    pub uid: String,
    /// StorageClass name.
    pub class: String,
    /// The node the scheduler chose for it, once it did.
    pub selected_node: Option<String>,
    /// The reason and message of its latest event.
    pub reason: String,
    /// When the claim was created.
    pub created: Option<jiff::Timestamp>,
}

/// A Warning event of the provisioner; repeats of the same one are counted, not listed again.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarningEvent {
    /// `kind/namespace/name` of the object it is about.
    pub object: String,
    /// Event reason, such as `ProvisioningFailed`.
    pub reason: String,
    /// Event message.
    pub message: String,
    /// How many times the event happened.
    pub count: i32,
    /// When it last happened.
    pub last_seen: Option<jiff::Timestamp>,
}

fn age(then: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    then.map_or_else(|| "-".to_owned(), |t| ui::age_since(t, now))
}

impl Report for StatusReport {
    fn tables(&self, wide: bool) -> Vec<comfy_table::Table> {
        let now = self.now;
        let mut headers = vec![
            "provisioner",
            "installed",
            "executor",
            "lease holder",
            "renewed",
        ];
        if wide {
            headers.push("helper image");
        }
        let mut summary = ui::table(headers);
        let mut row = vec![
            self.provisioner.clone(),
            self.installed_version
                .clone()
                .map_or("not by lpp".to_owned(), |v| format!("lpp {v}")),
            self.executor.clone(),
            match (&self.lease.holder, self.lease.held) {
                (Some(h), true) => h.clone(),
                (Some(h), false) => format!("nobody ({h} stopped renewing)"),
                (None, _) => "nobody".to_owned(),
            },
            self.lease
                .renew_time
                .map_or("-".to_owned(), |t| format!("{} ago", ui::age_since(t, now))),
        ];
        if wide {
            row.push(self.helper_image.clone().unwrap_or_else(|| "-".into()));
        }
        summary.add_row(row);
        let mut agents = ui::table(["node", "agent", "ready", "image"]);
        for a in &self.agents {
            agents.add_row(vec![
                a.node.clone(),
                a.pod.clone(),
                if a.ready { "yes" } else { "no" }.to_owned(),
                a.image.clone(),
            ]);
        }
        let mut classes = ui::table(["storageclass", "default", "binding", "reclaim"]);
        for c in &self.classes {
            classes.add_row(vec![
                c.name.clone(),
                if c.default { "yes" } else { "" }.to_owned(),
                c.binding_mode.clone(),
                c.reclaim_policy.clone(),
            ]);
        }
        let mut headers = vec![
            "node", "volume", "path", "capacity", "phase", "claim", "age",
        ];
        if wide {
            headers.extend(["storageclass", "reclaim", "type", "claim uid"]);
        }
        let mut volumes = ui::table(headers);
        for v in &self.volumes {
            let phase = match (v.adopted, &v.move_step) {
                (_, Some(step)) => format!("{} (moving: {step})", v.phase),
                (true, None) => format!("{} (adopted)", v.phase),
                (false, None) => v.phase.clone(),
            };
            let mut row = vec![
                v.node.clone(),
                v.name.clone(),
                v.path.clone(),
                v.capacity.clone(),
                phase,
                v.claim.clone(),
                age(v.created, now),
            ];
            if wide {
                row.extend([
                    v.storage_class.clone(),
                    v.reclaim_policy.clone(),
                    v.volume_type.clone(),
                    v.claim_uid.clone(),
                ]);
            }
            volumes.add_row(row);
        }
        let mut tables = vec![summary];
        if !self.agents.is_empty() {
            tables.push(agents);
        }
        tables.extend([classes, volumes]);
        if !self.pending_claims.is_empty() {
            let mut headers = vec!["pending claim", "class", "age", "reason"];
            if wide {
                headers.extend(["selected node", "uid"]);
            }
            let mut pending = ui::table(headers);
            for p in &self.pending_claims {
                let mut row = vec![
                    format!("{}/{}", p.namespace, p.name),
                    p.class.clone(),
                    age(p.created, now),
                    p.reason.clone(),
                ];
                if wide {
                    row.extend([
                        p.selected_node.clone().unwrap_or_else(|| "-".into()),
                        p.uid.clone(),
                    ]);
                }
                pending.add_row(row);
            }
            tables.push(pending);
        }
        if !self.attention.is_empty() {
            let mut attention = ui::table(["needs attention"]);
            for a in &self.attention {
                attention.add_row(vec![a.clone()]);
            }
            tables.push(attention);
        }
        tables
    }
}

fn read(verb: &'static str, what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let failed = cluster::failed(verb, what);
    move |source| failed(source).into()
}

fn time_of(meta: &kube::api::ObjectMeta) -> Option<jiff::Timestamp> {
    meta.creation_timestamp.as_ref().map(|t| t.0)
}

/// Reads everything `lpp status` shows.
pub async fn gather(client: &kube::Client, options: &StatusOptions) -> Result<StatusReport, Error> {
    let now = jiff::Timestamp::now();
    let ns = options.namespace.as_str();
    let provisioner = options.provisioner_name.clone();
    let installed_version = Api::<Namespace>::all(client.clone())
        .get_opt(ns)
        .await
        .map_err(read("get", format!("namespace {ns}")))?
        .and_then(|n| n.labels().get("app.kubernetes.io/version").cloned());
    let config_data = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(crate::config::CONFIG_MAP_NAME)
        .await
        .map_err(read(
            "get",
            format!("configmap {ns}/{}", crate::config::CONFIG_MAP_NAME),
        ))?
        .and_then(|map| map.data);
    let executor = config_data
        .as_ref()
        .and_then(|data| data.get(crate::config::CONFIG_JSON_KEY))
        .and_then(|text| crate::config::Config::parse(text).ok())
        .and_then(|c| c.executor)
        .unwrap_or(crate::config::ExecutorKind::HelperPod)
        .as_str()
        .to_owned();
    let agents: Vec<AgentStatus> = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default().labels(crate::provision::agent::AGENT_SELECTOR))
        .await
        .map_err(read("list", format!("pods in {ns}")))?
        .items
        .iter()
        .filter_map(crate::provision::agent::AgentPod::of)
        .map(|a| AgentStatus {
            node: a.node,
            pod: a.name,
            ready: a.ready,
            image: a.image,
        })
        .collect();
    let helper_image = config_data.map(|data| {
        data.get(crate::config::HELPER_POD_KEY)
            .and_then(|text| serde_saphyr::from_str::<Pod>(text).ok())
            .and_then(|pod| pod.spec)
            .and_then(|spec| spec.containers.into_iter().next())
            .and_then(|c| c.image)
            .unwrap_or_else(|| crate::config::DEFAULT_HELPER_IMAGE.to_owned())
    });
    let lease_name = crate::controller::lease_name_for(&provisioner);
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(&lease_name)
        .await
        .map_err(read("get", format!("lease {ns}/{lease_name}")))?;
    let holder_version = lease.as_ref().and_then(|l| {
        l.labels()
            .get(crate::controller::LEASE_VERSION_LABEL)
            .cloned()
    });
    let lease = lease.and_then(|l| l.spec);
    let holder = lease
        .as_ref()
        .and_then(|l| l.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let renew_time = lease
        .as_ref()
        .and_then(|l| l.renew_time.as_ref())
        .map(|t| t.0);
    let duration = lease
        .as_ref()
        .and_then(|l| l.lease_duration_seconds)
        .unwrap_or(15);
    let held = holder.is_some()
        && renew_time.is_some_and(|t| now.duration_since(t).as_secs() <= i64::from(duration));
    // The provisioner's names: its own and, with capacity tracking, lpp's (served by the same run).
    let ours = |name: &str| {
        name == provisioner || name == crate::provision::capacity::CAPACITY_PROVISIONER
    };
    let classes: Vec<StorageClass> = Api::<StorageClass>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(read("list", "storageclasses"))?
        .items
        .into_iter()
        .filter(|c| ours(&c.provisioner))
        .collect();
    let class_names: Vec<String> = classes.iter().map(|c| c.name_any()).collect();
    let mut volumes: Vec<VolumeStatus> = Api::<PersistentVolume>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(read("list", "persistentvolumes"))?
        .items
        .iter()
        .filter(|v| {
            v.annotations()
                .get("pv.kubernetes.io/provisioned-by")
                .is_some_and(|p| ours(p))
        })
        .map(|v| {
            let (node, path) =
                crate::provision::volume_location(v).unwrap_or((None, String::new()));
            let spec = v.spec.clone().unwrap_or_default();
            let claim = spec.claim_ref.clone().unwrap_or_default();
            VolumeStatus {
                node: node.unwrap_or_else(|| "shared".into()),
                name: v.name_any(),
                path,
                capacity: spec
                    .capacity
                    .as_ref()
                    .and_then(|c| c.get("storage").map(|q| q.0.clone()))
                    .unwrap_or_default(),
                phase: v
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default(),
                claim: claim
                    .name
                    .as_ref()
                    .map(|name| format!("{}/{name}", claim.namespace.clone().unwrap_or_default()))
                    .unwrap_or_default(),
                claim_uid: claim.uid.clone().unwrap_or_default(),
                storage_class: spec.storage_class_name.clone().unwrap_or_default(),
                reclaim_policy: spec
                    .persistent_volume_reclaim_policy
                    .clone()
                    .unwrap_or_default(),
                volume_type: if spec.local.is_some() {
                    "local"
                } else {
                    "hostPath"
                }
                .to_owned(),
                created: time_of(&v.metadata),
                adopted: v
                    .annotations()
                    .get(crate::mobility::ADOPTED)
                    .is_some_and(|a| a == "true"),
                move_step: v
                    .annotations()
                    .get(crate::mobility::steps::MOVE_STEP)
                    .cloned(),
            }
        })
        .collect();
    volumes.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
    let events: Vec<Event> = Api::<Event>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(read("list", "events"))?
        .items;
    let seen = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| time_of(&e.metadata))
    };
    let latest_event = |kind: &str, namespace: &str, name: &str| {
        events
            .iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some(kind)
                    && e.involved_object.name.as_deref() == Some(name)
                    && e.involved_object.namespace.as_deref().unwrap_or("") == namespace
            })
            .max_by_key(|e| seen(e))
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default()
                )
            })
    };
    let mut pending_claims: Vec<PendingClaim> = Api::<PersistentVolumeClaim>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(read("list", "persistentvolumeclaims"))?
        .items
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
        .filter_map(|c| {
            let class = c.spec.as_ref()?.storage_class_name.clone()?;
            class_names.contains(&class).then(|| {
                let namespace = c.namespace().unwrap_or_default();
                PendingClaim {
                    reason: latest_event("PersistentVolumeClaim", &namespace, &c.name_any())
                        .unwrap_or_else(|| "no events".into()),
                    uid: c.uid().unwrap_or_default(),
                    selected_node: c
                        .annotations()
                        .get("volume.kubernetes.io/selected-node")
                        .cloned(),
                    created: time_of(&c.metadata),
                    namespace,
                    name: c.name_any(),
                    class,
                }
            })
        })
        .collect();
    pending_claims.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let since = i64::try_from(options.events_since.as_secs()).unwrap_or(i64::MAX);
    // One entry per object, reason and message: repeats add to its count.
    let mut warnings: BTreeMap<(String, String, String), WarningEvent> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| {
            e.source.as_ref().and_then(|s| s.component.as_deref()) == Some(provisioner.as_str())
                || e.reporting_component.as_deref() == Some(provisioner.as_str())
        })
        .filter(|e| seen(e).is_some_and(|t| now.duration_since(t).as_secs() <= since))
    {
        let o = &e.involved_object;
        let object = format!(
            "{}/{}{}",
            o.kind.clone().unwrap_or_default(),
            o.namespace
                .as_deref()
                .map(|ns| format!("{ns}/"))
                .unwrap_or_default(),
            o.name.clone().unwrap_or_default()
        );
        let reason = e.reason.clone().unwrap_or_default();
        let message = e.message.clone().unwrap_or_default();
        let count = e.count.unwrap_or(1).max(1);
        let entry = warnings
            .entry((object.clone(), reason.clone(), message.clone()))
            .or_insert(WarningEvent {
                object,
                reason,
                message,
                count: 0,
                last_seen: None,
            });
        entry.count += count;
        entry.last_seen = entry.last_seen.max(seen(e));
    }
    let warnings: Vec<WarningEvent> = warnings.into_values().collect();
    let mut attention: Vec<String> = Vec::new();
    let mut needs = |line: String| {
        if !attention.contains(&line) {
            attention.push(line);
        }
    };
    if executor == crate::config::ExecutorKind::Agent.as_str() {
        if agents.is_empty() {
            needs(format!(
                "config.json asks for the agent executor but no node agent runs in {ns}: scripts run in helper pods (`lpp install --executor agent` installs the local-path-agent DaemonSet)"
            ));
        }
        for a in agents.iter().filter(|a| !a.ready) {
            needs(format!(
                "node agent {} on node {} is not Ready: scripts on that node run in helper pods (`kubectl -n {ns} describe pod {}`)",
                a.pod, a.node, a.pod
            ));
        }
    }
    if classes.is_empty() {
        needs(format!(
            "no StorageClass names provisioner {provisioner}: run `lpp install`"
        ));
    }
    if !held {
        needs(format!(
            "nobody holds the Lease {ns}/{lease_name}: no provisioner is running (`lpp run`, or `lpp install --in-cluster`)"
        ));
    }
    for v in volumes
        .iter()
        .filter(|v| v.phase == "Released" || v.phase == "Failed")
    {
        needs(format!(
            "volume {} is {} ({}:{})",
            v.name, v.phase, v.node, v.path
        ));
    }
    for v in &volumes {
        if let Some(step) = &v.move_step {
            needs(format!(
                "a move of claim {} to {} stopped at step {step}: `lpp move {} --to {}` finishes it",
                v.claim, v.node, v.claim, v.node
            ));
        }
    }
    for p in &pending_claims {
        needs(format!(
            "claim {}/{} is Pending ({}): {}",
            p.namespace,
            p.name,
            age(p.created, now),
            p.reason
        ));
    }
    for w in &warnings {
        // A pending claim's latest warning is already on its line.
        let on_pending_line = pending_claims.iter().any(|p| {
            w.object == format!("PersistentVolumeClaim/{}/{}", p.namespace, p.name)
                && p.reason == format!("{}: {}", w.reason, w.message)
        });
        if !on_pending_line {
            let times = if w.count > 1 {
                format!(" ({} times)", w.count)
            } else {
                String::new()
            };
            needs(format!(
                "warning: {} {}: {}{times}",
                w.object, w.reason, w.message
            ));
        }
    }
    Ok(StatusReport {
        type_meta: ui::TypeMeta::new("StatusReport"),
        provisioner,
        installed_version,
        helper_image,
        executor,
        agents,
        lease: LeaseStatus {
            name: lease_name,
            holder,
            holder_version,
            renew_time,
            held,
        },
        classes: classes
            .iter()
            .map(|c| ClassStatus {
                name: c.name_any(),
                default: c
                    .annotations()
                    .get("storageclass.kubernetes.io/is-default-class")
                    .map(String::as_str)
                    == Some("true"),
                binding_mode: c
                    .volume_binding_mode
                    .clone()
                    .unwrap_or_else(|| "Immediate".into()),
                reclaim_policy: c.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            })
            .collect(),
        volumes,
        pending_claims,
        warnings,
        attention,
        now,
    })
}

/// What a watcher compares to decide whether to print again: everything but the clock and the
/// Lease's renewals (which come every few seconds and change nothing a person acts on).
fn substance(report: &StatusReport) -> StatusReport {
    let mut copy = report.clone();
    copy.now = jiff::Timestamp::UNIX_EPOCH;
    copy.lease.renew_time = None;
    copy
}

/// Said on stderr under a report that needs attention: status shows what, check says why.
const CHECK_HINT: &str = "`lpp check` looks for the cause of each and says what to do about it";

/// `lpp status`. Exit 0 when healthy, 3 when something needs attention; with `-w`, prints
/// again whenever what it shows changes, until Ctrl-C (then exit 0).
pub async fn status(ui: &Ui, target: &Target, options: StatusOptions) -> Result<Exit, Error> {
    let cluster = cluster::connect(target).await?;
    let client = &cluster.client;
    if !options.watch {
        let report = gather(client, &options).await?;
        let healthy = report.attention.is_empty();
        ui.print(&report)?;
        if !healthy {
            ui.note(CHECK_HINT);
        }
        return Ok(if healthy {
            Exit::Success
        } else {
            Exit::Refused
        });
    }
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut changes = changes(client, &options.namespace);
    let mut shown: Option<StatusReport> = None;
    loop {
        let report = gather(client, &options).await?;
        let now = substance(&report);
        if shown.as_ref() != Some(&now) {
            if shown.is_some() && matches!(ui.format(), ui::Format::Table | ui::Format::Wide) {
                ui.write_stdout("")?;
                ui.write_stdout(&format!("--- {}", report.now.strftime("%H:%M:%S")))?;
            }
            ui.print(&report)?;
            if !report.attention.is_empty() {
                ui.note(CHECK_HINT);
            }
            shown = Some(now);
        }
        tokio::select! {
            _ = &mut interrupted => return Ok(Exit::Success),
            _ = changes.next() => {}
        }
        // Let a burst of changes settle into one look.
        let settle = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = &mut interrupted => return Ok(Exit::Success),
                () = &mut settle => break,
                _ = changes.next() => {}
            }
        }
    }
}

/// A stream that yields whenever an object `status` shows changes; a broken watch is started
/// again with backoff, and the Lease is also looked at every 15 s (it expires without a change).
fn changes(client: &kube::Client, namespace: &str) -> futures::stream::BoxStream<'static, ()> {
    use kube::runtime::{WatchStreamExt, watcher};
    fn watch<K>(api: Api<K>) -> futures::stream::BoxStream<'static, ()>
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
        K::DynamicType: Default,
    {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .filter_map(|event| async move {
                match event {
                    Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => Some(()),
                    _ => None,
                }
            })
            .boxed()
    }
    let tick = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        Some(((), ()))
    })
    .boxed();
    futures::stream::select_all([
        watch(Api::<PersistentVolume>::all(client.clone())),
        watch(Api::<PersistentVolumeClaim>::all(client.clone())),
        watch(Api::<StorageClass>::all(client.clone())),
        watch(Api::<Event>::all(client.clone())),
        watch(Api::<Lease>::namespaced(client.clone(), namespace)),
        tick,
    ])
    .boxed()
}
