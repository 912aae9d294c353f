//! Watches: history replay from RocksDB, then live events from the apply path.
//!
//! A watcher registers with the [`WatchHub`] and from then on receives, in order, every
//! applied revision above the hub's revision at registration; the revisions from its start
//! up to that point are replayed from the `revs` column family. Nothing is ever dropped
//! silently: a watcher whose buffer fills up is cancelled with the last revision it got, and
//! one whose history is compacted away during replay is cancelled as compacted.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rkube_proto::mvccpb::{event::EventType, Event, KeyValue};
use rocksdb::{Direction, IteratorMode};
use tokio::sync::mpsc;

use crate::codec::decode;
use crate::error::{Error, Result};
use crate::mvcc::{in_range, Mvcc, Record, Rev, CF_REVS};
use crate::state_machine::SmShared;

/// What a watch is on, and how.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub key: Bytes,
    /// etcd range end: empty for the key alone, `"\0"` for every key from `key` on.
    pub range_end: Bytes,
    /// First revision to deliver; 0 means "after the current revision".
    pub start_revision: i64,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
}

/// What a watcher yields.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchItem {
    /// The events of one revision (several for a transaction), all matching the watch.
    Events { revision: i64, events: Vec<Event> },
    /// Every event up to `revision` has been delivered.
    Progress { revision: i64 },
    /// The watch ended and delivers nothing more; `last_revision` is the last revision
    /// delivered, so a client can resume from `last_revision + 1`.
    Canceled { reason: String, last_revision: i64 },
    /// The start revision (or history still to replay) was compacted away.
    Compacted { compact_revision: i64 },
}

enum HubMsg {
    Events { revision: i64, events: Vec<Event> },
    Progress(i64),
}

struct HubWatcher {
    key: Bytes,
    range_end: Bytes,
    tx: mpsc::Sender<HubMsg>,
    cancel: Arc<Mutex<Option<String>>>,
}

struct HubInner {
    next_id: u64,
    revision: i64,
    watchers: HashMap<u64, HubWatcher>,
}

/// Fans applied events out to live watchers.
pub struct WatchHub {
    inner: Mutex<HubInner>,
}

impl WatchHub {
    pub fn new(revision: i64) -> Self {
        WatchHub {
            inner: Mutex::new(HubInner {
                next_id: 1,
                revision,
                watchers: HashMap::new(),
            }),
        }
    }

    /// Called by the state machine after a batch is written; `events` are in revision order.
    pub fn publish(&self, events: Vec<Event>, revision: i64) {
        let mut inner = self.inner.lock();
        inner.revision = revision;
        if inner.watchers.is_empty() || events.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        for (id, w) in inner.watchers.iter() {
            let mut start = 0;
            while start < events.len() {
                let rev = mod_rev(&events[start]);
                let end = start
                    + events[start..]
                        .iter()
                        .take_while(|e| mod_rev(e) == rev)
                        .count();
                let matching: Vec<Event> = events[start..end]
                    .iter()
                    .filter(|e| {
                        e.kv.as_ref()
                            .is_some_and(|kv| in_range(&kv.key, &w.key, &w.range_end))
                    })
                    .cloned()
                    .collect();
                start = end;
                if matching.is_empty() {
                    continue;
                }
                match w.tx.try_send(HubMsg::Events {
                    revision: rev,
                    events: matching,
                }) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        *w.cancel.lock() = Some("watcher is too slow to keep up".into());
                        gone.push(*id);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        gone.push(*id);
                        break;
                    }
                }
            }
        }
        for id in gone {
            inner.watchers.remove(&id);
        }
    }

    /// Ends every live watcher with `reason` (after what it has buffered).
    pub fn cancel_all(&self, reason: &str, revision: i64) {
        let mut inner = self.inner.lock();
        inner.revision = revision;
        for (_, w) in inner.watchers.drain() {
            *w.cancel.lock() = Some(reason.to_string());
        }
    }

    fn register(
        &self,
        key: Bytes,
        range_end: Bytes,
        capacity: usize,
    ) -> (u64, i64, mpsc::Receiver<HubMsg>, Arc<Mutex<Option<String>>>) {
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let (tx, rx) = mpsc::channel(capacity);
        let cancel = Arc::new(Mutex::new(None));
        inner.watchers.insert(
            id,
            HubWatcher {
                key,
                range_end,
                tx,
                cancel: cancel.clone(),
            },
        );
        (id, inner.revision, rx, cancel)
    }

    fn unregister(&self, id: u64) {
        self.inner.lock().watchers.remove(&id);
    }

    fn progress(&self, id: u64) {
        let inner = self.inner.lock();
        if let Some(w) = inner.watchers.get(&id) {
            // A full buffer already carries newer events; the progress mark is not needed.
            let _ = w.tx.try_send(HubMsg::Progress(inner.revision));
        }
    }

    pub fn watcher_count(&self) -> usize {
        self.inner.lock().watchers.len()
    }
}

