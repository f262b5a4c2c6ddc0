//! Declared disks: node paths that stand for a filesystem of a given size, so that what a
//! container measures there (`df -P -k`, `stat -f`, `du -sk`) is honest to the declaration
//! instead of reporting this machine's disk.
//!
//! A [`Disk`] says "on node N, path P is (or, with `mount_point: false`, lies on) a filesystem
//! of C bytes of type T". Its size is C; what it uses is what is really stored under the node
//! directory of P (allocated blocks, as `du` counts them); what is available is the rest.
//! Nothing enforces the size: a write past it succeeds, and `df` then shows 0 available.
//!
//! No mechanism of this machine gives a directory its own size without privileges (a loop
//! device or FUSE would need them), so the sandbox stands in for the two programs that report
//! filesystem sizes: [`install`] writes `df` and `stat` scripts for one container, to be put
//! first on its `PATH`. For a path on a declared disk they answer from the declaration
//! (`df -P [-k] [-T] [PATH...]`; `stat -f [-c|--format=FORMAT] PATH...` with `%a %b %c %d %f
//! %i %l %n %s %S %t %T`); for any other path, and for every other use (`stat` without `-f`),
//! they run this machine's program with the same arguments. `du` needs no stand-in: it
//! measures the real directory.
//!
//! A disk that is a mount point has a filesystem id of its own (`stat -f -c %i`, made up from
//! its node and path); one that is not reports the id of the filesystem it lies on (this
//! machine's), as its parent directory does. So a probe comparing a path with its parent tells
//! a mount point as on a real node (device numbers, `stat -c %d`, are this machine's: equal).
//!
//! # How the container start plugs it in
//!
//! The kubelet ([`super::kubelet`]), when it prepares a container (its `exec`s then run in the
//! same mount namespace, with the same `PATH`), with the container's mounts (`mountPath`, the
//! host directory it maps to) and its node, calls [`hook`], which:
//!
//! 1. [`view`]`(disks, node, node_root, &mounts)` — which of the container's paths are on
//!    which declared disk (pure; empty when the node has none: then nothing else happens);
//! 2. [`install`]`(&bin_dir, &entries, Side::Container, &Programs::find())` — writes the
//!    stand-ins into a directory of the container (`containers/<name>/sandbox-bin/`);
//! 3. returns two kinds of read-only binds for the container's `fstab`: that directory at
//!    [`BIN_AT`], and each entry's [`ViewEntry::disk_root`] at its [`ViewEntry::measure_at`];
//!    and the kubelet puts [`BIN_AT`] first on the container's `PATH`.
//!
//! `side` says how the container's programs name paths. With the path rewriting of
//! [`super::mounts`] (programs run on this machine's filesystem, arguments rewritten to host
//! directories) it is [`Side::Host`]: `PATH` gets the host directory of `bin_dir`, and `df`'s
//! "Mounted on" is printed as a host directory that the output mapping turns back into the
//! container path. In a container with its own mount namespace and root it is
//! [`Side::Container`]: `bin_dir` is bind-mounted read-only at a path of the container (say
//! `/.sandbox/bin`, first on `PATH`), and each entry's disk root must be reachable at
//! [`ViewEntry::measure_at`] inside it (bind-mount [`ViewEntry::disk_root`] read-only there)
//! so that the stand-in can measure the whole disk, not only the part the container mounts.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::binding::quantity_bytes;

/// A declared disk (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The node (`node-1`).
    pub node: String,
    /// The node path, absolute and normalised (`/opt/local-path-provisioner`).
    pub path: String,
    /// Its size in bytes.
    pub capacity: u64,
    /// The filesystem type (`ext4`, `xfs`, `btrfs`, `tmpfs`...).
    pub fs_type: String,
    /// Whether the path is the filesystem's mount point (a disk of its own) or a directory on
    /// one mounted higher up.
    pub mount_point: bool,
}

