//! Leases. Grants and revocations are replicated; liveness is not: the leader alone keeps
//! each lease's deadline, refreshes it on keep-alive and, when it passes, commits the
//! expiry through Raft. A new leader gives every lease a full TTL again, as etcd does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rkube_proto::etcd::*;
use rkube_proto::raft::{store_request::Op, store_response::Result as Res, LeaseExpire};

use super::kv::take_result;
use super::Store;
use crate::error::{Error, Result};
use crate::validate;

/// Shortest TTL granted, as etcd's (1.5 election timeouts, rounded up to whole seconds).
pub const MIN_LEASE_TTL: i64 = 2;

/// The leader's lease deadlines.
#[derive(Default)]
pub struct Lessor {
    deadlines: Mutex<HashMap<i64, Instant>>,
    term: Mutex<u64>,
}

impl Lessor {
    fn refresh(&self, id: i64, ttl: i64) {
        self.deadlines
            .lock()
            .insert(id, Instant::now() + Duration::from_secs(ttl as u64));
    }

    /// Leases past their deadline; leases not seen before get a full TTL from now. A change
    /// of leader term resets every deadline.
    pub(crate) fn expired(&self, term: u64, leases: &[(i64, i64)]) -> Vec<i64> {
        let now = Instant::now();
        let mut d = self.deadlines.lock();
        {
            let mut t = self.term.lock();
            if *t != term {
                *t = term;
                d.clear();
            }
        }
        d.retain(|id, _| leases.iter().any(|(l, _)| l == id));
        leases
            .iter()
            .filter(|(id, ttl)| {
                *d.entry(*id)
                    .or_insert_with(|| now + Duration::from_secs(*ttl as u64))
                    <= now
            })
            .map(|(id, _)| *id)
            .collect()
    }

    pub(crate) fn clear(&self) {
        self.deadlines.lock().clear();
        *self.term.lock() = 0;
    }

    fn remaining(&self, id: i64, ttl: i64) -> i64 {
        match self.deadlines.lock().get(&id) {
            None => ttl,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // etcd rounds the remaining TTL up to whole seconds.
                left.as_millis().div_ceil(1000) as i64
            }
        }
    }
}

impl Store {
    pub async fn lease_grant(&self, mut req: LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        validate::lease_grant(&req)?;
        req.ttl = req.ttl.max(MIN_LEASE_TTL);
        let chosen = req.id == 0;
        for _ in 0..8 {
            if chosen {
                // The member picks the ID, as etcd's lessor does: random and positive.
                req.id = (rand_u64() >> 1) as i64;
            }
            let resp = self.write(Op::LeaseGrant(req)).await;
            match resp {
                Ok(resp) => return take_result!(resp, Res::LeaseGrant),
                Err(Error::Remote(s)) if chosen && s.code() == tonic::Code::InvalidArgument => {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::invalid("ID", "etcdserver: lease already exists"))
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        let resp = self
            .write(Op::LeaseRevoke(LeaseRevokeRequest { id }))
            .await?;
        take_result!(resp, Res::LeaseRevoke)
    }

    pub(crate) async fn lease_expire(&self, ids: Vec<i64>) -> Result<()> {
        self.write_local(rkube_proto::raft::StoreRequest {
            op: Some(Op::LeaseExpire(LeaseExpire { ids })),
        })
        .await
        .map(|_| ())
    }

    fn lease_ttl(&self, id: i64) -> Option<(i64, Vec<bytes::Bytes>)> {
        let mvcc = self.inner.sm.mvcc.read();
        mvcc.leases
            .get(&id)
            .map(|l| (l.ttl, l.keys.iter().cloned().collect()))
    }

    /// Renews a lease; the TTL in the answer is 0 when the lease does not exist.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        if !self.is_leader() {
            return self
                .call_leader(|mut c| async move {
                    c.lease_keep_alive(LeaseKeepAliveRequest { id }).await
                })
                .await;
        }
        // The lease must exist in applied state that is current: wait for a read index.
        self.read_barrier().await?;
        let ttl = match self.lease_ttl(id) {
            Some((ttl, _)) => {
                self.inner.lessor.refresh(id, ttl);
                ttl
            }
            None => 0,
        };
        Ok(LeaseKeepAliveResponse {
            header: Some(self.header()),
            id,
            ttl,
        })
    }

    pub async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse> {
        if !self.is_leader() {
            return self
                .call_leader(|mut c| async move { c.lease_time_to_live(req).await })
                .await;
        }
        self.read_barrier().await?;
        let (ttl, keys) = self.lease_ttl(req.id).ok_or(Error::LeaseNotFound)?;
        Ok(LeaseTimeToLiveResponse {
            header: Some(self.header()),
            id: req.id,
            ttl: self.inner.lessor.remaining(req.id, ttl),
            granted_ttl: ttl,
            keys: if req.keys { keys } else { Vec::new() },
        })
    }

    pub async fn leases(&self) -> Result<LeaseLeasesResponse> {
        self.read_barrier().await?;
        let mvcc = self.inner.sm.mvcc.read();
        Ok(LeaseLeasesResponse {
            header: Some(ResponseHeader {
                revision: mvcc.revision,
                ..Default::default()
            }),
            leases: mvcc
                .leases
                .keys()
                .map(|id| LeaseStatus { id: *id })
                .collect(),
        })
    }

    /// A response header with this member's revision.
    pub fn header(&self) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.inner.cluster_id,
            member_id: self.inner.id,
            revision: self.revision(),
            raft_term: self.term(),
        }
    }
}

/// A random 64-bit number from the standard library's randomly keyed hasher.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ std::process::id() as u128);
    h.finish()
}
