//! The subset of Go's `text/template` that StorageClass patterns use (`pathPattern`,
//! `userPattern`, `groupPattern`, `permPattern`), over upstream's data: `.PVName` and `.PVC` (the
//! claim's metadata).
//!
//! Supported: plain text; `{{ .PVName }}`; `{{ .PVC.Name }}`, `.Namespace`, `.UID`,
//! `.GenerateName`, `.ResourceVersion`, `.Generation`; `{{ .PVC.Labels.key }}` and
//! `{{ .PVC.Annotations.key }}`; `{{ index .PVC.Annotations "a/b" }}` (and `.Labels`); trim
//! markers `{{-`/`-}}` and comments `{{/* */}}`. Anything else is an error that names the action.
//! A missing map key renders as Go renders it: `<no value>` by default, an error with
//! `missingkey=error` (the user/group/perm patterns), and the empty string through `index`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// What a missing map key does, as Go's `missingkey` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKey {
    /// Render `<no value>` (Go's default; upstream's `pathPattern`).
    NoValue,
    /// Fail (upstream's user, group and perm patterns).
    Error,
}

/// Why a pattern cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` has no matching `}}`; the number is the byte offset of that `{{` in the pattern,
    /// counted from 0.
    #[error("unclosed action starting at byte {0}: close it with }}}}")]
    Unclosed(usize),
    /// The action, as written between the braces, is outside the supported subset of Go
    /// templates (pipes, functions other than `index`, a whole map, the claim's other metadata
    /// fields).
    #[error(
        "unsupported action {{{{{0}}}}}: lpp supports {{{{ .PVName }}}}, {{{{ .PVC.Name }}}}, {{{{ .PVC.Namespace }}}}, {{{{ .PVC.Labels.KEY }}}}, {{{{ .PVC.Annotations.KEY }}}} and {{{{ index .PVC.Annotations \"KEY\" }}}}"
    )]
    Unsupported(String),
    /// A field name that the data has no field of: not `PVName` or `PVC` at the top, not one of
    /// the claim's supported metadata fields, or a field taken of a plain string.
    #[error("can't evaluate field {field} in {{{{{action}}}}}")]
    NoField {
        /// The unknown field name, as written.
        field: String,
        /// The whole action it appears in, without its braces.
        action: String,
    },
    /// A label or annotation key used as `.PVC.Labels.KEY` that is not a Go identifier (a key
    /// with `-` or `/`, say), which Go would not parse: such keys need `index`.
    #[error(
        "{key:?} in {{{{{action}}}}} is not a Go identifier: write {{{{ index .PVC.Labels \"{key}\" }}}} (or .Annotations)"
    )]
    NotIdentifier {
        /// The offending key.
        key: String,
        /// The whole action it appears in, without its braces.
        action: String,
    },
    /// The claim has no label or annotation of this key, under `MissingKey::Error`.
    #[error("map has no entry for key {key:?} in {{{{{action}}}}}")]
    MissingKey {
        /// The label or annotation key that the claim lacks.
        key: String,
        /// The whole action it appears in, without its braces.
        action: String,
    },
}

/// The data a pattern sees: upstream's `pvMetadata{PVName, PVC}`.
#[derive(Debug, Clone, Copy)]
pub struct PatternData<'a> {
    /// The volume's name, `pvc-<claim uid>`.
    pub pv_name: &'a str,
    /// The claim's metadata.
    pub claim: &'a ObjectMeta,
}

enum Value<'a> {
    Text(String),
    Map(Option<&'a BTreeMap<String, String>>),
    Missing,
}

/// Renders `pattern` over `data`.
pub fn render(
    pattern: &str,
    data: PatternData<'_>,
    missing: MissingKey,
) -> Result<String, TemplateError> {
    let mut out = String::new();
    let mut rest = pattern;
    let mut offset = 0usize;
    let mut trim_next_text = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next_text {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end();
        }
        out.push_str(text);
        let end = find_close(after).ok_or(TemplateError::Unclosed(offset + start))?;
        let mut body = &after[..end];
        if trim_left {
            body = &body[1..];
        }
        let trim_right = body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-");
        if trim_right {
            body = &body[..body.len() - 1];
        }
        out.push_str(&eval_action(body, data, missing)?);
        trim_next_text = trim_right;
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(if trim_next_text {
        rest.trim_start()
    } else {
        rest
    });
    Ok(out)
}

