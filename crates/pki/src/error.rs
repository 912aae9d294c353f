//! Errors of the PKI. None is retryable: each names bad input or a broken key.

/// An error building a key, a certificate or a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster token is malformed or too weak; `reason` says which.
    #[error("token: {0}")]
    Token(String),
    /// A certificate could not be built or signed.
    #[error("certificate {what}: {source}")]
    Certificate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    /// A TLS configuration was refused by rustls.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A PEM or DER input did not parse.
    #[error("{what}: {reason}")]
    Parse { what: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn cert(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> Error {
        let what = what.into();
        move |source| Error::Certificate { what, source }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
