//! The thin async side of `lpp check`: read the cluster, ask the access reviews, run the node
//! probes through the executor and the gc scan, and hand every fact to [`super::evaluate`].
//! A fact that cannot be read is a check that says so, never an error of the command.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::evaluate::{
    self, Access, ClassFacts, ConfigFacts, DeploymentFacts, HelperFacts, JobFailure,
    NamespaceFacts, NodeFacts, Probe, Reach, ValidConfig,
};
use super::probe::{self, Kind};
use super::{Check, CheckOptions, CheckReport, Error, Group, Status};
use crate::cluster::{self, Target};
use crate::config::{ConfigMapContents, ExecutorKind};
use crate::controller::access::{self, Need, need};
use crate::executor::{Executor, JobError};
use crate::install::objects::{Object, SERVICE_ACCOUNT, install_set};
use crate::install::{BasePaths, ManifestSettings, StatusOptions};
use crate::provision::helper_pod::{HelperPods, ScriptJob};
use crate::ui::{self, Ui};

/// Nodes probed at once.
const CONCURRENT_NODES: usize = 8;
/// How long a single read may take when `--request-timeout` does not say.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Beyond a node's deadline, how long its helper pod's cleanup may take before the node is
/// reported without waiting for it.
const CLEANUP_GRACE: Duration = Duration::from_secs(15);
/// How old a directory must be for the data group to judge it, as `lpp gc` by default.
const ORPHANS_OLDER_THAN: Duration = Duration::from_secs(24 * 3600);

/// What a probe needs beyond `lpp run`'s list: the pods it makes and their output.
const PROBE_NEEDS: [Need; 6] = [
    need("create", "", "pods", true),
    need("get", "", "pods", true),
    need("list", "", "pods", true),
    need("watch", "", "pods", true),
    need("delete", "", "pods", true),
    need("get", "", "pods/log", true),
];

/// A check saying a fact could not be read.
fn unreadable(group: Group, name: &str, what: &str, why: &str) -> Check {
    Check {
        group,
        name: name.to_owned(),
        node: None,
        path: None,
        status: Status::Warning,
        seen: format!("cannot read {what}: {why}"),
        fix: Some("run `lpp check` with an account that may read it (a cluster admin's)".into()),
    }
}

/// The install set `lpp install` applies with its defaults, in `namespace`.
fn default_settings(namespace: &str, provisioner: &str) -> ManifestSettings {
    ManifestSettings {
        namespace: namespace.to_owned(),
        storage_class: crate::upstream::STORAGE_CLASS.into(),
        provisioner_name: provisioner.to_owned(),
        base_paths: BasePaths::Nodes(vec![(None, crate::config::DEFAULT_PATH.to_owned())]),
        default_class: false,
        allow_expansion: false,
        capacity_tracking: false,
        reclaim_policy: "Delete".into(),
        binding_mode: "WaitForFirstConsumer".into(),
        volume_type: "hostPath".into(),
        helper_image: crate::config::DEFAULT_HELPER_IMAGE.into(),
        in_cluster_image: None,
        executor: ExecutorKind::HelperPod,
    }
}

/// What server-side apply of the install set asks: get, create and patch of each kind.
fn install_needs(settings: &ManifestSettings) -> Vec<Need> {
    let mut needs: Vec<Need> = Vec::new();
    for object in install_set(settings) {
        let (group, resource, namespaced) = match object {
            Object::Namespace(_) => ("", "namespaces", false),
            Object::ServiceAccount(_) => ("", "serviceaccounts", true),
            Object::Role(_) => ("rbac.authorization.k8s.io", "roles", true),
            Object::ClusterRole(_) => ("rbac.authorization.k8s.io", "clusterroles", false),
            Object::RoleBinding(_) => ("rbac.authorization.k8s.io", "rolebindings", true),
            Object::ClusterRoleBinding(_) => {
                ("rbac.authorization.k8s.io", "clusterrolebindings", false)
            }
            Object::StorageClass(_) => ("storage.k8s.io", "storageclasses", false),
            Object::ConfigMap(_) => ("", "configmaps", true),
            Object::Deployment(_) => ("apps", "deployments", true),
            Object::DaemonSet(_) => ("apps", "daemonsets", true),
            Object::CSIDriver(_) => ("storage.k8s.io", "csidrivers", false),
        };
        for verb in ["get", "create", "patch"] {
            let n = need(verb, group, resource, namespaced);
            if !needs.contains(&n) {
                needs.push(n);
            }
        }
    }
    needs
}

