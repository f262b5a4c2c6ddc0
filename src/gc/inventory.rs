//! The inventory protocol: a POSIX shell script a helper pod runs on a node to list what sits
//! directly under each base path and to tell where each PV path on that node really is, and its
//! strict parser.
//!
//! # Why identities
//!
//! A PV may spell its path through a symlink (`/alias/pvc-…` where `/alias` → the base path) or
//! a bind mount; comparing path strings would call its directory an orphan. So the script also
//! reports file identities (`stat -c '%d:%i'`: device and inode numbers), and an entry is in use
//! when a PV's path, or one of its ancestors, *is* that entry (see [`super::classify`]).
//!
//! Each PV path is reached from a *walk root* ([`plan`]): a base path it lies in (mounted at
//! itself), or else its parent directory, mounted read-only at `/lpp-gc/<j>` with hostPath type
//! `""`. The node resolves symlinks in a hostPath's source when it mounts it, so the mount shows
//! the parent's real directory however it is spelled. Below the root the script walks one name
//! at a time and gives up on a symlink (`L`): inside the container it would resolve against the
//! container's files, not the node's. Only parents are mounted, never a PV's own directory:
//! container runtimes create a missing source, and a PV directory made empty by gc would hide a
//! lost volume. A PV path that is `/` or directly under it is not reachable at all.
//!
//! A walk root that is neither a base path nor an entry (its PV may lie deeper inside an entry:
//! `/alias/pvc-old/data/x`) is searched for in each base path with `find -inum`, and every entry
//! holding it is reported (`F`). If a search cannot finish, `X` says so.
//!
//! # The protocol
//!
//! Run as `sh -c SCRIPT inventory N BASE_1 … BASE_N ROOT_1 REL_1 … ROOT_M REL_M`: N base paths,
//! then one (root, relative path) pair per PV path (an empty root: unreachable). It prints one
//! record per line:
//!
//! ```text
//! B <i> <id>                            base path i (1-based) exists and is listed; its identity
//! M <i>                                 base path i is missing (or is a symlink)
//! E <i> <hex name> <type> <KiB> <mtime> <children> <id>
//! P <k> I <id>…                         PV path k exists: identities from its root down to it
//! P <k> N <id>…                         PV path k is missing: identities of its root and the
//!                                       ancestors that exist
//! P <k> L                               a symlink lies between its root and it
//! P <k> U                               it cannot be looked at (unreachable, unreadable)
//! F <k> <i> <hex name>                  PV k's root lies (strictly) inside entry name of base i
//! X <i>                                 the search in base i could not finish
//! END
//! ```
//!
//! An identity is `<dev>:<inode>`, or `-` when it cannot be read (and for symlinks). Names are
//! hex-encoded so that any byte of a file name survives the log stream; base and PV paths are
//! named by position, never printed, so that nothing depends on how a path is spelled in the
//! output. `type` is `d` (directory), `f` (file), `l` (symlink, never followed) or `o` (other).
//! The parser refuses anything else, and a listing without `END` (a helper that was cut off) is
//! an error rather than a short, wrong inventory.

use serde::Serialize;

use crate::config::path;
use crate::provision::helper_pod::{HostDir, HostPathType};
use crate::records::{self, BadLine, Numbered};

/// Shell functions both gc scripts use.
///
/// `walk ROOT REL` goes down REL from ROOT one name at a time, never through a symlink, and sets
/// `st` (`I` found, `N` missing, `L` a symlink on the way, `U` unreadable or no root) and `ids`
/// (the identities seen, ROOT's first).
macro_rules! prelude {
    () => {
        r#"hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
fid() { stat -L -c '%d:%i' "$1" 2>&-; }
has() { case " $2 " in *" $1 "*) return 0;; esac; return 1; }
walk() {
  st=U; ids=
  [ -n "$1" ] || return 0
  w_d=$1; w_rest=$2
  ids=$(fid "$w_d") || { ids=; return 0; }
  st=I
  while [ -n "$w_rest" ]; do
    w_c=${w_rest%%/*}
    case $w_rest in */*) w_rest=${w_rest#*/};; *) w_rest=;; esac
    w_p=$w_d/$w_c
    if [ -L "$w_p" ]; then st=L; ids=; return 0; fi
    if [ ! -e "$w_p" ]; then
      if [ -x "$w_d" ]; then st=N; else st=U; ids=; fi
      return 0
    fi
    w_id=$(fid "$w_p") || { st=U; ids=; return 0; }
    ids="$ids $w_id"; w_d=$w_p
  done
}
"#
    };
}
pub(crate) use prelude;

