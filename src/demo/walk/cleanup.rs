//! What the demo leaves: everything it made goes (unless `--keep`), and the claim's volume is
//! waited for until it is reclaimed; what stays is described with why and how to remove it.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, ResourceExt};

use crate::cluster::{self};
use crate::ui::{self};

use super::Walk;
use super::{CLAIM, POD};

impl Walk<'_> {
    /// Removes what the demo made, unless `--keep` (then only the reader pods go), and waits
    /// (within the step timeout) for the claim's volume to be reclaimed. Returns what is left
    /// behind and why, when something is.
    pub(super) async fn clean_up(&self) -> Option<String> {
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
    pub(super) async fn wait_reclaimed(&self, namespace: &str) -> Vec<String> {
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
