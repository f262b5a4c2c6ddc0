//! Rules about objects that do not depend on HTTP: strict typed decoding, validation (422),
//! defaulting, and the server-set metadata (uid, creationTimestamp, generateName).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

use super::resources::Resource;

/// The generator's state: a time-seeded start, then a fixed step per call.
static STATE: AtomicU64 = AtomicU64::new(0);
/// splitmix64's step (the golden ratio), odd: 2^64 calls pass before a state repeats.
const STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// A pseudo-random number (splitmix64): uids and generated names only need to be unique, not
/// unpredictable. Each call takes its own state with one atomic add, so calls on many threads at
/// once never share one (a load-then-store would, and two objects created together would get
/// the same uid); and the mix is a bijection, so distinct states give distinct numbers.
pub fn random() -> u64 {
    if STATE.load(Ordering::Relaxed) == 0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(STEP);
        let seed = (now ^ (u64::from(std::process::id()) << 32)) | 1;
        // Only the first caller seeds; the others keep what it set.
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE.fetch_add(STEP, Ordering::Relaxed).wrapping_add(STEP);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A version-4 style uid.
pub fn uid() -> String {
    let a = random();
    let b = random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// The 5-character suffix of generateName, from the apiserver's alphabet.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Now, as RFC 3339 seconds (`2026-01-01T00:00:00Z`).
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Now with microseconds, as events.k8s.io and leases write times.
pub fn now_micro() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Microsecond)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

fn roundtrip<T>(object: &Value) -> Result<Value, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Decodes the object into its k8s-openapi type, as the apiserver decodes strictly by type (a
/// boolean where a string belongs is refused), and returns it re-encoded: nulls and unknown
/// fields dropped, as the real server stores it.
pub fn normalize(resource: &Resource, object: &Value) -> Result<Value, String> {
    use k8s_openapi::api::{apps, coordination, core, events, rbac, storage};
    let r = match (resource.group, resource.kind) {
        ("", "Namespace") => roundtrip::<core::v1::Namespace>(object),
        ("", "Node") => roundtrip::<core::v1::Node>(object),
        ("", "Pod") => roundtrip::<core::v1::Pod>(object),
        ("", "PersistentVolume") => roundtrip::<core::v1::PersistentVolume>(object),
        ("", "PersistentVolumeClaim") => roundtrip::<core::v1::PersistentVolumeClaim>(object),
        ("", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(object),
        ("", "Secret") => roundtrip::<core::v1::Secret>(object),
        ("", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(object),
        ("", "Event") => roundtrip::<core::v1::Event>(object),
        ("events.k8s.io", _) => roundtrip::<events::v1::Event>(object),
        ("storage.k8s.io", "CSIDriver") => roundtrip::<storage::v1::CSIDriver>(object),
        ("storage.k8s.io", "CSIStorageCapacity") => {
            roundtrip::<storage::v1::CSIStorageCapacity>(object)
        }
        ("storage.k8s.io", _) => roundtrip::<storage::v1::StorageClass>(object),
        ("coordination.k8s.io", _) => roundtrip::<coordination::v1::Lease>(object),
        ("apps", "Deployment") => roundtrip::<apps::v1::Deployment>(object),
        ("apps", "DaemonSet") => roundtrip::<apps::v1::DaemonSet>(object),
        ("apps", "ControllerRevision") => roundtrip::<apps::v1::ControllerRevision>(object),
        (_, "Role") => roundtrip::<rbac::v1::Role>(object),
        (_, "RoleBinding") => roundtrip::<rbac::v1::RoleBinding>(object),
        (_, "ClusterRole") => roundtrip::<rbac::v1::ClusterRole>(object),
        (_, "ClusterRoleBinding") => roundtrip::<rbac::v1::ClusterRoleBinding>(object),
        _ => Ok(object.clone()),
    };
    r.map_err(|e| {
        format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = resource.kind,
            version = resource.version
        )
    })
}

/// Decodes strictly by type (see [`normalize`]).
pub fn typed_check(resource: &Resource, object: &Value) -> Result<(), String> {
    normalize(resource, object).map(|_| ())
}

/// The fields of `input` that its typed re-encoding `decoded` lost: fields the schema does not
/// declare (`spec.foo`, `spec.containers[0].bogus`).
pub fn unknown_fields(input: &Value, decoded: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_fields(input, decoded, "", &mut out);
    out
}

fn diff_fields(input: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None => out.push(here),
                    Some(d) => diff_fields(v, d, &here, out),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, d)) in a.iter().zip(b).enumerate() {
                diff_fields(v, d, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Whether a name is a DNS-1123 subdomain (most kinds' names).
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether a name is a DNS-1123 label (namespaces).
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns_subdomain(name)
}

/// The problems that make an object invalid (422), as (field, message) pairs.
pub fn validate(resource: &Resource, object: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let label_only = matches!(resource.kind, "Namespace");
    let rbac = resource.group == "rbac.authorization.k8s.io";
    if name.is_empty() {
        causes.push((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
        ));
    } else if label_only && !is_dns_label(name) {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
        ));
    } else if !label_only && !rbac && !is_dns_subdomain(name) {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
        ));
    }
    let missing = |path: &str| object.pointer(path).is_none_or(Value::is_null);
    match (resource.group, resource.kind) {
        ("", "Pod") => {
            let containers = object.pointer("/spec/containers").and_then(Value::as_array);
            match containers {
                None => causes.push(("spec.containers".into(), "Required value".into())),
                Some(list) if list.is_empty() => {
                    causes.push(("spec.containers".into(), "Required value".into()))
                }
                Some(list) => {
                    for (i, c) in list.iter().enumerate() {
                        if c.get("name")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            causes.push((
                                format!("spec.containers[{i}].name"),
                                "Required value".into(),
                            ));
                        }
                        if c.get("image")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            causes.push((
                                format!("spec.containers[{i}].image"),
                                "Required value".into(),
                            ));
                        }
                    }
                }
            }
        }
        ("", "PersistentVolume") => {
            if missing("/spec/capacity/storage") {
                causes.push(("spec.capacity".into(), "Required value".into()));
            }
            if object
                .pointer("/spec/accessModes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                causes.push(("spec.accessModes".into(), "Required value".into()));
            }
        }
        ("", "PersistentVolumeClaim") => {
            if object
                .pointer("/spec/accessModes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                causes.push(("spec.accessModes".into(), "Required value".into()));
            }
            if missing("/spec/resources/requests/storage") {
                causes.push(("spec.resources[storage]".into(), "Required value".into()));
            }
        }
        ("apps", "DaemonSet") => causes.extend(daemon_set_causes(object)),
        ("storage.k8s.io", "CSIStorageCapacity") => causes.extend(capacity_causes(object)),
        ("storage.k8s.io", "StorageClass")
            if object
                .get("provisioner")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            causes.push(("provisioner".into(), "Required value".into()));
        }
        _ => {}
    }
    causes
}

