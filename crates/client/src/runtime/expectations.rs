//! Expectations: the objects (a ReplicaSet's or a Job's pods) a controller has created or
//! deleted and not yet seen so in its informer. Until they are seen (or a while has
//! passed), the controller does not count again, so a slow watch never makes it create or
//! delete twice.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::informer::Informer;
use crate::reflector::ObjectKey;
use crate::ApiObject;

/// Expectations not met after this long are given up (a lost watch event).
const TTL: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Option<Instant>,
}

#[derive(Default)]
pub struct Expectations {
    by_owner: Mutex<HashMap<ObjectKey, Pending>>,
}

impl Expectations {
    /// Whether every object `owner` created is in `seen` and every one it deleted is gone
    /// or being deleted.
    pub fn satisfied<K: ApiObject>(&self, owner: &ObjectKey, seen: &Informer<K>) -> bool {
        let mut all = self.by_owner.lock();
        let Some(e) = all.get_mut(owner) else {
            return true;
        };
        let get = |name: &String| {
            seen.get(&ObjectKey {
                namespace: owner.namespace.clone(),
                name: name.clone(),
            })
        };
        e.creates.retain(|n| get(n).is_none());
        e.deletes
            .retain(|n| get(n).is_some_and(|o| o.metadata().deletion_timestamp.is_none()));
        let expired = e.since.is_some_and(|t| t.elapsed() > TTL);
        if (e.creates.is_empty() && e.deletes.is_empty()) || expired {
            all.remove(owner);
            return true;
        }
        false
    }

    pub fn created(&self, owner: &ObjectKey, name: String) {
        let mut all = self.by_owner.lock();
        let e = all.entry(owner.clone()).or_default();
        e.since.get_or_insert_with(Instant::now);
        e.creates.insert(name);
    }

    pub fn deleting(&self, owner: &ObjectKey, names: impl IntoIterator<Item = String>) {
        let mut all = self.by_owner.lock();
        let e = all.entry(owner.clone()).or_default();
        e.since.get_or_insert_with(Instant::now);
        e.deletes.extend(names);
    }

    /// A delete that failed: not expected any more.
    pub fn not_deleting(&self, owner: &ObjectKey, name: &str) {
        if let Some(e) = self.by_owner.lock().get_mut(owner) {
            e.deletes.remove(name);
        }
    }

    pub fn forget(&self, owner: &ObjectKey) {
        self.by_owner.lock().remove(owner);
    }
}
