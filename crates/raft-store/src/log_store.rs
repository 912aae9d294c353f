//! The Raft log and vote, in RocksDB column families `logs` and `raft`.
//!
//! Durability: appended entries are written to RocksDB at once (so they are readable), and
//! openraft is told they are persisted only after a WAL fsync that began after the write.
//! One flusher thread runs those fsyncs: every append that arrives while an fsync is in
//! flight is covered by the next one, so many client writes share one fsync (group commit),
//! and Raft never waits for the disk in its own task. A vote is fsync'd before
//! `save_vote` returns.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use crate::codec::{decode, encode};
use crate::types::{Entry, LogId, LogState, StorageError, TypeConfig, Vote};

pub const CF_LOGS: &str = "logs";
pub const CF_RAFT: &str = "raft";

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// The Raft log store. Cheap to clone: clones share the database and the flusher.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    flusher: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
}

/// Syncs the WAL for every waiting append, as often as the disk allows. Holds the database
/// weakly, so closing the store closes it at once.
fn run_flusher(db: std::sync::Weak<DB>, rx: std::sync::mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let res = match db.upgrade() {
            Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
            None => Err("the database is closed".to_string()),
        };
        for cb in waiting {
            cb.log_io_completed(res.clone().map_err(std::io::Error::other));
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::from_io_error(
        openraft::ErrorSubject::Logs,
        openraft::ErrorVerb::Read,
        std::io::Error::other(e),
    )
}

fn write_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::from_io_error(
        openraft::ErrorSubject::Logs,
        openraft::ErrorVerb::Write,
        std::io::Error::other(e),
    )
}

impl LogStore {
    /// Opens the log store on `db`, which must have the `logs` and `raft` column families.
    pub fn new(db: Arc<DB>) -> Result<Self, crate::Error> {
        for cf in [CF_LOGS, CF_RAFT] {
            if db.cf_handle(cf).is_none() {
                return Err(crate::Error::Storage(format!(
                    "column family {cf} is missing"
                )));
            }
        }
        let (flusher, rx) = std::sync::mpsc::channel();
        let fdb = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("raft-log-fsync".into())
            .spawn(move || run_flusher(fdb, rx))
            .map_err(|e| crate::Error::Storage(format!("start the log flusher: {e}")))?;
        Ok(LogStore { db, flusher })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family checked in LogStore::new")
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        match self.db.get_cf(self.cf(CF_RAFT), key).map_err(read_err)? {
            None => Ok(None),
            Some(b) => Ok(Some(decode(&b).map_err(read_err)?)),
        }
    }

    fn put_meta_synced<T: serde::Serialize>(&self, key: &[u8], v: &T) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .put_cf_opt(self.cf(CF_RAFT), key, encode(v), &wo)
            .map_err(write_err)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let mut it = self.db.iterator_cf(self.cf(CF_LOGS), IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(r) => {
                let (_, v) = r.map_err(read_err)?;
                let e: Entry = decode(&v).map_err(read_err)?;
                Ok(Some(e.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => *i + 1,
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            self.cf(CF_LOGS),
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        for r in it {
            let (k, v) = r.map_err(read_err)?;
            let idx = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| read_err(std::io::Error::other("log key is not 8 bytes")))?,
            );
            if !range.contains(&idx) {
                break;
            }
            out.push(decode(&v).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        // The vote is fsync'd before this returns.
        self.put_meta_synced(KEY_VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsync'd: a lost committed index is re-learned from the leader.
        self.db
            .put_cf(self.cf(CF_RAFT), KEY_COMMITTED, encode(&committed))
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let cf = self.cf(CF_LOGS);
        for e in entries {
            batch.put_cf(cf, index_key(e.log_id.index), encode(&e));
        }
        self.db.write(batch).map_err(write_err)?;
        // Persisted once the flusher's next WAL fsync completes.
        self.flusher
            .send(callback)
            .map_err(|_| write_err(std::io::Error::other("log flusher stopped")))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.cf(CF_LOGS),
            index_key(log_id.index),
            index_key(u64::MAX),
        );
        batch.delete_cf(self.cf(CF_LOGS), index_key(u64::MAX));
        self.db.write_opt(batch, &wo).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first, so a crash in between never leaves a gap unrecorded.
        self.put_meta_synced(KEY_LAST_PURGED, &log_id)?;
        self.db
            .delete_range_cf(self.cf(CF_LOGS), index_key(0), index_key(log_id.index + 1))
            .map_err(write_err)
    }
}