/// The script, run as `sh -c SCRIPT inventory N BASE… (ROOT REL)…`. Only busybox applets and
/// options.
pub const SCRIPT: &str = concat!(
    prelude!(),
    r#"found='i=$1; base=$2; want=$3; shift 3
for p in "$@"; do
  id=$(stat -L -c "%d:%i" "$p" 2>&-) || { echo "X $i"; continue; }
  for w in $want; do
    [ "${w#*=}" = "$id" ] || continue
    r=${p#"$base/"}
    printf "F %s %s " "${w%%=*}" "$i"; printf %s "${r%%/*}" | od -An -v -tx1 | tr -d " \n"; echo
  done
done
exit 0'
nb=$1; shift
i=0; known=
while [ "$i" -lt "$nb" ]; do
  i=$((i + 1)); base=$1; shift
  eval "b$i=\$base"
  if [ -L "$base" ] || [ ! -d "$base" ]; then echo "M $i"; continue; fi
  bid=$(fid "$base") || bid=-
  echo "B $i $bid"
  eval "l$i=1"
  known="$known $bid"
  for p in "$base"/* "$base"/.[!.]* "$base"/..?*; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    name=${p##*/}
    size=0; n=0; id=-
    if [ -L "$p" ]; then t=l
    elif [ -d "$p" ]; then t=d; size=$(du -sk "$p" 2>&- | head -n 1 | cut -f1); n=$(ls -A "$p" 2>&- | wc -l)
    elif [ -f "$p" ]; then t=f; size=$(du -sk "$p" 2>&- | head -n 1 | cut -f1)
    else t=o; fi
    [ "$t" = l ] || id=$(fid "$p") || id=-
    known="$known $id"
    mtime=$(stat -c %Y "$p" 2>&-)
    n=$(echo $n)
    case "$size" in ''|*[!0-9]*) size=0;; esac
    case "$mtime" in ''|*[!0-9]*) mtime=0;; esac
    case "$n" in ''|*[!0-9]*) n=0;; esac
    echo "E $i $(hex "$name") $t $size $mtime $n $id"
  done
done
k=0; want=
while [ $# -ge 2 ]; do
  k=$((k + 1)); walk "$1" "$2"; shift 2
  if [ -n "$ids" ]; then
    echo "P $k $st $ids"
    r=${ids%% *}
    has "$r" "$known" || want="$want $k=$r"
  else
    echo "P $k $st"
  fi
done
if [ -n "$want" ]; then
  expr=
  for w in $want; do r=${w#*=}; expr="$expr${expr:+ -o} -inum ${r#*:}"; done
  i=0
  while [ "$i" -lt "$nb" ]; do
    i=$((i + 1))
    eval "listed=\${l$i:-}; base=\$b$i"
    [ -n "$listed" ] || continue
    find "$base" -mindepth 2 -type d \( $expr \) -exec sh -c "$found" found "$i" "$base" "$want" {} + || echo "X $i"
  done
fi
echo END
"#
);

/// A file's identity on its node: device and inode numbers, as `stat -c '%d:%i'` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FileId {
    /// The device number.
    pub dev: u64,
    /// The inode number.
    pub ino: u64,
}

impl FileId {
    /// Reads `<dev>:<inode>`.
    pub fn parse(text: &str) -> Option<FileId> {
        let (dev, ino) = text.split_once(':')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(dev) || !digits(ino) {
            return None;
        }
        Some(FileId {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
        })
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.dev, self.ino)
    }
}

/// What kind of entry sits under a base path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A directory (never a symlink to one).
    Directory,
    /// A regular file.
    File,
    /// A symbolic link, never followed.
    Symlink,
    /// Anything else: a socket, a FIFO, a device.
    Other,
}

/// One entry directly under a base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name's bytes, exactly as on disk.
    pub name: Vec<u8>,
    /// What kind of entry it is.
    pub kind: EntryKind,
    /// Disk usage in bytes (`du -sk` × 1024); 0 for symlinks.
    pub size_bytes: u64,
    /// Modification time, seconds since the epoch.
    pub modified: i64,
    /// How many entries a directory holds (0 for anything else).
    pub children: u64,
    /// Its identity; `None` for a symlink, or when it could not be read.
    pub id: Option<FileId>,
}

