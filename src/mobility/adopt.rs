//! `lpp adopt NODE:PATH --claim NS/NAME`: a PV of our provisioner, in upstream's shape, for a
//! directory that already exists on a node (kept by a Retain policy, archived by `gc prune
//! --archive`, restored from a backup), bound to a new pre-bound claim or to an existing Pending
//! one through the PV's `claimRef`. The directory stays where it is.
//!
//! [`decide`] is pure: every check that needs no node, and the objects to create. Whether the
//! directory exists is asked on the node through the executor ([`check_script`]).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, LocalVolumeSource, Node, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeNodeAffinity,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde::Serialize;

use super::{ADOPTED, Error, Provisioner, ProvisionerOptions, all_volumes, request};
use crate::cluster::{self, Target};
use crate::config::{BasePaths, ConfigMapContents, path};
use crate::exit::Exit;
use crate::provision::helper_pod::{HostDir, HostPathType, ScriptJob};
use crate::provision::volume::{
    DEFAULT_NODE_AFFINITY_KEY, PROVISIONED_BY, SELECTED_NODE, VolumeType, quantity_bytes,
};
use crate::provision::{VolumeRef, overlapping};
use crate::ui::{self, Report, Ui};

/// The size an adopted volume gets when neither `--size` nor an existing claim says.
pub const DEFAULT_SIZE: &str = "10Gi";

/// What `lpp adopt` was asked.
#[derive(Debug, Clone)]
pub struct AdoptOptions {
    /// Where the provisioner's configuration is.
    pub provisioner: ProvisionerOptions,
    /// The node the directory is on.
    pub node: String,
    /// The directory.
    pub path: String,
    /// The claim's namespace and name.
    pub namespace: String,
    /// The claim's name.
    pub claim: String,
    /// The StorageClass of the volume (and of a new claim).
    pub class: String,
    /// `--size`.
    pub size: Option<String>,
    /// `Retain` (the default for adopted data) or `Delete`.
    pub reclaim_policy: String,
    /// Adopt a directory outside the class's base paths.
    pub allow_outside_base: bool,
    /// Check and print the objects; change nothing.
    pub dry_run: bool,
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct AdoptInput<'a> {
    /// What was asked.
    pub options: &'a AdoptOptions,
    /// The node, when it exists.
    pub node: Option<&'a Node>,
    /// The class, when it exists.
    pub class: Option<&'a StorageClass>,
    /// The claim, when it exists.
    pub claim: Option<&'a PersistentVolumeClaim>,
    /// The provisioner's configuration.
    pub contents: &'a ConfigMapContents,
    /// Every PV's data location (any provisioner).
    pub volumes: &'a [VolumeRef],
    /// Our provisioner's name.
    pub provisioner: &'a str,
    /// The name the new PV gets.
    pub volume_name: &'a str,
}

/// What an adoption creates.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoption {
    /// The PV.
    pub volume: PersistentVolume,
    /// The claim to create, pre-bound to the PV; `None` when an existing claim binds to it.
    pub claim: Option<PersistentVolumeClaim>,
    /// The base path the directory lies in (`None` with `--allow-outside-base` outside them).
    pub base: Option<String>,
}

