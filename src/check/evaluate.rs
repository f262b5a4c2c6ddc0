//! The checks as pure functions: facts in (gathered by [`super::gather`]), [`Check`]s out, each
//! with what it saw and, when something is wrong, what to do. No clock, no server: the time is
//! an argument, and every function is tested with plain values.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::probe::{Kind, Looked, Written};
use super::{Check, Group, Status};
use crate::config::ExecutorKind;
use crate::gc::classify::Findings;
use crate::gc::scan::NodeScan;
use crate::install::StatusReport;
use crate::provision::volume::DEFAULT_NODE_AFFINITY_KEY;
use crate::ui;

/// The annotation that makes a StorageClass the default.
pub const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// The beta spelling, still honoured by the API server.
pub const DEFAULT_CLASS_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// Pod Security's enforce label.
pub const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// The annotation k3s's addon controller puts on what it deploys, naming the addon.
pub const K3S_OWNER: &str = "objectset.rio.cattle.io/owner-name";
/// k3s's addon that ships upstream's provisioner.
pub const K3S_LOCAL_STORAGE: &str = "local-storage";
/// Free space below which a base path is worth a look.
pub const LOW_FREE_BYTES: u64 = 1 << 30;

fn check(group: Group, name: &str, status: Status, seen: String) -> Check {
    Check {
        group,
        name: name.to_owned(),
        node: None,
        path: None,
        status,
        seen,
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }

    fn on(mut self, node: &str) -> Check {
        self.node = Some(node.to_owned());
        self
    }

    fn at(mut self, path: &str) -> Check {
        self.path = Some(path.to_owned());
        self
    }
}

/// `1 volume`, `2 volumes`.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A list as people write it: `a, b and c`.
fn listed(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

// ---------------------------------------------------------------------------------------------
// cluster

/// Where the cluster is and whether it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The kubeconfig context.
    pub context: String,
    /// The API server's URL.
    pub server: String,
    /// The server's `gitVersion`, or why it did not answer.
    pub version: Result<String, String>,
}

/// `cluster/reachable`.
pub fn reachable(reach: &Reach) -> Check {
    match &reach.version {
        Ok(version) => check(
            Group::Cluster,
            "reachable",
            Status::Ok,
            format!(
                "Kubernetes {version} at {} (context {})",
                reach.server, reach.context
            ),
        ),
        Err(why) => check(Group::Cluster, "reachable", Status::Failed, why.clone()).fix(
            "check --context and --kubeconfig, and that the API server is up (`kubectl version`)",
        ),
    }
}

/// What the SelfSubjectAccessReviews answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Asked `asked` permissions; these were refused.
    Reviewed {
        /// How many permissions were asked.
        asked: usize,
        /// The refused ones, as people say them (`create pods in local-path-storage`).
        missing: Vec<String>,
    },
    /// The review API could not be used.
    Unknown(String),
}

/// A permission check named `name`: Ok with `may` (told how many permissions were asked) when
/// none is refused; else `refused`, saying `may_not` and the refused ones, with `fix`. A review
/// that could not be asked is worth a look, whatever the check.
fn permissions(
    access: &Access,
    name: &str,
    may: impl FnOnce(usize) -> String,
    refused: Status,
    may_not: &str,
    fix: impl Into<String>,
) -> Check {
    match access {
        Access::Unknown(why) => check(
            Group::Cluster,
            name,
            Status::Warning,
            format!("cannot ask the server what this account may do: {why}"),
        )
        .fix("`kubectl auth can-i --list` shows what it may do"),
        Access::Reviewed { asked, missing } if missing.is_empty() => {
            check(Group::Cluster, name, Status::Ok, may(*asked))
        }
        Access::Reviewed { missing, .. } => check(
            Group::Cluster,
            name,
            refused,
            format!("{may_not} {}", listed(missing)),
        )
        .fix(fix),
    }
}

/// `cluster/permissions-install`: what `lpp install` applies. Missing ones fail before an
/// install (`pre`); after one they only matter for the next install.
pub fn install_permissions(access: &Access, pre: bool) -> Check {
    permissions(
        access,
        "permissions-install",
        |asked| format!("this account may apply the install set ({asked} permissions)"),
        if pre { Status::Failed } else { Status::Warning },
        "`lpp install` would be refused: this account may not",
        "install with a kubeconfig whose user is a cluster admin (`kubectl auth can-i '*' '*'`)",
    )
}

/// `cluster/permissions-run`: what `lpp run` needs. Missing ones fail when nobody provisions
/// (someone has to run it); when a provisioner holds the Lease, or before an install, they only
/// mean this account cannot run it itself.
pub fn run_permissions(access: &Access, namespace: &str, needed_now: bool) -> Check {
    permissions(
        access,
        "permissions-run",
        |asked| format!("this account may run `lpp run` ({asked} permissions)"),
        if needed_now {
            Status::Failed
        } else {
            Status::Warning
        },
        "`lpp run` would stop at start: this account may not",
        format!(
            "bind the Role and ClusterRole {} that `lpp install` creates \
             (namespace {namespace}) to this account, or run the provisioner in the cluster \
             (`lpp install --in-cluster`: its service account has them)",
            crate::upstream::ROLE
        ),
    )
}

/// `cluster/permissions-expand`: what `lpp run` needs to grow volumes. Without it, `lpp run`
/// still provisions and reclaims, so a missing one is only worth a look.
pub fn expansion_permissions(access: &Access) -> Check {
    permissions(
        access,
        "permissions-expand",
        |_| "this account may resize volumes (`lpp run` grows claims that ask for more)".into(),
        Status::Warning,
        "`lpp run` with this account leaves volume expansion off: it may not",
        "`lpp install` grants it to the provisioner's role; bind that role to this account",
    )
}

// ---------------------------------------------------------------------------------------------
// install

/// The provisioner namespace: its labels, or `None` when it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceFacts {
    /// The namespace's name.
    pub name: String,
    /// Its labels, or `None` when it does not exist.
    pub labels: Option<BTreeMap<String, String>>,
}

/// `install/namespace` and `install/pod-security`.
pub fn namespace(ns: &NamespaceFacts, pre: bool) -> Vec<Check> {
    let name = &ns.name;
    let Some(labels) = &ns.labels else {
        return vec![if pre {
            check(
                Group::Install,
                "namespace",
                Status::Ok,
                format!(
                    "{name} does not exist yet: `lpp install` creates it with Pod Security \
                     enforce=privileged (helper pods mount hostPath volumes)"
                ),
            )
        } else {
            check(
                Group::Install,
                "namespace",
                Status::Failed,
                format!("namespace {name} does not exist: nothing is installed there"),
            )
            .fix("`lpp install` (or -n for the namespace it went to)")
        }];
    };
    let by = match labels.get("app.kubernetes.io/version") {
        Some(v)
            if labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str)
                == Some("lpp") =>
        {
            format!("installed by lpp {v}")
        }
        _ => "not installed by lpp".to_owned(),
    };
    let mut out = vec![check(
        Group::Install,
        "namespace",
        Status::Ok,
        format!("{name} exists ({by})"),
    )];
    let label_fix = format!("kubectl label --overwrite namespace {name} {ENFORCE}=privileged");
    out.push(match labels.get(ENFORCE).map(String::as_str) {
        Some("privileged") => check(
            Group::Install,
            "pod-security",
            Status::Ok,
            "enforce=privileged: helper pods, which mount hostPath volumes, are admitted".into(),
        ),
        None => check(
            Group::Install,
            "pod-security",
            Status::Warning,
            format!(
                "{name} has no {ENFORCE} label: helper pods (hostPath volumes) depend on the \
                 cluster's default level, privileged unless the API server's admission \
                 configuration says otherwise"
            ),
        )
        .fix(label_fix),
        Some(level) if pre => check(
            Group::Install,
            "pod-security",
            Status::Warning,
            format!(
                "enforce={level} refuses helper pods (they mount hostPath volumes): `lpp install` \
                 sets enforce=privileged on {name}"
            ),
        )
        .fix(format!(
            "let `lpp install` relabel it, or install into another namespace (-n); by hand: {label_fix}"
        )),
        Some(level) => check(
            Group::Install,
            "pod-security",
            Status::Failed,
            format!(
                "enforce={level} refuses every helper pod: they mount hostPath volumes, which only \
                 the privileged level admits"
            ),
        )
        .fix(label_fix),
    });
    out
}