impl Entry {
    /// The name as text, when it is valid UTF-8.
    pub fn name_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.name).ok()
    }
}

/// What the script found at one base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The base path does not exist (or is a symlink, which is not followed).
    Missing,
    /// The base path's identity (`None`: unreadable) and what sits directly under it.
    Listed {
        /// The base path's identity; `None` when it could not be read.
        id: Option<FileId>,
        /// What sits directly under it; empty for an empty directory.
        entries: Vec<Entry>,
    },
}

/// Where the script found one PV path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// It exists: identities from its walk root down to the path itself (the last).
    Found(Vec<FileId>),
    /// It does not exist: identities of its walk root and of the ancestors that do.
    Missing(Vec<FileId>),
    /// A symlink lies between its walk root and it: not resolved in the container.
    Symlink,
    /// It could not be looked at (unreachable, or its identity unreadable).
    Unreadable,
}

/// A PV's walk root found inside an entry by the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inside {
    /// The PV path's position (0-based).
    pub volume: usize,
    /// The base path's position (0-based).
    pub base: usize,
    /// The entry's name.
    pub name: Vec<u8>,
}

/// A whole inventory of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// One per base path, in the order of the arguments.
    pub listings: Vec<Listing>,
    /// One per PV path, in the order of the arguments.
    pub volumes: Vec<Seen>,
    /// Entries found to hold a PV's walk root.
    pub inside: Vec<Inside>,
    /// Base paths (0-based) whose search could not finish.
    pub incomplete: Vec<usize>,
}

/// How the scripts reach one PV path on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Walk `rel` (slash-separated names, empty for the root itself) down from `root`, a path in
    /// the container: a base path, or the mount of the PV path's parent.
    Walk {
        /// Where the walk starts, as a path in the helper's container.
        root: String,
        /// The PV path below the root, slash-separated; empty for the root itself.
        rel: String,
    },
    /// The path is `/` or directly under it: its parent cannot be mounted.
    Unreachable,
}

/// Where each PV path is reached from, and the mounts that takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Read-only, unchecked mounts of the parents of PV paths outside every base path.
    pub mounts: Vec<HostDir>,
    /// One per PV path, in order.
    pub reach: Vec<Reach>,
}

impl Plan {
    /// The script arguments for the PV paths: a (root, rel) pair each, an empty root for an
    /// unreachable one.
    pub fn args(&self) -> Vec<String> {
        self.reach
            .iter()
            .flat_map(|r| match r {
                Reach::Walk { root, rel } => [root.clone(), rel.clone()],
                Reach::Unreachable => [String::new(), String::new()],
            })
            .collect()
    }
}

/// Where the scripts reach each of `paths` (PV paths, any spelling) on a node whose listed base
/// paths are `bases` (mounted at themselves): through the innermost base path holding it, else
/// through its parent, mounted at `/lpp-gc/<j>` (one mount per distinct parent; the prefix gets
/// longer if a base path is there).
pub fn plan(bases: &[String], paths: &[String]) -> Plan {
    let bases: Vec<String> = bases.iter().map(|b| path::clean(b)).collect();
    let prefix = path::free_of("/lpp-gc", &bases);
    let mut parents: Vec<String> = Vec::new();
    let mut reach = Vec::new();
    for p in paths {
        let clean = path::clean(p);
        let holder = bases
            .iter()
            .filter(|b| **b == clean || path::is_inside(&clean, b))
            .max_by_key(|b| b.len());
        if let Some(base) = holder {
            let rel = clean[base.len()..].trim_start_matches('/').to_owned();
            reach.push(Reach::Walk {
                root: base.clone(),
                rel,
            });
            continue;
        }
        match path::split_parent(&clean) {
            Some((parent, name)) if parent != "/" => {
                let j = match parents.iter().position(|q| q == parent) {
                    Some(j) => j,
                    None => {
                        parents.push(parent.to_owned());
                        parents.len() - 1
                    }
                };
                reach.push(Reach::Walk {
                    root: format!("{prefix}/{j}"),
                    rel: name.to_owned(),
                });
            }
            _ => reach.push(Reach::Unreachable),
        }
    }
    let mounts = parents
        .into_iter()
        .enumerate()
        .map(|(j, parent)| HostDir {
            path: parent,
            mount_path: Some(format!("{prefix}/{j}")),
            kind: HostPathType::Unchecked,
            read_only: true,
        })
        .collect();
    Plan { mounts, reach }
}