/// Go's `%#v` of a `map[string]string`, as validation messages print label maps.
fn go_string_map(map: Option<&Value>) -> String {
    let Some(m) = map.and_then(Value::as_object) else {
        return "map[string]string(nil)".into();
    };
    let pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
        .collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// `ValidateDaemonSetSpec` (pkg/apis/apps/validation/validation.go), the parts a user meets:
/// a selector is required, not empty, and matches the template's labels; the template's
/// restartPolicy is `Always`.
fn daemon_set_causes(object: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let labels = object.pointer("/spec/template/metadata/labels");
    match object.pointer("/spec/selector") {
        None | Some(Value::Null) => {
            causes.push(("spec.selector".into(), "Required value".into()));
        }
        Some(selector) => match super::selector::LabelSelector::from_spec(selector) {
            Err(e) => causes.push(("spec.selector".into(), format!("Invalid value: {e}"))),
            Ok(s) if s.is_empty() => causes.push((
                "spec.selector".into(),
                "Invalid value: \"null\": empty selector is invalid for daemonset".into(),
            )),
            Ok(s) if !s.matches_labels(labels) => causes.push((
                "spec.template.metadata.labels".into(),
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    go_string_map(labels)
                ),
            )),
            Ok(_) => {}
        },
    }
    let restart = object
        .pointer("/spec/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if restart != "Always" {
        causes.push((
            "spec.template.spec.restartPolicy".into(),
            format!("Unsupported value: {restart:?}: supported values: \"Always\""),
        ));
    }
    causes
}

