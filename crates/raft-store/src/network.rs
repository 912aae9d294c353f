//! The Raft transport over tonic gRPC, on the member's peer port.
//!
//! Raft messages are postcard-encoded openraft types inside a `Payload`; the same service
//! carries the requests a follower forwards to the leader (see [`crate::store`]).

use std::collections::HashMap;
use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use rkube_proto::raft::raft_peer_client::RaftPeerClient;
use rkube_proto::raft::Payload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::codec::{decode, encode};
use crate::types::{Member, NodeId, TypeConfig};

/// Connections to peers, shared by every Raft replication stream and by request forwarding.
#[derive(Clone, Default)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Where to dial a member instead of its advertised address (a proxy or NAT between).
    dial: Arc<HashMap<String, String>>,
}

impl Peers {
    /// Peers dialled through `dial` (advertised address → address to connect to).
    pub fn with_dial_overrides(dial: HashMap<String, String>) -> Self {
        Peers {
            channels: Default::default(),
            dial: Arc::new(dial),
        }
    }

    /// A client of the peer service at `addr` (`host:port`); connects lazily and reconnects
    /// by itself.
    pub fn client(&self, addr: &str) -> RaftPeerClient<Channel> {
        let mut map = self.channels.lock();
        let ch = map
            .entry(addr.to_string())
            .or_insert_with(|| {
                let addr = self.dial.get(addr).map_or(addr, |a| a.as_str());
                Endpoint::from_shared(format!("http://{addr}"))
                    .expect("peer address is host:port")
                    .connect_timeout(std::time::Duration::from_millis(500))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(std::time::Duration::from_secs(5))
                    .connect_lazy()
            })
            .clone();
        RaftPeerClient::new(ch)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerNetwork {
        PeerNetwork {
            target,
            client: self.client(&node.peer_addr),
        }
    }
}

/// The Raft connection to one peer.
pub struct PeerNetwork {
    target: NodeId,
    client: RaftPeerClient<Channel>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>>;

impl PeerNetwork {
    async fn call<Req, Resp, E>(
        &mut self,
        which: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = Payload {
            data: encode(req).into(),
        };
        let fut = async {
            match which {
                Rpc::Append => self.client.append_entries(payload).await,
                Rpc::Vote => self.client.vote(payload).await,
                Rpc::Snapshot => self.client.install_snapshot(payload).await,
            }
        };
        let resp = match tokio::time::timeout(option.hard_ttl(), fut).await {
            Err(elapsed) => return Err(RPCError::Unreachable(Unreachable::new(&elapsed))),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)))
            }
            Ok(Err(status)) => return Err(RPCError::Network(NetworkError::new(&status))),
            Ok(Ok(r)) => r.into_inner(),
        };
        let decoded: Result<Resp, RaftError<NodeId, E>> =
            decode(&resp.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        // openraft gives an AppendEntries one heartbeat interval and then resends the same
        // entries. A batch too large for that would be resent forever, so a slow batch is
        // reported as too large before that deadline, and openraft halves the next one.
        let n = rpc.entries.len() as u64;
        let budget = option.hard_ttl() * 4 / 5;
        match tokio::time::timeout(budget, self.call(Rpc::Append, &rpc, &option)).await {
            Ok(res) => res,
            Err(_) if n > 1 => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(n / 2),
            )),
            Err(elapsed) => Err(RPCError::Unreachable(Unreachable::new(&elapsed))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    /// Retries an unreachable peer at heartbeat pace rather than openraft's default 500 ms:
    /// a restarted member must hear from the leader before its election timeout, or it
    /// would start an election and depose a healthy leader.
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(std::time::Duration::from_millis(20)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
