//! One operation: provision a claim or reclaim a volume, retried with backoff.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;

use super::helpers::Seen;
use super::metrics::{Action, Outcome};
use super::{Context, Done, Work, events};
use crate::config::ConfigMapContents;
use crate::provision::events::{self as texts, Backoff};
use crate::provision::{
    ClaimDecision, ClaimInput, HelperOutcome, HelperPods, ReclaimDecision, decide_claim,
    decide_reclaim, helper_outcome, selected_node,
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
enum Attempt {
    Done,
    /// Worth retrying after a delay, with why.
    Retry(String),
}

/// Carries out `work` until it succeeds, is refused, or runs out of retries.
pub async fn carry_out(context: &Context, work: Work) {
    let (limit, what) = match &work {
        Work::Claim(c) => (
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
    let backoff = Backoff {
        limit,
        ..Backoff::default()
    };
    let mut attempt = 0;
    loop {
        let outcome = match &work {
            Work::Claim(claim) => provision(context, claim).await,
            Work::Volume(volume) => reclaim(context, volume).await,
        };
        let Attempt::Retry(why) = outcome else { return };
        match &work {
            Work::Claim(_) => context.metrics.provision(Outcome::Failure, None),
            Work::Volume(_) => context.metrics.deletion(Outcome::Failure, None),
        }
        attempt += 1;
        let jitter =
            f64::from(jiff::Timestamp::now().subsec_nanosecond().rem_euclid(1000)) / 1000.0;
        match backoff.delay(attempt, jitter) {
            Some(delay) => {
                tracing::warn!("{what}: {why}; retrying in {:.1}s", delay.as_secs_f64());
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
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

/// The configuration for the next operation: the ConfigMap (or the `--config` files) as it is
/// now, read afresh so that an edit applies to the very next volume; see [`judge`].
async fn contents(context: &Context) -> Result<ConfigMapContents, String> {
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

fn helper_pods(context: &Context, contents: &ConfigMapContents) -> Result<HelperPods, String> {
    let o = &context.options;
    HelperPods::new(
        contents.helper_pod.clone(),
        o.allow_unsafe_helper_pod_template,
        &o.namespace,
        &o.service_account_name,
        o.helper_image.as_deref(),
        &o.config_map,
    )
    .map_err(|e| format!("the helper pod template cannot be used: {e}"))
}

async fn provision(context: &Context, seen: &PersistentVolumeClaim) -> Attempt {
    let client = &context.client;
    let provisioner = &context.options.provisioner_name;
    let namespace = seen.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let started = Instant::now();
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
    let class = match Api::<StorageClass>::all(client.clone())
        .get_opt(&class_name)
        .await
    {
        Ok(c) => c,
        Err(e) => return Attempt::Retry(format!("cannot read StorageClass {class_name}: {e}")),
    };
    if class.as_ref().is_none_or(|c| c.provisioner != *provisioner) {
        return Attempt::Done;
    }
    let node = match selected_node(&claim) {
        Some(name) => match Api::<Node>::all(client.clone()).get_opt(name).await {
            Ok(n) => n,
            Err(e) => return Attempt::Retry(format!("cannot read node {name}: {e}")),
        },
        None => None,
    };
    let pv_name = crate::provision::volume::volume_name(&claim.uid().unwrap_or_default());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume_exists = match volumes.get_opt(&pv_name).await {
        Ok(v) => v.is_some(),
        Err(e) => return Attempt::Retry(format!("cannot read PV {pv_name}: {e}")),
    };
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
    let decision = decide_claim(&ClaimInput {
        claim: &claim,
        class: class.as_ref(),
        node: node.as_ref(),
        contents: &contents,
        provisioner,
        volume_exists,
        choice,
    });
    let plan = match decision {
        ClaimDecision::Skip(_) => return Attempt::Done,
        ClaimDecision::Reject(message) => {
            tracing::warn!("claim {namespace}/{} refused: {message}", claim.name_any());
            warn(context, &claim, texts::PROVISIONING_FAILED, &message).await;
            return Attempt::Done;
        }
        ClaimDecision::Provision(plan) => plan,
    };
    let helpers = match helper_pods(context, &contents) {
        Ok(h) => h,
        Err(why) => {
            warn(context, &claim, texts::PROVISIONING_FAILED, &why).await;
            return Attempt::Retry(why);
        }
    };
    events::record(
        client,
        provisioner,
        &claim,
        false,
        texts::PROVISIONING,
        &texts::provisioning_message(provisioner, &namespace, &claim.name_any()),
    )
    .await;
    let pod = match helpers.for_volume(&plan.helper) {
        Ok(p) => p,
        Err(e) => return Attempt::Retry(format!("cannot build the helper pod: {e}")),
    };
    drop(permit);
    if let Err(why) = run_helper(context, &pod, Action::Setup, contents.config.cmd_timeout).await {
        let message = texts::provisioning_failed_message(&class_name, &why);
        warn(context, &claim, texts::PROVISIONING_FAILED, &message).await;
        return Attempt::Retry(why);
    }
    let _permit = context.permit().await;
    match volumes.create(&PostParams::default(), &plan.volume).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Attempt::Retry(format!("cannot create PV {pv_name}: {e}")),
    }
    delete_pod(context, &pod.name_any()).await;
    let took = started.elapsed();
    context.metrics.provision(Outcome::Success, Some(took));
    context.action(&Done {
        verb: "provisioned",
        object: &format!("{namespace}/{}", claim.name_any()),
        node: plan.node.as_deref().unwrap_or("shared"),
        path: &plan.path,
        took,
    });
    events::record(
        client,
        provisioner,
        &claim,
        false,
        texts::PROVISIONING_SUCCEEDED,
        &texts::provisioning_succeeded_message(&pv_name, plan.node.as_deref(), &plan.path),
    )
    .await;
    Attempt::Done
}

async fn reclaim(context: &Context, seen: &PersistentVolume) -> Attempt {
    let client = &context.client;
    let provisioner = &context.options.provisioner_name;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let started = Instant::now();
    let permit = context.permit().await;
    let volume = match volumes.get_opt(&seen.name_any()).await {
        Ok(Some(v)) if v.uid() == seen.uid() => v,
        Ok(_) => return Attempt::Done,
        Err(e) => return Attempt::Retry(format!("cannot read the volume: {e}")),
    };
    let contents = match contents(context).await {
        Ok(c) => c,
        Err(why) => return Attempt::Retry(why),
    };
    let nodes: Vec<String> = match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items.iter().map(|n| n.name_any()).collect(),
        Err(e) => return Attempt::Retry(format!("cannot list nodes: {e}")),
    };
    let name = volume.name_any();
    match decide_reclaim(&volume, provisioner, &contents, |n| {
        nodes.iter().any(|x| x == n)
    }) {
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
            let helpers = match helper_pods(context, &contents) {
                Ok(h) => h,
                Err(why) => return Attempt::Retry(why),
            };
            let pod = match helpers.for_volume(&job) {
                Ok(p) => p,
                Err(e) => return Attempt::Retry(format!("cannot build the helper pod: {e}")),
            };
            drop(permit);
            if let Err(why) =
                run_helper(context, &pod, Action::Teardown, contents.config.cmd_timeout).await
            {
                let message = texts::volume_failed_delete_message(&name, &why);
                warn(context, &volume, texts::VOLUME_FAILED_DELETE, &message).await;
                return Attempt::Retry(why);
            }
            let _permit = context.permit().await;
            let deleted = delete_volume(&volumes, &name).await;
            delete_pod(context, &pod.name_any()).await;
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
            deleted
        }
    }
}

/// Why the API server refused a request, in its own words (not the whole Status), with what to
/// do when Pod Security is the cause.
fn refusal(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.message.contains("violates PodSecurity") => format!(
            "{}; helper pods mount host paths, so the provisioner namespace needs \
             pod-security.kubernetes.io/enforce=privileged (lpp install sets it)",
            status.message
        ),
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

async fn delete_volume(volumes: &Api<PersistentVolume>, name: &str) -> Attempt {
    match volumes.delete(name, &DeleteParams::default()).await {
        Ok(_) => Attempt::Done,
        Err(kube::Error::Api(e)) if e.code == 404 => Attempt::Done,
        Err(e) => Attempt::Retry(format!("cannot delete PV {name}: {e}")),
    }
}

async fn delete_pod(context: &Context, name: &str) {
    let pods: Api<Pod> = Api::namespaced(context.client.clone(), &context.options.namespace);
    if let Err(e) = pods.delete(name, &DeleteParams::background()).await
        && !matches!(&e, kube::Error::Api(a) if a.code == 404)
    {
        tracing::warn!("cannot delete helper pod {name}: {e}");
    }
}

/// Creates the helper pod (adopting one left by an earlier run) and waits, woken by the shared
/// helper pod watch, until it succeeds, fails or is stuck, at most `timeout`. A failed or stuck
/// helper is deleted so the retry starts clean.
async fn run_helper(
    context: &Context,
    pod: &Pod,
    action: Action,
    timeout: Duration,
) -> Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(context.client.clone(), &context.options.namespace);
    let name = pod.name_any();
    let started = Instant::now();
    let mut seen = context.helper_watch.subscribe(&name);
    let outcome = async {
        match pods.create(&PostParams::default(), pod).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Adopted: it may have finished already, with no change left to see.
                if let Ok(existing) = pods.get(&name).await {
                    context
                        .helper_watch
                        .deliver(&name, Seen::Present(Box::new(existing)));
                }
                // (A leftover being deleted shows up as Deleted; the retry then starts fresh.)
            }
            Err(e) => return Err(format!("cannot create helper pod {name}: {}", refusal(&e))),
        }
        let finished = async {
            loop {
                let now = seen.borrow_and_update().clone();
                match now {
                    Seen::Present(p) => match helper_outcome(&p) {
                        HelperOutcome::Succeeded => return Ok(()),
                        HelperOutcome::Failed(why) | HelperOutcome::Stuck(why) => {
                            return Err(why);
                        }
                        HelperOutcome::Running => {}
                    },
                    Seen::Deleted => {
                        return Err(format!("helper pod {name} was deleted before it finished"));
                    }
                    Seen::Unknown => {}
                }
                if seen.changed().await.is_err() {
                    return Err(format!("stopped watching helper pod {name}"));
                }
            }
        };
        tokio::time::timeout(timeout, finished)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "helper pod {name} did not finish within {}s (cmdTimeoutSeconds)",
                    timeout.as_secs()
                ))
            })
    }
    .await;
    context.helper_watch.unsubscribe(&name);
    let result = if outcome.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    context.metrics.helper(action, result, started.elapsed());
    if outcome.is_err() {
        delete_pod(context, &name).await;
        // The next attempt creates the pod anew: wait until this one is gone.
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(pods, &name, |pod: Option<&Pod>| pod.is_none()),
        )
        .await;
    }
    outcome
}
