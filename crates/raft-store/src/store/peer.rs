//! The peer gRPC service: Raft RPCs in, and requests other members forward to this one.
//!
//! Members are not Byzantine, but bugs and operators are: every message has a size limit,
//! and a Raft message whose term lies implausibly far ahead is refused before openraft
//! sees it (a term of 2^64-1 once made openraft panic, and the persisted vote made every
//! restart panic again).

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use rkube_proto::etcd::*;
use rkube_proto::raft::raft_peer_server::RaftPeer;
use rkube_proto::raft::raft_peer_server::RaftPeerServer;
use rkube_proto::raft::{
    Payload, ReadIndexRequest, ReadIndexResponse, StoreBatch, StoreBatchResponse,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use super::Store;
use crate::codec::{decode, encode};
use crate::error::{Error, Result};
use crate::types::{NodeId, TypeConfig};

/// How far ahead of this member's term a peer's term may be. Elections add one each; 2^32
/// of them is more than a century of elections every second, and keeps terms far from
/// overflow.
pub(crate) const MAX_TERM_STEP: u64 = 1 << 32;

pub(crate) struct PeerService {
    pub store: Store,
}

/// Serves the peer port on `rt` (the Raft runtime): mutual TLS with member certificates
/// when the member has one.
pub(crate) fn serve(
    store: Store,
    listener: std::net::TcpListener,
    rt: tokio::runtime::Handle,
) -> Result<JoinHandle<()>> {
    let max = store.inner.cfg.max_peer_message_bytes;
    let tls = match &store.inner.cfg.tls {
        Some(cert) => Some(
            cert.server_config(pki::ClientAuth::Required, &[b"h2"])
                .map_err(|e| Error::invalid("peer TLS", e.to_string()))?,
        ),
        None => {
            tracing::warn!("the peer port is plaintext and unauthenticated (--insecure-plaintext)");
            None
        }
    };
    let svc = RaftPeerServer::new(PeerService { store })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let svc = tonic::service::interceptor::InterceptedService::new(svc, only_members);
    Ok(rt.spawn(async move {
        // Registered with the Raft runtime's reactor, which drives its connections.
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "peer listener");
                return;
            }
        };
        let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
        let router = builder.add_service(svc);
        let served = match tls {
            Some(cfg) => {
                router
                    .serve_with_incoming(pki::tls_incoming(listener, cfg))
                    .await
            }
            None => {
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                router.serve_with_incoming(incoming).await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "peer listener stopped");
        }
    }))
}

/// On a TLS peer port, only certificates of the members' group pass (the TLS layer has
/// verified them against the cluster CA). A plaintext port has no certificates to check.
fn only_members(req: Request<()>) -> Result<Request<()>, Status> {
    let Some(certs) = req.peer_certs() else {
        return Ok(req);
    };
    match pki::Identity::of(&certs) {
        Some(id) if id.in_group(pki::MEMBERS_GROUP) => Ok(req),
        Some(id) => Err(Status::permission_denied(format!(
            "{} is not a member of this cluster: the peer port takes member certificates only",
            id.user
        ))),
        None => Err(Status::unauthenticated("no client certificate")),
    }
}

impl PeerService {
    /// Refuses a term more than [`MAX_TERM_STEP`] ahead of this member's.
    fn check_term(&self, what: &str, term: u64) -> Result<(), Status> {
        let own = self.store.term();
        if term > own.saturating_add(MAX_TERM_STEP) {
            tracing::warn!(
                rpc = what,
                term,
                own,
                "refused a peer message with an implausible term"
            );
            return Err(Status::invalid_argument(format!(
                "{what}: term {term} is more than {MAX_TERM_STEP} ahead of this member's term {own}"
            )));
        }
        Ok(())
    }
}

impl PeerService {
    /// Runs `work` on the member's main runtime: requests forwarded by other members are
    /// client work, kept off the Raft runtime that serves this port.
    async fn on_main<T, F, Fut>(&self, work: F) -> Result<T, Status>
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
        T: Send + 'static,
    {
        let task = work(self.store.clone());
        self.store
            .inner
            .main
            .spawn(task)
            .await
            .map_err(|e| Status::internal(format!("forwarded request: {e}")))?
    }
}

fn bad_payload(e: postcard::Error) -> Status {
    Status::invalid_argument(format!("payload: {e}"))
}

fn reply<T: serde::Serialize>(v: &T) -> Result<Response<Payload>, Status> {
    Ok(Response::new(Payload {
        data: encode(v).into(),
    }))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode(&req.into_inner().data).map_err(bad_payload)?;
        self.check_term("AppendEntries", rpc.vote.leader_id().term)?;
        reply(&self.store.inner.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: VoteRequest<NodeId> = decode(&req.into_inner().data).map_err(bad_payload)?;
        self.check_term("Vote", rpc.vote.leader_id().term)?;
        reply(&self.store.inner.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> =
            decode(&req.into_inner().data).map_err(bad_payload)?;
        self.check_term("InstallSnapshot", rpc.vote.leader_id().term)?;
        reply(&self.store.inner.raft.install_snapshot(rpc).await)
    }

    async fn forward(
        &self,
        req: Request<StoreBatch>,
    ) -> Result<Response<StoreBatchResponse>, Status> {
        // Not the leader: refused at once, not queued behind this member's own writes.
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        let batch = req.into_inner();
        self.on_main(|store| async move {
            match store.propose_forwarded(batch).await {
                Ok(r) => Ok(Response::new(r)),
                // Not proposed here: the sender may safely retry with the new leader.
                Err(crate::Error::NoLeader(_)) => Err(Status::unavailable(super::NOT_LEADER)),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn read_index(
        &self,
        _: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        self.on_main(|store| async move {
            match store.read_index().await {
                Ok(index) => Ok(Response::new(ReadIndexResponse { index })),
                Err(crate::Error::NoLeader(_)) => Err(Status::unavailable(super::NOT_LEADER)),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn lease_keep_alive(
        &self,
        req: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        let arg = req.into_inner().id;
        self.on_main(|store| async move { Ok(Response::new(store.lease_keep_alive(arg).await?)) })
            .await
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        let arg = req.into_inner();
        self.on_main(|store| async move { Ok(Response::new(store.lease_time_to_live(arg).await?)) })
            .await
    }

    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        let arg = req.into_inner();
        self.on_main(|store| async move { Ok(Response::new(store.member_add(arg).await?)) })
            .await
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        let arg = req.into_inner();
        self.on_main(|store| async move { Ok(Response::new(store.member_remove(arg).await?)) })
            .await
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        let arg = req.into_inner();
        self.on_main(|store| async move { Ok(Response::new(store.member_promote(arg).await?)) })
            .await
    }
}
