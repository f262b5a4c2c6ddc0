//! A container's filesystem, planned (see the module docs of [`crate::sandbox::node`] for the
//! whole model): which directory or file of this machine appears at which container path,
//! read-only or not, in which order; the root every container starts from; the `fstab` that
//! `mount -a` reads inside the container's own mount namespace; and how node paths and subPaths
//! resolve under their root, lexically and then through symlinks, never above it.
//!
//! Everything here is pure: symlinks are read through a function the caller passes
//! ([`read_link`] on this machine), so the rules are tested without a filesystem.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// At most this many symlinks are followed resolving one path, as Linux's own limit.
pub const MAX_LINKS: usize = 40;

/// Entries of this machine's `/` that every container's root lends read-only: the stand-in for
/// the image's userland. Those that are symlinks here (`/bin -> usr/bin` on a merged-`/usr`
/// system) are copied as the same symlink instead.
pub const SYSTEM_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Device nodes of this machine bound into every container's `/dev` (a container's root may
/// write to a device node whatever its mount's flags say, so only these harmless ones, never
/// the whole of `/dev`).
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Symlinks in every container's `/dev`, as a container runtime makes them.
pub const DEVICE_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Why a path cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// A node path (hostPath, local volume) that is not absolute.
    #[error("path {0:?} is not absolute")]
    NotAbsolute(String),
    /// A node path that climbs out of the node's root with `..`.
    #[error("path {0:?} climbs out of the node's root with \"..\"")]
    Escapes(String),
    /// A mount at `/` would hide the container's whole root.
    #[error("a volume cannot be mounted at \"/\" in the sandbox")]
    RootMount,
    /// Symlinks that do not settle.
    #[error("path {0:?} goes through more than {MAX_LINKS} symlinks")]
    TooManyLinks(String),
    /// A file mounted where only a tmpfs of the container is, and no directory of it can be
    /// staged on this machine (right under `/`, or in `/dev/shm`).
    #[error("cannot mount a file at {0:?}: the sandbox makes only directories there")]
    FileInTmpfs(String),
}

/// Joins an absolute path under `root` lexically: `/opt/x/../y` under `R` is `R/opt/y`. A path
/// that would climb above `/` is refused rather than clamped, so a typo cannot widen a mount.
pub fn under_root(root: &Path, path: &str) -> Result<PathBuf, MountError> {
    if !path.starts_with('/') {
        return Err(MountError::NotAbsolute(path.to_string()));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(MountError::Escapes(path.to_string()));
                }
            }
            p => parts.push(p),
        }
    }
    let mut out = root.to_path_buf();
    for p in parts {
        out.push(p);
    }
    Ok(out)
}

/// Normalises a container path: absolute, no `.`/`..`, no trailing slash.
pub fn normalize(path: &str) -> Result<String, MountError> {
    let joined = under_root(Path::new("/"), path)?;
    Ok(joined.to_string_lossy().into_owned())
}

/// Normalises a container mount path, which is never `/`.
pub fn container_path(path: &str) -> Result<String, MountError> {
    let s = normalize(path)?;
    if s == "/" {
        return Err(MountError::RootMount);
    }
    Ok(s)
}

/// The target of `path` if it is a symlink on this machine, for [`resolve_in_root`].
pub fn read_link(path: &Path) -> Option<PathBuf> {
    std::fs::read_link(path).ok()
}

