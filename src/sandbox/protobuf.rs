//! Just enough of Kubernetes' protobuf encoding to read what kubectl's typed clients send:
//! `kubectl create configmap|secret|namespace|serviceaccount` and `kubectl auth can-i` post
//! protobuf bodies (`application/vnd.kubernetes.protobuf`: the `k8s\0` magic, then a
//! `runtime.Unknown` envelope holding the object). Bodies are turned into the JSON the rest of
//! the server works with; other kinds are refused with 415 so the caller can send JSON instead.

use serde_json::{Map, Value, json};

/// One decoded protobuf field value.
#[derive(Debug, Clone, PartialEq)]
enum Wire {
    Varint(u64),
    Bytes(Vec<u8>),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err("varint too long".into())
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire)>, String> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (number, kind) = (key >> 3, key & 7);
        let value = match kind {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|e| e.to_string())?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or("truncated field")?;
                let bytes = buf[pos..end].to_vec();
                pos = end;
                Wire::Bytes(bytes)
            }
            5 => {
                pos += 4;
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        if pos > buf.len() {
            return Err("truncated field".into());
        }
        out.push((number, value));
    }
    Ok(out)
}

fn text(w: &Wire) -> String {
    match w {
        Wire::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

fn bytes(w: &Wire) -> &[u8] {
    match w {
        Wire::Bytes(b) => b,
        _ => &[],
    }
}

/// Standard base64, as JSON carries Secret data.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `map<string, string|bytes>` field's entries.
fn map_entry(w: &Wire) -> Result<(String, Vec<u8>), String> {
    let mut key = String::new();
    let mut value = Vec::new();
    for (n, f) in fields(bytes(w))? {
        match n {
            1 => key = text(&f),
            2 => value = bytes(&f).to_vec(),
            _ => {}
        }
    }
    Ok((key, value))
}

fn object_meta(buf: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(buf)? {
        match n {
            1 if !text(&f).is_empty() => {
                meta.insert("name".into(), json!(text(&f)));
            }
            2 if !text(&f).is_empty() => {
                meta.insert("generateName".into(), json!(text(&f)));
            }
            3 if !text(&f).is_empty() => {
                meta.insert("namespace".into(), json!(text(&f)));
            }
            11 => {
                let (k, v) = map_entry(&f)?;
                labels.insert(k, json!(String::from_utf8_lossy(&v)));
            }
            12 => {
                let (k, v) = map_entry(&f)?;
                annotations.insert(k, json!(String::from_utf8_lossy(&v)));
            }
            14 => finalizers.push(json!(text(&f))),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

fn sub_fields(w: &Wire, names: &[(u64, &str)]) -> Result<Value, String> {
    let mut out = Map::new();
    for (n, f) in fields(bytes(w))? {
        // Optional strings arrive even when empty; JSON leaves them out.
        if let Some((_, name)) = names.iter().find(|(num, _)| *num == n) {
            let value = text(&f);
            if !value.is_empty() {
                out.insert((*name).to_string(), json!(value));
            }
        }
    }
    Ok(Value::Object(out))
}

fn push(object: &mut Value, key: &str, item: Value) {
    if !object.get(key).is_some_and(Value::is_array) {
        object[key] = json!([]);
    }
    if let Some(a) = object.get_mut(key).and_then(Value::as_array_mut) {
        a.push(item);
    }
}

/// Decodes a protobuf request body into a JSON object, or says why not.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or("the protobuf body lacks the k8s magic prefix")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw = Vec::new();
    for (n, f) in fields(rest)? {
        match n {
            1 => {
                for (m, g) in fields(bytes(&f))? {
                    match m {
                        1 => api_version = text(&g),
                        2 => kind = text(&g),
                        _ => {}
                    }
                }
            }
            2 => raw = bytes(&f).to_vec(),
            _ => {}
        }
    }
    let mut object = json!({"apiVersion": api_version, "kind": kind});
    let parts = fields(&raw)?;
    let string_map = |n: u64, as_base64: bool| -> Result<Option<Value>, String> {
        let mut m = Map::new();
        for (num, f) in &parts {
            if *num == n {
                let (k, v) = map_entry(f)?;
                let v = if as_base64 {
                    base64(&v)
                } else {
                    String::from_utf8_lossy(&v).into_owned()
                };
                m.insert(k, json!(v));
            }
        }
        Ok((!m.is_empty()).then_some(Value::Object(m)))
    };
    let (data, binary, string_data) = match kind.as_str() {
        "ConfigMap" => (string_map(2, false)?, string_map(3, true)?, None),
        "Secret" => (string_map(2, true)?, None, string_map(4, false)?),
        _ => (None, None, None),
    };
    for (n, f) in &parts {
        match (kind.as_str(), *n) {
            (_, 1) => object["metadata"] = object_meta(bytes(f))?,
            ("ConfigMap", 4) | ("Secret", 5) => {
                object["immutable"] = json!(matches!(f, Wire::Varint(1)))
            }
            ("Secret", 3) => object["type"] = json!(text(f)),
            ("Role" | "ClusterRole", 2) => {
                let mut rule = Map::new();
                for (m, g) in fields(bytes(f))? {
                    let key = match m {
                        1 => "verbs",
                        2 => "apiGroups",
                        3 => "resources",
                        4 => "resourceNames",
                        5 => "nonResourceURLs",
                        _ => continue,
                    };
                    let list = rule.entry(key).or_insert_with(|| json!([]));
                    if let Some(a) = list.as_array_mut() {
                        a.push(json!(text(&g)));
                    }
                }
                push(&mut object, "rules", Value::Object(rule));
            }
            ("RoleBinding" | "ClusterRoleBinding", 2) => {
                let subject = sub_fields(
                    f,
                    &[(1, "kind"), (2, "apiGroup"), (3, "name"), (4, "namespace")],
                )?;
                push(&mut object, "subjects", subject);
            }
            ("RoleBinding" | "ClusterRoleBinding", 3) => {
                object["roleRef"] = sub_fields(f, &[(1, "apiGroup"), (2, "kind"), (3, "name")])?;
            }
            ("SelfSubjectAccessReview" | "SubjectAccessReview", 2) => {
                let mut spec = Map::new();
                for (m, g) in fields(bytes(f))? {
                    match m {
                        1 => {
                            spec.insert(
                                "resourceAttributes".into(),
                                sub_fields(
                                    &g,
                                    &[
                                        (1, "namespace"),
                                        (2, "verb"),
                                        (3, "group"),
                                        (4, "version"),
                                        (5, "resource"),
                                        (6, "subresource"),
                                        (7, "name"),
                                    ],
                                )?,
                            );
                        }
                        2 => {
                            spec.insert(
                                "nonResourceAttributes".into(),
                                sub_fields(&g, &[(1, "path"), (2, "verb")])?,
                            );
                        }
                        _ => {}
                    }
                }
                object["spec"] = Value::Object(spec);
            }
            _ => {}
        }
    }
    match kind.as_str() {
        "ConfigMap"
        | "Secret"
        | "Namespace"
        | "ServiceAccount"
        | "SelfSubjectAccessReview"
        | "Role"
        | "ClusterRole"
        | "RoleBinding"
        | "ClusterRoleBinding" => {}
        other => {
            return Err(format!(
                "protobuf bodies of kind {other:?} are not understood by the sandbox; send JSON"
            ));
        }
    }
    if let Some(d) = data {
        object["data"] = d;
    }
    if let Some(b) = binary {
        object["binaryData"] = b;
    }
    if let Some(s) = string_data {
        object["stringData"] = s;
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from((n << 3) | 2).expect("small field number")];
        out.push(u8::try_from(payload.len()).expect("short payload"));
        out.extend_from_slice(payload);
        out
    }

    fn entry(k: &str, v: &str) -> Vec<u8> {
        [field(1, k.as_bytes()), field(2, v.as_bytes())].concat()
    }

    #[test]
    fn a_configmap_from_kubectl_create_decodes() {
        let meta = [field(1, b"conf"), field(11, &entry("app", "x"))].concat();
        let raw = [field(1, &meta), field(2, &entry("k", "v"))].concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let object = decode(&body).expect("decodes");
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "conf", "labels": {"app": "x"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"hello world"), "aGVsbG8gd29ybGQ=");
    }

    proptest! {
        #[test]
        fn decoding_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut with_magic = b"k8s\0".to_vec();
            with_magic.extend(&body);
            let _ = decode(&with_magic);
            let _ = decode(&body);
        }
    }
}