/// Why a disk declaration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    /// Not `NODE:PATH=SIZE[,fs=TYPE][,mountpoint=false]`.
    #[error(
        "{0:?} is not a disk; write NODE:PATH=SIZE[,fs=TYPE][,mountpoint=false], e.g. node-1:/opt/local-path-provisioner=10Gi"
    )]
    Syntax(String),
    /// The size is not a quantity.
    #[error("{0:?} is not a size; write bytes or a quantity such as 512Mi or 10Gi")]
    Size(String),
    /// The path is not an absolute path the sandbox can name.
    #[error("{0:?} is not an absolute node path without '..', tabs or newlines (and not / itself)")]
    Path(String),
}

impl std::str::FromStr for Disk {
    type Err = DiskError;

    /// `NODE:PATH=SIZE[,fs=TYPE][,mountpoint=false]`, as `lpp sandbox up --disk` takes it.
    fn from_str(text: &str) -> Result<Disk, DiskError> {
        let syntax = || DiskError::Syntax(text.to_string());
        let (node, rest) = text.split_once(':').ok_or_else(syntax)?;
        // The first `=` ends the path (a path holding one cannot be declared).
        let (path, options) = rest.split_once('=').ok_or_else(syntax)?;
        let mut parts = options.split(',');
        let size = parts.next().ok_or_else(syntax)?;
        let mut disk = Disk {
            node: node.to_string(),
            path: path.to_string(),
            capacity: quantity_bytes(size)
                .and_then(|b| u64::try_from(b).ok())
                .ok_or_else(|| DiskError::Size(size.to_string()))?,
            fs_type: "ext4".into(),
            mount_point: true,
        };
        if node.is_empty() {
            return Err(syntax());
        }
        for option in parts {
            match option.split_once('=') {
                Some(("fs", t)) if !t.is_empty() && !t.contains(char::is_whitespace) => {
                    disk.fs_type = t.to_string();
                }
                Some(("mountpoint", "true")) => disk.mount_point = true,
                Some(("mountpoint", "false")) => disk.mount_point = false,
                _ => return Err(syntax()),
            }
        }
        disk.path = normalise(&disk.path).ok_or_else(|| DiskError::Path(disk.path.clone()))?;
        Ok(disk)
    }
}

/// The path without repeated or trailing slashes, or `None` if it is relative, `/`, climbs
/// with `..`, or holds characters the stand-ins' table cannot (tab, newline).
pub fn normalise(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains(['\t', '\n']) {
        return None;
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether `path` is `prefix` or below it (both normalised).
fn within(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

/// The sizes `statfs` reports for a disk, in 4 KiB blocks (no blocks reserved for root, so
/// free and available are the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statfs {
    /// Block size in bytes (4096).
    pub block_size: u64,
    /// Blocks in all.
    pub blocks: u64,
    /// Blocks free.
    pub free: u64,
    /// Blocks available to users.
    pub available: u64,
}

/// The block size the stand-ins report.
pub const BLOCK_SIZE: u64 = 4096;

/// The sizes of a disk of `capacity` bytes with `used` bytes stored.
pub fn statfs(capacity: u64, used: u64) -> Statfs {
    let blocks = capacity / BLOCK_SIZE;
    let free = blocks.saturating_sub(used.div_ceil(BLOCK_SIZE));
    Statfs {
        block_size: BLOCK_SIZE,
        blocks,
        free,
        available: free,
    }
}

/// One row of `df -P -k`: 1024-blocks, used, available (KiB) and the capacity percentage as
/// df computes it (used over used plus available, rounded up; `-` when both are 0).
pub fn df_row(capacity: u64, used: u64) -> (u64, u64, u64, String) {
    let total = capacity / 1024;
    let used_k = used.div_ceil(1024);
    let available = total.saturating_sub(used_k);
    let percent = match used_k + available {
        0 => "-".to_string(),
        all => format!("{}%", (used_k * 100).div_ceil(all)),
    };
    (total, used_k, available, percent)
}

/// The bytes stored under `dir` as `du` counts them: allocated blocks of every entry
/// (symbolic links not followed, hard links once), `dir` itself included.
pub fn used_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(total)
}

/// The `stat -f -c %t` magic and `%T` name of a filesystem type, as GNU and busybox `stat`
/// print them (ext2, ext3 and ext4 share one magic, named `ext2/ext3`).
pub fn fs_magic(fs_type: &str) -> (&'static str, String) {
    match fs_type {
        "ext2" | "ext3" | "ext4" => ("ef53", "ext2/ext3".into()),
        "xfs" => ("58465342", "xfs".into()),
        "btrfs" => ("9123683e", "btrfs".into()),
        "tmpfs" => ("1021994", "tmpfs".into()),
        "overlay" => ("794c7630", "overlayfs".into()),
        "zfs" => ("2fc12fc1", "zfs".into()),
        "nfs" => ("6969", "nfs".into()),
        other => ("0", other.to_string()),
    }
}

/// A mount of a container, as [`view`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMount {
    /// Where the container sees it (`/data`).
    pub container_path: String,
    /// The host directory it maps to.
    pub host_dir: PathBuf,
}