/// Resolves `path` under `root` as a process whose `/` is `root` would: lexically first (a
/// climb above `/` is refused, see [`under_root`]), then through every symlink met on the way,
/// an absolute target starting again from `root` and `..` stopping at `root`. A node's
/// symlinks (planted by a container through a hostPath volume, say) thus stay on that node.
/// `read_link` answers the target of a symlink and `None` for anything else.
pub fn resolve_in_root(
    root: &Path,
    path: &str,
    mut read_link: impl FnMut(&Path) -> Option<PathBuf>,
) -> Result<PathBuf, MountError> {
    let lexical = under_root(root, path)?;
    let rest = lexical.strip_prefix(root).unwrap_or(Path::new(""));
    // Parts still to walk, the next one last.
    let mut pending: Vec<OsString> = rest
        .components()
        .rev()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut done = root.to_path_buf();
    let mut depth = 0usize;
    let mut links = 0usize;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if depth > 0 {
                done.pop();
                depth -= 1;
            }
            continue;
        }
        if part.is_empty() || part == "." {
            continue;
        }
        let next = done.join(&part);
        match read_link(&next) {
            Some(target) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(MountError::TooManyLinks(path.to_string()));
                }
                if target.has_root() {
                    done = root.to_path_buf();
                    depth = 0;
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(s) => pending.push(s.to_os_string()),
                        Component::ParentDir => pending.push(OsString::from("..")),
                        _ => {}
                    }
                }
            }
            None => {
                done = next;
                depth += 1;
            }
        }
    }
    Ok(done)
}

/// One container path backed by one path of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path inside the container, normalised (no trailing slash).
    pub container: String,
    /// The directory (or file) on this machine.
    pub host: PathBuf,
    /// Whether the container sees it read-only.
    pub read_only: bool,
}

/// The mounts of one container, parents before what is mounted inside them, the order in which
/// they are made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable {
    mounts: Vec<Mount>,
}

/// How many names a normalised container path has (`/` has none).
fn depth(path: &str) -> usize {
    path.split('/').filter(|s| !s.is_empty()).count()
}

/// Whether `path` is `base` or inside it.
fn within(path: &str, base: &str) -> bool {
    base == "/"
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl MountTable {
    /// Builds the table. Later entries for the same container path replace earlier ones.
    pub fn new(mounts: impl IntoIterator<Item = Mount>) -> MountTable {
        let mut all: Vec<Mount> = Vec::new();
        for m in mounts {
            all.retain(|e| e.container != m.container);
            all.push(m);
        }
        all.sort_by(|a, b| {
            depth(&a.container)
                .cmp(&depth(&b.container))
                .then(a.container.cmp(&b.container))
        });
        MountTable { mounts: all }
    }

    /// The mounts, parents first.
    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }
}

/// The options of the tmpfs that is every container's `/`: its writable layer, in memory and
/// gone with the container, as an image's writable layer is (bounded so that a runaway writer
/// cannot take the machine's memory; volumes are for data).
pub const ROOT_TMPFS: &str = "mode=0755,size=256m";

/// The options of every container's `/dev/shm`.
pub const SHM_TMPFS: &str = "nosuid,nodev,mode=1777,size=64m";

/// What a mount of a container's root is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory or file of this machine, bound (recursively).
    Bind(PathBuf),
    /// A fresh tmpfs with these options.
    Tmpfs(&'static str),
    /// A `proc` of the container's own PID namespace.
    Proc,
}

/// One mount of a container's root, in the order they are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootMount {
    /// Where in the container, normalised (`/` for the root itself).
    pub container: String,
    /// What is mounted.
    pub source: Source,
    /// Whether the container sees it read-only.
    pub read_only: bool,
    /// Whether `mount` makes its mount point (a directory in a tmpfs of the container,
    /// `X-mount.mkdir`); otherwise it is there, or the kubelet makes it beforehand.
    pub make_point: bool,
}

/// A mount point the kubelet makes on this machine before the container starts: names below a
/// directory bound writable into the container, as a runtime makes mount points in a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// The directory of this machine it is made below (there already).
    pub base: PathBuf,
    /// The names below `base`; the last is the mount point.
    pub rest: Vec<String>,
    /// Whether it is a file (a file is bound on it) rather than a directory.
    pub file: bool,
}

/// What this machine and the kubelet lend every container's root.
#[derive(Debug, Clone, Copy)]
pub struct Lent<'a> {
    /// The names of [`SYSTEM_DIRS`] that are directories here (or symlinks to directories).
    pub system: &'a [String],
    /// The node's template of `/dev`: a file for each of [`DEVICES`] to bind on, the
    /// [`DEVICE_LINKS`], `shm/` and `termination-log` (bound read-only).
    pub dev: &'a Path,
    /// The pod's `/etc` (bound writable).
    pub etc: &'a Path,
    /// Where this container's directories for file mounts at new paths are staged.
    pub stage: &'a Path,
}

