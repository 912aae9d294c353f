//! The Raft type configuration, declared once, with aliases for every generic type.

use std::fmt;
use std::io::Cursor;

use prost::Message;
use rkube_proto::raft::{StoreBatch, StoreBatchResponse};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A member's id: etcd's 64-bit member id, derived from the member's peer address.
pub type NodeId = u64;

/// What the cluster knows of a member: how to reach it for Raft traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's name (`n1`); empty for a member added but not started yet.
    pub name: String,
    /// `host:port` of the member's peer (Raft) listener.
    pub peer_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_addr)
    }
}

/// One Raft log entry's payload: a batch of writes. Carried in its protobuf encoding so the
/// log and the wire share one format.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request(pub StoreBatch);

/// The results of applying a [`Request`], one per write.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response(pub StoreBatchResponse);

macro_rules! serde_as_protobuf {
    ($t:ident, $inner:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde_bytes::Bytes::new(&self.0.encode_to_vec()).serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let buf = serde_bytes::ByteBuf::deserialize(d)?;
                <$inner>::decode(buf.as_slice())
                    .map($t)
                    .map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
    };
}
serde_as_protobuf!(Request, StoreBatch);
serde_as_protobuf!(Response, StoreBatchResponse);

openraft::declare_raft_types!(
    /// rkube's Raft type configuration.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
/// What `Raft::client_write` answers.
pub type ClientWriteResult = Result<
    openraft::raft::ClientWriteResponse<TypeConfig>,
    openraft::error::RaftError<NodeId, openraft::error::ClientWriteError<NodeId, Member>>,
>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type LogState = openraft::LogState<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Member>;

/// etcd-style member id of the member whose peer listener is `peer_addr`: FNV-1a, so every
/// member computes the same id from the same `--initial-cluster`.
pub fn member_id(peer_addr: &str) -> NodeId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in peer_addr.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // etcd ids are printed as hex and 0 means "none": keep them non-zero.
    h.max(1)
}
