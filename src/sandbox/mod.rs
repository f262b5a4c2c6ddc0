//! The embedded cluster: an independent model of Kubernetes (API server, PV controller, scheduler,
//! kubelet) whose nodes are local directories. It never imports lpp's own modules, so a bug cannot
//! hide by being shared between the code and its test double.
//!
//! # Library API
//!
//! ```text
//! let sandbox = Sandbox::start(SandboxOptions { dir, nodes: 2, ..SandboxOptions::default() }).await?;
//! let client = sandbox.client();                 // in-process kube::Client, no socket
//! let addr = sandbox.serve(0).await?;            // HTTP on 127.0.0.1:<free port>
//! std::fs::write(path, sandbox.kubeconfig(addr))?;
//! sandbox.node_root("node-1");                   // <dir>/nodes/node-1
//! sandbox.set_faults(Faults { error_rate: 0.1, ..Faults::default() });
//! sandbox.request_counts();                      // {"create persistentvolumes": 3, ...}
//! sandbox.shutdown().await;                      // or drop the last clone
//! ```
//!
//! Tests use it through `tests/it/support.rs`'s `TestCluster` (HTTP client from a kubeconfig
//! file, `client_as(user, groups)` for RBAC checks, `node_path`, `lpp(args)`, `spawn_lpp`,
//! `kubectl(args)`, `wait_for`, `wait_gone`).
//!
//! # The API server
//!
//! - [`resources`]: the served kinds (namespaces, nodes, pods, PVs, PVCs, configmaps, secrets,
//!   serviceaccounts, events in both groups, storageclasses, csidrivers (defaulted as v1.33
//!   does; the name a DNS-1123 subdomain, so `rancher.io/local-path` cannot have one),
//!   csistoragecapacities, leases, deployments, daemonsets, controllerrevisions and the RBAC
//!   kinds) drive routing and discovery (`/api`, `/apis`, `/api/v1`,
//!   `/apis/<group>/<version>`, `/version` reports [`api::GIT_VERSION`]).
//! - [`store`]: objects as JSON, one global resourceVersion bumped by every write (a write that
//!   changes nothing bumps nothing), a ring of the last 50,000 changes for watches that resume;
//!   older resourceVersions get a watch `ERROR` event with a 410 `Expired` Status.
//! - [`api`]: get, list (label and field selectors on any dotted path, `limit`/`continue`),
//!   watch (initial `ADDED` events from "0" or no resourceVersion, resume from a
//!   resourceVersion, bookmarks every 5 s when asked, `sendInitialEvents`, selector transitions
//!   as `ADDED`/`DELETED`), create (generateName, uid, creationTimestamp, defaults, strict typed
//!   decoding → 400, validation → 422, 409 AlreadyExists), update (409 Conflict on a stale
//!   resourceVersion; status only through `/status` for kinds with that subresource), patch
//!   (JSON, merge, strategic merge, server-side apply with `managedFields` and 409 conflicts
//!   unless `force`), delete (finalizers only mark `deletionTimestamp`; the object goes when the
//!   last finalizer is removed; scheduled pods are marked with their grace period for the
//!   kubelet to finish), deleting a namespace deletes its objects, and `dryRun=All`.
//! - Every write is decoded through its k8s-openapi type and re-encoded (nulls and unknown
//!   fields dropped as the real server drops them; `fieldValidation=Strict` refuses unknown
//!   fields), defaulted ([`objects::apply_defaults`]) and validated; non-apply writes record an
//!   `Update` managedFields entry for their field manager (query or User-Agent).
//! - [`auth`]: the kubeconfig's user is a cluster admin (`system:masters`); bearer tokens from
//!   `serviceaccounts/<name>/token` authenticate as that service account; `Impersonate-User`/
//!   `Impersonate-Group` are honoured for admins; everyone else is judged by RBAC over the stored
//!   Roles, ClusterRoles and bindings (403 in the apiserver's words), also through
//!   `selfsubjectaccessreviews`/`subjectaccessreviews`; pods in namespaces labelled
//!   `pod-security.kubernetes.io/enforce: baseline|restricted` are admitted by Pod Security.
//! - [`admission`]: after validation, `PersistentVolumeClaimResize` refuses (403) growing a
//!   claim that is not Bound or whose class lacks `allowVolumeExpansion: true`. Claim updates
//!   are validated as v1.33 does with RecoverVolumeExpansionFailure on: the spec is immutable
//!   except `volumeName` (once), `volumeAttributesClassName` and, when Bound, the storage
//!   request, which may come down only while it stays above `status.capacity`; the resize
//!   status fields (`allocatedResources`, `allocatedResourceStatuses`, conditions such as
//!   `Resizing`/`FileSystemResizePending`/`ControllerResizeError`/`NodeResizeError`) are
//!   written through `/status` and their keys and states validated.
//! - [`events`]: `events.k8s.io/v1` Events are stored as core Events and converted both ways.
//! - [`openapi`], [`table`], [`exec`], [`protobuf`]: what kubectl needs: `/openapi/v3` with
//!   server-side field validation, Tables for `get`/`get -w`, exec over WebSocket
//!   (`v5`/`v4.channel.k8s.io`), and the protobuf bodies of `kubectl create <kind>` and
//!   `kubectl auth can-i`.
//! - [`server`]: HTTP/1.1 on 127.0.0.1, and the same service in-process over in-memory pipes.
//! - Garbage collection: when an object goes, objects whose only owner it was
//!   (`ownerReferences`) are deleted too, at once (background propagation).
//! - Workloads: DaemonSets are validated (selector required, matching the template, immutable;
//!   template `restartPolicy: Always`), get `metadata.generation` bumped by spec changes and the
//!   `deprecated.daemonset.template.generation` annotation bumped by template changes, and are
//!   run by the DaemonSet controller (see [`node`]); `kubectl rollout status|history|undo`
//!   work on them.
//! - Not modelled: the Deployment controller (Deployments are stored, never rolled out),
//!   foreground/orphan propagation, admission webhooks, CRDs, and persistence (state lives in
//!   memory; node directories stay on disk).
//! - Disks ([`SandboxOptions::disks`], `lpp sandbox up --disk`): node paths declared as
//!   filesystems of a given size (and type, and mount point or not), their directories made
//!   at start; a container whose mounts reach one runs [`node::disks`]' `df` and `stat`
//!   stand-ins (first on its `PATH`), so that `df -P -k`, `df -T` and `stat -f` there answer
//!   from the declaration: the declared size, what is really stored there as used, the rest
//!   available. Nothing enforces the size. The Node objects' `status.capacity` stays as a
//!   kubelet reports it (`ephemeral-storage` is the kubelet's root filesystem, not these).
//! - Nodes: `node-1` … `node-N`, labelled `kubernetes.io/hostname=<name>` (or the hostname
//!   [`SandboxOptions::hostnames`] gives the node: on clouds the label often differs from the
//!   node name, and node affinity matches the label, never the name), Ready, with capacity;
//!   node `N`'s filesystem root is `<dir>/nodes/N` (see [`node`] for how container paths map).
//! - Faults ([`Faults`]): a rate of 500 and 429 answers on `/api*` paths, watch streams dropped
//!   at random, latency added to every request.

