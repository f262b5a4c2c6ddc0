//! What a move runs on the nodes, and how it reads the answers. Pure.
//!
//! The data travels as one tar stream: `tar -c` in a session on the source node writes it, lpp
//! reads it and writes it into `tar -x` in a session on the target node. Both sides then list a
//! manifest ([`MANIFEST_SCRIPT`]): every directory, file, symlink and other entry with its mode
//! and owner, every file's size and sha256, every symlink's target. The copy is good when the
//! two manifests are the same lines ([`compare`]). Only POSIX shell, `find`, `stat -c`,
//! `readlink`, `sha256sum` and `tar`: busybox has them all, and so has GNU.

use crate::config::Script;
use crate::provision::VolumeJob;

/// Lists the manifest of directory `$1` (unsorted; [`Manifest::parse`] sorts). Exits non-zero
/// when any part of the listing failed, so an unreadable file never passes for a missing one.
pub const MANIFEST_SCRIPT: &str = r#"cd "$1" || exit 3
export LC_ALL=C
rc=0
find . -type d -exec stat -c 'd %a %u:%g %n' {} + || rc=1
find . -type f -exec stat -c 'f %a %u:%g %s %n' {} + || rc=1
find . -type l -exec sh -c 'for l do printf "l %s -> %s\n" "$l" "$(readlink "$l")" || exit 1; done' lpp-link {} + || rc=1
find . ! -type d ! -type f ! -type l -exec stat -c 'o %a %u:%g %n' {} + || rc=1
find . -type f -exec sha256sum {} + || rc=1
exit $rc
"#;

/// Empties directory `$1` (a partial copy from an interrupted move), keeping the directory.
/// Never through a symlink: what it points to is not the move's to empty.
pub const WIPE_SCRIPT: &str = r#"[ ! -L "$1" ] || { echo "$1 is a symlink: not emptied" >&2; exit 4; }
cd "$1" || exit 3
rm -rf -- * .[!.]* ..?* || exit 1
[ -z "$(ls -A)" ] || { echo "$1 is not empty after removing its entries" >&2; exit 1; }
"#;

