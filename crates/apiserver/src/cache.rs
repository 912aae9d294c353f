//! The watch cache: every object of the registry in memory, fed by this member's own state
//! machine, with a window of recent events so watches resume without touching the store.
//!
//! Reads that must be consistent call [`WatchCache::wait_fresh`] first: a ReadIndex round
//! on the store, then a wait until the cache has caught up with the applied revision.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use raft_store::{Store, WatchItem, WatchOptions};
use rkube_proto::etcd::RangeRequest;
use rkube_proto::mvccpb::{event::EventType, KeyValue};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};

use crate::encryption::Transformer;
use crate::error::{Error, Result};
use crate::object;
use crate::registry::Registry;

pub const REGISTRY_PREFIX: &str = "/registry/";
const CRD_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// One object as the cache holds it: its JSON with `resourceVersion` set, and what
/// selectors look at.
#[derive(Debug)]
pub struct Cached {
    pub key: String,
    pub rv: i64,
    pub json: Bytes,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub fields: Vec<(String, String)>,
}

impl Cached {
    pub fn value(&self) -> Result<Value> {
        serde_json::from_slice(&self.json)
            .map_err(|e| Error::Internal(format!("stored object: {e}")))
    }

    pub fn field(&self, f: &str) -> String {
        match f {
            "metadata.name" => self.name.clone(),
            "metadata.namespace" => self.namespace.clone(),
            _ => self
                .fields
                .iter()
                .find(|(k, _)| k == f)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

#[derive(Debug)]
pub struct CacheEvent {
    pub rv: i64,
    pub kind: EventKind,
    pub obj: Arc<Cached>,
    /// The object before this change (absent on Added).
    pub prev: Option<Arc<Cached>>,
}

/// What live watchers receive, in revision order.
#[derive(Clone, Debug)]
pub enum Msg {
    Event(Arc<CacheEvent>),
    /// Every event up to this revision has been sent.
    Progress(i64),
}

struct State {
    objects: BTreeMap<String, Arc<Cached>>,
    events: VecDeque<Arc<CacheEvent>>,
    revision: i64,
    /// Watches from below this revision cannot be served from the event window.
    oldest: i64,
    tx: broadcast::Sender<Msg>,
}

/// How long a consistent read waits for the store to confirm a leader before failing.
const FRESH_RETRY: Duration = Duration::from_secs(3);

pub struct WatchCache {
    state: RwLock<State>,
    registry: Arc<Registry>,
    /// Opens sealed values; set once, before [`WatchCache::run`].
    encryption: OnceLock<Transformer>,
    window: usize,
    rev_tx: watch::Sender<i64>,
    progress_tx: mpsc::Sender<()>,
    progress_rx: parking_lot::Mutex<Option<mpsc::Receiver<()>>>,
}

/// A subscription: what happened after the requested revision, then live messages.
pub struct Subscription {
    pub replay: Vec<Arc<CacheEvent>>,
    /// The cache's revision when the subscription was taken.
    pub revision: i64,
    pub rx: broadcast::Receiver<Msg>,
}

const LIVE_BUFFER: usize = 1 << 16;

impl WatchCache {
    pub fn new(registry: Arc<Registry>, window: usize) -> Arc<Self> {
        let (progress_tx, progress_rx) = mpsc::channel(1);
        Arc::new(WatchCache {
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                events: VecDeque::new(),
                revision: 0,
                oldest: 0,
                tx: broadcast::channel(LIVE_BUFFER).0,
            }),
            registry,
            encryption: OnceLock::new(),
            window,
            rev_tx: watch::channel(0).0,
            progress_tx,
            progress_rx: parking_lot::Mutex::new(Some(progress_rx)),
        })
    }

    /// Opens sealed values with `t` from now on. Call it before [`WatchCache::run`]: values
    /// listed before it would be dropped as undecodable. Only the first call counts.
    pub fn set_encryption(&self, t: Transformer) {
        if self.encryption.set(t).is_err() {
            tracing::warn!("watch cache: encryption was already set; keeping the first");
        }
    }

    /// The plaintext of `kv`'s value; None (with a warning) when it does not open.
    fn open<'a>(&self, key: &str, kv: &'a KeyValue) -> Option<std::borrow::Cow<'a, [u8]>> {
        match crate::storage::open(self.encryption.get(), key, &kv.value) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(key, error = %e, "watch cache: cannot read a stored value");
                None
            }
        }
    }

    pub fn revision(&self) -> i64 {
        self.state.read().revision
    }

    pub fn len(&self) -> usize {
        self.state.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &str) -> Option<Arc<Cached>> {
        self.state.read().objects.get(key).cloned()
    }

    /// Every object under `prefix` from `start` on (inclusive), at one revision.
    pub fn list(&self, prefix: &str, start: Option<&str>) -> (i64, Vec<Arc<Cached>>) {
        let st = self.state.read();
        let from = start.unwrap_or(prefix).to_string();
        let items = st
            .objects
            .range(from..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (st.revision, items)
    }

    /// Every object under `prefix` and a live subscription from the same revision.
    pub fn snapshot(&self, prefix: &str) -> (Subscription, Vec<Arc<Cached>>) {
        let st = self.state.read();
        let items = st
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        let sub = Subscription {
            replay: Vec::new(),
            revision: st.revision,
            rx: st.tx.subscribe(),
        };
        (sub, items)
    }

    /// Events after `after` (0: none, start live now), then live messages.
    pub fn subscribe(&self, after: i64) -> Result<Subscription> {
        let st = self.state.read();
        if after > 0 && after < st.oldest {
            return Err(Error::Expired {
                requested: after,
                oldest: st.oldest,
            });
        }
        let replay = if after > 0 {
            let skip = st.events.partition_point(|e| e.rv <= after);
            st.events.iter().skip(skip).cloned().collect()
        } else {
            Vec::new()
        };
        Ok(Subscription {
            replay,
            revision: st.revision,
            rx: st.tx.subscribe(),
        })
    }

    /// Waits until the cache has seen `revision`, for at most `timeout`.
    pub async fn wait_revision(&self, revision: i64, timeout: Duration) -> Result<()> {
        let mut rx = self.rev_tx.subscribe();
        if *rx.borrow() >= revision {
            return Ok(());
        }
        let _ = self.progress_tx.try_send(());
        let waited = tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(format!(
                "Too large resource version: {revision}, current: {}",
                self.revision()
            ))),
        }
    }

    /// A consistent read point: after a ReadIndex round, the cache holds every write that
    /// was acknowledged before this call. Returns that revision.
    pub async fn wait_fresh(&self, store: &Store) -> Result<i64> {
        // A leader change (or a follower that cannot reach the leader for a moment) makes
        // the barrier fail; wait it out briefly instead of failing the read.
        let deadline = std::time::Instant::now() + FRESH_RETRY;
        loop {
            match store.read_barrier().await.map_err(Error::from) {
                Ok(()) => break,
                Err(Error::Unavailable(e)) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "read barrier failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let rev = store.revision();
        self.wait_revision(rev, store.config().request_timeout)
            .await?;
        Ok(rev)
    }

    fn decode(&self, kv: &KeyValue, rv: i64) -> Option<Arc<Cached>> {
        let key = String::from_utf8(kv.key.to_vec()).ok()?;
        let mut v: Value = serde_json::from_slice(&self.open(&key, kv)?).ok()?;
        object::set(&mut v, "resourceVersion", rv.to_string());
        let labels = object::labels(&v)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut parts = key[REGISTRY_PREFIX.len()..].splitn(3, '/');
        let group = match parts.next()? {
            "core" => "",
            g => g,
        };
        let plural = parts.next()?;
        let fields = self
            .registry
            .by_resource(group, plural)
            .map(|t| {
                t.fields
                    .iter()
                    .map(|f| (f.to_string(), object::field_text(&v, f)))
                    .collect()
            })
            .unwrap_or_default();
        Some(Arc::new(Cached {
            key,
            rv,
            namespace: object::namespace(&v).to_string(),
            name: object::name(&v).to_string(),
            json: Bytes::from(serde_json::to_vec(&v).ok()?),
            labels,
            fields,
        }))
    }

    fn register_crd(&self, kv: &KeyValue, deleted: bool) {
        let key = String::from_utf8_lossy(&kv.key);
        let Some(value) = self.open(&key, kv) else {
            return;
        };
        let Ok(crd) = serde_json::from_slice::<Value>(&value) else {
            return;
        };
        for t in crate::registry::crd::resource_types(&crd) {
            if deleted {
                self.registry.remove(&t.api_version(), &t.kind);
            } else {
                self.registry.add(t);
            }
        }
    }

    /// Replaces the whole content with a fresh listing. Live watchers are ended, because
    /// what changed between the old content and the new one is unknown.
    fn reset(&self, kvs: &[KeyValue], revision: i64) {
        for kv in kvs
            .iter()
            .filter(|kv| kv.key.starts_with(CRD_PREFIX.as_bytes()))
        {
            self.register_crd(kv, false);
        }
        let objects = kvs
            .iter()
            .filter_map(|kv| self.decode(kv, kv.mod_revision))
            .map(|c| (c.key.clone(), c))
            .collect();
        let mut st = self.state.write();
        st.objects = objects;
        st.events.clear();
        st.revision = revision;
        st.oldest = revision;
        st.tx = broadcast::channel(LIVE_BUFFER).0;
        drop(st);
        self.rev_tx.send_replace(revision);
    }

    fn apply(&self, revision: i64, events: Vec<rkube_proto::mvccpb::Event>) {
        let mut decoded = Vec::with_capacity(events.len());
        for e in &events {
            let Some(kv) = e.kv.as_ref() else { continue };
            let deleted = e.r#type == EventType::Delete as i32;
            if kv.key.starts_with(CRD_PREFIX.as_bytes()) {
                let src = if deleted {
                    e.prev_kv.as_ref().unwrap_or(kv)
                } else {
                    kv
                };
                self.register_crd(src, deleted);
            }
            let obj = if deleted {
                e.prev_kv.as_ref().and_then(|p| self.decode(p, revision))
            } else {
                self.decode(kv, revision)
            };
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            decoded.push((key, deleted, obj));
        }
        let mut st = self.state.write();
        for (key, deleted, obj) in decoded {
            let prev = if deleted {
                st.objects.remove(&key)
            } else {
                match &obj {
                    Some(o) => st.objects.insert(key, o.clone()),
                    None => st.objects.remove(&key),
                }
            };
            let Some(obj) = obj else { continue };
            let kind = match (deleted, prev.is_some()) {
                (true, _) => EventKind::Deleted,
                (false, true) => EventKind::Modified,
                (false, false) => EventKind::Added,
            };
            let ev = Arc::new(CacheEvent {
                rv: revision,
                kind,
                obj,
                prev,
            });
            st.events.push_back(ev.clone());
            let _ = st.tx.send(Msg::Event(ev));
        }
        while st.events.len() > self.window {
            if let Some(e) = st.events.pop_front() {
                st.oldest = e.rv;
            }
        }
        st.revision = st.revision.max(revision);
        drop(st);
        self.rev_tx.send_replace(revision);
    }

    fn progress(&self, revision: i64) {
        let mut st = self.state.write();
        if revision > st.revision {
            st.revision = revision;
        }
        let _ = st.tx.send(Msg::Progress(st.revision));
        let rev = st.revision;
        drop(st);
        self.rev_tx.send_replace(rev);
    }

    /// Keeps the cache in step with `store` until the store stops.
    pub async fn run(self: Arc<Self>, store: Store) {
        let mut progress_rx = self.progress_rx.lock().take().expect("run once");
        let end = raft_store::prefix_end(REGISTRY_PREFIX.as_bytes());
        let mut resume: Option<i64> = None;
        loop {
            let start = match resume {
                Some(r) => r,
                None => {
                    let req = RangeRequest {
                        key: Bytes::from_static(REGISTRY_PREFIX.as_bytes()),
                        range_end: end.clone(),
                        serializable: true,
                        ..Default::default()
                    };
                    match store.range(&req).await {
                        Ok(resp) => {
                            let rev = resp.header.map_or(0, |h| h.revision);
                            self.reset(&resp.kvs, rev);
                            rev + 1
                        }
                        Err(raft_store::Error::Stopped) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "watch cache: listing failed; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    }
                }
            };
            let opts = WatchOptions {
                key: Bytes::from_static(REGISTRY_PREFIX.as_bytes()),
                range_end: end.clone(),
                start_revision: start,
                prev_kv: true,
                ..Default::default()
            };
            let mut w = match store.watch(opts).await {
                Ok(w) => w,
                Err(raft_store::Error::Stopped) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache: watch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            resume = None;
            loop {
                tokio::select! {
                    item = w.next() => match item {
                        Some(WatchItem::Events { revision, events }) => self.apply(revision, events),
                        Some(WatchItem::Progress { revision }) => self.progress(revision),
                        Some(WatchItem::Canceled { reason, last_revision }) => {
                            tracing::info!(%reason, "watch cache: store watch ended; resuming");
                            resume = Some(last_revision + 1);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            break;
                        }
                        Some(WatchItem::Compacted { .. }) | None => break,
                    },
                    Some(()) = progress_rx.recv() => w.request_progress(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rkube_proto::mvccpb::{Event, KeyValue};

    use super::*;

    fn put(key: &str, rev: i64) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::from_static(br#"{"metadata":{"name":"x","namespace":"default"}}"#),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease: 0,
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn resuming_below_the_event_window_is_expired() {
        let cache = WatchCache::new(Arc::new(Registry::with_builtins()), 2);
        for rev in 1..=4 {
            cache.apply(
                rev,
                vec![put(
                    &format!("/registry/core/configmaps/default/c{rev}"),
                    rev,
                )],
            );
        }
        assert_eq!(cache.revision(), 4);
        assert!(matches!(
            cache.subscribe(1),
            Err(Error::Expired {
                requested: 1,
                oldest: 2
            })
        ));
        let sub = cache.subscribe(2).expect("within the window");
        assert_eq!(
            sub.replay.iter().map(|e| e.rv).collect::<Vec<_>>(),
            vec![3, 4]
        );
        let (_, objs) = cache.list("/registry/core/configmaps/default/", None);
        assert_eq!(objs.len(), 4);
        assert_eq!(
            objs[0].json,
            Bytes::from(r#"{"metadata":{"name":"x","namespace":"default","resourceVersion":"1"}}"#)
        );
    }
}
