//! The peer gRPC service: Raft RPCs in, and requests other members forward to this one.

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use rkube_proto::etcd::*;
use rkube_proto::raft::raft_peer_server::RaftPeer;
use rkube_proto::raft::{
    Payload, ReadIndexRequest, ReadIndexResponse, StoreBatch, StoreBatchResponse,
};
use tonic::{Request, Response, Status};

use super::Store;
use crate::codec::{decode, encode};
use crate::types::{NodeId, TypeConfig};

pub(crate) struct PeerService {
    pub store: Store,
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
        reply(&self.store.inner.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: VoteRequest<NodeId> = decode(&req.into_inner().data).map_err(bad_payload)?;
        reply(&self.store.inner.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> =
            decode(&req.into_inner().data).map_err(bad_payload)?;
        reply(&self.store.inner.raft.install_snapshot(rpc).await)
    }

    async fn forward(
        &self,
        req: Request<StoreBatch>,
    ) -> Result<Response<StoreBatchResponse>, Status> {
        match self.store.propose_forwarded(req.into_inner()).await {
            Ok(r) => Ok(Response::new(r)),
            // Not proposed here: the sender may safely retry with the new leader.
            Err(crate::Error::NoLeader(_)) => Err(Status::unavailable(super::NOT_LEADER)),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_index(
        &self,
        _: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        match self.store.read_index().await {
            Ok(index) => Ok(Response::new(ReadIndexResponse { index })),
            Err(crate::Error::NoLeader(_)) => Err(Status::unavailable(super::NOT_LEADER)),
            Err(e) => Err(e.into()),
        }
    }

    async fn lease_keep_alive(
        &self,
        req: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        Ok(Response::new(
            self.store.lease_keep_alive(req.into_inner().id).await?,
        ))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        Ok(Response::new(
            self.store.lease_time_to_live(req.into_inner()).await?,
        ))
    }

    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        Ok(Response::new(
            self.store.member_add(req.into_inner()).await?,
        ))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        Ok(Response::new(
            self.store.member_remove(req.into_inner()).await?,
        ))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        if !self.store.is_leader() {
            return Err(Status::unavailable(super::NOT_LEADER));
        }
        Ok(Response::new(
            self.store.member_promote(req.into_inner()).await?,
        ))
    }
}
