//! `lpp demo`: the walkthrough runs non-interactively on the embedded sandbox and against a
//! sandbox served over HTTP, with every step's check asserted.

use serde_json::Value;

use crate::support::{TestCluster, lpp_in, run};

fn steps(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn assert_all_steps_passed(stdout: &str, expected: usize) -> Vec<Value> {
    let steps = steps(stdout);
    assert_eq!(steps.len(), expected, "{stdout}");
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["step"], i + 1, "{step}");
        assert_eq!(step["ok"], true, "{step}");
    }
    steps
}

#[test]
fn the_newcomers_command_runs_every_step_on_the_embedded_sandbox() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        lpp_in(home.path()),
        [
            "demo",
            "--sandbox",
            "--yes",
            "-o",
            "json",
            "--timeout",
            "60s",
        ],
        std::time::Duration::from_secs(120),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let steps = assert_all_steps_passed(&out.stdout, 7);
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "install",
            "claim",
            "pod",
            "bound",
            "write",
            "node-file",
            "reclaim"
        ]
    );
    assert_eq!(steps[4]["facts"]["read"], "local-path-test");
    assert_eq!(steps[5]["facts"]["content"], "local-path-test");
    assert!(
        steps[6]["facts"]["directory"]
            .as_str()
            .unwrap()
            .ends_with("absent"),
        "{}",
        steps[6]
    );

    let human = run(
        lpp_in(home.path()),
        ["demo", "--sandbox", "--non-interactive", "--timeout", "60s"],
        std::time::Duration::from_secs(120),
    );
    assert_eq!(human.code, 0, "{human:?}");
    for n in 1..=7 {
        assert!(
            human.stdout.contains(&format!("[{n}/7]")),
            "{}",
            human.stdout
        );
    }
    assert!(human.stdout.contains("kubectl -n "), "{}", human.stdout);
    assert!(human.stdout.contains("STATUS"), "{}", human.stdout);
    assert!(
        human.stdout.contains("provisioner log:"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("    provisioned "),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("    reclaimed pvc-"),
        "{}",
        human.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_leaves_the_claim_and_pod_in_the_named_namespace() {
    let cluster = TestCluster::start().await;
    let out = cluster
        .lpp_with_timeout(
            [
                "demo",
                "--yes",
                "--keep",
                "-n",
                "walk",
                "-o",
                "json",
                "--timeout",
                "60s",
            ],
            std::time::Duration::from_secs(120),
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_all_steps_passed(&out.stdout, 6);
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(cluster.client(), "walk");
    assert!(pods.get_opt("volume-test").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_cluster_the_demo_names_the_context_and_asks_first() {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::Api;
    let cluster = TestCluster::start().await;
    // No terminal and no --yes: refused, nothing created.
    let out = cluster.lpp(["demo", "-o", "json"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("context lpp-sandbox") && out.stderr.contains("--yes"),
        "{}",
        out.stderr
    );
    let classes: Api<StorageClass> = Api::all(cluster.client());
    assert!(classes.get_opt("local-path").await.unwrap().is_none());
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let demo_namespaces: Vec<String> = namespaces
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .filter(|n| n.starts_with("lpp-demo"))
        .collect();
    assert!(demo_namespaces.is_empty(), "{demo_namespaces:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_demo_leaves_no_volume_and_no_directory() {
    use k8s_openapi::api::core::v1::PersistentVolume;
    use kube::api::Api;
    let cluster = TestCluster::start().await;
    let demo = cluster.spawn_lpp(["demo", "--yes", "-o", "json", "--timeout", "60s"]);
    // Wait for step 4 (the PV Bound), then Ctrl-C.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let bound = loop {
        let (stdout, stderr) = demo.output();
        if let Some(step) = steps(&stdout).into_iter().find(|s| s["step"] == 4) {
            break step;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no step 4 within 120s:\n{stdout}\n{stderr}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(bound["kind"], "DemoStep", "{bound}");
    let volume = bound["facts"]["volume"].as_str().unwrap().to_owned();
    let node = bound["facts"]["node"].as_str().unwrap().to_owned();
    let path = bound["facts"]["path"].as_str().unwrap().to_owned();
    assert!(cluster.node_path(&node, &path).exists());

    let out =
        tokio::task::spawn_blocking(move || demo.interrupt(std::time::Duration::from_secs(90)))
            .await
            .unwrap();
    assert_eq!(out.code, 130, "{out:?}");
    assert!(
        out.stderr.contains("its objects were cleaned up") && !out.stderr.contains("except"),
        "{}",
        out.stderr
    );
    // What it says is true: the volume and its directory are gone.
    let volumes: Api<PersistentVolume> = Api::all(cluster.client());
    assert!(volumes.get_opt(&volume).await.unwrap().is_none());
    assert!(!cluster.node_path(&node, &path).exists());
}

#[test]
fn ctrl_c_at_the_enter_prompt_stops_the_demo_at_once() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    // The prompt needs a terminal: `script` gives the demo one, and a Ctrl-C typed into it.
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new("script")
        .args([
            "-qfec",
            &format!("{} demo --sandbox", crate::support::lpp_bin().display()),
            "/dev/null",
        ])
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .env_remove("LPP_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let screen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().unwrap();
    let filled = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            filled
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !screen.lock().unwrap().contains("Press Enter") {
        assert!(
            Instant::now() < deadline,
            "no prompt within 120s:\n{}",
            screen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut keys = child.stdin.take().unwrap();
    keys.write_all(b"\x03").unwrap();
    keys.flush().unwrap();
    let status = crate::support::wait_child(child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(130), "{}", screen.lock().unwrap());
    assert!(
        screen.lock().unwrap().contains("interrupted"),
        "{}",
        screen.lock().unwrap()
    );
}
