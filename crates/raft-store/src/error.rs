//! The error type of raft-store.

use tonic::{Code, Status};

/// Errors of the store. Each says whether a client may retry it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or over a limit. Not retryable.
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// The requested revision was compacted away. Not retryable at that revision.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted { compact_revision: i64 },
    /// The requested revision is newer than the store's. Retryable later.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// The lease does not exist. Not retryable.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// No leader is known right now, or it could not be reached. Retryable.
    #[error("etcdserver: no leader{}", .0.as_ref().map(|h| format!(" (last known leader {h})")).unwrap_or_default())]
    NoLeader(Option<String>),
    /// The request was not served in time. Retryable.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// A write was proposed, and leadership changed before its outcome was known: it may
    /// or may not have been applied (etcd's answer in the same case).
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    Unknown,
    /// The cluster configuration rejected a membership change. Not retryable as is.
    #[error("etcdserver: {0}")]
    Membership(String),
    /// RocksDB or encoding failed. Not retryable.
    #[error("storage: {0}")]
    Storage(String),
    /// The store is shutting down. Retryable on another member.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// An error returned by the leader a request was forwarded to.
    #[error("{0}")]
    Remote(Status),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// The gRPC code etcd uses for this error, so etcd clients react as they do to etcd.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::Compacted { .. } | Error::FutureRevision => Code::OutOfRange,
            Error::LeaseNotFound => Code::NotFound,
            Error::NoLeader(_) | Error::Stopped => Code::Unavailable,
            Error::Timeout | Error::Unknown => Code::Unavailable,
            Error::Membership(_) => Code::FailedPrecondition,
            Error::Storage(_) => Code::Internal,
            Error::Remote(s) => s.code(),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::Remote(s) => s,
            e => Status::new(e.code(), e.to_string()),
        }
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(e.to_string())
    }
}
