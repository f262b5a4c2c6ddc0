//! `lpp move NS/CLAIM --to NODE` and `lpp move --all-from NODE --to NODE`: the data copied to a
//! new directory on the target (chosen as provisioning would), verified, and the claim recreated
//! pre-bound to a new PV there. The steps and their record are [`super::steps`]; the scripts
//! and the verification [`super::copy`]; here they are carried out, through executor sessions
//! on both nodes with the tar stream flowing through lpp.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde::Serialize;

use super::copy::{self, Manifest, Summary};
use super::steps::{self, MOVING_TO, Record, Resume, Step};
use super::{
    ClaimUser, Error, Provisioner, ProvisionerOptions, all_nodes, all_volumes, claim_users,
    in_use_message, request,
};
use crate::cluster::{self, Target};
use crate::config::path;
use crate::executor::session::{Session, pump};
use crate::exit::Exit;
use crate::provision::helper_pod::{Action, HostDir, HostPathType};
use crate::provision::volume::{CLAIM_SELECTED_NODE, PROVISIONED_BY, quantity_bytes};
use crate::provision::{ClaimDecision, ClaimInput, VolumeJob, VolumeRef, decide_claim};
use crate::ui::{self, Report, Ui};

/// The `LPP_MOVE_PAUSE_AFTER` test hook: hold the move after a step until a file exists.
#[derive(Debug, Clone)]
pub struct Pause {
    /// One of [`steps::PAUSE_POINTS`].
    pub after: String,
    /// `LPP_MOVE_PAUSE_FILE`: the move carries on once it exists (else it waits its 10 min).
    pub file: Option<PathBuf>,
}

/// What `lpp move` was asked.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// Where the provisioner's configuration is.
    pub provisioner: ProvisionerOptions,
    /// One claim (namespace, name), or
    pub claim: Option<(String, String)>,
    /// every claim of this node.
    pub all_from: Option<String>,
    /// The target node.
    pub to: String,
    /// Wait until no pod uses a claim instead of refusing.
    pub wait: bool,
    /// Remove the source directory once the claim is bound on the target.
    pub delete_source: bool,
    /// Bounds every wait (pods to go, claims to go and bind) and every script.
    pub timeout: Duration,
    /// The `LPP_MOVE_PAUSE_AFTER` test hook, when set.
    pub pause: Option<Pause>,
}

/// How one claim's move ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Moved.
    Moved,
    /// An interrupted move was finished.
    Resumed,
    /// An interrupted move was undone: the claim stays where it was.
    RolledBack,
}

/// A volume's place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Place {
    /// The node.
    pub node: String,
    /// The PV's name.
    pub volume: String,
    /// The directory.
    pub path: String,
}

/// One claim's move, as printed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveResult {
    /// `namespace/name`.
    pub claim: String,
    /// Moved, resumed or rolled back.
    pub outcome: Outcome,
    /// Where the data was.
    pub from: Place,
    /// Where the data is now (`None` after a rollback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Place>,
    /// Regular files copied.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The fingerprint of the verified manifest.
    pub checksum: String,
    /// Whether the source directory is still on its node (then `gc prune` removes it).
    pub source_kept: bool,
}

/// What `lpp move` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveReport {
    #[serde(flatten)]
    /// `apiVersion` and `kind` (`MoveReport`).
    pub type_meta: ui::TypeMeta,
    /// One entry per claim moved (or rolled back).
    pub moves: Vec<MoveResult>,
    /// Claims `--all-from` could not move, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedMove>,
}

/// A claim an evacuation could not move.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedMove {
    /// `namespace/name`.
    pub claim: String,
    /// Why it was not moved.
    pub error: String,
}

impl Report for MoveReport {
    fn tables(&self, _wide: bool) -> Vec<comfy_table::Table> {
        let mut t = ui::table(["claim", "from", "to", "files", "size", "checksum", "result"]);
        for m in &self.moves {
            let result = match m.outcome {
                Outcome::RolledBack => "interrupted move rolled back".to_owned(),
                outcome => {
                    let verb = if outcome == Outcome::Resumed {
                        "resumed, moved"
                    } else {
                        "moved"
                    };
                    if m.source_kept {
                        format!(
                            "{verb}; source kept at {}:{} (`lpp gc prune` removes it)",
                            m.from.node, m.from.path
                        )
                    } else {
                        format!("{verb}; source deleted")
                    }
                }
            };
            t.add_row(vec![
                m.claim.clone(),
                format!("{}:{}", m.from.node, m.from.path),
                m.to.as_ref()
                    .map_or("-".to_owned(), |p| format!("{}:{}", p.node, p.path)),
                m.files.to_string(),
                ui::bytes(m.bytes),
                m.checksum.clone(),
                result,
            ]);
        }
        let mut tables = vec![t];
        if !self.failed.is_empty() {
            let mut f = ui::table(["claim", "not moved"]);
            for x in &self.failed {
                f.add_row(vec![x.claim.clone(), x.error.clone()]);
            }
            tables.push(f);
        }
        tables
    }

    fn names(&self) -> Vec<String> {
        self.moves
            .iter()
            .filter_map(|m| m.to.as_ref())
            .map(|p| format!("persistentvolume/{}", p.volume))
            .collect()
    }
}

