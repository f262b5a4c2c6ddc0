//! The node agent's batch protocol: several volume scripts for one node in one exec, each with
//! exactly the environment and arguments a helper pod gives it, each with its own result. Pure:
//! the argv to exec and the parser of what comes back.
//!
//! The exec runs `sh -c BATCH lpp-batch <timeout> <job fields>...`, ten fields per job: lock
//! name, kind (`s` script text, `c` command), the script or command, `VOL_DIR`, `VOL_MODE`,
//! `VOL_SIZE_BYTES`, `VOL_USER`, `VOL_GROUP`, `VOL_PERM`, action. Every job runs in its own
//! process, at the same time as the others, as `sh -c SCRIPT helper -p DIR -s SIZE -m MODE -a
//! ACTION` (or `COMMAND -p …`), under `timeout`, holding an exclusive `flock` on
//! `/tmp/lpp-locks/<lock>` so that two scripts never run at once for one volume, even when a
//! killed run's exec still runs and the next run's arrives. Then one line per job, in order:
//!
//! ```text
//! R <k> <exit code> <hex of the last 4 KiB of its output>
//! R <k> T <hex …>                      killed by `timeout` (exit code 124 or 143)
//! END
//! ```

use std::time::Duration;

use crate::config::Script;
use crate::provision::VolumeJob;

/// The batch script. Only POSIX shell and busybox applets (`mktemp`, `flock`, `timeout`, `od`,
/// `tail`). A job that succeeds costs `flock`, `timeout` and its own script, and its exit
/// status comes from `wait`: a node agent serves bursts of hundreds, and on a busy node every
/// process a job starts counts. (Each job's variables are exported just before it starts, so
/// its `flock` and script carry them.)
pub const SCRIPT: &str = r#"t=$1; shift
work=$(mktemp -d) || exit 100
mkdir -p /tmp/lpp-locks || exit 100
k=0 pids=
while [ $# -ge 10 ]; do
  k=$((k + 1))
  lock=$1 kind=$2 prog=$3 dir=$4 mode=$5 size=$6 user=$7 group=$8 perm=$9; shift 9
  action=$1; shift
  export VOL_DIR="$dir" VOL_MODE="$mode" VOL_SIZE_BYTES="$size" VOL_USER="$user" VOL_GROUP="$group" VOL_PERM="$perm"
  if [ "$kind" = c ]; then
    flock "/tmp/lpp-locks/$lock" timeout "$t" "$prog" -p "$dir" -s "$size" -m "$mode" -a "$action" \
      >"$work/$k.out" 2>&1 </dev/null &
  else
    flock "/tmp/lpp-locks/$lock" timeout "$t" sh -c "$prog" helper -p "$dir" -s "$size" -m "$mode" -a "$action" \
      >"$work/$k.out" 2>&1 </dev/null &
  fi
  pids="$pids $!"
done
i=0
for pid in $pids; do
  i=$((i + 1))
  wait "$pid"
  rc=$?
  case "$rc" in
    0) echo "R $i 0 " ;;
    *)
      # coreutils' timeout answers 124, busybox's dies of its TERM (143).
      case "$rc" in 124|143) rc=T ;; esac
      printf 'R %s %s ' "$i" "$rc"
      tail -c 4096 "$work/$i.out" | od -An -v -tx1 | tr -d ' \n'
      echo ;;
  esac
done
rm -rf "$work"
echo END
"#;

/// How many bytes of a job's output come back.
pub const TAIL_BYTES: usize = 4096;

/// The argv of one exec running `jobs` with `timeout` each.
pub fn command(jobs: &[&VolumeJob], timeout: Duration) -> Vec<String> {
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "lpp-batch".to_owned(),
        timeout.as_secs().max(1).to_string(),
    ];
    for job in jobs {
        let (kind, program) = match &job.script {
            Script::ConfigMapKey { text, .. } => ("s", text.clone()),
            Script::Inline(text) => ("s", text.clone()),
            Script::Command(command) => ("c", command.clone()),
        };
        argv.extend([
            format!("{}-{}", job.pv_name, job.action.as_str()),
            kind.to_owned(),
            program,
            job.path.clone(),
            job.mode.clone(),
            job.size_bytes.to_string(),
            job.user.clone(),
            job.group.clone(),
            job.perm.clone(),
            job.action.as_str().to_owned(),
        ]);
    }
    argv
}