/// The inventory's arguments after `inventory`: the count of base paths, the base paths, then
/// the plan's pairs.
pub fn args(bases: &[String], plan: &Plan) -> Vec<String> {
    let mut args = vec![bases.len().to_string()];
    args.extend(bases.iter().cloned());
    args.extend(plan.args());
    args
}

/// Why a helper's output is not a valid inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line breaks the protocol.
    #[error(transparent)]
    Line(#[from] BadLine),
    /// The output has no `END` line: the helper was stopped before it finished.
    #[error("the listing stops before END: the helper was cut off")]
    Truncated,
    /// The base path at this position (counted from 1) got neither a `B` nor an `M` line.
    #[error("base path {0} was never reported")]
    Unreported(usize),
    /// The PV path at this position (counted from 1) got no `P` line.
    #[error("PV path {0} was never reported")]
    UnreportedVolume(usize),
}

/// Parses the script's output for `bases` base paths and `volumes` PV paths.
pub fn parse(output: &str, bases: usize, volumes: usize) -> Result<Inventory, ParseError> {
    let mut listings = Numbered::new(bases, "base path", "base path reported twice");
    let mut seen = Numbered::new(volumes, "PV path", "PV path reported twice");
    let mut inside = Vec::new();
    let mut incomplete = Vec::new();
    records::read(output, ParseError::Truncated, |r| {
        let id = |field: &str| -> Result<Option<FileId>, BadLine> {
            match field {
                "-" => Ok(None),
                _ => FileId::parse(field)
                    .map(Some)
                    .ok_or_else(|| r.bad("not an identity")),
            }
        };
        let name = |field: &str| -> Result<Vec<u8>, BadLine> {
            let name = decode_name(field).ok_or_else(|| r.bad("the name is not valid hex"))?;
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                return Err(r.bad("the name cannot be an entry of a directory"));
            }
            Ok(name)
        };
        match r.fields.as_slice() {
            ["M", i] => {
                let i = listings.index(&r, i)?;
                listings.set(&r, i, Listing::Missing)?;
            }
            ["B", i, base_id] => {
                let i = listings.index(&r, i)?;
                let listing = Listing::Listed {
                    id: id(base_id)?,
                    entries: Vec::new(),
                };
                listings.set(&r, i, listing)?;
            }
            ["E", i, hex, kind, kib, mtime, children, entry_id] => {
                let i = listings.index(&r, i)?;
                let kind = match *kind {
                    "d" => EntryKind::Directory,
                    "f" => EntryKind::File,
                    "l" => EntryKind::Symlink,
                    "o" => EntryKind::Other,
                    _ => return Err(r.bad("unknown entry type").into()),
                };
                let count = |s: &str| s.parse::<u64>().map_err(|_| r.bad("not a number"));
                let size_bytes = count(kib)?.saturating_mul(1024);
                let modified = i64::try_from(count(mtime)?).map_err(|_| r.bad("time too large"))?;
                let entry = Entry {
                    name: name(hex)?,
                    kind,
                    size_bytes,
                    modified,
                    children: count(children)?,
                    id: id(entry_id)?,
                };
                match listings.get_mut(i) {
                    Some(Listing::Listed { entries, .. }) => entries.push(entry),
                    _ => return Err(r.bad("an entry of a base path that was not listed").into()),
                }
            }
            ["P", k, state, ids @ ..] => {
                let k = seen.index(&r, k)?;
                let ids = ids
                    .iter()
                    .map(|f| FileId::parse(f).ok_or_else(|| r.bad("not an identity")))
                    .collect::<Result<Vec<FileId>, BadLine>>()?;
                let found = match (*state, ids.is_empty()) {
                    ("I", false) => Seen::Found(ids),
                    ("N", false) => Seen::Missing(ids),
                    ("L", true) => Seen::Symlink,
                    ("U", true) => Seen::Unreadable,
                    _ => return Err(r.bad("not a PV path record").into()),
                };
                seen.set(&r, k, found)?;
            }
            ["F", k, i, hex] => {
                let volume = seen.index(&r, k)?;
                let base = listings.index(&r, i)?;
                if !matches!(listings.get(base), Some(Listing::Listed { .. })) {
                    return Err(r
                        .bad("a search result in a base path that was not listed")
                        .into());
                }
                inside.push(Inside {
                    volume,
                    base,
                    name: name(hex)?,
                });
            }
            ["X", i] => incomplete.push(listings.index(&r, i)?),
            _ => return Err(r.bad("not an inventory record").into()),
        }
        Ok(())
    })?;
    Ok(Inventory {
        listings: listings.finish(ParseError::Unreported)?,
        volumes: seen.finish(ParseError::UnreportedVolume)?,
        inside,
        incomplete,
    })
}