pub mod admission;
pub mod api;
pub mod auth;
pub mod events;
pub mod exec;
pub mod node;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use api::ApiServer;

/// Fault injection, off by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Fraction of requests answered 500.
    pub error_rate: f64,
    /// Fraction of requests answered 429.
    pub throttle_rate: f64,
    /// Chance per event that a watch stream is dropped.
    pub watch_drop_rate: f64,
    /// Latency added to every request.
    pub latency: Duration,
}

/// `lpp sandbox up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Directory the sandbox keeps its files in; the kubeconfig goes there by default.
    pub dir: PathBuf,
    /// How many nodes (`node-1`, `node-2`, ...).
    pub nodes: u32,
    /// The port on 127.0.0.1 the sandbox serves its API on.
    pub port: u16,
    /// Where to write the kubeconfig; `None` writes `kubeconfig` in `dir`.
    pub write_kubeconfig: Option<PathBuf>,
    /// Faults the sandbox's API server injects.
    pub faults: Faults,
    /// Declared disks (`--disk`).
    pub disks: Vec<node::disks::Disk>,
}

/// How to start a [`Sandbox`]. `SandboxOptions { dir, ..SandboxOptions::default() }` gives
/// two nodes, no faults, and every node's hostname label equal to its name.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The sandbox directory; node roots are `<dir>/nodes/<node>`.
    pub dir: PathBuf,
    /// How many nodes (`node-1` … `node-N`).
    pub nodes: u32,
    /// Fault injection.
    pub faults: Faults,
    /// Node name → the value of its `kubernetes.io/hostname` label (and `Hostname` address),
    /// for nodes whose hostname differs from their name, as on clouds where a node
    /// `ip-10-0-0-2.ec2.internal` is labelled `ip-10-0-0-2`. Nodes not named keep their name.
    pub hostnames: BTreeMap<String, String>,
    /// Node paths that stand for filesystems of a given size (see [`node::disks`]); their
    /// directories are made at start.
    pub disks: Vec<node::disks::Disk>,
    /// How long each node's kubelet takes to make a pod's sandbox before its containers start
    /// (zero: at once). A real node takes about a second or more (network namespace, pause
    /// container, CNI); benchmarks set it to show what a pod per volume costs there.
    pub pod_startup: std::time::Duration,
}

