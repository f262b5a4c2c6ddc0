//! The node probes of `lpp check`: two POSIX shell scripts (busybox applets and options only)
//! run through the executor on each node, and their strict parsers.
//!
//! # Why two scripts
//!
//! A base path must be looked at without mounting it: a hostPath mount of a file where the
//! directory should be, or of a directory that cannot be made, keeps the pod from ever starting,
//! and a doctor that only times out names nothing. So [`LOOK`] mounts each base path's *parent*
//! read-only (type `DirectoryOrCreate`: the parent is made when missing, as the first volume's
//! helper would make it) and reports what sits at the base path: its kind, and where it is (or
//! would be made) the filesystem type, whether that filesystem is read-only, whether the base
//! path is a mount point of its own (`df`'s "Mounted on" is the path itself: hostPath mounts
//! are recursive binds, so a disk mounted there shows), its size and free space, and its SELinux
//! context. A base path directly under `/` is mounted itself (read-only, made when missing):
//! `/` is never mounted.
//!
//! Then [`WRITE`] mounts the base paths that are directories read-write at themselves, as a
//! volume's helper does, and creates and removes a file in each: that proves what the helper
//! may do there (a read-only filesystem, permissions, an SELinux denial all show) without
//! leaving anything behind.
//!
//! # The protocol
//!
//! `sh -c LOOK look N ROOT_1 NAME_1 … ROOT_N NAME_N`: base path i is `ROOT_i/NAME_i` in the
//! container (`ROOT_i` itself when `NAME_i` is empty). One line each, then `END`:
//!
//! ```text
//! B <i> <kind> <fstype> <total KiB> <free KiB> <own mount> <read-only> <SELinux context>
//! ```
//!
//! `kind` is `d` (directory), `f` (file), `l` (symlink, never followed), `o` (other) or `m`
//! (missing). The other fields describe the directory, or for anything else the filesystem it
//! would be made on; each is `-` when it cannot be told. `fstype` and the context are
//! hex-encoded (any byte survives); `own mount` and `read-only` are `1` or `0`.
//!
//! `sh -c WRITE write TAG N DIR_1 … DIR_N`: creates and removes `DIR_i/.lpp-check-TAG`; one line
//! each, then `END`:
//!
//! ```text
//! W <i> ok
//! W <i> fail <hex message>
//! ```
//!
//! The parsers refuse anything else, and output without `END` (a helper that was cut off) is an
//! error, never a short answer.

use crate::config::path;
use crate::provision::helper_pod::{HostDir, HostPathType};
use crate::records::{self, BadLine, Record};

/// The look script; see the module docs. `/` is spelled `$s`, as in gc's scripts.
pub const LOOK: &str = r#"set -f
s=$(printf '\057')
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
orx() { if [ -n "$1" ]; then hex "$1"; else printf -; fi; }
space() {
  set -- $(df -P -k "$1" 2>&- | tail -n 1)
  [ $# -ge 6 ] || { total=- free= mnt=; return 0; }
  total=$2; free=$4; shift 5; mnt="$*"
}
rofs() {
  w=$1; r=-
  [ -r /proc/self/mountinfo ] || { echo -; return 0; }
  while read -r x x x x mp rest; do
    [ "$mp" = "$w" ] || continue
    case $rest in *" - "*) ;; *) continue ;; esac
    set -- ${rest#* - }
    case $3 in ro|ro,*) r=1 ;; ?*) r=0 ;; esac
  done < /proc/self/mountinfo
  echo "$r"
}
label() {
  set -- $(ls -Zd "$1" 2>&-)
  case $1 in *:*:*) hex "$1" ;; *) printf - ;; esac
}
n=$1; shift; i=0
while [ "$i" -lt "$n" ]; do
  i=$((i + 1)); root=$1; name=$2; shift 2
  if [ -n "$name" ]; then p=$root$s$name; else p=$root; fi
  if [ -L "$p" ]; then k=l
  elif [ -d "$p" ]; then k=d
  elif [ -f "$p" ]; then k=f
  elif [ -e "$p" ]; then k=o
  else k=m; fi
  if [ "$k" = d ]; then m=$p; else m=$root; fi
  fs=$(stat -f -c %T "$m" 2>&-) || fs=
  space "$m"
  case $total in ''|*[!0-9]*) total=- ;; esac
  case $free in ''|*[!0-9]*) free=- ;; esac
  own=-
  if [ "$k" = d ] && [ -n "$name" ] && [ -n "$mnt" ]; then
    if [ "$mnt" = "$p" ]; then own=1; else own=0; fi
  fi
  if [ "$own" = 1 ]; then ro=$(rofs "$p"); else ro=$(rofs "$root"); fi
  case $ro in 0|1) ;; *) ro=- ;; esac
  if [ "$k" = d ]; then se=$(label "$p"); else se=-; fi
  [ -n "$se" ] || se=-
  echo "B $i $k $(orx "$fs") $total $free $own $ro $se"
