//! rkube's public-key infrastructure: the cluster token, the cluster CA derived from it,
//! the certificates every component is issued, and the TLS configurations of every port.
//!
//! One secret (`--token`) on every founding member yields the same CA key on each of them
//! with no coordination, so every byte between members can be TLS from the first
//! connection. This crate knows nothing of Raft, of the store or of Kubernetes objects; it
//! depends on no other rkube crate.

mod ca;
mod csr;
mod dial;
mod discover;
mod error;
mod files;
mod identity;
mod incoming;
mod probe;
mod renew;
mod seal;
mod served;
mod token;

pub use ca::{ClusterCa, Issued, LeafSpec, Usage};
pub use csr::{ca_fingerprint, new_request, parse_request, validity_of, RequestInfo, Signed};
pub use dial::{dial_verified, Expected};
pub use discover::fetch_pinned_ca;
pub use error::{Error, Result};
pub use files::{restrict_dir, write_private};
pub use identity::{
    subject_of, Identity, ADMIN_USER, MASTERS_GROUP, MEMBERS_GROUP, MEMBER_SERVER_NAME,
};
pub use incoming::{tls_incoming, TlsIncoming};
pub use probe::{client_config, https_get};
pub use renew::{ClientAuth, RenewingCert};
/// The rustls this crate builds its configurations with.
pub use rustls;
pub use seal::{is_sealed, open, random_key, seal};
pub use served::ServedCert;
pub use token::ClusterToken;

/// The rustls crypto provider every rkube TLS endpoint uses (ring, so no C toolchain
/// beyond the one RocksDB already needs).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
