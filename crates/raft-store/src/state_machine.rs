//! The Raft state machine: the MVCC state in RocksDB column families `revs`, `leases` and
//! `sm_meta`, sharing the database with the log store.
//!
//! Applying a batch of entries is one atomic RocksDB write batch that carries the data and
//! the last-applied log id together, so a restart resumes exactly after the last entry
//! whose effects are on disk. That batch is not fsync'd: the log already is, and entries
//! lost from the state machine by a power failure are applied again from the log.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use parking_lot::RwLock;
use rkube_proto::etcd::ResponseHeader;
use rkube_proto::raft::{
    store_request::Op, store_response::Result as Res, ApplyError, Empty, StoreBatchResponse,
    StoreResponse,
};
use rocksdb::{IteratorMode, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode, storage_err};
use crate::mvcc::{Mvcc, WriteTxn, CF_LEASES, CF_REVS, CF_SM_META};
use crate::types::*;
use crate::watch::WatchHub;

const META_APPLIED: &[u8] = b"last_applied";
const META_MEMBERSHIP: &[u8] = b"membership";
const STATE_CFS: [&str; 3] = [CF_REVS, CF_LEASES, CF_SM_META];

/// State shared between the state machine (driven by openraft) and the readers: the
/// [`crate::Store`] API, watches and the lessor.
pub struct SmShared {
    pub db: Arc<DB>,
    pub mvcc: RwLock<Mvcc>,
    pub hub: WatchHub,
    applied: RwLock<(Option<LogId>, StoredMembership)>,
    snapshot_path: PathBuf,
}

impl SmShared {
    pub fn last_applied(&self) -> Option<LogId> {
        self.applied.read().0
    }
}

/// The state machine handed to openraft.
#[derive(Clone)]
pub struct StateMachine {
    pub shared: Arc<SmShared>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// The content of a snapshot: every key-value of the state machine's column families.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    entries: Vec<(u8, serde_bytes::ByteBuf, serde_bytes::ByteBuf)>,
}

impl StateMachine {
    /// Opens the state machine on `db`, which must have its column families; `dir` holds
    /// the current snapshot file.
    pub fn new(db: Arc<DB>, dir: PathBuf) -> Result<Self, crate::Error> {
        for cf in STATE_CFS {
            if db.cf_handle(cf).is_none() {
                return Err(crate::Error::Storage(format!(
                    "column family {cf} is missing"
                )));
            }
        }
        let mvcc = Mvcc::load(&db)?;
        let meta = db.cf_handle(CF_SM_META).expect("checked above");
        let applied = match db.get_cf(meta, META_APPLIED)? {
            Some(v) => decode(&v).map_err(|e| crate::Error::Storage(e.to_string()))?,
            None => None,
        };
        let membership = match db.get_cf(meta, META_MEMBERSHIP)? {
            Some(v) => decode(&v).map_err(|e| crate::Error::Storage(e.to_string()))?,
            None => StoredMembership::default(),
        };
        let hub = WatchHub::new(mvcc.revision);
        Ok(StateMachine {
            shared: Arc::new(SmShared {
                db,
                mvcc: RwLock::new(mvcc),
                hub,
                applied: RwLock::new((applied, membership)),
                snapshot_path: dir.join("snapshot.bin"),
            }),
        })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.shared
            .db
            .cf_handle(name)
            .expect("column family checked in new")
    }

    fn read_snapshot_file(&self) -> Result<Option<SnapshotFile>, StorageError> {
        match std::fs::read(&self.shared.snapshot_path) {
            Ok(b) => Ok(Some(decode(&b).map_err(storage_err)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(storage_err(e)),
        }
    }

    fn write_snapshot_file(&self, f: &SnapshotFile) -> Result<(), StorageError> {
        let tmp = self.shared.snapshot_path.with_extension("tmp");
        std::fs::write(&tmp, encode(f)).map_err(storage_err)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(storage_err)?;
        std::fs::rename(&tmp, &self.shared.snapshot_path).map_err(storage_err)
    }
}

/// Applies one replicated request inside `txn`.
fn apply_request(txn: &mut WriteTxn<'_>, op: &Option<Op>) -> Result<Res, crate::Error> {
    Ok(match op {
        Some(Op::Put(p)) => Res::Put(txn.put(p)?),
        Some(Op::DeleteRange(d)) => Res::DeleteRange(txn.delete_range(d)?),
        Some(Op::Txn(t)) => Res::Txn(txn.txn(t)?),
        Some(Op::Compact(c)) => Res::Compact(txn.compact(c.revision)?),
        Some(Op::LeaseGrant(g)) => Res::LeaseGrant(txn.lease_grant(g.id, g.ttl)?),
        Some(Op::LeaseRevoke(r)) => Res::LeaseRevoke(txn.lease_revoke(&[r.id], true)?),
        Some(Op::LeaseExpire(e)) => Res::LeaseRevoke(txn.lease_revoke(&e.ids, false)?),
        Some(Op::MemberAttributes(a)) => {
            txn.member_attributes(a);
            Res::Empty(Empty {})
        }
        None => Res::Empty(Empty {}),
    })
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    /// Built on a blocking thread: reading the whole store must not hold up the Raft
    /// runtime's heartbeats.
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.snapshot_now())
            .await
            .map_err(storage_err)?
    }
}