/// Asks every need at once and splits the answers back per list.
async fn review(
    client: &kube::Client,
    lists: &[&[Need]],
    namespace: &str,
    wait: Duration,
) -> Vec<Access> {
    let all: Vec<Need> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    match read(wait, access::review(client, &all, namespace)).await {
        Err(why) => lists.iter().map(|_| Access::Unknown(why.clone())).collect(),
        Ok(answers) => {
            let mut answers = answers.into_iter();
            lists
                .iter()
                .map(|list| {
                    let refused: Vec<Need> = list
                        .iter()
                        .zip(answers.by_ref())
                        .filter(|(_, allowed)| !allowed)
                        .map(|(n, _)| *n)
                        .collect();
                    Access::Reviewed {
                        asked: list.len(),
                        missing: compact(&refused, namespace),
                    }
                })
                .collect()
        }
    }
}

/// Refused permissions as people read them: the verbs of one resource together
/// (`get/create/patch namespaces`, `create pods in local-path-storage`).
fn compact(refused: &[Need], namespace: &str) -> Vec<String> {
    let mut grouped: Vec<(Need, Vec<&str>)> = Vec::new();
    for n in refused {
        match grouped.iter_mut().find(|(g, _)| {
            (g.group, g.resource, g.namespaced) == (n.group, n.resource, n.namespaced)
        }) {
            Some((_, verbs)) => verbs.push(n.verb),
            None => grouped.push((*n, vec![n.verb])),
        }
    }
    grouped
        .into_iter()
        .map(|(n, verbs)| {
            Need { verb: "", ..n }.describe(namespace).replacen(
                ' ',
                &format!("{} ", verbs.join("/")),
                1,
            )
        })
        .collect()
}

fn node_facts(node: &Node) -> NodeFacts {
    let status = node.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let kubelet = status
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.clone())
        .unwrap_or_else(|| "version unknown".into());
    NodeFacts {
        name: node.name_any(),
        ready: match ready {
            Some(c) if c.status == "True" => Ok(kubelet),
            Some(c) => Err(format!(
                "not Ready ({}): {}",
                c.reason.as_deref().unwrap_or(&c.status),
                c.message.as_deref().unwrap_or("no message")
            )),
            None => Err("not Ready: the node reports no Ready condition".into()),
        },
        taints: node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default(),
        labels: node.labels().clone(),
    }
}

fn class_facts(class: &StorageClass) -> ClassFacts {
    let annotation = |k: &str| class.annotations().get(k).map(String::as_str);
    ClassFacts {
        name: class.name_any(),
        provisioner: class.provisioner.clone(),
        default: annotation(evaluate::DEFAULT_CLASS) == Some("true")
            || annotation(evaluate::DEFAULT_CLASS_BETA) == Some("true"),
        binding_mode: class
            .volume_binding_mode
            .clone()
            .unwrap_or_else(|| "Immediate".into()),
        reclaim_policy: class
            .reclaim_policy
            .clone()
            .unwrap_or_else(|| "Delete".into()),
        node_affinity_key: class
            .parameters
            .as_ref()
            .and_then(|p| p.get("nodeAffinityKey"))
            .filter(|k| !k.is_empty())
            .cloned(),
        created: class.metadata.creation_timestamp.as_ref().map(|t| t.0),
        k3s: annotation(evaluate::K3S_OWNER) == Some(evaluate::K3S_LOCAL_STORAGE),
    }
}

/// Which provisioner name a Deployment serves, when it runs upstream's provisioner or
/// `lpp run`, and the image that says so.
fn serves(deployment: &Deployment) -> Option<(String, String)> {
    let spec = deployment.spec.as_ref()?.template.spec.as_ref()?;
    let lpp = deployment
        .labels()
        .get(crate::install::objects::MANAGED_BY.0)
        .map(String::as_str)
        == Some(crate::install::objects::MANAGED_BY.1);
    spec.containers.iter().find_map(|c| {
        let image = c.image.clone().unwrap_or_default();
        let words: Vec<&str> = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .map(String::as_str)
            .collect();
        let upstream =
            image.contains("local-path-provisioner") || words.contains(&"local-path-provisioner");
        let ours =
            lpp && c.args.as_ref().and_then(|a| a.first()).map(String::as_str) == Some("run");
        if !upstream && !ours {
            return None;
        }
        let flag = words.iter().enumerate().find_map(|(i, w)| {
            w.strip_prefix("--provisioner-name=")
                .map(str::to_owned)
                .or_else(|| {
                    (*w == "--provisioner-name")
                        .then(|| words.get(i + 1).map(|v| (*v).to_owned()))
                        .flatten()
                })
        });
        let env = c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "PROVISIONER_NAME")
            .and_then(|e| e.value.clone());
        let name = flag
            .or(env)
            .unwrap_or_else(|| crate::upstream::PROVISIONER.to_owned());
        Some((name, image))
    })
}

