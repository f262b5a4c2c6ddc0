//! The object store: every object as JSON keyed by resource, namespace and name, one global
//! resourceVersion, a ring of recent changes for watches that resume, and a broadcast to live
//! watchers. All writes go through [`Store::write`], which runs the caller's decision under the
//! store lock so that read-check-write is atomic, like etcd's compare-and-swap.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use super::resources::ResourceId;
use super::status::ApiError;

/// How many changes are kept for watches that resume from a resourceVersion.
const HISTORY: usize = 50_000;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Updated (including being marked for deletion).
    Modified,
    /// Removed.
    Deleted,
}

/// One committed change, as watchers see it.
#[derive(Debug)]
pub struct Change {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The resource.
    pub resource: ResourceId,
    /// The object's namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// The object after the change (for deletions: as it was, with the deletion's resourceVersion).
    pub object: Value,
    /// The object before the change, if any (for selector transitions).
    pub previous: Option<Value>,
}

/// The decision of a write closure.
#[derive(Debug)]
pub enum Write {
    /// Store this object (create or replace).
    Put(Value),
    /// Remove the object.
    Remove,
    /// Nothing changes; answer with this object.
    Unchanged(Value),
}

type Key = (ResourceId, String, String);

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    /// The resourceVersion of the newest change dropped from the history.
    compacted: u64,
    /// Owner uid → the objects naming it in `metadata.ownerReferences`, so that garbage
    /// collection after a deletion does not scan every object.
    owned_by: HashMap<String, BTreeSet<Key>>,
}

/// The uids in an object's `metadata.ownerReferences`.
fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("uid").and_then(Value::as_str))
}

impl Inner {
    /// Keeps [`Inner::owned_by`] in step with `key` going from `before` to `after`.
    fn reindex(&mut self, key: &Key, before: Option<&Value>, after: Option<&Value>) {
        for uid in before.into_iter().flat_map(owner_uids) {
            if let Some(keys) = self.owned_by.get_mut(uid) {
                keys.remove(key);
                if keys.is_empty() {
                    self.owned_by.remove(uid);
                }
            }
        }
        for uid in after.into_iter().flat_map(owner_uids) {
            self.owned_by
                .entry(uid.to_owned())
                .or_default()
                .insert(key.clone());
        }
    }
}

/// The store shared by the API server's handlers.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
    history: usize,
}

/// A watch that starts from a resourceVersion: the changes since then, then the live feed.
pub struct Subscription {
    /// Changes already committed after the requested resourceVersion.
    pub backlog: Vec<Arc<Change>>,
    /// Live changes after the backlog.
    pub live: broadcast::Receiver<Arc<Change>>,
    /// The store's resourceVersion when subscribing.
    pub rv: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty store at resourceVersion 1 (so that "0" always means "any").
    pub fn new() -> Store {
        Store::with_history(HISTORY)
    }