impl StateMachine {
    /// A snapshot of the applied state, written to the snapshot file.
    fn snapshot_now(&self) -> Result<Snapshot, StorageError> {
        let (snap, applied, membership) = {
            // The read lock keeps an apply from running between the RocksDB snapshot and
            // the applied state it is labelled with.
            let _g = self.shared.mvcc.read();
            let (applied, membership) = self.shared.applied.read().clone();
            (self.shared.db.snapshot(), applied, membership)
        };
        let mut data = SnapshotData {
            entries: Vec::new(),
        };
        for (i, name) in STATE_CFS.iter().enumerate() {
            for r in snap.iterator_cf(self.cf(name), IteratorMode::Start) {
                let (k, v) = r.map_err(storage_err)?;
                data.entries.push((
                    i as u8,
                    serde_bytes::ByteBuf::from(k.to_vec()),
                    serde_bytes::ByteBuf::from(v.to_vec()),
                ));
            }
        }
        let bytes = encode(&data);
        let snapshot_id = format!(
            "{}-{}-{}",
            applied.map_or(0, |l| l.leader_id.term),
            applied.map_or(0, |l| l.index),
            bytes.len()
        );
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            data: bytes,
        };
        self.write_snapshot_file(&file)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(file.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.shared.applied.read().clone())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let db = self.shared.db.clone();
        let mut mvcc = self.shared.mvcc.write();
        let (mut applied, mut membership) = self.shared.applied.read().clone();
        let watched = self.shared.hub.watcher_count() > 0;
        let mut txn = WriteTxn::new(&mut mvcc, &db, watched);
        let mut out = Vec::new();
        for e in entries {
            applied = Some(e.log_id);
            let mut responses = Vec::new();
            match &e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    for req in &batch.0.requests {
                        let result = match apply_request(&mut txn, &req.op) {
                            Ok(r) => r,
                            Err(crate::Error::Storage(s)) => {
                                return Err(storage_err(std::io::Error::other(s)))
                            }
                            Err(err) => Res::Error(ApplyError {
                                code: err.code() as i32,
                                message: err.to_string(),
                            }),
                        };
                        responses.push(StoreResponse {
                            header: Some(ResponseHeader {
                                revision: txn.mvcc.revision,
                                raft_term: e.log_id.leader_id.term,
                                ..Default::default()
                            }),
                            result: Some(result),
                        });
                    }
                }
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(e.log_id), m.clone());
                }
            }
            out.push(Response(StoreBatchResponse {
                responses,
                log_index: e.log_id.index,
            }));
        }
        let meta = self.cf(CF_SM_META);
        let mut batch = std::mem::take(&mut txn.batch);
        batch.put_cf(meta, META_APPLIED, encode(&applied));
        batch.put_cf(meta, META_MEMBERSHIP, encode(&membership));
        db.write(batch).map_err(storage_err)?;
        let events = std::mem::take(&mut txn.events);
        let revision = txn.mvcc.revision;
        *self.shared.applied.write() = (applied, membership);
        // Published under the write lock, so a watch registering under the read lock sees
        // either all of this batch in RocksDB or all of it live.
        self.shared.hub.publish(events, revision);
        drop(mvcc);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData = decode(&bytes).map_err(storage_err)?;
        let db = self.shared.db.clone();
        let mut mvcc = self.shared.mvcc.write();
        let mut batch = WriteBatch::default();
        for name in STATE_CFS {
            batch.delete_range_cf(self.cf(name), &[][..], &[0xffu8; 64][..]);
        }
        for (i, k, v) in &data.entries {
            let name = STATE_CFS
                .get(*i as usize)
                .ok_or_else(|| storage_err(std::io::Error::other("bad cf in snapshot")))?;
            batch.put_cf(self.cf(name), k, v);
        }
        let meta_cf = self.cf(CF_SM_META);
        batch.put_cf(meta_cf, META_APPLIED, encode(&meta.last_log_id));
        batch.put_cf(meta_cf, META_MEMBERSHIP, encode(&meta.last_membership));
        db.write(batch).map_err(storage_err)?;
        *mvcc = Mvcc::load(&db).map_err(|e| storage_err(std::io::Error::other(e.to_string())))?;
        *self.shared.applied.write() = (meta.last_log_id, meta.last_membership.clone());
        // The state jumped: live watchers here would miss the revisions in between, so
        // they are cancelled explicitly and resume from their last revision.
        self.shared
            .hub
            .cancel_all("snapshot installed on this member", mvcc.revision);
        drop(mvcc);
        self.write_snapshot_file(&SnapshotFile {
            meta: meta.clone(),
            data: bytes,
        })
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.read_snapshot_file()?.map(|f| Snapshot {
            meta: f.meta,
            snapshot: Box::new(Cursor::new(f.data)),
        }))
    }
}