/// How the container's programs name paths (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Programs see host directories (path rewriting, no mount namespace).
    Host,
    /// Programs see container paths (own mount namespace and root).
    Container,
}

/// Where the disk roots are reachable inside a container for [`Side::Container`]: entry `i`'s
/// at `<DISKS_AT>/<i>`.
pub const DISKS_AT: &str = "/.sandbox/disks";

/// Where the stand-ins are inside a container for [`Side::Container`] (first on its `PATH`).
pub const BIN_AT: &str = "/.sandbox/bin";

/// One path prefix of a container that lies on a declared disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEntry {
    /// The prefix as the container names it.
    pub container_prefix: String,
    /// The same as a host directory.
    pub host_prefix: PathBuf,
    /// What `df` prints under "Mounted on", as the container names it.
    pub mounted_on: String,
    /// The same as a host directory.
    pub host_mounted_on: PathBuf,
    /// The host directory of the disk's root (what is measured).
    pub disk_root: PathBuf,
    /// Where a [`Side::Container`] stand-in measures it.
    pub measure_at: String,
    /// The declaration.
    pub disk: Disk,
}

/// The container's path prefixes on the node's declared disks, longest first. A mount inside
/// a disk puts its `mountPath` on it (mounted on the `mountPath`, as a bind mount is); a disk
/// that is its own mount point inside a mount puts the disk's path within that mount on it
/// (mounted there, as a recursive bind shows it); a disk that is a plain directory inside a
/// mount puts that directory on it, mounted on the `mountPath`.
pub fn view(
    disks: &[Disk],
    node: &str,
    node_root: &Path,
    mounts: &[ContainerMount],
) -> Vec<ViewEntry> {
    let mut out: Vec<ViewEntry> = Vec::new();
    for m in mounts {
        let Ok(rest) = m.host_dir.strip_prefix(node_root) else {
            continue;
        };
        let Some(node_path) = rest.to_str().map(|r| format!("/{r}")) else {
            continue;
        };
        let node_path = normalise(&node_path).unwrap_or_else(|| "/".into());
        let mount_path = normalise(&m.container_path).unwrap_or_else(|| "/".into());
        let join = |base: &str, tail: &str| {
            if base == "/" {
                tail.to_string()
            } else {
                format!("{base}{tail}")
            }
        };
        for d in disks.iter().filter(|d| d.node == node) {
            let disk_root = node_root.join(d.path.trim_start_matches('/'));
            // (container prefix, its host directory, mounted on, its host directory)
            let seen = if within(&node_path, &d.path) {
                (
                    mount_path.clone(),
                    m.host_dir.clone(),
                    mount_path.clone(),
                    m.host_dir.clone(),
                )
            } else if within(&d.path, &node_path) {
                let tail = if node_path == "/" {
                    d.path.as_str()
                } else {
                    &d.path[node_path.len()..]
                };
                let inside = join(&mount_path, tail);
                if d.mount_point {
                    (inside.clone(), disk_root.clone(), inside, disk_root.clone())
                } else {
                    (
                        inside,
                        disk_root.clone(),
                        mount_path.clone(),
                        m.host_dir.clone(),
                    )
                }
            } else {
                continue;
            };
            let (container_prefix, host_prefix, mounted_on, host_mounted_on) = seen;
            out.push(ViewEntry {
                container_prefix,
                host_prefix,
                mounted_on,
                host_mounted_on,
                disk_root,
                measure_at: String::new(),
                disk: d.clone(),
            });
        }
    }
    out.sort_by(|a, b| {
        b.container_prefix
            .len()
            .cmp(&a.container_prefix.len())
            .then(a.container_prefix.cmp(&b.container_prefix))
    });
    out.dedup_by(|a, b| a.container_prefix == b.container_prefix);
    for (i, e) in out.iter_mut().enumerate() {
        e.measure_at = format!("{DISKS_AT}/{i}");
    }
    out
}

