//! Server-side printing: `meta.k8s.io/v1` Tables with the column sets the real apiserver uses
//! for the kinds kubectl users look at, and `PartialObjectMetadata` for metadata-only clients.

use serde_json::{Value, json};

use super::resources::Resource;

/// How a client asked to see objects (`Accept: application/json;as=Table;...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves.
    Full,
    /// A Table; rows carry the object as `Object`, `Metadata` (the default) or `None`.
    Table(Include),
    /// `PartialObjectMetadata(List)`.
    Metadata,
}

/// What a Table row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// The full object.
    Object,
    /// Its metadata only.
    Metadata,
    /// Nothing.
    None,
}

impl Representation {
    /// From the Accept header and the `includeObject` query parameter.
    pub fn from_request(accept: &str, include: Option<&str>) -> Representation {
        let first = accept.split(',').next().unwrap_or("");
        if first.contains("as=Table") {
            Representation::Table(match include {
                Some("Object") => Include::Object,
                Some("None") => Include::None,
                _ => Include::Metadata,
            })
        } else if first.contains("as=PartialObjectMetadata") {
            Representation::Metadata
        } else {
            Representation::Full
        }
    }
}

/// An object as `PartialObjectMetadata`.
pub fn partial(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
           "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({}))})
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x.to_string()
    }
}

/// kubectl's human duration (`5s`, `3m20s`, `2d4h`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (m, h) = (secs / 60, secs / 3600);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{}d", h / 24)
    } else {
        format!("{}y", h / 24 / 365)
    }
}

fn age_of(ts: &str) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

fn age(o: &Value) -> String {
    age_of(s(o, "/metadata/creationTimestamp"))
}