/// `ValidateCSIStorageCapacity` (pkg/apis/storage/validation/validation.go): the class name is
/// a DNS-1123 subdomain, the node topology a valid selector, the sizes not negative.
fn capacity_causes(object: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let class = object
        .get("storageClassName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !is_dns_subdomain(class) {
        causes.push((
            "storageClassName".into(),
            format!("Invalid value: \"{class}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
        ));
    }
    if let Some(topology) = object.get("nodeTopology").filter(|t| !t.is_null())
        && let Err(e) = super::selector::LabelSelector::from_spec(topology)
    {
        causes.push((
            "nodeTopology.matchExpressions".into(),
            format!("Invalid value: {e}"),
        ));
    }
    for field in ["capacity", "maximumVolumeSize"] {
        if let Some(q) = object.get(field).and_then(Value::as_str)
            && q.trim_start().starts_with('-')
        {
            causes.push((
                field.into(),
                format!("Invalid value: \"{q}\": must be greater than or equal to 0"),
            ));
        }
    }
    causes
}

/// The annotation an apps/v1 DaemonSet carries its template generation in: the internal
/// `spec.templateGeneration` that `pkg/apis/apps/v1/conversion.go` maps to it. Pods carry the
/// same number in their `pod-template-generation` label.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn template_generation(object: &Value) -> Option<i64> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TEMPLATE_GENERATION))
        .and_then(Value::as_str)
        .and_then(|g| g.parse().ok())
}

fn set_template_generation(object: &mut Value, generation: i64) {
    if let Some(obj) = object.as_object_mut() {
        entry(entry(obj, "metadata"), "annotations")
            .insert(TEMPLATE_GENERATION.into(), json!(generation.to_string()));
    }
}

/// What the registry strategy sets on a new object beyond defaults: a DaemonSet's template
/// generation starts at 1 (`PrepareForCreate` in pkg/registry/apps/daemonset/strategy.go).
pub fn prepare_create(resource: &Resource, object: &mut Value) {
    if (resource.group, resource.kind) == ("apps", "DaemonSet") {
        let generation = template_generation(object).unwrap_or(0).max(1);
        set_template_generation(object, generation);
    }
}

/// What the registry strategy sets on an update: a DaemonSet's template generation is the
/// server's, one more when `spec.template` changed (`PrepareForUpdate`, same file).
pub fn prepare_update(resource: &Resource, current: &Value, new: &mut Value) {
    if (resource.group, resource.kind) == ("apps", "DaemonSet") {
        let old = template_generation(current).unwrap_or(1);
        let changed = current.pointer("/spec/template") != new.pointer("/spec/template");
        set_template_generation(new, if changed { old + 1 } else { old });
    }
}

