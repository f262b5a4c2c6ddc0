//! The usage probe: a POSIX shell script (busybox applets only) that a node agent or a helper
//! pod runs on a node to measure its base paths and volume directories, and its strict parser.
//!
//! # What it measures, and how
//!
//! - Each base path is mounted read-only at itself. `df -P -k -T` gives its filesystem's size,
//!   use, availability and type (the real `df`, or on the sandbox the stand-in that answers for
//!   declared disks).
//! - Whether it is a mount point of its own, where the caller asks (`lpp usage` always, `lpp
//!   run` for paths whose mount guard requires it): its parent directory is mounted read-only
//!   at `/lpp-usage/<i>` too (a hostPath is bound recursively, so a filesystem mounted at the
//!   base path shows there), and the base path seen through it is compared with the parent: a
//!   different device number (`stat -c %d`) or filesystem id (`stat -f -c %i`) means a
//!   filesystem of its own. Inside the container the base path's own mount always looks like
//!   a mount point, so the parent is what tells. Otherwise (not asked, or a base path directly
//!   under `/`, whose parent is never mounted) the mount table is read: the bind of the base
//!   path in `/proc/self/mountinfo` shows the root of its filesystem, `/`, only when the base
//!   path is that filesystem's mount point. (A job with only base paths mounted at themselves
//!   is one a node agent can serve; the sandbox cannot model that mount table, and there its
//!   answer is always `no`.)
//! - Each volume directory (inside a base path): `du -sk`, as `gc` measures.
//!
//! # The protocol
//!
//! Run as `sh -c SCRIPT usage N BASE_1 PARENT_1 NAME_1 … BASE_N PARENT_N NAME_N VOL_1 … VOL_M`
//! (PARENT empty for a base path directly under `/`), it prints one record per line:
//!
//! ```text
//! P <i> <type> <KiB size> <KiB used> <KiB available> <yes|no|->   base path i measured
//! P <i> missing                                    base path i is not a directory
//! P <i> error                                      df gave no usable answer for it
//! V <j> <KiB>                                      volume directory j uses this much
//! V <j> missing                                    volume directory j is not a directory
//! V <j> error                                      du gave no usable answer for it
//! END
//! ```
//!
//! `type` is `-` when unknown; the mount point answer is `-` when it cannot be told. Base
//! paths and volumes are named by position, never printed. The parser refuses anything else,
//! and a record missing or an output without `END` is an error, never a short measurement.

use crate::config::path;
use crate::provision::helper_pod::{HostDir, HostPathType};
use crate::records::{self, BadLine, Numbered};

/// Where the parents of base paths are mounted (`<PARENTS>/<i>`, the prefix made longer when a
/// base path lies there).
const PARENTS: &str = "/lpp-usage";

/// The script, run as `sh -c SCRIPT usage N (BASE PARENT NAME)… VOL…`. Only busybox applets and
/// options (and GNU coreutils accept the same).
pub const SCRIPT: &str = r#"s=$(printf '\057')
num() { case $1 in ''|*[!0-9]*) return 1;; esac; return 0; }
dfrow() {
  df -P -k -T "$1" 2>&- | { read -r _ || exit 0; read -r _ t k u a _ || exit 0; echo "$t $k $u $a"; }
}
mountinfo() {
  r=-
  while read -r _ _ _ root point _; do
    [ "$point" = "$1" ] || continue
    if [ "$root" = "$s" ]; then r=yes; else r=no; fi
  done < "${s}proc${s}self${s}mountinfo"
  echo "$r"
}
own() {
  if [ -z "$2" ]; then mountinfo "$1"; return; fi
  d1=$(stat -c %d "$2$s$3" 2>&-) d2=$(stat -c %d "$2" 2>&-)
  f1=$(stat -f -c %i "$2$s$3" 2>&-) f2=$(stat -f -c %i "$2" 2>&-)
  if [ -z "$d1" ] || [ -z "$d2" ] || [ -z "$f1" ] || [ -z "$f2" ]; then echo -; return; fi
  if [ "$d1" != "$d2" ] || [ "$f1" != "$f2" ]; then echo yes; else echo no; fi
}
nb=$1; shift
i=0
while [ "$i" -lt "$nb" ]; do
  i=$((i + 1)); base=$1; parent=$2; name=$3; shift 3
  if [ -L "$base" ] || [ ! -d "$base" ]; then echo "P $i missing"; continue; fi
  row=$(dfrow "$base")
  t=${row%% *}; rest=${row#* }
  k=${rest%% *}; rest=${rest#* }
  u=${rest%% *}; a=${rest#* }
  if [ -z "$row" ] || ! num "$k" || ! num "$u" || ! num "$a"; then echo "P $i error"; continue; fi
  case $t in ''|*[!A-Za-z0-9._+-]*) t=-;; esac
  echo "P $i $t $k $u $a $(own "$base" "$parent" "$name")"
done
j=0
for v in "$@"; do
  j=$((j + 1))
  if [ -L "$v" ] || [ ! -d "$v" ]; then echo "V $j missing"; continue; fi
  k=$(du -sk "$v" 2>&- | head -n 1 | cut -f1)
  if num "$k"; then echo "V $j $k"; else echo "V $j error"; fi
done
echo END
"#;

/// The mounts and arguments of one node's probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Each base path read-only at itself, and each parent read-only below [`PARENTS`].
    pub mounts: Vec<HostDir>,
    /// The script's arguments after its name.
    pub args: Vec<String>,
}

/// The probe of `bases` (clean base paths) and `volumes` (volume directories inside them);
/// `parent` says for which base paths the parent is mounted to tell a mount point.
pub fn plan(bases: &[String], parent: impl Fn(&str) -> bool, volumes: &[String]) -> Plan {
    let bases: Vec<String> = bases.iter().map(|b| path::clean(b)).collect();
    let prefix = path::free_of(PARENTS, &bases);
    let mut mounts = crate::gc::scan::base_mounts(&bases);
    let mut args = vec![bases.len().to_string()];
    for (i, base) in bases.iter().enumerate() {
        args.push(base.clone());
        match path::split_parent(base) {
            Some((above, name)) if above != "/" && parent(base) => {
                let at = format!("{prefix}/{i}");
                mounts.push(HostDir {
                    path: above.to_owned(),
                    mount_path: Some(at.clone()),
                    kind: HostPathType::Unchecked,
                    read_only: true,
                });
                args.push(at);
                args.push(name.to_owned());
            }
            _ => {
                args.push(String::new());
                args.push(String::new());
            }
        }
    }
    args.extend(volumes.iter().map(|v| path::clean(v)));
    Plan { mounts, args }
}

/// What the probe found at one base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathReading {
    /// Not a directory (or a symlink, not followed).
    Missing,
    /// `df` gave no usable answer.
    Error,
    /// Measured.
    Measured {
        /// `df -T`'s type, when given.
        fs_type: Option<String>,
        /// Size of the filesystem in bytes.
        size_bytes: u64,
        /// Bytes used on the filesystem.
        used_bytes: u64,
        /// Bytes still available, as `df` reports them.
        available_bytes: u64,
        /// Whether it is a mount point of its own, when that can be told.
        mount_point: Option<bool>,
    },
}

