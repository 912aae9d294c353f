//! Range reads, at the current or a past revision.

use std::collections::HashMap;

use rkube_proto::etcd::range_request::{SortOrder, SortTarget};
use rkube_proto::etcd::RangeRequest;
use rkube_proto::mvccpb::KeyValue;
use rocksdb::DB;

use super::{range_bounds, Mvcc, Record, Rev};
use crate::error::{Error, Result};

/// The outcome of a range: the key-values, whether the limit cut the list, and how many
/// keys the range holds in all.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    pub more: bool,
    pub count: i64,
}

/// The revision a read at `rev` is served at: `rev <= 0` means the current one. A revision
/// below the compaction point or above the current one is refused.
pub fn check_revision(m: &Mvcc, rev: i64) -> Result<i64> {
    check_revision_at(m, rev, m.revision)
}

fn check_revision_at(m: &Mvcc, rev: i64, current: i64) -> Result<i64> {
    if rev <= 0 {
        return Ok(current);
    }
    if rev > m.revision {
        return Err(Error::FutureRevision);
    }
    if rev < m.compact_revision {
        return Err(Error::Compacted {
            compact_revision: m.compact_revision,
        });
    }
    Ok(rev)
}

impl Mvcc {
    /// Serves a range request against this state; `pending` holds records written by the
    /// batch being applied (reads inside a transaction see the transaction's own writes).
    pub fn range(
        &self,
        db: &DB,
        pending: &HashMap<Rev, Record>,
        req: &RangeRequest,
    ) -> Result<RangeResult> {
        self.range_at(db, pending, req, self.revision)
    }

    /// Like [`Mvcc::range`], with `current` as the revision a request without one reads at.
    pub fn range_at(
        &self,
        db: &DB,
        pending: &HashMap<Rev, Record>,
        req: &RangeRequest,
        current: i64,
    ) -> Result<RangeResult> {
        let at = check_revision_at(self, req.revision, current)?;
        let sort_order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
        let sort_target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
        let sorted = !(sort_target == SortTarget::Key && sort_order != SortOrder::Descend);
        let filtered = req.min_mod_revision > 0
            || req.max_mod_revision > 0
            || req.min_create_revision > 0
            || req.max_create_revision > 0;
        let limit = if req.limit > 0 {
            req.limit as usize
        } else {
            usize::MAX
        };

        let mut out = RangeResult::default();
        for (_, revs) in self.index.range(range_bounds(&req.key, &req.range_end)) {
            let Some(rev) = super::visible(revs, at) else {
                continue;
            };
            out.count += 1;
            if req.count_only && !filtered {
                continue;
            }
            if !sorted && out.kvs.len() >= limit {
                out.more = true;
                continue;
            }
            let rec = Mvcc::load_record(db, pending, rev)?;
            if !passes_filters(req, &rec) {
                continue;
            }
            let mut kv = rec.to_kv();
            if req.keys_only {
                kv.value = Default::default();
            }
            out.kvs.push(kv);
        }
        if sorted {
            sort_kvs(&mut out.kvs, sort_target, sort_order);
            if out.kvs.len() > limit {
                out.kvs.truncate(limit);
                out.more = true;
            }
        }
        if req.count_only {
            out.kvs.clear();
        }
        Ok(out)
    }
}

fn passes_filters(req: &RangeRequest, r: &Record) -> bool {
    !(req.min_mod_revision > 0 && r.mod_revision < req.min_mod_revision
        || req.max_mod_revision > 0 && r.mod_revision > req.max_mod_revision
        || req.min_create_revision > 0 && r.create_revision < req.min_create_revision
        || req.max_create_revision > 0 && r.create_revision > req.max_create_revision)
}

fn sort_kvs(kvs: &mut [KeyValue], target: SortTarget, order: SortOrder) {
    match target {
        SortTarget::Key => kvs.sort_by(|a, b| a.key.cmp(&b.key)),
        SortTarget::Version => kvs.sort_by_key(|k| k.version),
        SortTarget::Create => kvs.sort_by_key(|k| k.create_revision),
        SortTarget::Mod => kvs.sort_by_key(|k| k.mod_revision),
        SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
    }
    if order == SortOrder::Descend {
        kvs.reverse();
    }
}
