//! Multi-version key-value state with etcd's semantics.
//!
//! One global revision counts every change. Each change is a record in the column family
//! `revs`, keyed by `(main, sub)` revision: main is the store revision of the write, sub the
//! position of the change within a transaction. The in-memory [`Mvcc`] index maps each key
//! to the revisions of its records, so a read at any retained revision finds the record
//! to load. Compaction at revision `C` drops every record below `C` that a read at `C` or
//! later cannot see.

mod range;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use bytes::Bytes;
use rkube_proto::mvccpb::KeyValue;
use rkube_proto::raft::MemberAttributes;
use rocksdb::{IteratorMode, DB};
use serde::{Deserialize, Serialize};

pub use range::{check_revision, RangeResult};
pub use write::WriteTxn;

use crate::codec::decode;
use crate::error::{Error, Result};

pub const CF_REVS: &str = "revs";
pub const CF_LEASES: &str = "leases";
pub const CF_SM_META: &str = "sm_meta";

pub const META_REVISION: &[u8] = b"revision";
pub const META_COMPACT: &[u8] = b"compact_revision";
pub const META_MEMBER_PREFIX: &[u8] = b"member/";

/// `(main, sub)` revision of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rev {
    pub main: i64,
    pub sub: i64,
}

impl Rev {
    pub fn to_key(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        k[8..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        k
    }

    pub fn from_key(k: &[u8]) -> Option<Rev> {
        if k.len() != 16 {
            return None;
        }
        let main = u64::from_be_bytes(k[..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(k[8..].try_into().ok()?) as i64;
        Some(Rev { main, sub })
    }
}

/// One record in `revs`: the key's state after a change, or a tombstone for a delete.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub tombstone: bool,
}

impl Record {
    pub fn to_kv(&self) -> KeyValue {
        KeyValue {
            key: Bytes::copy_from_slice(&self.key),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: Bytes::copy_from_slice(&self.value),
            lease: self.lease,
        }
    }
}

/// A revision in a key's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexRev {
    pub rev: Rev,
    pub tombstone: bool,
}

/// A lease as the state machine knows it. Its deadline lives with the leader
/// ([`crate::lease`]), not here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    pub ttl: i64,
    pub keys: BTreeSet<Bytes>,
}

/// The in-memory part of the MVCC state; records live in RocksDB.
#[derive(Debug, Default)]
pub struct Mvcc {
    /// Every retained revision of every key, oldest first.
    pub index: BTreeMap<Bytes, Vec<IndexRev>>,
    pub revision: i64,
    pub compact_revision: i64,
    pub leases: BTreeMap<i64, Lease>,
    pub members: BTreeMap<u64, MemberAttributes>,
}

/// The `[key, range_end)` bounds of an etcd range: an empty `range_end` means the key
/// alone, `"\0"` means every key from `key` on.
pub fn range_bounds(key: &[u8], range_end: &[u8]) -> (Bound<Bytes>, Bound<Bytes>) {
    let start = Bound::Included(Bytes::copy_from_slice(key));
    if range_end.is_empty() {
        return (start.clone(), start);
    }
    if range_end == [0] {
        return (start, Bound::Unbounded);
    }
    (start, Bound::Excluded(Bytes::copy_from_slice(range_end)))
}

/// The etcd range end that makes `[prefix, end)` cover every key starting with `prefix`
/// (a prefix whose bytes are all 0xff has no end: `"\0"`, every key from it on).
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end.into();
        }
        end.pop();
    }
    Bytes::from_static(b"\0")
}

/// Whether `k` lies in the etcd range `[key, range_end)`.
pub fn in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        return k == key;
    }
    k >= key && (range_end == [0] || k < range_end)
}

