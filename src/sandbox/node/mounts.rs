//! How a container's paths reach directories on this machine (see the module docs of
//! [`crate::sandbox::node`] for the whole rule set). Everything here is pure: it takes the
//! container's mounts and strings and answers with rewritten strings or a refusal.

use std::path::{Path, PathBuf};

/// Paths a container may name without a mount: the programs and devices of this machine, read
/// as the image's own. `/tmp` is deliberately absent: it is mounted to the pod's own directory.
pub const SYSTEM_PATHS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/dev/null",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/fd",
    "/dev/tty",
    "/proc/self",
    "/etc/passwd",
    "/etc/group",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/os-release",
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
    /// A mount at `/` would expose every path of this machine.
    #[error("a volume cannot be mounted at \"/\" in the sandbox")]
    RootMount,
    /// A string names an absolute path that no volume and no system path covers.
    #[error(
        "refusing to run: {path:?} in {place} is under no volume mount of the container and is not a system path; \
         the sandbox runs containers as local processes and will not let them touch this machine's {path:?} \
         (mount a volume at that path, or use /tmp, which is private to the pod)"
    )]
    Unmapped {
        /// The offending path as written in the container's spec.
        path: String,
        /// Where it was found (`command`, `env VOL_DIR`, `file /script/setup`, ...).
        place: String,
    },
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

/// Normalises a container mount path: absolute, no `.`/`..`, no trailing slash, never `/`.
pub fn container_path(path: &str) -> Result<String, MountError> {
    let joined = under_root(Path::new("/"), path)?;
    let s = joined.to_string_lossy().into_owned();
    if s == "/" {
        return Err(MountError::RootMount);
    }
    Ok(s)
}

/// One container path backed by one host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path inside the container, normalised (no trailing slash).
    pub container: String,
    /// The directory (or file) on this machine.
    pub host: PathBuf,
}

/// The mounts of one container, longest container path first so that the most specific mount
/// wins, as it does in a real mount namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable {
    mounts: Vec<Mount>,
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
            b.container
                .len()
                .cmp(&a.container.len())
                .then(a.container.cmp(&b.container))
        });
        MountTable { mounts: all }
    }

    /// The mounts, most specific first.
    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// Maps one container path (e.g. a `workingDir`) to its host path, if a mount covers it.
    pub fn host_path(&self, path: &str) -> Option<PathBuf> {
        for m in &self.mounts {
            if path == m.container {
                return Some(m.host.clone());
            }
            if let Some(rest) = path.strip_prefix(&m.container)
                && let Some(rest) = rest.strip_prefix('/')
            {
                return Some(m.host.join(rest));
            }
        }
        None
    }

    /// Rewrites every container path in `text` that starts at a path boundary and lies under a
    /// mount into its host path. An absolute path under no mount must be a system path, or the
    /// whole string is refused: `place` names where the string came from, for the message.
    pub fn to_host(&self, text: &str, place: &str) -> Result<String, MountError> {
        let mut out = String::with_capacity(text.len());
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < text.len() {
            let c = bytes[i];
            if c == b'/' && at_boundary(bytes, i) {
                let rest = &text[i..];
                let token_len = rest
                    .bytes()
                    .take_while(|b| *b == b'/' || is_name_byte(*b))
                    .count();
                let token = &rest[..token_len];
                if let Some((m, len)) = self.match_at(rest) {
                    // `/data/../..` would leave the mount through its host directory.
                    if climbs_out(&token[len..]) {
                        return Err(MountError::Unmapped {
                            path: token.to_string(),
                            place: place.to_string(),
                        });
                    }
                    out.push_str(&m.host.to_string_lossy());
                    i += len;
                    continue;
                }
                if !is_system_path(token) {
                    return Err(MountError::Unmapped {
                        path: token.to_string(),
                        place: place.to_string(),
                    });
                }
                out.push_str(token);
                i += token_len;
                continue;
            }
            // Copy one whole UTF-8 character.
            let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + ch_len]);
            i += ch_len;
        }
        Ok(out)
    }

    /// The reverse of [`MountTable::to_host`] for output: host paths of mounts become the
    /// container paths again, so logs and termination messages read as in a real cluster.
    pub fn to_container(&self, text: &str) -> String {
        // Longest host path first, so a mount nested in another's host directory wins.
        let mut by_host: Vec<(String, &str)> = self
            .mounts
            .iter()
            .map(|m| (m.host.to_string_lossy().into_owned(), m.container.as_str()))
            .collect();
        by_host.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let mut out = String::with_capacity(text.len());
        let bytes = text.as_bytes();
        let mut i = 0;
        'scan: while i < text.len() {
            if bytes[i] == b'/' {
                for (host, container) in &by_host {
                    if text[i..].starts_with(host.as_str()) {
                        let end = i + host.len();
                        if end == text.len() || !is_name_byte(bytes[end]) {
                            out.push_str(container);
                            i = end;
                            continue 'scan;
                        }
                    }
                }
            }
            let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + ch_len]);
            i += ch_len;
        }
        out
    }

    fn match_at(&self, rest: &str) -> Option<(&Mount, usize)> {
        for m in &self.mounts {
            if let Some(after) = rest.strip_prefix(m.container.as_str())
                && after.bytes().next().is_none_or(|b| !is_name_byte(b))
            {
                return Some((m, m.container.len()));
            }
        }
        None
    }
}

/// Whether `path` (a token starting with `/`) is one of this machine's programs or devices.
pub fn is_system_path(path: &str) -> bool {
    SYSTEM_PATHS.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/') && !rest.split('/').any(|s| s == ".."))
    })
}