done
echo END
"#;

/// The write script; see the module docs.
pub const WRITE: &str = r#"s=$(printf '\057')
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
t=$1; n=$2; shift 2; i=0
while [ "$i" -lt "$n" ]; do
  i=$((i + 1)); d=$1; shift
  f=$d$s.lpp-check-$t
  if out=$(touch "$f" 2>&1) && out=$(rm -f "$f" 2>&1); then
    echo "W $i ok"
  else
    [ -n "$out" ] || out="no message"
    echo "W $i fail $(hex "$out")"
  fi
done
echo END
"#;

/// Where [`LOOK`] finds each base path, and what it mounts for that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookPlan {
    /// Read-only mounts: each base path's parent (or the base path itself, directly under `/`).
    pub mounts: Vec<HostDir>,
    /// The arguments after `look`.
    pub args: Vec<String>,
}

/// The mounts and arguments of [`LOOK`] for `bases` (clean absolute paths, never `/`).
pub fn look_plan(bases: &[String]) -> LookPlan {
    let prefix = path::free_of("/lpp-check", bases);
    let mut mounts = Vec::new();
    let mut args = vec![bases.len().to_string()];
    for (i, base) in bases.iter().enumerate() {
        let root = format!("{prefix}/{i}");
        let clean = path::clean(base);
        let (host, name) = match path::split_parent(&clean) {
            Some((parent, name)) if parent != "/" => (parent.to_owned(), name.to_owned()),
            _ => (clean.clone(), String::new()),
        };
        mounts.push(HostDir {
            path: host,
            mount_path: Some(root.clone()),
            kind: HostPathType::DirectoryOrCreate,
            read_only: true,
        });
        args.push(root);
        args.push(name);
    }
    LookPlan { mounts, args }
}

/// What sits at a base path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// A directory (what a base path should be).
    Directory,
    /// A regular file.
    File,
    /// A symbolic link (never followed).
    Symlink,
    /// A device, socket or pipe.
    Other,
    /// Nothing there.
    Missing,
}

/// What [`LOOK`] saw at one base path; `None` where it could not tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Looked {
    /// What sits there.
    pub kind: Kind,
    /// The filesystem type as `stat -f -c %T` names it (`ext2/ext3`, `xfs`, `tmpfs`).
    pub fs_type: Option<String>,
    /// The size of the filesystem.
    pub total_bytes: Option<u64>,
    /// Space free on the filesystem.
    pub free_bytes: Option<u64>,
    /// Whether the base path is a mount point of its own (a directory only).
    pub own_mount: Option<bool>,
    /// Whether the filesystem it is on (or would be made on) is mounted read-only.
    pub read_only: Option<bool>,
    /// Its SELinux context, where SELinux labels files.
    pub selinux: Option<String>,
}

/// How [`WRITE`] went at one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The file was created and removed.
    Ok,
    /// Creating or removing the file failed, with the message.
    Failed(String),
}

/// Why a probe's output cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line that is not what the protocol says.
    #[error(transparent)]
    Line(#[from] BadLine),
    #[error("the output stops before END: the helper was cut off")]
    /// The output stops before `END`.
    Truncated,
    #[error("base path {0} was never reported")]
    /// A base path (numbered from 1) has no line.
    Unreported(usize),
}

/// Hex text to bytes; `None` when it is not hex.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The output's records, one per base path in order, numbered from 1 (checked), closed by
/// `END`.
fn in_order<'a>(output: &'a str, tag: &str, count: usize) -> Result<Vec<Record<'a>>, ParseError> {
    let mut out = Vec::new();
    records::read(output, ParseError::Truncated, |r| {
        if r.fields.first() != Some(&tag) || r.fields.len() < 3 {
            return Err(r.bad("not a record of this probe").into());
        }
        let i = r.ordinal(r.fields[1], "base path")?;
        if i != out.len() + 1 || i > count {
            return Err(r.bad("base paths are reported once each, in order").into());
        }
        out.push(r);
        Ok(())
    })?;
    if out.len() < count {
        return Err(ParseError::Unreported(out.len() + 1));
    }
    Ok(out)
}