fn deployment_facts(d: &Deployment, namespace: &str) -> DeploymentFacts {
    let lpp = d
        .labels()
        .get(crate::install::objects::MANAGED_BY.0)
        .map(String::as_str)
        == Some(crate::install::objects::MANAGED_BY.1);
    let (serves, image) = serves(d).map_or((None, String::new()), |(n, i)| (Some(n), i));
    let ns = d.namespace().unwrap_or_default();
    DeploymentFacts {
        ours: lpp && ns == namespace,
        namespace: ns,
        name: d.name_any(),
        replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        serves,
        image,
        k3s: d.annotations().get(evaluate::K3S_OWNER).map(String::as_str)
            == Some(evaluate::K3S_LOCAL_STORAGE),
    }
}

/// The config as the checks see it, and the contents when it is valid.
fn config_facts(
    map: Result<Option<ConfigMap>, String>,
) -> (ConfigFacts, Option<ConfigMapContents>) {
    let map = match map {
        Err(why) => return (ConfigFacts::Unreadable(why), None),
        Ok(None) => return (ConfigFacts::Missing, None),
        Ok(Some(map)) => map,
    };
    let data = map.data.unwrap_or_default();
    let contents = match ConfigMapContents::from_data(&data, None, None) {
        Ok(c) => c,
        Err(e) => return (ConfigFacts::Invalid(e.to_string()), None),
    };
    if let Err(e) = crate::provision::helper_pod::check_template(&contents.helper_pod, false) {
        return (ConfigFacts::Invalid(format!("helperPod.yaml: {e}")), None);
    }
    let spec = contents.helper_pod.spec.clone().unwrap_or_default();
    let image = spec
        .containers
        .first()
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| crate::config::DEFAULT_HELPER_IMAGE.into());
    // lpp gives a template without tolerations the disk-pressure one (see `HelperPods`).
    let tolerations = spec.tolerations.clone().unwrap_or_else(|| {
        vec![k8s_openapi::api::core::v1::Toleration {
            key: Some("node.kubernetes.io/disk-pressure".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]
    });
    let config = &contents.config;
    let valid = ValidConfig {
        base_paths: config.all_base_paths().into_iter().collect(),
        executor: config.executor.unwrap_or(ExecutorKind::HelperPod),
        image,
        tolerations,
        shared: !config.shared_paths().is_empty(),
        served: config
            .served_classes()
            .map(|c| c.into_iter().map(str::to_owned).collect()),
    };
    (ConfigFacts::Valid(valid), Some(contents))
}

/// One read with a deadline; what went wrong as one line.
async fn read<T>(
    wait: Duration,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(wait, request).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(cluster::describe(&e)),
        Err(_) => Err(format!("no answer within {}", ui::duration(wait))),
    }
}