/// This machine's programs the stand-ins run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programs {
    /// `df`, for paths on no declared disk.
    pub df: PathBuf,
    /// `stat`, likewise and for `stat` without `-f`.
    pub stat: PathBuf,
    /// `du`, to measure a disk.
    pub du: PathBuf,
    /// `find`, to count a disk's inodes.
    pub find: PathBuf,
}

impl Programs {
    /// Finds them in `/usr/bin`, `/bin` or on `PATH` (falling back to the bare name).
    pub fn find() -> Programs {
        let dirs: Vec<PathBuf> = ["/usr/bin", "/bin"]
            .into_iter()
            .map(PathBuf::from)
            .chain(
                std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                    .unwrap_or_default(),
            )
            .collect();
        let find = |name: &str| {
            dirs.iter()
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from(name))
        };
        Programs {
            df: find("df"),
            stat: find("stat"),
            du: find("du"),
            find: find("find"),
        }
    }
}

/// A word for `sh`, single-quoted.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The filesystem id `stat -f -c %i` reports for a disk that is a mount point: made up from its
/// node and path (stable, and unlike any other disk's), or `-` for a disk that is not one
/// (whose id is that of the filesystem it lies on).
fn fsid(disk: &Disk) -> String {
    if !disk.mount_point {
        return "-".into();
    }
    // FNV-1a: a fixed hash, the same in every run.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in disk.node.bytes().chain([0]).chain(disk.path.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:x}", h | 1)
}

/// The table the stand-ins read: `prefix<TAB>measure<TAB>capacity<TAB>type<TAB>mounted
/// on<TAB>filesystem name<TAB>filesystem id` per line, longest prefix first.
fn table(entries: &[ViewEntry], side: Side) -> String {
    entries
        .iter()
        .map(|e| {
            let (prefix, measure, mounted) = match side {
                Side::Host => (
                    e.host_prefix.display().to_string(),
                    e.disk_root.display().to_string(),
                    e.host_mounted_on.display().to_string(),
                ),
                Side::Container => (
                    e.container_prefix.clone(),
                    e.measure_at.clone(),
                    e.mounted_on.clone(),
                ),
            };
            let name = format!(
                "sandbox:{}:{}",
                e.disk.node,
                e.disk.path.trim_start_matches('/').replace('/', "-")
            );
            format!(
                "{prefix}\t{measure}\t{}\t{}\t{mounted}\t{name}\t{}\n",
                e.disk.capacity,
                e.disk.fs_type,
                fsid(&e.disk)
            )
        })
        .collect()
}

