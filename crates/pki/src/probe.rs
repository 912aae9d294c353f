//! A one-shot HTTPS GET, for health checks of TLS ports (`rkube up`, tests).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// A rustls client configuration that trusts `ca_pem` and presents `identity` (a
/// certificate and key, PEM) if given.
pub fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<Arc<ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let parse = |what: &str, e: rustls::pki_types::pem::Error| Error::Parse {
        what: what.into(),
        reason: e.to_string(),
    };
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| parse("CA", e))?)
            .map_err(|e| Error::Tls(format!("CA: {e}")))?;
    }
    let b = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let cfg = match identity {
        Some((cert, key)) => {
            let cert = CertificateDer::from_pem_slice(cert.as_bytes())
                .map_err(|e| parse("certificate", e))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| parse("key", e))?;
            b.with_client_auth_cert(vec![cert], key)
                .map_err(|e| Error::Tls(e.to_string()))?
        }
        None => b.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// One HTTPS/1.1 GET of `path` at `addr` (its IP is the expected server name); the whole
/// response, headers included.
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    tls: Arc<ClientConfig>,
) -> std::io::Result<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut s = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    // A server may close without a TLS close_notify; what arrived is the response.
    let _ = s.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