/// Parses [`LOOK`]'s output for `count` base paths.
pub fn parse_look(output: &str, count: usize) -> Result<Vec<Looked>, ParseError> {
    in_order(output, "B", count)?
        .into_iter()
        .map(|r| {
            let [kind, fs, total, free, own, ro, se] = r.fields[2..] else {
                return Err(r.bad("a B record has nine fields").into());
            };
            let kind = match kind {
                "d" => Kind::Directory,
                "f" => Kind::File,
                "l" => Kind::Symlink,
                "o" => Kind::Other,
                "m" => Kind::Missing,
                _ => return Err(r.bad("no such kind").into()),
            };
            let text = |field: &str, what: &str| -> Result<Option<String>, BadLine> {
                match field {
                    "-" => Ok(None),
                    hex => unhex(hex)
                        .map(|b| Some(String::from_utf8_lossy(&b).trim().to_owned()))
                        .ok_or_else(|| r.bad(format!("the {what} is not valid hex"))),
                }
            };
            let kib = |field: &str, what: &str| -> Result<Option<u64>, BadLine> {
                match field {
                    "-" => Ok(None),
                    digits => digits
                        .parse::<u64>()
                        .map(|k| Some(k.saturating_mul(1024)))
                        .map_err(|_| r.bad(format!("the {what} is not a number"))),
                }
            };
            let flag = |field: &str, what: &str| -> Result<Option<bool>, BadLine> {
                match field {
                    "-" => Ok(None),
                    "0" => Ok(Some(false)),
                    "1" => Ok(Some(true)),
                    _ => Err(r.bad(format!("{what} is neither 0, 1 nor -"))),
                }
            };
            Ok(Looked {
                kind,
                fs_type: text(fs, "filesystem type")?.filter(|t| !t.is_empty()),
                total_bytes: kib(total, "size")?,
                free_bytes: kib(free, "free space")?,
                own_mount: flag(own, "own mount")?,
                read_only: flag(ro, "read-only")?,
                selinux: text(se, "SELinux context")?.filter(|t| !t.is_empty()),
            })
        })
        .collect()
}

/// The host directories of [`WRITE`]: each of `dirs` read-write at itself, as a volume's helper
/// mounts its base path (it must be a directory: nothing is created).
pub fn write_mounts(dirs: &[String]) -> Vec<HostDir> {
    dirs.iter()
        .map(|d| HostDir {
            path: path::clean(d),
            mount_path: None,
            kind: HostPathType::Directory,
            read_only: false,
        })
        .collect()
}

/// The arguments after `write`.
pub fn write_args(tag: &str, dirs: &[String]) -> Vec<String> {
    let mut args = vec![tag.to_owned(), dirs.len().to_string()];
    args.extend(dirs.iter().map(|d| path::clean(d)));
    args
}

