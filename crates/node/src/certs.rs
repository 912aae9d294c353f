//! The node's certificates, as a kubelet's TLS bootstrap gets them: a client certificate
//! for `system:node:<name>` requested once with a bootstrap token, a serving certificate
//! for the agent's API, and both renewed through new CertificateSigningRequests at two
//! thirds of their lifetime. Keys never leave the node; files are 0600.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use client::{Api, Client, ClientConfig};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
pub const NODES_GROUP: &str = "system:nodes";
/// How long a node waits for its request to be approved and signed.
const SIGN_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a node has no certificate. A Denied or Failed request is final for that request.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("the join token: {0}")]
    Token(String),
    #[error(transparent)]
    Pki(#[from] pki::Error),
    #[error(transparent)]
    Api(#[from] client::Error),
    #[error("certificate request {name} was denied: {message}")]
    Denied { name: String, message: String },
    #[error("certificate request {name} failed: {message}")]
    Failed { name: String, message: String },
    #[error("certificate request {0} was not signed within {SIGN_TIMEOUT:?}; is a controller-manager with a signer running?")]
    Timeout(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A join token: `K10<CA hash>::<id>.<secret>`, the CA pin and a bootstrap token.
pub fn parse_join_token(t: &str) -> Option<(String, String)> {
    let rest = t.strip_prefix("K10")?;
    let (hash, bearer) = rest.split_once("::")?;
    let (id, secret) = bearer.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (hash.len() == 64 && ok(id, 6) && ok(secret, 16))
        .then(|| (format!("sha256:{hash}"), bearer.to_string()))
}

/// What one certificate is for, and where it lives.
#[derive(Clone, Debug)]
pub struct CertSpec {
    pub signer: &'static str,
    pub node: String,
    pub sans: Vec<String>,
    pub usages: &'static [&'static str],
    /// `<dir>/<stem>.crt` and `.key`.
    pub dir: PathBuf,
    pub stem: &'static str,
}

impl CertSpec {
    pub fn client(node: &str, dir: &Path) -> Self {
        CertSpec {
            signer: CLIENT_SIGNER,
            node: node.into(),
            sans: vec![],
            usages: &["digital signature", "client auth"],
            dir: dir.into(),
            stem: "node-client",
        }
    }

    pub fn serving(node: &str, sans: Vec<String>, dir: &Path) -> Self {
        CertSpec {
            signer: SERVING_SIGNER,
            node: node.into(),
            sans,
            usages: &["digital signature", "server auth"],
            dir: dir.into(),
            stem: "node-serving",
        }
    }

    fn paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{}.crt", self.stem)),
            self.dir.join(format!("{}.key", self.stem)),
        )
    }

    /// The stored certificate and key, if the CA signed it and it is valid for a while yet.
    pub fn load(&self, ca_pem: &str) -> Option<(String, String, SystemTime)> {
        let (c, k) = self.paths();
        let written = std::fs::metadata(&c).and_then(|m| m.modified()).ok()?;
        let cert = std::fs::read_to_string(c).ok()?;
        let key = std::fs::read_to_string(k).ok()?;
        let (_, not_after) = pki::validity_of(&cert, ca_pem).ok()?;
        let margin = SystemTime::now()
            + Duration::from_secs(60)
                .min(not_after.duration_since(written).unwrap_or_default() / 3);
        let at = renew_at(&cert, ca_pem, written);
        (not_after > margin).then_some((cert, key, at))
    }

    fn store(&self, cert: &str, key: &str) -> Result<(), CertError> {
        let (c, k) = self.paths();
        pki::restrict_dir(&self.dir)?;
        for (p, data) in [(&k, key), (&c, cert)] {
            pki::write_private(p, data.as_bytes())?;
        }
        Ok(())
    }
}

/// Two thirds into the certificate's lifetime counted from when it was `received` (signers
/// back-date the start by minutes, which would make a short-lived certificate due at once).
fn renew_at(cert: &str, ca_pem: &str, received: SystemTime) -> SystemTime {
    match pki::validity_of(cert, ca_pem) {
        Ok((_, na)) => received + na.duration_since(received).unwrap_or_default() * 2 / 3,
        Err(_) => SystemTime::now(),
    }
}

