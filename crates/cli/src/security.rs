//! A member's security from its cluster token: the cluster CA, the member's certificate,
//! and the credentials files it writes for administrators and its own components.
//!
//! Every founder runs the same command with the same `--token`; each derives the same CA,
//! so TLS works from the first connection. A member remembers the fingerprint of the CA it
//! was founded with and refuses to start with a token that yields another.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use pki::{ClusterCa, ClusterToken, LeafSpec, RenewingCert, Usage};

/// Flags of every command that runs a member.
#[derive(Args, Clone, Default)]
pub struct SecurityArgs {
    /// The cluster token, identical on every founding member (`rkube token generate`
    /// makes one). Every port is TLS with certificates from the CA it yields.
    #[arg(long = "token", env = "RKUBE_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,
    /// A file holding the cluster token.
    #[arg(long, conflicts_with = "cluster_token")]
    pub token_file: Option<PathBuf>,
    /// Run without a token: every port plaintext and open to anyone. Never in production.
    #[arg(long, conflicts_with_all = ["cluster_token", "token_file"])]
    pub insecure_plaintext: bool,
    /// More names (DNS or IP) for this member's serving certificate, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// Lifetime of the certificates this member issues itself, in seconds; each is renewed
    /// at two thirds of it.
    #[arg(long, default_value_t = 365 * 24 * 3600)]
    pub cert_validity_secs: u64,
}

/// What a secured member runs with.
pub struct MemberPki {
    pub token: ClusterToken,
    pub ca: Arc<ClusterCa>,
    /// Serves the API, the etcd API and the peer port, and dials peers.
    pub member: Arc<RenewingCert>,
    pub dir: PathBuf,
}

/// Credentials files: a CA, a certificate and its key.
pub struct CredentialFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SecurityArgs {
    fn token(&self) -> anyhow::Result<Option<ClusterToken>> {
        let text = match (&self.cluster_token, &self.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("--token-file {}", f.display()))?,
            (None, None) if self.insecure_plaintext => return Ok(None),
            (None, None) => bail!(
                "--token is required: every member needs the cluster token \
                 (`rkube token generate` makes one); --insecure-plaintext runs without TLS"
            ),
        };
        Ok(Some(ClusterToken::parse(&text).context("--token")?))
    }

    /// Sets up the member's PKI under `<data_dir>/pki`, or `None` under
    /// `--insecure-plaintext`. `addrs` are the addresses the member serves on, `names`
    /// more names its certificate carries.
    pub fn member(
        &self,
        name: &str,
        data_dir: &Path,
        addrs: &[SocketAddr],
        names: &[String],
    ) -> anyhow::Result<Option<MemberPki>> {
        let Some(token) = self.token()? else {
            tracing::warn!("--insecure-plaintext: every port is plaintext and unauthenticated");
            return Ok(None);
        };
        let ca = Arc::new(ClusterCa::from_token(&token).context("--token")?);
        pki::restrict_dir(data_dir)?;
        let dir = data_dir.join("pki");
        pki::restrict_dir(&dir)?;
        check_fingerprint(&dir, &ca)?;
        let member = RenewingCert::new(
            ca.clone(),
            LeafSpec {
                common_name: format!("system:rkube-member:{name}"),
                organizations: vec![pki::MEMBERS_GROUP.into()],
                sans: self.sans(addrs, names),
                usage: Usage::ServerAndClient,
                validity: Duration::from_secs(self.cert_validity_secs.max(5)),
            },
        )?;
        pki::write_private(&dir.join("ca.crt"), ca.cert_pem().as_bytes())?;
        tracing::info!(ca = %ca.fingerprint(), "cluster CA");
        eprintln!("cluster CA {}", ca.fingerprint());
        Ok(Some(MemberPki {
            token,
            ca,
            member,
            dir,
        }))
    }

    fn sans(&self, addrs: &[SocketAddr], names: &[String]) -> Vec<String> {
        let mut sans: Vec<String> = vec![
            pki::MEMBER_SERVER_NAME.into(),
            "localhost".into(),
            "127.0.0.1".into(),
            "::1".into(),
        ];
        if let Ok(h) = rustix::system::uname().nodename().to_str() {
            sans.push(h.to_string());
        }
        sans.extend(
            addrs
                .iter()
                .map(|a| a.ip())
                .filter(|ip| !ip.is_unspecified())
                .map(|ip| ip.to_string()),
        );
        sans.extend(self.tls_san.iter().cloned());
        sans.extend(names.iter().cloned());
        sans.sort();
        sans.dedup();
        sans
    }
}

