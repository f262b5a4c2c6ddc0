//! The command surface: help, usage errors, exit codes, generated files, the kubectl plugin.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::{lpp, lpp_bin, lpp_in, repo_root, run};

const COMMANDS: &[&[&str]] = &[
    &[],
    &["install"],
    &["manifests"],
    &["uninstall"],
    &["status"],
    &["run"],
    &["gc"],
    &["gc", "prune"],
    &["demo"],
    &["sandbox"],
    &["sandbox", "up"],
    &["completion"],
    &["version"],
];

#[test]
fn every_command_has_real_help() {
    for command in COMMANDS {
        let mut args: Vec<&str> = command.to_vec();
        args.push("--help");
        let out = lpp(&args);
        assert_eq!(out.code, 0, "lpp {args:?}: {}", out.stderr);
        assert!(
            out.stdout.contains("Usage: lpp"),
            "lpp {args:?}:\n{}",
            out.stdout
        );
        // Real help: a description above the usage line, and the global flags.
        let description = out.stdout.split("Usage:").next().unwrap_or_default();
        assert!(
            description.trim().len() > 20,
            "lpp {args:?} has no description"
        );
        for flag in [
            "--kubeconfig",
            "--context",
            "--namespace",
            "--output",
            "--yes",
            "--color",
        ] {
            assert!(
                out.stdout.contains(flag),
                "lpp {args:?} --help lacks {flag}"
            );
        }
    }
}

#[test]
fn a_bad_flag_is_a_usage_error_naming_it() {
    let out = lpp(["status", "--no-such-flag"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--no-such-flag"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    let out = lpp(["gc", "--older-than", "soon"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("`soon` is not a duration"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_output_format_the_command_lacks_is_a_usage_error() {
    let out = lpp(["manifests", "-o", "wide"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("use one of: yaml, json"),
        "{}",
        out.stderr
    );

    let out = lpp(["run", "-o", "json"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("does not apply to `lpp run`"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_invalid_namespace_is_a_usage_error() {
    let out = lpp(["status", "-n", "Not_A_Namespace"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("not a valid namespace name"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_malformed_node_path_is_a_usage_error() {
    let out = lpp(["manifests", "--node-path", "node-1"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("must be NODE=DIR"), "{}", out.stderr);
}

#[test]
fn version_reports_the_client_without_a_cluster() {
    let out = lpp(["version", "-o", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["clientVersion"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["clientVersion"]["target"]
            .as_str()
            .unwrap()
            .contains("linux")
    );
    assert!(doc["clientVersion"]["gitCommit"].is_string());
    assert!(
        doc["serverError"]
            .as_str()
            .unwrap()
            .contains("no kubeconfig found")
    );
}

#[test]
fn an_unknown_context_is_named_with_the_ones_available() {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\n\
         contexts:\n- name: real\n  context:\n    cluster: c\n    user: u\ncurrent-context: real\n\
         users:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    let out = run(
        lpp_in(home.path()),
        [
            "version",
            "-o",
            "json",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--context",
            "nope",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let error = doc["serverError"].as_str().unwrap();
    assert!(
        error.contains("context `nope`") && error.contains("real"),
        "{error}"
    );
}

#[test]
fn completion_scripts_are_printed_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = lpp(["completion", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains("lpp"), "{shell}");
        assert!(
            out.stdout.contains("prune"),
            "{shell} completes subcommands"
        );
    }
}

fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in ["completions", "man"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{sub}/{}", entry.file_name().to_string_lossy());
            files.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    files
}

#[test]
fn committed_completions_and_man_pages_are_fresh() {
    let fresh = tempfile::tempdir().unwrap();
    let out = lpp(["generate", fresh.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let generated = files_under(fresh.path());
    let committed = files_under(&repo_root());
    assert!(generated.contains_key("man/lpp-gc-prune.1"));
    assert!(generated.contains_key("completions/lpp.bash"));
    let stale: Vec<&String> = generated
        .keys()
        .chain(committed.keys())
        .filter(|name| generated.get(*name) != committed.get(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `cargo run -- generate .` and commit"
    );
}

#[test]
fn as_a_kubectl_plugin_help_says_kubectl_lpp() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-lpp");
    std::os::unix::fs::symlink(lpp_bin(), &plugin).unwrap();
    let out = run(
        std::process::Command::new(&plugin),
        ["gc", "--help"],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Usage: kubectl lpp gc"),
        "{}",
        out.stdout
    );

    // The real kubectl finds the plugin on PATH and hands it the arguments.
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut kubectl = std::process::Command::new("kubectl");
    kubectl
        .env("PATH", path)
        .env("HOME", dir.path())
        .env_remove("KUBECONFIG");
    let out = run(
        kubectl,
        ["lpp", "version", "-o", "json"],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["clientVersion"]["version"], env!("CARGO_PKG_VERSION"));
}
