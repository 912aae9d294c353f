//! Proposing writes: concurrent writes are batched into one Raft entry.
//!
//! A member has two queues, each drained by at most one driver task at a time, which takes
//! everything queued (up to [`MAX_BATCH_BYTES`]) as one batch:
//!
//! - the **local** queue is proposed on this member (`client_write`): batches other members
//!   forwarded here, and this member's own writes while it leads;
//! - the **forward** queue holds this member's own writes while another member leads, and
//!   sends each batch to the leader as one RPC.
//!
//! Writes that arrive while a batch is in flight form the next one, so one fsync and one
//! replication round serve many clients. No driver ever waits on another member's
//! driver: a proposal that fails because leadership moved hands its own writes to the
//! forward queue instead of forwarding them itself, so two members that each forward to
//! the other at a leader change cannot wait on each other. A proposal whose leader loses
//! leadership is answered once the new leader commits or drops it, or after a grace of
//! an election timeout, as [`Error::Unknown`].

use openraft::error::{ClientWriteError, RaftError};
use parking_lot::Mutex;
use prost::Message;
use rkube_proto::raft::{
    store_response, StoreBatch, StoreBatchResponse, StoreRequest, StoreResponse,
};
use tokio::sync::oneshot;
use tonic::Status;

use super::{forward_error, not_delivered, Store, NOT_LEADER};
use crate::error::{Error, Result};
use crate::types::{ClientWriteResult, Request};

/// A batch is closed once it holds this many bytes (a single larger unit still goes alone).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Writes that must be proposed together, and who waits for their results.
struct Unit {
    requests: Vec<StoreRequest>,
    /// Forwarded here by another member: propose on this member or fail, never forward on.
    local: bool,
    tx: oneshot::Sender<Result<StoreBatchResponse>>,
}

/// Queued units, and whether a driver drains them.
#[derive(Default)]
struct Queue(Mutex<(bool, Vec<Unit>)>);

impl Queue {
    /// Queues `u`; true when no driver runs, and the caller must start one.
    fn push(&self, u: Unit) -> bool {
        let mut q = self.0.lock();
        q.1.push(u);
        !std::mem::replace(&mut q.0, true)
    }

    /// The next batch of units, or `None` (and the driver ends) when nothing is queued.
    fn take(&self) -> Option<Vec<Unit>> {
        let mut q = self.0.lock();
        if q.1.is_empty() {
            q.0 = false;
            return None;
        }
        let mut bytes = 0;
        let n =
            q.1.iter()
                .take_while(|u| {
                    bytes += u.requests.iter().map(|r| r.encoded_len()).sum::<usize>();
                    bytes <= MAX_BATCH_BYTES
                })
                .count()
                .max(1);
        Some(q.1.drain(..n).collect())
    }
}

#[derive(Default)]
pub(crate) struct Proposer {
    local: Queue,
    forward: Queue,
}

fn batch_of(units: &[Unit]) -> StoreBatch {
    StoreBatch {
        requests: units
            .iter()
            .flat_map(|u| u.requests.iter().cloned())
            .collect(),
    }
}

impl Store {
    /// Proposes one write and returns its applied result, forwarding to the leader when
    /// this member is not it. The request must have been validated.
    pub(crate) async fn write(
        &self,
        op: rkube_proto::raft::store_request::Op,
    ) -> Result<StoreResponse> {
        let mut r = self
            .enqueue(vec![StoreRequest { op: Some(op) }], false)
            .await?;
        r.responses
            .pop()
            .ok_or_else(|| Error::Storage("no response to a write".into()))
            .and_then(into_result)
    }

    /// Proposes a batch forwarded by another member, together with this member's own
    /// writes, as one unit: all of it is applied, or none of it and the sender may retry.
    pub(crate) async fn propose_forwarded(&self, batch: StoreBatch) -> Result<StoreBatchResponse> {
        self.enqueue(batch.requests, true).await
    }