/// The end of an action, skipping `}}` inside quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' && q == b'"' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => {
                if b == b'"' || b == b'`' {
                    quote = Some(b);
                } else if b == b'}' && bytes.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn eval_action(
    body: &str,
    data: PatternData<'_>,
    missing: MissingKey,
) -> Result<String, TemplateError> {
    let action = body.trim();
    if action.starts_with("/*") && action.ends_with("*/") && action.len() >= 4 {
        return Ok(String::new());
    }
    let unsupported = || TemplateError::Unsupported(body.to_string());
    let words = split_words(action).ok_or_else(unsupported)?;
    match words.as_slice() {
        [chain] if chain.starts_with('.') => match lookup(chain, data, missing, body)? {
            Value::Text(t) => Ok(t),
            Value::Missing => Ok("<no value>".to_string()),
            Value::Map(_) => Err(unsupported()),
        },
        [index, chain, keys @ ..]
            if index == "index" && chain.starts_with('.') && !keys.is_empty() =>
        {
            let mut value = lookup(chain, data, missing, body)?;
            for key in keys {
                let key = unquote(key).ok_or_else(unsupported)?;
                value = match value {
                    Value::Map(m) => {
                        Value::Text(m.and_then(|m| m.get(&key)).cloned().unwrap_or_default())
                    }
                    _ => return Err(unsupported()),
                };
            }
            match value {
                Value::Text(t) => Ok(t),
                _ => Err(unsupported()),
            }
        }
        _ => Err(unsupported()),
    }
}

fn split_words(action: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '`' {
            word.push(c);
            chars.next();
            let mut closed = false;
            while let Some(d) = chars.next() {
                word.push(d);
                if d == '\\' && c == '"' {
                    word.push(chars.next()?);
                } else if d == c {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() {
                    break;
                }
                if matches!(d, '|' | '(' | ')' | '$' | '=' | ':') {
                    return None;
                }
                word.push(d);
                chars.next();
            }
        }
        words.push(word);
    }
    Some(words)
}

fn unquote(word: &str) -> Option<String> {
    if let Some(raw) = word.strip_prefix('`').and_then(|w| w.strip_suffix('`')) {
        return Some(raw.to_string());
    }
    let inner = word.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(match chars.next()? {
                'n' => '\n',
                't' => '\t',
                '\\' => '\\',
                '"' => '"',
                _ => return None,
            });
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn lookup<'a>(
    chain: &str,
    data: PatternData<'a>,
    missing: MissingKey,
    action: &str,
) -> Result<Value<'a>, TemplateError> {
    let fields: Vec<&str> = chain[1..].split('.').collect();
    let no_field = |f: &str| TemplateError::NoField {
        field: f.to_string(),
        action: action.to_string(),
    };
    if fields.iter().any(|f| f.is_empty()) {
        return Err(TemplateError::Unsupported(action.to_string()));
    }
    // Go fields are identifiers: `.PVC.Labels.app-name` does not parse there, so it must not
    // here either (a class that works on lpp must work on upstream).
    if let Some(bad) = fields
        .iter()
        .find(|f| !f.chars().all(|c| c.is_alphanumeric() || c == '_'))
    {
        return Err(TemplateError::NotIdentifier {
            key: bad.to_string(),
            action: action.to_string(),
        });
    }
    let meta = data.claim;
    let text = |s: &Option<String>| Value::Text(s.clone().unwrap_or_default());
    let mut value = match fields[0] {
        "PVName" => Value::Text(data.pv_name.to_string()),
        "PVC" => {
            let Some(field) = fields.get(1) else {
                return Err(TemplateError::Unsupported(action.to_string()));
            };
            let v = match *field {
                "Name" => text(&meta.name),
                "Namespace" => text(&meta.namespace),
                "UID" => text(&meta.uid),
                "GenerateName" => text(&meta.generate_name),
                "ResourceVersion" => text(&meta.resource_version),
                "Generation" => Value::Text(meta.generation.unwrap_or(0).to_string()),
                "Labels" => Value::Map(meta.labels.as_ref()),
                "Annotations" => Value::Map(meta.annotations.as_ref()),
                "SelfLink"
                | "CreationTimestamp"
                | "DeletionTimestamp"
                | "DeletionGracePeriodSeconds"
                | "OwnerReferences"
                | "Finalizers"
                | "ManagedFields" => {
                    return Err(TemplateError::Unsupported(action.to_string()));
                }
                other => return Err(no_field(other)),
            };
            return walk(v, &fields[2..], missing, action);
        }
        other => return Err(no_field(other)),
    };
    value = walk(value, &fields[1..], missing, action)?;
    Ok(value)
}