/// The shared part of both stand-ins: the table, and `lookup PATH`, which sets `measure cap
/// type mnt name` for the entry covering an existing path (resolved like the kernel would:
/// symbolic links followed) and fails when none does.
fn prelude(entries: &[ViewEntry], side: Side, programs: &Programs) -> String {
    format!(
        r#"#!/bin/sh
# lpp sandbox: a stand-in that answers for the node disks declared to the sandbox and runs
# this machine's program for everything else (src/sandbox/node/disks.rs).
TABLE={table}
TAB=$(printf '\t')
DU={du}
FIND={find}
lookup() {{
  if [ -d "$1" ]; then p=$(cd -- "$1" 2>/dev/null && pwd -P) || return 1
  elif [ -e "$1" ]; then d=$(dirname -- "$1"); p=$(cd -- "$d" 2>/dev/null && pwd -P)/$(basename -- "$1") || return 1
  else return 1; fi
  found=
  while IFS="$TAB" read -r prefix m c t mo n f; do
    [ -n "$prefix" ] || continue
    case $p in "$prefix"|"$prefix"/*) measure=$m cap=$c type=$t mnt=$mo name=$n fsid=$f found=1; break ;; esac
  done <<EOF
$TABLE
EOF
  [ -n "$found" ]
}}
measure() {{
  set -- $("$DU" -sk -- "$measure" 2>/dev/null)
  used_k=${{1:-0}}
}}
"#,
        table = quoted(&table(entries, side)),
        du = quoted(&programs.du.display().to_string()),
        find = quoted(&programs.find.display().to_string()),
    )
}

/// The `df` stand-in.
fn df_script(entries: &[ViewEntry], side: Side, programs: &Programs) -> String {
    prelude(entries, side, programs)
        + &format!(
            r#"REAL={real}
types=
for a in "$@"; do
  case $a in
    -P|-k|-Pk|-kP) ;;
    -T|-PT|-TP|-kT|-Tk|-PkT|-PTk|-kPT|-kTP|-TPk|-TkP) types=1 ;;
    -*) exec "$REAL" "$@" ;;
  esac
done
paths=
for a in "$@"; do case $a in -*) ;; *) paths=1; lookup "$a" || exec "$REAL" "$@" ;; esac; done
if [ -z "$paths" ]; then
  set -- $(printf '%s\n' "$TABLE" | cut -f1)
fi
if [ -n "$types" ]; then
  printf '%-20s %-8s %11s %9s %9s %8s %s\n' Filesystem Type 1024-blocks Used Available Capacity 'Mounted on'
else
  printf '%-20s %11s %9s %9s %8s %s\n' Filesystem 1024-blocks Used Available Capacity 'Mounted on'
fi
for a in "$@"; do
  case $a in -*) continue ;; esac
  lookup "$a" || continue
  measure
  total=$((cap / 1024))
  avail=$((total - used_k)); [ "$avail" -ge 0 ] || avail=0
  all=$((used_k + avail))
  if [ "$all" -gt 0 ]; then pct="$(( (used_k * 100 + all - 1) / all ))%"; else pct=-; fi
  if [ -n "$types" ]; then
    printf '%-20s %-8s %11s %9s %9s %8s %s\n' "$name" "$type" "$total" "$used_k" "$avail" "$pct" "$mnt"
  else
    printf '%-20s %11s %9s %9s %8s %s\n' "$name" "$total" "$used_k" "$avail" "$pct" "$mnt"
  fi
done
"#,
            real = quoted(&programs.df.display().to_string()),
        )
}

/// The `stat` stand-in (`stat -f` on declared disks).
fn stat_script(entries: &[ViewEntry], side: Side, programs: &Programs) -> String {
    prelude(entries, side, programs)
        + &format!(
            r#"REAL={real}
fs= format= paths=
for a in "$@"; do
  case $a in -f|--file-system) fs=1 ;; esac
done
[ -n "$fs" ] || exec "$REAL" "$@"
next=
for a in "$@"; do
  if [ -n "$next" ]; then format=$a next=; continue; fi
  case $a in
    -f|--file-system) ;;
    -c) next=1 ;;
    -c*) format=${{a#-c}} ;;
    --format=*) format=${{a#--format=}} ;;
    -*) exec "$REAL" "$@" ;;
    *) lookup "$a" || exec "$REAL" "$@"; paths=1 ;;
  esac
done
[ -n "$paths" ] || exec "$REAL" "$@"
magic() {{
  case $1 in
    ext2|ext3|ext4) hex=ef53 human=ext2/ext3 ;;
    xfs) hex=58465342 human=xfs ;;
    btrfs) hex=9123683e human=btrfs ;;
    tmpfs) hex=1021994 human=tmpfs ;;
    overlay) hex=794c7630 human=overlayfs ;;
    zfs) hex=2fc12fc1 human=zfs ;;
    nfs) hex=6969 human=nfs ;;
    *) hex=0 human=$1 ;;
  esac
}}
next=
for a in "$@"; do
  if [ -n "$next" ]; then next=; continue; fi
  case $a in -c) next=1; continue ;; -*) continue ;; esac
  lookup "$a"
  measure
  bs={block}
  blocks=$((cap / bs))
  used_b=$(( (used_k * 1024 + bs - 1) / bs ))
  free=$((blocks - used_b)); [ "$free" -ge 0 ] || free=0
  files=$((cap / 16384))
  taken=$("$FIND" "$measure" 2>/dev/null | wc -l)
  ffree=$((files - taken)); [ "$ffree" -ge 0 ] || ffree=0
  magic "$type"
  [ "$fsid" != - ] || fsid=$("$REAL" -f -c %i "$measure" 2>/dev/null) || fsid=0
  if [ -z "$format" ]; then
    printf '  File: "%s"\n    ID: %-8s Namelen: %-7s Type: %s\n' "$a" "$fsid" 255 "$human"
    printf 'Block size: %-10s Fundamental block size: %s\n' "$bs" "$bs"
    printf 'Blocks: Total: %-10s Free: %-10s Available: %s\n' "$blocks" "$free" "$free"
    printf 'Inodes: Total: %-10s Free: %s\n' "$files" "$ffree"
    continue
  fi
  out= rest=$format
  while [ -n "$rest" ]; do
    c=${{rest%"${{rest#?}}"}}; rest=${{rest#?}}
    if [ "$c" != % ] || [ -z "$rest" ]; then out=$out$c; continue; fi
    d=${{rest%"${{rest#?}}"}}; rest=${{rest#?}}
    case $d in
      a) out=$out$free ;; b) out=$out$blocks ;; c) out=$out$files ;; d) out=$out$ffree ;;
      f) out=$out$free ;; i) out=$out$fsid ;; l) out=${{out}}255 ;; n) out=$out$a ;;
      s|S) out=$out$bs ;; t) out=$out$hex ;; T) out=$out$human ;; %) out=$out% ;;
      *) out=$out%$d ;;
    esac
  done
  printf '%s\n' "$out"
done
"#,
            real = quoted(&programs.stat.display().to_string()),
            block = BLOCK_SIZE,
        )
}

/// Writes the `df` and `stat` stand-ins for one container into `bin_dir` (created, the
/// scripts executable), answering for `entries` as `side` names paths.
pub fn install(
    bin_dir: &Path,
    entries: &[ViewEntry],
    side: Side,
    programs: &Programs,
) -> std::io::Result<()> {
    std::fs::create_dir_all(bin_dir)?;
    for (name, text) in [
        ("df", df_script(entries, side, programs)),
        ("stat", stat_script(entries, side, programs)),
    ] {
        let path = bin_dir.join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// What a container gets for the declared disks its mounts reach (see the module docs): the
/// read-only binds to add to its mounts (the stand-ins at [`BIN_AT`], each disk root at its
/// [`ViewEntry::measure_at`]), as (container path, host directory); empty when its mounts
/// reach no declared disk (then nothing is written and its `PATH` stays as it is). The
/// stand-ins are written into `bin_dir`.
pub fn hook(
    disks: &[Disk],
    node: &str,
    node_root: &Path,
    mounts: &[ContainerMount],
    bin_dir: &Path,
) -> std::io::Result<Vec<(String, PathBuf)>> {
    let entries = view(disks, node, node_root, mounts);
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    install(bin_dir, &entries, Side::Container, &Programs::find())?;
    let mut binds = vec![(BIN_AT.to_owned(), bin_dir.to_path_buf())];
    binds.extend(entries.into_iter().map(|e| (e.measure_at, e.disk_root)));
    Ok(binds)
}

/// `PATH` with [`BIN_AT`] first.
pub fn path_with_stand_ins(path: &str) -> String {
    if path.is_empty() {
        BIN_AT.to_owned()
    } else {
        format!("{BIN_AT}:{path}")
    }
}

/// Refuses disks on nodes that do not exist and two declarations of one path.
pub fn check(disks: &[Disk], nodes: &[String]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for d in disks {
        if !nodes.contains(&d.node) {
            return Err(format!(
                "a disk is declared on {}, but the sandbox's nodes are node-1 … node-{}",
                d.node,
                nodes.len()
            ));
        }
        if !seen.insert((d.node.as_str(), d.path.as_str())) {
            return Err(format!("{}:{} is declared twice", d.node, d.path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(text: &str) -> Disk {
        text.parse().expect("a disk")
    }

    #[test]
    fn declarations_parse_with_defaults_and_options() {
        assert_eq!(
            disk("node-1:/opt/local-path-provisioner/=1Gi"),
            Disk {
                node: "node-1".into(),
                path: "/opt/local-path-provisioner".into(),
                capacity: 1 << 30,
                fs_type: "ext4".into(),
                mount_point: true,
            }
        );
        let d = disk("node-2://data//x=500Mi,fs=xfs,mountpoint=false");
        assert_eq!(
            (
                d.path.as_str(),
                d.capacity,
                d.fs_type.as_str(),
                d.mount_point
            ),
            ("/data/x", 500 << 20, "xfs", false)
        );
        for bad in [
            "node-1:/opt",
            ":/opt=1Gi",
            "node-1:opt=1Gi",
            "node-1:/=1Gi",
            "node-1:/a/../b=1Gi",
            "node-1:/opt=lots",
            "node-1:/opt=1Gi,colour=red",
        ] {
            assert!(bad.parse::<Disk>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_follow_df_and_statfs_arithmetic() {
        let (total, used, avail, pct) = df_row(1 << 30, 300 * 1024 + 1);
        assert_eq!(
            (total, used, avail, pct.as_str()),
            (1_048_576, 301, 1_048_275, "1%")
        );
        assert_eq!(df_row(4096, 8192), (4, 8, 0, "100%".to_string()));
        assert_eq!(df_row(0, 0).3, "-");
        let s = statfs(1 << 30, 4097);
        assert_eq!((s.blocks, s.free, s.available), (262_144, 262_142, 262_142));
        assert_eq!(statfs(4096, 1 << 20).free, 0);
        assert_eq!(fs_magic("ext4"), ("ef53", "ext2/ext3".to_string()));
    }

    #[test]
    fn a_container_sees_the_disks_its_mounts_reach() {
        let root = Path::new("/sb/nodes/node-1");
        let disks = [
            disk("node-1:/opt/local-path-provisioner=10Gi"),
            disk("node-1:/var/data=5Gi,mountpoint=false"),
            disk("node-2:/opt/local-path-provisioner=1Gi"),
        ];
        let mounts = [
            // A volume inside the disk: mounted on its own mountPath.
            ContainerMount {
                container_path: "/data".into(),
                host_dir: root.join("opt/local-path-provisioner/pvc-1"),
            },
            // The node's / at /host: the disk is its own mount inside it; the plain
            // directory is seen on the /host mount.
            ContainerMount {
                container_path: "/host".into(),
                host_dir: root.to_path_buf(),
            },
            // Not on the node's filesystem.
            ContainerMount {
                container_path: "/tmp".into(),
                host_dir: PathBuf::from("/elsewhere"),
            },
        ];
        let seen: Vec<(String, String, String)> = view(&disks, "node-1", root, &mounts)
            .into_iter()
            .map(|e| (e.container_prefix, e.mounted_on, e.disk.path))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "/host/opt/local-path-provisioner".into(),
                    "/host/opt/local-path-provisioner".into(),
                    "/opt/local-path-provisioner".into()
                ),
                ("/host/var/data".into(), "/host".into(), "/var/data".into()),
                (
                    "/data".into(),
                    "/data".into(),
                    "/opt/local-path-provisioner".into()
                ),
            ]
        );
        assert!(view(&disks, "node-3", root, &mounts).is_empty());
    }

    #[test]
    fn used_bytes_count_allocated_blocks_once() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("a"), vec![1u8; 10_000]).expect("write");
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).expect("link");
        let used = used_bytes(dir.path()).expect("used");
        let dir_blocks = std::fs::metadata(dir.path()).expect("meta").blocks() * 512;
        let file_blocks = std::fs::metadata(dir.path().join("a"))
            .expect("meta")
            .blocks()
            * 512;
        assert_eq!(used, dir_blocks + file_blocks);
    }

    #[test]
    fn declarations_name_real_nodes_once() {
        let nodes = vec!["node-1".to_string()];
        assert!(check(&[disk("node-1:/a=1Gi"), disk("node-1:/b=1Gi")], &nodes).is_ok());
        assert!(check(&[disk("node-1:/a=1Gi"), disk("node-1:/a/=2Gi")], &nodes).is_err());
        assert!(check(&[disk("node-2:/a=1Gi")], &nodes).is_err());
    }
}
