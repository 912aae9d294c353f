//! TLS for the API port from files the operator provides (`--tls-cert-file`); the
//! cluster's own certificates come from the `pki` crate.

use std::path::PathBuf;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Files of the serving certificate, and of the CA that signs client certificates.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients may authenticate with a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    pub fn server_config(&self) -> Result<ServerTlsConfig, String> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut cfg = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?));
        if let Some(ca) = &self.client_ca {
            cfg = cfg
                .client_ca_root(Certificate::from_pem(read(ca)?))
                .client_auth_optional(true);
        }
        Ok(cfg)
    }
}