/// What the probe found at one volume directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeReading {
    /// Not a directory.
    Missing,
    /// `du` gave no usable answer.
    Error,
    /// It uses this many bytes.
    Used(u64),
}

/// A whole probe of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// One per base path, in order.
    pub paths: Vec<PathReading>,
    /// One per volume directory, in order.
    pub volumes: Vec<VolumeReading>,
}

/// Why an output is not a probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The output has a line that is not a record.
    #[error(transparent)]
    Line(#[from] BadLine),
    /// The output stops before the `END` line.
    #[error("the output ends before END: the probe did not finish")]
    Unfinished,
    /// Base path with this number (from 1) has no record.
    #[error("base path {0} has no record")]
    NoPath(usize),
    /// Volume directory with this number (from 1) has no record.
    #[error("volume {0} has no record")]
    NoVolume(usize),
}

fn kib(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok()?.checked_mul(1024)
}

/// Parses the probe's output for `bases` base paths and `volumes` volume directories.
pub fn parse(output: &str, bases: usize, volumes: usize) -> Result<Probe, ParseError> {
    let mut paths = Numbered::new(bases, "base path", "a second record for the same base path");
    let mut vols = Numbered::new(volumes, "volume", "a second record for the same volume");
    records::read(output, ParseError::Unfinished, |r| {
        match r.fields.as_slice() {
            ["P", i, rest @ ..] => {
                let i = paths.index(&r, i)?;
                let reading = match rest {
                    ["missing"] => PathReading::Missing,
                    ["error"] => PathReading::Error,
                    [fs_type, size, used, available, mount] => PathReading::Measured {
                        fs_type: match *fs_type {
                            "-" => None,
                            t if !t.is_empty()
                                && t.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b)) =>
                            {
                                Some((*t).to_owned())
                            }
                            _ => return Err(r.bad("the filesystem type is not a word").into()),
                        },
                        size_bytes: kib(size).ok_or_else(|| r.bad("the size is not a number"))?,
                        used_bytes: kib(used).ok_or_else(|| r.bad("the use is not a number"))?,
                        available_bytes: kib(available)
                            .ok_or_else(|| r.bad("the availability is not a number"))?,
                        mount_point: match *mount {
                            "yes" => Some(true),
                            "no" => Some(false),
                            "-" => None,
                            _ => {
                                return Err(r
                                    .bad("the mount point answer is not yes, no or -")
                                    .into());
                            }
                        },
                    },
                    _ => return Err(r.bad("a base path record has the wrong fields").into()),
                };
                paths.set(&r, i, reading)?;
            }
            ["V", j, what] => {
                let j = vols.index(&r, j)?;
                let reading = match *what {
                    "missing" => VolumeReading::Missing,
                    "error" => VolumeReading::Error,
                    k => {
                        VolumeReading::Used(kib(k).ok_or_else(|| r.bad("the use is not a number"))?)
                    }
                };
                vols.set(&r, j, reading)?;
            }
            _ => return Err(r.bad("not a probe record").into()),
        }
        Ok(())
    })?;
    Ok(Probe {
        paths: paths.finish(ParseError::NoPath)?,
        volumes: vols.finish(ParseError::NoVolume)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_plan_mounts_each_base_path_and_its_parent() {
        let plan = plan(
            &["/opt/local-path-provisioner/".into(), "/data".into()],
            |_| true,
            &["/data/pvc-1_ns_c".into()],
        );
        assert_eq!(
            plan.args,
            [
                "2",
                "/opt/local-path-provisioner",
                "/lpp-usage/0",
                "local-path-provisioner",
                "/data",
                "",
                "",
                "/data/pvc-1_ns_c"
            ]
        );
        let mounts: Vec<(&str, Option<&str>, bool)> = plan
            .mounts
            .iter()
            .map(|m| (m.path.as_str(), m.mount_path.as_deref(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/opt/local-path-provisioner", None, true),
                ("/data", None, true),
                ("/opt", Some("/lpp-usage/0"), true),
            ]
        );
        // A base path where the parents would go moves them aside.
        let aside = super::plan(&["/lpp-usage/x".into()], |_| true, &[]);
        assert_eq!(aside.args[2], "/lpp-usage_/0");
        // Not asked: only the base path, at itself (a job a node agent can serve).
        let own = super::plan(&["/opt/x".into()], |_| false, &[]);
        assert_eq!(own.args, ["1", "/opt/x", "", ""]);
        assert_eq!(own.mounts.len(), 1);
    }

    #[test]
    fn parses_every_record() {
        let probe = parse(
            "P 1 ext4 1048576 300 1048276 yes\nP 2 - 10 0 10 -\nP 3 missing\nP 4 error\nV 1 12\nV 2 missing\nV 3 error\nEND\n",
            4,
            3,
        )
        .unwrap();
        assert_eq!(
            probe.paths[0],
            PathReading::Measured {
                fs_type: Some("ext4".into()),
                size_bytes: 1 << 30,
                used_bytes: 300 * 1024,
                available_bytes: 1_048_276 * 1024,
                mount_point: Some(true),
            }
        );
        assert!(matches!(
            probe.paths[1],
            PathReading::Measured {
                fs_type: None,
                mount_point: None,
                ..
            }
        ));
        assert_eq!(probe.paths[2], PathReading::Missing);
        assert_eq!(probe.paths[3], PathReading::Error);
        assert_eq!(
            probe.volumes,
            [
                VolumeReading::Used(12 * 1024),
                VolumeReading::Missing,
                VolumeReading::Error
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_a_whole_probe() {
        for (output, bases, volumes) in [
            ("P 1 ext4 1 1 1 yes\n", 1, 0),
            ("END\n", 1, 0),
            ("P 1 ext4 1 1 1 yes\nEND\n", 1, 1),
            ("P 2 missing\nEND\n", 1, 0),
            ("P 1 missing\nP 1 missing\nEND\n", 1, 0),
            ("P 1 ext4 1 x 1 yes\nEND\n", 1, 0),
            ("P 1 ext4 1 1 1 maybe\nEND\n", 1, 0),
            ("P 1 ex/t4 1 1 1 yes\nEND\n", 1, 0),
            ("P 1 missing\nEND\nV 1 3\n", 1, 1),
            ("hello\nEND\n", 0, 0),
            ("V 1 -5\nEND\n", 0, 1),
        ] {
            assert!(parse(output, bases, volumes).is_err(), "{output:?}");
        }
        assert_eq!(
            parse("", 0, 0),
            Err(ParseError::Unfinished),
            "an empty output never means nothing is there"
        );
    }

    /// The script runs with this machine's `sh`, `df`, `stat` and `du` (GNU or busybox): a
    /// directory it measures and one it does not find.
    #[test]
    fn the_script_measures_real_directories() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let volume = base.join("pvc-1");
        std::fs::create_dir_all(&volume).unwrap();
        std::fs::write(volume.join("blob"), vec![1u8; 64 * 1024]).unwrap();
        let base = base.to_str().unwrap().to_owned();
        let parent = dir.path().to_str().unwrap().to_owned();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("usage")
            .args(["2", &base, &parent, "base", "/nonexistent-lpp-x", "", ""])
            .arg(volume.to_str().unwrap())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let probe = parse(&text, 2, 1).unwrap_or_else(|e| panic!("{e}: {text}"));
        match &probe.paths[0] {
            PathReading::Measured {
                size_bytes,
                available_bytes,
                mount_point,
                ..
            } => {
                assert!(*size_bytes > 0 && available_bytes <= size_bytes, "{text}");
                assert_eq!(*mount_point, Some(false), "a plain directory: {text}");
            }
            other => panic!("{other:?}: {text}"),
        }
        assert_eq!(probe.paths[1], PathReading::Missing);
        match probe.volumes[0] {
            VolumeReading::Used(n) => assert!(n >= 64 * 1024, "{text}"),
            other => panic!("{other:?}: {text}"),
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "[PVEND0-9 a-z\\-\n]{0,200}", b in 0usize..4, v in 0usize..4) {
            let _ = parse(&s, b, v);
        }
    }
}