/// `ValidatePersistentVolumeClaimUpdate` (pkg/apis/core/validation/validation.go) as v1.33
/// runs it, with RecoverVolumeExpansionFailure on (beta, default on): the spec is immutable
/// except `volumeName` (set once), `volumeAttributesClassName`, and — for a Bound claim —
/// `resources.requests.storage`; a lowered request must stay above `status.capacity` (it may
/// come back down from a failed expansion, never shrink the volume).
fn claim_update_causes(current: &Value, new: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let unnamed = current
        .pointer("/spec/volumeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    // An update through the main resource keeps the stored status, so this is the phase the
    // validation sees on the new object too.
    let bound = current.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    let comparable = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(m) = spec.as_object_mut() {
            m.remove("volumeAttributesClassName");
            if unnamed {
                m.remove("volumeName");
            }
            if bound
                && let Some(requests) = m
                    .get_mut("resources")
                    .and_then(|r| r.get_mut("requests"))
                    .and_then(Value::as_object_mut)
            {
                requests.remove("storage");
            }
        }
        spec
    };
    if comparable(current) != comparable(new) {
        causes.push((
            "spec".into(),
            "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into(),
        ));
    }
    let bytes = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .and_then(super::node::binding::quantity_bytes)
            .unwrap_or(0)
    };
    let (old, asked) = (
        bytes(current, "/spec/resources/requests/storage"),
        bytes(new, "/spec/resources/requests/storage"),
    );
    if asked < old && asked <= bytes(current, "/status/capacity/storage") {
        causes.push((
            "spec.resources.requests.storage".into(),
            "Forbidden: field can not be less than status.capacity".into(),
        ));
    }
    causes
}

/// The resize states `allocatedResourceStatuses` may hold (`resizeStatusSet`, sorted as the
/// apiserver lists them). Since v1.31 the failed states are `…Infeasible` (`ClaimResourceStatus`
/// in k8s.io/api core/v1 types.go); the field's generated docs still say `…Failed`, which the
/// apiserver refuses.
const RESIZE_STATUSES: &[&str] = &[
    "ControllerResizeInProgress",
    "ControllerResizeInfeasible",
    "NodeResizeInProgress",
    "NodeResizeInfeasible",
    "NodeResizePending",
];

/// `validatePersistentVolumeClaimResourceKey`: a key without a prefix (or under
/// `kubernetes.io/`) names a native resource, and the only one a claim has is `storage`.
fn claim_resource_key_causes(key: &str, path: &str) -> Option<(String, String)> {
    let native = !key.contains('/') || key.contains("kubernetes.io/");
    (native && key != "storage").then(|| {
        (
            path.to_string(),
            format!("Unsupported value: {key:?}: supported values: \"storage\""),
        )
    })
}

/// `ValidatePersistentVolumeClaimStatusUpdate` (same file), the parts the resize fields need:
/// `allocatedResourceStatuses` keys and states, `allocatedResources` keys and sizes.
fn claim_status_causes(new: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let statuses = new
        .pointer("/status/allocatedResourceStatuses")
        .and_then(Value::as_object);
    for (key, state) in statuses.into_iter().flatten() {
        let path = "status.allocatedResourceStatus";
        causes.extend(claim_resource_key_causes(key, path));
        if !RESIZE_STATUSES.contains(&state.as_str().unwrap_or_default()) {
            // The apiserver names the key, not the state, as the unsupported value.
            let supported: Vec<String> = RESIZE_STATUSES.iter().map(|s| format!("{s:?}")).collect();
            causes.push((
                path.into(),
                format!(
                    "Unsupported value: {key:?}: supported values: {}",
                    supported.join(", ")
                ),
            ));
        }
    }
    let allocated = new
        .pointer("/status/allocatedResources")
        .and_then(Value::as_object);
    for (key, quantity) in allocated.into_iter().flatten() {
        if let Some(cause) = claim_resource_key_causes(key, "status.allocatedResources") {
            causes.push(cause);
            continue;
        }
        let q = quantity.as_str().unwrap_or_default();
        if q.trim_start().starts_with('-') {
            causes.push((
                format!("status.allocatedResources[{key}]"),
                format!("Invalid value: \"{q}\": must be greater than or equal to 0"),
            ));
        }
    }
    causes
}