fn access_modes(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .map(|modes| {
            modes
                .iter()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn pod_status(o: &Value) -> String {
    let mut reason = s(o, "/status/reason").to_string();
    if reason.is_empty() {
        reason = s(o, "/status/phase").to_string();
    }
    if let Some(statuses) = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
    {
        for c in statuses.iter().rev() {
            if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
                reason = r.to_string();
            } else if let Some(r) = c
                .pointer("/state/terminated/reason")
                .and_then(Value::as_str)
            {
                reason = r.to_string();
            }
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    reason
}

type Column = (&'static str, &'static str, i32);

fn columns_and_cells(resource: &Resource, o: &Value) -> (Vec<Column>, Vec<Value>) {
    let name = json!(s(o, "/metadata/name"));
    match (resource.group, resource.kind) {
        ("", "Pod") => {
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum();
            (
                vec![
                    ("Name", "string", 0),
                    ("Ready", "string", 0),
                    ("Status", "string", 0),
                    ("Restarts", "string", 0),
                    ("Age", "string", 0),
                    ("IP", "string", 1),
                    ("Node", "string", 1),
                    ("Nominated Node", "string", 1),
                    ("Readiness Gates", "string", 1),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(pod_status(o)),
                    json!(restarts.to_string()),
                    json!(age(o)),
                    json!(or_none(s(o, "/status/podIP"))),
                    json!(or_none(s(o, "/spec/nodeName"))),
                    json!("<none>"),
                    json!("<none>"),
                ],
            )
        }
        ("", "PersistentVolume") => {
            let claim = if s(o, "/spec/claimRef/name").is_empty() {
                String::new()
            } else {
                format!(
                    "{}/{}",
                    s(o, "/spec/claimRef/namespace"),
                    s(o, "/spec/claimRef/name")
                )
            };
            (
                vec![
                    ("Name", "string", 0),
                    ("Capacity", "string", 0),
                    ("Access Modes", "string", 0),
                    ("Reclaim Policy", "string", 0),
                    ("Status", "string", 0),
                    ("Claim", "string", 0),
                    ("StorageClass", "string", 0),
                    ("VolumeAttributesClass", "string", 0),
                    ("Reason", "string", 0),
                    ("Age", "string", 0),
                    ("VolumeMode", "string", 1),
                ],
                vec![
                    name,
                    json!(s(o, "/spec/capacity/storage")),
                    json!(access_modes(o.pointer("/spec/accessModes"))),
                    json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
                    json!(s(o, "/status/phase")),
                    json!(claim),
                    json!(s(o, "/spec/storageClassName")),
                    json!("<unset>"),
                    json!(s(o, "/status/reason")),
                    json!(age(o)),
                    json!(s(o, "/spec/volumeMode")),
                ],
            )
        }
        ("", "PersistentVolumeClaim") => (
            vec![
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Volume", "string", 0),
                ("Capacity", "string", 0),
                ("Access Modes", "string", 0),
                ("StorageClass", "string", 0),
                ("VolumeAttributesClass", "string", 0),
                ("Age", "string", 0),
                ("VolumeMode", "string", 1),
            ],
            vec![
                name,
                json!(if o.pointer("/metadata/deletionTimestamp").is_some() {
                    "Terminating"
                } else {
                    s(o, "/status/phase")
                }),
                json!(s(o, "/spec/volumeName")),
                json!(s(o, "/status/capacity/storage")),
                json!(access_modes(o.pointer("/status/accessModes"))),
                json!(s(o, "/spec/storageClassName")),
                json!("<unset>"),
                json!(age(o)),
                json!(s(o, "/spec/volumeMode")),
            ],
        ),
        ("storage.k8s.io", "StorageClass") => {
            let default = s(
                o,
                "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
            ) == "true";
            let shown = if default {
                format!("{} (default)", s(o, "/metadata/name"))
            } else {
                s(o, "/metadata/name").to_string()
            };
            (
                vec![
                    ("Name", "string", 0),
                    ("Provisioner", "string", 0),
                    ("ReclaimPolicy", "string", 0),
                    ("VolumeBindingMode", "string", 0),
                    ("AllowVolumeExpansion", "string", 0),
                    ("Age", "string", 0),
                ],
                vec![
                    json!(shown),
                    json!(s(o, "/provisioner")),
                    json!(s(o, "/reclaimPolicy")),
                    json!(s(o, "/volumeBindingMode")),
                    json!(
                        o.get("allowVolumeExpansion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                            .to_string()
                    ),
                    json!(age(o)),
                ],
            )
        }
        ("", "Node") => {
            let ready = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Ready"))
                .map(|c| s(c, "/status") == "True");
            let mut status = match ready {
                Some(true) => "Ready".to_string(),
                Some(false) => "NotReady".to_string(),
                None => "Unknown".to_string(),
            };
            if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let address = |t: &str| {
                o.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| s(x, "/type") == t))
                    .map(|x| s(x, "/address").to_string())
                    .unwrap_or_else(|| "<none>".into())
            };
            (
                vec![
                    ("Name", "string", 0),
                    ("Status", "string", 0),
                    ("Roles", "string", 0),
                    ("Age", "string", 0),
                    ("Version", "string", 0),
                    ("Internal-IP", "string", 1),
                    ("External-IP", "string", 1),
                    ("OS-Image", "string", 1),
                    ("Kernel-Version", "string", 1),
                    ("Container-Runtime", "string", 1),
                ],
                vec![
                    name,
                    json!(status),
                    json!("<none>"),
                    json!(age(o)),
                    json!(s(o, "/status/nodeInfo/kubeletVersion")),
                    json!(address("InternalIP")),
                    json!(address("ExternalIP")),
                    json!(s(o, "/status/nodeInfo/osImage")),
                    json!(s(o, "/status/nodeInfo/kernelVersion")),
                    json!(s(o, "/status/nodeInfo/containerRuntimeVersion")),
                ],
            )
        }
        (_, "Event") => {
            let core = resource.group.is_empty();
            let regarding = if core {
                "/involvedObject"
            } else {
                "/regarding"
            };
            let object = format!(
                "{}/{}",
                s(o, &format!("{regarding}/kind")).to_lowercase(),
                s(o, &format!("{regarding}/name"))
            );
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/deprecatedLastTimestamp",
                "/series/lastObservedTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .map(|p| s(o, p))
            .find(|t| !t.is_empty())
            .unwrap_or("");
            let first = ["/firstTimestamp", "/deprecatedFirstTimestamp", "/eventTime"]
                .iter()
                .map(|p| s(o, p))
                .find(|t| !t.is_empty())
                .unwrap_or(last);
            let message = if core {
                s(o, "/message")
            } else {
                s(o, "/note")
            };
            let source = if core {
                s(o, "/source/component")
            } else {
                s(o, "/reportingController")
            };
            let count = o
                .get(if core { "count" } else { "deprecatedCount" })
                .and_then(Value::as_i64)
                .unwrap_or(1);
            (
                vec![
                    ("Last Seen", "string", 0),
                    ("Type", "string", 0),
                    ("Reason", "string", 0),
                    ("Object", "string", 0),
                    ("Subobject", "string", 1),
                    ("Source", "string", 1),
                    ("Message", "string", 0),
                    ("First Seen", "string", 1),
                    ("Count", "string", 1),
                    ("Name", "string", 1),
                ],
                vec![
                    json!(age_of(last)),
                    json!(s(o, "/type")),
                    json!(s(o, "/reason")),
                    json!(object),
                    json!(s(o, &format!("{regarding}/fieldPath"))),
                    json!(source),
                    json!(message),
                    json!(age_of(first)),
                    json!(count.to_string()),
                    name,
                ],
            )
        }
        ("", "Namespace") => (
            vec![
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Age", "string", 0),
            ],
            vec![name, json!(s(o, "/status/phase")), json!(age(o))],
        ),
        ("", "ConfigMap") => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |d| d.len())
                + o.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |d| d.len());
            (
                vec![
                    ("Name", "string", 0),
                    ("Data", "string", 0),
                    ("Age", "string", 0),
                ],
                vec![name, json!(n.to_string()), json!(age(o))],
            )
        }
        ("", "Secret") => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |d| d.len());
            (
                vec![
                    ("Name", "string", 0),
                    ("Type", "string", 0),
                    ("Data", "string", 0),
                    ("Age", "string", 0),
                ],
                vec![
                    name,
                    json!(s(o, "/type")),
                    json!(n.to_string()),
                    json!(age(o)),
                ],
            )
        }
        ("", "ServiceAccount") => (
            vec![
                ("Name", "string", 0),
                ("Secrets", "string", 0),
                ("Age", "string", 0),
            ],
            vec![
                name,
                json!(
                    o.get("secrets")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                        .to_string()
                ),
                json!(age(o)),
            ],
        ),
        ("apps", "Deployment") => {
            let n = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            (
                vec![
                    ("Name", "string", 0),
                    ("Ready", "string", 0),
                    ("Up-to-date", "string", 0),
                    ("Available", "string", 0),
                    ("Age", "string", 0),
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        n("/status/readyReplicas"),
                        n("/spec/replicas")
                    )),
                    json!(n("/status/updatedReplicas").to_string()),
                    json!(n("/status/availableReplicas").to_string()),
                    json!(age(o)),
                ],
            )
        }
        ("apps", "DaemonSet") => {
            let n = |p: &str| {
                o.pointer(p)
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .to_string()
            };
            let selector = o
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            (
                vec![
                    ("Name", "string", 0),
                    ("Desired", "string", 0),
                    ("Current", "string", 0),
                    ("Ready", "string", 0),
                    ("Up-to-date", "string", 0),
                    ("Available", "string", 0),
                    ("Node Selector", "string", 0),
                    ("Age", "string", 0),
                ],
                vec![
                    name,
                    json!(n("/status/desiredNumberScheduled")),
                    json!(n("/status/currentNumberScheduled")),
                    json!(n("/status/numberReady")),
                    json!(n("/status/updatedNumberScheduled")),
                    json!(n("/status/numberAvailable")),
                    json!(or_none(&selector)),
                    json!(age(o)),
                ],
            )
        }
        ("apps", "ControllerRevision") => {
            // The printer names the controller as `<kind>.<group>/<name>`.
            let controller = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| {
                    refs.iter()
                        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
                })
                .map(|r| {
                    let group = s(r, "/apiVersion").split('/').rev().nth(1).unwrap_or("");
                    let kind = s(r, "/kind").to_lowercase();
                    let kind = if group.is_empty() {
                        kind
                    } else {
                        format!("{kind}.{group}")
                    };
                    format!("{kind}/{}", s(r, "/name"))
                })
                .unwrap_or_else(|| "<none>".into());
            let revision = o.get("revision").and_then(Value::as_i64).unwrap_or(0);
            (
                vec![
                    ("Name", "string", 0),
                    ("Controller", "string", 0),
                    ("Revision", "integer", 0),
                    ("Age", "string", 0),
                ],
                vec![name, json!(controller), json!(revision), json!(age(o))],
            )
        }
        ("storage.k8s.io", "CSIDriver") => {
            let flag = |f: &str| json!(o.pointer(f).and_then(Value::as_bool).unwrap_or(false));
            let tokens = o
                .pointer("/spec/tokenRequests")
                .and_then(Value::as_array)
                .map_or_else(
                    || "<unset>".to_string(),
                    |t| {
                        t.iter()
                            .map(|r| s(r, "/audience"))
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                );
            let modes = o
                .pointer("/spec/volumeLifecycleModes")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            (
                vec![
                    ("Name", "string", 0),
                    ("AttachRequired", "boolean", 0),
                    ("PodInfoOnMount", "boolean", 0),
                    ("StorageCapacity", "boolean", 0),
                    ("TokenRequests", "string", 0),
                    ("RequiresRepublish", "boolean", 0),
                    ("Modes", "string", 0),
                    ("Age", "string", 0),
                ],
                vec![
                    name,
                    flag("/spec/attachRequired"),
                    flag("/spec/podInfoOnMount"),
                    flag("/spec/storageCapacity"),
                    json!(tokens),
                    flag("/spec/requiresRepublish"),
                    json!(or_none(&modes)),
                    json!(age(o)),
                ],
            )
        }
        ("storage.k8s.io", "CSIStorageCapacity") => {
            let capacity = match s(o, "/capacity") {
                "" => "<unset>",
                c => c,
            };
            (
                vec![
                    ("Name", "string", 0),
                    ("StorageClassName", "string", 0),
                    ("Capacity", "string", 0),
                ],
                vec![name, json!(s(o, "/storageClassName")), json!(capacity)],
            )
        }
        ("coordination.k8s.io", _) => (
            vec![
                ("Name", "string", 0),
                ("Holder", "string", 0),
                ("Age", "string", 0),
            ],
            vec![name, json!(s(o, "/spec/holderIdentity")), json!(age(o))],
        ),
        (_, "RoleBinding" | "ClusterRoleBinding") => (
            vec![
                ("Name", "string", 0),
                ("Role", "string", 0),
                ("Age", "string", 0),
            ],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(o, "/roleRef/kind"),
                    s(o, "/roleRef/name")
                )),
                json!(age(o)),
            ],
        ),
        _ => (
            vec![("Name", "string", 0), ("Created At", "date", 0)],
            vec![name, json!(s(o, "/metadata/creationTimestamp"))],
        ),
    }
}

