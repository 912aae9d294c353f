//! The node agent's one error type: what the kubelet, the proxy and the agent API return
//! to their callers, each variant keeping the error it came from.

/// Why a node component could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file, socket or directory of the host; `what` names it (a path or a flag).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A host command (`nft`, `ip`) failed; `output` is what it said.
    #[error("{command}: {output}")]
    Command { command: String, output: String },
    /// A call to the control plane failed.
    #[error(transparent)]
    Api(#[from] client::Error),
    /// A call to the control plane failed; `what` names the call.
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: client::Error,
    },
    /// The container runtime failed.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::Error),
    /// A certificate could not be had or used.
    #[error(transparent)]
    Cert(#[from] crate::certs::CertError),
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// A stream or task the component cannot run without ended.
    #[error("{0} ended")]
    Ended(&'static str),
    /// `source`, in the light of what the caller was doing.
    #[error("{what}: {source}")]
    Context {
        what: String,
        #[source]
        source: Box<Error>,
    },
    /// A value from a flag, a manifest or the pod spec is not valid; `field` names it.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl Error {
    /// An I/O error on `what` (a path, an address or a flag with its value).
    pub fn io(what: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            what: what.to_string(),
            source,
        }
    }

    /// A failed call to the control plane: `what` names it.
    pub fn request(what: impl std::fmt::Display, source: client::Error) -> Self {
        Error::Request {
            what: what.to_string(),
            source,
        }
    }

    /// This error, behind what the caller was doing when it happened.
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        Error::Context {
            what: what.to_string(),
            source: Box::new(self),
        }
    }

    /// A value that is not valid: `field` names where it came from, `reason` says why.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
