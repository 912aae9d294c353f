//! The error type of the client.

use tonic::Code;

/// Errors of client calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The apiserver answered with an error. Retryable when `code` is Unavailable, or
    /// Aborted (a Conflict: read again, then retry).
    #[error("{message} ({reason})")]
    Api {
        code: Code,
        /// Kubernetes' status reason: NotFound, AlreadyExists, Conflict, Invalid, Expired…
        reason: String,
        message: String,
    },
    /// No apiserver could be reached before the deadline. Retryable.
    #[error("no apiserver reachable: {0}")]
    Unreachable(String),
    /// An object did not decode into its type. Not retryable.
    #[error("decoding {kind}: {source}")]
    Decode {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
    /// The client configuration is unusable. Not retryable.
    #[error("client configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn from_status(s: &tonic::Status) -> Self {
        let reason = s
            .metadata()
            .get("x-rkube-reason")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Error::Api {
            code: s.code(),
            reason,
            message: s.message().to_string(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::Api { code, .. } => *code,
            Error::Unreachable(_) => Code::Unavailable,
            _ => Code::Internal,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Code::NotFound
    }

    pub fn is_forbidden(&self) -> bool {
        self.code() == Code::PermissionDenied
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Code::Aborted
    }

    pub fn is_already_exists(&self) -> bool {
        self.code() == Code::AlreadyExists
    }

    /// Kubernetes' 410 Gone: the resourceVersion is too old; list again.
    pub fn is_expired(&self) -> bool {
        self.code() == Code::OutOfRange
    }
}
