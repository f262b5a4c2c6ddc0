//! The inventory protocol: a POSIX shell script a helper pod runs on a node to list what sits
//! directly under each base path, and its strict parser.
//!
//! The script takes the base paths as arguments and prints one record per line:
//!
//! ```text
//! B <i>                                  base path number i (1-based) exists and is listed
//! M <i>                                  base path number i is missing (or is a symlink)
//! E <i> <hex name> <type> <KiB> <mtime> <children>
//! END
//! ```
//!
//! Names are hex-encoded so that any byte of a file name survives the log stream; base paths are
//! named by position, never printed, so that nothing depends on how a path is spelled in the
//! output. `type` is `d` (directory), `f` (file), `l` (symlink, never followed) or `o` (other).
//! The parser refuses anything else, and a listing without `END` (a helper that was cut off) is
//! an error rather than a short, wrong inventory.

/// The script, run as `sh -c SCRIPT inventory BASE...`. Only busybox applets and options. It
/// spells `/` as `$s` so that the script names no absolute path: node agents that vet a
/// container's command for host paths (the sandbox's kubelet does) see only the mounted bases.
pub const SCRIPT: &str = r#"s=$(printf '\057')
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
i=0
for base in "$@"; do
  i=$((i + 1))
  if [ -L "$base" ] || [ ! -d "$base" ]; then echo "M $i"; continue; fi
  echo "B $i"
  for p in "$base"$s* "$base"$s.[!.]* "$base"$s..?*; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    name=${p##*$s}
    size=0; n=0
    if [ -L "$p" ]; then t=l
    elif [ -d "$p" ]; then t=d; size=$(du -sk "$p" 2>&- | head -n 1 | cut -f1); n=$(ls -A "$p" 2>&- | wc -l)
    elif [ -f "$p" ]; then t=f; size=$(du -sk "$p" 2>&- | head -n 1 | cut -f1)
    else t=o; fi
    mtime=$(stat -c %Y "$p" 2>&-)
    n=$(echo $n)
    case "$size" in ''|*[!0-9]*) size=0;; esac
    case "$mtime" in ''|*[!0-9]*) mtime=0;; esac
    case "$n" in ''|*[!0-9]*) n=0;; esac
    echo "E $i $(hex "$name") $t $size $mtime $n"
  done
done
echo END
"#;

/// What kind of entry sits under a base path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Directory,
    File,
    Symlink,
    Other,
}

/// One entry directly under a base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name's bytes, exactly as on disk.
    pub name: Vec<u8>,
    pub kind: EntryKind,
    /// Disk usage in bytes (`du -sk` × 1024); 0 for symlinks.
    pub size_bytes: u64,
    /// Modification time, seconds since the epoch.
    pub modified: i64,
    /// How many entries a directory holds (0 for anything else).
    pub children: u64,
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
    Entries(Vec<Entry>),
}

/// Why a helper's output is not a valid inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    #[error("the listing stops before END: the helper was cut off")]
    Truncated,
    #[error("base path {0} was never reported")]
    Unreported(usize),
}