/// The argv of `/bin/sh -c SCRIPT lpp-move ARGS...`.
pub fn shell(script: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "lpp-move".to_owned(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv
}

/// Writes the tar stream of everything in `dir` (its own mode and owner included, as `.`).
pub fn tar_out(dir: &str) -> Vec<String> {
    ["tar", "-c", "-f", "-", "-C", dir, "."]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Reads a tar stream into `dir`, owners by number (names differ between images).
pub fn tar_in(dir: &str) -> Vec<String> {
    ["tar", "--numeric-owner", "-x", "-f", "-", "-C", dir]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The argv running a volume's setup or teardown as a helper pod would: the ConfigMap's
/// script (or the configured command) with `-p -s -m -a` and the `VOL_*` environment.
pub fn volume_script(job: &VolumeJob) -> Vec<String> {
    let size = job.size_bytes.to_string();
    let action = job.action.as_str();
    let mut argv = vec!["env".to_owned()];
    for (name, value) in [
        ("VOL_DIR", job.path.as_str()),
        ("VOL_MODE", job.mode.as_str()),
        ("VOL_SIZE_BYTES", size.as_str()),
        ("VOL_USER", job.user.as_str()),
        ("VOL_GROUP", job.group.as_str()),
        ("VOL_PERM", job.perm.as_str()),
    ] {
        argv.push(format!("{name}={value}"));
    }
    match &job.script {
        Script::ConfigMapKey { text, .. } | Script::Inline(text) => {
            argv.extend(["/bin/sh".to_owned(), "-c".to_owned(), text.clone()]);
            argv.push("helper".to_owned());
        }
        Script::Command(command) => argv.push(command.clone()),
    }
    argv.extend([
        "-p".to_owned(),
        job.path.clone(),
        "-s".to_owned(),
        size,
        "-m".to_owned(),
        job.mode.clone(),
        "-a".to_owned(),
        action.to_owned(),
    ]);
    argv
}

/// A directory's manifest, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    lines: Vec<String>,
}

/// What a manifest sums up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Regular files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// A fingerprint of the whole manifest (FNV-1a 64): it holds every file's sha256, so equal
    /// fingerprints mean equal content, modes, owners, links and names.
    pub checksum: u64,
}

impl Summary {
    /// As recorded in the move's annotation: `<files> <bytes> <checksum>`.
    pub fn record(&self) -> String {
        format!("{} {} {:016x}", self.files, self.bytes, self.checksum)
    }

    /// The checksum as printed.
    pub fn checksum_text(&self) -> String {
        format!("{:016x}", self.checksum)
    }
}

impl Manifest {
    /// Reads the output of [`MANIFEST_SCRIPT`].
    pub fn parse(output: &str) -> Manifest {
        let mut lines: Vec<String> = output
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        lines.sort();
        Manifest { lines }
    }

    /// File count, bytes and fingerprint.
    pub fn summary(&self) -> Summary {
        let mut files = 0u64;
        let mut bytes = 0u64;
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for line in &self.lines {
            if let Some(rest) = line.strip_prefix("f ") {
                files += 1;
                bytes += rest
                    .split(' ')
                    .nth(2)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            for b in line.bytes().chain(std::iter::once(b'\n')) {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        Summary {
            files,
            bytes,
            checksum: hash,
        }
    }
}

/// `None` when the copy is the source; else what differs first, in words.
pub fn compare(source: &Manifest, copy: &Manifest) -> Option<String> {
    if source == copy {
        return None;
    }
    // Both are sorted: one walk finds the first line only one side has.
    let (mut missing, mut extra) = (None, None);
    let (mut i, mut j) = (0, 0);
    while (missing.is_none() || extra.is_none()) && (i < source.lines.len() || j < copy.lines.len())
    {
        match (source.lines.get(i), copy.lines.get(j)) {
            (Some(a), Some(b)) if a == b => (i, j) = (i + 1, j + 1),
            (Some(a), Some(b)) if a < b => {
                missing = missing.or(Some(a));
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                extra = extra.or(Some(b));
                j += 1;
            }
            (Some(a), None) => {
                missing = missing.or(Some(a));
                i += 1;
            }
            (None, None) => break,
        }
    }
    let (a, b) = (source.summary(), copy.summary());
    let mut words = format!(
        "the copy differs from the source ({} files, {} bytes there; {} files, {} bytes here)",
        a.files, a.bytes, b.files, b.bytes
    );
    if let Some(line) = missing {
        words.push_str(&format!("; the source has {line:?}"));
    }
    if let Some(line) = extra {
        words.push_str(&format!("; the copy has {line:?}"));
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::Action;
    use proptest::prelude::*;

    const OUT: &str = "f 644 0:0 5 ./a b\nd 755 0:0 .\nl ./link -> a b\n\
        1111111111111111111111111111111111111111111111111111111111111111  ./a b\n\
        f 600 1000:1000 12 ./secret\n";

    #[test]
    fn a_manifest_counts_files_and_bytes_whatever_the_order() {
        let m = Manifest::parse(OUT);
        let s = m.summary();
        assert_eq!((s.files, s.bytes), (2, 17));
        let shuffled: Vec<&str> = OUT.lines().rev().collect();
        assert_eq!(Manifest::parse(&shuffled.join("\n")), m);
        assert_eq!(Manifest::parse(&shuffled.join("\n")).summary(), s);
        assert_eq!(s.record(), format!("2 17 {:016x}", s.checksum));
    }

    #[test]
    fn a_difference_is_named() {
        let source = Manifest::parse(OUT);
        assert_eq!(compare(&source, &source.clone()), None);
        let copy = Manifest::parse(&OUT.replace("f 600 1000:1000", "f 644 1000:1000"));
        let why = compare(&source, &copy).unwrap();
        assert!(why.contains("f 600 1000:1000 12 ./secret"), "{why}");
        assert!(why.contains("f 644 1000:1000 12 ./secret"), "{why}");
        assert_ne!(source.summary().checksum, copy.summary().checksum);
    }

    #[test]
    fn scripts_run_as_a_helper_pod_would() {
        let job = VolumeJob {
            action: Action::Create,
            pv_name: "pvc-x".into(),
            node: Some("n2".into()),
            path: "/opt/lp/pvc-x_ns_c".into(),
            mode: "Filesystem".into(),
            size_bytes: 1024,
            user: "1000".into(),
            group: String::new(),
            perm: "0750".into(),
            script: Script::Inline("mkdir -p \"$VOL_DIR\"".into()),
            shared: false,
        };
        let argv = volume_script(&job);
        assert_eq!(argv[0], "env");
        assert!(argv.contains(&"VOL_DIR=/opt/lp/pvc-x_ns_c".to_owned()));
        assert!(argv.contains(&"VOL_PERM=0750".to_owned()));
        let tail: Vec<&str> = argv[argv.len() - 8..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "-p",
                "/opt/lp/pvc-x_ns_c",
                "-s",
                "1024",
                "-m",
                "Filesystem",
                "-a",
                "create"
            ]
        );
        let command = VolumeJob {
            script: Script::Command("/bin/setup".into()),
            ..job
        };
        assert!(volume_script(&command).contains(&"/bin/setup".to_owned()));
        assert_eq!(shell(WIPE_SCRIPT, &["/d"])[4], "/d");
    }

    #[test]
    fn the_wipe_empties_a_directory_and_never_follows_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("copy");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for name in ["a b", ".hidden", "..twice", "sub/c"] {
            std::fs::write(dir.join(name), "x").unwrap();
        }
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let wipe = |target: &std::path::Path| {
            let argv = shell(WIPE_SCRIPT, &[target.to_str().unwrap()]);
            std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .output()
                .unwrap()
        };
        let refused = wipe(&link);
        assert_eq!(refused.status.code(), Some(4), "{refused:?}");
        assert!(dir.join("a b").exists(), "nothing went through the symlink");
        let wiped = wipe(&dir);
        assert!(wiped.status.success(), "{wiped:?}");
        assert!(dir.is_dir());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_order_never_matters(lines in proptest::collection::vec("\\PC{0,40}", 0..20)) {
            let text = lines.join("\n");
            let m = Manifest::parse(&text);
            let mut reversed = lines.clone();
            reversed.reverse();
            prop_assert_eq!(m.summary(), Manifest::parse(&reversed.join("\n")).summary());
        }
    }
}