    async fn enqueue(
        &self,
        requests: Vec<StoreRequest>,
        local: bool,
    ) -> Result<StoreBatchResponse> {
        let (tx, rx) = oneshot::channel();
        let unit = Unit {
            requests,
            local,
            tx,
        };
        self.queue(unit, !local && !self.is_leader());
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Puts `unit` on the forward or the local queue, starting its driver if none runs.
    fn queue(&self, unit: Unit, forward: bool) {
        let p = &self.inner.proposer;
        let queue = if forward { &p.forward } else { &p.local };
        if queue.push(unit) {
            let store = self.clone();
            tokio::spawn(async move {
                if forward {
                    store.drive_forward().await
                } else {
                    store.drive_local().await
                }
            });
        }
    }

    /// Proposes the local queue's batches on this member.
    async fn drive_local(&self) {
        while let Some(units) = self.inner.proposer.local.take() {
            match self.propose_local(batch_of(&units)).await {
                Ok(resp) => deliver(units, resp),
                Err(Error::NoLeader(_)) => {
                    // Not the leader: forwarded units go back to their sender, this member's
                    // own writes to the forward queue.
                    for u in units {
                        if u.local {
                            let _ = u.tx.send(Err(Error::NoLeader(None)));
                        } else {
                            self.queue(u, true);
                        }
                    }
                }
                Err(e) => fail(units, e),
            }
        }
    }

    /// Sends the forward queue's batches to the leader.
    async fn drive_forward(&self) {
        while let Some(units) = self.inner.proposer.forward.take() {
            match self.propose(batch_of(&units)).await {
                Ok(resp) => deliver(units, resp),
                Err(e) => fail(units, e),
            }
        }
    }

    /// Proposes one entry, forwarding it to the leader when this member is not it.
    async fn propose(&self, batch: StoreBatch) -> Result<StoreBatchResponse> {
        let deadline = tokio::time::Instant::now() + self.inner.cfg.request_timeout;
        loop {
            // Skip a round trip through Raft when the leader is known to be another member.
            let known = self
                .leader()
                .filter(|l| *l != self.inner.id)
                .zip(self.leader().and_then(|l| self.leader_member(l)));
            let res = match known {
                Some((lid, node)) => Err(RaftError::APIError(ClientWriteError::ForwardToLeader(
                    openraft::error::ForwardToLeader {
                        leader_id: Some(lid),
                        leader_node: Some(node),
                    },
                ))),
                None => self.client_write(batch.clone()).await?,
            };
            match res {
                Ok(resp) => return Ok(resp.data.0),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let (Some(lid), Some(node)) = (f.leader_id, f.leader_node) {
                        if lid != self.inner.id {
                            let term = self.term();
                            let mut c = self.inner.peers.client(&node.peer_addr);
                            let res = tokio::time::timeout_at(deadline, c.forward(batch.clone()))
                                .await
                                .map_err(|_| Error::Timeout)?;
                            match res {
                                Ok(resp) => {
                                    let resp = resp.into_inner();
                                    // Applied here too before answering: read-your-writes.
                                    self.inner
                                        .raft
                                        .wait(Some(self.inner.cfg.request_timeout))
                                        .applied_index_at_least(
                                            Some(resp.log_index),
                                            "forwarded write",
                                        )
                                        .await
                                        .map_err(|_| Error::Timeout)?;
                                    return Ok(resp);
                                }
                                // Never proposed: safe to send again once a new leader is known.
                                Err(s) if not_delivered(&s) || s.message() == NOT_LEADER => {
                                    self.wait_for_new_leader(lid, term, deadline).await?;
                                    continue;
                                }
                                Err(s) => return Err(forward_error(s, &node)),
                            }
                        }
                    }
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if left.is_zero() {
                        return Err(Error::NoLeader(None));
                    }
                    self.wait_for_leader(left).await?;
                    tokio::task::yield_now().await;
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    return Err(Error::Membership(e.to_string()))
                }
                Err(RaftError::Fatal(_)) => return Err(Error::Stopped),
            }
        }
    }

    /// `client_write`, answered with [`Error::Unknown`] when this member stops leading and
    /// no answer comes within a grace of an election timeout (a deposed leader answers once
    /// the new leader commits or drops the entry; cut off from it, it would wait), or when
    /// the request timeout passes.
    async fn client_write(&self, batch: StoreBatch) -> Result<ClientWriteResult> {
        let cfg = &self.inner.cfg;
        let grace = cfg.election_timeout * 3 / 2 + cfg.heartbeat_interval * 2;
        let deadline = tokio::time::Instant::now() + cfg.request_timeout;
        let write = self.inner.raft.client_write(Request(batch));
        tokio::pin!(write);
        let mut metrics = self.inner.raft.metrics();
        let term = metrics.borrow().current_term;
        let id = self.inner.id;
        let mut deposed: Option<tokio::time::Instant> = None;
        loop {
            let until = deposed.map_or(deadline, |d| d.min(deadline));
            tokio::select! {
                r = &mut write => return Ok(r),
                changed = metrics.changed(), if deposed.is_none() => {
                    if changed.is_err() {
                        return Err(Error::Stopped);
                    }
                    let m = metrics.borrow_and_update();
                    if m.current_term != term || m.current_leader != Some(id) {
                        deposed = Some(tokio::time::Instant::now() + grace);
                    }
                }
                _ = tokio::time::sleep_until(until) => return Err(Error::Unknown),
            }
        }
    }

    /// Proposes an entry on this member, or fails with [`Error::NoLeader`] when it is not
    /// the leader.
    pub(crate) async fn propose_local(&self, batch: StoreBatch) -> Result<StoreBatchResponse> {
        match self.client_write(batch).await? {
            Ok(resp) => Ok(resp.data.0),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(Error::NoLeader(f.leader_node.map(|n| n.to_string())))
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(Error::Membership(e.to_string()))
            }
            Err(RaftError::Fatal(_)) => Err(Error::Stopped),
        }
    }

    /// One write of the leader's own housekeeping (lease expiry, compaction): proposed here
    /// or not at all.
    pub(crate) async fn write_local(&self, req: StoreRequest) -> Result<StoreResponse> {
        let mut resp = self
            .propose_local(StoreBatch {
                requests: vec![req],
            })
            .await?;
        resp.responses
            .pop()
            .ok_or_else(|| Error::Storage("no response to a write".into()))
            .and_then(into_result)
    }
}

/// Hands each unit its share of an entry's responses.
fn deliver(units: Vec<Unit>, resp: StoreBatchResponse) {
    let total: usize = units.iter().map(|u| u.requests.len()).sum();
    if resp.responses.len() != total {
        let msg = format!("{} responses to {total} writes", resp.responses.len());
        return fail(units, Error::Storage(msg));
    }
    let mut responses = resp.responses.into_iter();
    for u in units {
        let mine: Vec<StoreResponse> = responses.by_ref().take(u.requests.len()).collect();
        let _ = u.tx.send(Ok(StoreBatchResponse {
            responses: mine,
            log_index: resp.log_index,
        }));
    }
}

fn fail(units: Vec<Unit>, e: Error) {
    let status = Status::from(e);
    for u in units {
        let _ = u.tx.send(Err(Error::Remote(status.clone())));
    }
}

/// An applied request's outcome: a deterministic rejection becomes an error.
fn into_result(resp: StoreResponse) -> Result<StoreResponse> {
    if let Some(store_response::Result::Error(e)) = &resp.result {
        return Err(Error::Remote(Status::new(
            tonic::Code::from_i32(e.code),
            e.message.clone(),
        )));
    }
    Ok(resp)
}
