//! A certificate that renews itself before it expires, served to every new TLS
//! connection without a restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::task::JoinHandle;

use crate::ca::{ClusterCa, Issued, LeafSpec};
use crate::error::{Error, Result};

/// Whether a port asks its clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Verified when presented (the API port: bearer tokens are another way in).
    Optional,
    /// No connection without a certificate from the cluster CA (peer and etcd ports).
    Required,
}

struct Current {
    issued: Issued,
    key: Arc<CertifiedKey>,
    generation: u64,
}

/// A leaf certificate from the cluster CA, reissued at two thirds of its lifetime.
pub struct RenewingCert {
    ca: Arc<ClusterCa>,
    spec: LeafSpec,
    current: RwLock<Current>,
}

impl std::fmt::Debug for RenewingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenewingCert")
            .field("common_name", &self.spec.common_name)
            .finish_non_exhaustive()
    }
}

fn certified(issued: &Issued) -> Result<Arc<CertifiedKey>> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.key_der.clone()));
    let signer = crate::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::Tls(format!("loading the issued key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(issued.cert_der.clone())],
        signer,
    )))
}

impl RenewingCert {
    /// Issues the first certificate for `spec`.
    pub fn new(ca: Arc<ClusterCa>, spec: LeafSpec) -> Result<Arc<Self>> {
        let issued = ca.issue(&spec)?;
        let key = certified(&issued)?;
        Ok(Arc::new(RenewingCert {
            ca,
            spec,
            current: RwLock::new(Current {
                issued,
                key,
                generation: 0,
            }),
        }))
    }

    pub fn ca(&self) -> &Arc<ClusterCa> {
        &self.ca
    }

    /// The certificate and key in use now.
    pub fn issued(&self) -> Issued {
        self.current.read().issued.clone()
    }

    /// Bumped at every renewal: holders of connections made with an older one may
    /// reconnect.
    pub fn generation(&self) -> u64 {
        self.current.read().generation
    }

    /// Issues a new certificate now.
    pub fn renew(&self) -> Result<()> {
        let issued = self.ca.issue(&self.spec)?;
        let key = certified(&issued)?;
        let mut cur = self.current.write();
        cur.generation += 1;
        cur.issued = issued;
        cur.key = key;
        Ok(())
    }

    /// Renews at two thirds of each certificate's lifetime until the task is aborted.
    pub fn spawn_renewal(self: &Arc<Self>) -> JoinHandle<()> {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(cert) = this.upgrade() else { return };
                let at = cert.current.read().issued.renew_at;
                drop(cert);
                let wait = at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
                let Some(cert) = this.upgrade() else { return };
                match cert.renew() {
                    Ok(()) => tracing::info!(cn = %cert.spec.common_name, "certificate renewed"),
                    Err(e) => {
                        tracing::error!(cn = %cert.spec.common_name, error = %e, "certificate renewal failed; retrying in a minute");
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            }
        })
    }

    /// A rustls server configuration serving this certificate (the current one at each
    /// handshake) that verifies client certificates against the cluster CA.
    pub fn server_config(
        self: &Arc<Self>,
        auth: ClientAuth,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>> {
        let mut cfg = ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_client_cert_verifier(client_verifier(
                CertificateDer::from(self.ca.cert_der().to_vec()),
                auth,
            )?)
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }

    /// A tonic client configuration that trusts the cluster CA, expects `server_name` in
    /// the server's certificate and presents this certificate.
    pub fn client_tls(&self, server_name: &str) -> tonic::transport::ClientTlsConfig {
        let issued = self.issued();
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(self.ca.cert_pem()))
            .identity(tonic::transport::Identity::from_pem(
                issued.cert_pem,
                issued.key_pem,
            ))
            .domain_name(server_name)
    }
}

/// Verifies client certificates against `ca`; with [`ClientAuth::Optional`] a client may
/// present none.
pub(crate) fn client_verifier(
    ca: CertificateDer<'static>,
    auth: ClientAuth,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| Error::Tls(format!("cluster CA: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), crate::provider());
    match auth {
        ClientAuth::Optional => verifier.allow_unauthenticated(),
        ClientAuth::Required => verifier,
    }
    .build()
    .map_err(|e| Error::Tls(e.to_string()))
}

impl ResolvesServerCert for RenewingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().key.clone())
    }
}
