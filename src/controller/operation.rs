//! One operation: provision a claim, reclaim a volume or resize a claim's volume
//! ([`super::resize`]), retried with backoff.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Notify;
use tracing::Instrument;

use super::metrics::{Action, Outcome};
use super::{Context, Done, RunOptions, Work, events};
use crate::config::{ConfigMapContents, ExecutorKind};
use crate::executor::{JobError, Ran};
use crate::provision::events::{self as texts, Backoff};
use crate::provision::{
    ClaimDecision, ClaimInput, HelperPods, ReclaimDecision, decide_claim, decide_reclaim,
    overlapping, selected_node,
};

/// Records a Warning event on `object`.
async fn warn<K>(context: &Context, object: &K, reason: &str, message: &str)
where
    K: kube::Resource<DynamicType = ()>,
{
    let provisioner = &context.options.provisioner_name;
    events::record(&context.client, provisioner, object, true, reason, message).await;
}

/// What one attempt ended in.
pub(super) enum Attempt {
    Done,
    /// Refused until something changes (the config, a class, a node, the volumes): kept aside
    /// and looked at again then.
    Refused,
    /// Worth retrying after a delay, with why.
    Retry(String),
}

/// Carries out `work` until it succeeds, is refused, or runs out of retries. A retry's delay is
/// cut short when newer work for the object arrives (`newer`): the operation then ends and the
/// newer work starts afresh.
pub async fn carry_out(context: &Context, work: Work, newer: &Arc<Notify>) {
    let (limit, what) = match &work {
        Work::Claim(c) | Work::Resize(c) => (
            context.options.provisioning_retry_count,
            format!(
                "claim {}/{}",
                c.namespace().unwrap_or_default(),
                c.name_any()
            ),
        ),
        Work::Volume(v) => (
            context.options.deletion_retry_count,
            format!("volume {}", v.name_any()),
        ),
    };
    let span = tracing::info_span!("operation", object = %what);
    async {
        let backoff = Backoff {
            limit,
            ..Backoff::default()
        };
        let mut attempt = 0;
        let mut work = work;
        loop {
            let generation = context.generation();
            let outcome = match &work {
                Work::Claim(claim) => provision(context, claim).await,
                Work::Volume(volume) => reclaim(context, volume).await,
                Work::Resize(claim) => super::resize::resize(context, claim).await,
            };
            let why = match outcome {
                Attempt::Done => return,
                Attempt::Refused => match context.refuse(work, generation) {
                    None => {
                        tracing::debug!("{what}: refused; looked at again when something changes");
                        return;
                    }
                    Some(back) => {
                        tracing::debug!("{what}: refused, but something changed meanwhile; again");
                        work = back;
                        continue;
                    }
                },
                Attempt::Retry(why) => why,
            };
            match &work {
                Work::Claim(_) => context.metrics.provision(Outcome::Failure, None),
                Work::Volume(_) => context.metrics.deletion(Outcome::Failure, None),
                Work::Resize(_) => context.metrics.resize(Outcome::Failure),
            }
            attempt += 1;
            let jitter =
                f64::from(jiff::Timestamp::now().subsec_nanosecond().rem_euclid(1000)) / 1000.0;
            match backoff.delay(attempt, jitter) {
                Some(delay) => {
                    tracing::warn!("{what}: {why}; retrying in {:.1}s", delay.as_secs_f64());
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = newer.notified() => {
                            tracing::debug!("{what}: changed while waiting to retry; looking at it now");
                            return;
                        }
                        () = context.stopping.cancelled() => return,
                    }
                }
                None => {
                    tracing::error!("{what}: {why}; giving up after {attempt} attempts");
                    return;
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// The configuration for the next operation: the ConfigMap (or the `--config` files) as it is
/// now, read afresh so that an edit applies to the very next volume; see [`judge`].
pub(super) async fn contents(context: &Context) -> Result<ConfigMapContents, String> {
    let options = &context.options;
    let maps: Api<ConfigMap> = Api::namespaced(context.client.clone(), &options.namespace);
    let map = if context.config_file.is_some() && context.helper_pod_file.is_some() {
        None
    } else {
        Some(maps.get(&options.config_map).await.map_err(|e| {
            format!(
                "cannot read ConfigMap {}/{}: {e}",
                options.namespace, options.config_map
            )
        })?)
    };
    judge(context, map.as_ref(), false).await
}

/// Loads `map` (`None` when the `--config` files stand in for it). When it is invalid, the last
/// good configuration is used and the problem reported once, as a Warning event on the
/// ConfigMap and a log line. `changed` (the watch saw an edit) also logs a valid edit.
pub(super) async fn judge(
    context: &Context,
    map: Option<&ConfigMap>,
    changed: bool,
) -> Result<ConfigMapContents, String> {
    let options = &context.options;
    let data = map.and_then(|m| m.data.clone()).unwrap_or_default();
    let loaded = ConfigMapContents::from_data(
        &data,
        context.config_file.as_deref(),
        context.helper_pod_file.as_deref(),
    )
    .map_err(|e| e.to_string())
    .and_then(|contents| {
        // A template the safety check refuses makes every claim fail: it is an invalid
        // configuration, reported once, and the last good one stays.
        helper_pods_of(options, contents.helper_pod.clone())?;
        Ok(contents)
    })
    .map_err(|e| {
        format!(
            "ConfigMap {}/{}: {e}",
            options.namespace, options.config_map
        )
    });
    // Decide under the lock, report after it: no lock is held across an await.
    let (result, report) = {
        let Ok(mut last) = context.last_good.lock() else {
            return loaded;
        };
        match loaded {
            Ok(contents) => {
                let again = last.1.take().is_some();
                if again || changed {
                    tracing::info!(
                        "ConfigMap {}/{} is valid{}; the next volumes use it",
                        options.namespace,
                        options.config_map,
                        if again { " again" } else { "" }
                    );
                }
                last.0 = Some(contents.clone());
                (Ok(contents), None)
            }
            Err(problem) => {
                let fresh = last.1.as_deref() != Some(problem.as_str());
                last.1 = Some(problem.clone());
                let keeping = if last.0.is_some() {
                    "; keeping the last good configuration"
                } else {
                    ""
                };
                let report = fresh.then(|| format!("{problem}{keeping}"));
                (last.0.clone().ok_or(problem), report)
            }
        }
    };
    if let Some(message) = report {
        tracing::warn!("invalid configuration rejected: {message}");
        if let Some(map) = map {
            events::record(
                &context.client,
                &options.provisioner_name,
                map,
                true,
                "InvalidConfiguration",
                &message,
            )
            .await;
        }
    }
    result
}

/// The helper pods of `template` under the run's settings, or why the template is refused.
pub(super) fn helper_pods_of(options: &RunOptions, template: Pod) -> Result<HelperPods, String> {
    HelperPods::new(
        template,
        options.allow_unsafe_helper_pod_template,
        &options.namespace,
        &options.service_account_name,
        options.helper_image.as_deref(),
        &options.config_map,
    )
    .map_err(|e| format!("the helper pod template cannot be used: {e}"))
}

/// The StorageClass from the store; one created a moment ago may not be there yet, so a miss
/// asks the API server.
pub(super) async fn class_of(
    context: &Context,
    name: &str,
) -> Result<Option<k8s_openapi::api::storage::v1::StorageClass>, String> {
    if let Some(class) = context.stores.classes.get(&ObjectRef::new(name)) {
        return Ok(Some((*class).clone()));
    }
    Api::all(context.client.clone())
        .get_opt(name)
        .await
        .map_err(|e| format!("cannot read StorageClass {name}: {e}"))
}

/// The Node from the store, asking the API server on a miss.
async fn node_of(context: &Context, name: &str) -> Result<Option<Node>, String> {
    if let Some(node) = context.stores.nodes.get(&ObjectRef::new(name)) {
        return Ok(Some((*node).clone()));
    }
    Api::all(context.client.clone())
        .get_opt(name)
        .await
        .map_err(|e| format!("cannot read node {name}: {e}"))
}

async fn provision(context: &Context, seen: &PersistentVolumeClaim) -> Attempt {
    let client = &context.client;
    let namespace = seen.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let started = Instant::now();
    if let Err(why) = context.stores.ready().await {
        return Attempt::Retry(why);
    }
    // A claim is updated several times as it binds; those updates need no request (nor a
    // worker) at all.
    let exists = |uid: Option<String>| {
        let name = crate::provision::volume::volume_name(&uid.unwrap_or_default());
        context.stores.volume_exists(&name)
    };
    if let Some(skip) = crate::provision::settled(seen, exists(seen.uid())) {
        tracing::debug!("nothing to do: {skip:?}");
        return Attempt::Done;
    }
    let permit = context.permit().await;
    // Decide on the latest state, not the one the watch delivered.
    let claim = match claims.get_opt(&seen.name_any()).await {
        Ok(Some(c)) if c.uid() == seen.uid() => c,
        Ok(_) => return Attempt::Done,
        Err(e) => return Attempt::Retry(format!("cannot read the claim: {e}")),
    };
    let class_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let class = match class_of(context, &class_name).await {
        Ok(c) => c,
        Err(why) => return Attempt::Retry(why),
    };
    // The class's provisioner, when this run serves it (the upstream name or, with
    // --capacity-tracking, lpp's own).
    let provisioner = match &class {
        Some(c) if context.options.serves(&c.provisioner) => c.provisioner.clone(),
        _ => return Attempt::Done,
    };
    let provisioner = &provisioner;
    let node = match selected_node(&claim) {
        Some(name) => match node_of(context, name).await {
            Ok(n) => n,
            Err(why) => return Attempt::Retry(why),
        },
        None => None,
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume_exists = exists(claim.uid());
    let contents = match contents(context).await {
        Ok(c) => c,
        Err(why) => {
            warn(context, &claim, texts::PROVISIONING_FAILED, &why).await;
            return Attempt::Retry(why);
        }
    };
    // The base path choice is seeded from the claim, so a restart picks the same one.
    let choice = claim
        .uid()
        .unwrap_or_default()
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let known = context.stores.volume_refs();
    // The node's disks, when the class's path choice, budget or mount guards need them.
    let capacity =
        match super::capacity::for_claim(context, &contents, class.as_ref(), node.as_ref()).await {
            Ok(c) => c,
            Err(why) => {
                warn(context, &claim, texts::PROVISIONING_FAILED, &why).await;
                return Attempt::Retry(why);
            }
        };
    let decision = decide_claim(&ClaimInput {
        claim: &claim,
        class: class.as_ref(),
        node: node.as_ref(),
        contents: &contents,
        provisioner,
        volume_exists,
        choice,
        volumes: &known,
        capacity: capacity.as_ref(),
    });
    let plan = match decision {
        ClaimDecision::Skip(skip) => {
            tracing::debug!("nothing to do: {skip:?}");
            return Attempt::Done;
        }
        ClaimDecision::Reject(message) => {
            tracing::warn!("claim {namespace}/{} refused: {message}", claim.name_any());
            warn(context, &claim, texts::PROVISIONING_FAILED, &message).await;
            return Attempt::Refused;
        }
        ClaimDecision::Reschedule(r) => {
            return match super::capacity::reschedule(context, &claim, &r).await {
                Ok(()) => Attempt::Done,
                Err(why) => Attempt::Retry(why),
            };
        }
        ClaimDecision::Provision(plan) => plan,
    };
    tracing::debug!(
        "provisioning on {}:{} ({})",
        plan.node.as_deref().unwrap_or("shared"),
        plan.path,
        plan.path_choice
    );
    let helpers = match helper_pods_of(&context.options, contents.helper_pod.clone()) {
        Ok(h) => h,
        Err(why) => {
            warn(context, &claim, texts::PROVISIONING_FAILED, &why).await;
            return Attempt::Retry(why);
        }
    };
    // Normal events are written in the background, as client-go's recorder writes them: the
    // claim's volume does not wait for them, nor does a worker.
    events::record_soon(
        &context.operations,
        client,
        provisioner,
        &claim,
        false,
        texts::PROVISIONING,
        &texts::provisioning_message(provisioner, &namespace, &claim.name_any()),
    );
    drop(permit);
    let setup = run_script(
        context,
        &claim,
        &helpers,
        &contents,
        &plan.helper,
        Action::Setup,
    )
    .await;
    if let Err(e) = &setup.result {
        if matches!(e, JobError::Stopped(_)) {
            return Attempt::Done;
        }
        let why = e.to_string();
        let message = texts::provisioning_failed_message(&class_name, &why);
        warn(context, &claim, texts::PROVISIONING_FAILED, &message).await;
        return Attempt::Retry(why);
    }
    let _permit = context.finish_permit().await;
    // The claim may have gone while the script ran: then its directory goes too, and no PV is
    // made for nobody.
    match claims.get_opt(&claim.name_any()).await {
        Ok(Some(now)) if now.uid() == claim.uid() && now.metadata.deletion_timestamp.is_none() => {}
        Ok(_) => {
            tracing::info!(
                "claim {namespace}/{} was deleted while its directory was made; removing {}",
                claim.name_any(),
                plan.path
            );
            let mut teardown = plan.helper.clone();
            teardown.action = crate::provision::Action::Delete;
            teardown.script = contents.teardown.clone();
            context
                .executor
                .volume_done(&helpers, &plan.helper, &setup)
                .await;
            let removed = run_script(
                context,
                &claim,
                &helpers,
                &contents,
                &teardown,
                Action::Teardown,
            )
            .await;
            return match &removed.result {
                Ok(()) => {
                    context
                        .executor
                        .volume_done(&helpers, &teardown, &removed)
                        .await;
                    Attempt::Done
                }
                Err(e) => Attempt::Retry(format!(
                    "the claim is gone, but its directory {} could not be removed: {e}",
                    plan.path
                )),
            };
        }
        Err(e) => return Attempt::Retry(format!("cannot read the claim again: {e}")),
    }
    let pv_name = plan.volume.name_any();
    match volumes.create(&PostParams::default(), &plan.volume).await {
        Ok(_) => context.stores.volume_made(&pv_name),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Attempt::Retry(format!("cannot create PV {pv_name}: {e}")),
    }
    // Counted and said as soon as the PV exists (what its watchers see), then the helper goes.
    let took = started.elapsed();
    context.metrics.provision(Outcome::Success, Some(took));
    context.action(&Done {
        verb: "provisioned",
        object: &format!("{namespace}/{}", claim.name_any()),
        node: plan.node.as_deref().unwrap_or("shared"),
        path: &plan.path,
        took,
    });
    context
        .executor
        .volume_done(&helpers, &plan.helper, &setup)
        .await;
    events::record_soon(
        &context.operations,
        client,
        provisioner,
        &claim,
        false,
        texts::PROVISIONING_SUCCEEDED,
        &texts::provisioning_succeeded_message(&pv_name, plan.node.as_deref(), &plan.path),
    );
    Attempt::Done
}

async fn reclaim(context: &Context, seen: &PersistentVolume) -> Attempt {
    let client = &context.client;
    let provisioner = &context.options.provisioner_name;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let started = Instant::now();
    let permit = context.permit().await;
    if let Err(why) = context.stores.ready().await {
        return Attempt::Retry(why);
    }
    let volume = match volumes.get_opt(&seen.name_any()).await {
        Ok(Some(v)) if v.uid() == seen.uid() => v,
        Ok(_) => return Attempt::Done,
        Err(e) => return Attempt::Retry(format!("cannot read the volume: {e}")),
    };
    let contents = match contents(context).await {
        Ok(c) => c,
        Err(why) => return Attempt::Retry(why),
    };
    // The volume's provisioner, when this run serves it (any of its names).
    let provisioner = volume
        .annotations()
        .get(crate::provision::volume::PROVISIONED_BY)
        .filter(|p| context.options.serves(p))
        .map_or(provisioner.as_str(), String::as_str);
    let nodes = context.stores.nodes.state();
    let name = volume.name_any();
    let decision = decide_reclaim(
        &volume,
        provisioner,
        &contents,
        |n| nodes.iter().any(|node| node.name_any() == n),
        |key, value| {
            nodes
                .iter()
                .find(|node| node.labels().get(key).is_some_and(|v| v == value))
                .map(|node| node.name_any())
        },
    );
    tracing::debug!("reclaim decision: {decision:?}");
    match decision {
        ReclaimDecision::NotOurs | ReclaimDecision::InUse | ReclaimDecision::Retain => {
            Attempt::Done
        }
        ReclaimDecision::Fail(message) => {
            warn(context, &volume, texts::VOLUME_FAILED_DELETE, &message).await;
            Attempt::Retry(message)
        }
        ReclaimDecision::NodeGone { message, .. } => {
            tracing::warn!("{message}");
            warn(context, &volume, texts::VOLUME_FAILED_DELETE, &message).await;
            delete_volume(&volumes, &name).await
        }
        ReclaimDecision::Teardown { job, .. } => {
            // Right before removing anything: a directory another PV uses, contains or lies
            // inside is kept, whoever made that PV.
            let known = context.stores.volume_refs();
            let node = job.node.clone();
            let labels = node
                .as_deref()
                .and_then(|n| nodes.iter().find(|x| x.name_any() == n))
                .and_then(|n| n.metadata.labels.clone())
                .unwrap_or_default();
            let same_node = |n: &str| node.as_deref() == Some(n) || labels.values().any(|v| v == n);
            if let Some(other) = overlapping(&known, &name, node.as_deref(), same_node, &job.path) {
                let message = format!(
                    "directory {} was kept: PersistentVolume {} uses {} on the same node, so removing it would remove that volume's data; the PV is deleted without its teardown",
                    job.path, other.name, other.path
                );
                tracing::warn!("volume {name}: {message}");
                warn(context, &volume, texts::VOLUME_FAILED_DELETE, &message).await;
                return delete_volume(&volumes, &name).await;
            }
            let helpers = match helper_pods_of(&context.options, contents.helper_pod.clone()) {
                Ok(h) => h,
                Err(why) => return Attempt::Retry(why),
            };
            drop(permit);
            let teardown = run_script(
                context,
                &volume,
                &helpers,
                &contents,
                &job,
                Action::Teardown,
            )
            .await;
            if let Err(e) = &teardown.result {
                if matches!(e, JobError::Stopped(_)) {
                    return Attempt::Done;
                }
                let why = e.to_string();
                let message = texts::volume_failed_delete_message(&name, &why);
                warn(context, &volume, texts::VOLUME_FAILED_DELETE, &message).await;
                return Attempt::Retry(why);
            }
            let _permit = context.finish_permit().await;
            let deleted = delete_volume(&volumes, &name).await;
            if matches!(deleted, Attempt::Done) {
                let took = started.elapsed();
                context.metrics.deletion(Outcome::Success, Some(took));
                context.action(&Done {
                    verb: "reclaimed",
                    object: &name,
                    node: job.node.as_deref().unwrap_or("shared"),
                    path: &job.path,
                    took,
                });
            }
            context
                .executor
                .volume_done(&helpers, &job, &teardown)
                .await;
            deleted
        }
    }
}

async fn delete_volume(volumes: &Api<PersistentVolume>, name: &str) -> Attempt {
    match volumes.delete(name, &DeleteParams::default()).await {
        Ok(_) => Attempt::Done,
        Err(kube::Error::Api(e)) if e.code == 404 => Attempt::Done,
        Err(e) => Attempt::Retry(format!("cannot delete PV {name}: {e}")),
    }
}

/// Runs a volume's script through the executor the options or the config ask for, timing it for
/// the metrics; a fallback from the agent to a helper pod is said once, on the object.
pub(super) async fn run_script<K>(
    context: &Context,
    object: &K,
    helpers: &HelperPods,
    contents: &ConfigMapContents,
    job: &crate::provision::VolumeJob,
    action: Action,
) -> Ran
where
    K: kube::Resource<DynamicType = ()>,
{
    let kind = context
        .options
        .executor
        .or(contents.config.executor)
        .unwrap_or(ExecutorKind::HelperPod);
    let started = Instant::now();
    let ran = context
        .executor
        .volume(helpers, job, contents.config.cmd_timeout, kind)
        .await;
    if let Some(why) = &ran.fallback {
        let message = format!(
            "{why}: ran the {} script in a helper pod instead",
            action.word()
        );
        tracing::warn!("{message}");
        warn(context, object, texts::NODE_AGENT_UNAVAILABLE, &message).await;
    }
    let result = if ran.result.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    context.metrics.helper(action, result, started.elapsed());
    ran
}
