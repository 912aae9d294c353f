//! The agent's streaming calls: interactive exec and attach ([`session`], [`attach`]) and
//! port forwarding ([`port_forward`]), each one gRPC stream per session or connection.
//! The caller was verified by [`crate::server`] before any of this runs.

pub(crate) mod attach;
pub(crate) mod port_forward;
pub(crate) mod session;

use tonic::Status;

use crate::runtime::Error;

/// A runtime error as the apiserver passes it on.
pub(crate) fn status(e: Error) -> Status {
    match e {
        Error::NotFound(m) => Status::not_found(format!("{m} not found")),
        Error::Unsupported(m) | Error::Config(m) => Status::failed_precondition(m),
        Error::Io(m) => Status::internal(m),
    }
}
