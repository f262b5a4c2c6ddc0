//! One resize: a bound claim of ours asks for more than it has. The pure
//! [`crate::provision::resize`] decides (the size, the status patches); this carries it out in
//! external-resizer's order: mark the claim, check the room on the volume's path, run the
//! `resize` script, set the PV's capacity, finish the claim.
//!
//! Nothing is remembered between attempts: each reads the claim and its PV afresh, so a run
//! killed anywhere resumes from what the objects say (see the module docs of the decision).

use std::time::Instant;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;

use super::metrics::{Action, Outcome};
use super::operation::{Attempt, class_of, contents, helper_pods_of, run_script};
use super::{Context, Done, events};
use crate::config::ExecutorKind;
use crate::executor::JobError;
use crate::provision::resize::{
    self as decision, Failure, ResizeDecision, ResizeInput, ResizePlan, decide_resize,
};
use crate::provision::volume::PROVISIONED_BY;
use crate::provision::{HelperPods, HostDir, ScriptJob, helper_pod::HostPathType};

/// Looks at a claim that asked to grow and resizes its volume when it is ours.
pub(super) async fn resize(context: &Context, seen: &PersistentVolumeClaim) -> Attempt {
    let started = Instant::now();
    let permit = context.permit().await;
    if let Err(why) = context.stores.ready().await {
        return Attempt::Retry(why);
    }
    let volume_name = seen
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    // Most bound claims of a cluster are not ours: the store says so without a request.
    if let Some(volume) = context.stores.volumes.get(&ObjectRef::new(&volume_name))
        && !volume
            .annotations()
            .get(PROVISIONED_BY)
            .is_some_and(|p| context.options.serves(p))
    {
        return Attempt::Done;
    }
    let namespace = seen.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(context.client.clone(), &namespace);
    let claim = match claims.get_opt(&seen.name_any()).await {
        Ok(Some(c)) if c.uid() == seen.uid() => c,
        Ok(_) => return Attempt::Done,
        Err(e) => return Attempt::Retry(format!("cannot read the claim: {e}")),
    };
    if !decision::wants_resize(&claim) {
        return Attempt::Done;
    }
    // The PV as it is now, not as the store last saw it: its capacity says how far an
    // interrupted resize got.
    let volumes: Api<PersistentVolume> = Api::all(context.client.clone());
    let volume = match volumes.get_opt(&volume_name).await {
        Ok(v) => v,
        Err(e) => return Attempt::Retry(format!("cannot read PV {volume_name}: {e}")),
    };
    let contents = match contents(context).await {
        Ok(c) => c,
        Err(why) => return Attempt::Retry(why),
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
    let nodes = context.stores.nodes.state();
    let node_labelled = |key: &str, value: &str| {
        nodes
            .iter()
            .find(|n| n.labels().get(key).is_some_and(|v| v == value))
            .map(|n| n.name_any())
    };
    let decided = decide_resize(&ResizeInput {
        claim: &claim,
        volume: volume.as_ref(),
        class: class.as_ref(),
        contents: &contents,
        provisioner: &context.options.provisioner_name,
        node_labelled: &node_labelled,
        now: jiff::Timestamp::now(),
    });
    let plan = match decided {
        ResizeDecision::Leave(why) => {
            tracing::debug!("no resize: {why:?}");
            return Attempt::Done;
        }
        ResizeDecision::NoVolume(why) => return Attempt::Retry(why),
        ResizeDecision::StillInfeasible => {
            tracing::debug!("the requested size was refused before; waiting for a change");
            return Attempt::Refused;
        }
        ResizeDecision::Fail(cause) => {
            fail(context, &claim, &volume_name, Failure::Final, &cause).await;
            return Attempt::Refused;
        }
        ResizeDecision::Resize(plan) => plan,
    };
    let what = format!("{namespace}/{}", claim.name_any());
    tracing::info!(
        "resizing {what}: volume {} from {} to {}",
        plan.pv_name,
        plan.old_size.0,
        plan.new_size.0
    );

    // 1. Mark the claim: the size in progress is on record before anything changes.
    let claim = match claims
        .patch_status(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&plan.mark),
        )
        .await
    {
        Ok(c) => c,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Attempt::Retry("the claim changed while it was being marked".into());
        }
        Err(e) => return Attempt::Retry(format!("cannot mark the claim as resizing: {e}")),
    };
    events::record(
        &context.client,
        &context.options.provisioner_name,
        &claim,
        false,
        decision::RESIZING,
        &decision::resizing_message(&plan.pv_name),
    )
    .await;

    let helpers = match helper_pods_of(&context.options, contents.helper_pod.clone()) {
        Ok(h) => h,
        Err(why) => {
            fail(context, &claim, &plan.pv_name, Failure::Final, &why).await;
            return Attempt::Retry(why);
        }
    };
    let kind = context
        .options
        .executor
        .or(contents.config.executor)
        .unwrap_or(ExecutorKind::HelperPod);
    drop(permit);

    // 2. Room for the growth (none needed when the PV already has the size), then the script.
    if plan.growth > 0 {
        let place = format!(
            "{}:{}",
            plan.node.as_deref().unwrap_or("shared"),
            plan.base_path
        );
        // The node's measurement (as provisioning reads it: with the class's capacityBudget,
        // the room its volumes were not promised yet), else a df of the path right now.
        let measured = match plan.node.as_deref() {
            Some(node) => {
                super::capacity::room_to_grow(
                    context,
                    &contents,
                    class.as_ref(),
                    node,
                    &plan.base_path,
                )
                .await
            }
            None => None,
        };
        let (available, place) = match measured {
            Some((bytes, budget)) => (Ok(bytes), format!("{place}{budget}")),
            None => (
                available_bytes(context, &helpers, &plan, contents.config.cmd_timeout, kind).await,
                place,
            ),
        };
        let available = match available {
            Ok(bytes) => bytes,
            Err(why) => {
                let cause = format!("cannot measure the space left on {place}: {why}");
                warn(context, &claim, &plan.pv_name, &cause).await;
                return Attempt::Retry(cause);
            }
        };
        if let Some(cause) = decision::no_room(&plan, &place, available) {
            tracing::warn!("resize of {what} refused: {cause}");
            fail(context, &claim, &plan.pv_name, Failure::Infeasible, &cause).await;
            context.metrics.resize(Outcome::Failure);
            return Attempt::Refused;
        }
    }
    let ran = match &plan.job {
        Some(job) => {
            let ran = run_script(context, &claim, &helpers, &contents, job, Action::Resize).await;
            if let Err(e) = &ran.result {
                if matches!(e, JobError::Stopped(_)) {
                    return Attempt::Done;
                }
                let cause = e.to_string();
                let failure = match e {
                    // The script ran and said no: a final error, recorded on the claim.
                    JobError::Failed(_) => Failure::Final,
                    _ => {
                        warn(context, &claim, &plan.pv_name, &cause).await;
                        return Attempt::Retry(cause);
                    }
                };
                fail(context, &claim, &plan.pv_name, failure, &cause).await;
                return Attempt::Retry(cause);
            }
            Some((job, ran))
        }
        None => None,
    };

    // 3. The PV's capacity, 4. the claim's.
    let _permit = context.finish_permit().await;
    if let Err(e) = volumes
        .patch(
            &plan.pv_name,
            &PatchParams::default(),
            &Patch::Merge(&decision::volume_capacity(&plan.new_size)),
        )
        .await
    {
        let cause = format!("cannot set the capacity of PV {}: {e}", plan.pv_name);
        warn(context, &claim, &plan.pv_name, &cause).await;
        return Attempt::Retry(cause);
    }
    match claims
        .patch_status(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&decision::finished(&claim, &plan.new_size)),
        )
        .await
    {
        Ok(_) => {}
        // Changed meanwhile: the next attempt finds the PV grown and only finishes the claim.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Attempt::Retry("the claim changed while it was being resized".into());
        }
        Err(e) => return Attempt::Retry(format!("cannot record the claim's new size: {e}")),
    }
    context.metrics.resize(Outcome::Success);
    context.action(&Done {
        verb: "resized",
        object: &format!("{what} to {}", plan.new_size.0),
        node: plan.node.as_deref().unwrap_or("shared"),
        path: &plan.path,
        took: started.elapsed(),
    });
    if let Some((job, ran)) = &ran {
        context.executor.volume_done(&helpers, job, ran).await;
    }
    events::record(
        &context.client,
        &context.options.provisioner_name,
        &claim,
        false,
        decision::VOLUME_RESIZE_SUCCESSFUL,
        decision::RESIZE_SUCCEEDED_MESSAGE,
    )
    .await;
    Attempt::Done
}

