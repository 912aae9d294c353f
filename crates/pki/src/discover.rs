//! Finding the cluster CA from nothing but a token: a joining node fetches the CA from any
//! member's `/cacerts` without trusting the connection, then accepts it only if its
//! public key hashes to the fingerprint the token pins (k3s' and kubeadm's discovery).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, Result};

/// Accepts any server certificate (the handshake's signature is still checked): what
/// travels over this connection is verified by its content, never by the channel.
#[derive(Debug)]
struct ContentVerified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for ContentVerified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The CA PEM that the member at `addr` serves, if it hashes to `pin` (`sha256:<hex>` or
/// bare hex).
pub async fn fetch_pinned_ca(addr: SocketAddr, pin: &str) -> Result<String> {
    let provider = crate::provider();
    let cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ContentVerified(provider)))
        .with_no_client_auth();
    let io = |e: std::io::Error| Error::Tls(format!("fetching the CA from {addr}: {e}"));
    let resp = crate::https_get(addr, "/cacerts", Arc::new(cfg))
        .await
        .map_err(io)?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .filter(|_| resp.starts_with("HTTP/1.1 200"))
        .ok_or_else(|| {
            Error::Tls(format!(
                "{addr}/cacerts: {}",
                resp.lines().next().unwrap_or("no answer")
            ))
        })?;
    let want = pin.strip_prefix("sha256:").unwrap_or(pin);
    let got = crate::ca_fingerprint(body)?;
    if got.strip_prefix("sha256:") != Some(want) {
        return Err(Error::Token(format!(
            "the CA at {addr} is {got}, not the sha256:{want} the token pins: not this cluster, \
             or someone in between"
        )));
    }
    Ok(body.to_string())
}