impl Default for SandboxOptions {
    fn default() -> SandboxOptions {
        SandboxOptions {
            dir: PathBuf::new(),
            nodes: 2,
            faults: Faults::default(),
            hostnames: BTreeMap::new(),
            disks: Vec::new(),
            pod_startup: std::time::Duration::ZERO,
        }
    }
}

/// Why the sandbox cannot start or serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sandbox directory cannot be created or written.
    #[error("cannot use {path} as the sandbox directory: {source}; pass a writable --dir")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The port cannot be bound.
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source}; pick another --port or 0 for any free port"
    )]
    Bind {
        /// The port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig cannot be written.
    #[error("cannot write the kubeconfig to {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bad option.
    #[error("{0}")]
    Options(String),
    /// Seeding the cluster's own objects failed.
    #[error("cannot create the sandbox's {what}: {source}")]
    Seed {
        /// What was being created.
        what: String,
        /// Why.
        #[source]
        source: status::ApiError,
    },
    /// Waiting for Ctrl-C or SIGTERM failed.
    #[error("cannot wait for a signal: {0}")]
    Signal(#[source] std::io::Error),
}

struct Inner {
    api: Arc<ApiServer>,
    dir: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.api.stop.cancel();
        if let Some(agents) = self.api.agents.get() {
            let agents = agents.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { agents.shutdown().await });
            }
        }
    }
}

/// A running sandbox cluster. Cheap to clone; stops when the last clone is dropped or on
/// [`Sandbox::shutdown`].
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// The Node object of sandbox node `name`, whose hostname (label and address) is `hostname`.
fn node_object(name: &str, hostname: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": hostname, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64"}},
        "spec": {},
        "status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": objects::now(), "lastTransitionTime": objects::now()}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": hostname}],
            "nodeInfo": {"kubeletVersion": api::GIT_VERSION, "kubeProxyVersion": api::GIT_VERSION,
                         "containerRuntimeVersion": "lpp-sandbox://1", "operatingSystem": "linux",
                         "architecture": "amd64", "osImage": "lpp sandbox", "kernelVersion": "",
                         "machineID": "", "systemUUID": "", "bootID": ""}
        }
    })
}

