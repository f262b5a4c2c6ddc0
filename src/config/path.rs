//! Slash-separated path arithmetic with Go's `path.Clean` rules, so that base paths and volume
//! directories compare exactly as upstream compares them.

/// Lexically cleans `path` as Go's `path.Clean` does: repeated slashes collapse, `.` elements go,
/// `..` eats the element before it (and is dropped at the root), trailing slashes go. The empty
/// path becomes `.`.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    // How many leading `..` a relative path keeps: they cannot be eaten.
    let mut kept_dotdot = 0usize;
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => {
                if parts.len() > kept_dotdot {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                    kept_dotdot += 1;
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Joins two paths and cleans the result, as Go's `filepath.Join` does (an empty `tail` adds
/// nothing).
pub fn join(base: &str, tail: &str) -> String {
    if tail.is_empty() {
        return clean(base);
    }
    if base.is_empty() {
        return clean(tail);
    }
    clean(&format!("{base}/{tail}"))
}

/// Whether `path` is local in the sense of Go's `filepath.IsLocal` on Unix: not empty, not
/// absolute, and not escaping its base through `..` once cleaned.
pub fn is_local(path: &str) -> bool {
    if path.is_empty() || path.starts_with('/') {
        return false;
    }
    let cleaned = clean(path);
    !(cleaned == ".." || cleaned.starts_with("../"))
}

/// Whether two absolute paths name overlapping directories once cleaned: equal, or one inside the
/// other. Removing either would remove (part of) the other's data.
pub fn overlaps(a: &str, b: &str) -> bool {
    let a = clean(a);
    let b = clean(b);
    a == b || is_inside(&a, &b) || is_inside(&b, &a)
}

/// A directory for a helper's own mounts that meets none of `paths`: `wanted`, with `_` added
/// until no path is it, inside it or holds it (a node script mounts what it reaches there, and
/// must not hide a base path it also mounts). `/` holds everything and is not counted.
pub fn free_of(wanted: &str, paths: &[String]) -> String {
    let mut dir = wanted.to_owned();
    while paths.iter().any(|p| clean(p) != "/" && overlaps(p, &dir)) {
        dir.push('_');
    }
    dir
}

/// Whether clean path `inner` lies strictly below clean path `outer`.
pub fn is_inside(inner: &str, outer: &str) -> bool {
    if outer == "/" {
        return inner.starts_with('/') && inner != "/";
    }
    inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/'
}

/// Whether `path` has a `..` element, before any cleaning: such a path can climb and come back
/// down (`ns/claim/../../other/claim`), which a prefix check on the text would not see.
pub fn has_parent_element(path: &str) -> bool {
    path.split('/').any(|e| e == "..")
}

/// The first character of `path` that has no place in a directory name lpp makes: a control
/// character (newline, NUL, ...). Such names break scripts and listings.
pub fn control_character(path: &str) -> Option<char> {
    path.chars().find(|c| c.is_control())
}

/// The parent directory and last element of an absolute, clean path: `/a/b/c` → (`/a/b`, `c`).
/// `None` for `/` and for relative paths.
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with('/') || path == "/" {
        return None;
    }
    let cut = path.rfind('/')?;
    let name = &path[cut + 1..];
    if name.is_empty() {
        return None;
    }
    let parent = if cut == 0 { "/" } else { &path[..cut] };
    Some((parent, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_directory_is_made_free_of_the_paths_it_must_not_meet() {
        assert_eq!(free_of("/lpp-gc", &["/opt/lp".into()]), "/lpp-gc");
        assert_eq!(free_of("/lpp-gc", &["/lpp-gc/x".into()]), "/lpp-gc_");
        assert_eq!(
            free_of("/lpp-gc", &["/lpp-gc".into(), "/lpp-gc_".into()]),
            "/lpp-gc__"
        );
        assert_eq!(free_of("/lpp-gc", &["/".into()]), "/lpp-gc");
    }
    use proptest::prelude::*;

    #[test]
    fn clean_follows_go() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("//", "/"),
            ("/opt//x/", "/opt/x"),
            ("/opt/./x/.", "/opt/x"),
            ("/opt/..", "/"),
            ("/..", "/"),
            ("/../a", "/a"),
            ("a/../..", ".."),
            ("../../a", "../../a"),
            ("a/b/../c", "a/c"),
            ("./", "."),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn join_and_split() {
        assert_eq!(join("/opt/x", "pvc-1_ns_a"), "/opt/x/pvc-1_ns_a");
        assert_eq!(join("/opt/x/", "a/../b"), "/opt/x/b");
        assert_eq!(split_parent("/opt/x/v"), Some(("/opt/x", "v")));
        assert_eq!(split_parent("/v"), Some(("/", "v")));
        assert_eq!(split_parent("/"), None);
        assert_eq!(split_parent("v"), None);
    }

    #[test]
    fn local_paths() {
        assert!(is_local("ns/claim/x"));
        assert!(is_local("a/../b"));
        assert!(!is_local(""));
        assert!(!is_local("/abs"));
        assert!(!is_local(".."));
        assert!(!is_local("a/../../b"));
    }

    #[test]
    fn overlapping_paths() {
        assert!(overlaps("/a/b", "/a/b/"));
        assert!(overlaps("/a/b", "/a/b/c"));
        assert!(overlaps("/a/b/c", "/a/b"));
        assert!(overlaps("/a/./b", "/a/b"));
        assert!(!overlaps("/a/b", "/a/bc"));
        assert!(!overlaps("/a/bc", "/a/b"));
        assert!(!overlaps("/a/b", "/a/c"));
        assert!(overlaps("/", "/x"));
        assert!(is_inside("/x", "/"));
        assert!(!is_inside("/", "/"));
        assert!(has_parent_element("a/../b"));
        assert!(has_parent_element(".."));
        assert!(!has_parent_element("a/..b/c"));
        assert_eq!(control_character("a\nb"), Some('\n'));
        assert_eq!(control_character("a\0b"), Some('\0'));
        assert_eq!(control_character("a b/ü"), None);
    }

    proptest! {
        /// Overlap is symmetric, and a path always overlaps what lies below it.
        #[test]
        fn overlap_is_symmetric(a in "/[ab/]{0,6}", b in "/[ab/]{0,6}") {
            prop_assert_eq!(overlaps(&a, &b), overlaps(&b, &a));
            let below = format!("{a}/x");
            prop_assert!(overlaps(&a, &below));
        }

        #[test]
        fn clean_is_idempotent(s in "[a./]{0,12}") {
            let once = clean(&s);
            prop_assert_eq!(clean(&once), once.clone());
            prop_assert!(!once.contains("//"));
        }
    }
}