/// How one job of a batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0.
    Succeeded,
    /// A non-zero exit code and the tail of the job's output.
    Failed {
        /// The script's exit status, as the shell reported it (never 0, 124 or 143).
        exit_code: i32,
        /// The last 4 KiB of what the script printed, stdout and stderr together, decoded lossily
        /// as UTF-8; empty when it printed nothing.
        output: String,
    },
    /// Killed after the timeout, with the tail of its output.
    TimedOut {
        /// The last 4 KiB of what the script printed before it was killed, stdout and stderr
        /// together; empty when it printed nothing.
        output: String,
    },
}

/// Why the exec's output is not a batch answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line, counted from 1, is neither `END` nor a well-formed result line for a job of
    /// this batch.
    #[error("line {0} is not a result line")]
    Line(usize),
    /// The answer ended without a result for this job, counted from 1.
    #[error("job {0} was not reported")]
    Missing(usize),
    /// The output has no `END` line: the exec's stream was cut before the batch finished.
    #[error("the answer stops before END: the exec was cut off")]
    Truncated,
}

/// Reads the answer to a batch of `count` jobs.
pub fn parse(output: &str, count: usize) -> Result<Vec<Outcome>, ParseError> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; count];
    let mut ended = false;
    for (n, line) in output.lines().enumerate() {
        if line == "END" {
            ended = true;
            continue;
        }
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        let ["R", k, code, hex] = fields.as_slice() else {
            return Err(ParseError::Line(n + 1));
        };
        let slot = k
            .parse::<usize>()
            .ok()
            .and_then(|k| k.checked_sub(1))
            .filter(|k| *k < count)
            .ok_or(ParseError::Line(n + 1))?;
        let text = decode(hex).ok_or(ParseError::Line(n + 1))?;
        outcomes[slot] = Some(match *code {
            "0" => Outcome::Succeeded,
            "T" => Outcome::TimedOut { output: text },
            code => Outcome::Failed {
                exit_code: code.parse().map_err(|_| ParseError::Line(n + 1))?,
                output: text,
            },
        });
    }
    if !ended {
        return Err(ParseError::Truncated);
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.ok_or(ParseError::Missing(i + 1)))
        .collect()
}

fn decode(hex: &str) -> Option<String> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::Action;
    use proptest::prelude::*;

    fn job(pv: &str, script: Script) -> VolumeJob {
        VolumeJob {
            action: Action::Create,
            pv_name: pv.into(),
            node: Some("n1".into()),
            path: format!("/opt/lp/{pv}_ns_c"),
            mode: "Filesystem".into(),
            size_bytes: 1 << 30,
            user: "1000".into(),
            group: String::new(),
            perm: "0750".into(),
            script,
            shared: false,
        }
    }

    #[test]
    fn every_job_gets_its_fields_in_order() {
        let a = job("pvc-a", Script::Inline("mkdir -p \"$VOL_DIR\"".into()));
        let b = job("pvc-b", Script::Command("/bin/setup".into()));
        let argv = command(&[&a, &b], Duration::from_secs(120));
        assert_eq!(argv[..2], ["/bin/sh", "-c"]);
        assert_eq!(argv[4], "120");
        assert_eq!(argv.len(), 5 + 20);
        assert_eq!(
            argv[5..15],
            [
                "pvc-a-create",
                "s",
                "mkdir -p \"$VOL_DIR\"",
                "/opt/lp/pvc-a_ns_c",
                "Filesystem",
                "1073741824",
                "1000",
                "",
                "0750",
                "create"
            ]
        );
        assert_eq!(argv[15..18], ["pvc-b-create", "c", "/bin/setup"]);
    }

    #[test]
    fn results_are_read_strictly() {
        let out = "R 2 3 6e6f20726f6f6d0a\nR 1 0 \nR 3 T 736c6f77\nEND\n";
        assert_eq!(
            parse(out, 3).unwrap(),
            vec![
                Outcome::Succeeded,
                Outcome::Failed {
                    exit_code: 3,
                    output: "no room\n".into()
                },
                Outcome::TimedOut {
                    output: "slow".into()
                }
            ]
        );
        assert_eq!(parse("R 1 0 \n", 1), Err(ParseError::Truncated));
        assert_eq!(parse("R 1 0 \nEND\n", 2), Err(ParseError::Missing(2)));
        assert_eq!(parse("R 9 0 \nEND\n", 2), Err(ParseError::Line(1)));
        assert_eq!(parse("hello\nEND\n", 1), Err(ParseError::Line(1)));
        assert_eq!(parse("R 1 0 zz\nEND\n", 1), Err(ParseError::Line(1)));
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(text in "\\PC{0,200}", count in 0usize..4) {
            let _ = parse(&text, count);
        }
    }
}
