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
            ..Default::default()
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
        let read = |p: &Path| std::fs::read_to_string(p).expect("PEM file");
        let pems = creds.map(|c| (read(&c.cert), read(&c.key)));
        pki::client_config(
            self.ca.cert_pem(),
            pems.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        )
        .expect("TLS client configuration")
    }
}

/// One HTTPS/1.1 GET to `addr` with `tls`; the whole response.
pub use pki::https_get;

/// Credentials held in memory: for harnesses that start many clusters and write no files.
pub struct MemoryAccess {
    pub token: String,
    /// For etcd API channels: the cluster CA and the admin certificate.
    pub tls: ClientTlsConfig,
    /// For rkube API clients: the same, with no servers yet.
    pub api: client::ClientConfig,
}

impl MemoryAccess {
    pub fn new() -> MemoryAccess {
        let token = ClusterToken::generate().expect("token");
        let ca = ClusterCa::from_token(&token).expect("CA");
        let admin = ca
            .issue(&LeafSpec {
                common_name: pki::ADMIN_USER.into(),
                organizations: vec![pki::MASTERS_GROUP.into()],
                sans: Vec::new(),
                usage: Usage::Client,
                validity: Duration::from_secs(7 * 24 * 3600),
            })
            .expect("admin certificate");
        MemoryAccess {
            token: token.to_text(),
            tls: ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca.cert_pem()))
                .identity(Identity::from_pem(&admin.cert_pem, &admin.key_pem)),
            api: client::ClientConfig {
                ca_pem: Some(ca.cert_pem().to_string()),
                cert_pem: Some(admin.cert_pem),
                key_pem: Some(admin.key_pem),
                ..Default::default()
            },
        }
    }

    /// An admin client of the rkube API at `servers` (`host:port` each).
    pub fn api_client(&self, servers: &[String]) -> client::Client {
        let cfg = client::ClientConfig {
            servers: servers.iter().map(|s| format!("https://{s}")).collect(),
            ..self.api.clone()
        };
        client::Client::new(cfg).expect("client")
    }
}

impl Default for MemoryAccess {
    fn default() -> Self {
        Self::new()
    }
}
