//! Credentials for tests: a cluster token, and certificates from the CA it yields, exactly
//! as a member derives them, so the harness can speak TLS to every port it starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pki::{ClusterCa, ClusterToken, LeafSpec, Usage};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A cluster token, its CA, and an admin (`system:masters`) certificate, in `dir`.
pub struct TestPki {
    pub token: String,
    pub dir: PathBuf,
    pub ca: Arc<ClusterCa>,
    pub ca_file: PathBuf,
    pub admin: CertFiles,
}

impl TestPki {
    /// A new token and its files under `dir`.
    pub fn new(dir: &Path) -> TestPki {
        let token = ClusterToken::generate().expect("token");
        Self::with_token(dir, &token.to_text())
    }

    /// The files for an existing token.
    pub fn with_token(dir: &Path, token: &str) -> TestPki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let parsed = ClusterToken::parse(token).expect("token");
        let ca = Arc::new(ClusterCa::from_token(&parsed).expect("CA"));
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca.cert_pem()).expect("write CA");
        let mut p = TestPki {
            token: token.to_string(),
            dir: dir.to_path_buf(),
            ca,
            ca_file,
            admin: CertFiles {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
        };
        p.admin = p.issue_files("admin", pki::ADMIN_USER, &[pki::MASTERS_GROUP]);
        p
    }

    /// A client certificate for `user` in `groups`, written as `<name>.crt` / `.key`.
    pub fn issue_files(&self, name: &str, user: &str, groups: &[&str]) -> CertFiles {
        let issued = self.issue(user, groups, Usage::Client, &[]);
        let files = CertFiles {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, issued.cert_pem).expect("write cert");
        std::fs::write(&files.key, issued.key_pem).expect("write key");
        files
    }

    pub fn issue(&self, user: &str, groups: &[&str], usage: Usage, sans: &[&str]) -> pki::Issued {
        self.ca
            .issue(&LeafSpec {
                common_name: user.into(),
                organizations: groups.iter().map(|g| g.to_string()).collect(),
                sans: sans.iter().map(|s| s.to_string()).collect(),
                usage,
                validity: Duration::from_secs(24 * 3600),
            })
            .expect("issue")
    }

    /// An rkube client configuration for `servers` (host:port) with `creds`.
    pub fn client_config(&self, servers: &[SocketAddr], creds: &CertFiles) -> client::ClientConfig {
        client::ClientConfig {
            servers: servers.iter().map(|a| format!("https://{a}")).collect(),
            ca: Some(self.ca_file.clone()),
            cert: Some(creds.cert.clone()),
            key: Some(creds.key.clone()),
            token: None,
        }
    }

    /// That configuration written to `<dir>/<name>.yaml`, for `--config`.
    pub fn client_config_file(
        &self,
        name: &str,
        servers: &[SocketAddr],
        creds: &CertFiles,
    ) -> PathBuf {
        let cfg = self.client_config(servers, creds);
        let path = self.dir.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_json::to_vec(&cfg).expect("JSON")).expect("write config");
        path
    }

    /// A tonic TLS configuration presenting `creds` (for the etcd API).
    pub fn tonic_tls(&self, creds: &CertFiles) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.cert_pem()))
            .identity(Identity::from_pem(
                std::fs::read(&creds.cert).expect("cert"),
                std::fs::read(&creds.key).expect("key"),
            ))
    }

    /// A rustls client configuration trusting the cluster CA, presenting `creds` if given.
    pub fn rustls(&self, creds: Option<&CertFiles>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                self.ca.cert_der().to_vec(),
            ))
            .expect("CA");
        let b = rustls::ClientConfig::builder_with_provider(pki::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let cfg = match creds {
            Some(c) => {
                use rustls::pki_types::pem::PemObject;
                let cert = rustls::pki_types::CertificateDer::from_pem_file(&c.cert).expect("cert");
                let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&c.key).expect("key");
                b.with_client_auth_cert(vec![cert], key)
                    .expect("client cert")
            }
            None => b.with_no_client_auth(),
        };
        Arc::new(cfg)
    }
}

/// One HTTPS/1.1 GET to `addr` (server name: its IP) with `tls`; the whole response.
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    tls: Arc<rustls::ClientConfig>,
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
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