fn walk<'a>(
    mut value: Value<'a>,
    fields: &[&str],
    missing: MissingKey,
    action: &str,
) -> Result<Value<'a>, TemplateError> {
    for field in fields {
        value = match value {
            Value::Map(m) => match m.and_then(|m| m.get(*field)) {
                Some(v) => Value::Text(v.clone()),
                None => match missing {
                    MissingKey::NoValue => Value::Missing,
                    MissingKey::Error => {
                        return Err(TemplateError::MissingKey {
                            key: field.to_string(),
                            action: action.to_string(),
                        });
                    }
                },
            },
            Value::Text(_) | Value::Missing => {
                return Err(TemplateError::NoField {
                    field: field.to_string(),
                    action: action.to_string(),
                });
            }
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("data".into()),
            namespace: Some("team".into()),
            uid: Some("1234".into()),
            labels: Some(BTreeMap::from([("app".into(), "db".into())])),
            annotations: Some(BTreeMap::from([(
                "example.com/owner".into(),
                "1000".into(),
            )])),
            ..ObjectMeta::default()
        }
    }

    fn r(p: &str, missing: MissingKey) -> Result<String, TemplateError> {
        render(
            p,
            PatternData {
                pv_name: "pvc-1234",
                claim: &meta(),
            },
            missing,
        )
    }

    #[test]
    fn renders_what_people_use() {
        let ok = |p: &str| r(p, MissingKey::NoValue).unwrap();
        assert_eq!(ok("{{ .PVC.Namespace }}/{{ .PVC.Name }}/x"), "team/data/x");
        assert_eq!(ok("{{.PVName}}"), "pvc-1234");
        assert_eq!(ok("{{ .PVC.Labels.app }}-{{ .PVC.UID }}"), "db-1234");
        assert_eq!(
            ok(r#"{{ index .PVC.Annotations "example.com/owner" }}"#),
            "1000"
        );
        assert_eq!(
            ok("{{ index .PVC.Annotations `example.com/owner` }}"),
            "1000"
        );
        assert_eq!(ok("a  {{- .PVC.Name -}}  b"), "adatab");
        assert_eq!(ok("a{{/* note */}}b"), "ab");
        assert_eq!(ok("plain"), "plain");
    }

    #[test]
    fn missing_keys_as_go() {
        assert_eq!(
            r("{{ .PVC.Labels.nope }}", MissingKey::NoValue).unwrap(),
            "<no value>"
        );
        assert!(matches!(
            r("{{ .PVC.Labels.nope }}", MissingKey::Error),
            Err(TemplateError::MissingKey { .. })
        ));
        assert_eq!(
            r(r#"{{ index .PVC.Labels "nope" }}"#, MissingKey::Error).unwrap(),
            ""
        );
        let empty = ObjectMeta::default();
        let d = PatternData {
            pv_name: "p",
            claim: &empty,
        };
        assert_eq!(
            render("{{ .PVC.Labels.x }}", d, MissingKey::NoValue).unwrap(),
            "<no value>"
        );
    }

    #[test]
    fn errors_name_the_action() {
        let e = r("{{ .PVC.Nme }}", MissingKey::NoValue).unwrap_err();
        assert!(e.to_string().contains("Nme"), "{e}");
        let e = r("{{ .PVC.Name | printf \"%s\" }}", MissingKey::NoValue).unwrap_err();
        assert!(e.to_string().contains("printf"), "{e}");
        assert_eq!(
            r("x{{ .PVC.Name", MissingKey::NoValue).unwrap_err(),
            TemplateError::Unclosed(1)
        );
        assert!(r("{{ .PVC.Name.x }}", MissingKey::NoValue).is_err());
        assert!(r("{{ .PVC.Labels }}", MissingKey::NoValue).is_err());
        let e = r("{{ .PVC.Labels.app-name }}", MissingKey::NoValue).unwrap_err();
        assert!(
            e.to_string().contains(r#"index .PVC.Labels "app-name""#),
            "{e}"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(p in "\\PC{0,60}", q in "[{}. a-zA-Z\"`|-]{0,40}") {
            let _ = r(&p, MissingKey::NoValue);
            let _ = r(&q, MissingKey::Error);
        }
    }
}