fn decode_name(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// Running the scripts here, on this machine's files, as a node would: each parent mount of a
/// [`Plan`] is the host directory itself (so its symlinks resolve as the node resolves a
/// hostPath), created when missing as container runtimes do.
#[cfg(test)]
pub(crate) mod here {
    use super::*;

    /// The plan's PV arguments with each mount path replaced by its host directory.
    pub fn volume_args(plan: &Plan) -> Vec<String> {
        for m in &plan.mounts {
            std::fs::create_dir_all(&m.path).unwrap();
        }
        let host = |root: &str| {
            plan.mounts
                .iter()
                .find(|m| m.mount_path.as_deref() == Some(root))
                .map_or_else(|| root.to_owned(), |m| m.path.clone())
        };
        plan.reach
            .iter()
            .flat_map(|r| match r {
                Reach::Walk { root, rel } => [host(root), rel.clone()],
                Reach::Unreachable => [String::new(), String::new()],
            })
            .collect()
    }

    /// `mounts` as (host path, mount path, hostPath type, read-only) rows, to compare whole.
    pub fn mount_rows(mounts: &[HostDir]) -> Vec<(&str, Option<&str>, HostPathType, bool)> {
        mounts
            .iter()
            .map(|m| {
                (
                    m.path.as_str(),
                    m.mount_path.as_deref(),
                    m.kind,
                    m.read_only,
                )
            })
            .collect()
    }

    /// Runs `sh -c script name args…` and returns its standard output.
    pub fn sh(script: &str, name: &str, args: &[String]) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(name)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// Inventories `bases` looking for `paths`, here.
    pub fn inventory(bases: &[String], paths: &[String]) -> (Plan, Inventory) {
        let plan = plan(bases, paths);
        let mut args = vec![bases.len().to_string()];
        args.extend(bases.iter().cloned());
        args.extend(volume_args(&plan));
        let out = sh(SCRIPT, "inventory", &args);
        let inventory =
            parse(&out, bases.len(), paths.len()).unwrap_or_else(|e| panic!("{e}: {out}"));
        (plan, inventory)
    }

    /// The identity of a path here (following symlinks).
    pub fn id_of(path: &std::path::Path) -> FileId {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).unwrap();
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::here::{self, id_of, inventory};
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::symlink;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn listed(listing: &Listing) -> &[Entry] {
        match listing {
            Listing::Listed { entries, .. } => entries,
            Listing::Missing => panic!("not listed"),
        }
    }

    #[test]
    fn a_listing_parses() {
        let out = "B 1 5:2\nE 1 7076632d31 d 8 1700000000 2 5:9\nM 2\nP 1 I 5:2 5:9\nP 2 N 7:1\n\
                   P 3 L\nF 2 1 7076632d31\nX 1\nEND\n";
        let inv = parse(out, 2, 3).unwrap();
        let entries = listed(&inv.listings[0]);
        assert_eq!(entries[0].name, b"pvc-1");
        assert_eq!(entries[0].size_bytes, 8192);
        assert_eq!(entries[0].children, 2);
        assert_eq!(entries[0].id, Some(FileId { dev: 5, ino: 9 }));
        assert_eq!(inv.listings[1], Listing::Missing);
        assert_eq!(
            inv.volumes,
            vec![
                Seen::Found(vec![FileId { dev: 5, ino: 2 }, FileId { dev: 5, ino: 9 }]),
                Seen::Missing(vec![FileId { dev: 7, ino: 1 }]),
                Seen::Symlink,
            ]
        );
        assert_eq!(
            inv.inside,
            vec![Inside {
                volume: 1,
                base: 0,
                name: b"pvc-1".to_vec()
            }]
        );
        assert_eq!(inv.incomplete, vec![0]);
    }

    #[test]
    fn cut_off_or_malformed_output_is_refused() {
        assert_eq!(parse("B 1 1:1\n", 1, 0), Err(ParseError::Truncated));
        assert!(
            parse("B 1 1:1\nE 1 2e2e d 0 0 0 -\nEND\n", 1, 0).is_err(),
            ".."
        );
        assert!(
            parse("B 1 1:1\nE 1 612f62 d 0 0 0 -\nEND\n", 1, 0).is_err(),
            "a/b"
        );
        assert!(parse("B 1 1:1\nE 1 6x d 0 0 0 -\nEND\n", 1, 0).is_err());
        assert!(
            parse("B 1 1:1\nE 1 61 d 0 0 0\nEND\n", 1, 0).is_err(),
            "no id"
        );
        assert!(parse("B 1 1:x\nEND\n", 1, 0).is_err(), "bad id");
        assert!(parse("B 3 1:1\nEND\n", 1, 0).is_err());
        assert!(parse("END\n", 1, 0).is_err(), "base 1 never reported");
        assert!(
            parse("E 1 61 d 0 0 0 -\nEND\n", 1, 0).is_err(),
            "entry before B"
        );
        assert!(parse("B 1 1:1\nEND\nB 1 1:1\n", 1, 0).is_err());
        assert_eq!(
            parse("B 1 1:1\nEND\n", 1, 1),
            Err(ParseError::UnreportedVolume(1))
        );
        assert!(
            parse("B 1 1:1\nP 1 I\nEND\n", 1, 1).is_err(),
            "I without ids"
        );
        assert!(
            parse("B 1 1:1\nP 1 L 1:1\nEND\n", 1, 1).is_err(),
            "L with ids"
        );
        assert!(
            parse("B 1 1:1\nP 1 U\nP 1 U\nEND\n", 1, 1).is_err(),
            "twice"
        );
        assert!(
            parse("M 1\nP 1 U\nF 1 1 61\nEND\n", 1, 1).is_err(),
            "F in M"
        );
    }

    #[test]
    fn parent_mounts_are_planned_for_paths_outside_the_bases_only() {
        let bases = ["/opt/lp".to_owned(), "/opt/lp/fast".to_owned()];
        let paths = [
            "/opt/lp/pvc-a",
            "/opt/lp/fast/ns/claim/",
            "/opt/lp",
            "/alias/pvc-b",
            "/alias/pvc-c",
            "/srv/x/y",
            "/data",
            "/",
        ]
        .map(str::to_owned);
        let plan = plan(&bases, &paths);
        let walk = |root: &str, rel: &str| Reach::Walk {
            root: root.into(),
            rel: rel.into(),
        };
        assert_eq!(
            plan.reach,
            vec![
                walk("/opt/lp", "pvc-a"),
                walk("/opt/lp/fast", "ns/claim"),
                walk("/opt/lp", ""),
                walk("/lpp-gc/0", "pvc-b"),
                walk("/lpp-gc/0", "pvc-c"),
                walk("/lpp-gc/1", "y"),
                Reach::Unreachable,
                Reach::Unreachable,
            ]
        );
        let mounts = here::mount_rows(&plan.mounts);
        assert_eq!(
            mounts,
            vec![
                ("/alias", Some("/lpp-gc/0"), HostPathType::Unchecked, true),
                ("/srv/x", Some("/lpp-gc/1"), HostPathType::Unchecked, true),
            ]
        );
        let clash = super::plan(&["/lpp-gc/x".to_owned()], &["/a/b".to_owned()]);
        assert_eq!(clash.mounts[0].mount_path.as_deref(), Some("/lpp-gc_/0"));
    }

    /// The script really runs under the local `sh` and its output parses back to the names on
    /// disk, including awkward ones.
    #[test]
    fn the_script_lists_what_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir(&base).unwrap();
        std::fs::create_dir(base.join("pvc-1_ns_a")).unwrap();
        std::fs::write(base.join("pvc-1_ns_a/data"), b"x").unwrap();
        std::fs::create_dir(base.join("empty dir\nwith newline")).unwrap();
        std::fs::create_dir(base.join(".hidden")).unwrap();
        symlink("/etc", base.join("escape")).unwrap();
        let bases = [
            base.display().to_string(),
            dir.path().join("nope").display().to_string(),
        ];
        let (_, inv) = inventory(&bases, &[]);
        let mut entries = listed(&inv.listings[0]).to_vec();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(
            names,
            vec![
                b".hidden".as_slice(),
                b"empty dir\nwith newline",
                b"escape",
                b"pvc-1_ns_a"
            ]
        );
        assert_eq!(entries[2].kind, EntryKind::Symlink);
        assert_eq!(entries[2].id, None, "a symlink has no identity of its own");
        assert_eq!(entries[3].kind, EntryKind::Directory);
        assert_eq!(entries[3].children, 1);
        assert_eq!(entries[3].id, Some(id_of(&base.join("pvc-1_ns_a"))));
        assert_eq!(entries[1].children, 0);
        assert!(entries[3].modified > 0);
        assert_eq!(inv.listings[1], Listing::Missing);
        let Listing::Listed { id, .. } = &inv.listings[0] else {
            unreachable!()
        };
        assert_eq!(*id, Some(id_of(&base)));
    }

    /// PV paths spelled through symlinks are found where they really are: through a symlinked
    /// parent (resolved by the mount), deep inside an entry (found by the search), and a
    /// symlink below the walk root is reported, never followed.
    #[test]
    fn the_script_finds_where_pv_paths_really_are() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let base = root.join("base");
        for d in ["pvc-a", "pvc-b/sub/deeper", "ext"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::create_dir_all(root.join("srv")).unwrap();
        symlink("base", root.join("alias")).unwrap();
        symlink("../base/pvc-b/sub", root.join("srv/link")).unwrap();
        symlink("pvc-a", base.join("lnk")).unwrap();
        let at = |p: &str| root.join(p).display().to_string();
        let bases = [base.display().to_string()];
        let paths = [
            at("alias/pvc-a"),
            at("srv/link/deeper"),
            at("base/lnk/x"),
            at("alias/pvc-new"),
            at("srv/link/none"),
            "/data".to_owned(),
            at("base/pvc-b/sub"),
            at("gone/parent/x"),
        ];
        let (_, inv) = inventory(&bases, &paths);
        let id = |p: &str| id_of(&root.join(p));
        assert_eq!(
            inv.volumes,
            vec![
                Seen::Found(vec![id("base"), id("base/pvc-a")]),
                Seen::Found(vec![id("base/pvc-b/sub"), id("base/pvc-b/sub/deeper")]),
                Seen::Symlink,
                Seen::Missing(vec![id("base")]),
                Seen::Missing(vec![id("base/pvc-b/sub")]),
                Seen::Unreadable,
                Seen::Found(vec![id("base"), id("base/pvc-b"), id("base/pvc-b/sub")]),
                Seen::Missing(vec![id("gone/parent")]),
            ]
        );
        let mut inside: Vec<(usize, &[u8])> = inv
            .inside
            .iter()
            .map(|f| (f.volume, f.name.as_slice()))
            .collect();
        inside.sort();
        assert_eq!(
            inside,
            vec![(1, b"pvc-b".as_slice()), (4, b"pvc-b".as_slice())]
        );
        assert!(inv.incomplete.is_empty());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC*", bases in 0usize..4, volumes in 0usize..3) {
            let _ = parse(&text, bases, volumes);
        }

        #[test]
        fn any_name_round_trips(name in proptest::collection::vec(any::<u8>(), 1..40)) {
            prop_assume!(name != b"." && name != b".." && !name.contains(&b'/'));
            let out = format!("B 1 3:4\nE 1 {} d 1 2 0 3:5\nEND\n", hex(&name));
            let inv = parse(&out, 1, 0).unwrap();
            prop_assert_eq!(&inv.listings[0], &Listing::Listed { id: Some(FileId { dev: 3, ino: 4 }), entries: vec![Entry {
                name, kind: EntryKind::Directory, size_bytes: 1024, modified: 2, children: 0,
                id: Some(FileId { dev: 3, ino: 5 }),
            }]});
        }
    }
}