/// Parses [`WRITE`]'s output for `count` directories.
pub fn parse_write(output: &str, count: usize) -> Result<Vec<Written>, ParseError> {
    in_order(output, "W", count)?
        .into_iter()
        .map(|r| match r.fields[2..] {
            ["ok"] => Ok(Written::Ok),
            ["fail", message] => unhex(message)
                .map(|b| Written::Failed(String::from_utf8_lossy(&b).trim().to_owned()))
                .ok_or_else(|| r.bad("the message is not valid hex").into()),
            _ => Err(r.bad("a W record is `ok` or `fail <message>`").into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> String {
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn parents_are_mounted_read_only_and_never_the_root() {
        let plan = look_plan(&[
            "/opt/local-path-provisioner".to_owned(),
            "/data".to_owned(),
            "/lpp-check/x".to_owned(),
        ]);
        let mounts: Vec<(&str, &str, bool)> = plan
            .mounts
            .iter()
            .map(|m| {
                (
                    m.path.as_str(),
                    m.mount_path.as_deref().unwrap_or(""),
                    m.read_only,
                )
            })
            .collect();
        // A base path under the prefix moves the prefix out of its way.
        assert_eq!(
            mounts,
            [
                ("/opt", "/lpp-check_/0", true),
                ("/data", "/lpp-check_/1", true),
                ("/lpp-check", "/lpp-check_/2", true),
            ]
        );
        assert_eq!(
            plan.args,
            [
                "3",
                "/lpp-check_/0",
                "local-path-provisioner",
                "/lpp-check_/1",
                "",
                "/lpp-check_/2",
                "x"
            ]
        );
        assert!(
            plan.mounts
                .iter()
                .all(|m| m.kind == HostPathType::DirectoryOrCreate)
        );
    }

    #[test]
    fn a_look_is_read_field_by_field() {
        let output = format!(
            "B 1 d {} 1000 250 0 0 {}\nB 2 f - - - - 1 -\nB 3 m {} 10 5 - 0 -\nEND\n",
            hex("ext2/ext3"),
            hex("system_u:object_r:container_file_t:s0"),
            hex("xfs")
        );
        let looked = parse_look(&output, 3).unwrap();
        assert_eq!(
            looked[0],
            Looked {
                kind: Kind::Directory,
                fs_type: Some("ext2/ext3".into()),
                total_bytes: Some(1000 * 1024),
                free_bytes: Some(250 * 1024),
                own_mount: Some(false),
                read_only: Some(false),
                selinux: Some("system_u:object_r:container_file_t:s0".into()),
            }
        );
        assert_eq!(looked[1].kind, Kind::File);
        assert_eq!(looked[1].read_only, Some(true));
        assert_eq!(looked[1].fs_type, None);
        assert_eq!(looked[2].kind, Kind::Missing);
        assert_eq!(looked[2].fs_type.as_deref(), Some("xfs"));
    }

    #[test]
    fn a_look_that_is_cut_off_short_or_out_of_order_is_refused() {
        assert_eq!(
            parse_look("B 1 d - - - - - -\n", 1),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            parse_look("B 1 d - - - - - -\nEND\n", 2),
            Err(ParseError::Unreported(2))
        );
        assert!(parse_look("B 2 d - - - - - -\nB 1 d - - - - - -\nEND\n", 2).is_err());
        assert!(parse_look("B 1 d - - - - - -\nB 1 d - - - - - -\nEND\n", 2).is_err());
        assert!(parse_look("B 1 x - - - - - -\nEND\n", 1).is_err());
        assert!(parse_look("B 1 d zz - - - - -\nEND\n", 1).is_err());
        assert!(parse_look("B 1 d - 12x - - - -\nEND\n", 1).is_err());
        assert!(parse_look("B 1 d - - - 2 - -\nEND\n", 1).is_err());
        assert!(parse_look("B 1 d - - - - -\nEND\n", 1).is_err());
        assert!(parse_look("B 1 d - - - - - -\nEND\nmore\n", 1).is_err());
        assert!(parse_look("hello\nEND\n", 0).is_err());
        assert_eq!(parse_look("END\n", 0), Ok(Vec::new()));
    }

    #[test]
    fn writes_are_read_with_their_messages() {
        let output = format!(
            "W 1 ok\nW 2 fail {}\nEND\n",
            hex("touch: /x/.lpp-check-1: Read-only file system")
        );
        assert_eq!(
            parse_write(&output, 2).unwrap(),
            [
                Written::Ok,
                Written::Failed("touch: /x/.lpp-check-1: Read-only file system".into())
            ]
        );
        assert!(parse_write("W 1 ok\n", 1).is_err());
        assert!(parse_write("W 1 maybe\nEND\n", 1).is_err());
        assert!(parse_write("W 1 fail nothex\nEND\n", 1).is_err());
        assert_eq!(
            write_args("ab12", &["/opt/x/".to_owned()]),
            ["ab12", "1", "/opt/x"]
        );
        let mounts = write_mounts(&["/opt/x".to_owned()]);
        assert_eq!(mounts[0].kind, HostPathType::Directory);
        assert!(!mounts[0].read_only && mounts[0].mount_path.is_none());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "[BWEND0-9a-f dfm\\-ok\n]{0,200}", count in 0usize..4) {
            let _ = parse_look(&text, count);
            let _ = parse_write(&text, count);
        }
    }

    /// The scripts against this machine's shell and tools, on real directories: what the
    /// protocol promises holds for a directory, a file, a missing path and a read-only-free
    /// write.
    #[test]
    fn the_scripts_run_on_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_owned();
        std::fs::create_dir(dir.path().join("base")).unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let run = |script: &str, args: &[&str]| {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(script)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let output = run(
            LOOK,
            &[
                "look", "4", &root, "base", &root, "file", &root, "missing", "/proc", "",
            ],
        );
        let looked = parse_look(&output, 4).unwrap_or_else(|e| panic!("{e}: {output}"));
        // A mount point's filesystem says whether it is read-only (proc is not).
        assert_eq!(looked[3].kind, Kind::Directory, "{output}");
        assert_eq!(looked[3].read_only, Some(false), "{output}");
        assert_eq!(looked[0].kind, Kind::Directory, "{output}");
        assert!(looked[0].fs_type.is_some(), "{output}");
        assert!(looked[0].free_bytes.is_some(), "{output}");
        assert_eq!(looked[0].own_mount, Some(false), "{output}");
        assert_eq!(looked[1].kind, Kind::File);
        assert_eq!(looked[2].kind, Kind::Missing);
        let base = format!("{root}/base");
        let output = run(WRITE, &["write", "t1", "2", &base, &format!("{root}/file")]);
        let written = parse_write(&output, 2).unwrap_or_else(|e| panic!("{e}: {output}"));
        assert_eq!(written[0], Written::Ok);
        assert!(matches!(&written[1], Written::Failed(m) if !m.is_empty()));
        assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0, "nothing left");
    }
}
