//! Events are stored once, in the core/v1 shape, and served under both `v1` and
//! `events.k8s.io/v1` as the real apiserver does: an event written through one API is read
//! through the other. These are the two conversions.

use serde_json::{Map, Value, json};

fn copy(from: &Value, to: &mut Map<String, Value>, src: &str, dst: &str) {
    if let Some(v) = from.get(src).filter(|v| !v.is_null()) {
        to.insert(dst.to_string(), v.clone());
    }
}

/// A stored core/v1 Event as `events.k8s.io/v1` shows it.
pub fn to_events_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    for (src, dst) in [
        ("metadata", "metadata"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("action", "action"),
        ("reason", "reason"),
        ("involvedObject", "regarding"),
        ("related", "related"),
        ("message", "note"),
        ("type", "type"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
        ("reportingInstance", "reportingInstance"),
    ] {
        copy(core, &mut out, src, dst);
    }
    let controller = core
        .get("reportingComponent")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| core.pointer("/source/component").and_then(Value::as_str));
    if let Some(c) = controller {
        out.insert("reportingController".into(), json!(c));
    }
    if !out.contains_key("reportingInstance")
        && let Some(h) = core.pointer("/source/host")
    {
        out.insert("reportingInstance".into(), h.clone());
    }
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in the stored core/v1 shape.
pub fn to_core(event: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    for (src, dst) in [
        ("metadata", "metadata"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("action", "action"),
        ("reason", "reason"),
        ("regarding", "involvedObject"),
        ("related", "related"),
        ("note", "message"),
        ("type", "type"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
    ] {
        copy(event, &mut out, src, dst);
    }
    if !out.contains_key("source") {
        let mut source = Map::new();
        copy(event, &mut source, "reportingController", "component");
        copy(event, &mut source, "reportingInstance", "host");
        if !source.is_empty() {
            out.insert("source".into(), Value::Object(source));
        }
    }
    if !out.contains_key("involvedObject") {
        out.insert("involvedObject".into(), json!({}));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_the_same_through_both_apis() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                        "metadata": {"name": "e", "namespace": "default"},
                        "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Provisioning",
                        "regarding": {"kind": "PersistentVolumeClaim", "name": "c"},
                        "note": "External provisioner is provisioning volume", "type": "Normal",
                        "action": "Provision", "reportingController": "lpp", "reportingInstance": "lpp-1"});
        let core = to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "c");
        assert_eq!(
            core["message"],
            "External provisioner is provisioning volume"
        );
        assert_eq!(core["source"]["component"], "lpp");
        let back = to_events_v1(&core);
        for key in [
            "regarding",
            "note",
            "reason",
            "type",
            "action",
            "reportingController",
            "reportingInstance",
            "eventTime",
        ] {
            assert_eq!(back[key], v1[key], "{key}");
        }
    }
}
