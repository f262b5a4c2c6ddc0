//! Who is asking and may they: authentication (the kubeconfig's user is a cluster admin;
//! bearer tokens from `serviceaccounts/token` map back to their service account), impersonation
//! (`Impersonate-User`, `Impersonate-Group`, as `kubectl --as` sends), RBAC evaluation over the
//! stored Roles, ClusterRoles and bindings, and Pod Security admission for namespaces labelled
//! `pod-security.kubernetes.io/enforce`.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::resources::Resource;
use super::status::ApiError;

/// The group whose members may do anything (the kubeconfig's default user is in it).
pub const MASTERS: &str = "system:masters";

/// The kubeconfig's default user.
pub const ADMIN: &str = "lpp-sandbox-admin";

/// An authenticated (or impersonated) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `alice`, `system:serviceaccount:ns:name`.
    pub name: String,
    /// Groups, including the implicit `system:authenticated`.
    pub groups: Vec<String>,
}

impl User {
    /// The default, all-powerful user.
    pub fn admin() -> User {
        User {
            name: ADMIN.into(),
            groups: vec![MASTERS.into(), "system:authenticated".into()],
        }
    }

    /// The user a service account's token stands for.
    pub fn service_account(namespace: &str, name: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// Tokens issued through `serviceaccounts/<name>/token`.
#[derive(Debug, Default)]
pub struct Tokens(Mutex<HashMap<String, (String, String)>>);

impl Tokens {
    /// Issues a token for a service account.
    pub fn issue(&self, namespace: &str, name: &str) -> String {
        let token = format!(
            "lpp-sandbox.{:016x}{:016x}",
            super::objects::random(),
            super::objects::random()
        );
        if let Ok(mut map) = self.0.lock() {
            map.insert(token.clone(), (namespace.into(), name.into()));
        }
        token
    }

    fn lookup(&self, token: &str) -> Option<(String, String)> {
        self.0.lock().ok().and_then(|m| m.get(token).cloned())
    }
}

/// Authenticates a request from its headers, then applies impersonation.
pub fn authenticate(headers: &http::HeaderMap, tokens: &Tokens) -> Result<User, ApiError> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let user = match bearer {
        None => User::admin(),
        Some(token) => match tokens.lookup(token) {
            Some((ns, name)) => User::service_account(&ns, &name),
            None => {
                return Err(ApiError::new(401, "Unauthorized", "Unauthorized"));
            }
        },
    };
    let as_user = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let as_groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let Some(as_user) = as_user else {
        if !as_groups.is_empty() {
            return Err(ApiError::internal(
                "requested impersonation of groups without a user",
            ));
        }
        return Ok(user);
    };
    if !user.is_master() {
        return Err(ApiError::forbidden(format!(
            "users \"{as_user}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
            user.name
        )));
    }
    let mut groups = as_groups;
    if let Some(rest) = as_user.strip_prefix("system:serviceaccount:")
        && let Some((ns, _)) = rest.split_once(':')
    {
        groups.push("system:serviceaccounts".into());
        groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    Ok(User {
        name: as_user,
        groups,
    })
}

/// What is being asked, in RBAC's words.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'a str,
    /// The resource.
    pub resource: &'a Resource,
    /// The subresource, if any.
    pub subresource: Option<&'a str>,
    /// The namespace (`""`: cluster scope).
    pub namespace: &'a str,
    /// The object's name, if the request names one.
    pub name: Option<&'a str>,
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether one PolicyRule allows the request.
pub fn rule_allows(rule: &Value, attrs: &Attributes<'_>) -> bool {
    let verbs = strs(rule.get("verbs"));
    let groups = strs(rule.get("apiGroups"));
    let resources = strs(rule.get("resources"));
    let names = strs(rule.get("resourceNames"));
    let full = match attrs.subresource {
        Some(s) => format!("{}/{s}", attrs.resource.plural),
        None => attrs.resource.plural.to_string(),
    };
    let verb_ok = verbs.iter().any(|v| *v == "*" || *v == attrs.verb);
    let group_ok = groups
        .iter()
        .any(|g| *g == "*" || *g == attrs.resource.group);
    let resource_ok = resources.iter().any(|r| {
        *r == "*" || *r == full || attrs.subresource.is_some_and(|s| *r == format!("*/{s}"))
    });
    let name_ok = names.is_empty() || attrs.name.is_some_and(|n| names.contains(&n));
    verb_ok && group_ok && resource_ok && name_ok
}

/// Whether a binding's subjects include the user.
pub fn subject_matches(binding: &Value, user: &User) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .is_some_and(|subjects| {
            subjects.iter().any(|s| {
                let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
                let name = s.get("name").and_then(Value::as_str).unwrap_or("");
                match kind {
                    "User" => name == user.name,
                    "Group" => user.groups.iter().any(|g| g == name),
                    "ServiceAccount" => {
                        let ns = s.get("namespace").and_then(Value::as_str).unwrap_or("");
                        user.name == format!("system:serviceaccount:{ns}:{name}")
                    }
                    _ => false,
                }
            })
        })
}

/// The RBAC objects a decision reads.
#[derive(Debug, Default)]
pub struct Policy {
    /// ClusterRoles.
    pub cluster_roles: Vec<Value>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<Value>,
    /// Roles in the request's namespace.
    pub roles: Vec<Value>,
    /// RoleBindings in the request's namespace.
    pub role_bindings: Vec<Value>,
}

fn named<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter()
        .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
}