/// Parses the script's output for `bases` base paths; the result is in the order of the
/// arguments.
pub fn parse(output: &str, bases: usize) -> Result<Vec<Listing>, ParseError> {
    let mut listings: Vec<Option<Listing>> = vec![None; bases];
    let mut ended = false;
    for (n, line) in output.lines().enumerate() {
        let bad = |problem: &str| ParseError::Line {
            line: n + 1,
            problem: problem.to_owned(),
        };
        if ended {
            return Err(bad("text after END"));
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let base = |field: &str| -> Result<usize, ParseError> {
            let i: usize = field
                .parse()
                .map_err(|_| bad("the base path number is not a number"))?;
            if i == 0 || i > bases {
                return Err(bad("no such base path number"));
            }
            Ok(i - 1)
        };
        match fields.as_slice() {
            ["END"] => ended = true,
            ["M", i] => {
                let i = base(i)?;
                if listings[i].replace(Listing::Missing).is_some() {
                    return Err(bad("base path reported twice"));
                }
            }
            ["B", i] => {
                let i = base(i)?;
                if listings[i].replace(Listing::Entries(Vec::new())).is_some() {
                    return Err(bad("base path reported twice"));
                }
            }
            ["E", i, name, kind, kib, mtime, children] => {
                let i = base(i)?;
                let name = decode_name(name).ok_or_else(|| bad("the name is not valid hex"))?;
                if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                    return Err(bad("the name cannot be an entry of a directory"));
                }
                let kind = match *kind {
                    "d" => EntryKind::Directory,
                    "f" => EntryKind::File,
                    "l" => EntryKind::Symlink,
                    "o" => EntryKind::Other,
                    _ => return Err(bad("unknown entry type")),
                };
                let number = |s: &str| s.parse::<u64>().map_err(|_| bad("not a number"));
                let size_bytes = number(kib)?.saturating_mul(1024);
                let modified = i64::try_from(number(mtime)?).map_err(|_| bad("time too large"))?;
                let entry = Entry {
                    name,
                    kind,
                    size_bytes,
                    modified,
                    children: number(children)?,
                };
                match listings[i].as_mut() {
                    Some(Listing::Entries(entries)) => entries.push(entry),
                    _ => return Err(bad("an entry of a base path that was not listed")),
                }
            }
            _ => return Err(bad("not an inventory record")),
        }
    }
    if !ended {
        return Err(ParseError::Truncated);
    }
    listings
        .into_iter()
        .enumerate()
        .map(|(i, l)| l.ok_or(ParseError::Unreported(i + 1)))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_listing_parses() {
        let out = "B 1\nE 1 7076632d31 d 8 1700000000 2\nM 2\nEND\n";
        let listings = parse(out, 2).unwrap();
        let Listing::Entries(entries) = &listings[0] else {
            panic!("{listings:?}")
        };
        assert_eq!(entries[0].name, b"pvc-1");
        assert_eq!(entries[0].size_bytes, 8192);
        assert_eq!(entries[0].children, 2);
        assert_eq!(listings[1], Listing::Missing);
    }

    #[test]
    fn cut_off_or_malformed_output_is_refused() {
        assert_eq!(parse("B 1\n", 1), Err(ParseError::Truncated));
        assert!(parse("B 1\nE 1 2e2e d 0 0 0\nEND\n", 1).is_err(), "..");
        assert!(parse("B 1\nE 1 612f62 d 0 0 0\nEND\n", 1).is_err(), "a/b");
        assert!(parse("B 1\nE 1 6x d 0 0 0\nEND\n", 1).is_err());
        assert!(parse("B 3\nEND\n", 1).is_err());
        assert!(parse("END\n", 1).is_err(), "base 1 never reported");
        assert!(parse("E 1 61 d 0 0 0\nEND\n", 1).is_err(), "entry before B");
        assert!(parse("B 1\nEND\nB 1\n", 1).is_err());
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
        std::os::unix::fs::symlink("/etc", base.join("escape")).unwrap();
        let missing = dir.path().join("nope");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("inventory")
            .arg(&base)
            .arg(&missing)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let listings = parse(&text, 2).unwrap();
        let Listing::Entries(mut entries) = listings[0].clone() else {
            panic!("{text}")
        };
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
        assert_eq!(entries[3].kind, EntryKind::Directory);
        assert_eq!(entries[3].children, 1);
        assert_eq!(entries[1].children, 0);
        assert!(entries[3].modified > 0);
        assert_eq!(listings[1], Listing::Missing);
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC*", bases in 0usize..4) {
            let _ = parse(&text, bases);
        }

        #[test]
        fn any_name_round_trips(name in proptest::collection::vec(any::<u8>(), 1..40)) {
            prop_assume!(name != b"." && name != b".." && !name.contains(&b'/'));
            let out = format!("B 1\nE 1 {} d 1 2 0\nEND\n", hex(&name));
            let listings = parse(&out, 1).unwrap();
            prop_assert_eq!(&listings[0], &Listing::Entries(vec![Entry {
                name, kind: EntryKind::Directory, size_bytes: 1024, modified: 2, children: 0,
            }]));
        }
    }
}
