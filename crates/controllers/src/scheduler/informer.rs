//! Feeds the cache and the queue from watches: pods (pending ones to the queue, assigned
//! ones to the cache), nodes, and the small kinds plugins read (namespaces, PVCs, PVs,
//! PriorityClasses, StorageClasses).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use client::reflector::ObjectKey;
use client::watcher::{self, Event};
use client::{Api, ApiObject, Client};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::cache::Cache;
use super::pod_info::PodInfo;
use super::queue::SchedulingQueue;

/// PriorityClass values by name, and the global default.
#[derive(Default)]
pub(crate) struct Priorities {
    classes: HashMap<String, i32>,
    default: Option<(String, i32)>,
}

impl Priorities {
    /// The pod's priority: `spec.priority` when admission set it, else its class's value,
    /// else the global default class's, else 0.
    pub(crate) fn of(&self, pod: &Pod) -> i32 {
        let spec = pod.spec.as_ref();
        if let Some(p) = spec.and_then(|s| s.priority) {
            return p;
        }
        match spec.and_then(|s| s.priority_class_name.as_deref()) {
            Some(c) if !c.is_empty() => self.classes.get(c).copied().unwrap_or(0),
            _ => self.default.as_ref().map_or(0, |(_, v)| *v),
        }
    }

    fn apply(&mut self, pc: &PriorityClass, deleted: bool) {
        let name = pc.metadata.name.clone().unwrap_or_default();
        if deleted {
            self.classes.remove(&name);
            if self.default.as_ref().is_some_and(|(n, _)| *n == name) {
                self.default = None;
            }
            return;
        }
        let value = pc.value.unwrap_or(0);
        self.classes.insert(name.clone(), value);
        if pc.global_default == Some(true) {
            self.default = Some((name, value));
        }
    }
}

pub(crate) struct Shared {
    pub cache: Mutex<Cache>,
    pub queue: SchedulingQueue,
    pub priorities: Mutex<Priorities>,
    pub scheduler_name: String,
}

fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Shared {
    fn pod_info(&self, p: Pod) -> Arc<PodInfo> {
        let prio = self.priorities.lock().of(&p);
        Arc::new(PodInfo::new(Arc::new(p), prio))
    }

    fn apply_pod(&self, p: Pod) {
        let key = ObjectKey::of(&p);
        let assigned = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if is_terminal(&p) {
            self.delete_pod(&key);
            return;
        }
        if assigned {
            self.queue.delete(&key);
            let info = self.pod_info(p);
            let mut c = self.cache.lock();
            c.unnominate(&key);
            c.add_pod(info, false);
            return;
        }
        let ours = p
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler")
            == self.scheduler_name;
        if !ours || p.metadata.deletion_timestamp.is_some() {
            self.queue.delete(&key);
            return;
        }
        if self.cache.lock().is_assumed(&key) {
            // Bound by us; the watch has not caught up yet.
            return;
        }
        self.queue.add(self.pod_info(p));
    }

    fn delete_pod(&self, key: &ObjectKey) {
        self.queue.delete(key);
        let removed = {
            let mut c = self.cache.lock();
            c.unnominate(key);
            c.remove_pod(key)
        };
        if removed.is_some() {
            self.queue.move_all_to_active_or_backoff();
        }
    }

    /// Watches pods until the stream ends (it does not, by itself).
    pub(crate) async fn run_pods(self: Arc<Self>, client: Client, ready: watch::Sender<bool>) {
        let mut stream = watcher::watcher(Api::<Pod>::all(client), Default::default()).boxed();
        let mut seen: Option<HashSet<ObjectKey>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Event::Init => seen = Some(HashSet::new()),
                Event::InitApply(p) => {
                    if let Some(s) = seen.as_mut() {
                        s.insert(ObjectKey::of(&p));
                    }
                    self.apply_pod(p);
                }
                Event::InitDone => {
                    // Pods that vanished while the watch was broken.
                    let seen = seen.take().unwrap_or_default();
                    let gone: Vec<ObjectKey> = {
                        let c = self.cache.lock();
                        c.nodes()
                            .iter()
                            .flat_map(|n| n.pods.iter())
                            .filter(|p| !seen.contains(&p.key) && !c.is_assumed(&p.key))
                            .map(|p| p.key.clone())
                            .collect()
                    };
                    for k in gone {
                        self.delete_pod(&k);
                    }
                    ready.send_replace(true);
                }
                Event::Apply(p) => self.apply_pod(p),
                Event::Delete(p) => self.delete_pod(&ObjectKey::of(&p)),
            }
        }
    }

    pub(crate) async fn run_nodes(self: Arc<Self>, client: Client, ready: watch::Sender<bool>) {
        let mut stream = watcher::watcher(Api::<Node>::all(client), Default::default()).boxed();
        let mut seen: Option<HashSet<String>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Event::Init => seen = Some(HashSet::new()),
                Event::InitApply(n) | Event::Apply(n) => {
                    if let Some(s) = seen.as_mut() {
                        s.insert(n.metadata.name.clone().unwrap_or_default());
                    }
                    if self.cache.lock().set_node(Arc::new(n)) {
                        self.queue.move_all_to_active_or_backoff();
                    }
                }
                Event::InitDone => {
                    let seen = seen.take().unwrap_or_default();
                    let mut c = self.cache.lock();
                    let gone: Vec<String> = c
                        .nodes()
                        .iter()
                        .filter(|n| n.node.is_some() && !seen.contains(&n.name))
                        .map(|n| n.name.clone())
                        .collect();
                    for n in gone {
                        c.remove_node(&n);
                    }
                    ready.send_replace(true);
                }
                Event::Delete(n) => {
                    self.cache
                        .lock()
                        .remove_node(n.metadata.name.as_deref().unwrap_or_default());
                }
            }
        }
    }

    /// Mirrors a small kind into the cache through `apply(shared, object, deleted)`.
    pub(crate) async fn run_mirror<K: ApiObject>(
        self: Arc<Self>,
        client: Client,
        ready: watch::Sender<bool>,
        apply: fn(&Shared, K, bool),
    ) {
        let mut stream = watcher::watcher(Api::<K>::all(client), Default::default()).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Event::Init => {}
                Event::InitApply(k) | Event::Apply(k) => apply(&self, k, false),
                Event::Delete(k) => apply(&self, k, true),
                Event::InitDone => {
                    ready.send_replace(true);
                }
            }
            self.queue.move_all_to_active_or_backoff();
        }
    }
}

pub(crate) fn apply_namespace(s: &Shared, ns: Namespace, deleted: bool) {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let mut c = s.cache.lock();
    if deleted {
        c.namespaces.remove(&name);
    } else {
        c.namespaces
            .insert(name, ns.metadata.labels.clone().unwrap_or_default());
    }
}

pub(crate) fn apply_pvc(s: &Shared, pvc: PersistentVolumeClaim, deleted: bool) {
    let key = ObjectKey::of(&pvc);
    let mut c = s.cache.lock();
    if deleted {
        c.pvcs.remove(&key);
    } else {
        c.pvcs.insert(key, Arc::new(pvc));
    }
}

pub(crate) fn apply_pv(s: &Shared, pv: PersistentVolume, deleted: bool) {
    let name = pv.metadata.name.clone().unwrap_or_default();
    let mut c = s.cache.lock();
    if deleted {
        c.pvs.remove(&name);
    } else {
        c.pvs.insert(name, Arc::new(pv));
    }
}

pub(crate) fn apply_storage_class(s: &Shared, sc: StorageClass, deleted: bool) {
    let name = sc.metadata.name.clone().unwrap_or_default();
    let mut c = s.cache.lock();
    if deleted {
        c.storage_classes.remove(&name);
    } else {
        c.storage_classes.insert(name, Arc::new(sc));
    }
}

pub(crate) fn apply_pdb(s: &Shared, pdb: PodDisruptionBudget, deleted: bool) {
    let key = ObjectKey::of(&pdb);
    let mut c = s.cache.lock();
    if deleted {
        c.pdbs.remove(&key);
    } else {
        c.pdbs.insert(key, Arc::new(pdb));
    }
}

pub(crate) fn apply_priority_class(s: &Shared, pc: PriorityClass, deleted: bool) {
    s.priorities.lock().apply(&pc, deleted);
}
