//! With the agent executor, the node agents must mount every base path the ConfigMap names: when
//! an edit adds one, the `local-path-agent` DaemonSet is updated (its pods roll), and until then
//! jobs on the new path run in helper pods.

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, Patch, PatchParams};

use super::Context;
use crate::config::{ConfigMapContents, ExecutorKind};
use crate::provision::agent::{AGENT_NAME, daemon_set, mounted_paths};

/// The field manager of lpp's writes, as `lpp install` applies.
const MANAGER: &str = "lpp";

/// Adds to the agent DaemonSet the base paths of `contents` it does not mount (paths no longer
/// configured stay mounted: volumes there still need their teardown). Nothing without the agent
/// executor; a missing DaemonSet is said once per configuration.
pub async fn keep_mounting(context: &Context, contents: &ConfigMapContents) {
    let kind = context.options.executor.or(contents.config.executor);
    if kind != Some(ExecutorKind::Agent) {
        return;
    }
    let sets: Api<DaemonSet> = Api::namespaced(context.client.clone(), &context.options.namespace);
    let live = match sets.get_opt(AGENT_NAME).await {
        Ok(Some(live)) => live,
        Ok(None) => {
            tracing::warn!(
                "the agent executor is asked for, but DaemonSet {}/{AGENT_NAME} does not exist: \
                 scripts run in helper pods until it does (`lpp install --executor agent`)",
                context.options.namespace
            );
            return;
        }
        Err(e) => {
            tracing::warn!("cannot read DaemonSet {AGENT_NAME}: {e}; its mounts are not checked");
            return;
        }
    };
    let mounted = mounted_paths(&live);
    let wanted = contents.config.all_base_paths();
    if wanted.is_subset(&mounted) {
        return;
    }
    let all = mounted.union(&wanted).cloned().collect();
    let desired = daemon_set(
        &contents.helper_pod,
        context.options.helper_image.as_deref(),
        &context.options.namespace,
        &all,
    );
    let added: Vec<&String> = wanted.difference(&mounted).collect();
    match sets
        .patch(
            AGENT_NAME,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
    {
        Ok(_) => tracing::info!(
            "DaemonSet {AGENT_NAME} now mounts {added:?} too; its pods roll, helper pods serve \
             those paths meanwhile"
        ),
        Err(e) => tracing::warn!(
            "cannot update DaemonSet {AGENT_NAME} to mount {added:?}: {e}; helper pods serve those \
             paths"
        ),
    }
}
