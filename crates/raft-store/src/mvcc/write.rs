//! Applying replicated writes: put, delete-range, txn, compaction, leases.
//!
//! A [`WriteTxn`] collects one batch of applied entries: the in-memory index changes at
//! once, the records go into one RocksDB write batch, and the watch events are published
//! after that batch is written.

use std::collections::HashMap;

use bytes::Bytes;
use rkube_proto::etcd::compare::{CompareResult, CompareTarget, TargetUnion};
use rkube_proto::etcd::request_op::Request as Op;
use rkube_proto::etcd::response_op::Response as OpResponse;
use rkube_proto::etcd::*;
use rkube_proto::mvccpb::{event::EventType, Event, KeyValue};
use rkube_proto::raft::MemberAttributes;
use rocksdb::{WriteBatch, DB};

use super::{range_bounds, Lease, Mvcc, Record, Rev, CF_LEASES, CF_REVS, CF_SM_META};
use super::{META_COMPACT, META_MEMBER_PREFIX, META_REVISION};
use crate::codec::encode;
use crate::error::{Error, Result};

/// One batch of writes being applied.
pub struct WriteTxn<'a> {
    pub mvcc: &'a mut Mvcc,
    db: &'a DB,
    pub batch: WriteBatch,
    pending: HashMap<Rev, Record>,
    /// Events of this batch, in revision order; collected only when someone watches.
    pub events: Vec<Event>,
    record_events: bool,
    /// Revision of the request being applied and the next sub-revision in it.
    main: i64,
    sub: i64,
}

impl<'a> WriteTxn<'a> {
    /// A batch on `mvcc`; `record_events` is false when no watcher exists (none can
    /// register while the batch holds the state's write lock).
    pub fn new(mvcc: &'a mut Mvcc, db: &'a DB, record_events: bool) -> Self {
        WriteTxn {
            mvcc,
            db,
            batch: WriteBatch::default(),
            pending: HashMap::new(),
            events: Vec::new(),
            record_events,
            main: 0,
            sub: 0,
        }
    }

    fn begin(&mut self) {
        self.main = self.mvcc.revision + 1;
        self.sub = 0;
    }

    /// Ends one request: its writes, if any, make up one new revision.
    fn commit(&mut self) {
        if self.sub > 0 {
            self.mvcc.revision = self.main;
            let cf = self.db.cf_handle(CF_SM_META).expect("cf sm_meta");
            self.batch.put_cf(cf, META_REVISION, encode(&self.main));
        }
    }

    fn next_rev(&mut self) -> Rev {
        let r = Rev {
            main: self.main,
            sub: self.sub,
        };
        self.sub += 1;
        r
    }

    fn current(&self, key: &[u8]) -> Result<Option<Record>> {
        match self.mvcc.visible_at(key, i64::MAX) {
            None => Ok(None),
            Some(rev) => Mvcc::load_record(self.db, &self.pending, rev).map(Some),
        }
    }

    fn write_record(&mut self, rev: Rev, rec: Record) {
        let key = Bytes::copy_from_slice(&rec.key);
        let revs = self.mvcc.index.entry(key).or_default();
        revs.push(super::IndexRev {
            rev,
            tombstone: rec.tombstone,
        });
        let cf = self.db.cf_handle(CF_REVS).expect("cf revs");
        self.batch.put_cf(cf, rev.to_key(), encode(&rec));
        self.pending.insert(rev, rec);
    }

    fn detach(&mut self, key: &[u8], lease: i64) {
        if lease != 0 {
            if let Some(l) = self.mvcc.leases.get_mut(&lease) {
                l.keys.remove(key);
            }
        }
    }

