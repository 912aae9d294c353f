//! A shared informer: one watch of a kind feeding an in-memory copy that many controllers
//! read, and a broadcast of every change they subscribe to — client-go's
//! SharedInformer, so ten controllers interested in pods cost one watch, not ten.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use parking_lot::RwLock;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::api::{Api, ApiObject};
use crate::reflector::ObjectKey;
use crate::watcher::{self, watcher, Event};

/// A change as subscribers see it.
#[derive(Debug)]
pub enum Change<K> {
    Applied(Arc<K>),
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied(k) => Change::Applied(k.clone()),
            Change::Deleted(k) => Change::Deleted(k.clone()),
        }
    }
}

impl<K> Change<K> {
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Applied(k) | Change::Deleted(k) => k,
        }
    }
}

/// Changes a subscriber may fall behind by before it is told to resynchronise
/// (`RecvError::Lagged`).
const BROADCAST_CAPACITY: usize = 8_192;

pub struct Informer<K> {
    objects: RwLock<HashMap<ObjectKey, Arc<K>>>,
    tx: broadcast::Sender<Change<K>>,
    ready: watch::Receiver<bool>,
    task: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl<K> Drop for Informer<K> {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }
}

impl<K: ApiObject> Informer<K> {
    /// Starts watching; the watch stops when the informer is dropped.
    pub fn start(api: Api<K>, config: watcher::Config) -> Arc<Self> {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (ready_tx, ready) = watch::channel(false);
        let inf = Arc::new(Informer {
            objects: RwLock::new(HashMap::new()),
            tx,
            ready,
            task: parking_lot::Mutex::new(None),
        });
        let weak = Arc::downgrade(&inf);
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, config).boxed();
            let mut relist: Option<HashMap<ObjectKey, Arc<K>>> = None;
            while let Some(ev) = stream.next().await {
                let Some(inf) = weak.upgrade() else {
                    return;
                };
                match ev {
                    Event::Init => relist = Some(HashMap::new()),
                    Event::InitApply(k) => {
                        let k = Arc::new(k);
                        if let Some(r) = relist.as_mut() {
                            r.insert(ObjectKey::of(k.as_ref()), k.clone());
                        }
                        inf.objects
                            .write()
                            .insert(ObjectKey::of(k.as_ref()), k.clone());
                        let _ = inf.tx.send(Change::Applied(k));
                    }
                    Event::InitDone => {
                        let seen = relist.take().unwrap_or_default();
                        let gone: Vec<Arc<K>> = {
                            let mut objs = inf.objects.write();
                            let gone_keys: Vec<ObjectKey> = objs
                                .keys()
                                .filter(|k| !seen.contains_key(*k))
                                .cloned()
                                .collect();
                            gone_keys.iter().filter_map(|k| objs.remove(k)).collect()
                        };
                        for k in gone {
                            let _ = inf.tx.send(Change::Deleted(k));
                        }
                        ready_tx.send_replace(true);
                    }
                    Event::Apply(k) => {
                        let k = Arc::new(k);
                        inf.objects
                            .write()
                            .insert(ObjectKey::of(k.as_ref()), k.clone());
                        let _ = inf.tx.send(Change::Applied(k));
                    }
                    Event::Delete(k) => {
                        let key = ObjectKey::of(&k);
                        let k = inf
                            .objects
                            .write()
                            .remove(&key)
                            .unwrap_or_else(|| Arc::new(k));
                        let _ = inf.tx.send(Change::Deleted(k));
                    }
                }
            }
        });
        *inf.task.lock() = Some(task);
        inf
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.objects.read().get(key).cloned()
    }

    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects.read().values().cloned().collect()
    }

    /// Objects of one namespace.
    pub fn list_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        self.objects
            .read()
            .iter()
            .filter(|(k, _)| k.namespace == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn keys(&self) -> Vec<ObjectKey> {
        self.objects.read().keys().cloned().collect()
    }

    /// Changes from now on. Subscribe before reading the store, so nothing falls between.
    pub fn subscribe(&self) -> broadcast::Receiver<Change<K>> {
        self.tx.subscribe()
    }

    /// Waits until the first list has been applied.
    pub async fn wait_ready(&self) {
        let mut r = self.ready.clone();
        let _ = r.wait_for(|r| *r).await;
    }
}
