//! core/v1 Events on claims and volumes, as upstream's provisioner library records them, and as
//! client-go's recorder names and aggregates them: the same event on the same object again is
//! one Event whose `count` grows and whose `lastTimestamp` moves (the EventCorrelator's
//! "series"), not a new object each time; names are `<object name>.<hex unix nanos>`, cut so
//! that the whole stays a valid object name whatever the object's name.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

/// The longest object name Kubernetes accepts (a DNS subdomain).
const MAX_NAME: usize = 253;

/// How many distinct events are remembered for aggregation; past that the oldest are forgotten
/// (their next repeat starts a new Event, as after a restart).
const REMEMBERED: usize = 4096;

/// The name client-go's recorder gives an event about `object` at `nanos`: the object's name, a
/// dot, the time in hex; the object's name is cut (and a trailing `.` or `-` dropped) so that
/// the whole fits in 253 characters.
pub fn event_name(object: &str, nanos: i128) -> String {
    let suffix = format!(".{:x}", nanos.max(0));
    let room = MAX_NAME.saturating_sub(suffix.len());
    let mut prefix: &str = object;
    if prefix.len() > room {
        let mut end = room;
        while !prefix.is_char_boundary(end) {
            end -= 1;
        }
        prefix = &prefix[..end];
    }
    let prefix = prefix.trim_end_matches(['.', '-']);
    format!("{prefix}{suffix}")
}

/// What makes two events "the same" for aggregation: the object, the type, the reason, the
/// message and who reports it (client-go's `getEventKey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    kind: String,
    name: String,
    uid: String,
    warning: bool,
    reason: String,
    message: String,
    component: String,
}

/// An event already recorded: its name and how many times it happened.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    count: i32,
    order: u64,
}

#[derive(Default)]
struct Memory {
    seen: HashMap<Key, Seen>,
    next: u64,
}

static MEMORY: Mutex<Option<Memory>> = Mutex::new(None);

/// The event to write for `key`: a new one (`None`), or the existing `(name, count)` to bump.
fn remember(key: &Key, new_name: &str) -> Option<(String, i32)> {
    let Ok(mut guard) = MEMORY.lock() else {
        return None;
    };
    let memory = guard.get_or_insert_with(Memory::default);
    memory.next += 1;
    let order = memory.next;
    if let Some(seen) = memory.seen.get_mut(key) {
        seen.count += 1;
        seen.order = order;
        return Some((seen.name.clone(), seen.count));
    }
    if memory.seen.len() >= REMEMBERED
        && let Some(oldest) = memory
            .seen
            .iter()
            .min_by_key(|(_, s)| s.order)
            .map(|(k, _)| k.clone())
    {
        memory.seen.remove(&oldest);
    }
    memory.seen.insert(
        key.clone(),
        Seen {
            name: new_name.to_owned(),
            count: 1,
            order,
        },
    );
    None
}

/// Forgets `key` (its Event is gone, or could not be written).
fn forget(key: &Key) {
    if let Ok(mut guard) = MEMORY.lock()
        && let Some(memory) = guard.as_mut()
    {
        memory.seen.remove(key);
    }
}

/// Records an event about `object`; a failure to record is logged, never fatal. The same event
/// again on the same object bumps the first one's `count` and `lastTimestamp`.
pub async fn record<K>(
    client: &kube::Client,
    provisioner: &str,
    object: &K,
    warning: bool,
    reason: &str,
    message: &str,
) where
    K: Resource<DynamicType = ()>,
{
    Write::of(client, provisioner, object, warning, reason, message)
        .send()
        .await;
}

/// [`record`] without waiting for the API server, as client-go's recorder does: the event is
/// stamped and named now, and written by a task of `tracker` (which a stopping run waits for).
pub fn record_soon<K>(
    tracker: &tokio_util::task::TaskTracker,
    client: &kube::Client,
    provisioner: &str,
    object: &K,
    warning: bool,
    reason: &str,
    message: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let write = Write::of(client, provisioner, object, warning, reason, message);
    tracker.spawn(write.send());
}

