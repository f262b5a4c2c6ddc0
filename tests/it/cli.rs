//! The command surface: help, usage errors, exit codes, generated files, the kubectl plugin.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use std::process::Stdio;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::support::{
    TestCluster, closed_pipe, install_basics, lpp, lpp_bin, lpp_in, repo_root, run, wait_child,
    wait_for,
};

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
fn version_reports_the_client_without_a_cluster_and_fails_without_a_server() {
    let out = lpp(["version", "--client", "-o", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["apiVersion"], "lpp.dev/v1alpha1");
    assert_eq!(doc["kind"], "VersionReport");
    assert_eq!(doc["clientVersion"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc.get("serverError").is_none(), "{doc}");

    // Asked for the server's version, with no server: the client's is printed, and exit 1.
    let out = lpp(["version", "-o", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error: no kubeconfig found"),
        "{}",
        out.stderr
    );
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
    assert_eq!(out.code, 1, "{}", out.stderr);
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
        // The script asks lpp itself at every TAB.
        assert!(out.stdout.contains("COMPLETE"), "{shell}: {}", out.stdout);
    }
}

/// What lpp offers for the last word, as the shells' scripts ask it (`COMPLETE=fish`).
fn complete(mut cmd: std::process::Command, words: &[&str]) -> Vec<String> {
    cmd.env("COMPLETE", "fish").args(["--", "lpp"]).args(words);
    let out = run(cmd, Vec::<&str>::new(), Duration::from_secs(30));
    assert_eq!(out.code, 0, "{words:?}: {}", out.stderr);
    out.stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_namespaces_and_nodes_complete_from_the_cluster() {
    let cluster = TestCluster::start().await;
    let words = |w: &'static [&'static str]| {
        let cmd = cluster.lpp_command();
        tokio::task::spawn_blocking(move || complete(cmd, w))
    };
    let commands = words(&[""]).await.unwrap();
    assert!(commands.iter().any(|c| c == "status"), "{commands:?}");
    assert!(
        !commands.iter().any(|c| c == "generate"),
        "the hidden command is offered: {commands:?}"
    );
    let contexts = words(&["status", "--context", ""]).await.unwrap();
    assert_eq!(contexts, ["lpp-sandbox"]);
    let namespaces = words(&["status", "-n", ""]).await.unwrap();
    assert!(namespaces.iter().any(|n| n == "default"), "{namespaces:?}");
    let nodes = words(&["gc", "--node", ""]).await.unwrap();
    assert_eq!(nodes, ["node-1", "node-2"]);
}

#[test]
fn kubectl_lpp_tab_completes_through_the_shipped_script() {
    // kubectl 1.26+ runs kubectl_complete-lpp (next to kubectl-lpp on PATH) with the words
    // after `kubectl lpp`; `kubectl __complete` is what the shells' kubectl scripts call.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(lpp_bin(), dir.path().join("kubectl-lpp")).unwrap();
    std::fs::copy(
        repo_root().join("completions/kubectl_complete-lpp"),
        dir.path().join("kubectl_complete-lpp"),
    )
    .unwrap();
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
    let out = run(kubectl, ["__complete", "lpp", "g"], Duration::from_secs(30));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let offered: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default())
        .collect();
    assert!(offered.contains(&"gc"), "{}", out.stdout);
    assert!(!offered.contains(&"generate"), "{}", out.stdout);
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
        ["lpp", "version", "--client", "-o", "json"],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["clientVersion"]["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn lpp_alone_prints_its_help_on_stdout_as_kubectl_does() {
    let out = lpp(Vec::<&str>::new());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Usage: lpp"), "{}", out.stdout);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

/// A kubeconfig whose only context `ctx` points at `server`.
fn kubeconfig_for(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\n\
             users:\n- name: u\n  user: {{}}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_closed_stdout_is_no_panic() {
    // `lpp manifests | head -1`: the reader goes away; lpp stops quietly, as cat does.
    for args in [
        &["manifests"][..],
        &["completion", "bash"],
        &["--help"],
        &["version", "--client"],
    ] {
        let home = tempfile::tempdir().unwrap();
        let mut child = lpp_in(home.path())
            .args(args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut err) = err {
                let _ = std::io::Read::read_to_string(&mut err, &mut text);
            }
            text
        });
        let status = wait_child(child, Duration::from_secs(30));
        let stderr = reader.join().unwrap();
        assert!(!stderr.contains("panicked"), "lpp {args:?}: {stderr}");
        assert_eq!(status.code(), Some(0), "lpp {args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_its_output_gone_still_releases_the_lease_on_ctrl_c() {
    // `lpp run 2>&1 | tee run.log`, then Ctrl-C: tee is gone before lpp logs its shutdown.
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let runner = cluster.spawn_lpp_with_closed_output(["run"]);
    let leases: Api<Lease> = Api::namespaced(cluster.client(), "local-path-storage");
    let holder = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .filter(|h| !h.is_empty())
    };
    let pid = runner.id();
    let held = wait_for(
        &leases,
        "rancher.io-local-path",
        Duration::from_secs(60),
        |l| holder(l).is_some(),
    )
    .await;
    // `<host>/<pid>-<random>`: the pid, and a random part that keeps containers apart.
    let identity = holder(&held).unwrap();
    assert!(identity.contains(&format!("/{pid}-")), "{identity}");
    let out = tokio::task::spawn_blocking(move || runner.interrupt(Duration::from_secs(40)))
        .await
        .unwrap();
    assert_eq!(out.code, 0, "lpp run ended with {}", out.code);
    let after = leases.get_opt("rancher.io-local-path").await.unwrap();
    assert_eq!(after.as_ref().and_then(holder), None, "{after:?}");
}

#[test]
fn an_unreachable_server_is_named_with_its_cause_and_nothing_else() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let kubeconfig = kubeconfig_for(home.path(), "http://127.0.0.1:1");
    for command in [&["status"][..], &["uninstall", "--dry-run"], &["install"]] {
        let out = run(
            lpp_in(home.path()),
            command
                .iter()
                .copied()
                .chain(["--kubeconfig", kubeconfig.to_str().unwrap()]),
            Duration::from_secs(60),
        );
        assert_eq!(out.code, 1, "lpp {command:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim_end(),
            "error: cannot reach http://127.0.0.1:1 (context ctx): connection refused",
            "lpp {command:?}"
        );
    }

    // A server that accepts the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let kubeconfig = kubeconfig_for(
        home.path(),
        &format!("http://{}", silent.local_addr().unwrap()),
    );
    let out = run(
        lpp_in(home.path()),
        [
            "status",
            "--request-timeout",
            "2",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .trim_end()
            .ends_with("(context ctx): timed out after 2s"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_kubeconfig_entries_are_skipped_as_kubectl_does() {
    let cluster = TestCluster::start().await;
    let missing = cluster.dir().join("no-such-kubeconfig");
    let list = std::env::join_paths([missing.as_path(), cluster.kubeconfig_path()]).unwrap();
    let mut cmd = cluster.lpp_command();
    cmd.env("KUBECONFIG", list);
    let out = tokio::task::spawn_blocking(move || {
        run(
            cmd,
            ["version", "-o", "json", "--request-timeout", "5"],
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(doc["serverVersion"]["gitVersion"].is_string(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_read_as_the_server_wrote_them() {
    let cluster = TestCluster::start().await;
    // A read-only command names what it read, the verb and the server's message.
    let restricted = cluster.kubeconfig_as("jane", &[]);
    let out = cluster
        .lpp(["--kubeconfig", restricted.to_str().unwrap(), "status"])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "error: get namespace local-path-storage: namespaces \"local-path-storage\" is forbidden: User \"jane\" cannot get"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    for rust in ["Status {", "ApiError", "cannot apply", "Some("] {
        assert!(!out.stderr.contains(rust), "{}", out.stderr);
    }

    // A server dry run on a cluster without the namespace: nothing is sent that could only fail.
    let out = cluster.lpp(["install", "--dry-run=server"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("server dry run"), "{}", out.stdout);
    assert!(!out.stderr.contains("Status {"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_prune_lists_what_it_asks_about_and_gc_says_what_it_left_out() {
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    // 25 directories of volumes whose PVs and claims are gone, just made.
    let mut made = Vec::new();
    for i in 0..25 {
        let name = format!("pvc-{i:08x}-0000-4000-8000-000000000000_default_data-{i}");
        let dir = cluster.node_path("node-1", &format!("/opt/local-path-provisioner/{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        made.push(dir);
    }
    // Too young for the default --older-than 24h: not judged, and it says so.
    let out = cluster.lpp(["gc"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("none found older than 24h")
            && out.stdout.contains("25 newer entries were left out")
            && out.stdout.contains("--older-than 0"),
        "{}",
        out.stdout
    );
    // The prompt names the paths: 20 of them and the count of the rest.
    let out = cluster.lpp(["gc", "prune", "--older-than", "0"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    let listed = out
        .stderr
        .lines()
        .filter(|l| l.contains("node-1:/opt/local-path-provisioner/pvc-"))
        .count();
    assert_eq!(listed, 20, "{}", out.stderr);
    assert!(out.stderr.contains("and 5 more"), "{}", out.stderr);
    assert!(out.stderr.contains("add --yes"), "{}", out.stderr);
    assert!(
        made.iter().all(|d| d.exists()),
        "nothing is deleted unconfirmed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_are_counted_on_one_event_whatever_the_claim_name() {
    use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim};
    use kube::api::{Patch, PatchParams, PostParams};
    let cluster = TestCluster::start().await;
    install_basics(&cluster).await;
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), "local-path-storage");
    let failing = serde_json::json!({"data": {"setup": "#!/bin/sh\necho boom\nexit 1\n"}});
    maps.patch(
        "local-path-config",
        &PatchParams::default(),
        &Patch::Merge(&failing),
    )
    .await
    .unwrap();
    // The longest name a claim may have: every event name must still be valid.
    let name = format!("{}-end", "c".repeat(249));
    assert_eq!(name.len(), 253);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "annotations": {"volume.kubernetes.io/selected-node": "node-1"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                 "resources": {"requests": {"storage": "1Mi"}}}
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    let _runner = cluster.spawn_lpp(["run", "--provisioning-retry-count", "3"]);
    let events: Api<Event> = Api::namespaced(cluster.client(), "default");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let failed = loop {
        let listed: Vec<Event> = events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name.as_str()))
            .collect();
        let failed: Vec<Event> = listed
            .iter()
            .filter(|e| e.reason.as_deref() == Some("ProvisioningFailed"))
            .cloned()
            .collect();
        if failed.iter().any(|e| e.count.unwrap_or(1) >= 2) {
            for e in &listed {
                let event_name = e.metadata.name.clone().unwrap_or_default();
                assert!(event_name.len() <= 253, "{event_name}");
            }
            break failed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no repeated ProvisioningFailed within 90s: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // One Event per distinct message, its count growing, not one Event per failure.
    let mut messages: Vec<&str> = failed
        .iter()
        .map(|e| e.message.as_deref().unwrap_or(""))
        .collect();
    let all = messages.len();
    messages.sort_unstable();
    messages.dedup();
    assert_eq!(messages.len(), all, "{failed:?}");
    let counted = failed.iter().find(|e| e.count.unwrap_or(1) >= 2).unwrap();
    // Times have seconds only: the last is never before the first.
    assert!(
        counted.last_timestamp.is_some() && counted.last_timestamp >= counted.first_timestamp,
        "{counted:?}"
    );
    assert!(
        counted.message.as_deref().unwrap_or("").contains("boom"),
        "{counted:?}"
    );
}