/// What the ConfigMap holds, as far as the checks need it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigFacts {
    /// There is no ConfigMap.
    Missing,
    /// It cannot be used, and why (the message names the key).
    Invalid(String),
    /// It is valid.
    Valid(ValidConfig),
    /// It could not be read.
    Unreadable(String),
}

/// A usable configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig {
    /// Every base path of every node and class.
    pub base_paths: Vec<String>,
    /// Which executor `lpp run` uses (`executor` in config.json).
    pub executor: ExecutorKind,
    /// The helper pod's image, from `helperPod.yaml`.
    pub image: String,
    /// The helper pod template's tolerations (lpp adds the disk-pressure one when it has none).
    pub tolerations: Vec<Toleration>,
    /// Whether a class uses a shared filesystem (its helpers go through the scheduler).
    pub shared: bool,
    /// The classes `storageClassConfigs` serves, or `None`: all.
    pub served: Option<Vec<String>>,
}

/// `install/config`.
pub fn config(config: &ConfigFacts, namespace: &str, config_map: &str) -> Check {
    let edit = format!(
        "kubectl -n {namespace} edit configmap {config_map} (`lpp manifests` shows the defaults)"
    );
    match config {
        ConfigFacts::Missing => check(
            Group::Install,
            "config",
            Status::Failed,
            format!("ConfigMap {namespace}/{config_map} does not exist"),
        )
        .fix("`lpp install`"),
        ConfigFacts::Unreadable(why) => check(
            Group::Install,
            "config",
            Status::Warning,
            format!("cannot read ConfigMap {namespace}/{config_map}: {why}"),
        )
        .fix("run `lpp check` with an account that may read it (a cluster admin's)"),
        ConfigFacts::Invalid(why) => check(
            Group::Install,
            "config",
            Status::Failed,
            format!("ConfigMap {namespace}/{config_map} cannot be used: {why}"),
        )
        .fix(edit),
        ConfigFacts::Valid(c) => check(
            Group::Install,
            "config",
            Status::Ok,
            format!(
                "valid: base paths {}; executor {}; helper image {}",
                if c.base_paths.is_empty() {
                    "none".to_owned()
                } else {
                    c.base_paths.join(", ")
                },
                c.executor.as_str(),
                c.image
            ),
        ),
    }
}

/// One StorageClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassFacts {
    /// The class's name.
    pub name: String,
    /// The provisioner it names.
    pub provisioner: String,
    /// Whether it is annotated as the default class.
    pub default: bool,
    /// `volumeBindingMode` (`Immediate` when unset).
    pub binding_mode: String,
    /// `reclaimPolicy` (`Delete` when unset).
    pub reclaim_policy: String,
    /// `parameters.nodeAffinityKey`.
    pub node_affinity_key: Option<String>,
    /// Its creation time, to tell the newest default.
    pub created: Option<jiff::Timestamp>,
    /// Deployed by k3s's local-storage addon.
    pub k3s: bool,
}

/// `install/classes`: the classes of `provisioner`, and whether the config serves them.
pub fn classes(classes: &[ClassFacts], provisioner: &str, config: &ConfigFacts) -> Vec<Check> {
    let ours: Vec<&ClassFacts> = classes
        .iter()
        .filter(|c| c.provisioner == provisioner)
        .collect();
    if ours.is_empty() {
        return vec![
            check(
                Group::Install,
                "classes",
                Status::Failed,
                format!(
                    "no StorageClass names provisioner {provisioner}: claims have no class to use"
                ),
            )
            .fix("`lpp install`"),
        ];
    }
    let shown: Vec<String> = ours
        .iter()
        .map(|c| {
            format!(
                "{} ({}, {}{})",
                c.name,
                c.binding_mode,
                c.reclaim_policy,
                if c.default { ", default" } else { "" }
            )
        })
        .collect();
    let mut out = vec![check(
        Group::Install,
        "classes",
        Status::Ok,
        format!("{provisioner} serves {}", listed(&shown)),
    )];
    if let ConfigFacts::Valid(ValidConfig {
        served: Some(served),
        ..
    }) = config
    {
        for c in ours.iter().filter(|c| !served.contains(&c.name)) {
            out.push(
                check(
                    Group::Install,
                    "classes",
                    Status::Warning,
                    format!(
                        "StorageClass {} is not in config.json's storageClassConfigs ({}): its claims are refused",
                        c.name,
                        listed(served)
                    ),
                )
                .fix("add it to storageClassConfigs in config.json, or delete the class"),
            );
        }
    }
    out
}