/// A container's root, planned: its mounts in order and the mount points to make first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The mounts, parents first; the first is the root's tmpfs.
    pub mounts: Vec<RootMount>,
    /// The mount points the kubelet makes on this machine, in order.
    pub points: Vec<MountPoint>,
}

/// The names of `path` below `base` (which holds it).
fn names_below(path: &str, base: &str) -> Vec<String> {
    path.get(base.len()..)
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Layout {
    /// Adds a mount after those planned, and plans its mount point where it falls: made by
    /// `mount` in a tmpfs (a directory), by the kubelet below a writable bind, nowhere below a
    /// read-only one (it must be there). A file cannot be mounted where only a tmpfs is.
    fn add(
        &mut self,
        container: String,
        source: Source,
        read_only: bool,
        file: bool,
    ) -> Result<(), MountError> {
        let holder = self
            .mounts
            .iter()
            .filter(|m| m.container != container && within(&container, &m.container))
            .max_by_key(|m| m.container.len())
            .cloned();
        let mut make_point = false;
        if let Some(holder) = holder {
            let rest = names_below(&container, &holder.container);
            match &holder.source {
                Source::Tmpfs(_) if file => return Err(MountError::FileInTmpfs(container)),
                Source::Tmpfs(_) => make_point = true,
                Source::Bind(host) if !holder.read_only => self.points.push(MountPoint {
                    base: host.clone(),
                    rest,
                    file,
                }),
                Source::Bind(_) | Source::Proc => {}
            }
        }
        self.mounts.push(RootMount {
            container,
            source,
            read_only,
            make_point,
        });
        Ok(())
    }
}

/// Plans a container's root: an in-memory tmpfs; this machine's system directories read-only;
/// a `proc` of its own; the node's `/dev` template read-only with this machine's harmless
/// device nodes bound on it and a tmpfs at `/dev/shm`; the pod's `/etc`; then every mount of
/// `table`, parents first. A file mounted at a new path of the root's tmpfs
/// (`/app/config.yaml`) needs a file to be bound on, which `mount` cannot make: that path's
/// first directory (`/app`) is staged below `lent.stage` on this machine, where the kubelet
/// makes it. `is_file` says whether a source is a file.
pub fn layout(
    lent: &Lent<'_>,
    table: &MountTable,
    is_file: impl Fn(&Path) -> bool,
) -> Result<Layout, MountError> {
    let mut out = Layout::default();
    out.add("/".into(), Source::Tmpfs(ROOT_TMPFS), false, false)?;
    for name in lent.system {
        let path = format!("/{name}");
        out.add(path.clone(), Source::Bind(path.into()), true, false)?;
    }
    out.add("/proc".into(), Source::Proc, false, false)?;
    out.add(
        "/dev".into(),
        Source::Bind(lent.dev.to_path_buf()),
        true,
        false,
    )?;
    for device in DEVICES {
        let path = format!("/dev/{device}");
        out.add(path.clone(), Source::Bind(path.into()), false, true)?;
    }
    out.add("/dev/shm".into(), Source::Tmpfs(SHM_TMPFS), false, false)?;
    out.add(
        "/etc".into(),
        Source::Bind(lent.etc.to_path_buf()),
        false,
        false,
    )?;
    let files: Vec<bool> = table.mounts().iter().map(|m| is_file(&m.host)).collect();
    // Staged before any mount below them, so that nothing is hidden under them.
    let mut staged: Vec<String> = Vec::new();
    for (m, file) in table.mounts().iter().zip(&files) {
        let held_by_root = !out
            .mounts
            .iter()
            .skip(1)
            .map(|r| r.container.as_str())
            .chain(table.mounts().iter().map(|t| t.container.as_str()))
            .any(|c| c != m.container && within(&m.container, c));
        let names = names_below(&m.container, "/");
        if *file && held_by_root && names.len() > 1 && !staged.contains(&names[0]) {
            staged.push(names[0].clone());
        }
    }
    for name in staged {
        // Made from the stage's parent (the container's directory), the stage included.
        let (base, mut rest) = match (lent.stage.parent(), lent.stage.file_name()) {
            (Some(parent), Some(stage)) => (
                parent.to_path_buf(),
                vec![stage.to_string_lossy().into_owned()],
            ),
            _ => (lent.stage.to_path_buf(), Vec::new()),
        };
        rest.push(name.clone());
        out.points.push(MountPoint {
            base,
            rest,
            file: false,
        });
        out.add(
            format!("/{name}"),
            Source::Bind(lent.stage.join(name)),
            false,
            false,
        )?;
    }
    for (m, file) in table.mounts().iter().zip(files) {
        out.add(
            m.container.clone(),
            Source::Bind(m.host.clone()),
            m.read_only,
            file,
        )?;
    }
    Ok(out)
}

/// Escapes a field of an `fstab` line as libmount reads it back: whitespace, `\` and `#` (and
/// any control byte) as `\ooo`.
fn fstab_field(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b <= b' ' || b == b'\\' || b == b'#' || b >= 0x7f {
            out.push_str(&format!("\\{b:03o}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The `fstab` that `mount -a` reads inside the container's mount namespace to make its root
/// on the directory `root`. Binds are recursive, so that a directory with mounts below it can
/// be bound in a user namespace too.
pub fn fstab(root: &Path, layout: &Layout) -> String {
    let mut out = String::new();
    for m in &layout.mounts {
        let target = match m.container.trim_start_matches('/') {
            "" => fstab_field(root),
            rest => fstab_field(&root.join(rest)),
        };
        let (source, kind, mut options) = match &m.source {
            Source::Bind(host) => (fstab_field(host), "none", "rbind".to_string()),
            Source::Tmpfs(o) => ("tmpfs".to_string(), "tmpfs", (*o).to_string()),
            Source::Proc => (
                "proc".to_string(),
                "proc",
                "nosuid,nodev,noexec".to_string(),
            ),
        };
        if m.read_only {
            options.push_str(",ro");
        }
        if m.make_point {
            options.push_str(",X-mount.mkdir");
        }
        out.push_str(&format!("{source} {target} {kind} {options} 0 0\n"));
    }
    out
}

/// The small files of a container's `/etc`: who root is, its hostname (the pod's name) and how
/// names resolve (this machine's `resolv.conf`, as a pod on the host network gets).
pub fn etc_files(hostname: &str, resolv_conf: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                .to_string(),
        ),
        ("group", "root:x:0:\nnogroup:x:65534:\n".to_string()),
        ("hostname", format!("{hostname}\n")),
        (
            "hosts",
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t{hostname}\n"
            ),
        ),
        ("resolv.conf", resolv_conf.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn table() -> MountTable {
        MountTable::new([
            Mount {
                container: "/data/sub".into(),
                host: "/sb/nodes/node-1/opt/sub".into(),
                read_only: false,
            },
            Mount {
                container: "/data".into(),
                host: "/sb/nodes/node-1/opt/lpp/pvc-1".into(),
                read_only: true,
            },
            Mount {
                container: "/tmp".into(),
                host: "/sb/pods/u1/tmp".into(),
                read_only: false,
            },
        ])
    }

    fn lent<'a>(system: &'a [String]) -> Lent<'a> {
        Lent {
            system,
            dev: Path::new("/sb/nodes/node-1/var/lib/kubelet/container-dev"),
            etc: Path::new("/sb/pods/u1/etc"),
            stage: Path::new("/sb/pods/u1/containers/c/stage"),
        }
    }

    #[test]
    fn under_root_joins_and_refuses_escapes() {
        let r = Path::new("/sb/nodes/node-1");
        assert_eq!(
            under_root(r, "/opt/x/../y").unwrap(),
            PathBuf::from("/sb/nodes/node-1/opt/y")
        );
        assert_eq!(
            under_root(r, "/").unwrap(),
            PathBuf::from("/sb/nodes/node-1")
        );
        assert_eq!(
            under_root(r, "/../etc"),
            Err(MountError::Escapes("/../etc".into()))
        );
        assert_eq!(
            under_root(r, "opt"),
            Err(MountError::NotAbsolute("opt".into()))
        );
        assert_eq!(container_path("/data/"), Ok("/data".into()));
        assert_eq!(container_path("/./"), Err(MountError::RootMount));
        assert_eq!(normalize("/"), Ok("/".into()));
    }

    #[test]
    fn mounts_are_made_parents_first() {
        let t = table();
        let order: Vec<&str> = t.mounts().iter().map(|m| m.container.as_str()).collect();
        assert_eq!(order, ["/data", "/tmp", "/data/sub"]);
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = Path::new("/sb/nodes/node-1");
        let links: HashMap<PathBuf, PathBuf> = [
            // A container planted `opt/evil -> /` through a hostPath volume of the node.
            ("/sb/nodes/node-1/opt/evil", "/"),
            ("/sb/nodes/node-1/opt/up", "../../../.."),
            ("/sb/nodes/node-1/opt/rel", "x/y"),
            ("/sb/nodes/node-1/loop", "/loop"),
        ]
        .into_iter()
        .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
        .collect();
        let resolve = |p: &str| resolve_in_root(root, p, |q: &Path| links.get(q).cloned());
        assert_eq!(resolve("/opt/evil/etc").unwrap(), root.join("etc"));
        assert_eq!(resolve("/opt/up/home").unwrap(), root.join("home"));
        assert_eq!(resolve("/opt/rel/z").unwrap(), root.join("opt/x/y/z"));
        assert_eq!(resolve("/opt/plain").unwrap(), root.join("opt/plain"));
        assert_eq!(
            resolve("/loop/x"),
            Err(MountError::TooManyLinks("/loop/x".into()))
        );
        assert_eq!(resolve("/../x"), Err(MountError::Escapes("/../x".into())));
    }

    #[test]
    fn a_root_is_a_tmpfs_with_what_is_lent_then_the_volumes() {
        let system = vec!["usr".to_string(), "bin".to_string()];
        let layout = layout(&lent(&system), &table(), |p| p.ends_with("sub")).unwrap();
        let made: Vec<(&str, bool, bool)> = layout
            .mounts
            .iter()
            .map(|m| (m.container.as_str(), m.read_only, m.make_point))
            .collect();
        assert_eq!(
            made,
            [
                ("/", false, false),
                ("/usr", true, true),
                ("/bin", true, true),
                ("/proc", false, true),
                ("/dev", true, true),
                ("/dev/null", false, false),
                ("/dev/zero", false, false),
                ("/dev/full", false, false),
                ("/dev/random", false, false),
                ("/dev/urandom", false, false),
                ("/dev/tty", false, false),
                // In the `/dev` template already.
                ("/dev/shm", false, false),
                ("/etc", false, true),
                ("/data", true, true),
                ("/tmp", false, true),
                // Below a read-only volume: its mount point must be there.
                ("/data/sub", false, false),
            ]
        );
        assert!(layout.points.is_empty(), "{:?}", layout.points);
    }

    #[test]
    fn mount_points_in_writable_binds_are_made_by_the_kubelet_and_files_staged() {
        let system = vec!["usr".to_string()];
        let t = MountTable::new([
            Mount {
                container: "/tmp/term".into(),
                host: "/sb/c/termination-log".into(),
                read_only: false,
            },
            Mount {
                container: "/tmp".into(),
                host: "/sb/pods/u1/tmp".into(),
                read_only: false,
            },
            Mount {
                container: "/app/conf/app.yaml".into(),
                host: "/sb/pods/u1/volumes/cm/app.yaml".into(),
                read_only: true,
            },
            Mount {
                container: "/app/data".into(),
                host: "/sb/nodes/node-1/opt/d".into(),
                read_only: false,
            },
        ]);
        let files = |p: &Path| p.extension().is_some() || p.ends_with("termination-log");
        let planned = layout(&lent(&system), &t, files).unwrap();
        let stage = PathBuf::from("/sb/pods/u1/containers/c/stage");
        assert_eq!(
            planned.points,
            [
                MountPoint {
                    base: "/sb/pods/u1/containers/c".into(),
                    rest: vec!["stage".into(), "app".into()],
                    file: false
                },
                // `/app` is the staged directory, mounted first: `/app/data` is made in it.
                MountPoint {
                    base: stage.join("app"),
                    rest: vec!["data".into()],
                    file: false
                },
                MountPoint {
                    base: "/sb/pods/u1/tmp".into(),
                    rest: vec!["term".into()],
                    file: true
                },
                MountPoint {
                    base: stage.join("app"),
                    rest: vec!["conf".into(), "app.yaml".into()],
                    file: true
                },
            ]
        );
        let app = planned
            .mounts
            .iter()
            .find(|m| m.container == "/app")
            .unwrap();
        assert_eq!(app.source, Source::Bind(stage.join("app")));
        // Right under `/` no directory can be staged.
        let t = MountTable::new([Mount {
            container: "/app.yaml".into(),
            host: "/sb/pods/u1/volumes/cm/app.yaml".into(),
            read_only: true,
        }]);
        assert_eq!(
            layout(&lent(&system), &t, files),
            Err(MountError::FileInTmpfs("/app.yaml".into()))
        );
    }

    #[test]
    fn the_fstab_makes_each_mount_and_escapes_odd_paths() {
        let system = vec!["usr".to_string()];
        let t = MountTable::new([Mount {
            container: "/we#ird\\path".into(),
            host: "/sb/my dir/v".into(),
            read_only: true,
        }]);
        let layout = layout(&lent(&system), &t, |_| false).unwrap();
        let text = fstab(Path::new("/sb/r oot"), &layout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "tmpfs /sb/r\\040oot tmpfs mode=0755,size=256m 0 0",
                "/usr /sb/r\\040oot/usr none rbind,ro,X-mount.mkdir 0 0",
                "proc /sb/r\\040oot/proc proc nosuid,nodev,noexec,X-mount.mkdir 0 0",
            ]
        );
        assert_eq!(
            lines[lines.len() - 1],
            "/sb/my\\040dir/v /sb/r\\040oot/we\\043ird\\134path none rbind,ro,X-mount.mkdir 0 0"
        );
        // Every line has exactly six fields, whatever the paths hold.
        assert!(lines.iter().all(|l| l.split(' ').count() == 6));
    }

    proptest! {
        /// A node path never resolves outside the node's root, whatever symlinks it meets.
        #[test]
        fn node_paths_stay_under_the_root(
            parts in proptest::collection::vec("(\\.\\.|\\.|[a-c]{1,2}|)", 0..8),
            links in proptest::collection::vec(("[a-c]{1,2}", "/?((\\.\\.|[a-c]{1,2})/){0,4}"), 0..6),
        ) {
            let path = format!("/{}", parts.join("/"));
            let root = Path::new("/sb/nodes/node-1");
            let links: HashMap<String, String> = links.into_iter().collect();
            // Any path whose last name is a key is a symlink to its value.
            let read = |p: &Path| {
                p.file_name()
                    .and_then(|n| links.get(n.to_str().unwrap_or_default()))
                    .map(PathBuf::from)
            };
            if let Ok(p) = resolve_in_root(root, &path, read) {
                prop_assert!(p.starts_with(root));
                prop_assert!(!p.components().any(|c| c == Component::ParentDir));
            }
        }

        /// Whatever the paths, the fstab has one six-field line per mount.
        #[test]
        fn fstab_lines_always_have_six_fields(host in "/\\PC{0,20}", container in "/[a-z]\\PC{0,20}") {
            let t = MountTable::new([Mount { container, host: PathBuf::from(host), read_only: false }]);
            if let Ok(layout) = layout(&lent(&[]), &t, |_| false) {
                for line in fstab(Path::new("/r"), &layout).lines() {
                    prop_assert_eq!(line.split(' ').count(), 6, "{}", line);
                }
            }
        }
    }
}
