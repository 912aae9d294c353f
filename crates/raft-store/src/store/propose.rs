//! Proposing writes: concurrent writes are batched into one Raft entry, with a few entries
//! in flight at once.
//!
//! A write joins the queue; up to [`MAX_IN_FLIGHT`] proposers each take everything queued
//! (up to [`MAX_BATCH_BYTES`]) and propose it as one entry — on a follower, forward it to
//! the leader as one RPC. Writes that arrive while entries are in flight form the next
//! batch, so one fsync and one replication round serve many clients, while a lone client
//! still has its write proposed at once.

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
use crate::types::Request;

/// Entries this member has proposed and not yet seen applied, at most. One keeps batches
/// large: the members' fsyncs share a disk, and fewer, larger ones serve more writes.
const MAX_IN_FLIGHT: usize = 1;
/// A batch is closed once it holds this many bytes (a single larger unit still goes alone).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Writes that must be proposed together, and who waits for their results.
struct Unit {
    requests: Vec<StoreRequest>,
    /// Forwarded here by another member: propose on this member or fail, never forward on.
    local: bool,
    tx: oneshot::Sender<Result<StoreBatchResponse>>,
}

#[derive(Default)]
pub(crate) struct Proposer {
    /// Running proposers and the queued units.
    state: Mutex<(usize, Vec<Unit>)>,
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
        let start = {
            let mut st = self.inner.proposer.state.lock();
            st.1.push(Unit {
                requests,
                local,
                tx,
            });
            let start = st.0 < MAX_IN_FLIGHT;
            if start {
                st.0 += 1;
            }
            start
        };
        if start {
            let store = self.clone();
            tokio::spawn(async move { store.drive_proposals().await });
        }
        rx.await.map_err(|_| Error::Stopped)?
    }

    async fn drive_proposals(&self) {
        loop {
            let units: Vec<Unit> = {
                let mut st = self.inner.proposer.state.lock();
                if st.1.is_empty() {
                    st.0 -= 1;
                    return;
                }
                let mut bytes = 0;
                let n =
                    st.1.iter()
                        .take_while(|u| {
                            bytes += u.requests.iter().map(|r| r.encoded_len()).sum::<usize>();
                            bytes <= MAX_BATCH_BYTES
                        })
                        .count()
                        .max(1);
                st.1.drain(..n).collect()
            };
            let batch = StoreBatch {
                requests: units
                    .iter()
                    .flat_map(|u| u.requests.iter().cloned())
                    .collect(),
            };
            // A follower with only its own writes sends them straight to the leader.
            let forward_only = !self.is_leader() && units.iter().all(|u| !u.local);
            let res = if forward_only {
                Err(Error::NoLeader(None))
            } else {
                self.propose_local(batch).await
            };
            match res {
                Ok(resp) => deliver(units, resp),
                Err(Error::NoLeader(_)) => {
                    // Not the leader: forwarded units go back to their sender, this member's
                    // own writes go to the leader.
                    let (local, own): (Vec<Unit>, Vec<Unit>) =
                        units.into_iter().partition(|u| u.local);
                    for u in local {
                        let _ = u.tx.send(Err(Error::NoLeader(None)));
                    }
                    if own.is_empty() {
                        continue;
                    }
                    let batch = StoreBatch {
                        requests: own
                            .iter()
                            .flat_map(|u| u.requests.iter().cloned())
                            .collect(),
                    };
                    match self.propose(batch).await {
                        Ok(resp) => deliver(own, resp),
                        Err(e) => fail(own, e),
                    }
                }
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
                None => self.inner.raft.client_write(Request(batch.clone())).await,
            };
            match res {
                Ok(resp) => return Ok(resp.data.0),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let (Some(lid), Some(node)) = (f.leader_id, f.leader_node) {
                        if lid != self.inner.id {
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
                                    self.wait_for_new_leader(lid, deadline).await?;
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

    /// Proposes an entry on this member, or fails with [`Error::NoLeader`] when it is not
    /// the leader.
    pub(crate) async fn propose_local(&self, batch: StoreBatch) -> Result<StoreBatchResponse> {
        match self.inner.raft.client_write(Request(batch)).await {
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
