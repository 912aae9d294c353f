//! The error type of the apiserver, mapped to gRPC codes as Kubernetes maps its status
//! reasons to HTTP codes.

use std::fmt;

use tonic::{Code, Status};

/// One problem with one field, rendered as Kubernetes renders field errors:
/// `spec.containers[0].image: Required value`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub path: String,
    pub kind: FieldErrorKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FieldErrorKind {
    Required,
    Invalid {
        value: String,
        detail: String,
    },
    Forbidden(String),
    Duplicate(String),
    NotSupported {
        value: String,
        supported: Vec<String>,
    },
    /// The JSON does not have the field's type.
    Type(String),
    TooLong(usize),
}

impl FieldError {
    pub fn required(path: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::Required,
        }
    }
    pub fn invalid(
        path: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::Invalid {
                value: value.to_string(),
                detail: detail.into(),
            },
        }
    }
    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::Forbidden(detail.into()),
        }
    }
    pub fn immutable(path: impl Into<String>, value: impl fmt::Display) -> Self {
        Self::invalid(path, value, "field is immutable")
    }
    pub fn duplicate(path: impl Into<String>, value: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::Duplicate(value.into()),
        }
    }
    pub fn not_supported(
        path: impl Into<String>,
        value: impl Into<String>,
        supported: &[&str],
    ) -> Self {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::NotSupported {
                value: value.into(),
                supported: supported.iter().map(|s| s.to_string()).collect(),
            },
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = if self.path.is_empty() {
            "<root>"
        } else {
            &self.path
        };
        match &self.kind {
            FieldErrorKind::Required => write!(f, "{p}: Required value"),
            FieldErrorKind::Invalid { value, detail } => {
                write!(f, "{p}: Invalid value: {value:?}: {detail}")
            }
            FieldErrorKind::Forbidden(d) => write!(f, "{p}: Forbidden: {d}"),
            FieldErrorKind::Duplicate(v) => write!(f, "{p}: Duplicate value: {v:?}"),
            FieldErrorKind::NotSupported { value, supported } => write!(
                f,
                "{p}: Unsupported value: {value:?}: supported values: {}",
                supported
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            FieldErrorKind::Type(d) => write!(f, "{p}: Invalid value: {d}"),
            FieldErrorKind::TooLong(max) => {
                write!(f, "{p}: Too long: may not be more than {max} bytes")
            }
        }
    }
}

/// Errors of the apiserver. Each variant says whether a client may retry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not retryable until the object exists.
    #[error("{resource} {name:?} not found")]
    NotFound { resource: String, name: String },
    /// Not retryable.
    #[error("{resource} {name:?} already exists")]
    AlreadyExists { resource: String, name: String },
    /// Retryable after reading the object again.
    #[error("Operation cannot be fulfilled on {resource} {name:?}: {reason}")]
    Conflict {
        resource: String,
        name: String,
        reason: String,
    },
    /// A server-side apply would change fields other managers own (Kubernetes' 409 with
    /// `FieldManagerConflict` causes: `(field, message)`). Retryable with `force`.
    #[error("{message}")]
    FieldConflicts {
        message: String,
        causes: Vec<(String, String)>,
    },
    /// The object failed validation. Not retryable as is.
    #[error("{kind} {name:?} is invalid: {}", join(.causes))]
    Invalid {
        kind: String,
        name: String,
        causes: Vec<FieldError>,
    },
    /// A malformed request. Not retryable as is.
    #[error("{0}")]
    BadRequest(String),
    /// The kind is not served. Retryable only once it is registered.
    #[error("the server could not find the requested resource: no kind {kind:?} is registered for version {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    /// The requested resourceVersion is no longer retained (Kubernetes' 410 Gone):
    /// list again, then watch from the list's version.
    #[error("Expired: too old resource version: {requested} ({oldest})")]
    Expired { requested: i64, oldest: i64 },
    /// Not retryable by this user.
    #[error("{0}")]
    Forbidden(String),
    /// Credentials are missing or wrong.
    #[error("Unauthorized: {0}")]
    Unauthorized(String),
    /// The request or object is over a size limit. Not retryable as is.
    #[error("Request entity too large: {0}")]
    TooLarge(String),
    /// A precondition of the operation does not hold. Not retryable as is.
    #[error("{0}")]
    Precondition(String),
    /// The store could not serve the request right now. Retryable.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a storage failure. Not retryable.
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

fn join(causes: &[FieldError]) -> String {
    match causes {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(kind: &str, name: &str, causes: Vec<FieldError>) -> Self {
        Error::Invalid {
            kind: kind.to_string(),
            name: name.to_string(),
            causes,
        }
    }

    /// The status reason Kubernetes uses for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotFound { .. } | Error::UnknownKind { .. } => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::Conflict { .. } | Error::FieldConflicts { .. } => "Conflict",
            Error::Invalid { .. } => "Invalid",
            Error::BadRequest(_) => "BadRequest",
            Error::Expired { .. } => "Expired",
            Error::Forbidden(_) => "Forbidden",
            Error::Unauthorized(_) => "Unauthorized",
            Error::TooLarge(_) => "RequestEntityTooLarge",
            Error::Precondition(_) => "Conflict",
            Error::Unavailable(_) => "ServiceUnavailable",
            Error::Internal(_) => "InternalError",
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::NotFound { .. } | Error::UnknownKind { .. } => Code::NotFound,
            Error::AlreadyExists { .. } => Code::AlreadyExists,
            Error::Conflict { .. } | Error::FieldConflicts { .. } => Code::Aborted,
            Error::Invalid { .. } | Error::BadRequest(_) => Code::InvalidArgument,
            Error::Expired { .. } => Code::OutOfRange,
            Error::Forbidden(_) => Code::PermissionDenied,
            Error::Unauthorized(_) => Code::Unauthenticated,
            Error::TooLarge(_) => Code::ResourceExhausted,
            Error::Precondition(_) => Code::FailedPrecondition,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }

    pub fn conflict(resource: &str, name: &str) -> Self {
        Error::Conflict {
            resource: resource.to_string(),
            name: name.to_string(),
            reason: "the object has been modified; please apply your changes to the latest version and try again".into(),
        }
    }
}

/// The status reason travels in this metadata key, so clients can tell apart errors that
/// share a gRPC code.
pub const REASON_HEADER: &str = "x-rkube-reason";

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let mut s = Status::new(e.code(), e.to_string());
        if let Ok(v) = e.reason().parse() {
            s.metadata_mut().insert(REASON_HEADER, v);
        }
        s
    }
}

impl From<raft_store::Error> for Error {
    fn from(e: raft_store::Error) -> Error {
        use raft_store::Error as S;
        match e {
            S::Compacted { compact_revision } => Error::Expired {
                requested: 0,
                oldest: compact_revision,
            },
            S::NoLeader(_) | S::Timeout | S::Stopped => Error::Unavailable(e.to_string()),
            S::Remote(ref s) if s.code() == Code::Unavailable => Error::Unavailable(e.to_string()),
            S::InvalidArgument { .. } => Error::BadRequest(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}