/// A Table of `objects` (`with_columns`: whether to include the column definitions, which a
/// watch sends only in its first event).
pub fn table(
    resource: &Resource,
    objects: &[Value],
    rv: &str,
    include: Include,
    with_columns: bool,
) -> Value {
    let mut definitions = None;
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let (cols, cells) = columns_and_cells(resource, o);
            definitions.get_or_insert(cols);
            let mut row = json!({"cells": cells});
            match include {
                Include::Object => row["object"] = o.clone(),
                Include::Metadata => row["object"] = partial(o),
                Include::None => {}
            }
            row
        })
        .collect();
    let cols = definitions.unwrap_or_else(|| columns_and_cells(resource, &json!({})).0);
    let definitions: Vec<Value> = cols
        .iter()
        .map(|(name, kind, priority)| {
            let mut d = json!({"name": name, "type": kind, "format": "", "description": name, "priority": priority});
            if *name == "Name" && *priority == 0 {
                d["format"] = json!("name");
            }
            d
        })
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                       "metadata": {"resourceVersion": rv}, "rows": rows});
    if with_columns {
        t["columnDefinitions"] = json!(definitions);
    } else {
        t["columnDefinitions"] = json!([]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::resources::find;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600 * 5 + 60), "5h1m");
        assert_eq!(human_duration(3600 * 24 * 3 + 3600 * 4), "3d4h");
    }

    #[test]
    fn pvcs_print_the_real_columns() {
        let pvc = find("", "v1", "persistentvolumeclaims").expect("pvcs");
        let o = json!({"metadata": {"name": "c", "creationTimestamp": "2020-01-01T00:00:00Z"},
                       "spec": {"volumeName": "pv-1", "storageClassName": "local-path", "volumeMode": "Filesystem"},
                       "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
        let t = table(pvc, &[o], "5", Include::Metadata, true);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("cols")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Status",
                "Volume",
                "Capacity",
                "Access Modes",
                "StorageClass",
                "VolumeAttributesClass",
                "Age",
                "VolumeMode"
            ]
        );
        assert_eq!(t["rows"][0]["cells"][4], "RWO");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn representation_follows_the_accept_header() {
        assert_eq!(
            Representation::from_request(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
                None
            ),
            Representation::Table(Include::Metadata)
        );
        assert_eq!(
            Representation::from_request("application/json", Some("Object")),
            Representation::Full
        );
        assert_eq!(
            Representation::from_request(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                None
            ),
            Representation::Metadata
        );
    }
}
