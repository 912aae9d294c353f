//! Cluster membership and member status of [`Store`]: etcd's Cluster and Maintenance
//! semantics on top of openraft's joint-consensus membership changes.

use std::collections::BTreeSet;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use rkube_proto::etcd::{Member as PbMember, *};

use super::{strip_scheme, Store};
use crate::error::{Error, Result};
use crate::log_store::{CF_LOGS, CF_RAFT};
use crate::mvcc::{CF_LEASES, CF_REVS, CF_SM_META};
use crate::types::{member_id, Member, NodeId};

/// How far behind (in log entries) a learner may be and still be promoted.
const PROMOTE_LAG: u64 = 1000;

fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            Error::NoLeader(f.leader_node.map(|n| n.to_string()))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            Error::Membership(c.to_string())
        }
        RaftError::Fatal(_) => Error::Stopped,
    }
}

impl Store {
    /// Every member, voters and learners, with what each published about itself.
    pub fn members(&self) -> Vec<PbMember> {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let attrs = self.inner.sm.mvcc.read().members.clone();
        membership
            .nodes()
            .map(|(id, node)| {
                let a = attrs.get(id);
                PbMember {
                    id: *id,
                    name: a.map_or_else(|| node.name.clone(), |a| a.name.clone()),
                    peer_ur_ls: vec![format!("http://{}", node.peer_addr)],
                    client_ur_ls: a.map(|a| a.client_urls.clone()).unwrap_or_default(),
                    is_learner: !voters.contains(id),
                }
            })
            .collect()
    }

    fn member(&self, id: NodeId) -> Result<PbMember> {
        self.members()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| Error::Membership(format!("member {id:x} not found")))
    }

    pub async fn member_add(&self, req: MemberAddRequest) -> Result<MemberAddResponse> {
        let url = req
            .peer_ur_ls
            .first()
            .ok_or_else(|| Error::invalid("peerURLs", "no peer URL given"))?;
        let addr = strip_scheme(url).to_string();
        if !self.is_leader() {
            return self
                .call_leader(|mut c| {
                    let req = req.clone();
                    async move { c.member_add(req).await }
                })
                .await;
        }
        let id = member_id(&addr);
        if self.members().iter().any(|m| m.id == id) {
            return Err(Error::Membership("Peer URLs already exists".into()));
        }
        let raft = &self.inner.raft;
        raft.add_learner(
            id,
            Member {
                name: String::new(),
                peer_addr: addr.clone(),
            },
            false,
        )
        .await
        .map_err(membership_error)?;
        if !req.is_learner {
            raft.change_membership(ChangeMembers::AddVoterIds([id].into()), true)
                .await
                .map_err(membership_error)?;
        }
        let members = self.members();
        Ok(MemberAddResponse {
            header: Some(self.header()),
            member: members.iter().find(|m| m.id == id).cloned(),
            members,
        })
    }

    pub async fn member_remove(&self, req: MemberRemoveRequest) -> Result<MemberRemoveResponse> {
        if !self.is_leader() {
            return self
                .call_leader(|mut c| async move { c.member_remove(req).await })
                .await;
        }
        let member = self.member(req.id)?;
        let change = if member.is_learner {
            ChangeMembers::RemoveNodes([req.id].into())
        } else {
            ChangeMembers::RemoveVoters([req.id].into())
        };
        self.inner
            .raft
            .change_membership(change, false)
            .await
            .map_err(membership_error)?;
        Ok(MemberRemoveResponse {
            header: Some(self.header()),
            members: self.members(),
        })
    }

    pub async fn member_promote(&self, req: MemberPromoteRequest) -> Result<MemberPromoteResponse> {
        if !self.is_leader() {
            return self
                .call_leader(|mut c| async move { c.member_promote(req).await })
                .await;
        }
        let member = self.member(req.id)?;
        if !member.is_learner {
            return Err(Error::Membership(
                "can only promote a learner member".into(),
            ));
        }
        let m = self.metrics();
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&req.id).cloned().flatten())
            .map_or(0, |l| l.index);
        if matched + PROMOTE_LAG < m.last_log_index.unwrap_or(0) {
            return Err(Error::Membership(
                "can only promote a learner member which is in sync with leader".into(),
            ));
        }
        self.inner
            .raft
            .change_membership(ChangeMembers::AddVoterIds([req.id].into()), true)
            .await
            .map_err(membership_error)?;
        Ok(MemberPromoteResponse {
            header: Some(self.header()),
            members: self.members(),
        })
    }

    /// etcd's Defragment: RocksDB has no free pages to give back, so this compacts every
    /// column family fully, dropping deleted and overwritten data from disk.
    pub async fn defragment(&self) -> Result<()> {
        let db = self.inner.sm.db.clone();
        tokio::task::spawn_blocking(move || {
            for cf in [CF_LOGS, CF_RAFT, CF_REVS, CF_LEASES, CF_SM_META] {
                if let Some(h) = db.cf_handle(cf) {
                    db.compact_range_cf(h, None::<&[u8]>, None::<&[u8]>);
                }
            }
        })
        .await
        .map_err(|e| Error::Storage(e.to_string()))
    }

    /// etcd's Maintenance.Status for this member.
    pub fn status(&self) -> StatusResponse {
        let m = self.metrics();
        let db = &self.inner.sm.db;
        let mut size = 0i64;
        for cf in [CF_LOGS, CF_RAFT, CF_REVS, CF_LEASES, CF_SM_META] {
            if let Some(h) = db.cf_handle(cf) {
                for p in [
                    "rocksdb.total-sst-files-size",
                    "rocksdb.cur-size-all-mem-tables",
                ] {
                    size += db.property_int_value_cf(h, p).ok().flatten().unwrap_or(0) as i64;
                }
            }
        }
        let is_learner = !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.inner.id);
        StatusResponse {
            header: Some(self.header()),
            version: "3.4.23".into(),
            db_size: size,
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map_or(0, |l| l.index),
            errors: Vec::new(),
            db_size_in_use: size,
            is_learner,
        }
    }
}
