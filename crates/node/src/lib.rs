//! node: what runs on every worker — the kubelet ([`kubelet`]) and the container runtime
//! it drives ([`runtime`]), the service proxy ([`proxy`]), and the agent API the apiserver
//! calls for logs, exec, attach and port-forward ([`server`]). [`run`] wires the kubelet
//! and the agent API into one future. What they read from the machine comes through
//! [`host`]; what they fail with is one [`Error`].
//!
//! A node agent is a gRPC client of the control plane: it reaches the apiserver only
//! through the `client` crate and never depends on `apiserver` or `raft-store`.

pub mod agent;
pub mod certs;
pub mod dns;
mod error;
pub mod host;
pub mod kubelet;
pub mod proxy;
pub mod runtime;
pub mod server;
mod streaming;

pub use agent::run;
pub use error::{Error, Result};