fn rules(role: Option<&Value>) -> Vec<Value> {
    role.and_then(|r| r.get("rules"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Whether RBAC allows the request.
pub fn allowed(user: &User, attrs: &Attributes<'_>, policy: &Policy) -> bool {
    if user.is_master() {
        return true;
    }
    let cluster_rules = policy
        .cluster_role_bindings
        .iter()
        .filter(|b| subject_matches(b, user))
        .filter(|b| b.pointer("/roleRef/kind").and_then(Value::as_str) == Some("ClusterRole"))
        .filter_map(|b| b.pointer("/roleRef/name").and_then(Value::as_str))
        .flat_map(|name| rules(named(&policy.cluster_roles, name)));
    let mut all: Vec<Value> = cluster_rules.collect();
    if !attrs.namespace.is_empty() {
        for b in policy
            .role_bindings
            .iter()
            .filter(|b| subject_matches(b, user))
        {
            let name = b
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            match b.pointer("/roleRef/kind").and_then(Value::as_str) {
                Some("ClusterRole") => all.extend(rules(named(&policy.cluster_roles, name))),
                Some("Role") => all.extend(rules(named(&policy.roles, name))),
                _ => {}
            }
        }
    }
    all.iter().any(|r| rule_allows(r, attrs))
}

/// The 403 the real server answers.
pub fn forbidden(user: &User, attrs: &Attributes<'_>) -> ApiError {
    let resource = match attrs.subresource {
        Some(s) => format!("{}/{s}", attrs.resource.plural),
        None => attrs.resource.plural.to_string(),
    };
    let subject = match attrs.name {
        Some(n) => format!("{} \"{n}\"", attrs.resource.qualified()),
        None => attrs.resource.qualified(),
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", attrs.namespace)
    };
    ApiError {
        details: Some(
            serde_json::json!({"name": attrs.name.unwrap_or(""), "group": attrs.resource.group, "kind": attrs.resource.plural}),
        ),
        ..ApiError::forbidden(format!(
            "{subject} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            user.name, attrs.verb, attrs.resource.group
        ))
    }
}

/// Pod Security admission: the violations of a pod against a namespace's enforced level
/// (`baseline` or `restricted`), as the real admission names them; empty when allowed.
pub fn pod_security_violations(level: &str, pod: &Value) -> Vec<String> {
    let restricted = level == "restricted";
    if !restricted && level != "baseline" {
        return Vec::new();
    }
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let containers: Vec<&Value> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let cname = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let quoted = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            one.to_string()
        } else {
            many.to_string()
        }
    };
    let mut out = Vec::new();
    let pod_sc = spec.get("securityContext").cloned().unwrap_or(Value::Null);

    if restricted {
        let bad: Vec<String> = containers
            .iter()
            .filter(|c| {
                c.pointer("/securityContext/allowPrivilegeEscalation") != Some(&Value::Bool(false))
            })
            .map(|c| cname(c))
            .collect();
        if !bad.is_empty() {
            out.push(format!(
                "allowPrivilegeEscalation != false ({} {} must set securityContext.allowPrivilegeEscalation=false)",
                plural(bad.len(), "container", "containers"),
                quoted(&bad)
            ));
        }
    }
    let added: Vec<String> = containers
        .iter()
        .filter(|c| {
            strs(c.pointer("/securityContext/capabilities/add"))
                .iter()
                .any(|cap| !BASELINE_CAPABILITIES.contains(cap))
        })
        .map(|c| cname(c))
        .collect();
    if !added.is_empty() {
        out.push(format!(
            "non-default capabilities ({} {} must not include capabilities beyond the default set)",
            plural(added.len(), "container", "containers"),
            quoted(&added)
        ));
    }
    if restricted {
        let bad: Vec<String> = containers
            .iter()
            .filter(|c| !strs(c.pointer("/securityContext/capabilities/drop")).contains(&"ALL"))
            .map(|c| cname(c))
            .collect();
        if !bad.is_empty() {
            out.push(format!(
                "unrestricted capabilities ({} {} must set securityContext.capabilities.drop=[\"ALL\"])",
                plural(bad.len(), "container", "containers"),
                quoted(&bad)
            ));
        }
    }
    let host_ns: Vec<&str> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| spec.get(*k) == Some(&Value::Bool(true)))
        .collect();
    if !host_ns.is_empty() {
        let parts: Vec<String> = host_ns.iter().map(|k| format!("{k}=true")).collect();
        out.push(format!("host namespaces ({})", parts.join(", ")));
    }
    let host_paths: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("hostPath").is_some())
                .map(|v| {
                    v.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    if !host_paths.is_empty() && !restricted {
        out.push(format!(
            "hostPath volumes ({} {})",
            plural(host_paths.len(), "volume", "volumes"),
            quoted(&host_paths)
        ));
    }
    let ports: Vec<String> = containers
        .iter()
        .filter(|c| {
            c.get("ports").and_then(Value::as_array).is_some_and(|ps| {
                ps.iter()
                    .any(|p| p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) != 0)
            })
        })
        .map(|c| cname(c))
        .collect();
    if !ports.is_empty() {
        out.push(format!(
            "hostPort ({} {} uses hostPort)",
            plural(ports.len(), "container", "containers"),
            quoted(&ports)
        ));
    }
    let privileged: Vec<String> = containers
        .iter()
        .filter(|c| c.pointer("/securityContext/privileged") == Some(&Value::Bool(true)))
        .map(|c| cname(c))
        .collect();
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} {} must not set securityContext.privileged=true)",
            plural(privileged.len(), "container", "containers"),
            quoted(&privileged)
        ));
    }
    if restricted {
        if !host_paths.is_empty() {
            let uses: Vec<String> = host_paths.iter().map(|v| format!("\"{v}\"")).collect();
            out.push(format!(
                "restricted volume types ({} {} {} restricted volume type \"hostPath\")",
                plural(host_paths.len(), "volume", "volumes"),
                uses.join(", "),
                plural(host_paths.len(), "uses", "use")
            ));
        }
        let pod_non_root = pod_sc.get("runAsNonRoot") == Some(&Value::Bool(true));
        let bad: Vec<String> = containers
            .iter()
            .filter(|c| match c.pointer("/securityContext/runAsNonRoot") {
                Some(Value::Bool(v)) => !v,
                _ => !pod_non_root,
            })
            .map(|c| cname(c))
            .collect();
        if !bad.is_empty() {
            out.push(format!(
                "runAsNonRoot != true (pod or {} {} must set securityContext.runAsNonRoot=true)",
                plural(bad.len(), "container", "containers"),
                quoted(&bad)
            ));
        }
        let pod_seccomp = pod_sc.pointer("/seccompProfile/type").is_some();
        let bad: Vec<String> = containers
            .iter()
            .filter(|c| !pod_seccomp && c.pointer("/securityContext/seccompProfile/type").is_none())
            .map(|c| cname(c))
            .collect();
        if !bad.is_empty() {
            out.push(format!(
                "seccompProfile (pod or {} {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
                plural(bad.len(), "container", "containers"),
                quoted(&bad)
            ));
        }
    }
    out
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::resources::find;
    use serde_json::json;

    fn attrs<'a>(verb: &'a str, resource: &'a Resource, ns: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            resource,
            subresource: None,
            namespace: ns,
            name: None,
        }
    }

    #[test]
    fn roles_bound_in_a_namespace_allow_only_there() {
        let cms = find("", "v1", "configmaps").expect("configmaps");
        let alice = User {
            name: "alice".into(),
            groups: vec!["system:authenticated".into()],
        };
        let policy = Policy {
            roles: vec![
                json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
            ],
            role_bindings: vec![
                json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
                                       "subjects": [{"kind": "User", "name": "alice"}]}),
            ],
            ..Policy::default()
        };
        assert!(allowed(&alice, &attrs("list", cms, "team"), &policy));
        assert!(!allowed(&alice, &attrs("create", cms, "team"), &policy));
        assert!(!allowed(&alice, &attrs("list", cms, ""), &policy));
        assert!(allowed(
            &User::admin(),
            &attrs("create", cms, ""),
            &Policy::default()
        ));
        let err = forbidden(&alice, &attrs("create", cms, "team"));
        assert_eq!(
            err.message,
            "configmaps is forbidden: User \"alice\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"team\""
        );
    }

    #[test]
    fn wildcards_and_resource_names() {
        let sc = find("storage.k8s.io", "v1", "storageclasses").expect("sc");
        let rule = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(rule_allows(&rule, &attrs("delete", sc, "")));
        let named = json!({"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get"], "resourceNames": ["a"]});
        let mut a = attrs("get", sc, "");
        assert!(!rule_allows(&named, &a));
        a.name = Some("a");
        assert!(rule_allows(&named, &a));
    }

    #[test]
    fn baseline_refuses_host_paths_and_privilege() {
        let pod = json!({"spec": {"containers": [{"name": "c", "securityContext": {"privileged": true}}],
                                  "volumes": [{"name": "data", "hostPath": {"path": "/opt"}}]}});
        assert_eq!(
            pod_security_violations("baseline", &pod),
            vec![
                "hostPath volumes (volume \"data\")".to_string(),
                "privileged (container \"c\" must not set securityContext.privileged=true)"
                    .to_string()
            ]
        );
        assert!(pod_security_violations("privileged", &pod).is_empty());
        let restricted = pod_security_violations("restricted", &pod);
        assert!(
            restricted
                .iter()
                .any(|v| v.starts_with("restricted volume types (volume \"data\" uses")),
            "{restricted:?}"
        );
    }
}