/// Runs every check. Fails only when the cluster cannot be named (no kubeconfig) or `--node`
/// names no node (a usage error).
pub async fn run(ui: &Ui, target: &Target, options: &CheckOptions) -> Result<CheckReport, Error> {
    let cluster = cluster::connect(target).await?;
    let client = cluster.client.clone();
    let ns = options.namespace.as_str();
    let wait = target
        .request_timeout
        .filter(|t| !t.is_zero())
        .unwrap_or(ANSWER_WITHIN);
    let version = match tokio::time::timeout(wait, client.apiserver_version()).await {
        Ok(Ok(info)) => Ok(info.git_version),
        Ok(Err(e)) => Err(cluster::request_failed("get", "version", &e)),
        Err(_) => Err(format!(
            "cannot reach {} (context {}): no answer within {}",
            cluster.server,
            cluster.context,
            ui::duration(wait)
        )),
    };
    let mut checks = vec![evaluate::reachable(&Reach {
        context: cluster.context.clone(),
        server: cluster.server.clone(),
        version: version.clone(),
    })];
    let report = |checks: Vec<Check>| {
        CheckReport::new(
            cluster.context.clone(),
            cluster.server.clone(),
            options.pre,
            checks,
        )
    };
    let Ok(git_version) = version else {
        return Ok(report(checks));
    };
    // Nodes first: an unknown --node is a usage error before anything is run.
    let nodes: Result<Vec<Node>, String> = read(
        wait,
        Api::<Node>::all(client.clone()).list(&ListParams::default()),
    )
    .await
    .map(|l| l.items);
    let nodes = match nodes {
        Ok(all) => {
            let known: Vec<String> = all.iter().map(|n| n.name_any()).collect();
            if let Some(unknown) = options.nodes.iter().find(|n| !known.contains(n)) {
                return Err(Error::Usage(format!(
                    "--node {unknown}: no such node (nodes: {})",
                    known.join(", ")
                )));
            }
            Ok(all
                .into_iter()
                .filter(|n| options.nodes.is_empty() || options.nodes.contains(&n.name_any()))
                .collect::<Vec<_>>())
        }
        Err(why) => Err(why),
    };

    let namespace = read(wait, Api::<Namespace>::all(client.clone()).get_opt(ns)).await;
    let config_map = read(
        wait,
        Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(&options.config_map),
    )
    .await;
    let (config, contents) = if options.pre {
        (ConfigFacts::Missing, None)
    } else {
        config_facts(config_map)
    };
    let classes: Result<Vec<ClassFacts>, String> = read(
        wait,
        Api::<StorageClass>::all(client.clone()).list(&ListParams::default()),
    )
    .await
    .map(|l| l.items.iter().map(class_facts).collect());
    let deployments: Result<Vec<DeploymentFacts>, String> = read(
        wait,
        Api::<Deployment>::all(client.clone()).list(&ListParams::default()),
    )
    .await
    .map(|l| l.items.iter().map(|d| deployment_facts(d, ns)).collect());

    // Who provisions: a live Lease holder makes this account's run permissions a convenience.
    let status = if options.pre {
        None
    } else {
        let status_options = StatusOptions {
            namespace: ns.to_owned(),
            provisioner_name: options.provisioner_name.clone(),
            events_since: Duration::from_secs(3600),
            watch: false,
        };
        Some(
            match tokio::time::timeout(
                wait * 3,
                crate::install::status::gather(&client, &status_options),
            )
            .await
            {
                Ok(gathered) => gathered.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {}", ui::duration(wait * 3))),
            },
        )
    };
    let lease_held = matches!(&status, Some(Ok(s)) if s.lease.held);

    // cluster: permissions
    let settings = default_settings(ns, &options.provisioner_name);
    let executor_kind = match &config {
        ConfigFacts::Valid(c) => c.executor,
        _ => ExecutorKind::HelperPod,
    };
    let install = install_needs(&settings);
    let run_needs = access::needs(true, true, executor_kind == ExecutorKind::Agent, false);
    let answers = review(
        &client,
        &[&install, &run_needs, &PROBE_NEEDS, &access::EXPANSION],
        ns,
        wait,
    )
    .await;
    let may_probe =
        matches!(answers.get(2), Some(Access::Reviewed { missing, .. }) if missing.is_empty());
    let probe_refusal = match answers.get(2) {
        Some(Access::Reviewed { missing, .. }) if !missing.is_empty() => format!(
            "this account may not {} (see permissions-run)",
            missing.join(", ")
        ),
        Some(Access::Unknown(why)) => {
            format!("cannot tell whether this account may make pods: {why}")
        }
        _ => String::new(),
    };
    if let Some(a) = answers.first() {
        checks.push(evaluate::install_permissions(a, options.pre));
    }
    if let Some(a) = answers.get(1) {
        checks.push(evaluate::run_permissions(
            a,
            ns,
            !options.pre && !lease_held,
        ));
    }
    if let Some(a) = answers.get(3) {
        checks.push(evaluate::expansion_permissions(a));
    }

    // install
    match &namespace {
        Ok(n) => checks.extend(evaluate::namespace(
            &NamespaceFacts {
                name: ns.to_owned(),
                labels: n.as_ref().map(|n| n.labels().clone()),
            },
            options.pre,
        )),
        Err(why) => checks.push(unreadable(
            Group::Install,
            "namespace",
            &format!("namespace {ns}"),
            why,
        )),
    }
    if !options.pre {
        checks.push(evaluate::config(&config, ns, &options.config_map));
    }
    match &classes {
        Ok(classes) => {
            if !options.pre {
                checks.extend(evaluate::classes(
                    classes,
                    &options.provisioner_name,
                    &config,
                ));
            }
            checks.push(evaluate::default_class(classes, &options.provisioner_name));
        }
        Err(why) => checks.push(unreadable(Group::Install, "classes", "storageclasses", why)),
    }
    checks.extend(evaluate::other_provisioners(
        &deployments,
        &options.provisioner_name,
    ));
    checks.push(evaluate::k3s_local_storage(
        git_version.contains("k3s"),
        classes.as_deref().unwrap_or(&[]),
        &deployments,
    ));
    if options.pre {
        let concerns =
            match tokio::time::timeout(wait * 3, crate::install::look(&client, &settings)).await {
                Ok(looked) => looked.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {}", ui::duration(wait * 3))),
            };
        checks.extend(evaluate::takeover(&concerns));
    }

    // provisioning
    match &status {
        Some(Ok(s)) => checks.extend(evaluate::provisioning(s, env!("CARGO_PKG_VERSION"), ns)),
        Some(Err(why)) => checks.push(unreadable(
            Group::Provisioning,
            "status",
            "the provisioner's state",
            why,
        )),
        None => {}
    }

    // nodes
    let nodes = match nodes {
        Ok(nodes) => nodes,
        Err(why) => {
            checks.push(unreadable(Group::Nodes, "nodes", "nodes", &why));
            Vec::new()
        }
    };
    let valid = match &config {
        ConfigFacts::Valid(v) => Some(v.clone()),
        _ => None,
    };
    let helper = HelperFacts {
        tolerations: match &valid {
            Some(v) => v.tolerations.clone(),
            // Before an install: the default template's.
            None => crate::config::parse_helper_pod(&crate::config::default_helper_pod_yaml(
                crate::config::DEFAULT_HELPER_IMAGE,
            ))
            .ok()
            .and_then(|p| p.spec)
            .and_then(|s| s.tolerations)
            .unwrap_or_default(),
        },
        executor: executor_kind,
        shared: valid.as_ref().is_some_and(|v| v.shared),
        affinity_keys: classes
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter(|c| c.provisioner == options.provisioner_name)
            .filter_map(|c| Some((c.name.clone(), c.node_affinity_key.clone()?)))
            .collect(),
    };
    let facts: Vec<NodeFacts> = nodes.iter().map(node_facts).collect();
    // A node whose taints keep helper pods off is not probed: the kubelet would refuse the pod.
    let mut kept_off: Vec<String> = Vec::new();
    for n in &facts {
        let lines = evaluate::node(n, &helper, ns, &options.config_map);
        if lines
            .iter()
            .any(|c| c.name == "taints" && c.status == Status::Failed)
        {
            kept_off.push(n.name.clone());
        }
        checks.extend(lines);
    }
    if options.pre {
        return Ok(report(checks));
    }
    let helpers = contents.as_ref().map(|c| {
        HelperPods::new(
            c.helper_pod.clone(),
            false,
            ns,
            SERVICE_ACCOUNT,
            None,
            &options.config_map,
        )
    });
    let skip = match (&helpers, may_probe) {
        (None, _) => Some("the configuration cannot be used (see install/config)".to_owned()),
        (Some(Err(e)), _) => Some(format!("helperPod.yaml cannot be used: {e}")),
        (Some(Ok(_)), false) => Some(probe_refusal),
        (Some(Ok(_)), true) => None,
    };
    let image = valid.as_ref().map(|v| v.image.clone()).unwrap_or_default();
    let mut probes: Vec<(String, Probe)> = Vec::new();
    match (skip, helpers, contents.as_ref()) {
        (None, Some(Ok(helpers)), Some(contents)) => {
            let executor = Executor::start(client.clone(), ns, false);
            let bar = ui.progress(facts.len() as u64, "checking nodes");
            let jobs = facts.iter().map(|node| {
                let bases: Vec<String> = contents
                    .config
                    .base_paths_on(&node.name)
                    .into_iter()
                    .collect();
                let (executor, helpers, bar, client, kept_off) =
                    (&executor, &helpers, &bar, &client, &kept_off);
                async move {
                    let probe = if let Err(why) = &node.ready {
                        Probe::Skipped(format!("the node is {why}"))
                    } else if kept_off.contains(&node.name) {
                        Probe::Skipped("its taints keep helper pods off (see taints)".into())
                    } else {
                        probe_node(
                            client,
                            executor,
                            helpers,
                            &node.name,
                            &bases,
                            executor_kind,
                            options.timeout,
                        )
                        .await
                    };
                    bar.inc(1);
                    (node.name.clone(), probe)
                }
            });
            probes = futures::stream::iter(jobs)
                .buffer_unordered(CONCURRENT_NODES)
                .collect()
                .await;
            bar.finish_and_clear();
        }
        (skip, _, _) => {
            let why = skip.unwrap_or_else(|| "no usable configuration".into());
            for node in &facts {
                probes.push((node.name.clone(), Probe::Skipped(why.clone())));
            }
        }
    }
    probes.sort_by(|a, b| a.0.cmp(&b.0));
    // Each node's probe lines follow its other lines.
    let mut node_checks: Vec<Check> = Vec::new();
    let (other, mut node_lines): (Vec<Check>, Vec<Check>) =
        checks.into_iter().partition(|c| c.group != Group::Nodes);
    for (name, probe) in &probes {
        let mine: Vec<Check> = node_lines
            .extract_if(.., |c| c.node.as_deref() == Some(name.as_str()))
            .collect();
        node_checks.extend(mine);
        node_checks.extend(evaluate::probe(
            name,
            probe,
            &image,
            ns,
            &options.config_map,
        ));
    }
    node_checks.extend(node_lines);
    let mut checks = other;
    checks.extend(node_checks);

    // data: the gc scan, on the nodes whose probe found nothing wrong. A node whose base paths
    // do not exist yet has nothing to scan (gc would make them) unless a volume says it should.
    let has_volumes = |node: &str| match &status {
        Some(Ok(s)) => s.volumes.iter().any(|v| v.node == node),
        _ => true,
    };
    let mut healthy: Vec<String> = Vec::new();
    let mut fresh: Vec<String> = Vec::new();
    let mut unscanned: Vec<String> = Vec::new();
    for (node, probe) in &probes {
        if let Probe::Ran { looked, .. } = probe {
            let all_dirs = looked.iter().all(|l| l.kind == Kind::Directory);
            let usable = looked
                .iter()
                .all(|l| matches!(l.kind, Kind::Directory | Kind::Missing));
            if all_dirs || (usable && has_volumes(node)) {
                healthy.push(node.clone());
            } else if usable {
                fresh.push(node.clone());
            } else {
                unscanned.push(node.clone());
            }
        } else {
            unscanned.push(node.clone());
        }
    }
    if contents.is_some() && !healthy.is_empty() {
        let scan_options = crate::gc::ScanOptions {
            namespace: ns.to_owned(),
            nodes: healthy,
            storage_class: None,
            older_than: ORPHANS_OLDER_THAN,
            provisioner_name: options.provisioner_name.clone(),
            config_map: options.config_map.clone(),
            helper_image: None,
        };
        let scanned = tokio::time::timeout(
            options.timeout + CLEANUP_GRACE,
            crate::gc::scan::scan(&client, ui, &scan_options),
        )
        .await;
        match scanned {
            Ok(Ok(scan)) => checks.extend(evaluate::data(
                &scan.findings,
                &scan.nodes,
                ORPHANS_OLDER_THAN,
            )),
            Ok(Err(e)) => checks.push(unreadable(
                Group::Data,
                "scan",
                "the volume directories (lpp gc)",
                &e.to_string(),
            )),
            Err(_) => checks.push(Check {
                group: Group::Data,
                name: "scan".into(),
                node: None,
                path: None,
                status: Status::Warning,
                seen: format!(
                    "the gc scan did not finish within {}",
                    ui::duration(options.timeout + CLEANUP_GRACE)
                ),
                fix: Some("`lpp gc` scans without a deadline".into()),
            }),
        }
    } else if !fresh.is_empty() {
        checks.push(Check {
            group: Group::Data,
            name: "scan".into(),
            node: None,
            path: None,
            status: Status::Ok,
            seen: format!(
                "not scanned on {}: no volume there yet, and a scan would make the base paths \
                 that do not exist yet",
                fresh.join(", ")
            ),
            fix: None,
        });
    }
    if !unscanned.is_empty() || probes.is_empty() {
        checks.push(Check {
            group: Group::Data,
            name: "scan".into(),
            node: None,
            path: None,
            status: Status::Warning,
            seen: if probes.is_empty() {
                "volume directories not scanned: no node to look at".into()
            } else {
                format!(
                    "volume directories not scanned on {}: the node checks did not pass there",
                    unscanned.join(", ")
                )
            },
            fix: Some("fix the nodes group first; `lpp gc` scans on its own".into()),
        });
    }
    Ok(report(checks))
}