/// `install/default-class`: at most one default StorageClass.
pub fn default_class(classes: &[ClassFacts], provisioner: &str) -> Check {
    let mut defaults: Vec<&ClassFacts> = classes.iter().filter(|c| c.default).collect();
    match defaults.len() {
        0 => check(
            Group::Install,
            "default-class",
            Status::Ok,
            "no default StorageClass: claims name their class".into(),
        ),
        1 => check(
            Group::Install,
            "default-class",
            Status::Ok,
            format!("{} is the default StorageClass", defaults[0].name),
        ),
        _ => {
            // Keep ours when one of them is ours, else the newest (the one the API server uses).
            defaults.sort_by(|a, b| {
                (a.provisioner == provisioner, a.created)
                    .cmp(&(b.provisioner == provisioner, b.created))
            });
            let keep = defaults.pop().map(|c| c.name.clone()).unwrap_or_default();
            let others: Vec<String> = defaults.iter().map(|c| c.name.clone()).collect();
            let mut names = others.clone();
            names.push(keep.clone());
            names.sort();
            check(
                Group::Install,
                "default-class",
                Status::Failed,
                format!(
                    "{} default StorageClasses ({}): a claim without a class gets whichever is newest",
                    names.len(),
                    listed(&names)
                ),
            )
            .fix(format!(
                "keep one, e.g. {keep}: {}",
                others
                    .iter()
                    .map(|o| format!("kubectl annotate storageclass {o} {DEFAULT_CLASS}-"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        }
    }
}

/// A Deployment that may run a provisioner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentFacts {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub name: String,
    /// `spec.replicas` (1 when unset).
    pub replicas: i32,
    /// The provisioner name it serves, when it runs upstream's provisioner or `lpp run`.
    pub serves: Option<String>,
    /// The image that says so.
    pub image: String,
    /// lpp's own in-cluster Deployment in the provisioner namespace.
    pub ours: bool,
    /// Deployed by k3s's local-storage addon.
    pub k3s: bool,
}

/// `install/other-provisioners`: Deployments other than lpp's own serving the same name.
pub fn other_provisioners(
    deployments: &Result<Vec<DeploymentFacts>, String>,
    provisioner: &str,
) -> Vec<Check> {
    const NAME: &str = "other-provisioners";
    let deployments = match deployments {
        Ok(d) => d,
        Err(why) => {
            return vec![
                check(
                    Group::Install,
                    NAME,
                    Status::Warning,
                    format!("cannot look for other provisioners: {why}"),
                )
                .fix("run `lpp check` with an account that may list deployments in all namespaces"),
            ];
        }
    };
    let others: Vec<&DeploymentFacts> = deployments
        .iter()
        .filter(|d| !d.ours && d.serves.as_deref() == Some(provisioner))
        .collect();
    let active: Vec<&&DeploymentFacts> = others.iter().filter(|d| d.replicas > 0).collect();
    if active.is_empty() {
        let idle: Vec<String> = others
            .iter()
            .map(|d| format!("{}/{}", d.namespace, d.name))
            .collect();
        return vec![check(
            Group::Install,
            NAME,
            Status::Ok,
            if idle.is_empty() {
                format!("no other Deployment serves {provisioner}")
            } else {
                format!("{} serves {provisioner} but is scaled to 0", listed(&idle))
            },
        )];
    }
    active
        .iter()
        .map(|d| {
            let mut fix = format!(
                "scale it to 0: kubectl -n {} scale deployment {} --replicas=0",
                d.namespace, d.name
            );
            if d.k3s {
                fix.push_str(
                    "; k3s scales it up again on restart unless its servers run with --disable local-storage",
                );
            }
            check(
                Group::Install,
                NAME,
                Status::Failed,
                format!(
                    "Deployment {}/{} ({}, {} {}) also serves {provisioner}: two provisioners act on the same claims",
                    d.namespace,
                    d.name,
                    d.image,
                    d.replicas,
                    if d.replicas == 1 { "replica" } else { "replicas" }
                ),
            )
            .fix(fix)
        })
        .collect()
}

/// `install/k3s-local-storage`: k3s ships upstream's provisioner and class as its
/// `local-storage` addon, and restores them when they are deleted.
pub fn k3s_local_storage(
    k3s: bool,
    classes: &[ClassFacts],
    deployments: &Result<Vec<DeploymentFacts>, String>,
) -> Check {
    const NAME: &str = "k3s-local-storage";
    let mut owned: Vec<String> = classes
        .iter()
        .filter(|c| c.k3s)
        .map(|c| format!("StorageClass {}", c.name))
        .collect();
    if let Ok(deployments) = deployments {
        owned.extend(
            deployments
                .iter()
                .filter(|d| d.k3s)
                .map(|d| format!("Deployment {}/{}", d.namespace, d.name)),
        );
    }
    match (owned.is_empty(), k3s) {
        (false, _) => check(
            Group::Install,
            NAME,
            Status::Warning,
            format!(
                "k3s's bundled local-storage addon deploys {}: it serves the same provisioner and \
                 k3s restores whatever of it is deleted or changed",
                listed(&owned)
            ),
        )
        .fix(
            "start the k3s servers with --disable local-storage (or `disable: [local-storage]` in \
             /etc/rancher/k3s/config.yaml), then `lpp install`",
        ),
        (true, true) => check(
            Group::Install,
            NAME,
            Status::Ok,
            "k3s, with its bundled local-storage addon disabled".into(),
        ),
        (true, false) => check(
            Group::Install,
            NAME,
            Status::Ok,
            "not k3s: no bundled local-storage".into(),
        ),
    }
}

/// `install/takeover` (with `--pre`): what `lpp install` would stop and ask about.
pub fn takeover(concerns: &Result<Vec<String>, String>) -> Vec<Check> {
    match concerns {
        Err(why) => vec![check(
            Group::Install,
            "takeover",
            Status::Warning,
            format!("cannot look at what install would take over: {why}"),
        )],
        Ok(c) if c.is_empty() => vec![check(
            Group::Install,
            "takeover",
            Status::Ok,
            "nothing to take over: `lpp install` applies without asking".into(),
        )],
        Ok(c) => c
            .iter()
            .map(|concern| {
                check(
                    Group::Install,
                    "takeover",
                    Status::Warning,
                    format!("`lpp install` would ask first: {concern}"),
                )
                .fix("settle it as said, or confirm when `lpp install` asks (--yes in scripts)")
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// provisioning

/// How long a claim with a node (or an Immediate class) may stay Pending without a failure
/// before it counts as stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(120);

/// `provisioning/*` from what `lpp status` gathers.
pub fn provisioning(report: &StatusReport, client_version: &str, namespace: &str) -> Vec<Check> {
    let now = report.now;
    let mut out = Vec::new();
    let lease = &report.lease;
    let start = "start one: `lpp run` here, or `lpp install --in-cluster` for a Deployment";
    out.push(match (&lease.holder, lease.held) {
        (Some(holder), true) => check(
            Group::Provisioning,
            "lease",
            Status::Ok,
            format!(
                "{holder}{} holds Lease {namespace}/{} (renewed {} ago)",
                lease
                    .holder_version
                    .as_ref()
                    .map(|v| format!(" (lpp {v})"))
                    .unwrap_or_default(),
                lease.name,
                lease
                    .renew_time
                    .map_or("-".to_owned(), |t| ui::age_since(t, now))
            ),
        ),
        (Some(holder), false) => check(
            Group::Provisioning,
            "lease",
            Status::Failed,
            format!(
                "{holder} stopped renewing Lease {namespace}/{} {} ago: no provisioner is running",
                lease.name,
                lease
                    .renew_time
                    .map_or("long".to_owned(), |t| ui::age_since(t, now))
            ),
        )
        .fix(format!(
            "{start}; an in-cluster one says why in `kubectl -n {namespace} logs deployment/local-path-provisioner`"
        )),
        (None, _) => check(
            Group::Provisioning,
            "lease",
            Status::Failed,
            format!(
                "nobody holds Lease {namespace}/{}: no provisioner is running",
                lease.name
            ),
        )
        .fix(start),
    });
    out.push(match &report.installed_version {
        None => check(
            Group::Provisioning,
            "version",
            Status::Ok,
            format!("not installed by lpp (this is lpp {client_version})"),
        ),
        Some(v) if v == client_version => check(
            Group::Provisioning,
            "version",
            Status::Ok,
            format!("installed by lpp {v}, as this client"),
        ),
        Some(v) => check(
            Group::Provisioning,
            "version",
            Status::Warning,
            format!("installed by lpp {v}; this client is lpp {client_version}"),
        )
        .fix("`lpp install --dry-run=server` shows what an upgrade changes; `lpp install` applies it"),
    });
    // The running provisioner's own version, when it says it (lpp labels its Lease).
    if let (Some(running), true) = (&lease.holder_version, lease.held)
        && running != client_version
    {
        out.push(
            check(
                Group::Provisioning,
                "version",
                Status::Warning,
                format!(
                    "the running provisioner is lpp {running}; this client is lpp {client_version}"
                ),
            )
            .fix(format!(
                "run the same version: restart `lpp run` with this binary, or `lpp install --in-cluster` \
                 and `kubectl -n {namespace} rollout status deployment/{}`",
                crate::upstream::DEPLOYMENT
            )),
        );
    }
    let immediate: Vec<&str> = report
        .classes
        .iter()
        .filter(|c| c.binding_mode == "Immediate")
        .map(|c| c.name.as_str())
        .collect();
    let mut stuck = 0;
    for p in &report.pending_claims {
        let age = p
            .created
            .map(|t| Duration::try_from(now.duration_since(t)).unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::ZERO);
        let failing = p
            .reason
            .starts_with(crate::provision::events::PROVISIONING_FAILED);
        let asked = p.selected_node.is_some() || immediate.contains(&p.class.as_str());
        if !(failing || (asked && age >= STUCK_AFTER)) {
            continue;
        }
        stuck += 1;
        let on = p
            .selected_node
            .as_ref()
            .map(|n| format!(" on node {n}"))
            .unwrap_or_default();
        out.push(
            check(
                Group::Provisioning,
                "claim",
                Status::Failed,
                format!(
                    "{}/{} is Pending{on} for {}: {}",
                    p.namespace,
                    p.name,
                    ui::age(age),
                    p.reason
                ),
            )
            .fix(format!(
                "fix what the event says; `kubectl -n {} describe pvc {}` and `lpp status` follow it",
                p.namespace, p.name
            )),
        );
    }
    if stuck == 0 {
        let waiting = report.pending_claims.len();
        out.push(check(
            Group::Provisioning,
            "claims",
            Status::Ok,
            if waiting == 0 {
                "no claim is stuck".to_owned()
            } else {
                format!(
                    "no claim is stuck ({waiting} Pending, waiting for a consumer or in progress)"
                )
            },
        ));
    }
    let mut troubled = 0;
    for v in report
        .volumes
        .iter()
        .filter(|v| v.phase == "Released" || v.phase == "Failed")
    {
        troubled += 1;
        let warning = report
            .warnings
            .iter()
            .filter(|w| w.object == format!("PersistentVolume/{}", v.name))
            .max_by_key(|w| w.last_seen)
            .map(|w| format!("{}: {}", w.reason, w.message));
        let place = format!("{}:{}", v.node, v.path);
        let c = match (v.phase.as_str(), v.reclaim_policy.as_str(), warning) {
            ("Released", "Retain", _) => check(
                Group::Provisioning,
                "volume",
                Status::Warning,
                format!(
                    "{} is Released and kept (Retain); its data stays at {place}",
                    v.name
                ),
            )
            .fix(format!(
                "when the data is no longer needed: kubectl delete pv {} (then `lpp gc` finds the directory)",
                v.name
            )),
            (_, _, Some(why)) => check(
                Group::Provisioning,
                "volume",
                Status::Failed,
                format!("{} is {} ({place}): {why}", v.name, v.phase),
            )
            .fix(format!(
                "fix what the event says; `kubectl describe pv {}` follows it",
                v.name
            )),
            (phase, _, None) => check(
                Group::Provisioning,
                "volume",
                Status::Warning,
                format!("{} is {phase} ({place}) and waits for its reclaim", v.name),
            )
            .fix("a running provisioner reclaims it (see `lease`); `lpp status` follows it"),
        };
        out.push(c);
    }
    if troubled == 0 {
        out.push(check(
            Group::Provisioning,
            "volumes",
            Status::Ok,
            format!(
                "{}, none Released or Failed",
                counted(report.volumes.len(), "volume", "volumes")
            ),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// nodes

/// One node as the API server shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    /// The node's name.
    pub name: String,
    /// `Ok(kubelet version)` when Ready, else why not.
    pub ready: Result<String, String>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// The node's labels.
    pub labels: BTreeMap<String, String>,
}

/// What the helper side of the config says, for the node checks.
#[derive(Debug, Clone, PartialEq)]
pub struct HelperFacts {
    /// The helper template's tolerations.
    pub tolerations: Vec<Toleration>,
    /// Which executor runs scripts on nodes.
    pub executor: ExecutorKind,
    /// Whether a class uses a shared filesystem (its helpers go through the scheduler).
    pub shared: bool,
    /// `(class, nodeAffinityKey)` of the classes that set one.
    pub affinity_keys: Vec<(String, String)>,
}

/// Whether `toleration` tolerates `taint`, as the scheduler decides it.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        _ => {
            key == taint.key
                && toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

fn taint_text(t: &Taint) -> String {
    match t.value.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => format!("{}={v}:{}", t.key, t.effect),
        None => format!("{}:{}", t.key, t.effect),
    }
}

/// `nodes/ready`, `nodes/taints` and `nodes/hostname` of one node.
pub fn node(
    node: &NodeFacts,
    helper: &HelperFacts,
    namespace: &str,
    config_map: &str,
) -> Vec<Check> {
    let name = &node.name;
    let mut out = vec![match &node.ready {
        Ok(kubelet) => check(
            Group::Nodes,
            "ready",
            Status::Ok,
            format!("Ready (kubelet {kubelet})"),
        ),
        Err(why) => check(Group::Nodes, "ready", Status::Failed, why.clone()).fix(format!(
            "`kubectl describe node {name}`; no volume is made or reclaimed on it until it is Ready"
        )),
    }
    .on(name)];
    let untolerated: Vec<&Taint> = node
        .taints
        .iter()
        .filter(|t| !helper.tolerations.iter().any(|tol| tolerates(tol, t)))
        .collect();
    let no_execute: Vec<String> = untolerated
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .map(|t| taint_text(t))
        .collect();
    // Helper pods are bound by nodeName, which NoSchedule does not stop; the agent DaemonSet
    // and shared-filesystem helpers go through the scheduler, which it does.
    let scheduled = helper.executor == ExecutorKind::Agent || helper.shared;
    let no_schedule: Vec<String> = untolerated
        .iter()
        .filter(|t| t.effect == "NoSchedule" && scheduled)
        .map(|t| taint_text(t))
        .collect();
    let toleration_fix = |taints: &[&Taint], effect: &str| {
        let items: Vec<String> = taints
            .iter()
            .filter(|t| t.effect == effect)
            .map(|t| format!("{{key: {}, operator: Exists, effect: {effect}}}", t.key))
            .collect();
        format!(
            "add to spec.tolerations in helperPod.yaml (kubectl -n {namespace} edit configmap {config_map}): {}",
            items.join(", ")
        )
    };
    out.push(
        if !no_execute.is_empty() {
            check(
                Group::Nodes,
                "taints",
                Status::Failed,
                format!(
                    "{} keeps helper pods off: the kubelet refuses pods that do not tolerate a NoExecute taint, and the helper template does not",
                    listed(&no_execute)
                ),
            )
            .fix(toleration_fix(&untolerated, "NoExecute"))
        } else if !no_schedule.is_empty() {
            let who = if helper.executor == ExecutorKind::Agent {
                "the node agent (a DaemonSet pod) is not placed here, so scripts run in helper pods"
            } else {
                "shared-filesystem helpers are not scheduled here"
            };
            check(
                Group::Nodes,
                "taints",
                Status::Warning,
                format!("{}: {who}", listed(&no_schedule)),
            )
            .fix(toleration_fix(&untolerated, "NoSchedule"))
        } else if node.taints.is_empty() {
            check(Group::Nodes, "taints", Status::Ok, "no taints".into())
        } else {
            let all: Vec<String> = node.taints.iter().map(taint_text).collect();
            check(
                Group::Nodes,
                "taints",
                Status::Ok,
                format!("{}: none keeps helper pods off", listed(&all)),
            )
        }
        .on(name),
    );
    let hostname = node.labels.get(DEFAULT_NODE_AFFINITY_KEY);
    let mut hostname_checks = Vec::new();
    match hostname {
        None => hostname_checks.push(
            check(
                Group::Nodes,
                "hostname",
                Status::Failed,
                format!("no {DEFAULT_NODE_AFFINITY_KEY} label: volumes cannot be pinned to this node, so its claims are refused"),
            )
            .fix(format!("kubectl label node {name} {DEFAULT_NODE_AFFINITY_KEY}={name}")),
        ),
        Some(value) if value != name => hostname_checks.push(
            check(
                Group::Nodes,
                "hostname",
                Status::Warning,
                format!(
                    "{DEFAULT_NODE_AFFINITY_KEY}={value} differs from the node name: volumes are pinned to {value} and lpp reclaims them on {name}, but upstream's provisioner looks for a node named {value} and cannot reclaim them"
                ),
            )
            .fix("nothing to change while lpp provisions; before going back to upstream, delete the volumes made on this node (or keep lpp for them)"),
        ),
        Some(_) => {}
    }
    for (class, key) in helper
        .affinity_keys
        .iter()
        .filter(|(_, k)| k != DEFAULT_NODE_AFFINITY_KEY)
    {
        if !node.labels.contains_key(key) {
            hostname_checks.push(
                check(
                    Group::Nodes,
                    "hostname",
                    Status::Failed,
                    format!("no {key} label, the nodeAffinityKey of StorageClass {class}: its claims on this node are refused"),
                )
                .fix(format!("kubectl label node {name} {key}=<value>")),
            );
        }
    }
    if hostname_checks.is_empty() {
        let keys: Vec<String> = helper
            .affinity_keys
            .iter()
            .filter(|(_, k)| k != DEFAULT_NODE_AFFINITY_KEY)
            .map(|(_, k)| format!("{k}={}", node.labels.get(k).map_or("", String::as_str)))
            .collect();
        hostname_checks.push(check(
            Group::Nodes,
            "hostname",
            Status::Ok,
            std::iter::once(format!("{DEFAULT_NODE_AFFINITY_KEY}={name}"))
                .chain(keys)
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    out.extend(hostname_checks.into_iter().map(|c| c.on(name)));
    out
}

/// Why a node's probe did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// The API server refused the pod (admission, permissions), in its words.
    Refused(String),
    /// It cannot start (image pull, scheduling, a missing key).
    Stuck(String),
    /// No answer within the deadline; `events` are what the pod's events said.
    TimedOut {
        /// Time the node was given.
        after: Duration,
        /// The helper pod's Warning events, `reason: message`, each once.
        events: Vec<String>,
    },
    /// The script failed, or its output was not valid.
    Failed(String),
}

/// What the node probes found.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Not run, and why (node not Ready, no valid config, ...).
    Skipped(String),
    /// The look did not give an answer.
    Failed(JobFailure),
    /// The look answered; `written` has one entry per base path: `None` when no write was
    /// tried there, else its result or why the write probe failed.
    Ran {
        /// The node's base paths, in the order of `looked` and `written`.
        bases: Vec<String>,
        /// What the look saw at each base path.
        looked: Vec<Looked>,
        /// Per base path: `None` when no write was tried, else how it went or why the write probe failed.
        written: Vec<Option<Result<Written, String>>>,
    },
}

/// A Pod Security refusal names every field the level wants; `install/pod-security` already
/// says what to do, so a node's line keeps only the level (`violates PodSecurity
/// "restricted:latest"`). Any other refusal is kept whole.
fn pod_security_short(why: &str) -> String {
    const VIOLATES: &str = "violates PodSecurity \"";
    let Some(start) = why.find(VIOLATES) else {
        return why.to_owned();
    };
    let rest = &why[start + VIOLATES.len()..];
    match rest.find('"') {
        Some(end) => format!("{VIOLATES}{}\" (see install pod-security)", &rest[..end]),
        None => why.to_owned(),
    }
}

fn free_text(l: &Looked) -> String {
    match (l.free_bytes, l.total_bytes) {
        (Some(free), Some(total)) => format!("{} free of {}", ui::bytes(free), ui::bytes(total)),
        (Some(free), None) => format!("{} free", ui::bytes(free)),
        _ => "free space unknown".into(),
    }
}

/// `nodes/helper` and one `nodes/path` per base path.
pub fn probe(
    node: &str,
    probe: &Probe,
    image: &str,
    namespace: &str,
    config_map: &str,
) -> Vec<Check> {
    let edit = format!("kubectl -n {namespace} edit configmap {config_map}");
    let writable_path = format!(
        "point nodePathMap at a writable directory, e.g. /var/local-path-provisioner on Talos, Flatcar and NixOS, whose / is read-only ({edit})"
    );
    let out: Vec<Check> = match probe {
        Probe::Skipped(why) => vec![check(
            Group::Nodes,
            "paths",
            Status::Warning,
            format!("base paths not checked: {why}"),
        )],
        Probe::Failed(failure) => vec![match failure {
            JobFailure::Refused(why) => check(
                Group::Nodes,
                "helper",
                Status::Failed,
                format!("the helper pod was refused: {}", pod_security_short(why)),
            )
            .fix(if why.contains("PodSecurity") {
                format!("kubectl label --overwrite namespace {namespace} {ENFORCE}=privileged")
            } else {
                "let the namespace admit helper pods (hostPath volumes): see the admission policy named above".to_owned()
            }),
            JobFailure::Stuck(why)
                if ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"]
                    .iter()
                    .any(|r| why.contains(r)) =>
            {
                check(
                    Group::Nodes,
                    "helper",
                    Status::Failed,
                    format!("the helper image {image} cannot be pulled on this node: {why}"),
                )
                .fix(format!(
                    "mirror the image into a registry the nodes can reach and set it in helperPod.yaml ({edit}), or `lpp install --helper-image REGISTRY/busybox`"
                ))
            }
            JobFailure::Stuck(why) => check(
                Group::Nodes,
                "helper",
                Status::Failed,
                format!("the helper pod cannot start: {why}"),
            )
            .fix("fix what the message says; the same keeps every volume's helper from starting here"),
            JobFailure::TimedOut { after, events } => check(
                Group::Nodes,
                "helper",
                Status::Failed,
                format!(
                    "no answer from this node within {}{}",
                    ui::duration(*after),
                    if events.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", events.join("; "))
                    }
                ),
            )
            .fix(if events.iter().any(|e| e.contains("FailedMount")) {
                format!("a base path's parent cannot be mounted (see the event): create it on the node, or {writable_path}")
            } else {
                "a slow image pull or a busy node: look at `kubectl -n <namespace> get events`, or try a longer --timeout".replace("<namespace>", namespace)
            }),
            JobFailure::Failed(why) => check(
                Group::Nodes,
                "helper",
                Status::Failed,
                format!("the check's script failed: {why}"),
            )
            .fix("the helper image needs a POSIX shell with busybox's tools (busybox is the default)"),
        }],
        Probe::Ran {
            bases,
            looked,
            written,
        } => {
            let mut out = vec![check(
                Group::Nodes,
                "helper",
                Status::Ok,
                format!("a helper pod ran here (image {image})"),
            )];
            if bases.is_empty() {
                out.push(check(
                    Group::Nodes,
                    "paths",
                    Status::Ok,
                    "no base path is configured for this node (nodePathMap)".into(),
                ));
            }
            for ((base, l), w) in bases.iter().zip(looked).zip(written) {
                out.push(path_check(l, w.as_ref(), &writable_path, &edit).at(base));
            }
            out
        }
    };
    out.into_iter().map(|c| c.on(node)).collect()
}

fn path_check(
    l: &Looked,
    written: Option<&Result<Written, String>>,
    writable_path: &str,
    edit: &str,
) -> Check {
    let fs = l.fs_type.as_deref().unwrap_or("unknown filesystem");
    match l.kind {
        Kind::File | Kind::Other => check(
            Group::Nodes,
            "path",
            Status::Failed,
            format!(
                "a {} where the directory should be: no volume can be made here",
                if l.kind == Kind::File { "file" } else { "special file" }
            ),
        )
        .fix(format!("move or remove it on the node, or point nodePathMap elsewhere ({edit})")),
        Kind::Symlink => check(
            Group::Nodes,
            "path",
            Status::Warning,
            "a symbolic link: helpers follow it on the node, but lpp check cannot look behind it and lpp gc does not list through it".into(),
        )
        .fix(format!("use the path it points to in nodePathMap ({edit})")),
        Kind::Missing => match l.read_only {
            Some(true) => check(
                Group::Nodes,
                "path",
                Status::Failed,
                format!("does not exist, and cannot be made: the filesystem it would be made on ({fs}) is read-only"),
            )
            .fix(writable_path.to_owned()),
            ro => check(
                Group::Nodes,
                "path",
                Status::Ok,
                format!(
                    "does not exist yet: the first volume's helper makes it ({fs}{}, {})",
                    if ro.is_none() { ", writability unknown" } else { ", writable" },
                    free_text(l)
                ),
            ),
        },
        Kind::Directory => {
            let mount = match l.own_mount {
                Some(true) => "a mount of its own",
                Some(false) => "on its parent's filesystem",
                None => "mount unknown",
            };
            let selinux = l
                .selinux
                .as_ref()
                .map(|c| format!(", SELinux {c}"))
                .unwrap_or_default();
            let facts = format!("{fs}, {mount}, {}{selinux}", free_text(l));
            match written {
                Some(Ok(Written::Failed(why))) => {
                    let fix = if why.contains("Read-only") || l.read_only == Some(true) {
                        writable_path.to_owned()
                    } else if let Some(context) = &l.selinux {
                        format!(
                            "its SELinux context is {context}: label it for containers on the node: chcon -Rt container_file_t <path> (or semanage fcontext and restorecon)"
                        )
                    } else {
                        "let the helper write there: check the directory's owner and mode on the node against the helper's user (securityContext in helperPod.yaml)".into()
                    };
                    check(
                        Group::Nodes,
                        "path",
                        Status::Failed,
                        format!("the helper cannot write here: {why} ({facts})"),
                    )
                    .fix(fix)
                }
                Some(Err(why)) => check(
                    Group::Nodes,
                    "path",
                    Status::Failed,
                    format!("a directory, but the write probe failed: {why} ({facts})"),
                )
                .fix("fix what the message says; volume helpers mount this directory the same way"),
                None => check(
                    Group::Nodes,
                    "path",
                    Status::Warning,
                    format!("a directory; writing was not tried ({facts})"),
                ),
                Some(Ok(Written::Ok)) => {
                    let low = l.free_bytes.is_some_and(|free| {
                        free < LOW_FREE_BYTES
                            || l.total_bytes.is_some_and(|total| free.saturating_mul(20) < total)
                    });
                    if low {
                        check(
                            Group::Nodes,
                            "path",
                            Status::Warning,
                            format!("writable, but little space is left: {facts}"),
                        )
                        .fix(format!(
                            "free space on the node, or add a base path on a larger disk to nodePathMap ({edit})"
                        ))
                    } else {
                        check(
                            Group::Nodes,
                            "path",
                            Status::Ok,
                            format!("a writable directory: {facts}"),
                        )
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// data

/// `data/orphans`, `data/missing` and nodes the scan could not do, from a gc scan.
pub fn data(findings: &Findings, nodes: &[NodeScan], older_than: Duration) -> Vec<Check> {
    let mut out = Vec::new();
    let size: u64 = findings.orphans.iter().map(|o| o.size_bytes).sum();
    out.push(if findings.orphans.is_empty() {
        check(
            Group::Data,
            "orphans",
            Status::Ok,
            format!(
                "no directory older than {} without a PV",
                ui::duration(older_than)
            ),
        )
    } else {
        let nodes: std::collections::BTreeSet<&str> =
            findings.orphans.iter().map(|o| o.node.as_str()).collect();
        check(
            Group::Data,
            "orphans",
            Status::Warning,
            format!(
                "{} no PV references ({} on {})",
                counted(findings.orphans.len(), "directory", "directories"),
                ui::bytes(size),
                nodes.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
        .fix("`lpp gc` lists them; `lpp gc prune` removes them after asking")
    });
    out.push(if findings.missing.is_empty() {
        check(
            Group::Data,
            "missing",
            Status::Ok,
            "every volume's directory is there".into(),
        )
    } else {
        let shown: Vec<String> = findings
            .missing
            .iter()
            .take(5)
            .map(|m| format!("{} ({}:{})", m.volume, m.node, m.path))
            .collect();
        let more = findings.missing.len().saturating_sub(shown.len());
        check(
            Group::Data,
            "missing",
            Status::Failed,
            format!(
                "{} no directory on {} node: {}{}",
                counted(findings.missing.len(), "volume has", "volumes have"),
                if findings.missing.len() == 1 { "its" } else { "their" },
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
        )
        .fix("their data is gone or elsewhere: was a disk not mounted when the node started? `lpp gc -o wide` lists them")
    });
    for n in nodes.iter().filter(|n| !n.ok) {
        out.push(
            check(
                Group::Data,
                "scan",
                Status::Warning,
                format!("not scanned: {}", n.status),
            )
            .on(&n.node),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::classify::MissingDirectory;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            ..Taint::default()
        }
    }

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.into()),
            operator: Some(operator.into()),
            value: (!value.is_empty()).then(|| value.into()),
            effect: (!effect.is_empty()).then(|| effect.into()),
            ..Toleration::default()
        }
    }

    fn class(name: &str, provisioner: &str, default: bool, created: i64) -> ClassFacts {
        ClassFacts {
            name: name.into(),
            provisioner: provisioner.into(),
            default,
            binding_mode: "WaitForFirstConsumer".into(),
            reclaim_policy: "Delete".into(),
            node_affinity_key: None,
            created: jiff::Timestamp::from_second(created).ok(),
            k3s: false,
        }
    }

    fn helper(executor: ExecutorKind) -> HelperFacts {
        HelperFacts {
            tolerations: vec![toleration(
                "node.kubernetes.io/disk-pressure",
                "Exists",
                "",
                "NoSchedule",
            )],
            executor,
            shared: false,
            affinity_keys: Vec::new(),
        }
    }

    fn node_facts(name: &str, taints: Vec<Taint>, hostname: Option<&str>) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            ready: Ok("v1.33.0".into()),
            taints,
            labels: hostname
                .map(|h| (DEFAULT_NODE_AFFINITY_KEY.to_owned(), h.to_owned()))
                .into_iter()
                .collect(),
        }
    }

    fn named<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name}: {checks:#?}"))
    }

    #[test]
    fn a_permission_check_names_what_is_refused_and_an_unasked_review_is_only_a_warning() {
        let ask = |access: &Access| {
            permissions(
                access,
                "permissions-x",
                |asked| format!("all {asked} granted"),
                Status::Failed,
                "it may not",
                "grant them",
            )
        };
        let refused = ask(&Access::Reviewed {
            asked: 3,
            missing: vec!["create pods in x".into(), "delete pods in x".into()],
        });
        assert_eq!(
            (refused.group, refused.name.as_str(), refused.status),
            (Group::Cluster, "permissions-x", Status::Failed)
        );
        assert_eq!(
            refused.seen,
            "it may not create pods in x and delete pods in x"
        );
        assert_eq!(refused.fix.as_deref(), Some("grant them"));
        let granted = ask(&Access::Reviewed {
            asked: 3,
            missing: vec![],
        });
        assert_eq!(
            (granted.status, granted.seen.as_str(), granted.fix),
            (Status::Ok, "all 3 granted", None)
        );
        let unknown = ask(&Access::Unknown("forbidden".into()));
        assert_eq!(unknown.status, Status::Warning);
        assert_eq!(
            unknown.seen,
            "cannot ask the server what this account may do: forbidden"
        );
        assert_eq!(
            unknown.fix.as_deref(),
            Some("`kubectl auth can-i --list` shows what it may do")
        );
    }

    #[test]
    fn each_permission_check_says_which_command_a_refusal_stops() {
        let refused = Access::Reviewed {
            asked: 9,
            missing: vec!["patch persistentvolumes".into()],
        };
        let checks = [
            install_permissions(&refused, true),
            install_permissions(&refused, false),
            run_permissions(&refused, "lp", true),
            run_permissions(&refused, "lp", false),
            expansion_permissions(&refused),
        ];
        let install =
            "`lpp install` would be refused: this account may not patch persistentvolumes";
        let run = "`lpp run` would stop at start: this account may not patch persistentvolumes";
        let expand = "`lpp run` with this account leaves volume expansion off: it may not patch persistentvolumes";
        assert_eq!(
            checks
                .each_ref()
                .map(|c| (c.name.as_str(), c.status, c.seen.as_str())),
            [
                ("permissions-install", Status::Failed, install),
                ("permissions-install", Status::Warning, install),
                ("permissions-run", Status::Failed, run),
                ("permissions-run", Status::Warning, run),
                ("permissions-expand", Status::Warning, expand),
            ]
        );
        let run = run_permissions(&refused, "lp", false);
        assert!(run.fix.as_deref().unwrap().contains("(namespace lp)"));
        let granted = Access::Reviewed {
            asked: 9,
            missing: vec![],
        };
        assert_eq!(
            install_permissions(&granted, true).seen,
            "this account may apply the install set (9 permissions)"
        );
        assert_eq!(
            run_permissions(&granted, "lp", true).seen,
            "this account may run `lpp run` (9 permissions)"
        );
        assert_eq!(
            expansion_permissions(&granted).seen,
            "this account may resize volumes (`lpp run` grows claims that ask for more)"
        );
    }

    #[test]
    fn tolerations_match_taints_as_the_scheduler_does() {
        let t = taint("dedicated", "db", "NoExecute");
        assert!(tolerates(&toleration("dedicated", "Exists", "", ""), &t));
        assert!(tolerates(&toleration("", "Exists", "", ""), &t));
        assert!(tolerates(
            &toleration("dedicated", "Equal", "db", "NoExecute"),
            &t
        ));
        assert!(!tolerates(
            &toleration("dedicated", "Equal", "web", "NoExecute"),
            &t
        ));
        assert!(!tolerates(
            &toleration("dedicated", "Exists", "", "NoSchedule"),
            &t
        ));
        assert!(!tolerates(&toleration("other", "Exists", "", ""), &t));
    }

    #[test]
    fn a_no_execute_taint_fails_and_no_schedule_matters_only_where_helpers_are_scheduled() {
        let n = node_facts(
            "node-1",
            vec![
                taint("dedicated", "db", "NoExecute"),
                taint("gpu", "", "NoSchedule"),
            ],
            Some("node-1"),
        );
        let checks = node(&n, &helper(ExecutorKind::HelperPod), "ns", "cm");
        let taints = named(&checks, "taints");
        assert_eq!(taints.status, Status::Failed);
        assert_eq!(taints.node.as_deref(), Some("node-1"));
        assert!(
            taints
                .fix
                .as_deref()
                .unwrap()
                .contains("{key: dedicated, operator: Exists, effect: NoExecute}")
        );
        // Helper pods are bound by nodeName: NoSchedule alone does not keep them off.
        let n = node_facts(
            "node-1",
            vec![taint("gpu", "", "NoSchedule")],
            Some("node-1"),
        );
        let checks = node(&n, &helper(ExecutorKind::HelperPod), "ns", "cm");
        assert_eq!(named(&checks, "taints").status, Status::Ok);
        // The agent DaemonSet goes through the scheduler: it does.
        let checks = node(&n, &helper(ExecutorKind::Agent), "ns", "cm");
        assert_eq!(named(&checks, "taints").status, Status::Warning);
        // A tolerated taint is fine.
        let n = node_facts(
            "node-1",
            vec![taint("node.kubernetes.io/disk-pressure", "", "NoSchedule")],
            Some("node-1"),
        );
        let checks = node(&n, &helper(ExecutorKind::Agent), "ns", "cm");
        assert_eq!(named(&checks, "taints").status, Status::Ok);
    }

    #[test]
    fn the_hostname_label_is_compared_with_the_node_name() {
        let h = helper(ExecutorKind::HelperPod);
        let same = node(
            &node_facts("node-1", vec![], Some("node-1")),
            &h,
            "ns",
            "cm",
        );
        assert_eq!(named(&same, "hostname").status, Status::Ok);
        let other = node(&node_facts("node-2", vec![], Some("ip-10")), &h, "ns", "cm");
        let c = named(&other, "hostname");
        assert_eq!(c.status, Status::Warning);
        assert!(
            c.seen.contains("kubernetes.io/hostname=ip-10 differs"),
            "{c:?}"
        );
        let none = node(&node_facts("node-3", vec![], None), &h, "ns", "cm");
        let c = named(&none, "hostname");
        assert_eq!(c.status, Status::Failed);
        assert_eq!(
            c.fix.as_deref(),
            Some("kubectl label node node-3 kubernetes.io/hostname=node-3")
        );
        // A class's nodeAffinityKey must be on every node.
        let mut keyed = h.clone();
        keyed.affinity_keys = vec![("zoned".into(), "topology.kubernetes.io/zone".into())];
        let c = node(
            &node_facts("node-1", vec![], Some("node-1")),
            &keyed,
            "ns",
            "cm",
        );
        assert_eq!(named(&c, "hostname").status, Status::Failed);
    }

    #[test]
    fn pod_security_fails_after_an_install_and_warns_before_one() {
        let restricted = NamespaceFacts {
            name: "ns".into(),
            labels: Some([(ENFORCE.to_owned(), "restricted".to_owned())].into()),
        };
        let after = namespace(&restricted, false);
        assert_eq!(named(&after, "pod-security").status, Status::Failed);
        let before = namespace(&restricted, true);
        assert_eq!(named(&before, "pod-security").status, Status::Warning);
        let privileged = NamespaceFacts {
            name: "ns".into(),
            labels: Some([(ENFORCE.to_owned(), "privileged".to_owned())].into()),
        };
        assert_eq!(
            named(&namespace(&privileged, false), "pod-security").status,
            Status::Ok
        );
        let missing = NamespaceFacts {
            name: "ns".into(),
            labels: None,
        };
        assert_eq!(
            named(&namespace(&missing, false), "namespace").status,
            Status::Failed
        );
        assert_eq!(
            named(&namespace(&missing, true), "namespace").status,
            Status::Ok
        );
        assert_eq!(
            pod_security_short(
                "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": host \
                 namespaces (...), restricted volume types (...)"
            ),
            "violates PodSecurity \"restricted:latest\" (see install pod-security)"
        );
        assert_eq!(pod_security_short("webhook said no"), "webhook said no");
    }

    #[test]
    fn two_defaults_fail_and_the_fix_keeps_ours() {
        let classes = [
            class("fast", "example.com/fast", true, 2_000),
            class("local-path", "rancher.io/local-path", true, 1_000),
            class("slow", "example.com/slow", false, 3_000),
        ];
        let c = default_class(&classes, "rancher.io/local-path");
        assert_eq!(c.status, Status::Failed);
        assert!(
            c.seen
                .contains("2 default StorageClasses (fast and local-path)"),
            "{c:?}"
        );
        assert_eq!(
            c.fix.as_deref(),
            Some(
                "keep one, e.g. local-path: kubectl annotate storageclass fast \
                 storageclass.kubernetes.io/is-default-class-"
            )
        );
        // Without ours among them, the newest is the one kept.
        let c = default_class(&classes[..1], "x");
        assert_eq!(c.status, Status::Ok);
        let both_theirs = [
            class("a", "example.com/a", true, 1_000),
            class("b", "example.com/b", true, 2_000),
        ];
        let c = default_class(&both_theirs, "rancher.io/local-path");
        assert!(
            c.fix.as_deref().unwrap().starts_with("keep one, e.g. b:"),
            "{c:?}"
        );
    }

    #[test]
    fn another_provisioner_fails_unless_scaled_to_zero() {
        let d = |replicas: i32, k3s: bool| DeploymentFacts {
            namespace: "kube-system".into(),
            name: "local-path-provisioner".into(),
            replicas,
            serves: Some("rancher.io/local-path".into()),
            image: "rancher/local-path-provisioner:v0.0.31".into(),
            ours: false,
            k3s,
        };
        let c = other_provisioners(&Ok(vec![d(1, true)]), "rancher.io/local-path");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, Status::Failed);
        let fix = c[0].fix.as_deref().unwrap();
        assert!(
            fix.contains("--replicas=0") && fix.contains("--disable local-storage"),
            "{fix}"
        );
        let idle = other_provisioners(&Ok(vec![d(0, false)]), "rancher.io/local-path");
        assert_eq!(idle[0].status, Status::Ok);
        assert!(idle[0].seen.contains("scaled to 0"));
        let other_name = other_provisioners(&Ok(vec![d(1, false)]), "example.com/x");
        assert_eq!(other_name[0].status, Status::Ok);
        let k3s = k3s_local_storage(true, &[], &Ok(vec![d(0, true)]));
        assert_eq!(k3s.status, Status::Warning);
    }

    fn looked(kind: Kind) -> Looked {
        Looked {
            kind,
            fs_type: Some("xfs".into()),
            total_bytes: Some(100 << 30),
            free_bytes: Some(50 << 30),
            own_mount: Some(true),
            read_only: Some(false),
            selinux: None,
        }
    }

    #[test]
    fn each_base_path_is_judged_by_what_sits_there_and_whether_the_helper_wrote() {
        let ran = |l: Looked, w: Option<Result<Written, String>>| {
            let checks = probe(
                "node-1",
                &Probe::Ran {
                    bases: vec!["/data".into()],
                    looked: vec![l],
                    written: vec![w],
                },
                "busybox",
                "ns",
                "cm",
            );
            assert_eq!(named(&checks, "helper").status, Status::Ok);
            named(&checks, "path").clone()
        };
        let ok = ran(looked(Kind::Directory), Some(Ok(Written::Ok)));
        assert_eq!((ok.status, ok.path.as_deref()), (Status::Ok, Some("/data")));
        assert!(
            ok.seen
                .contains("xfs, a mount of its own, 50GiB free of 100GiB"),
            "{ok:?}"
        );
        let mut ro = looked(Kind::Directory);
        ro.read_only = Some(true);
        let c = ran(
            ro,
            Some(Ok(Written::Failed("Read-only file system".into()))),
        );
        assert_eq!(c.status, Status::Failed);
        assert!(
            c.fix.as_deref().unwrap().contains("writable directory"),
            "{c:?}"
        );
        let mut labelled = looked(Kind::Directory);
        labelled.selinux = Some("system_u:object_r:var_t:s0".into());
        let c = ran(
            labelled,
            Some(Ok(Written::Failed("Permission denied".into()))),
        );
        assert!(c.fix.as_deref().unwrap().contains("chcon"), "{c:?}");
        let mut full = looked(Kind::Directory);
        full.free_bytes = Some(100 << 20);
        assert_eq!(ran(full, Some(Ok(Written::Ok))).status, Status::Warning);
        assert_eq!(ran(looked(Kind::File), None).status, Status::Failed);
        assert_eq!(ran(looked(Kind::Missing), None).status, Status::Ok);
        let mut ro_missing = looked(Kind::Missing);
        ro_missing.read_only = Some(true);
        assert_eq!(ran(ro_missing, None).status, Status::Failed);
        assert_eq!(ran(looked(Kind::Symlink), None).status, Status::Warning);
    }

    #[test]
    fn a_probe_that_cannot_start_says_why() {
        let failed = |f: JobFailure| {
            let checks = probe(
                "node-1",
                &Probe::Failed(f),
                "registry.invalid/busybox",
                "ns",
                "cm",
            );
            assert_eq!(checks.len(), 1);
            checks[0].clone()
        };
        let c = failed(JobFailure::Stuck("ErrImagePull: no such host".into()));
        assert!(
            c.seen.contains("registry.invalid/busybox cannot be pulled"),
            "{c:?}"
        );
        assert!(
            c.fix.as_deref().unwrap().contains("--helper-image"),
            "{c:?}"
        );
        let c = failed(JobFailure::TimedOut {
            after: Duration::from_secs(3),
            events: vec!["FailedMount: not a directory".into()],
        });
        assert!(c.seen.contains("within 3s: FailedMount"), "{c:?}");
        assert!(
            c.fix.as_deref().unwrap().contains("cannot be mounted"),
            "{c:?}"
        );
        let c = failed(JobFailure::Refused(
            "violates PodSecurity \"baseline:latest\": hostPath".into(),
        ));
        assert!(
            c.fix.as_deref().unwrap().contains("enforce=privileged"),
            "{c:?}"
        );
    }

    #[test]
    fn missing_directories_fail_and_orphans_warn() {
        let mut findings = Findings::default();
        let clean = data(&findings, &[], Duration::from_secs(86_400));
        assert!(clean.iter().all(|c| c.status == Status::Ok), "{clean:#?}");
        findings.missing.push(MissingDirectory {
            volume: "pvc-1".into(),
            node: "node-1".into(),
            path: "/opt/x/pvc-1".into(),
        });
        let c = data(&findings, &[], Duration::from_secs(86_400));
        let missing = named(&c, "missing");
        assert_eq!(missing.status, Status::Failed);
        assert!(
            missing.seen.contains("pvc-1 (node-1:/opt/x/pvc-1)"),
            "{missing:?}"
        );
    }
}