fn mod_rev(e: &Event) -> i64 {
    e.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// One watch on this member's state. Dropping it unregisters it.
pub struct Watcher {
    sm: Arc<SmShared>,
    opts: WatchOptions,
    id: u64,
    /// Next revision to replay from history, while replaying.
    replay_from: i64,
    /// Revisions up to here come from history; above it, live from the hub.
    replay_to: i64,
    rx: mpsc::Receiver<HubMsg>,
    cancel: Arc<Mutex<Option<String>>>,
    last_revision: i64,
    done: bool,
}

const REPLAY_CHUNK: usize = 1000;

impl Watcher {
    /// Registers a watch. A start revision below the compaction point yields
    /// [`WatchItem::Compacted`] as its first item.
    pub(crate) fn start(sm: Arc<SmShared>, opts: WatchOptions, capacity: usize) -> Watcher {
        let (id, hub_rev, rx, cancel) = {
            let _g = sm.mvcc.read();
            sm.hub
                .register(opts.key.clone(), opts.range_end.clone(), capacity)
        };
        let replay_from = if opts.start_revision > 0 {
            opts.start_revision
        } else {
            hub_rev + 1
        };
        Watcher {
            last_revision: replay_from - 1,
            sm,
            opts,
            id,
            replay_from,
            replay_to: hub_rev,
            rx,
            cancel,
            done: false,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The revision this watch starts after: every later revision is delivered.
    pub fn start_after(&self) -> i64 {
        self.last_revision
    }

    /// Asks for a [`WatchItem::Progress`] once everything applied so far is delivered.
    pub fn request_progress(&self) {
        self.sm.hub.progress(self.id);
    }

    /// The next item; `None` after a cancellation was delivered.
    pub async fn next(&mut self) -> Option<WatchItem> {
        if self.done {
            return None;
        }
        while self.replay_from <= self.replay_to {
            match self.replay_chunk() {
                Err(Error::Compacted { compact_revision }) => {
                    self.finish();
                    return Some(WatchItem::Compacted { compact_revision });
                }
                Err(e) => {
                    self.finish();
                    return Some(WatchItem::Canceled {
                        reason: e.to_string(),
                        last_revision: self.last_revision,
                    });
                }
                Ok(Some(item)) => return Some(item),
                Ok(None) => {}
            }
        }
        loop {
            match self.rx.recv().await {
                Some(HubMsg::Events { revision, events }) => {
                    if revision < self.replay_from {
                        continue;
                    }
                    if let Some(item) = self.filter(revision, events) {
                        return Some(item);
                    }
                }
                Some(HubMsg::Progress(rev)) => {
                    if rev >= self.last_revision {
                        return Some(WatchItem::Progress { revision: rev });
                    }
                }
                None => {
                    let reason = self
                        .cancel
                        .lock()
                        .clone()
                        .unwrap_or_else(|| "watch closed".into());
                    self.finish();
                    return Some(WatchItem::Canceled {
                        reason,
                        last_revision: self.last_revision,
                    });
                }
            }
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.sm.hub.unregister(self.id);
    }

    fn filter(&mut self, revision: i64, events: Vec<Event>) -> Option<WatchItem> {
        self.last_revision = revision;
        let events: Vec<Event> = events
            .into_iter()
            .filter(|e| {
                let del = e.r#type == EventType::Delete as i32;
                !(del && self.opts.no_delete || !del && self.opts.no_put)
            })
            .map(|mut e| {
                if !self.opts.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect();
        (!events.is_empty()).then_some(WatchItem::Events { revision, events })
    }

    /// Replays up to one chunk of history; `Ok(None)` when the chunk held no matching event.
    fn replay_chunk(&mut self) -> Result<Option<WatchItem>> {
        let mvcc = self.sm.mvcc.read();
        if self.replay_from < mvcc.compact_revision {
            return Err(Error::Compacted {
                compact_revision: mvcc.compact_revision,
            });
        }
        let db = &self.sm.db;
        let cf = db
            .cf_handle(CF_REVS)
            .ok_or_else(|| Error::Storage("no cf revs".into()))?;
        let from = Rev {
            main: self.replay_from,
            sub: 0,
        }
        .to_key();
        let mut batch: Vec<Event> = Vec::new();
        let mut batch_rev = 0;
        let mut next_from = self.replay_to + 1;
        let records = db.iterator_cf(cf, IteratorMode::From(&from, Direction::Forward));
        for (seen, r) in records.enumerate() {
            let (k, v) = r?;
            let rev = Rev::from_key(&k).ok_or_else(|| Error::Storage("bad revision key".into()))?;
            if rev.main > self.replay_to {
                break;
            }
            if rev.main != batch_rev {
                // Stop at a revision boundary once the chunk is full, or when a revision
                // with matching events is complete.
                if seen >= REPLAY_CHUNK || !batch.is_empty() {
                    next_from = rev.main;
                    break;
                }
                batch_rev = rev.main;
            }
            let rec: Record = decode(&v).map_err(|e| Error::Storage(e.to_string()))?;
            if !in_range(&rec.key, &self.opts.key, &self.opts.range_end) {
                continue;
            }
            batch.push(self.history_event(&mvcc, rev, rec)?);
        }
        drop(mvcc);
        self.replay_from = next_from;
        if batch.is_empty() {
            self.last_revision = self.last_revision.max(next_from - 1);
            return Ok(None);
        }
        Ok(self.filter(batch_rev, batch))
    }

    fn history_event(&self, mvcc: &Mvcc, rev: Rev, rec: Record) -> Result<Event> {
        let prev_kv = if self.opts.prev_kv {
            match mvcc.prev_of(&rec.key, rev) {
                Some(p) => Some(Mvcc::load_record(&self.sm.db, &HashMap::new(), p)?.to_kv()),
                None => None,
            }
        } else {
            None
        };
        Ok(if rec.tombstone {
            Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: Bytes::from(rec.key),
                    mod_revision: rev.main,
                    ..Default::default()
                }),
                prev_kv,
            }
        } else {
            Event {
                r#type: EventType::Put as i32,
                kv: Some(rec.to_kv()),
                prev_kv,
            }
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.sm.hub.unregister(self.id);
    }
}
