//! Rules of the house that a reader should not have to take on trust.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The sandbox is an independent model of Kubernetes: it never uses lpp's own modules, so a bug
/// cannot hide by being shared between the product and its test double.
#[test]
fn the_sandbox_imports_nothing_of_lpp() {
    let root = crate::support::repo_root().join("src/sandbox");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "found the sandbox's files: {files:?}");
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                let after = &rest[at + "crate::".len()..];
                if !after.starts_with("sandbox") {
                    offences.push(format!("{}:{}: {line}", file.display(), n + 1));
                }
                rest = after;
            }
            if code.contains("lpp::") || code.contains("super::super::super") {
                offences.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the sandbox uses lpp:\n{}",
        offences.join("\n")
    );
}