/// One event write, decided (time, name, new or a repeat) when the event happened.
struct Write {
    api: Api<Event>,
    key: Key,
    /// The existing event and its new count, when this is a repeat.
    repeat: Option<(String, i32)>,
    /// The event to create when it is new (its name and time are the write's).
    event: Event,
}

impl Write {
    fn of<K>(
        client: &kube::Client,
        provisioner: &str,
        object: &K,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> Write
    where
        K: Resource<DynamicType = ()>,
    {
        let namespace = object.namespace().unwrap_or_else(|| "default".into());
        let now = jiff::Timestamp::now();
        let key = Key {
            namespace: namespace.clone(),
            kind: K::kind(&()).into_owned(),
            name: object.name_any(),
            uid: object.uid().unwrap_or_default(),
            warning,
            reason: reason.to_owned(),
            message: message.to_owned(),
            component: provisioner.to_owned(),
        };
        let name = event_name(&object.name_any(), now.as_nanosecond());
        let repeat = remember(&key, &name);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::kind(&()).into_owned()),
                name: Some(object.name_any()),
                namespace: object.namespace(),
                uid: object.uid(),
                resource_version: object.resource_version(),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            source: Some(EventSource {
                component: Some(provisioner.to_owned()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some(provisioner.to_owned()),
            ..Event::default()
        };
        Write {
            api: Api::namespaced(client.clone(), &namespace),
            key,
            repeat,
            event,
        }
    }

    async fn send(self) {
        let Write {
            api,
            key,
            repeat,
            event,
        } = self;
        let name = event.metadata.name.clone().unwrap_or_default();
        let reason = &key.reason;
        let object = &key.name;
        if let Some((existing, count)) = repeat {
            let patch = serde_json::json!({
                "count": count,
                "lastTimestamp": event.last_timestamp,
            });
            match api
                .patch(&existing, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                // Gone (events expire after an hour): start a new one below.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    forget(&key);
                    remember(&key, &name);
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot record event {reason} on {object}: {}",
                        crate::cluster::request_failed("patch", &format!("event {existing}"), &e)
                    );
                    return;
                }
            }
        }
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            forget(&key);
            tracing::warn!(
                "cannot record event {reason} on {object}: {}",
                crate::cluster::request_failed("create", &format!("event {name}"), &e)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid_name(name: &str) -> bool {
        name.len() <= MAX_NAME
            && name.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    }

    #[test]
    fn names_are_the_object_and_the_time_in_hex() {
        assert_eq!(event_name("data", 255), "data.ff");
        let long = format!("{}-x", "a".repeat(250));
        let name = event_name(&long, 0x1234_5678_9abc_def0);
        assert_eq!(name.len(), MAX_NAME);
        assert!(name.ends_with(".123456789abcdef0"), "{name}");
        assert!(valid_name(&name), "{name}");
    }

    #[test]
    fn repeats_are_counted_on_the_first_event() {
        let key = Key {
            namespace: "ns".into(),
            kind: "PersistentVolumeClaim".into(),
            name: "c".into(),
            uid: "uid-events-test".into(),
            warning: true,
            reason: "ProvisioningFailed".into(),
            message: "boom".into(),
            component: "p".into(),
        };
        assert_eq!(remember(&key, "c.1"), None);
        assert_eq!(remember(&key, "c.2"), Some(("c.1".to_owned(), 2)));
        assert_eq!(remember(&key, "c.3"), Some(("c.1".to_owned(), 3)));
        let other = Key {
            message: "another cause".into(),
            ..key.clone()
        };
        assert_eq!(remember(&other, "c.4"), None);
        forget(&key);
        assert_eq!(remember(&key, "c.5"), None);
    }

    proptest! {
        #[test]
        fn an_event_name_is_always_valid(
            object in "[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?",
            nanos in 0i128..i128::from(i64::MAX),
        ) {
            // Object names are DNS subdomains; a label must not start or end with '-'.
            prop_assume!(valid_name(&object));
            let name = event_name(&object, nanos);
            prop_assert!(valid_name(&name), "{}", name);
        }
    }
}