/// A pod name for a probe on `node`: unique, valid, and naming the node where it fits.
fn job_name(what: &str, node: &str) -> String {
    let mut node: String = node.chars().take(36).collect();
    while node.ends_with(['-', '.']) {
        node.pop();
    }
    format!("lpp-check-{what}-{node}-{}", crate::gc::scan::suffix())
}

/// Runs the look and then the write probe on `node` within `deadline` (and a little more for
/// cleanup); a node that does not answer is reported, not waited for.
async fn probe_node(
    client: &kube::Client,
    executor: &Executor,
    helpers: &HelperPods,
    node: &str,
    bases: &[String],
    kind: ExecutorKind,
    deadline: Duration,
) -> Probe {
    let run = async {
        let started = tokio::time::Instant::now();
        let plan = probe::look_plan(bases);
        let mut args = vec!["look".to_owned()];
        args.extend(plan.args.clone());
        let look = ScriptJob {
            name: job_name("look", node),
            action: "check".into(),
            node: Some(node.to_owned()),
            host_dirs: plan.mounts.clone(),
            command: vec!["/bin/sh".into(), "-c".into(), probe::LOOK.into()],
            args,
            env: Vec::new(),
        };
        // Always a helper pod: what proves the image, the template and the admission.
        let output = match executor
            .script(helpers, &look, deadline, ExecutorKind::HelperPod)
            .await
        {
            Ok(output) => output,
            Err(e) => return Probe::Failed(failure(client, helpers, e).await),
        };
        let looked = match probe::parse_look(&output, bases.len()) {
            Ok(l) => l,
            Err(e) => {
                return Probe::Failed(JobFailure::Failed(format!("its output is not valid: {e}")));
            }
        };
        let dirs: Vec<String> = bases
            .iter()
            .zip(&looked)
            .filter(|(_, l)| l.kind == Kind::Directory)
            .map(|(b, _)| b.clone())
            .collect();
        let mut written: Vec<Option<Result<probe::Written, String>>> = vec![None; bases.len()];
        if !dirs.is_empty() {
            let tag = crate::gc::scan::suffix();
            let mut args = vec!["write".to_owned()];
            args.extend(probe::write_args(&tag, &dirs));
            let write = ScriptJob {
                name: job_name("write", node),
                action: "check".into(),
                node: Some(node.to_owned()),
                host_dirs: probe::write_mounts(&dirs),
                command: vec!["/bin/sh".into(), "-c".into(), probe::WRITE.into()],
                args,
                env: Vec::new(),
            };
            let left = deadline
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(1));
            let results: Vec<Result<probe::Written, String>> =
                match executor.script(helpers, &write, left, kind).await {
                    Ok(output) => match probe::parse_write(&output, dirs.len()) {
                        Ok(w) => w.into_iter().map(Ok).collect(),
                        Err(e) => vec![Err(format!("its output is not valid: {e}")); dirs.len()],
                    },
                    Err(e) => {
                        let why = describe(&failure(client, helpers, e).await);
                        vec![Err(why); dirs.len()]
                    }
                };
            let mut results = results.into_iter();
            for (slot, l) in written.iter_mut().zip(&looked) {
                if l.kind == Kind::Directory {
                    *slot = results.next();
                }
            }
        }
        Probe::Ran {
            bases: bases.to_vec(),
            looked,
            written,
        }
    };
    match tokio::time::timeout(deadline + CLEANUP_GRACE, run).await {
        Ok(probe) => probe,
        Err(_) => Probe::Failed(JobFailure::TimedOut {
            after: deadline,
            events: Vec::new(),
        }),
    }
}