/// Makes a request for `spec` as `client`'s user and waits until it is signed:
/// `(certificate PEM, key PEM)`, also written to the spec's files.
pub async fn request(client: &Client, spec: &CertSpec) -> Result<(String, String), CertError> {
    let cn = format!("system:node:{}", spec.node);
    let (csr_pem, key_pem) = pki::new_request(&cn, &[NODES_GROUP.to_string()], &spec.sans)?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-{}-", spec.stem, spec.node)),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.into_bytes()),
            signer_name: spec.signer.into(),
            usages: Some(spec.usages.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    let refused_until = tokio::time::Instant::now() + Duration::from_secs(30);
    let made = loop {
        match api.create(&csr).await {
            Ok(made) => break made,
            // A member that has just started may not hold the bootstrap roles yet: the
            // token is good, its permission arrives with the member's RBAC cache.
            Err(e)
                if e.code() == tonic::Code::PermissionDenied
                    && tokio::time::Instant::now() < refused_until =>
            {
                tracing::info!(error = %e, "certificate request refused; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let name = made.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, signer = spec.signer, "certificate requested");
    let deadline = tokio::time::Instant::now() + SIGN_TIMEOUT;
    loop {
        let cur = api.get(&name).await?;
        let st = cur.status.unwrap_or_default();
        let cond = |t: &str| {
            st.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == t && c.status == "True")
                .map(|c| c.message.clone().unwrap_or_default())
        };
        if let Some(message) = cond("Denied") {
            return Err(CertError::Denied { name, message });
        }
        if let Some(message) = cond("Failed") {
            return Err(CertError::Failed { name, message });
        }
        if let Some(cert) = st.certificate.filter(|c| !c.0.is_empty()) {
            let cert = String::from_utf8_lossy(&cert.0).into_owned();
            spec.store(&cert, &key_pem)?;
            tracing::info!(csr = %name, "certificate issued");
            return Ok((cert, key_pem));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CertError::Timeout(name));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A client configuration for `servers` as `system:node:<node>`: the stored client
/// certificate when it is still good, or else a new one requested with the join token.
pub async fn bootstrap(
    servers: &[String],
    join_token: &str,
    node: &str,
    dir: &Path,
) -> Result<(ClientConfig, String), CertError> {
    let (pin, bearer) = parse_join_token(join_token)
        .ok_or_else(|| CertError::Token("want K10<CA sha256>::<id>.<secret>".into()))?;
    pki::restrict_dir(dir)?;
    let ca_path = dir.join("ca.crt");
    let ca_pem = match std::fs::read_to_string(&ca_path) {
        Ok(pem) if pki::ca_fingerprint(&pem).ok().as_deref() == Some(&pin) => pem,
        _ => {
            let pem = fetch_ca(servers, &pin).await?;
            pki::write_private(&ca_path, pem.as_bytes())?;
            pem
        }
    };
    let spec = CertSpec::client(node, dir);
    let (cert, key) = match spec.load(&ca_pem) {
        Some((c, k, _)) => (c, k),
        None => {
            let boot = Client::new(ClientConfig {
                servers: servers.to_vec(),
                token: Some(bearer),
                ca_pem: Some(ca_pem.clone()),
                ..Default::default()
            })?;
            request(&boot, &spec).await?
        }
    };
    let cfg = ClientConfig {
        servers: servers.to_vec(),
        ca_pem: Some(ca_pem.clone()),
        cert_pem: Some(cert),
        key_pem: Some(key),
        ..Default::default()
    };
    Ok((cfg, ca_pem))
}

async fn fetch_ca(servers: &[String], pin: &str) -> Result<String, CertError> {
    let mut last = CertError::Token("no https:// server to fetch the CA from".into());
    for s in servers {
        let hostport = s.trim_start_matches("https://").trim_end_matches('/');
        let addrs = match tokio::net::lookup_host(hostport).await {
            Ok(a) => a.collect::<Vec<_>>(),
            Err(e) => {
                last = CertError::Io {
                    path: s.clone(),
                    source: e,
                };
                continue;
            }
        };
        for a in addrs {
            match pki::fetch_pinned_ca(a, pin).await {
                Ok(pem) => return Ok(pem),
                // A CA that is not the pinned one is an attack or a mistake: stop here.
                Err(e @ pki::Error::Token(_)) => return Err(e.into()),
                Err(e) => last = e.into(),
            }
        }
    }
    Err(last)
}

/// Renews the certificate of `spec` at two thirds of its lifetime, forever, handing each
/// new one to `install`.
pub async fn keep_renewed(
    client: Client,
    spec: CertSpec,
    ca_pem: String,
    mut renew: SystemTime,
    install: impl Fn(&str, &str) + Send,
) {
    loop {
        let wait = renew
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        match request(&client, &spec).await {
            Ok((cert, key)) => {
                install(&cert, &key);
                renew = renew_at(&cert, &ca_pem, SystemTime::now());
                tracing::info!(stem = spec.stem, "certificate renewed");
            }
            Err(e) => {
                tracing::warn!(stem = spec.stem, error = %e, "certificate renewal failed; retrying in 30 s");
                renew = SystemTime::now() + Duration::from_secs(30);
            }
        }
    }
}

/// The agent's serving certificate: the stored one when good, or a new one; then kept
/// renewed. Requested as the node itself, after its Node reports its addresses.
pub async fn serve(client: Client, served: Arc<pki::ServedCert>, spec: CertSpec, ca_pem: String) {
    let renew = loop {
        let got = match spec.load(&ca_pem) {
            Some((c, k, at)) => Ok((c, k, at)),
            None => request(&client, &spec).await.map(|(c, k)| {
                let at = renew_at(&c, &ca_pem, SystemTime::now());
                (c, k, at)
            }),
        };
        match got.and_then(|(c, k, at)| served.set(&c, &k).map(|()| at).map_err(Into::into)) {
            Ok(at) => break at,
            Err(e) => {
                tracing::warn!(error = %e, "no serving certificate for the agent API yet; retrying in 10 s");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    let s = served.clone();
    keep_renewed(client, spec, ca_pem, renew, move |c, k| {
        if let Err(e) = s.set(c, k) {
            tracing::error!(error = %e, "installing the renewed serving certificate");
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tokens_carry_a_pin_and_a_bootstrap_token() {
        let h = "a".repeat(64);
        let (pin, bearer) = parse_join_token(&format!("K10{h}::abcdef.0123456789abcdef")).unwrap();
        assert_eq!(pin, format!("sha256:{h}"));
        assert_eq!(bearer, "abcdef.0123456789abcdef");
        assert!(parse_join_token(&format!("K10{h}::{}", "x".repeat(40))).is_none());
        assert!(parse_join_token("abcdef.0123456789abcdef").is_none());
    }
}
