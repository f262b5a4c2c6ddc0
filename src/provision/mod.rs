//! Decisions as data: path choice, naming, pathPattern, PV and helper-pod builders, template
//! validation, and what should happen to a claim or volume. Pure: the controller hands in the
//! objects, the config and a random number, and carries out what comes back.
//!
//! For a claim, [`volume::decide_claim`] returns a [`volume::ClaimDecision`]: skip it, reject it
//! (the ProvisioningFailed message), or provision it with a [`volume::VolumePlan`] — run
//! `plan.helper` through [`helper_pod::HelperPods::for_volume`], wait for the pod to succeed,
//! then create `plan.volume`. For a bound claim that grew, [`resize::decide_resize`] says how
//! to resize its volume as an external resizer does. Helper pods carry [`helper_pod::HELPER_SELECTOR`]'s labels so one
//! watch sees them all.

pub mod agent;
pub mod capacity;
pub mod events;
pub mod helper_pod;
pub mod overlap;
pub mod reclaim;
pub mod resize;
pub mod template;
pub mod volume;

pub use capacity::{NodeCapacity, PathUsage, Placed};
pub use helper_pod::{
    Action, HelperOutcome, HelperPodError, HelperPods, HostDir, ScriptJob, VolumeJob,
    helper_outcome,
};
pub use overlap::{VolumeRef, overlapping};
pub use reclaim::{NodeSource, ReclaimDecision, decide_reclaim, volume_location};
pub use volume::{
    ClaimDecision, ClaimInput, Reschedule, Skip, VolumePlan, VolumeType, decide_claim,
    selected_node, settled,
};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