/// A `VolumeResizeFailed` Warning with `cause`, as the sidecar words it.
async fn warn(context: &Context, claim: &PersistentVolumeClaim, pv_name: &str, cause: &str) {
    let provisioner = &context.options.provisioner_name;
    let message = decision::resize_failed_message(pv_name, provisioner, cause);
    events::record(
        &context.client,
        provisioner,
        claim,
        true,
        decision::VOLUME_RESIZE_FAILED,
        &message,
    )
    .await;
}

/// Records a failed resize on the claim (status and condition, for `kubectl describe`) and in
/// a Warning event.
async fn fail(
    context: &Context,
    claim: &PersistentVolumeClaim,
    pv_name: &str,
    failure: Failure,
    cause: &str,
) {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(
        context.client.clone(),
        &claim.namespace().unwrap_or_default(),
    );
    // The conditions are merged into the claim as it is now.
    let now = match claims.get_opt(&claim.name_any()).await {
        Ok(Some(c)) if c.uid() == claim.uid() => c,
        _ => claim.clone(),
    };
    let patch = decision::failed(&now, failure, cause, jiff::Timestamp::now());
    if let Err(e) = claims
        .patch_status(
            &now.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        tracing::warn!("cannot record the failed resize on the claim: {e}");
    }
    warn(context, claim, pv_name, cause).await;
}

/// The bytes available on the filesystem of the plan's base path, measured on its node.
async fn available_bytes(
    context: &Context,
    helpers: &HelperPods,
    plan: &ResizePlan,
    timeout: std::time::Duration,
    kind: ExecutorKind,
) -> Result<u64, String> {
    let job = ScriptJob {
        name: format!("lpp-measure-{}", crate::gc::scan::suffix()),
        action: "measure".into(),
        node: plan.node.clone(),
        host_dirs: vec![HostDir {
            path: plan.base_path.clone(),
            mount_path: None,
            kind: HostPathType::Directory,
            read_only: true,
        }],
        command: decision::df_command(&plan.base_path),
        args: Vec::new(),
        env: Vec::new(),
    };
    let output = context
        .executor
        .script(helpers, &job, timeout, kind)
        .await
        .map_err(|e| e.to_string())?;
    decision::parse_df(&output)
}
