//! etcd's Cluster and Maintenance services.

use rkube_proto::etcd::cluster_server::Cluster;
use rkube_proto::etcd::maintenance_server::Maintenance;
use rkube_proto::etcd::*;
use tonic::{Request, Response, Status};

use super::EtcdService;

#[tonic::async_trait]
impl Cluster for EtcdService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let mut r = self.store.member_add(req.into_inner()).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let mut r = self.store.member_remove(req.into_inner()).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if req.get_ref().linearizable {
            self.store.read_barrier().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(None),
            members: self.store.members(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let mut r = self.store.member_promote(req.into_inner()).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }
}

#[tonic::async_trait]
impl Maintenance for EtcdService {
    async fn alarm(&self, _: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        // rkube raises no alarms: RocksDB has no fixed space quota to exhaust.
        Ok(Response::new(AlarmResponse {
            header: self.header(None),
            alarms: Vec::new(),
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let mut r = self.store.status();
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.store.defragment().await?;
        Ok(Response::new(DefragmentResponse {
            header: self.header(None),
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let (hash, compact) = self.store.hash_kv(req.get_ref().revision)?;
        Ok(Response::new(HashKvResponse {
            header: self.header(None),
            hash,
            compact_revision: compact,
        }))
    }

    async fn move_leader(
        &self,
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Status::unimplemented(
            "move-leader is not supported by rkube",
        ))
    }
}
