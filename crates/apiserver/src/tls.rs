//! TLS for the API port from files the operator provides (`--tls-cert-file`); the
//! cluster's own certificates come from the `pki` crate.

use std::path::PathBuf;
use std::sync::Arc;

/// Files of the serving certificate, and of the CA that signs client certificates.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients may authenticate with a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The rustls configuration of these files, offering `alpn`.
    pub fn rustls_config(&self, alpn: &[&[u8]]) -> Result<Arc<pki::rustls::ServerConfig>, String> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let ca = self.client_ca.as_ref().map(read).transpose()?;
        let cfg = crate::streaming::serve::server_config_from_pem(
            &read(&self.cert)?,
            &read(&self.key)?,
            ca.as_deref(),
        )?;
        let mut cfg = (*cfg).clone();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}