/// A failure as one line.
fn describe(failure: &JobFailure) -> String {
    match failure {
        JobFailure::Refused(why) | JobFailure::Stuck(why) | JobFailure::Failed(why) => why.clone(),
        JobFailure::TimedOut { after, events } => format!(
            "no answer within {}{}",
            ui::duration(*after),
            if events.is_empty() {
                String::new()
            } else {
                format!(": {}", events.join("; "))
            }
        ),
    }
}

/// What an executor error means for the checks; a timed-out pod's Warning events say why it
/// did not start (a hostPath that cannot be mounted, say).
async fn failure(client: &kube::Client, helpers: &HelperPods, error: JobError) -> JobFailure {
    match error {
        JobError::Refused { why, .. } => JobFailure::Refused(why),
        JobError::Stuck(why) => JobFailure::Stuck(why),
        JobError::TimedOut { pod, after } => {
            let events = Api::<Event>::namespaced(client.clone(), &helpers.namespace)
                .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            let mut lines: Vec<String> = Vec::new();
            for e in events
                .iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
            {
                let line = format!(
                    "{}: {}",
                    e.reason.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("")
                );
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
            JobFailure::TimedOut {
                after,
                events: lines,
            }
        }
        other => JobFailure::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn provisioners_are_told_by_image_flag_and_env() {
        let upstream = deployment(serde_json::json!({
            "metadata": {"name": "local-path-provisioner", "namespace": "kube-system",
                         "annotations": {"objectset.rio.cattle.io/owner-name": "local-storage"}},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "p",
                "image": "rancher/mirrored-local-path-provisioner:v0.0.31",
                "command": ["local-path-provisioner", "start", "--config", "/etc/config/config.json"]}]}}}
        }));
        let facts = deployment_facts(&upstream, "local-path-storage");
        assert_eq!(facts.serves.as_deref(), Some("rancher.io/local-path"));
        assert!(facts.k3s && !facts.ours);
        assert_eq!(facts.replicas, 1);
        let renamed = deployment(serde_json::json!({
            "metadata": {"name": "x", "namespace": "a"},
            "spec": {"replicas": 0, "selector": {}, "template": {"spec": {"containers": [{"name": "p",
                "image": "rancher/local-path-provisioner:v0.0.31",
                "args": ["start", "--provisioner-name=example.com/other"]}]}}}
        }));
        let facts = deployment_facts(&renamed, "local-path-storage");
        assert_eq!(facts.serves.as_deref(), Some("example.com/other"));
        assert_eq!(facts.replicas, 0);
        let by_env = deployment(serde_json::json!({
            "metadata": {"name": "x", "namespace": "a"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "p",
                "image": "rancher/local-path-provisioner:v0.0.31",
                "env": [{"name": "PROVISIONER_NAME", "value": "example.com/env"}]}]}}}
        }));
        assert_eq!(
            deployment_facts(&by_env, "x").serves.as_deref(),
            Some("example.com/env")
        );
        let nginx = deployment(serde_json::json!({
            "metadata": {"name": "web", "namespace": "a"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "w", "image": "nginx"}]}}}
        }));
        assert_eq!(deployment_facts(&nginx, "x").serves, None);
    }

    #[test]
    fn lpps_own_deployment_is_ours_only_in_its_namespace() {
        let settings = ManifestSettings {
            in_cluster_image: Some("ghcr.io/lpp-dev/lpp:test".into()),
            ..default_settings("local-path-storage", "rancher.io/local-path")
        };
        let Some(Object::Deployment(d)) = install_set(&settings)
            .into_iter()
            .find(|o| matches!(o, Object::Deployment(_)))
        else {
            panic!("no Deployment in the in-cluster install set");
        };
        let facts = deployment_facts(&d, "local-path-storage");
        assert!(facts.ours);
        assert_eq!(facts.serves.as_deref(), Some("rancher.io/local-path"));
        assert!(!deployment_facts(&d, "elsewhere").ours);
    }

    #[test]
    fn refused_permissions_are_grouped_by_resource() {
        let refused = [
            need("get", "", "namespaces", false),
            need("create", "", "namespaces", false),
            need("create", "", "pods", true),
            need("get", "", "pods/log", true),
        ];
        assert_eq!(
            compact(&refused, "ns"),
            [
                "get/create namespaces",
                "create pods in ns",
                "get pods/log in ns"
            ]
        );
    }

    #[test]
    fn install_needs_follow_the_install_set() {
        let needs = install_needs(&default_settings("ns", "rancher.io/local-path"));
        let described: Vec<String> = needs.iter().map(|n| n.describe("ns")).collect();
        for expected in [
            "create namespaces",
            "patch clusterroles",
            "create configmaps in ns",
            "get storageclasses",
        ] {
            assert!(described.contains(&expected.to_owned()), "{described:?}");
        }
        assert!(!described.iter().any(|d| d.contains("deployments")));
        assert_eq!(needs.len(), 8 * 3, "eight kinds, three verbs each");
    }
}
