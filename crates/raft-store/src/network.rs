//! The Raft transport over tonic gRPC, on the member's peer port.
//!
//! Raft messages are postcard-encoded openraft types inside a `Payload`; the same service
//! carries the requests a follower forwards to the leader (see [`crate::store`]). With a
//! member certificate, every connection is mutual TLS: members present their certificate
//! and expect [`pki::MEMBER_SERVER_NAME`] in the peer's, whatever address they dial.

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

/// Connections to peers. Raft's replication streams and votes have connections of their
/// own, made (and driven) on the Raft runtime, so that forwarded requests — large batches,
/// on the main runtime — never queue a heartbeat behind them.
#[derive(Clone, Default)]
pub struct Peers {
    /// For forwarded requests.
    channels: Arc<Mutex<Channels>>,
    /// For Raft's own messages.
    raft: Arc<Mutex<Channels>>,
    /// Where to dial a member instead of its advertised address (a proxy or NAT between).
    dial: Arc<HashMap<String, String>>,
    /// This member's certificate; `None` only under `--insecure-peer-plaintext`.
    tls: Option<Arc<pki::RenewingCert>>,
    /// Largest message sent or accepted.
    max_message: usize,
}

#[derive(Default)]
struct Channels {
    by_addr: HashMap<String, Channel>,
    /// The certificate generation the channels were made with.
    generation: u64,
}

impl Peers {
    /// Peers dialled through `dial` (advertised address → address to connect to), over
    /// mutual TLS with `tls`, with messages up to `max_message` bytes.
    pub fn new(
        dial: HashMap<String, String>,
        tls: Option<Arc<pki::RenewingCert>>,
        max_message: usize,
    ) -> Self {
        Peers {
            channels: Default::default(),
            raft: Default::default(),
            dial: Arc::new(dial),
            tls,
            max_message,
        }
    }

    /// A client of the peer service at `addr` (`host:port`); connects lazily and reconnects
    /// by itself. After a certificate renewal, new connections present the new one.
    pub fn client(&self, addr: &str) -> RaftPeerClient<Channel> {
        self.client_in(&self.channels, addr)
    }

    fn client_in(&self, channels: &Mutex<Channels>, addr: &str) -> RaftPeerClient<Channel> {
        let mut map = channels.lock();
        let generation = self.tls.as_ref().map_or(0, |t| t.generation());
        if map.generation != generation {
            map.by_addr.clear();
            map.generation = generation;
        }
        let ch = map
            .by_addr
            .entry(addr.to_string())
            .or_insert_with(|| self.channel(addr))
            .clone();
        RaftPeerClient::new(ch)
            .max_decoding_message_size(self.max_message)
            .max_encoding_message_size(self.max_message)
    }

    fn channel(&self, addr: &str) -> Channel {
        let dial = self.dial.get(addr).map_or(addr, |a| a.as_str());
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoint = match Endpoint::from_shared(format!("{scheme}://{dial}")) {
            Ok(e) => e,
            Err(e) => {
                // Addresses are checked when members are added; a bad one here reaches no
                // one, and the calls through it fail as unreachable.
                tracing::error!(peer = dial, error = %e, "peer address is not host:port");
                Endpoint::from_static("http://invalid.invalid:1")
            }
        };
        let endpoint = match &self.tls {
            Some(t) => match endpoint.tls_config(t.client_tls(pki::MEMBER_SERVER_NAME)) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(peer = dial, error = %e, "peer TLS configuration refused");
                    Endpoint::from_static("http://invalid.invalid:1")
                }
            },
            None => endpoint,
        };
        endpoint
            .connect_timeout(std::time::Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(std::time::Duration::from_secs(5))
            .connect_lazy()
    }

    pub fn max_message(&self) -> usize {
        self.max_message
    }
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerNetwork {
        PeerNetwork {
            target,
            client: self.client_in(&self.raft, &node.peer_addr),
            max_message: self.max_message,
        }
    }
}

/// The Raft connection to one peer.
pub struct PeerNetwork {
    target: NodeId,
    client: RaftPeerClient<Channel>,
    max_message: usize,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>>;

impl PeerNetwork {
    async fn call<Resp, E>(
        &mut self,
        which: Rpc,
        payload: Payload,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
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

fn payload<T: Serialize>(req: &T) -> Payload {
    Payload {
        data: encode(req).into(),
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
        let payload = payload(&rpc);
        // The receiver refuses messages over the limit; a smaller batch would pass.
        if payload.data.len() > self.max_message {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint((n / 2).max(1)),
            ));
        }
        let budget = option.hard_ttl() * 4 / 5;
        match tokio::time::timeout(budget, self.call(Rpc::Append, payload, &option)).await {
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
        self.call(Rpc::Snapshot, payload(&rpc), &option).await
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
        self.call(Rpc::Vote, payload(&rpc), &option).await
    }
}
