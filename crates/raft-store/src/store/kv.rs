//! Key-value operations and watches of [`Store`].

use openraft::error::{CheckIsLeaderError, RaftError};
use rkube_proto::etcd::*;
use rkube_proto::raft::{store_request::Op, store_response::Result as Res, ReadIndexRequest};

use super::Store;
use crate::error::{Error, Result};
use crate::validate;
use crate::watch::{WatchOptions, Watcher};

impl Store {
    /// One ReadIndex round: confirm leadership with a quorum (or ask the leader for its read
    /// index) and wait until this member has applied up to it.
    pub(super) async fn read_round(&self) -> Result<()> {
        let timeout = self.inner.cfg.request_timeout;
        let res = tokio::time::timeout(timeout, self.inner.raft.ensure_linearizable())
            .await
            .map_err(|_| Error::Timeout)?;
        match res {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                let idx = self
                    .call_leader(|mut c| async move { c.read_index(ReadIndexRequest {}).await })
                    .await?
                    .index;
                self.inner
                    .raft
                    .wait(Some(timeout))
                    .applied_index_at_least(Some(idx), "read index")
                    .await
                    .map_err(|_| Error::Timeout)?;
                Ok(())
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(Error::NoLeader(None))
            }
            Err(RaftError::Fatal(_)) => Err(Error::Stopped),
        }
    }

    /// The read index for a follower's ReadIndex request; only the leader answers.
    pub(crate) async fn read_index(&self) -> Result<u64> {
        match self.inner.raft.get_read_log_id().await {
            Ok((read, _applied)) => Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(Error::NoLeader(f.leader_node.map(|n| n.to_string())))
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(Error::NoLeader(None))
            }
            Err(RaftError::Fatal(_)) => Err(Error::Stopped),
        }
    }

    /// Range: linearizable unless `serializable` is set.
    pub async fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        validate::range(req)?;
        if !req.serializable {
            self.read_barrier().await?;
        }
        let mvcc = self.inner.sm.mvcc.read();
        let r = mvcc.range(&self.inner.sm.db, &Default::default(), req)?;
        Ok(RangeResponse {
            header: Some(ResponseHeader {
                revision: mvcc.revision,
                ..Default::default()
            }),
            kvs: r.kvs,
            more: r.more,
            count: r.count,
        })
    }

    pub async fn put(&self, req: PutRequest) -> Result<PutResponse> {
        validate::put(&req, self.limits())?;
        let resp = self.write(Op::Put(req)).await?;
        take_result!(resp, Res::Put)
    }

    pub async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        validate::delete_range(&req)?;
        let resp = self.write(Op::DeleteRange(req)).await?;
        take_result!(resp, Res::DeleteRange)
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        validate::txn(&req, self.limits())?;
        let resp = self.write(Op::Txn(req)).await?;
        take_result!(resp, Res::Txn)
    }

    pub async fn compact(&self, revision: i64) -> Result<CompactionResponse> {
        let resp = self
            .write(Op::Compact(CompactionRequest {
                revision,
                physical: true,
            }))
            .await?;
        take_result!(resp, Res::Compact)
    }

    /// Starts a watch. Without a start revision the watch begins after the revision a
    /// linearizable read would see now, so a client that moves to this member never sees
    /// history older than what it saw elsewhere.
    pub async fn watch(&self, opts: WatchOptions) -> Result<Watcher> {
        if opts.key.is_empty() {
            return Err(Error::invalid("key", "etcdserver: key is not provided"));
        }
        validate::range(&RangeRequest {
            key: opts.key.clone(),
            range_end: opts.range_end.clone(),
            ..Default::default()
        })?;
        if opts.start_revision <= 0 {
            self.read_barrier().await?;
        }
        Ok(Watcher::start(
            self.inner.sm.clone(),
            opts,
            self.inner.cfg.watch_buffer,
        ))
    }
}

/// The typed response inside an applied write's result, stamped with its header.
macro_rules! take_result {
    ($resp:expr, $variant:path) => {{
        let resp = $resp;
        match resp.result {
            Some($variant(mut r)) => {
                r.header = resp.header;
                Ok(r)
            }
            other => Err($crate::store::kv::unexpected(other)),
        }
    }};
}
pub(crate) use take_result;

pub(crate) fn unexpected(r: Option<Res>) -> Error {
    Error::Storage(format!("unexpected response to a store request: {r:?}"))
}

impl Store {
    /// A hash of every record up to `revision` (0: the current one) and the compaction
    /// revision, as etcd's HashKV: equal on members that hold the same history.
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64)> {
        let mvcc = self.inner.sm.mvcc.read();
        let at = crate::mvcc::check_revision(&mvcc, revision)?;
        let db = &self.inner.sm.db;
        let cf = db
            .cf_handle(crate::mvcc::CF_REVS)
            .ok_or_else(|| Error::Storage("no cf revs".into()))?;
        let mut h: u32 = 0x811c_9dc5;
        for r in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = r?;
            if crate::mvcc::Rev::from_key(&k).is_some_and(|rev| rev.main > at) {
                break;
            }
            for b in k.iter().chain(v.iter()) {
                h ^= u32::from(*b);
                h = h.wrapping_mul(0x0100_0193);
            }
        }
        Ok((h, mvcc.compact_revision))
    }
}
