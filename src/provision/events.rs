//! Event reasons and texts (those of upstream's provisioner library), the summary of a failed
//! helper pod, and the retry policy.

use std::time::Duration;

use k8s_openapi::api::core::v1::ContainerStateTerminated;

/// Normal event on the claim when work starts.
pub const PROVISIONING: &str = "Provisioning";
/// Normal event on the claim when its volume exists.
pub const PROVISIONING_SUCCEEDED: &str = "ProvisioningSucceeded";
/// Warning event on the claim when provisioning failed.
pub const PROVISIONING_FAILED: &str = "ProvisioningFailed";
/// Warning event on a claim or volume whose script ran in a helper pod although the agent
/// executor was asked for, with why.
pub const NODE_AGENT_UNAVAILABLE: &str = "NodeAgentUnavailable";
/// Warning event on the volume when its deletion failed (or left data behind).
pub const VOLUME_FAILED_DELETE: &str = "VolumeFailedDelete";

/// `Provisioning` text for the claim `namespace/name`.
pub fn provisioning_message(provisioner: &str, namespace: &str, name: &str) -> String {
    format!(
        "External provisioner is provisioning volume for claim \"{namespace}/{name}\" ({provisioner})"
    )
}

/// `ProvisioningSucceeded` text.
pub fn provisioning_succeeded_message(pv_name: &str, node: Option<&str>, path: &str) -> String {
    match node {
        Some(node) => format!("Successfully provisioned volume {pv_name} at {node}:{path}"),
        None => format!("Successfully provisioned volume {pv_name} at {path}"),
    }
}

/// `ProvisioningFailed` text: the class and the real cause.
pub fn provisioning_failed_message(class: &str, cause: &str) -> String {
    format!("failed to provision volume with StorageClass \"{class}\": {cause}")
}

/// `VolumeFailedDelete` text.
pub fn volume_failed_delete_message(pv_name: &str, cause: &str) -> String {
    format!("failed to delete volume {pv_name}: {cause}")
}

/// How many output lines a failure summary keeps.
pub const SUMMARY_LINES: usize = 10;

/// How many bytes of output a failure summary keeps: event messages are cut at 1 KiB by
/// Kubernetes clients, and the summary must fit with its prefix.
pub const SUMMARY_BYTES: usize = 768;

/// The last `max` bytes of `text` (on a character boundary), marked with `…` when cut.
fn keep_tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// One line for a failed helper pod from its container's terminated state: exit code, reason
/// and the last lines of its output (the termination message, which `FallbackToLogsOnError`
/// fills with the log tail).
pub fn helper_failure_summary(pod_name: &str, state: &ContainerStateTerminated) -> String {
    let mut out = format!(
        "helper pod {pod_name} failed with exit code {}",
        state.exit_code
    );
    if let Some(reason) = state.reason.as_deref().filter(|r| !r.is_empty()) {
        out.push_str(&format!(" ({reason})"));
    }
    if let Some(signal) = state.signal.filter(|s| *s != 0) {
        out.push_str(&format!(", signal {signal}"));
    }
    out.push_str(&output_tail(state.message.as_deref().unwrap_or("")));
    out
}

/// One line for a script that failed elsewhere than in a helper pod (a node agent): what ran,
/// its exit code and the last lines of its output, as [`helper_failure_summary`] words it.
pub fn failure_summary(what: &str, exit_code: i32, output: &str) -> String {
    format!(
        "{what} failed with exit code {exit_code}{}",
        output_tail(output)
    )
}

/// `: <last lines joined by " | ">` (at most [`SUMMARY_LINES`] and [`SUMMARY_BYTES`]), or
/// `: no output`.
fn output_tail(output: &str) -> String {
    let lines: Vec<&str> = output
        .trim_end()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return ": no output".to_owned();
    }
    let tail = lines[lines.len().saturating_sub(SUMMARY_LINES)..].join(" | ");
    format!(": {}", keep_tail(&tail, SUMMARY_BYTES))
}