/// Whether a path remainder (`/x/../..`) climbs above where it starts.
fn climbs_out(rest: &str) -> bool {
    let mut depth: i64 = 0;
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// Bytes that continue a file name; anything else ends a path.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'.' | b'_' | b'-' | b'+' | b'@' | b'%' | b',' | b'~' | b'#'
        )
        || b >= 0x80
}

/// Whether a `/` at `i` starts a path: at the start, after whitespace, a quote, `=`, a shell
/// operator, or a `:` (a `PATH`-like list) unless it is the `://` of a URL. `${DIR}/x` and
/// `a/b` are relative to something else and are not paths of their own.
fn at_boundary(bytes: &[u8], i: usize) -> bool {
    if i == 0 {
        return true;
    }
    match bytes[i - 1] {
        b':' => bytes.get(i + 1) != Some(&b'/'),
        b if b.is_ascii_whitespace() => true,
        b'\'' | b'"' | b'=' | b'(' | b';' | b'|' | b'&' | b'<' | b'>' | b'`' | b',' => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table() -> MountTable {
        MountTable::new([
            Mount {
                container: "/data".into(),
                host: "/sb/nodes/node-1/opt/lpp/pvc-1".into(),
            },
            Mount {
                container: "/opt/local-path-provisioner".into(),
                host: "/sb/nodes/node-1/opt/local-path-provisioner".into(),
            },
            Mount {
                container: "/tmp".into(),
                host: "/sb/pods/u1/tmp".into(),
            },
        ])
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
    }

    #[test]
    fn rewrites_paths_at_boundaries_only() {
        let t = table();
        assert_eq!(
            t.to_host("echo local-path-test > /data/test", "command")
                .unwrap(),
            "echo local-path-test > /sb/nodes/node-1/opt/lpp/pvc-1/test"
        );
        assert_eq!(
            t.to_host("/opt/local-path-provisioner/pvc-1_default_c", "env VOL_DIR")
                .unwrap(),
            "/sb/nodes/node-1/opt/local-path-provisioner/pvc-1_default_c"
        );
        assert_eq!(
            t.to_host("-p=/data", "args").unwrap(),
            "-p=/sb/nodes/node-1/opt/lpp/pvc-1"
        );
        // A relative path and a variable-prefixed path are left alone.
        assert_eq!(
            t.to_host("a/data ${D}/data", "args").unwrap(),
            "a/data ${D}/data"
        );
        // System paths pass through untouched.
        assert_eq!(
            t.to_host("/bin/sh -c 'ls /usr/bin'", "command").unwrap(),
            "/bin/sh -c 'ls /usr/bin'"
        );
        // URLs are not paths.
        assert_eq!(t.to_host("http://x/y", "env U").unwrap(), "http://x/y");
    }

    #[test]
    fn a_sibling_with_a_shared_prefix_is_not_the_mount() {
        let t = table();
        let err = t.to_host("rm -rf /data-old", "command").unwrap_err();
        assert_eq!(
            err,
            MountError::Unmapped {
                path: "/data-old".into(),
                place: "command".into()
            }
        );
    }

    #[test]
    fn unmapped_paths_are_refused_with_their_place() {
        let t = table();
        for bad in [
            "rm -rf /",
            "rm -rf /opt",
            "rm -rf /data/../..",
            "ls /tmp/x/../../home",
            "cat /etc/shadow",
            "ls /bin/../home",
            "x=/home/me",
        ] {
            let err = t.to_host(bad, "args").unwrap_err();
            assert!(matches!(err, MountError::Unmapped { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains("args"));
        }
    }

    #[test]
    fn output_is_mapped_back() {
        let t = table();
        assert_eq!(
            t.to_container("mkdir: /sb/nodes/node-1/opt/local-path-provisioner/pvc-9: denied\n"),
            "mkdir: /opt/local-path-provisioner/pvc-9: denied\n"
        );
        assert_eq!(t.to_container("/sb/pods/u1/tmpfoo"), "/sb/pods/u1/tmpfoo");
        assert_eq!(
            t.host_path("/data/x/y"),
            Some(PathBuf::from("/sb/nodes/node-1/opt/lpp/pvc-1/x/y"))
        );
        assert_eq!(t.host_path("/database"), None);
    }

    proptest! {
        /// A node path never resolves outside the node's root.
        #[test]
        fn node_paths_stay_under_the_root(parts in proptest::collection::vec("(\\.\\.|\\.|[a-z]{1,3}|)", 0..8)) {
            let path = format!("/{}", parts.join("/"));
            let root = Path::new("/sb/nodes/node-1");
            if let Ok(p) = under_root(root, &path) {
                prop_assert!(p.starts_with(root));
                prop_assert!(!p.components().any(|c| c == std::path::Component::ParentDir));
            }
        }

        /// Whatever a command says, every absolute path left in the rewritten string is a host path
        /// of a mount or a system path.
        #[test]
        fn rewritten_strings_only_name_mounts_or_system_paths(
            words in proptest::collection::vec("(/data|/tmp|/opt/local-path-provisioner|/bin|/usr|/etc|/home|/|\\.\\.|x|-)(/[a-z.]{0,4}){0,3}", 0..6)
        ) {
            let t = table();
            let text = words.join(" ");
            if let Ok(out) = t.to_host(&text, "args") {
                for w in out.split(' ') {
                    if w.starts_with('/') {
                        let ok = t.mounts().iter().any(|m| Path::new(w).starts_with(&m.host))
                            || is_system_path(w);
                        prop_assert!(ok, "{w} in {out}");
                        prop_assert!(!w.split('/').any(|s| s == ".." ) || !is_system_path(w));
                    }
                }
            }
        }

        /// The rewrite never panics on arbitrary text.
        #[test]
        fn rewrite_never_panics(text in "\\PC{0,40}") {
            let t = table();
            let _ = t.to_host(&text, "args");
            let _ = t.to_container(&text);
        }
    }
}
