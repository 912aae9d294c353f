//! The Cluster service: the control-plane members and their state.

use std::sync::Arc;

use rkube_proto::api::cluster_server::Cluster;
use rkube_proto::api::*;
use rkube_proto::etcd;
use tonic::{Request, Response, Status};

use crate::handler::Api;

#[derive(Clone)]
pub struct ClusterService {
    pub api: Arc<Api>,
}

impl ClusterService {
    /// Membership changes are for administrators (`system:masters`) only.
    async fn require_admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let user = self.api.user(req).await.map_err(Status::from)?;
        if user.groups.iter().any(|g| g == pki::MASTERS_GROUP) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "user {:?} may not change the cluster's membership: system:masters only",
            user.name
        )))
    }

    fn members(&self) -> MembersResponse {
        let store = &self.api.store;
        MembersResponse {
            members: store
                .members()
                .into_iter()
                .map(|m| Member {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_ur_ls,
                    client_urls: m.client_ur_ls,
                    is_learner: m.is_learner,
                })
                .collect(),
            leader_id: store.leader().unwrap_or(0),
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn members(
        &self,
        _: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        Ok(Response::new(ClusterService::members(self)))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let store = &self.api.store;
        let st = store.status();
        Ok(Response::new(StatusResponse {
            member_id: store.id(),
            name: store.name().to_string(),
            leader_id: st.leader,
            raft_term: st.raft_term,
            raft_index: st.raft_index,
            raft_applied_index: st.raft_applied_index,
            revision: store.revision(),
            compact_revision: store.compact_revision(),
            db_size: st.db_size,
            version: env!("CARGO_PKG_VERSION").to_string(),
            cluster_id: store.cluster_id(),
            cached_objects: self.api.cache.len() as i64,
        }))
    }

    async fn add_member(
        &self,
        req: Request<AddMemberRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        self.require_admin(&req).await?;
        let r = req.into_inner();
        if r.peer_url.is_empty() {
            return Err(Status::invalid_argument("peer_url: Required value"));
        }
        self.api
            .store
            .member_add(etcd::MemberAddRequest {
                peer_ur_ls: vec![r.peer_url],
                is_learner: false,
            })
            .await
            .map_err(|e| Status::new(e.code(), e.to_string()))?;
        Ok(Response::new(ClusterService::members(self)))
    }

    async fn remove_member(
        &self,
        req: Request<RemoveMemberRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        self.require_admin(&req).await?;
        let r = req.into_inner();
        let id = if r.id != 0 {
            r.id
        } else {
            self.api
                .store
                .members()
                .into_iter()
                .find(|m| m.name == r.name)
                .map(|m| m.id)
                .ok_or_else(|| Status::not_found(format!("member {:?} not found", r.name)))?
        };
        self.api
            .store
            .member_remove(etcd::MemberRemoveRequest { id })
            .await
            .map_err(|e| Status::new(e.code(), e.to_string()))?;
        Ok(Response::new(ClusterService::members(self)))
    }
}