/// What a `/status` update may not set, as (field, message) causes for a 422.
pub fn status_violations(resource: &Resource, new: &Value) -> Vec<(String, String)> {
    match (resource.group, resource.kind) {
        ("", "PersistentVolumeClaim") => claim_status_causes(new),
        _ => Vec::new(),
    }
}

/// What an update may not change, as (field, message) causes for a 422.
pub fn update_violations(
    resource: &Resource,
    current: &Value,
    new: &Value,
) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    if current.pointer("/metadata/deletionTimestamp").is_some() {
        let old: Vec<&Value> = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let added: Vec<String> = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|f| !old.contains(f))
                    .filter_map(Value::as_str)
                    .map(|f| format!("{f:?}"))
                    .collect()
            })
            .unwrap_or_default();
        if !added.is_empty() {
            causes.push((
                "metadata.finalizers".into(),
                format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    added.join(", ")
                ),
            ));
        }
    }
    match (resource.group, resource.kind) {
        ("storage.k8s.io", "StorageClass") => {
            for field in ["parameters", "provisioner", "reclaimPolicy"] {
                if current.get(field) != new.get(field) {
                    causes.push((
                        field.into(),
                        format!("Forbidden: updates to {field} are forbidden."),
                    ));
                }
            }
            if current.get("volumeBindingMode") != new.get("volumeBindingMode") {
                causes.push((
                    "volumeBindingMode".into(),
                    format!(
                        "Invalid value: {}: field is immutable",
                        new.get("volumeBindingMode").cloned().unwrap_or(Value::Null)
                    ),
                ));
            }
        }
        ("apps", "DaemonSet")
            if current.pointer("/spec/selector") != new.pointer("/spec/selector") =>
        {
            let selector = new.pointer("/spec/selector");
            let expressions = match selector.and_then(|s| s.get("matchExpressions")) {
                Some(e) if !e.is_null() => format!("[]v1.LabelSelectorRequirement{e}"),
                _ => "[]v1.LabelSelectorRequirement(nil)".into(),
            };
            causes.push((
                "spec.selector".into(),
                format!(
                    "Invalid value: v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{expressions}}}: field is immutable",
                    go_string_map(selector.and_then(|s| s.get("matchLabels")))
                ),
            ));
        }
        ("storage.k8s.io", "CSIDriver") => {
            // ValidateCSIDriverUpdate: these two stay as created (the source names the first
            // `attachedRequired`, and so does the message).
            for (field, path) in [
                ("attachRequired", "spec.attachedRequired"),
                ("volumeLifecycleModes", "spec.volumeLifecycleModes"),
            ] {
                let (old, new) = (
                    current.pointer(&format!("/spec/{field}")),
                    new.pointer(&format!("/spec/{field}")),
                );
                if old != new {
                    let shown = match new {
                        Some(Value::Array(modes)) => format!(
                            "[]storage.VolumeLifecycleMode{{{}}}",
                            modes
                                .iter()
                                .map(|m| format!("{:?}", m.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        Some(v) => v.to_string(),
                        None => "null".into(),
                    };
                    causes.push((
                        path.into(),
                        format!("Invalid value: {shown}: field is immutable"),
                    ));
                }
            }
        }
        ("storage.k8s.io", "CSIStorageCapacity") => {
            // ValidateCSIStorageCapacityUpdate: only the sizes may change.
            if current.get("storageClassName") != new.get("storageClassName") {
                causes.push((
                    "storageClassName".into(),
                    format!(
                        "Invalid value: {}: field is immutable",
                        new.get("storageClassName").cloned().unwrap_or(Value::Null)
                    ),
                ));
            }
            if current.get("nodeTopology") != new.get("nodeTopology") {
                causes.push((
                    "nodeTopology".into(),
                    "Invalid value: the node topology: field is immutable".into(),
                ));
            }
        }
        ("", "PersistentVolumeClaim") => causes.extend(claim_update_causes(current, new)),
        ("", "PersistentVolume") => {
            let source = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(m) = spec.as_object_mut() {
                    for mutable in [
                        "capacity",
                        "accessModes",
                        "claimRef",
                        "persistentVolumeReclaimPolicy",
                        "storageClassName",
                        "mountOptions",
                        "nodeAffinity",
                        "volumeMode",
                        "volumeAttributesClassName",
                    ] {
                        m.remove(mutable);
                    }
                }
                spec
            };
            if source(current) != source(new) {
                causes.push((
                    "spec.persistentvolumesource".into(),
                    "Forbidden: spec.persistentvolumesource is immutable after creation".into(),
                ));
            }
        }
        ("", "Pod") => {
            let comparable = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(m) = spec.as_object_mut() {
                    m.remove("activeDeadlineSeconds");
                    m.remove("tolerations");
                    for list in ["containers", "initContainers"] {
                        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                                c.remove("image");
                            }
                        }
                    }
                }
                spec
            };
            if comparable(current) != comparable(new) {
                causes.push((
                    "spec".into(),
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into(),
                ));
            }
        }
        _ => {}
    }
    causes
}