    /// Applies a put; the caller has validated it.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        self.begin();
        let resp = self.put_in_txn(req)?;
        self.commit();
        Ok(resp)
    }

    fn put_in_txn(&mut self, req: &PutRequest) -> Result<PutResponse> {
        let prev = self.current(&req.key)?;
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(Error::invalid("key", "etcdserver: key not found"));
        }
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.to_vec(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        if lease != 0 && !self.mvcc.leases.contains_key(&lease) {
            return Err(Error::LeaseNotFound);
        }
        let rev = self.next_rev();
        let rec = Record {
            key: req.key.to_vec(),
            value,
            create_revision: prev.as_ref().map_or(rev.main, |p| p.create_revision),
            mod_revision: rev.main,
            version: prev.as_ref().map_or(0, |p| p.version) + 1,
            lease,
            tombstone: false,
        };
        if let Some(p) = &prev {
            self.detach(&p.key, p.lease);
        }
        if lease != 0 {
            if let Some(l) = self.mvcc.leases.get_mut(&lease) {
                l.keys.insert(req.key.clone());
            }
        }
        let prev_kv = (req.prev_kv || self.record_events)
            .then(|| prev.map(|p| p.to_kv()))
            .flatten();
        if self.record_events {
            self.events.push(Event {
                r#type: EventType::Put as i32,
                kv: Some(rec.to_kv()),
                prev_kv: prev_kv.clone(),
            });
        }
        self.write_record(rev, rec);
        Ok(PutResponse {
            header: None,
            prev_kv: if req.prev_kv { prev_kv } else { None },
        })
    }

    /// Applies a delete-range.
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        self.begin();
        let resp = self.delete_in_txn(req)?;
        self.commit();
        Ok(resp)
    }

    fn delete_in_txn(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let keys: Vec<Rev> = self
            .mvcc
            .index
            .range(range_bounds(&req.key, &req.range_end))
            .filter_map(|(_, revs)| super::visible(revs, i64::MAX))
            .collect();
        let mut resp = DeleteRangeResponse::default();
        for cur in keys {
            let prev = Mvcc::load_record(self.db, &self.pending, cur)?;
            let rev = self.next_rev();
            let tomb = Record {
                key: prev.key.clone(),
                mod_revision: rev.main,
                tombstone: true,
                ..Record::default()
            };
            self.detach(&prev.key, prev.lease);
            let prev_kv = prev.to_kv();
            if self.record_events {
                self.events.push(Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(KeyValue {
                        key: prev_kv.key.clone(),
                        mod_revision: rev.main,
                        ..KeyValue::default()
                    }),
                    prev_kv: Some(prev_kv.clone()),
                });
            }
            self.write_record(rev, tomb);
            resp.deleted += 1;
            if req.prev_kv {
                resp.prev_kvs.push(prev_kv);
            }
        }
        Ok(resp)
    }

    /// Applies a transaction: compares, then the success or failure operations, all at
    /// one revision.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse> {
        self.begin();
        let resp = self.txn_in_txn(req)?;
        self.commit();
        Ok(resp)
    }

    fn txn_in_txn(&mut self, req: &TxnRequest) -> Result<TxnResponse> {
        let mut succeeded = true;
        for c in &req.compare {
            if !self.compare(c)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        self.precheck(ops)?;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let r = match &op.request {
                Some(Op::RequestRange(r)) => {
                    // "Now" inside a txn includes the txn's own earlier writes.
                    let res = self.mvcc.range_at(self.db, &self.pending, r, self.main)?;
                    OpResponse::ResponseRange(RangeResponse {
                        header: None,
                        kvs: res.kvs,
                        more: res.more,
                        count: res.count,
                    })
                }
                Some(Op::RequestPut(p)) => OpResponse::ResponsePut(self.put_in_txn(p)?),
                Some(Op::RequestDeleteRange(d)) => {
                    OpResponse::ResponseDeleteRange(self.delete_in_txn(d)?)
                }
                Some(Op::RequestTxn(t)) => OpResponse::ResponseTxn(self.txn_in_txn(t)?),
                None => return Err(Error::invalid("request", "empty request op")),
            };
            responses.push(ResponseOp { response: Some(r) });
        }
        Ok(TxnResponse {
            header: None,
            succeeded,
            responses,
        })
    }

    /// Rejects a branch that would fail halfway, before any of it is applied, so that a
    /// transaction is all or nothing. Nested transactions are checked on both branches.
    fn precheck(&self, ops: &[RequestOp]) -> Result<()> {
        for op in ops {
            match &op.request {
                Some(Op::RequestPut(p)) => {
                    let exists = self.mvcc.visible_at(&p.key, i64::MAX).is_some();
                    if (p.ignore_value || p.ignore_lease) && !exists {
                        return Err(Error::invalid("key", "etcdserver: key not found"));
                    }
                    if !p.ignore_lease && p.lease != 0 && !self.mvcc.leases.contains_key(&p.lease) {
                        return Err(Error::LeaseNotFound);
                    }
                }
                Some(Op::RequestRange(r)) => {
                    super::check_revision(self.mvcc, r.revision)?;
                }
                Some(Op::RequestTxn(t)) => {
                    self.precheck(&t.success)?;
                    self.precheck(&t.failure)?;
                }
                Some(Op::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn compare(&self, c: &Compare) -> Result<bool> {
        let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
        let keys: Vec<Option<Rev>> = if c.range_end.is_empty() {
            vec![self.mvcc.visible_at(&c.key, i64::MAX)]
        } else {
            self.mvcc
                .index
                .range(range_bounds(&c.key, &c.range_end))
                .filter_map(|(_, revs)| super::visible(revs, i64::MAX))
                .map(Some)
                .collect()
        };
        let live: Vec<Rev> = keys.into_iter().flatten().collect();
        if live.is_empty() {
            // A missing key never equals a value: there is no way to say "no value".
            if target == CompareTarget::Value {
                return Ok(false);
            }
            return Ok(compare_record(c, target, &Record::default()));
        }
        for rev in live {
            let rec = Mvcc::load_record(self.db, &self.pending, rev)?;
            if !compare_record(c, target, &rec) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Applies a compaction at `revision`.
    pub fn compact(&mut self, revision: i64) -> Result<CompactionResponse> {
        if revision <= self.mvcc.compact_revision {
            return Err(Error::Compacted {
                compact_revision: self.mvcc.compact_revision,
            });
        }
        if revision > self.mvcc.revision {
            return Err(Error::FutureRevision);
        }
        let cf = self.db.cf_handle(CF_REVS).expect("cf revs");
        let mut emptied = Vec::new();
        for (key, revs) in self.mvcc.index.iter_mut() {
            // Records at or above the compaction point stay; below it only the latest,
            // and only if it is live: a read at `revision` still sees it.
            let below = revs.partition_point(|r| r.rev.main < revision);
            if below == 0 {
                continue;
            }
            let shadowed = revs.get(below).is_some_and(|r| r.rev.main == revision);
            let keep_last = !revs[below - 1].tombstone && !shadowed;
            let drop_to = if keep_last { below - 1 } else { below };
            for r in &revs[..drop_to] {
                self.batch.delete_cf(cf, r.rev.to_key());
            }
            revs.drain(..drop_to);
            if revs.is_empty() {
                emptied.push(key.clone());
            }
        }
        for k in emptied {
            self.mvcc.index.remove(&k);
        }
        self.mvcc.compact_revision = revision;
        let meta = self.db.cf_handle(CF_SM_META).expect("cf sm_meta");
        self.batch.put_cf(meta, META_COMPACT, encode(&revision));
        Ok(CompactionResponse::default())
    }

    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<LeaseGrantResponse> {
        if self.mvcc.leases.contains_key(&id) {
            return Err(Error::invalid("ID", "etcdserver: lease already exists"));
        }
        self.mvcc.leases.insert(
            id,
            Lease {
                ttl,
                keys: Default::default(),
            },
        );
        let cf = self.db.cf_handle(CF_LEASES).expect("cf leases");
        self.batch.put_cf(cf, id.to_be_bytes(), encode(&ttl));
        Ok(LeaseGrantResponse {
            header: None,
            id,
            ttl,
            error: String::new(),
        })
    }

    /// Revokes leases and deletes their keys, all at one revision.
    pub fn lease_revoke(&mut self, ids: &[i64], must_exist: bool) -> Result<LeaseRevokeResponse> {
        if must_exist && ids.iter().any(|id| !self.mvcc.leases.contains_key(id)) {
            return Err(Error::LeaseNotFound);
        }
        self.begin();
        let cf = self.db.cf_handle(CF_LEASES).expect("cf leases");
        for id in ids {
            let Some(lease) = self.mvcc.leases.remove(id) else {
                continue;
            };
            self.batch.delete_cf(cf, id.to_be_bytes());
            for key in lease.keys {
                self.delete_in_txn(&DeleteRangeRequest {
                    key,
                    ..Default::default()
                })?;
            }
        }
        self.commit();
        Ok(LeaseRevokeResponse::default())
    }

    pub fn member_attributes(&mut self, a: &MemberAttributes) {
        let cf = self.db.cf_handle(CF_SM_META).expect("cf sm_meta");
        let mut k = META_MEMBER_PREFIX.to_vec();
        k.extend_from_slice(&a.id.to_be_bytes());
        self.batch.put_cf(cf, k, prost::Message::encode_to_vec(a));
        self.mvcc.members.insert(a.id, a.clone());
    }
}

fn compare_record(c: &Compare, target: CompareTarget, r: &Record) -> bool {
    let result = CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal);
    let ord = match (target, &c.target_union) {
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => r.version.cmp(v),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => r.create_revision.cmp(v),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => r.mod_revision.cmp(v),
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => r.value.as_slice().cmp(v.as_ref()),
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => r.lease.cmp(v),
        // A missing operand compares as the zero value, as in etcd's protobuf defaults.
        (CompareTarget::Value, None) => r.value.as_slice().cmp(&[][..]),
        (CompareTarget::Version, None) => r.version.cmp(&0),
        (CompareTarget::Create, None) => r.create_revision.cmp(&0),
        (CompareTarget::Mod, None) => r.mod_revision.cmp(&0),
        (CompareTarget::Lease, None) => r.lease.cmp(&0),
        _ => return false,
    };
    match result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::NotEqual => ord.is_ne(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
    }
}
