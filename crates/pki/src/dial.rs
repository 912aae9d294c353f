//! Dialing a TLS server that must be one particular identity: the apiserver calling a
//! node agent checks the address (an IP SAN) and that the certificate names that node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{Error, Result};

/// The CA's verdict, then: the leaf's common name must be `expected_cn`.
#[derive(Debug)]
struct SubjectVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected_cn: String,
}

impl ServerCertVerifier for SubjectVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        match crate::subject_of(std::slice::from_ref(end_entity)) {
            Some((cn, _)) if cn == self.expected_cn => Ok(ServerCertVerified::assertion()),
            Some((cn, _)) => Err(rustls::Error::General(format!(
                "the server's certificate names {cn:?}, not {:?}",
                self.expected_cn
            ))),
            None => Err(rustls::Error::General(
                "the server's certificate names nobody".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Who to dial and what to expect of it.
pub struct Expected<'a> {
    pub ca_pem: &'a str,
    /// The client certificate and key (PEM) to present.
    pub identity: (&'a str, &'a str),
    /// The common name the server's certificate must carry.
    pub common_name: &'a str,
}

/// A gRPC channel to `addr` over TLS that accepts only a certificate from the CA that
/// carries `addr`'s IP and the expected common name.
pub async fn dial_verified(
    addr: SocketAddr,
    expected: Expected<'_>,
    timeout: Duration,
) -> Result<Channel> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    let ca =
        CertificateDer::from_pem_slice(expected.ca_pem.as_bytes()).map_err(|e| Error::Parse {
            what: "CA".into(),
            reason: e.to_string(),
        })?;
    roots.add(ca).map_err(|e| Error::Tls(format!("CA: {e}")))?;
    let inner = WebPkiServerVerifier::builder_with_provider(roots.into(), crate::provider())
        .build()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let base = crate::client_config(expected.ca_pem, Some(expected.identity))?;
    let mut cfg: ClientConfig = (*base).clone();
    cfg.dangerous()
        .set_certificate_verifier(Arc::new(SubjectVerifier {
            inner,
            expected_cn: expected.common_name.to_string(),
        }));
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name = ServerName::IpAddress(addr.ip().into());
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::Tls(e.to_string()))?
        .connect_timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (connector, name) = (connector.clone(), name.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            Error::Tls(msg)
        })
}
