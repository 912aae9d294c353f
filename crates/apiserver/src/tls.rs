//! TLS for the API port (rustls through tonic), and the identity in a client certificate.

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

/// The common name and organizations of the first (the client's own) certificate. The
/// TLS layer has already verified it against the client CA.
pub fn subject_of(
    certs: Option<&[tonic::transport::CertificateDer<'static>]>,
) -> Option<(String, Vec<String>)> {
    let der = certs?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some((cn, orgs))
}