/// `lpp move`.
pub async fn run(ui: &Ui, target: &Target, options: MoveOptions) -> Result<Exit, Error> {
    let cluster = cluster::connect(target).await?;
    let mover = Mover {
        client: cluster.client.clone(),
        ui,
        provisioner: Provisioner::read(&cluster.client, &options.provisioner).await?,
        options: &options,
        context: cluster.context.clone(),
    };
    let nodes = all_nodes(&mover.client).await?;
    if !nodes.contains_key(&options.to) {
        return Err(Error::Refused(format!(
            "node {} does not exist (nodes: {})",
            options.to,
            nodes.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let mut report = MoveReport {
        type_meta: ui::TypeMeta::new("MoveReport"),
        moves: Vec::new(),
        failed: Vec::new(),
    };
    match (&options.claim, &options.all_from) {
        (Some((ns, name)), _) => {
            report
                .moves
                .push(mover.move_claim(ns, name, &options.to, false).await?);
        }
        (None, Some(from)) => mover.evacuate(from, &mut report).await?,
        (None, None) => {
            return Err(Error::Usage(
                "name a claim (NAMESPACE/NAME) or --all-from NODE".into(),
            ));
        }
    }
    ui.print(&report)?;
    Ok(if report.failed.is_empty() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

struct Mover<'a> {
    client: kube::Client,
    ui: &'a Ui,
    provisioner: Provisioner,
    options: &'a MoveOptions,
    context: String,
}

/// The sessions of one claim's move, opened when first needed.
#[derive(Default)]
struct Sessions {
    source: Option<Session>,
    target: Option<Session>,
}

impl Sessions {
    async fn finish(self) {
        if let Some(s) = self.source {
            s.finish().await;
        }
        if let Some(s) = self.target {
            s.finish().await;
        }
    }
}

/// A claim's volume as a move starts from it.
struct Start {
    claim: PersistentVolumeClaim,
    volume: PersistentVolume,
    node: String,
    path: String,
}

impl Mover<'_> {
    fn claims(&self, namespace: &str) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn volumes(&self) -> Api<PersistentVolume> {
        Api::all(self.client.clone())
    }

    /// PV `name`, or `None` when there is none.
    async fn volume(&self, name: &str) -> Result<Option<PersistentVolume>, Error> {
        self.volumes()
            .get_opt(name)
            .await
            .map_err(request("get", format!("persistentvolume {name}")))
    }

    /// Deletes PV `name`; one already gone is as good.
    async fn delete_volume(&self, name: &str) -> Result<(), Error> {
        gone_is_fine(self.volumes().delete(name, &DeleteParams::default()).await)
            .map_err(request("delete", format!("persistentvolume {name}")))
    }

    /// Where every PV now keeps its data.
    async fn volume_refs(&self) -> Result<Vec<VolumeRef>, Error> {
        Ok(all_volumes(&self.client)
            .await?
            .iter()
            .filter_map(VolumeRef::of)
            .collect())
    }

    /// The PV, other than `own`, whose directory overlaps `dir` on `node`, as the PVs are now.
    async fn overlapping(
        &self,
        own: &str,
        node: &str,
        dir: &str,
    ) -> Result<Option<VolumeRef>, Error> {
        Ok(overlapping_on(&self.volume_refs().await?, own, node, dir).cloned())
    }

    /// Moves one claim to `to`, first dealing with an interrupted move of it.
    async fn move_claim(
        &self,
        namespace: &str,
        name: &str,
        to: &str,
        confirmed: bool,
    ) -> Result<MoveResult, Error> {
        let claim_text = format!("{namespace}/{name}");
        let mut resumed = false;
        // At most: finish or undo an interrupted move, then make a new one.
        for _ in 0..3 {
            let records: Vec<Record> = all_volumes(&self.client)
                .await?
                .iter()
                .filter_map(Record::of)
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::Failed)?
                .into_iter()
                .filter(|r| r.claim == claim_text)
                .collect();
            if records.len() > 1 {
                let names: Vec<&str> = records.iter().map(|r| r.volume.as_str()).collect();
                return Err(Error::Failed(format!(
                    "several moves of claim {claim_text} are recorded ({}): finish or remove all but one by hand",
                    names.join(", ")
                )));
            }
            if let Some(record) = records.into_iter().next() {
                let decision = steps::resume(record.step, &record.node, to, record.source_node());
                self.ui.note(&format!(
                    "claim {claim_text}: a move to {} was interrupted at step {} ({})",
                    record.node,
                    record.step.as_str(),
                    match decision {
                        Resume::Continue => "resuming it",
                        Resume::RollBack { .. } => "rolling it back",
                        Resume::Finish { .. } => "finishing it: the claim may already be gone",
                    }
                ));
                match decision {
                    Resume::Continue => {
                        return self.carry_on(record, Outcome::Resumed).await;
                    }
                    Resume::RollBack { then_move } => {
                        let rolled = self.roll_back(&record).await?;
                        if !then_move {
                            return Ok(rolled);
                        }
                    }
                    Resume::Finish { then_move } => {
                        let done = self.carry_on(record, Outcome::Resumed).await?;
                        if !then_move {
                            return Ok(done);
                        }
                        resumed = true;
                    }
                }
                continue;
            }
            let start = self.start(namespace, name, to).await?;
            self.ensure_unused(namespace, name).await?;
            let new = self.new_volume(&start, to).await?;
            if !confirmed {
                self.ui.confirm(&format!(
                    "Move claim {claim_text} ({}:{}) to node {to} on context {}; the claim is deleted and recreated, its pods must stay stopped until it is Bound again",
                    start.node, start.path, self.context
                ))?;
            }
            let created = self
                .volumes()
                .create(&PostParams::default(), &new)
                .await
                .map_err(request(
                    "create",
                    format!("persistentvolume {}", new.name_any()),
                ))?;
            let record = Record::of(&created)
                .ok_or_else(|| Error::Failed("the new volume lost its move record".into()))?
                .map_err(Error::Failed)?;
            self.pause("created").await;
            let outcome = if resumed {
                Outcome::Resumed
            } else {
                Outcome::Moved
            };
            return self.carry_on(record, outcome).await;
        }
        Err(Error::Failed(format!(
            "claim {claim_text}: the recorded moves kept changing; look at its volumes (`kubectl get pv -o yaml`)"
        )))
    }

    /// Reads the claim and its volume, and refuses what cannot move.
    async fn start(&self, namespace: &str, name: &str, to: &str) -> Result<Start, Error> {
        let claim_text = format!("{namespace}/{name}");
        let claim = self
            .claims(namespace)
            .get_opt(name)
            .await
            .map_err(request(
                "get",
                format!("persistentvolumeclaim {claim_text}"),
            ))?
            .ok_or_else(|| Error::Refused(format!("claim {claim_text} does not exist")))?;
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty() && bound)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "claim {claim_text} is not Bound: only a bound volume has data to move"
                ))
            })?;
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(Error::Refused(format!(
                "claim {claim_text} is being deleted"
            )));
        }
        let volume = self
            .volume(&volume_name)
            .await?
            .ok_or_else(|| Error::Refused(format!("volume {volume_name} does not exist")))?;
        let provisioner = &self.options.provisioner.provisioner_name;
        if volume.annotations().get(PROVISIONED_BY) != Some(provisioner) {
            return Err(Error::Refused(format!(
                "volume {volume_name} of claim {claim_text} is not provisioned by {provisioner}: lpp moves only its own volumes"
            )));
        }
        let (node, path) = crate::provision::volume_location(&volume).ok_or_else(|| {
            Error::Refused(format!(
                "volume {volume_name} has no hostPath or local path"
            ))
        })?;
        let Some(node) = node else {
            return Err(Error::Refused(format!(
                "volume {volume_name} is on a shared filesystem, reachable from every node: there is nothing to move"
            )));
        };
        let node = self.node_named(&node).await?;
        if node == to {
            return Err(Error::Refused(format!(
                "claim {claim_text} is already on node {to}: a move to the same node would only copy the data next to itself"
            )));
        }
        Ok(Start {
            claim,
            volume,
            node,
            path,
        })
    }

    /// The node a volume's node value names (see [`node_for`]); the value itself when no
    /// node is named by it.
    async fn node_named(&self, value: &str) -> Result<String, Error> {
        let nodes = all_nodes(&self.client).await?;
        Ok(node_for(&nodes, value).unwrap_or_else(|| value.to_owned()))
    }

    /// The new PV on `to`, as provisioning would make it for the claim, with the move's record.
    async fn new_volume(&self, start: &Start, to: &str) -> Result<PersistentVolume, Error> {
        let claim_text = format!(
            "{}/{}",
            start.claim.namespace().unwrap_or_default(),
            start.claim.name_any()
        );
        let node = Api::<Node>::all(self.client.clone())
            .get_opt(to)
            .await
            .map_err(request("get", format!("node {to}")))?
            .ok_or_else(|| Error::Refused(format!("node {to} does not exist")))?;
        let class_name = start
            .claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .unwrap_or_default();
        let class = Api::<StorageClass>::all(self.client.clone())
            .get_opt(&class_name)
            .await
            .map_err(request("get", format!("storageclass {class_name}")))?
            .ok_or_else(|| {
                Error::Refused(format!(
                    "StorageClass {class_name:?} of claim {claim_text} does not exist: the target directory is chosen by its class"
                ))
            })?;
        let volumes = self.volume_refs().await?;
        // The claim as the provisioner would see it for `to`: a fresh uid names the new PV.
        let mut asked = start.claim.clone();
        let id = super::fresh_volume_name();
        asked.metadata.uid = Some(id.trim_start_matches("pvc-").to_owned());
        asked
            .annotations_mut()
            .insert(CLAIM_SELECTED_NODE.to_owned(), to.to_owned());
        if let Some(spec) = asked.spec.as_mut() {
            spec.volume_name = None;
        }
        let decision = decide_claim(&ClaimInput {
            claim: &asked,
            class: Some(&class),
            node: Some(&node),
            contents: &self.provisioner.contents,
            provisioner: &self.options.provisioner.provisioner_name,
            volume_exists: false,
            choice: u64::from_str_radix(&id[4..12], 16).unwrap_or(0),
            volumes: &volumes,
            // The target is not measured here: a capacityBudget class refuses it.
            capacity: None,
        });
        let plan = match decision {
            ClaimDecision::Provision(plan) => plan,
            ClaimDecision::Reject(why) => {
                return Err(Error::Refused(format!(
                    "node {to} cannot take claim {claim_text}'s volume: {why}"
                )));
            }
            ClaimDecision::Reschedule(r) => {
                return Err(Error::Refused(format!(
                    "node {to} cannot take claim {claim_text}'s volume: {}",
                    r.reason
                )));
            }
            ClaimDecision::Skip(why) => {
                return Err(Error::Refused(format!(
                    "claim {claim_text} is not one {} provisions ({why:?})",
                    self.options.provisioner.provisioner_name
                )));
            }
        };
        let source = format!("{}:{}", start.node, start.path);
        steps::new_volume(plan.volume, &start.volume, &start.claim, &source).map_err(Error::Failed)
    }

    /// Refuses while pods use the claim, naming them; with `--wait`, waits until none does.
    async fn ensure_unused(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let users = claim_users(&self.client, namespace, name).await?;
        if users.is_empty() {
            return Ok(());
        }
        if !self.options.wait {
            return Err(Error::Refused(in_use_message(namespace, name, &users)));
        }
        self.ui.note(&format!(
            "waiting until no pod uses claim {namespace}/{name} ({}) (--wait, at most {})",
            users
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            ui::duration(self.options.timeout)
        ));
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let wait = async {
            let mut changes = std::pin::pin!(kube::runtime::watcher(
                pods,
                kube::runtime::watcher::Config::default()
            ));
            let mut users: Vec<ClaimUser> = users.clone();
            while !users.is_empty() {
                if changes.next().await.is_none() {
                    return Err(Error::Failed(format!("the pod watch in {namespace} ended")));
                }
                users = claim_users(&self.client, namespace, name).await?;
            }
            Ok(())
        };
        match tokio::time::timeout(self.options.timeout, wait).await {
            Ok(result) => result,
            Err(_) => {
                let users = claim_users(&self.client, namespace, name).await?;
                Err(Error::Refused(format!(
                    "still in use after {}: {}",
                    ui::duration(self.options.timeout),
                    in_use_message(namespace, name, &users)
                )))
            }
        }
    }

    /// Carries a recorded move forward from its step to the end.
    async fn carry_on(&self, record: Record, outcome: Outcome) -> Result<MoveResult, Error> {
        let mut sessions = Sessions::default();
        let result = self.steps(&record, outcome, &mut sessions).await;
        sessions.finish().await;
        result
    }

    async fn steps(
        &self,
        record: &Record,
        outcome: Outcome,
        sessions: &mut Sessions,
    ) -> Result<MoveResult, Error> {
        let (namespace, name) = record.claim.split_once('/').unwrap_or_default();
        let mut summary = record.checksum.as_deref().and_then(parse_summary);
        if record.step == Step::Copying {
            let copied = self.copy(record, sessions).await?;
            self.record_step(record, Step::Copied, Some(&copied.record()))
                .await?;
            summary = Some(copied);
            self.pause("copied").await;
        }
        if record.step <= Step::Copied {
            self.ensure_unused(namespace, name).await?;
            self.retain_old(record).await?;
            self.record_step(record, Step::Rebinding, None).await?;
            self.pause("retained").await;
        }
        if record.step <= Step::Rebinding {
            if let Some(verified) = self.rebind(record, sessions).await? {
                summary = Some(verified);
            }
            self.record_step(record, Step::Finishing, None).await?;
            self.pause("rebound").await;
        }
        let source_kept = self.finish(record, sessions).await?;
        let summary = summary.unwrap_or(Summary {
            files: 0,
            bytes: 0,
            checksum: 0,
        });
        Ok(MoveResult {
            claim: record.claim.clone(),
            outcome,
            from: Place {
                node: record.source_node().to_owned(),
                volume: record.from.clone(),
                path: record.source_path().to_owned(),
            },
            to: Some(Place {
                node: record.node.clone(),
                volume: record.volume.clone(),
                path: record.path.clone(),
            }),
            files: summary.files,
            bytes: summary.bytes,
            checksum: summary.checksum_text(),
            source_kept,
        })
    }

    async fn record_step(
        &self,
        record: &Record,
        step: Step,
        checksum: Option<&str>,
    ) -> Result<(), Error> {
        self.volumes()
            .patch(
                &record.volume,
                &PatchParams::default(),
                &Patch::Merge(&steps::step_patch(step, checksum)),
            )
            .await
            .map_err(request(
                "patch",
                format!("persistentvolume {}", record.volume),
            ))?;
        tracing::debug!("move of {}: step {}", record.claim, step.as_str());
        Ok(())
    }

    /// The session on the source node (the source directory's parent mounted).
    async fn source<'s>(
        &self,
        record: &Record,
        sessions: &'s mut Sessions,
    ) -> Result<&'s Session, Error> {
        if sessions.source.is_none() {
            let session = self
                .session(record.source_node(), record.source_path(), "source")
                .await?;
            sessions.source = Some(session);
        }
        sessions
            .source
            .as_ref()
            .ok_or_else(|| Error::Failed("no source session".into()))
    }

    /// The session on the target node (the new directory's parent mounted).
    async fn target<'s>(
        &self,
        record: &Record,
        sessions: &'s mut Sessions,
    ) -> Result<&'s Session, Error> {
        if sessions.target.is_none() {
            let session = self.session(&record.node, &record.path, "target").await?;
            sessions.target = Some(session);
        }
        sessions
            .target
            .as_ref()
            .ok_or_else(|| Error::Failed("no target session".into()))
    }

    async fn session(&self, node: &str, dir: &str, role: &str) -> Result<Session, Error> {
        let parent = path::split_parent(&path::clean(dir))
            .map(|(parent, _)| parent.to_owned())
            .ok_or_else(|| Error::Failed(format!("{dir} has no parent directory")))?;
        let mounts = [HostDir {
            path: parent,
            mount_path: None,
            kind: HostPathType::DirectoryOrCreate,
            read_only: false,
        }];
        let p = &self.provisioner;
        p.executor
            .session(&p.helpers, node, &mounts, p.kind, self.options.timeout)
            .await
            .map_err(|e| Error::Failed(format!("cannot reach the {role} node {node}: {e}")))
    }

    /// The volume job of a directory: its setup (`Create`) or teardown (`Delete`) as the
    /// ConfigMap says. A move never resizes.
    fn job(&self, action: Action, volume: &str, node: &str, dir: &str, size: i64) -> VolumeJob {
        let contents = &self.provisioner.contents;
        // Only a `Delete` ever runs the teardown: nothing else may remove a directory.
        let script = match action {
            Action::Delete => contents.teardown.clone(),
            Action::Create | Action::Resize => contents.setup.clone(),
        };
        VolumeJob {
            action,
            pv_name: volume.to_owned(),
            node: Some(node.to_owned()),
            path: dir.to_owned(),
            mode: "Filesystem".into(),
            size_bytes: size,
            user: String::new(),
            group: String::new(),
            perm: String::new(),
            script,
            shared: false,
        }
    }

    async fn size_of(&self, volume: &str) -> i64 {
        self.volume(volume)
            .await
            .ok()
            .flatten()
            .and_then(|v| v.spec)
            .and_then(|s| s.capacity)
            .and_then(|c| c.get("storage").and_then(quantity_bytes))
            .unwrap_or(0)
    }

    async fn manifest(&self, session: &Session, dir: &str) -> Result<Manifest, Error> {
        let out = session
            .run(
                copy::shell(copy::MANIFEST_SCRIPT, &[dir]),
                self.options.timeout,
            )
            .await
            .map_err(|e| {
                Error::Failed(format!("cannot list {dir} on node {}: {e}", session.node()))
            })?;
        Ok(Manifest::parse(&out))
    }

    /// Copies the source into the new directory (made by the setup script, emptied of an
    /// earlier partial copy) and verifies it.
    async fn copy(&self, record: &Record, sessions: &mut Sessions) -> Result<Summary, Error> {
        let size = self.size_of(&record.volume).await;
        let (source_dir, target_dir) = (record.source_path(), record.path.as_str());
        let source_manifest = {
            let source = self.source(record, sessions).await?;
            self.manifest(source, source_dir).await?
        };
        let expected = source_manifest.summary();
        {
            let target = self.target(record, sessions).await?;
            let setup = self.job(
                Action::Create,
                &record.volume,
                &record.node,
                target_dir,
                size,
            );
            target
                .run(copy::volume_script(&setup), self.provisioner.cmd_timeout)
                .await
                .map_err(|e| {
                    Error::Failed(format!(
                        "the setup script failed on node {}: {e}",
                        record.node
                    ))
                })?;
            target
                .run(
                    copy::shell(copy::WIPE_SCRIPT, &[target_dir]),
                    self.options.timeout,
                )
                .await
                .map_err(|e| {
                    Error::Failed(format!(
                        "cannot empty {target_dir} on node {}: {e}",
                        record.node
                    ))
                })?;
        }
        let (Some(source), Some(target)) = (sessions.source.as_ref(), sessions.target.as_ref())
        else {
            return Err(Error::Failed("the sessions went away".into()));
        };
        // The tar stream is the files plus a header (and padding) per entry.
        let entries = source_manifest.summary().files + 1;
        let estimate = expected.bytes + 1024 * entries + 10_240;
        let bar = self.ui.progress_bytes(
            estimate,
            &format!("copying {} to {}", record.claim, record.node),
        );
        let mut reader = source
            .exec(copy::tar_out(source_dir), false)
            .await
            .map_err(|e| Error::Failed(e.to_string()))?;
        let mut writer = target
            .exec(copy::tar_in(target_dir), true)
            .await
            .map_err(|e| Error::Failed(e.to_string()))?;
        let (Some(from), Some(to)) = (reader.stdout.take(), writer.stdin.take()) else {
            return Err(Error::Failed("the tar streams are not attached".into()));
        };
        let stall = self.provisioner.cmd_timeout;
        let moved = pump(from, to, stall, |n| {
            bar.inc(n);
            if bar.position() > bar.length().unwrap_or(0) {
                bar.set_length(bar.position());
            }
        })
        .await;
        bar.finish_and_clear();
        let (read, wrote) = (reader.wait().await, writer.wait().await);
        let bytes = moved.map_err(|e| {
            Error::Failed(format!(
                "the copy from {} to {} broke off: {e}",
                record.source_node(),
                record.node
            ))
        })?;
        read.map_err(|e| Error::Failed(format!("reading the source failed: {e}")))?;
        wrote.map_err(|e| Error::Failed(format!("writing the copy failed: {e}")))?;
        tracing::debug!("move of {}: {bytes} bytes of tar stream", record.claim);
        let target = self.target(record, sessions).await?;
        let copy_manifest = self.manifest(target, target_dir).await?;
        if let Some(why) = copy::compare(&source_manifest, &copy_manifest) {
            return Err(Error::Failed(format!(
                "the copy on node {} is not the source: {why}; nothing else was changed (`lpp move {} --to {}` copies again)",
                record.node, record.claim, record.node
            )));
        }
        Ok(expected)
    }

    /// Sets the old PV to Retain (recording the move on it) and reads it back.
    async fn retain_old(&self, record: &Record) -> Result<(), Error> {
        let patch = serde_json::json!({
            "metadata": {"annotations": {MOVING_TO: record.volume}},
            "spec": {"persistentVolumeReclaimPolicy": "Retain"},
        });
        let patched = self
            .volumes()
            .patch(&record.from, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(request(
                "patch",
                format!("persistentvolume {}", record.from),
            ))?;
        let policy = patched
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref());
        if policy != Some("Retain") {
            return Err(Error::Failed(format!(
                "volume {} did not take reclaim policy Retain (it says {policy:?}): the claim is left alone",
                record.from
            )));
        }
        Ok(())
    }

    /// Deletes the claim (the one the move started from), checks the source once more against
    /// the copy, recreates the claim pre-bound to the new PV and waits until it is Bound.
    /// Returns the summary when it verified again.
    async fn rebind(
        &self,
        record: &Record,
        sessions: &mut Sessions,
    ) -> Result<Option<Summary>, Error> {
        let (namespace, name) = record.claim.split_once('/').unwrap_or_default();
        let claims = self.claims(namespace);
        let current = claims.get_opt(name).await.map_err(request(
            "get",
            format!("persistentvolumeclaim {}", record.claim),
        ))?;
        let recreated = match &current {
            Some(c) if c.uid().as_deref() == Some(record.claim_uid.as_str()) => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(record.claim_uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match claims.delete(name, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => {
                        return Err(request(
                            "delete",
                            format!("persistentvolumeclaim {}", record.claim),
                        )(e));
                    }
                }
                self.wait_claim_gone(record).await?;
                false
            }
            Some(c)
                if c.spec.as_ref().and_then(|s| s.volume_name.as_deref())
                    == Some(record.volume.as_str()) =>
            {
                true
            }
            Some(c) => {
                return Err(Error::Failed(format!(
                    "claim {} is another claim now (uid {}, not {}): the move to {} stops here; its data is verified at {}:{}",
                    record.claim,
                    c.uid().unwrap_or_default(),
                    record.claim_uid,
                    record.volume,
                    record.node,
                    record.path
                )));
            }
            None => false,
        };
        let mut verified = None;
        if !recreated {
            self.pause("claim-deleted").await;
            // Nobody can write to the source any more: it must still be what was copied.
            verified = Some(self.verify_again(record, sessions).await?);
            let claim: PersistentVolumeClaim = serde_json::from_str(&record.claim_object)
                .map_err(|e| {
                    Error::Failed(format!(
                        "volume {} records claim {} unreadably ({e}); recreate it by hand with spec.volumeName {}",
                        record.volume, record.claim, record.volume
                    ))
                })?;
            match claims.create(&PostParams::default(), &claim).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    return Err(request(
                        "create",
                        format!("persistentvolumeclaim {}", record.claim),
                    )(e));
                }
            }
        }
        let volume = record.volume.clone();
        let bound = kube::runtime::wait::await_condition(
            claims,
            name,
            move |c: Option<&PersistentVolumeClaim>| {
                c.is_some_and(|c| {
                    c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                        && c.spec.as_ref().and_then(|s| s.volume_name.as_deref())
                            == Some(volume.as_str())
                })
            },
        );
        match tokio::time::timeout(self.options.timeout, bound).await {
            Ok(Ok(_)) => Ok(verified),
            _ => Err(Error::Failed(format!(
                "claim {} did not bind to {} within {} (`kubectl describe pvc -n {namespace} {name}`); `lpp move {} --to {}` carries on",
                record.claim,
                record.volume,
                ui::duration(self.options.timeout),
                record.claim,
                record.node
            ))),
        }
    }

    async fn wait_claim_gone(&self, record: &Record) -> Result<(), Error> {
        let (namespace, name) = record.claim.split_once('/').unwrap_or_default();
        let uid = record.claim_uid.clone();
        let gone = kube::runtime::wait::await_condition(
            self.claims(namespace),
            name,
            move |c: Option<&PersistentVolumeClaim>| {
                c.is_none_or(|c| c.uid().as_deref() != Some(uid.as_str()))
            },
        );
        if matches!(
            tokio::time::timeout(self.options.timeout, gone).await,
            Ok(Ok(_))
        ) {
            return Ok(());
        }
        let users = claim_users(&self.client, namespace, name).await?;
        Err(Error::Failed(format!(
            "claim {} is still being deleted after {}{}; `lpp move {} --to {}` finishes the move once it is gone",
            record.claim,
            ui::duration(self.options.timeout),
            if users.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    users
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            record.claim,
            record.node
        )))
    }

    /// With the claim gone: the copy must still be the source (copied again if a pod wrote to
    /// the source after the copy). A source that cannot be reached any more is trusted as
    /// recorded when the copy still matches its recorded checksum.
    async fn verify_again(
        &self,
        record: &Record,
        sessions: &mut Sessions,
    ) -> Result<Summary, Error> {
        let copy_manifest = {
            let target = self.target(record, sessions).await?;
            self.manifest(target, &record.path).await?
        };
        let source_manifest = match self.source(record, sessions).await {
            Ok(source) => Some(self.manifest(source, record.source_path()).await?),
            Err(e) => {
                self.ui
                    .warn(&format!("{e}; trusting the copy verified when it was made"));
                None
            }
        };
        match source_manifest {
            None => {
                let summary = copy_manifest.summary();
                if record.checksum.as_deref() == Some(summary.record().as_str()) {
                    Ok(summary)
                } else {
                    Err(Error::Failed(format!(
                        "the copy on node {} no longer matches its recorded checksum and the source cannot be read: the claim is not recreated; the copy is at {}:{}",
                        record.node, record.node, record.path
                    )))
                }
            }
            Some(source) if copy::compare(&source, &copy_manifest).is_none() => {
                Ok(source.summary())
            }
            Some(_) => {
                self.ui.note(&format!(
                    "the source of {} changed after it was copied: copying again",
                    record.claim
                ));
                let summary = self.copy(record, sessions).await?;
                self.record_step(record, Step::Rebinding, Some(&summary.record()))
                    .await?;
                Ok(summary)
            }
        }
    }

    /// The last step: the source directory (with `--delete-source`) and the old PV go, the new
    /// PV loses the record. Returns whether the source directory stays.
    async fn finish(&self, record: &Record, sessions: &mut Sessions) -> Result<bool, Error> {
        let old = self.volume(&record.from).await?;
        let mut source_kept = true;
        if self.options.delete_source {
            let size = old
                .as_ref()
                .and_then(|v| v.spec.as_ref())
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage").and_then(quantity_bytes))
                .unwrap_or(0);
            let job = self.job(
                Action::Delete,
                &record.from,
                record.source_node(),
                record.source_path(),
                size,
            );
            // Nobody else's data goes with it: no other volume may use, hold or lie in it.
            let taken = self
                .overlapping(&record.from, record.source_node(), record.source_path())
                .await?;
            match (taken, self.source(record, sessions).await) {
                (Some(other), _) => self.ui.warn(&format!(
                    "the source {}:{} stays: volume {} ({}) uses it now",
                    record.source_node(),
                    record.source_path(),
                    other.name,
                    other.path
                )),
                (None, Ok(source)) => {
                    source
                        .run(copy::volume_script(&job), self.provisioner.cmd_timeout)
                        .await
                        .map_err(|e| {
                            Error::Failed(format!(
                                "the claim is Bound on {}, but removing the source {}:{} failed: {e}",
                                record.node,
                                record.source_node(),
                                record.source_path()
                            ))
                        })?;
                    source_kept = false;
                }
                (None, Err(e)) => self.ui.warn(&format!(
                    "{e}: the source {}:{} stays",
                    record.source_node(),
                    record.source_path()
                )),
            }
        }
        if let Some(old) = old {
            // Only the old PV this move kept: Released (its claim is gone) and marked by it.
            let ours = old.annotations().get(MOVING_TO) == Some(&record.volume);
            let bound = old.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            if ours && !bound {
                self.delete_volume(&record.from).await?;
            } else {
                self.ui.warn(&format!(
                    "volume {} is left in place: it is not the one this move kept",
                    record.from
                ));
            }
        }
        self.volumes()
            .patch(
                &record.volume,
                &PatchParams::default(),
                &Patch::Merge(&steps::finished_patch(record)),
            )
            .await
            .map_err(request(
                "patch",
                format!("persistentvolume {}", record.volume),
            ))?;
        Ok(source_kept)
    }

    /// Undoes a move that has not passed the point of return: the old PV gets its policy
    /// back, the new directory and PV go. The claim never left its volume.
    async fn roll_back(&self, record: &Record) -> Result<MoveResult, Error> {
        let mut sessions = Sessions::default();
        let result = self.undo(record, &mut sessions).await;
        sessions.finish().await;
        result
    }

    async fn undo(&self, record: &Record, sessions: &mut Sessions) -> Result<MoveResult, Error> {
        if let Some(old) = self.volume(&record.from).await?
            && old.annotations().get(MOVING_TO) == Some(&record.volume)
        {
            let patch = serde_json::json!({
                "metadata": {"annotations": {MOVING_TO: null}},
                "spec": {"persistentVolumeReclaimPolicy": record.reclaim_policy},
            });
            self.volumes()
                .patch(&record.from, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(request(
                    "patch",
                    format!("persistentvolume {}", record.from),
                ))?;
        }
        // The new directory is this move's alone (a fresh name no other volume overlaps):
        // removing it touches nobody's data. Checked again all the same.
        if let Some(other) = self
            .overlapping(&record.volume, &record.node, &record.path)
            .await?
        {
            return Err(Error::Failed(format!(
                "the new directory {}:{} overlaps volume {} ({}): it is left as it is, and so is volume {}",
                record.node, record.path, other.name, other.path, record.volume
            )));
        }
        let size = self.size_of(&record.volume).await;
        let job = self.job(
            Action::Delete,
            &record.volume,
            &record.node,
            &record.path,
            size,
        );
        let target = self.target(record, sessions).await?;
        target
            .run(copy::volume_script(&job), self.provisioner.cmd_timeout)
            .await
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot remove the partial copy {}:{}: {e}",
                    record.node, record.path
                ))
            })?;
        self.delete_volume(&record.volume).await?;
        self.ui.note(&format!(
            "claim {}: the interrupted move to {} is rolled back; the claim stays on {}",
            record.claim,
            record.node,
            record.source_node()
        ));
        Ok(MoveResult {
            claim: record.claim.clone(),
            outcome: Outcome::RolledBack,
            from: Place {
                node: record.source_node().to_owned(),
                volume: record.from.clone(),
                path: record.source_path().to_owned(),
            },
            to: None,
            files: 0,
            bytes: 0,
            checksum: String::new(),
            source_kept: true,
        })
    }

    /// `--all-from`: every bound volume of ours on `from`, one claim at a time, after the plan
    /// is shown and confirmed.
    async fn evacuate(&self, from: &str, report: &mut MoveReport) -> Result<(), Error> {
        let to = self.options.to.as_str();
        if from == to {
            return Err(Error::Refused(format!(
                "--all-from {from} and --to {to} are the same node"
            )));
        }
        let nodes = all_nodes(&self.client).await?;
        if !nodes.contains_key(from) {
            return Err(Error::Refused(format!("node {from} does not exist")));
        }
        let on_node = |value: &str| node_for(&nodes, value).as_deref() == Some(from);
        let provisioner = &self.options.provisioner.provisioner_name;
        let mut planned: Vec<(String, String, String, String)> = Vec::new();
        for volume in all_volumes(&self.client).await? {
            let bound = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            let ours = volume.annotations().get(PROVISIONED_BY) == Some(provisioner);
            let Some((Some(value), path)) = crate::provision::volume_location(&volume) else {
                continue;
            };
            let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.clone());
            if let (true, true, true, Some(c)) = (bound, ours, on_node(&value), claim_ref) {
                planned.push((
                    c.namespace.unwrap_or_default(),
                    c.name.unwrap_or_default(),
                    volume.name_any(),
                    path,
                ));
            }
        }
        planned.sort();
        if planned.is_empty() {
            self.ui.note(&format!(
                "node {from} holds no bound volume of {provisioner}"
            ));
            return Ok(());
        }
        if !self.options.wait {
            let mut busy = Vec::new();
            for (ns, name, _, _) in &planned {
                let users = claim_users(&self.client, ns, name).await?;
                if !users.is_empty() {
                    busy.push(in_use_message(ns, name, &users));
                }
            }
            if !busy.is_empty() {
                return Err(Error::Refused(format!(
                    "nothing was moved: {}",
                    busy.join("; ")
                )));
            }
        }
        self.ui.note(&format!(
            "plan: move {} volumes from {from} to {to}, one at a time:",
            planned.len()
        ));
        for (ns, name, volume, path) in &planned {
            self.ui
                .note(&format!("  {ns}/{name}  {volume}  {from}:{path}"));
        }
        self.ui.confirm(&format!(
            "Move these {} claims from node {from} to node {to} on context {}; each claim is deleted and recreated",
            planned.len(),
            self.context
        ))?;
        for (ns, name, _, _) in planned {
            match self.move_claim(&ns, &name, to, true).await {
                Ok(result) => report.moves.push(result),
                Err(e) => {
                    self.ui
                        .warn(&format!("claim {ns}/{name} was not moved: {e}"));
                    report.failed.push(FailedMove {
                        claim: format!("{ns}/{name}"),
                        error: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The `LPP_MOVE_PAUSE_AFTER` test hook.
    async fn pause(&self, point: &str) {
        let Some(pause) = self.options.pause.as_ref().filter(|p| p.after == point) else {
            return;
        };
        ui::eprint_line(&format!(
            "lpp move: paused after {point} (test hook LPP_MOVE_PAUSE_AFTER)"
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while tokio::time::Instant::now() < deadline {
            if pause.file.as_ref().is_some_and(|f| f.exists()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The node a volume's node value (from its node affinity) names: the node of that name, else
/// the one node carrying it as a label value (its `kubernetes.io/hostname`, or a class's
/// `nodeAffinityKey`). A value several nodes carry names none: no volume is guessed onto a node.
pub fn node_for(nodes: &std::collections::BTreeMap<String, Node>, value: &str) -> Option<String> {
    if nodes.contains_key(value) {
        return Some(value.to_owned());
    }
    let mut carrying = nodes
        .iter()
        .filter(|(_, n)| n.labels().values().any(|v| v == value));
    match (carrying.next(), carrying.next()) {
        (Some((name, _)), None) => Some(name.clone()),
        _ => None,
    }
}

/// A delete's answer, where "not found" is success: the object is gone either way.
fn gone_is_fine<T>(answer: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match answer {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The volume of `volumes`, other than `own`, whose directory overlaps `dir` on `node`; a volume
/// that names no node may be on any, so it counts.
fn overlapping_on<'a>(
    volumes: &'a [VolumeRef],
    own: &str,
    node: &str,
    dir: &str,
) -> Option<&'a VolumeRef> {
    crate::provision::overlapping(volumes, own, Some(node), |n| n == node, dir)
}

fn parse_summary(text: &str) -> Option<Summary> {
    let mut parts = text.split(' ');
    let files = parts.next()?.parse().ok()?;
    let bytes = parts.next()?.parse().ok()?;
    let checksum = u64::from_str_radix(parts.next()?, 16).ok()?;
    Some(Summary {
        files,
        bytes,
        checksum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_value_names_its_node_or_the_one_node_labelled_with_it() {
        let node = |name: &str, labels: serde_json::Value| -> (String, Node) {
            let n: Node = serde_json::from_value(
                serde_json::json!({"metadata": {"name": name, "labels": labels}}),
            )
            .unwrap();
            (name.to_owned(), n)
        };
        let nodes = std::collections::BTreeMap::from([
            node(
                "n1",
                serde_json::json!({"kubernetes.io/hostname": "ip-1", "zone": "a"}),
            ),
            node(
                "n2",
                serde_json::json!({"kubernetes.io/hostname": "ip-2", "zone": "a"}),
            ),
        ]);
        assert_eq!(node_for(&nodes, "n2").as_deref(), Some("n2"));
        assert_eq!(node_for(&nodes, "ip-1").as_deref(), Some("n1"));
        assert_eq!(node_for(&nodes, "a"), None, "two nodes carry it");
        assert_eq!(node_for(&nodes, "gone"), None);
    }

    #[test]
    fn a_volume_already_gone_is_deleted_and_any_other_refusal_is_not() {
        let status = |code: u16| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("answered", "Reason").with_code(code),
            ))
        };
        assert!(gone_is_fine(Ok::<(), kube::Error>(())).is_ok());
        assert!(gone_is_fine::<()>(Err(status(404))).is_ok());
        for code in [403, 409, 500] {
            match gone_is_fine::<()>(Err(status(code))) {
                Err(kube::Error::Api(s)) => assert_eq!(s.code, code),
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_volumes_on_the_same_node_or_on_no_node_overlap_a_directory() {
        let v = |name: &str, node: Option<&str>, path: &str| VolumeRef {
            name: name.into(),
            node: node.map(str::to_owned),
            path: path.into(),
        };
        let volumes = [
            v("self", Some("n1"), "/opt/lp/a"),
            v("elsewhere", Some("n2"), "/opt/lp/a"),
            v("inside", Some("n1"), "/opt/lp/a/deeper"),
        ];
        let found = |volumes: &[VolumeRef], dir: &str| {
            overlapping_on(volumes, "self", "n1", dir).map(|o| o.name.clone())
        };
        assert_eq!(found(&volumes, "/opt/lp/a").as_deref(), Some("inside"));
        assert_eq!(
            found(&volumes[..2], "/opt/lp/a"),
            None,
            "itself and another node's"
        );
        let shared = [v("shared", None, "/opt/lp")];
        assert_eq!(found(&shared, "/opt/lp/a").as_deref(), Some("shared"));
        assert_eq!(found(&shared, "/srv/b"), None);
    }

    #[test]
    fn a_recorded_summary_reads_back() {
        let s = Summary {
            files: 3,
            bytes: 1024,
            checksum: 0xdead_beef,
        };
        assert_eq!(parse_summary(&s.record()), Some(s));
        assert_eq!(parse_summary("3 x y"), None);
    }
}