fn entry<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    let Value::Object(m) = slot else {
        unreachable!("the slot was just made an object")
    };
    m
}

fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_string()).or_insert(value);
}

/// Fills the fields the apiserver defaults (on every write: filling is idempotent).
pub fn apply_defaults(resource: &Resource, object: &mut Value) {
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    match (resource.group, resource.kind) {
        ("", "Namespace") => {
            entry(obj, "spec")
                .entry("finalizers")
                .or_insert_with(|| json!(["kubernetes"]));
            default(entry(obj, "status"), "phase", json!("Active"));
            let name = obj
                .get("metadata")
                .and_then(|m| m.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            let labels = entry(entry(obj, "metadata"), "labels");
            default(labels, "kubernetes.io/metadata.name", name);
        }
        ("", "Pod") => {
            pod_spec_defaults(entry(obj, "spec"));
            let status = entry(obj, "status");
            default(status, "phase", json!("Pending"));
            default(status, "qosClass", json!("BestEffort"));
        }
        ("", "PersistentVolume") => {
            let spec = entry(obj, "spec");
            default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            default(spec, "volumeMode", json!("Filesystem"));
            default(entry(obj, "status"), "phase", json!("Pending"));
        }
        ("", "PersistentVolumeClaim") => {
            default(entry(obj, "spec"), "volumeMode", json!("Filesystem"));
            default(entry(obj, "status"), "phase", json!("Pending"));
        }
        ("", "Secret") => default(obj, "type", json!("Opaque")),
        ("storage.k8s.io", "StorageClass") => {
            default(obj, "reclaimPolicy", json!("Delete"));
            default(obj, "volumeBindingMode", json!("Immediate"));
        }
        ("storage.k8s.io", "CSIDriver") => {
            // SetDefaults_CSIDriver (pkg/apis/storage/v1/defaults.go), with the SELinux mount
            // feature on as in v1.33.
            let spec = entry(obj, "spec");
            default(spec, "attachRequired", json!(true));
            default(spec, "podInfoOnMount", json!(false));
            default(spec, "storageCapacity", json!(false));
            default(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
            default(spec, "requiresRepublish", json!(false));
            default(spec, "seLinuxMount", json!(false));
            if spec
                .get("volumeLifecycleModes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                spec.insert("volumeLifecycleModes".into(), json!(["Persistent"]));
            }
        }
        ("apps", "Deployment" | "DaemonSet") => {
            let spec = entry(obj, "spec");
            pod_spec_defaults(entry(entry(spec, "template"), "spec"));
            default(spec, "revisionHistoryLimit", json!(10));
            if resource.kind == "Deployment" {
                default(spec, "replicas", json!(1));
                default(spec, "progressDeadlineSeconds", json!(600));
                default(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
            } else {
                default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
                );
            }
        }
        _ => {}
    }
}

/// The defaults of a pod spec, in pods and in workload templates alike.
fn pod_spec_defaults(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "serviceAccountName", json!("default"));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    default(spec, "priority", json!(0));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                default(c, "terminationMessagePath", json!("/dev/termination-log"));
                default(c, "terminationMessagePolicy", json!("File"));
                // pkg/apis/core/v1/defaults.go SetDefaults_Container: `Always` for the tag
                // `latest`, which an image with neither tag nor digest has.
                let latest = c.get("image").and_then(Value::as_str).is_some_and(|i| {
                    let last = i.rsplit('/').next().unwrap_or(i);
                    match last.split_once(':') {
                        _ if last.contains('@') => false,
                        Some((_, tag)) => tag == "latest",
                        None => true,
                    }
                });
                default(
                    c,
                    "imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                default(c, "resources", json!({}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::resources::find;
    use proptest::prelude::*;

    #[test]
    fn uids_made_at_once_on_many_threads_are_all_different() {
        let threads: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| (0..20_000).map(|_| uid()).collect::<Vec<_>>()))
            .collect();
        let mut all = std::collections::HashSet::new();
        let mut made = 0;
        for t in threads {
            for u in t.join().expect("a uid thread") {
                made += 1;
                all.insert(u);
            }
        }
        assert_eq!(all.len(), made, "{} uids were made twice", made - all.len());
    }

    #[test]
    fn a_configmap_with_a_boolean_value_is_refused_by_type() {
        let cm = find("", "v1", "configmaps").expect("configmaps");
        let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"x": true}});
        let err = typed_check(cm, &bad).expect_err("refused");
        assert!(
            err.starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap"),
            "{err}"
        );
        let good = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"x": "y"}});
        assert_eq!(typed_check(cm, &good), Ok(()));
    }

    #[test]
    fn unknown_fields_are_named_by_path() {
        let pods = find("", "v1", "pods").expect("pods");
        let input = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": null},
                           "spec": {"bogus": 1, "containers": [{"name": "c", "image": "i", "extra": true}]}});
        let decoded = normalize(pods, &input).expect("decodes");
        assert_eq!(
            unknown_fields(&input, &decoded),
            vec!["spec.bogus", "spec.containers[0].extra"]
        );
        assert!(decoded["metadata"].get("labels").is_none());
    }

    #[test]
    fn pods_need_containers_with_images() {
        let pods = find("", "v1", "pods").expect("pods");
        let causes = validate(
            pods,
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
        );
        assert_eq!(
            causes,
            vec![(
                "spec.containers[0].image".to_string(),
                "Required value".to_string()
            )]
        );
        let causes = validate(pods, &json!({"metadata": {"name": "Bad_Name"}, "spec": {}}));
        assert_eq!(causes.len(), 2);
    }

    #[test]
    fn workload_templates_get_pod_defaults() {
        let deployments = find("apps", "v1", "deployments").expect("deployments");
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}});
        apply_defaults(deployments, &mut d);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(d["spec"]["replicas"], 1);
        let again = d.clone();
        apply_defaults(deployments, &mut d);
        assert_eq!(d, again, "defaulting is idempotent");
    }

    #[test]
    fn the_pull_policy_defaults_to_always_for_the_latest_tag_only() {
        let pods = find("", "v1", "pods").expect("pods");
        for (image, policy) in [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("registry.local:5000/busybox", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("busybox@sha256:0123", "IfNotPresent"),
        ] {
            let mut pod = json!({"spec": {"containers": [{"name": "c", "image": image}]}});
            apply_defaults(pods, &mut pod);
            assert_eq!(
                pod["spec"]["containers"][0]["imagePullPolicy"], policy,
                "{image}"
            );
        }
    }

    #[test]
    fn immutable_fields_stay_put() {
        let sc = find("storage.k8s.io", "v1", "storageclasses").expect("sc");
        let old = json!({"provisioner": "a", "parameters": {"x": "1"}, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"});
        let mut new = old.clone();
        new["parameters"]["x"] = json!("2");
        assert_eq!(
            update_violations(sc, &old, &new),
            vec![(
                "parameters".to_string(),
                "Forbidden: updates to parameters are forbidden.".to_string()
            )]
        );
        let pvc = find("", "v1", "persistentvolumeclaims").expect("pvc");
        let claim = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        let mut bound = claim.clone();
        bound["spec"]["volumeName"] = json!("pv-1");
        assert!(
            update_violations(pvc, &claim, &bound).is_empty(),
            "binding sets volumeName once"
        );
        let mut rebound = bound.clone();
        rebound["spec"]["volumeName"] = json!("pv-2");
        assert_eq!(update_violations(pvc, &bound, &rebound).len(), 1);
        let pvs = find("", "v1", "persistentvolumes").expect("pv");
        let pv = json!({"spec": {"hostPath": {"path": "/opt/a"}, "claimRef": null}});
        let mut claimed = pv.clone();
        claimed["spec"]["claimRef"] = json!({"name": "c"});
        assert!(update_violations(pvs, &pv, &claimed).is_empty());
        let mut moved = pv.clone();
        moved["spec"]["hostPath"]["path"] = json!("/opt/b");
        assert_eq!(update_violations(pvs, &pv, &moved).len(), 1);
        let cm = find("", "v1", "configmaps").expect("cm");
        let deleting =
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["a"]}});
        let more = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["a", "b"]}});
        assert_eq!(update_violations(cm, &deleting, &more).len(), 1);
        let fewer =
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": []}});
        assert!(update_violations(cm, &deleting, &fewer).is_empty());
    }

    #[test]
    fn bound_claims_may_grow_and_come_back_down_above_their_capacity() {
        let pvc = find("", "v1", "persistentvolumeclaims").expect("pvc");
        let claim = |size: &str, phase: &str| {
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv",
                            "resources": {"requests": {"storage": size}}},
                   "status": {"phase": phase, "capacity": {"storage": "1Gi"}}})
        };
        let fields = |old: &Value, new: &Value| -> Vec<String> {
            update_violations(pvc, old, new)
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert!(fields(&claim("1Gi", "Bound"), &claim("2Gi", "Bound")).is_empty());
        assert!(fields(&claim("2Gi", "Bound"), &claim("1536Mi", "Bound")).is_empty());
        assert_eq!(
            fields(&claim("2Gi", "Bound"), &claim("1Gi", "Bound")),
            ["spec.resources.requests.storage"]
        );
        assert_eq!(
            fields(&claim("1Gi", "Pending"), &claim("2Gi", "Pending")),
            ["spec"]
        );
        let mut limited = claim("1Gi", "Bound");
        limited["spec"]["resources"]["limits"] = json!({"storage": "5Gi"});
        assert_eq!(fields(&claim("1Gi", "Bound"), &limited), ["spec"]);
        let statuses =
            |state: &str| json!({"status": {"allocatedResourceStatuses": {"storage": state}}});
        assert!(status_violations(pvc, &statuses("NodeResizeInfeasible")).is_empty());
        assert!(status_violations(pvc, &statuses("ControllerResizeInfeasible")).is_empty());
        // The names of the field's stale docs are refused, as by a v1.33 apiserver.
        assert_eq!(
            status_violations(pvc, &statuses("ControllerResizeFailed")).len(),
            1
        );
        assert_eq!(status_violations(pvc, &statuses("Done")).len(), 1);
    }

    #[test]
    fn uids_and_suffixes_look_real() {
        let u = uid();
        assert_eq!(u.len(), 36);
        assert_ne!(uid(), u);
        assert_eq!(name_suffix().len(), 5);
    }

    proptest! {
        #[test]
        fn generated_names_are_valid(prefix in "[a-z][a-z0-9-]{0,20}") {
            let name = format!("{prefix}{}", name_suffix());
            prop_assert!(is_dns_subdomain(&name));
        }
    }
}
