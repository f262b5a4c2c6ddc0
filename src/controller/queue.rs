//! Which objects have an operation under way, what arrived for them meanwhile, and which claims
//! were refused and wait for something to change.
//!
//! At most one operation per object runs at a time. A change that arrives while its object is
//! busy is kept (the newest wins) and looked at when the operation ends, never dropped; it also
//! wakes an operation that is only waiting for its retry delay, so a fix the user made (the
//! class, the node, the config) is tried at once rather than minutes later. A refused claim is
//! kept aside and handed back when the configuration, a class, the nodes or the volumes change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The queue of one run, keyed by object (`claim/<uid>`, `volume/<name>`).
pub struct Queue<W> {
    busy: Mutex<HashMap<String, Busy<W>>>,
    refused: Mutex<Refused<W>>,
}

/// Refused work, and how many times it was handed back: an operation that started before a
/// hand-back and is refused after it must look again at once, or the change would be missed.
struct Refused<W> {
    work: HashMap<String, W>,
    handed_back: u64,
}

struct Busy<W> {
    pending: Option<W>,
    newer: Arc<Notify>,
}

impl<W> Default for Queue<W> {
    fn default() -> Self {
        Queue {
            busy: Mutex::new(HashMap::new()),
            refused: Mutex::new(Refused {
                work: HashMap::new(),
                handed_back: 0,
            }),
        }
    }
}

impl<W> Queue<W> {
    /// Marks `key` busy and hands back `work` to start, with the signal that fires when newer
    /// work for it arrives; when an operation for it is already under way, keeps `work` for
    /// afterwards (waking that operation's retry delay) and hands back nothing.
    pub fn claim(&self, key: &str, work: W) -> Option<(W, Arc<Notify>)> {
        let Ok(mut busy) = self.busy.lock() else {
            return None;
        };
        if let Ok(mut refused) = self.refused.lock() {
            refused.work.remove(key);
        }
        match busy.get_mut(key) {
            Some(under_way) => {
                under_way.pending = Some(work);
                under_way.newer.notify_one();
                None
            }
            None => {
                let newer = Arc::new(Notify::new());
                busy.insert(
                    key.to_owned(),
                    Busy {
                        pending: None,
                        newer: Arc::clone(&newer),
                    },
                );
                Some((work, newer))
            }
        }
    }

    /// The work that arrived while `key` was busy, or `None` (and `key` is free again).
    pub fn next(&self, key: &str) -> Option<W> {
        let mut busy = self.busy.lock().ok()?;
        let pending = busy.get_mut(key).and_then(|b| b.pending.take());
        if pending.is_none() {
            busy.remove(key);
        }
        pending
    }

    /// How many hand-backs there have been: read before an attempt, given to [`Queue::refuse`].
    pub fn generation(&self) -> u64 {
        self.refused.lock().map(|r| r.handed_back).unwrap_or(0)
    }

    /// Keeps a refused claim's work until [`Queue::refused`] hands it back, unless a hand-back
    /// happened since `generation` was read: then the work comes back at once, to be tried again.
    pub fn refuse(&self, key: &str, work: W, generation: u64) -> Option<W> {
        let Ok(mut refused) = self.refused.lock() else {
            return Some(work);
        };
        if refused.handed_back != generation {
            return Some(work);
        }
        refused.work.insert(key.to_owned(), work);
        None
    }

    /// Takes every refused work back, to be looked at again.
    pub fn refused(&self) -> Vec<(String, W)> {
        self.refused
            .lock()
            .map(|mut r| {
                r.handed_back += 1;
                r.work.drain().collect()
            })
            .unwrap_or_default()
    }

    /// Forgets a refused object (it was deleted).
    pub fn forget(&self, key: &str) {
        if let Ok(mut refused) = self.refused.lock() {
            refused.work.remove(key);
        }
    }

    /// How many objects have an operation under way.
    #[cfg(test)]
    pub fn busy(&self) -> usize {
        self.busy.lock().map(|b| b.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn newer_work_is_kept_and_wakes_the_one_under_way() {
        let q: Queue<u32> = Queue::default();
        let (first, newer) = q.claim("a", 1).unwrap();
        assert_eq!(first, 1);
        assert!(q.claim("a", 2).is_none());
        assert!(q.claim("a", 3).is_none());
        // The operation under way is woken (the permit is stored even before it waits).
        tokio::time::timeout(std::time::Duration::from_secs(1), newer.notified())
            .await
            .unwrap();
        assert_eq!(q.next("a"), Some(3));
        assert_eq!(q.next("a"), None);
        assert_eq!(q.busy(), 0);
        assert!(q.claim("a", 4).is_some());
    }

    #[test]
    fn refused_work_comes_back_once_and_new_work_replaces_it() {
        let q: Queue<u32> = Queue::default();
        let g = q.generation();
        assert_eq!(q.refuse("a", 1, g), None);
        assert_eq!(q.refuse("b", 2, g), None);
        q.forget("b");
        let mut back = q.refused();
        back.sort();
        assert_eq!(back, vec![("a".to_owned(), 1)]);
        assert!(q.refused().is_empty());
        // Refused after a hand-back it did not see: handed back at once.
        assert_eq!(q.refuse("late", 9, g), Some(9));
        let g = q.generation();
        assert_eq!(q.refuse("c", 5, g), None);
        // Work arriving for a refused object replaces the refusal.
        assert!(q.claim("c", 6).is_some());
        assert!(q.refused().is_empty());
    }
}