/// Decides an adoption, or says in one line why not (each check a refusal of its own).
pub fn decide(input: &AdoptInput<'_>) -> Result<Adoption, String> {
    let o = input.options;
    let node = input
        .node
        .ok_or_else(|| format!("node {} does not exist", o.node))?;
    let class = input.class.ok_or_else(|| {
        format!(
            "StorageClass {} does not exist (--class names the volume's class)",
            o.class
        )
    })?;
    if class.provisioner != input.provisioner {
        return Err(format!(
            "StorageClass {} is provisioned by {}, not {}: adopt into a class of {}",
            o.class, class.provisioner, input.provisioner, input.provisioner
        ));
    }
    let dir = path::clean(&o.path);
    if !o.path.starts_with('/') || dir == "/" {
        return Err(format!(
            "{:?} must be an absolute directory below / (e.g. /opt/local-path-provisioner/data)",
            o.path
        ));
    }
    if let Some(c) = path::control_character(&dir) {
        return Err(format!("{dir:?} holds the control character {c:?}"));
    }
    let base = match input.contents.config.paths_for(&o.class, &o.node) {
        Ok(BasePaths::Shared(_)) => {
            return Err(format!(
                "StorageClass {} uses a shared filesystem: adopt makes node-local volumes",
                o.class
            ));
        }
        // A base path holds every volume's directory: it is never one volume.
        Ok(BasePaths::Node(paths)) if paths.iter().any(|b| path::clean(b) == dir) => {
            return Err(format!(
                "{dir} is a base path of StorageClass {} on node {}: it holds the volumes' directories; adopt a directory inside it",
                o.class, o.node
            ));
        }
        Ok(BasePaths::Node(paths)) => paths
            .iter()
            .find(|b| path::is_inside(&dir, b))
            .cloned()
            .map(Ok)
            .unwrap_or_else(|| Err(paths.join(", "))),
        Err(e) => Err(e.to_string()),
    };
    let base = match base {
        Ok(base) => Some(base),
        Err(_) if o.allow_outside_base => None,
        Err(configured) => {
            return Err(format!(
                "{dir} is not inside a base path of StorageClass {} on node {} ({configured}): pass --allow-outside-base to adopt it where it is",
                o.class, o.node
            ));
        }
    };
    let affinity_key = class
        .parameters
        .as_ref()
        .and_then(|p| p.get("nodeAffinityKey"))
        .filter(|k| !k.is_empty())
        .map_or(DEFAULT_NODE_AFFINITY_KEY, String::as_str);
    let affinity_value = node.labels().get(affinity_key).cloned().ok_or_else(|| {
        format!(
            "node {} has no label {affinity_key:?} to pin the volume to",
            o.node
        )
    })?;
    let same_node = |n: &str| n == o.node || n == affinity_value;
    if let Some(other) = overlapping(input.volumes, "", Some(&o.node), same_node, &dir) {
        let how = if path::clean(&other.path) == dir {
            "uses it"
        } else if path::is_inside(&path::clean(&other.path), &dir) {
            "lies inside it"
        } else {
            "contains it"
        };
        return Err(format!(
            "PersistentVolume {} ({}) {how}: a directory is adopted only when no volume uses it, lies inside it or contains it",
            other.name, other.path
        ));
    }
    let claim_name = format!("{}/{}", o.namespace, o.claim);
    let (access_modes, requested, claim_uid, type_annotation) = match input.claim {
        Some(claim) => {
            let spec = claim.spec.clone().unwrap_or_default();
            if claim.metadata.deletion_timestamp.is_some() {
                return Err(format!("claim {claim_name} is being deleted"));
            }
            let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
            if let Some(volume) = spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
                return Err(format!(
                    "claim {claim_name} is already bound to {volume}: adopt binds only a claim that is not bound yet"
                ));
            }
            if phase.is_some_and(|p| p != "Pending") {
                return Err(format!(
                    "claim {claim_name} is {}: adopt binds only a Pending claim",
                    phase.unwrap_or_default()
                ));
            }
            let claim_class = spec.storage_class_name.clone().unwrap_or_default();
            if claim_class != o.class {
                return Err(format!(
                    "claim {claim_name} is of StorageClass {:?}, not {}: pass --class {}",
                    claim_class,
                    o.class,
                    if claim_class.is_empty() {
                        "<its class>"
                    } else {
                        &claim_class
                    }
                ));
            }
            if spec.volume_mode.as_deref() == Some("Block") {
                return Err(format!(
                    "claim {claim_name} asks for a Block volume: a directory is a Filesystem volume"
                ));
            }
            if spec.selector.is_some() {
                return Err(format!(
                    "claim {claim_name} has a spec.selector: remove it, or adopt into a new claim"
                ));
            }
            let modes = spec.access_modes.clone().unwrap_or_default();
            if let Some(bad) = modes
                .iter()
                .find(|m| *m != "ReadWriteOnce" && *m != "ReadWriteOncePod")
            {
                return Err(format!(
                    "claim {claim_name} asks for access mode {bad}: a node-local volume is ReadWriteOnce or ReadWriteOncePod"
                ));
            }
            let requested = spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .cloned();
            (
                if modes.is_empty() {
                    vec!["ReadWriteOnce".to_owned()]
                } else {
                    modes
                },
                requested,
                claim.metadata.uid.clone(),
                claim.annotations().get("volumeType").cloned(),
            )
        }
        None => (vec!["ReadWriteOnce".to_owned()], None, None, None),
    };
    let size = match (&o.size, &requested) {
        (Some(size), _) => Quantity(size.clone()),
        (None, Some(request)) => request.clone(),
        (None, None) => Quantity(DEFAULT_SIZE.to_owned()),
    };
    let size_bytes = quantity_bytes(&size)
        .ok_or_else(|| format!("--size {:?} is not a size (e.g. 10Gi)", size.0))?;
    if let Some(request) = &requested
        && quantity_bytes(request).is_some_and(|r| r > size_bytes)
    {
        return Err(format!(
            "--size {} is smaller than claim {claim_name}'s request {}: a claim binds only a volume at least its size",
            size.0, request.0
        ));
    }
    let type_text = type_annotation
        .or_else(|| class.annotations().get("defaultVolumeType").cloned())
        .unwrap_or_else(|| "hostPath".to_owned());
    let volume_type = VolumeType::parse(&type_text).ok_or_else(|| {
        format!("\"{type_text}\" is not a recognised volume type: use hostPath or local")
    })?;
    let volume = adopted_volume(&Shape {
        name: input.volume_name,
        provisioner: input.provisioner,
        node: &o.node,
        affinity: (affinity_key, &affinity_value),
        path: &dir,
        volume_type,
        capacity: size.clone(),
        access_modes: access_modes.clone(),
        claim: (&o.namespace, &o.claim, claim_uid.as_deref()),
        reclaim_policy: &o.reclaim_policy,
        class,
    });
    let claim = input.claim.is_none().then(|| PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(o.claim.clone()),
            namespace: Some(o.namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(access_modes),
            storage_class_name: Some(o.class.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), size)])),
                ..VolumeResourceRequirements::default()
            }),
            volume_name: Some(input.volume_name.to_owned()),
            volume_mode: Some("Filesystem".into()),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    });
    Ok(Adoption {
        volume,
        claim,
        base,
    })
}

