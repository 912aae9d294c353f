//! Expectations: the pods a controller has created or deleted and not yet seen so in its
//! informer. Until they are seen (or a while has passed), the controller does not count
//! again, so a slow watch never makes it create or delete twice.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use client::informer::Informer;
use client::reflector::ObjectKey;
use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;

use crate::pods;

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
    /// Whether every pod `owner` created is in `pods` and every pod it deleted is gone or
    /// being deleted.
    pub fn satisfied(&self, owner: &ObjectKey, pods_inf: &Informer<Pod>) -> bool {
        let mut all = self.by_owner.lock();
        let Some(e) = all.get_mut(owner) else {
            return true;
        };
        let get = |name: &String| {
            pods_inf.get(&ObjectKey {
                namespace: owner.namespace.clone(),
                name: name.clone(),
            })
        };
        e.creates.retain(|n| get(n).is_none());
        e.deletes
            .retain(|n| get(n).is_some_and(|p| !pods::is_deleting(&p)));
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
