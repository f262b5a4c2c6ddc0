//! What a terminated container reports: the reason for its exit code and the message the
//! kubelet derives from its termination-message file or, with `FallbackToLogsOnError`, from
//! the tail of its output.

/// The kubelet keeps at most this many trailing lines of output as a fallback message...
pub const TAIL_LINES: usize = 80;
/// ...and at most this many bytes of them.
pub const TAIL_BYTES: usize = 4096;

/// `Completed` for exit code 0, `Error` otherwise, as a real container runtime reports.
pub fn reason(exit_code: i32) -> &'static str {
    if exit_code == 0 { "Completed" } else { "Error" }
}

/// The last [`TAIL_LINES`] lines of `log`, cut to its last [`TAIL_BYTES`] bytes (at a character
/// boundary), as the kubelet does for `terminationMessagePolicy: FallbackToLogsOnError`.
pub fn log_tail(log: &str) -> String {
    // A trailing newline does not start another line.
    let body = log.strip_suffix('\n').unwrap_or(log);
    let start = body
        .rmatch_indices('\n')
        .nth(TAIL_LINES - 1)
        .map_or(0, |(i, _)| i + 1);
    let mut tail = &log[start..];
    if tail.len() > TAIL_BYTES {
        let mut cut = tail.len() - TAIL_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = &tail[cut..];
    }
    tail.to_string()
}

/// The message of a terminated container: the termination-message file when it says
/// something; else, for a failed container under `FallbackToLogsOnError`, the tail of its log.
pub fn message(
    file: Option<&str>,
    policy: Option<&str>,
    exit_code: i32,
    log: &str,
) -> Option<String> {
    if let Some(text) = file
        && !text.is_empty()
    {
        return Some(text.to_string());
    }
    if exit_code != 0 && policy == Some("FallbackToLogsOnError") && !log.is_empty() {
        return Some(log_tail(log));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reasons() {
        assert_eq!(reason(0), "Completed");
        assert_eq!(reason(1), "Error");
        assert_eq!(reason(137), "Error");
    }

    #[test]
    fn short_logs_are_kept_whole() {
        assert_eq!(
            log_tail("mkdir: permission denied\n"),
            "mkdir: permission denied\n"
        );
        assert_eq!(log_tail(""), "");
    }

    #[test]
    fn keeps_the_last_80_lines() {
        let log: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let tail = log_tail(&log);
        assert!(tail.starts_with("line 21\n"), "{tail}");
        assert!(tail.ends_with("line 100\n"));
        assert_eq!(tail.lines().count(), 80);
    }

    #[test]
    fn keeps_the_last_4_kib() {
        let log = format!("{}\nend\n", "é".repeat(5000));
        let tail = log_tail(&log);
        assert!(tail.len() <= TAIL_BYTES);
        assert!(tail.ends_with("\nend\n"));
    }

    #[test]
    fn message_prefers_the_file_then_the_log_on_error() {
        assert_eq!(message(Some("bye"), None, 1, "x"), Some("bye".into()));
        assert_eq!(
            message(Some(""), Some("FallbackToLogsOnError"), 2, "boom\n"),
            Some("boom\n".into())
        );
        assert_eq!(
            message(None, Some("FallbackToLogsOnError"), 0, "fine\n"),
            None
        );
        assert_eq!(message(None, Some("File"), 2, "boom\n"), None);
    }

    proptest! {
        #[test]
        fn tail_is_a_bounded_suffix(log in "(\\PC{0,20}\n){0,200}") {
            let tail = log_tail(&log);
            prop_assert!(log.ends_with(&tail));
            prop_assert!(tail.len() <= TAIL_BYTES);
            prop_assert!(tail.trim_end_matches('\n').matches('\n').count() < TAIL_LINES);
        }
    }
}
