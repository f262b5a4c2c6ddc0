//! Measures the pure provisioning core: claim decisions (with the PV and create-helper job they
//! carry) and helper pod builds per second, so the controller's cost per volume can be put next
//! to the API server's.
//!
//! `cargo run --example provision_decide [-- N]` (default N = 20000).

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use lpp::config::{self, ConfigMapContents};
use lpp::provision::{self, ClaimDecision, ClaimInput, HelperPods};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let contents = ConfigMapContents::from_data(&config::default_config_map_data(), None, None)?;
    let helpers = HelperPods::new(
        contents.helper_pod.clone(),
        false,
        "local-path-storage",
        "local-path-provisioner-service-account",
        None,
        config::CONFIG_MAP_NAME,
    )?;
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
        "parameters": {"pathPattern": "{{ .PVC.Namespace }}/{{ .PVC.Name }}/{{ .PVC.Labels.app }}"}}))?;
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}}}))?;
    let claims: Vec<PersistentVolumeClaim> = (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("claim-{i}"), "namespace": "bench",
                             "uid": format!("00000000-0000-0000-0000-{i:012}"),
                             "labels": {"app": "db"},
                             "annotations": {"volume.kubernetes.io/selected-node": "node-1"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                         "resources": {"requests": {"storage": "1Gi"}}}}))
        })
        .collect::<Result<_, _>>()?;

    let started = Instant::now();
    let mut plans = Vec::with_capacity(n);
    for (i, claim) in claims.iter().enumerate() {
        let decision = provision::decide_claim(&ClaimInput {
            claim,
            class: Some(&class),
            node: Some(&node),
            contents: &contents,
            provisioner: "rancher.io/local-path",
            volume_exists: false,
            choice: i as u64,
            volumes: &[],
            capacity: None,
        });
        match decision {
            ClaimDecision::Provision(plan) => plans.push(plan),
            other => return Err(format!("claim {i}: unexpected {other:?}").into()),
        }
    }
    let decided = started.elapsed();

    let started = Instant::now();
    let mut names = BTreeMap::new();
    for plan in &plans {
        let pod = helpers.for_volume(&plan.helper)?;
        names.insert(pod.metadata.name.unwrap_or_default(), ());
    }
    let built = started.elapsed();
    if names.len() != n {
        return Err("helper pod names collided".into());
    }

    let per_sec = |d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "claims decided (plan + PV): {n} in {decided:?} = {:.0}/s",
        per_sec(decided)
    );
    println!(
        "helper pods built:          {n} in {built:?} = {:.0}/s",
        per_sec(built)
    );
    Ok(())
}
