//! A serving certificate that arrives later and is replaced while serving: a node agent's,
//! signed through a CertificateSigningRequest and renewed the same way.

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::error::{Error, Result};
use crate::renew::{client_verifier, ClientAuth};

/// The certificate a port serves now; until the first one is set, handshakes fail.
#[derive(Debug, Default)]
pub struct ServedCert {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

fn parse_err(what: &str) -> impl FnOnce(rustls::pki_types::pem::Error) -> Error + '_ {
    move |e| Error::Parse {
        what: what.into(),
        reason: e.to_string(),
    }
}

impl ServedCert {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Serves `cert_pem` (the leaf first) with `key_pem` from the next handshake on.
    pub fn set(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        use rustls::pki_types::pem::PemObject;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(parse_err("certificate"))?;
        if chain.is_empty() {
            return Err(Error::Parse {
                what: "certificate".into(),
                reason: "no CERTIFICATE block".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(parse_err("key"))?;
        let signer = crate::provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| Error::Tls(format!("loading the key: {e}")))?;
        *self.current.write() = Some(Arc::new(CertifiedKey::new(chain, signer)));
        Ok(())
    }

    pub fn is_set(&self) -> bool {
        self.current.read().is_some()
    }

    /// A server configuration serving the current certificate and verifying client
    /// certificates against `ca_pem`.
    pub fn server_config(
        self: &Arc<Self>,
        ca_pem: &str,
        auth: ClientAuth,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>> {
        use rustls::pki_types::pem::PemObject;
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(parse_err("CA"))?;
        let mut cfg = ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_client_cert_verifier(client_verifier(ca, auth)?)
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for ServedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().clone()
    }
}