/// What a volume looks like, as `decide_claim` shapes it.
struct Shape<'a> {
    name: &'a str,
    provisioner: &'a str,
    node: &'a str,
    /// The node affinity key and the node's value of it.
    affinity: (&'a str, &'a str),
    path: &'a str,
    volume_type: VolumeType,
    capacity: Quantity,
    access_modes: Vec<String>,
    /// Namespace, name and (for an existing claim) uid.
    claim: (&'a str, &'a str, Option<&'a str>),
    reclaim_policy: &'a str,
    class: &'a StorageClass,
}

/// The PV of an adopted directory: upstream's shape (as [`crate::provision::decide_claim`]
/// makes it: provisioner and selected-node annotations, node affinity on the class's key,
/// hostPath DirectoryOrCreate or local), marked [`ADOPTED`].
fn adopted_volume(shape: &Shape<'_>) -> PersistentVolume {
    let (namespace, claim, uid) = shape.claim;
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(shape.name.to_owned()),
            annotations: Some(BTreeMap::from([
                (PROVISIONED_BY.to_owned(), shape.provisioner.to_owned()),
                (SELECTED_NODE.to_owned(), shape.node.to_owned()),
                (ADOPTED.to_owned(), "true".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(shape.access_modes.clone()),
            capacity: Some(BTreeMap::from([(
                "storage".to_owned(),
                shape.capacity.clone(),
            )])),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(namespace.to_owned()),
                name: Some(claim.to_owned()),
                uid: uid.map(str::to_owned),
                ..ObjectReference::default()
            }),
            host_path: (shape.volume_type == VolumeType::HostPath).then(|| HostPathVolumeSource {
                path: shape.path.to_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            local: (shape.volume_type == VolumeType::Local).then(|| LocalVolumeSource {
                path: shape.path.to_owned(),
                fs_type: None,
            }),
            mount_options: shape.class.mount_options.clone(),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: shape.affinity.0.to_owned(),
                            operator: "In".into(),
                            values: Some(vec![shape.affinity.1.to_owned()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            persistent_volume_reclaim_policy: Some(shape.reclaim_policy.to_owned()),
            storage_class_name: shape.class.metadata.name.clone(),
            volume_mode: Some("Filesystem".into()),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

/// The script that says what `$1` is on the node: `directory`, `symlink`, `other` or
/// `missing`. A symlink is refused: the PV would name one place and the data be in another.
pub const CHECK_SCRIPT: &str = r#"p=$1
if [ -L "$p" ]; then echo symlink
elif [ -d "$p" ]; then echo directory
elif [ -e "$p" ]; then echo other
else echo missing
fi
"#;

/// The job that checks `dir` on `node`: it mounts the base path (created when missing, as a
/// helper pod's does) or, outside the base paths, the directory's parent, which must exist.
pub fn check_script(node: &str, dir: &str, base: Option<&str>, suffix: &str) -> ScriptJob {
    let mount = match base {
        Some(base) => HostDir {
            path: base.to_owned(),
            mount_path: None,
            kind: HostPathType::DirectoryOrCreate,
            read_only: true,
        },
        None => HostDir {
            path: path::split_parent(dir)
                .map_or("/", |(parent, _)| parent)
                .to_owned(),
            mount_path: None,
            kind: HostPathType::Directory,
            read_only: true,
        },
    };
    ScriptJob {
        name: format!("lpp-adopt-check-{node}-{suffix}"),
        action: "adopt-check".into(),
        node: Some(node.to_owned()),
        host_dirs: vec![mount],
        command: vec![
            "/bin/sh".into(),
            "-c".into(),
            CHECK_SCRIPT.into(),
            "lpp-adopt".into(),
        ],
        args: vec![dir.to_owned()],
        env: Vec::new(),
    }
}

/// What the check found, as a refusal (or `None` for a directory).
pub fn check_refusal(node: &str, dir: &str, answer: &str) -> Option<String> {
    match answer.trim() {
        "directory" => None,
        "missing" => Some(format!("{dir} does not exist on node {node}")),
        "symlink" => Some(format!(
            "{dir} on node {node} is a symlink: adopt the directory it points to"
        )),
        "other" => Some(format!("{dir} on node {node} is not a directory")),
        other => Some(format!(
            "cannot tell whether {dir} exists on node {node}: the check answered {other:?}"
        )),
    }
}

/// What `lpp adopt` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptReport {
    #[serde(flatten)]
    /// `apiVersion` and `kind` (`AdoptReport`).
    pub type_meta: ui::TypeMeta,
    /// Whether nothing was made (`--dry-run`).
    pub dry_run: bool,
    /// The PV's name.
    pub volume: String,
    /// The node the directory is on.
    pub node: String,
    /// The directory.
    pub path: String,
    /// The claim, `namespace/name`.
    pub claim: String,
    /// Whether the claim was made by adopt (else an existing Pending claim was bound).
    pub claim_created: bool,
    /// The volume's StorageClass.
    pub storage_class: String,
    /// The volume's capacity.
    pub capacity: String,
    /// `Retain` or `Delete`.
    pub reclaim_policy: String,
    /// Whether the claim was Bound when adopt returned.
    pub bound: bool,
    /// With `--dry-run`: the objects adopt would create.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<serde_json::Value>,
}

impl Report for AdoptReport {
    fn tables(&self, _wide: bool) -> Vec<comfy_table::Table> {
        let mut t = ui::table([
            "volume", "node", "path", "claim", "capacity", "reclaim", "status",
        ]);
        let status = match (self.dry_run, self.bound) {
            (true, _) => "would be adopted (dry run)",
            (false, true) => "adopted, Bound",
            (false, false) => "adopted, not Bound yet",
        };
        t.add_row(vec![
            self.volume.clone(),
            self.node.clone(),
            self.path.clone(),
            self.claim.clone(),
            self.capacity.clone(),
            self.reclaim_policy.clone(),
            status.to_owned(),
        ]);
        vec![t]
    }

    fn names(&self) -> Vec<String> {
        vec![format!("persistentvolume/{}", self.volume)]
    }
}

/// How long adopt waits for the claim to bind before saying it is not Bound yet.
const BIND_WAIT: Duration = Duration::from_secs(30);

/// `lpp adopt`.
pub async fn adopt(ui: &Ui, target: &Target, options: AdoptOptions) -> Result<Exit, Error> {
    let cluster = cluster::connect(target).await?;
    let client = &cluster.client;
    let provisioner = Provisioner::read(client, &options.provisioner).await?;
    let node = Api::<Node>::all(client.clone())
        .get_opt(&options.node)
        .await
        .map_err(request("get", format!("node {}", options.node)))?;
    let class = Api::<StorageClass>::all(client.clone())
        .get_opt(&options.class)
        .await
        .map_err(request("get", format!("storageclass {}", options.class)))?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &options.namespace);
    let claim = claims.get_opt(&options.claim).await.map_err(request(
        "get",
        format!(
            "persistentvolumeclaim {}/{}",
            options.namespace, options.claim
        ),
    ))?;
    let volumes: Vec<VolumeRef> = all_volumes(client)
        .await?
        .iter()
        .filter_map(VolumeRef::of)
        .collect();
    let volume_name = super::fresh_volume_name();
    let adoption = decide(&AdoptInput {
        options: &options,
        node: node.as_ref(),
        class: class.as_ref(),
        claim: claim.as_ref(),
        contents: &provisioner.contents,
        volumes: &volumes,
        provisioner: &options.provisioner.provisioner_name,
        volume_name: &volume_name,
    })
    .map_err(Error::Refused)?;
    let dir = path::clean(&options.path);
    let job = check_script(
        &options.node,
        &dir,
        adoption.base.as_deref(),
        &crate::gc::scan::suffix(),
    );
    let answer = provisioner
        .executor
        .script(
            &provisioner.helpers,
            &job,
            provisioner.cmd_timeout,
            provisioner.kind,
        )
        .await
        .map_err(|e| Error::Failed(format!("cannot check {dir} on node {}: {e}", options.node)))?;
    if let Some(refusal) = check_refusal(&options.node, &dir, &answer) {
        return Err(Error::Refused(refusal));
    }
    let claim_text = format!("{}/{}", options.namespace, options.claim);
    let capacity = adoption
        .volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_default();
    let mut report = AdoptReport {
        type_meta: ui::TypeMeta::new("AdoptReport"),
        dry_run: options.dry_run,
        volume: volume_name.clone(),
        node: options.node.clone(),
        path: dir.clone(),
        claim: claim_text.clone(),
        claim_created: adoption.claim.is_some(),
        storage_class: options.class.clone(),
        capacity,
        reclaim_policy: options.reclaim_policy.clone(),
        bound: false,
        objects: Vec::new(),
    };
    if options.reclaim_policy == "Retain" {
        ui.note(
            "reclaim policy Retain: deleting the claim keeps the volume and the data \
             (--reclaim-policy Delete removes the directory with the claim)",
        );
    }
    if options.dry_run {
        let mut objects = vec![with_kind(&adoption.volume, "PersistentVolume")];
        if let Some(claim) = &adoption.claim {
            objects.push(with_kind(claim, "PersistentVolumeClaim"));
        }
        if matches!(ui.format(), ui::Format::Table | ui::Format::Wide) {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            ui.write_stdout(&ui::to_yaml(&list)?)?;
        } else {
            report.objects = objects;
            ui.print(&report)?;
        }
        return Ok(Exit::Success);
    }
    let how = if adoption.claim.is_some() {
        format!("a new claim {claim_text}")
    } else {
        format!("the Pending claim {claim_text}")
    };
    ui.confirm(&format!(
        "Adopt {}:{dir} as volume {volume_name} ({}) for {how} on context {}",
        options.node, options.reclaim_policy, cluster.context
    ))?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.create(&PostParams::default(), &adoption.volume)
        .await
        .map_err(request("create", format!("persistentvolume {volume_name}")))?;
    if let Some(claim) = &adoption.claim
        && let Err(e) = claims.create(&PostParams::default(), claim).await
    {
        // Nothing half-made stays: the PV goes again (the data was never touched).
        let _ = pvs.delete(&volume_name, &DeleteParams::default()).await;
        return Err(request(
            "create",
            format!("persistentvolumeclaim {claim_text}"),
        )(e));
    }
    let bound = kube::runtime::wait::await_condition(
        claims.clone(),
        &options.claim,
        |c: Option<&PersistentVolumeClaim>| {
            c.is_some_and(|c| {
                c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                    && c.spec.as_ref().and_then(|s| s.volume_name.as_deref())
                        == Some(volume_name.as_str())
            })
        },
    );
    report.bound = matches!(tokio::time::timeout(BIND_WAIT, bound).await, Ok(Ok(_)));
    if !report.bound {
        ui.warn(&format!(
            "claim {claim_text} is not Bound to {volume_name} yet (`kubectl describe pvc -n {} {}`)",
            options.namespace, options.claim
        ));
    }
    ui.print(&report)?;
    Ok(Exit::Success)
}

/// An object as JSON with its `apiVersion` and `kind`, as kubectl prints it.
fn with_kind<T: Serialize>(object: &T, kind: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), "v1".into());
        map.insert("kind".into(), kind.into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::{ClaimDecision, ClaimInput, decide_claim};
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn contents() -> ConfigMapContents {
        ConfigMapContents::from_data(&crate::config::default_config_map_data(), None, None).unwrap()
    }

    fn node(name: &str) -> Node {
        from(
            json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": format!("host-{name}")}}}),
        )
    }

    fn class(extra: serde_json::Value) -> StorageClass {
        let mut c = json!({"metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
                           "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        from(c)
    }

    fn options(path: &str) -> AdoptOptions {
        AdoptOptions {
            provisioner: ProvisionerOptions {
                namespace: "local-path-storage".into(),
                provisioner_name: "rancher.io/local-path".into(),
                config_map: "local-path-config".into(),
                helper_image: None,
            },
            node: "n1".into(),
            path: path.into(),
            namespace: "default".into(),
            claim: "data".into(),
            class: "local-path".into(),
            size: None,
            reclaim_policy: "Retain".into(),
            allow_outside_base: false,
            dry_run: false,
        }
    }

    fn pending_claim(extra: serde_json::Value) -> PersistentVolumeClaim {
        let mut c = json!({"metadata": {"name": "data", "namespace": "default", "uid": "u-1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "resources": {"requests": {"storage": "2Gi"}}},
            "status": {"phase": "Pending"}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        from(c)
    }

    struct World {
        node: Option<Node>,
        class: Option<StorageClass>,
        claim: Option<PersistentVolumeClaim>,
        volumes: Vec<VolumeRef>,
        contents: ConfigMapContents,
    }

    impl World {
        fn new() -> Self {
            World {
                node: Some(node("n1")),
                class: Some(class(json!({}))),
                claim: None,
                volumes: Vec::new(),
                contents: contents(),
            }
        }

        fn decide(&self, options: &AdoptOptions) -> Result<Adoption, String> {
            decide(&AdoptInput {
                options,
                node: self.node.as_ref(),
                class: self.class.as_ref(),
                claim: self.claim.as_ref(),
                contents: &self.contents,
                volumes: &self.volumes,
                provisioner: "rancher.io/local-path",
                volume_name: "pvc-new",
            })
        }
    }

    const DIR: &str = "/opt/local-path-provisioner/restored";

    #[test]
    fn a_new_claim_is_made_pre_bound_and_the_volume_is_retained() {
        let adoption = World::new().decide(&options(DIR)).unwrap();
        let claim = adoption.claim.unwrap();
        assert_eq!(
            claim.spec.as_ref().unwrap().volume_name.as_deref(),
            Some("pvc-new")
        );
        let spec = adoption.volume.spec.unwrap();
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
        assert_eq!(spec.capacity.unwrap()["storage"].0, DEFAULT_SIZE);
        assert_eq!(spec.host_path.unwrap().path, DIR);
        assert_eq!(spec.claim_ref.unwrap().uid, None);
        assert_eq!(
            adoption.volume.metadata.annotations.unwrap()[ADOPTED],
            "true"
        );
        assert_eq!(
            adoption.base.as_deref(),
            Some("/opt/local-path-provisioner")
        );
    }

    #[test]
    fn a_pending_claim_is_bound_through_the_claim_ref_with_its_uid_and_size() {
        let mut world = World::new();
        world.claim = Some(pending_claim(json!({})));
        let adoption = world.decide(&options(DIR)).unwrap();
        assert!(adoption.claim.is_none());
        let spec = adoption.volume.spec.unwrap();
        assert_eq!(spec.claim_ref.unwrap().uid.as_deref(), Some("u-1"));
        assert_eq!(spec.capacity.unwrap()["storage"].0, "2Gi");
        let mut small = options(DIR);
        small.size = Some("1Gi".into());
        assert!(world.decide(&small).unwrap_err().contains("smaller"));
    }

    #[test]
    fn each_refusal_says_why() {
        let refused = |world: &World, o: &AdoptOptions, needle: &str| {
            let e = world.decide(o).unwrap_err();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        };
        let mut world = World::new();
        refused(
            &world,
            &options("/elsewhere/data"),
            "not inside a base path",
        );
        let mut outside = options("/elsewhere/data");
        outside.allow_outside_base = true;
        assert_eq!(world.decide(&outside).unwrap().base, None);
        refused(&world, &options("relative"), "absolute");
        refused(&world, &options("/"), "absolute");
        refused(
            &world,
            &options("/opt/local-path-provisioner"),
            "is a base path",
        );
        let mut base = options("/opt/local-path-provisioner/");
        base.allow_outside_base = true;
        refused(&world, &base, "is a base path");
        world.volumes = vec![VolumeRef {
            name: "pvc-old".into(),
            node: Some("host-n1".into()),
            path: format!("{DIR}/deeper"),
        }];
        refused(&world, &options(DIR), "lies inside it");
        world.volumes[0].path = DIR.into();
        refused(&world, &options(DIR), "uses it");
        world.volumes[0].path = "/opt/local-path-provisioner".into();
        refused(&world, &options(DIR), "contains it");
        // Another node's directory of that name is another directory.
        world.volumes[0].node = Some("n2".into());
        assert!(world.decide(&options(DIR)).is_ok());
        world.claim = Some(pending_claim(json!({"spec": {"volumeName": "pvc-x",
            "storageClassName": "local-path", "accessModes": ["ReadWriteOnce"]}})));
        refused(&world, &options(DIR), "already bound");
        world.claim = Some(pending_claim(json!({"status": {"phase": "Lost"}})));
        refused(&world, &options(DIR), "is Lost");
        world.claim = Some(pending_claim(json!({"spec": {"storageClassName": "other",
            "accessModes": ["ReadWriteOnce"]}})));
        refused(&world, &options(DIR), "--class other");
        world.claim = Some(pending_claim(
            json!({"spec": {"storageClassName": "local-path",
            "accessModes": ["ReadWriteMany"]}}),
        ));
        refused(&world, &options(DIR), "ReadWriteMany");
        world.claim = None;
        world.node = None;
        refused(&world, &options(DIR), "node n1 does not exist");
        world.node = Some(node("n1"));
        world.class = Some(class(json!({"provisioner": "other.io/x"})));
        refused(&world, &options(DIR), "provisioned by other.io/x");
        world.class = None;
        refused(&world, &options(DIR), "does not exist");
    }

    #[test]
    fn the_volume_has_the_shape_provisioning_gives() {
        // The same claim provisioned by `decide_claim` and adopted at the same path: the same
        // PV but for the adopted mark, the claim's uid and the reclaim policy.
        let world = World {
            class: Some(class(
                json!({"parameters": {"nodeAffinityKey": "kubernetes.io/hostname"},
                                       "annotations": {"defaultVolumeType": "local"}}),
            )),
            ..World::new()
        };
        let claim = pending_claim(json!({"metadata": {"name": "data", "namespace": "default",
            "uid": "u-1", "annotations": {"volume.kubernetes.io/selected-node": "n1"}}}));
        let ClaimDecision::Provision(plan) = decide_claim(&ClaimInput {
            claim: &claim,
            class: world.class.as_ref(),
            node: world.node.as_ref(),
            contents: &world.contents,
            provisioner: "rancher.io/local-path",
            volume_exists: false,
            choice: 0,
            volumes: &[],
            capacity: None,
        }) else {
            panic!("not provisioned");
        };
        let mut o = options(&plan.path);
        o.reclaim_policy = "Delete".into();
        let world = World {
            claim: Some(claim),
            ..world
        };
        let mut adopted = decide(&AdoptInput {
            options: &o,
            node: world.node.as_ref(),
            class: world.class.as_ref(),
            claim: world.claim.as_ref(),
            contents: &world.contents,
            volumes: &[],
            provisioner: "rancher.io/local-path",
            volume_name: &plan.pv_name,
        })
        .unwrap()
        .volume;
        adopted
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(ADOPTED);
        let mut provisioned = plan.volume;
        provisioned
            .spec
            .as_mut()
            .unwrap()
            .claim_ref
            .as_mut()
            .unwrap()
            .resource_version = None;
        assert_eq!(adopted, provisioned);
    }

    #[test]
    fn the_check_mounts_the_base_path_or_the_parent() {
        let inside = check_script("n1", DIR, Some("/opt/local-path-provisioner"), "x");
        assert_eq!(inside.host_dirs[0].path, "/opt/local-path-provisioner");
        assert_eq!(inside.args, [DIR]);
        let outside = check_script("n1", "/srv/data", None, "x");
        assert_eq!(outside.host_dirs[0].path, "/srv");
        assert_eq!(outside.host_dirs[0].kind, HostPathType::Directory);
        assert_eq!(check_refusal("n1", DIR, "directory\n"), None);
        assert!(
            check_refusal("n1", DIR, "missing")
                .unwrap()
                .contains("does not exist")
        );
        assert!(
            check_refusal("n1", DIR, "symlink")
                .unwrap()
                .contains("symlink")
        );
        assert!(
            check_refusal("n1", DIR, "")
                .unwrap()
                .contains("cannot tell")
        );
    }
}