/// Exponential backoff for retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// No delay exceeds this.
    pub cap: Duration,
    /// Give up after this many failed attempts (`None`: never). Upstream's library default is
    /// 15 for both provisioning and deletion.
    pub limit: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(300),
            limit: Some(15),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 for the first retry): `base * 2^(attempt-1)`,
    /// capped, then scaled by `jitter` in [0, 1] into [50 %, 100 %] of that value so many
    /// failing claims do not retry in step. `None` when the limit is reached.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Option<Duration> {
        if self.limit.is_some_and(|limit| attempt > limit) {
            return None;
        }
        let doublings = attempt.saturating_sub(1).min(32);
        let raw = self.base.saturating_mul(1u32 << doublings.min(31));
        let capped = raw.min(self.cap);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            1.0
        };
        Some(capped.mul_f64(0.5 + 0.5 * jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn failure_summary_keeps_the_cause() {
        let state = ContainerStateTerminated {
            exit_code: 1,
            reason: Some("Error".into()),
            message: Some(
                "line 1\nline 2\nmkdir: can't create directory '/opt/x': Read-only file system\n"
                    .into(),
            ),
            ..Default::default()
        };
        assert_eq!(
            helper_failure_summary("helper-pod-create-pvc-1", &state),
            "helper pod helper-pod-create-pvc-1 failed with exit code 1 (Error): line 1 | line 2 | mkdir: can't create directory '/opt/x': Read-only file system"
        );
        let long = ContainerStateTerminated {
            exit_code: 2,
            message: Some((1..=30).map(|i| format!("l{i}\n")).collect()),
            ..Default::default()
        };
        let s = helper_failure_summary("p", &long);
        assert!(
            s.starts_with("helper pod p failed with exit code 2: l21 |") && s.ends_with("l30"),
            "{s}"
        );
        let wide = ContainerStateTerminated {
            exit_code: 1,
            message: Some(format!("{}é\nthe cause\n", "x".repeat(5000))),
            ..Default::default()
        };
        let s = helper_failure_summary("p", &wide);
        assert!(
            s.len() < 1024 && s.contains('…') && s.ends_with("the cause"),
            "{s}"
        );
        let quiet = ContainerStateTerminated {
            exit_code: 137,
            signal: Some(9),
            ..Default::default()
        };
        assert_eq!(
            helper_failure_summary("p", &quiet),
            "helper pod p failed with exit code 137, signal 9: no output"
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            provisioning_failed_message("local-path", "no paths"),
            "failed to provision volume with StorageClass \"local-path\": no paths"
        );
        assert!(provisioning_message("rancher.io/local-path", "ns", "c").contains("\"ns/c\""));
        assert_eq!(
            provisioning_succeeded_message("pvc-1", Some("n1"), "/x"),
            "Successfully provisioned volume pvc-1 at n1:/x"
        );
        assert_eq!(
            volume_failed_delete_message("pvc-1", "boom"),
            "failed to delete volume pvc-1: boom"
        );
    }

    #[test]
    fn backoff_grows_caps_and_stops() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            limit: Some(5),
        };
        assert_eq!(b.delay(1, 1.0), Some(Duration::from_secs(1)));
        assert_eq!(b.delay(2, 1.0), Some(Duration::from_secs(2)));
        assert_eq!(b.delay(3, 0.0), Some(Duration::from_secs(2)));
        assert_eq!(b.delay(5, 1.0), Some(Duration::from_secs(10)));
        assert_eq!(b.delay(6, 1.0), None);
        let forever = Backoff { limit: None, ..b };
        assert_eq!(forever.delay(1000, 1.0), Some(Duration::from_secs(10)));
    }

    proptest! {
        #[test]
        fn backoff_stays_within_half_and_cap(attempt in 0u32..100, jitter in proptest::num::f64::ANY) {
            let b = Backoff { limit: None, ..Backoff::default() };
            let d = b.delay(attempt, jitter).unwrap();
            prop_assert!(d <= b.cap);
            prop_assert!(d >= b.base / 2);
        }
    }
}
