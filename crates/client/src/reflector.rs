//! A reflector: an in-memory copy of a kind, kept current by a watcher stream.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::watcher::Event;

/// `namespace/name` (or `name` for cluster-scoped objects).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of<K: Metadata<Ty = ObjectMeta>>(k: &K) -> Self {
        let m = k.metadata();
        ObjectKey {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// The read side of a reflector. Cheap to clone.
pub struct Store<K> {
    objects: Arc<RwLock<HashMap<ObjectKey, Arc<K>>>>,
    ready: watch::Receiver<bool>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            objects: self.objects.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<K> Store<K> {
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.objects.read().get(key).cloned()
    }

    pub fn state(&self) -> Vec<Arc<K>> {
        self.objects.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.objects.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until the first list has been applied.
    pub async fn wait_until_ready(&self) {
        let mut r = self.ready.clone();
        let _ = r.wait_for(|r| *r).await;
    }
}

/// The write side: applies watcher events.
pub struct Writer<K> {
    objects: Arc<RwLock<HashMap<ObjectKey, Arc<K>>>>,
    /// Objects of a re-list in progress; they replace everything at InitDone.
    pending: Option<HashMap<ObjectKey, Arc<K>>>,
    ready: watch::Sender<bool>,
}

impl<K: Metadata<Ty = ObjectMeta>> Writer<K> {
    pub fn new() -> (Writer<K>, Store<K>) {
        let objects = Arc::new(RwLock::new(HashMap::new()));
        let (tx, rx) = watch::channel(false);
        (
            Writer {
                objects: objects.clone(),
                pending: None,
                ready: tx,
            },
            Store { objects, ready: rx },
        )
    }

    pub fn apply(&mut self, ev: &Event<K>)
    where
        K: Clone,
    {
        match ev {
            Event::Apply(k) => {
                self.objects
                    .write()
                    .insert(ObjectKey::of(k), Arc::new(k.clone()));
            }
            Event::Delete(k) => {
                self.objects.write().remove(&ObjectKey::of(k));
            }
            Event::Init => self.pending = Some(HashMap::new()),
            Event::InitApply(k) => {
                if let Some(p) = self.pending.as_mut() {
                    p.insert(ObjectKey::of(k), Arc::new(k.clone()));
                }
            }
            Event::InitDone => {
                if let Some(p) = self.pending.take() {
                    *self.objects.write() = p;
                }
                self.ready.send_replace(true);
            }
        }
    }
}

/// Passes `stream` through, applying every event to `writer` first.
pub fn reflector<K, S>(mut writer: Writer<K>, stream: S) -> impl Stream<Item = Event<K>>
where
    K: Metadata<Ty = ObjectMeta> + Clone,
    S: Stream<Item = Event<K>>,
{
    stream.map(move |ev| {
        writer.apply(&ev);
        ev
    })
}