impl Sandbox {
    /// Starts the API server with its namespaces and nodes, and the node agents (PV
    /// controller, scheduler, kubelets). Must be called inside a tokio runtime.
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, Error> {
        if opts.nodes == 0 {
            return Err(Error::Options(
                "a sandbox needs at least one node; pass --nodes 1 or more".into(),
            ));
        }
        let names: Vec<String> = (1..=opts.nodes).map(|i| format!("node-{i}")).collect();
        check_hostnames(&opts.hostnames, &names).map_err(Error::Options)?;
        node::disks::check(&opts.disks, &names).map_err(Error::Options)?;
        let dir = absolute(&opts.dir).map_err(|source| Error::Dir {
            path: opts.dir.clone(),
            source,
        })?;
        let api = Arc::new(ApiServer::new(opts.faults));
        let seed = |kind: &str, object: serde_json::Value| {
            let (group, version, plural) = match kind {
                "Namespace" => ("", "v1", "namespaces"),
                _ => ("", "v1", "nodes"),
            };
            let resource = resources::find(group, version, plural)
                .ok_or_else(|| Error::Options(format!("no {kind} resource")))?;
            api.seed(resource, object.clone())
                .map_err(|source| Error::Seed {
                    what: format!("{kind} {}", object["metadata"]["name"]),
                    source,
                })
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            seed("Namespace", json!({"metadata": {"name": ns}}))?;
        }
        for name in &names {
            let root = dir.join("nodes").join(name);
            std::fs::create_dir_all(&root).map_err(|source| Error::Dir {
                path: root.clone(),
                source,
            })?;
            let hostname = opts.hostnames.get(name).unwrap_or(name);
            seed("Node", node_object(name, hostname))?;
        }
        for disk in &opts.disks {
            let root = dir
                .join("nodes")
                .join(&disk.node)
                .join(disk.path.trim_start_matches('/'));
            std::fs::create_dir_all(&root).map_err(|source| Error::Dir {
                path: root.clone(),
                source,
            })?;
        }
        let sandbox = Sandbox {
            inner: Arc::new(Inner { api, dir }),
        };
        let agents = node::NodeAgents::start_with_disks(
            sandbox.client(),
            sandbox.inner.dir.clone(),
            opts.disks,
            opts.pod_startup,
        );
        let _ = sandbox.inner.api.agents.set(agents);
        Ok(sandbox)
    }

    /// A `kube::Client` served in-process (no socket), with full HTTP semantics.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(
            server::InProcess::new(Arc::clone(&self.inner.api)),
            "default",
        )
    }

    /// Serves HTTP on 127.0.0.1:`port` (0: any free port) until shutdown; returns the address.
    pub async fn serve(&self, port: u16) -> Result<SocketAddr, Error> {
        let (listener, addr) = server::bind(port)
            .await
            .map_err(|source| Error::Bind { port, source })?;
        server::serve_listener(Arc::clone(&self.inner.api), listener);
        Ok(addr)
    }

    /// A kubeconfig for `addr` (cluster, context and user all named `lpp-sandbox`), usable by
    /// kube-rs and kubectl.
    pub fn kubeconfig(&self, addr: SocketAddr) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lpp-sandbox\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: lpp-sandbox\n  context:\n    cluster: lpp-sandbox\n    user: lpp-sandbox\n    namespace: default\ncurrent-context: lpp-sandbox\nusers:\n- name: lpp-sandbox\n  user: {{}}\npreferences: {{}}\n"
        )
    }

    /// The sandbox directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Node `node`'s filesystem root, `<dir>/nodes/<node>`.
    pub fn node_root(&self, node: &str) -> PathBuf {
        self.inner.dir.join("nodes").join(node)
    }

    /// The declared disks (see [`node::disks`]).
    pub fn disks(&self) -> &[node::disks::Disk] {
        self.node_agents().map_or(&[], node::NodeAgents::disks)
    }

    /// The PV controller, scheduler and kubelets of this sandbox (for in-process logs and exec,
    /// as `lpp demo --sandbox` needs); `None` only while `start` is still wiring them.
    pub fn node_agents(&self) -> Option<&node::NodeAgents> {
        self.inner.api.agents.get()
    }

    /// How many API requests were served since start (or the last reset), per
    /// `"<verb> <resource>"` (`"create persistentvolumes"`, `"patch pods/status"`,
    /// `"watch storageclasses.storage.k8s.io"`), counting every client including the node
    /// agents. For measuring API calls per volume.
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner
            .api
            .requests
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Starts counting requests from zero.
    pub fn reset_request_counts(&self) {
        if let Ok(mut c) = self.inner.api.requests.lock() {
            c.clear();
        }
    }

    /// Replaces the fault injection settings.
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut f) = self.inner.api.faults.lock() {
            *f = faults;
        }
    }

    /// Stops serving, ends watches, stops the controllers and kills every container process.
    pub async fn shutdown(self) {
        if let Some(agents) = self.inner.api.agents.get() {
            agents.shutdown().await;
        }
        self.inner.api.stop.cancel();
    }
}

