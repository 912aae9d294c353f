//! Serving a router with HTTP/1.1 upgrades: tonic's server hands connections to hyper
//! without upgrade support, so an upgraded exec or port-forward would never get its
//! connection. This serves the same router (gRPC and REST, HTTP/1.1 and HTTP/2 by
//! preface) on hyper-util's automatic builder with upgrades, and gives each request its
//! connection's info (`TcpConnectInfo`, or `TlsConnectInfo` with the peer's
//! certificates) as tonic does, so authentication reads it the same way.

use std::convert::Infallible;

use futures::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::server::Connected;
use tower::ServiceExt;

/// Serves `router` on every connection `incoming` yields, until it ends.
pub async fn serve_with_upgrades<I, IO, E>(incoming: I, router: axum::Router)
where
    I: Stream<Item = Result<IO, E>>,
    E: std::fmt::Display,
    IO: Connected + AsyncRead + AsyncWrite + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    futures::pin_mut!(incoming);
    while let Some(io) = incoming.next().await {
        let io = match io {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a connection failed");
                continue;
            }
        };
        let info = io.connect_info();
        let router = router.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(info.clone());
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(axum::body::Body::new)).await;
                Ok::<_, Infallible>(resp.unwrap_or_else(|e| match e {}))
            }
        });
        let builder = builder.clone();
        tokio::spawn(async move {
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(io), svc)
                .await
            {
                tracing::debug!(error = %e, "serving a connection ended");
            }
        });
    }
}

/// A TLS server configuration from PEM files an operator provides (`--tls-cert-file`,
/// `--tls-private-key-file`, an optional client CA whose certificates then authenticate),
/// offering HTTP/2 and HTTP/1.1, for [`serve_with_upgrades`] over [`pki::tls_incoming`].
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<std::sync::Arc<pki::rustls::ServerConfig>, String> {
    use pki::rustls::pki_types::pem::PemObject;
    use pki::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use pki::rustls::server::WebPkiClientVerifier;
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the serving certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the serving certificate's key: {e}"))?;
    let builder = pki::rustls::ServerConfig::builder_with_provider(pki::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca_pem {
        Some(ca) => {
            let mut roots = pki::rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca) {
                let c = c.map_err(|e| format!("the client CA: {e}"))?;
                roots.add(c).map_err(|e| format!("the client CA: {e}"))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.into(), pki::provider())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| format!("the client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("the serving certificate: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_files_make_a_server_configuration() {
        let token = pki::ClusterToken::generate().unwrap();
        let ca = pki::ClusterCa::from_token(&token).unwrap();
        let leaf = ca
            .issue(&pki::LeafSpec {
                common_name: "apiserver".into(),
                organizations: vec![],
                sans: vec!["127.0.0.1".into()],
                usage: pki::Usage::Server,
                validity: std::time::Duration::from_secs(60),
            })
            .unwrap();
        let (cert, key) = (leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes());
        let ca_pem = ca.cert_pem().as_bytes();
        let cfg = server_config_from_pem(cert, key, Some(ca_pem)).unwrap();
        assert_eq!(cfg.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        server_config_from_pem(cert, key, None).unwrap();
        let e = server_config_from_pem(b"", key, None).unwrap_err();
        assert!(e.contains("serving certificate"), "{e}");
        let e = server_config_from_pem(cert, b"nope", None).unwrap_err();
        assert!(e.contains("key"), "{e}");
    }
}