impl Mvcc {
    /// Rebuilds the index from the records in `db`.
    pub fn load(db: &DB) -> Result<Mvcc> {
        let mut m = Mvcc::default();
        let cf = db
            .cf_handle(CF_REVS)
            .ok_or_else(|| Error::Storage("no cf revs".into()))?;
        let mut latest_lease: HashMap<Bytes, i64> = HashMap::new();
        for r in db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = r?;
            let rev = Rev::from_key(&k).ok_or_else(|| Error::Storage("bad revision key".into()))?;
            let rec: Record = decode(&v).map_err(|e| Error::Storage(e.to_string()))?;
            let key = Bytes::from(rec.key);
            m.index.entry(key.clone()).or_default().push(IndexRev {
                rev,
                tombstone: rec.tombstone,
            });
            if rec.tombstone || rec.lease == 0 {
                latest_lease.remove(&key);
            } else {
                latest_lease.insert(key, rec.lease);
            }
            m.revision = m.revision.max(rev.main);
        }
        let meta = db
            .cf_handle(CF_SM_META)
            .ok_or_else(|| Error::Storage("no cf sm_meta".into()))?;
        if let Some(v) = db.get_cf(meta, META_REVISION)? {
            m.revision = m
                .revision
                .max(decode(&v).map_err(|e| Error::Storage(e.to_string()))?);
        }
        if let Some(v) = db.get_cf(meta, META_COMPACT)? {
            m.compact_revision = decode(&v).map_err(|e| Error::Storage(e.to_string()))?;
        }
        for r in db.prefix_iterator_cf(meta, META_MEMBER_PREFIX) {
            let (k, v) = r?;
            if !k.starts_with(META_MEMBER_PREFIX) {
                break;
            }
            let a: MemberAttributes =
                prost::Message::decode(v.as_ref()).map_err(|e| Error::Storage(e.to_string()))?;
            m.members.insert(a.id, a);
        }
        let leases = db
            .cf_handle(CF_LEASES)
            .ok_or_else(|| Error::Storage("no cf leases".into()))?;
        for r in db.iterator_cf(leases, IteratorMode::Start) {
            let (k, v) = r?;
            let id = i64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| Error::Storage("bad lease key".into()))?,
            );
            let ttl: i64 = decode(&v).map_err(|e| Error::Storage(e.to_string()))?;
            m.leases.insert(
                id,
                Lease {
                    ttl,
                    keys: BTreeSet::new(),
                },
            );
        }
        for (key, lease) in latest_lease {
            if let Some(l) = m.leases.get_mut(&lease) {
                l.keys.insert(key);
            }
        }
        Ok(m)
    }

    /// The revision of `key` visible at `at` (the latest one at or below it), unless the
    /// key did not exist then.
    pub fn visible_at(&self, key: &[u8], at: i64) -> Option<Rev> {
        let revs = self.index.get(key)?;
        visible(revs, at)
    }

    /// Loads the record of `rev`, first from `pending` (writes of the batch being applied).
    pub fn load_record(db: &DB, pending: &HashMap<Rev, Record>, rev: Rev) -> Result<Record> {
        if let Some(r) = pending.get(&rev) {
            return Ok(r.clone());
        }
        let cf = db
            .cf_handle(CF_REVS)
            .ok_or_else(|| Error::Storage("no cf revs".into()))?;
        let v = db
            .get_pinned_cf(cf, rev.to_key())?
            .ok_or_else(|| Error::Storage(format!("record {rev:?} is missing")))?;
        decode(&v).map_err(|e| Error::Storage(e.to_string()))
    }

    /// The value of `key`'s record that precedes revision `rev` (for a watch event's
    /// `prev_kv`), if it is retained and not a tombstone.
    pub fn prev_of(&self, key: &[u8], rev: Rev) -> Option<Rev> {
        let revs = self.index.get(key)?;
        let pos = revs.partition_point(|r| r.rev < rev);
        if pos == 0 {
            return None;
        }
        let p = revs[pos - 1];
        (!p.tombstone).then_some(p.rev)
    }
}

fn visible(revs: &[IndexRev], at: i64) -> Option<Rev> {
    let pos = revs.partition_point(|r| r.rev.main <= at);
    if pos == 0 {
        return None;
    }
    let r = revs[pos - 1];
    (!r.tombstone).then_some(r.rev)
}

#[cfg(test)]
pub(crate) mod tests;