impl MemberPki {
    /// Issues a client certificate for `user` in `groups` and writes it (0600) as
    /// `<pki>/<file>.crt` and `.key`.
    pub fn client_files(
        &self,
        file: &str,
        user: &str,
        groups: &[&str],
        validity: Duration,
    ) -> anyhow::Result<CredentialFiles> {
        let issued = self.ca.issue(&LeafSpec {
            common_name: user.into(),
            organizations: groups.iter().map(|g| g.to_string()).collect(),
            sans: Vec::new(),
            usage: Usage::Client,
            validity,
        })?;
        let files = CredentialFiles {
            ca: self.dir.join("ca.crt"),
            cert: self.dir.join(format!("{file}.crt")),
            key: self.dir.join(format!("{file}.key")),
        };
        pki::write_private(&files.cert, issued.cert_pem.as_bytes())?;
        pki::write_private(&files.key, issued.key_pem.as_bytes())?;
        Ok(files)
    }

    /// The key that seals the service-account signing key in the store.
    pub fn signing_key_wrap(&self) -> [u8; 32] {
        self.token.derive("service-account signing key")
    }
}

/// The CA fingerprint a member was founded with is kept beside its data; a token that
/// yields another CA is refused before anything is opened.
fn check_fingerprint(dir: &Path, ca: &ClusterCa) -> anyhow::Result<()> {
    let path = dir.join("ca.fingerprint");
    let now = ca.fingerprint();
    match std::fs::read_to_string(&path) {
        Ok(old) if old.trim() == now => Ok(()),
        Ok(old) => bail!(
            "--token: this member belongs to the cluster with CA {}, but the token given yields \
             CA {now}; start it with that cluster's token",
            old.trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            pki::write_private(&path, now.as_bytes())?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| path.display().to_string()),
    }
}

/// A client URL for `addr`: a wildcard listen address is reached on loopback.
pub fn url_of(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// `rkube token generate`: prints a new cluster token.
pub fn generate() -> anyhow::Result<()> {
    println!("{}", ClusterToken::generate()?.to_text());
    Ok(())
}

/// `rkube token node-config`.
#[derive(Args, Clone)]
pub struct NodeConfigArgs {
    /// The node's name.
    #[arg(long)]
    pub name: String,
    /// Every member's API address (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub server: Vec<String>,
    /// Where to write `ca.crt`, `<name>.crt`, `<name>.key` and `<name>.config` (0600).
    #[arg(long)]
    pub dir: PathBuf,
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// Writes a node's client configuration. Until nodes join by TLS bootstrap, this is how a
/// node on another machine gets its credentials; whoever runs it holds the cluster token.
pub fn node_config(a: &NodeConfigArgs) -> anyhow::Result<()> {
    let token = a
        .security
        .token()?
        .context("--insecure-plaintext: a plaintext cluster has no node certificates")?;
    let ca = ClusterCa::from_token(&token)?;
    pki::restrict_dir(&a.dir)?;
    pki::write_private(&a.dir.join("ca.crt"), ca.cert_pem().as_bytes())?;
    let servers: Vec<String> = a
        .server
        .iter()
        .map(|s| match s.contains("://") {
            true => s.clone(),
            false => format!("https://{s}"),
        })
        .collect();
    let user = format!("system:node:{}", a.name);
    let groups = ["system:nodes"];
    crate::up::creds::config_for(&ca, &a.dir, &servers, &a.name, &user, &groups)?;
    println!("{}", a.dir.join(format!("{}.config", a.name)).display());
    Ok(())
}