    /// An empty store that keeps the last `history` changes for resuming watches.
    pub fn with_history(history: usize) -> Store {
        let history = history.max(1);
        let (tx, _) = broadcast::channel(history);
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                compacted: 1,
                ..Inner::default()
            }),
            tx,
            history,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another handler panicked mid-read; the map is still whole.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, resource: ResourceId, namespace: &str, name: &str) -> Option<Value> {
        let key = (resource, namespace.to_string(), name.to_string());
        self.lock().objects.get(&key).cloned()
    }

    /// All objects of a resource (in one namespace if given), in key order, with the
    /// resourceVersion of the snapshot.
    pub fn list(&self, resource: ResourceId, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .range((resource, String::new(), String::new())..)
            .take_while(|((r, _, _), _)| *r == resource)
            .filter(|((_, ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// All objects of a resource (in one namespace if given) as they were at resourceVersion
    /// `at`, in key order: the current ones with every later change undone from the history.
    /// `None` when `at` is older than the history or newer than the store (the pages of a list
    /// are all served at its first page's resourceVersion, as etcd serves a continue token).
    pub fn list_at(
        &self,
        resource: ResourceId,
        namespace: Option<&str>,
        at: u64,
    ) -> Option<Vec<Value>> {
        let inner = self.lock();
        if at < inner.compacted || at > inner.rv {
            return None;
        }
        let mut objects: BTreeMap<(String, String), Value> = inner
            .objects
            .range((resource, String::new(), String::new())..)
            .take_while(|((r, _, _), _)| *r == resource)
            .filter(|((_, ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|((_, ns, name), v)| ((ns.clone(), name.clone()), v.clone()))
            .collect();
        for change in inner.history.iter().rev().take_while(|c| c.rv > at) {
            if change.resource != resource || namespace.is_some_and(|want| want != change.namespace)
            {
                continue;
            }
            let name = change
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let key = (change.namespace.clone(), name);
            match &change.previous {
                Some(before) => objects.insert(key, before.clone()),
                None => objects.remove(&key),
            };
        }
        Some(objects.into_values().collect())
    }

    /// Every (resource, name) stored in a namespace.
    pub fn in_namespace(&self, namespace: &str) -> Vec<(ResourceId, String)> {
        self.lock()
            .objects
            .keys()
            .filter(|(_, ns, _)| ns == namespace)
            .map(|(r, _, n)| (*r, n.clone()))
            .collect()
    }

    /// Objects whose only owner (`metadata.ownerReferences`) has this uid.
    pub fn dependents_of(&self, uid: &str) -> Vec<(ResourceId, String, String)> {
        let inner = self.lock();
        let Some(keys) = inner.owned_by.get(uid) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|key| {
                inner
                    .objects
                    .get(*key)
                    .is_some_and(|v| owner_uids(v).all(|o| o == uid))
            })
            .map(|(r, ns, name)| (*r, ns.clone(), name.clone()))
            .collect()
    }

    /// Runs `decide` on the current object (if any) under the lock and commits its decision.
    /// `decide` gets the resourceVersion the write will carry; a `Put` object gets it stamped.
    /// Returns the stored (or removed, or unchanged) object.
    pub fn write<F>(
        &self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        decide: F,
    ) -> Result<Value, ApiError>
    where
        F: FnOnce(Option<&Value>, u64) -> Result<Write, ApiError>,
    {
        let key = (resource, namespace.to_string(), name.to_string());
        let mut inner = self.lock();
        let next = inner.rv + 1;
        let current = inner.objects.get(&key);
        let decision = decide(current, next)?;
        let previous = current.cloned();
        let (kind, object) = match decision {
            Write::Unchanged(v) => return Ok(v),
            Write::Put(mut object) => {
                set_rv(&mut object, next);
                let kind = if previous.is_some() {
                    ChangeKind::Modified
                } else {
                    ChangeKind::Added
                };
                inner.reindex(&key, previous.as_ref(), Some(&object));
                inner.objects.insert(key, object.clone());
                (kind, object)
            }
            Write::Remove => {
                let Some(mut object) = inner.objects.remove(&key) else {
                    return Err(ApiError::internal("removing an object that is not stored"));
                };
                inner.reindex(&key, Some(&object), None);
                set_rv(&mut object, next);
                (ChangeKind::Deleted, object)
            }
        };
        inner.rv = next;
        let change = Arc::new(Change {
            rv: next,
            kind,
            resource,
            namespace: namespace.to_string(),
            object: object.clone(),
            previous,
        });
        inner.history.push_back(change.clone());
        while inner.history.len() > self.history {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
        Ok(object)
    }

    /// Subscribes to changes after `from`; `None` when `from` is older than the history
    /// (the caller answers 410 Gone).
    pub fn subscribe(&self, from: u64) -> Option<Subscription> {
        let inner = self.lock();
        if from < inner.compacted {
            return None;
        }
        let live = self.tx.subscribe();
        let backlog = inner
            .history
            .iter()
            .filter(|c| c.rv > from)
            .cloned()
            .collect();
        Some(Subscription {
            backlog,
            live,
            rv: inner.rv,
        })
    }

    /// A snapshot of a resource and a live feed from right after it, atomically.
    pub fn list_and_subscribe(
        &self,
        resource: ResourceId,
        namespace: Option<&str>,
    ) -> (Vec<Value>, Subscription) {
        let inner = self.lock();
        let live = self.tx.subscribe();
        let items = inner
            .objects
            .range((resource, String::new(), String::new())..)
            .take_while(|((r, _, _), _)| *r == resource)
            .filter(|((_, ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(_, v)| v.clone())
            .collect();
        let sub = Subscription {
            backlog: Vec::new(),
            live,
            rv: inner.rv,
        };
        (items, sub)
    }
}

fn set_rv(object: &mut Value, rv: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CM: ResourceId = ResourceId {
        group: "",
        plural: "configmaps",
    };

    fn put(store: &Store, name: &str) -> Value {
        store
            .write(CM, "default", name, |_, _| {
                Ok(Write::Put(json!({"metadata": {"name": name}})))
            })
            .expect("write")
    }

    #[test]
    fn every_write_bumps_the_resource_version_and_reaches_subscribers() {
        let store = Store::new();
        let start = store.rv();
        let mut sub = store.subscribe(start).expect("subscribe");
        let a = put(&store, "a");
        let b = put(&store, "b");
        assert_eq!(
            a["metadata"]["resourceVersion"],
            json!((start + 1).to_string())
        );
        assert_eq!(
            b["metadata"]["resourceVersion"],
            json!((start + 2).to_string())
        );
        assert_eq!(sub.live.try_recv().expect("first").kind, ChangeKind::Added);
        let resumed = store.subscribe(start + 1).expect("resume");
        assert_eq!(resumed.backlog.len(), 1);
        assert_eq!(store.list(CM, Some("default")).0.len(), 2);
        assert_eq!(store.list(CM, Some("other")).0.len(), 0);
    }

    #[test]
    fn watches_from_before_the_history_are_gone() {
        let store = Store::with_history(3);
        let start = store.rv();
        for name in ["a", "b", "c", "d", "e"] {
            put(&store, name);
        }
        assert!(store.subscribe(start).is_none(), "compacted away");
        let recent = store
            .subscribe(store.rv() - 2)
            .expect("still in the history");
        assert_eq!(recent.backlog.len(), 2);
    }

    #[test]
    fn a_list_at_an_older_version_undoes_the_later_changes() {
        let store = Store::with_history(10);
        put(&store, "a");
        put(&store, "b");
        let at = store.rv();
        put(&store, "c");
        store
            .write(CM, "default", "a", |_, _| Ok(Write::Remove))
            .expect("remove a");
        store
            .write(CM, "default", "b", |_, _| {
                Ok(Write::Put(
                    json!({"metadata": {"name": "b"}, "data": {"k": "v"}}),
                ))
            })
            .expect("change b");
        let then = store
            .list_at(CM, Some("default"), at)
            .expect("in the history");
        let names: Vec<&str> = then
            .iter()
            .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(then[1].get("data").is_none(), "{then:?}");
        assert_eq!(
            store
                .list_at(CM, Some("default"), store.rv())
                .map(|l| l.len()),
            Some(2)
        );
        assert!(store.list_at(CM, None, store.rv() + 1).is_none());
        for _ in 0..10 {
            put(&store, "d");
        }
        assert!(store.list_at(CM, None, at).is_none(), "compacted away");
    }

    #[test]
    fn unchanged_writes_commit_nothing() {
        let store = Store::new();
        let a = put(&store, "a");
        let rv = store.rv();
        let same = store
            .write(CM, "default", "a", |cur, _| {
                Ok(Write::Unchanged(cur.cloned().unwrap_or_default()))
            })
            .expect("write");
        assert_eq!(same, a);
        assert_eq!(store.rv(), rv);
    }

    #[test]
    fn dependents_follow_owner_references_through_updates_and_removal() {
        let store = Store::new();
        let owned = |name: &str, owners: &[&str]| {
            let refs: Vec<Value> = owners.iter().map(|u| json!({"uid": u})).collect();
            store
                .write(CM, "default", name, |_, _| {
                    Ok(Write::Put(
                        json!({"metadata": {"name": name, "ownerReferences": refs}}),
                    ))
                })
                .expect("write");
        };
        let names = |uid: &str| -> Vec<String> {
            store
                .dependents_of(uid)
                .into_iter()
                .map(|(_, _, n)| n)
                .collect()
        };
        owned("only-a", &["a"]);
        owned("a-and-b", &["a", "b"]);
        owned("moves", &["a"]);
        put(&store, "free");
        assert_eq!(names("a"), ["moves", "only-a"], "sole owner only");
        owned("moves", &["b"]);
        assert_eq!(names("a"), ["only-a"]);
        assert_eq!(names("b"), ["moves"]);
        store
            .write(CM, "default", "only-a", |_, _| Ok(Write::Remove))
            .expect("remove");
        assert!(names("a").is_empty());
        assert!(names("nobody").is_empty());
    }
}