/// Refuses hostnames for nodes that do not exist and values a label may not hold (the
/// apiserver's label value rule: at most 63 characters, alphanumerics with `-`, `_` and `.`
/// inside), so that a typo is said at start instead of leaving a node unreachable by affinity.
fn check_hostnames(hostnames: &BTreeMap<String, String>, nodes: &[String]) -> Result<(), String> {
    for (node, hostname) in hostnames {
        if !nodes.contains(node) {
            return Err(format!(
                "a hostname is given for {node}, but the sandbox's nodes are node-1 … node-{}",
                nodes.len()
            ));
        }
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let valid = !hostname.is_empty()
            && hostname.len() <= 63
            && hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && edge_ok(hostname.chars().next())
            && edge_ok(hostname.chars().last());
        if !valid {
            return Err(format!(
                "the hostname {hostname:?} of {node} is not a valid label value: at most 63 characters, alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
            ));
        }
    }
    Ok(())
}

fn absolute(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let dir = std::fs::canonicalize(dir)?;
    let probe = dir.join(".lpp-sandbox-write-test");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)?;
    Ok(dir)
}

/// `lpp sandbox up`: starts a sandbox, serves it on 127.0.0.1, writes the kubeconfig once
/// ready, and runs until Ctrl-C or SIGTERM; then kills every container process.
pub async fn up(opts: UpOptions) -> Result<(), Error> {
    let sandbox = Sandbox::start(SandboxOptions {
        dir: opts.dir.clone(),
        nodes: opts.nodes,
        faults: opts.faults.clone(),
        disks: opts.disks.clone(),
        ..SandboxOptions::default()
    })
    .await?;
    let addr = sandbox.serve(opts.port).await?;
    let path = opts
        .write_kubeconfig
        .clone()
        .unwrap_or_else(|| sandbox.dir().join("kubeconfig"));
    let tmp = path.with_extension("tmp-lpp");
    // Written then renamed, so that whoever waits for the file never reads half of it.
    std::fs::write(&tmp, sandbox.kubeconfig(addr))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| Error::Kubeconfig {
            path: path.clone(),
            source,
        })?;
    // A closed stderr (`lpp sandbox up 2>&1 | head`) must not panic: write, and ignore failures.
    say(&format!(
        "lpp sandbox: serving http://{addr} with {} node(s) under {}\nkubeconfig written to {}\n  export KUBECONFIG={}\n  kubectl get nodes\nPress Ctrl-C to stop.",
        opts.nodes,
        sandbox.node_root("").display(),
        path.display(),
        path.display()
    ));
    wait_for_signal().await?;
    say("lpp sandbox: stopping");
    sandbox.shutdown().await;
    Ok(())
}

/// One line on stderr, ignoring a closed or failing stream.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

async fn wait_for_signal() -> Result<(), Error> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Signal)?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(Error::Signal),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_name_existing_nodes_and_valid_label_values() {
        let nodes = vec!["node-1".to_string(), "node-2".to_string()];
        let given =
            |node: &str, hostname: &str| BTreeMap::from([(node.to_string(), hostname.to_string())]);
        assert_eq!(
            check_hostnames(&given("node-2", "ip-10-0-0-2"), &nodes),
            Ok(())
        );
        assert_eq!(
            check_hostnames(&given("node-2", "ip-10-0-0-2.ec2.internal"), &nodes),
            Ok(())
        );
        let err = check_hostnames(&given("node-3", "x"), &nodes).expect_err("no node-3");
        assert!(err.contains("node-1 … node-2"), "{err}");
        for bad in ["", "-x", "x_", "a/b", &"a".repeat(64)] {
            assert!(
                check_hostnames(&given("node-1", bad), &nodes).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_node_object_carries_its_hostname_in_label_and_address() {
        let node = node_object("node-2", "ip-10-0-0-2");
        assert_eq!(node["metadata"]["name"], "node-2");
        assert_eq!(
            node["metadata"]["labels"]["kubernetes.io/hostname"],
            "ip-10-0-0-2"
        );
        assert_eq!(
            node["status"]["addresses"][1],
            json!({"type": "Hostname", "address": "ip-10-0-0-2"})
        );
    }
}
