//! Joining nodes by TLS bootstrap: `rkube token create` makes a bootstrap token (a Secret
//! in kube-system) and prints the join token `K10<CA hash>::<id>.<secret>`; `rkube node
//! --token <join token>` turns it into the node's own client certificate.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use client::{Api, Client};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `n` random characters of `[a-z0-9]`, uniformly (bytes past the last whole multiple of
/// 36 are drawn again).
fn random_chars(n: usize) -> anyhow::Result<String> {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in pki::random_key()? {
            if (b as usize) < 252 && out.len() < n {
                out.push(ALPHABET[b as usize % 36] as char);
            }
        }
    }
    Ok(out)
}

/// `90`, `90s`, `30m`, `24h`, `7d`; `0` never expires.
pub fn parse_ttl(s: &str) -> anyhow::Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("--ttl {s:?}: want a number with s, m, h or d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => anyhow::bail!("--ttl {s:?}: the unit must be s, m, h or d"),
    };
    Ok(Duration::from_secs(secs))
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub client: crate::connect::ClientArgs,
    /// How long the token may be used to join (`0`: until it is deleted).
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    /// What the token is for, kept in its Secret.
    #[arg(long, default_value = "")]
    pub description: String,
}

/// The bootstrap token Secret for `id`/`secret`, expiring `ttl` from now.
fn token_secret(id: &str, secret: &str, ttl: Duration, description: &str) -> Secret {
    let mut data = BTreeMap::from([
        ("token-id".to_string(), id.to_string()),
        ("token-secret".to_string(), secret.to_string()),
        (
            "usage-bootstrap-authentication".to_string(),
            "true".to_string(),
        ),
    ]);
    if !ttl.is_zero() {
        let now = client::events::now();
        let exp = now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
                ttl.as_secs() as i64
            ))
            .unwrap_or(now);
        data.insert("expiration".into(), exp.to_string());
    }
    if !description.is_empty() {
        data.insert("description".into(), description.to_string());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// `rkube token create`: prints a join token.
pub async fn create(a: &CreateArgs) -> anyhow::Result<()> {
    let cfg = crate::ctl::resolve_client_config(
        a.client.server.as_deref(),
        a.client.config.as_deref(),
        a.client.token.as_deref(),
    )?;
    let ca_pem = match (&cfg.ca_pem, &cfg.ca) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| f.display().to_string())?,
        (None, None) => anyhow::bail!(
            "the client configuration names no CA: a join token pins the cluster's CA"
        ),
    };
    let join = create_token(
        &Client::new(cfg)?,
        &ca_pem,
        parse_ttl(&a.ttl)?,
        &a.description,
    )
    .await?;
    println!("{join}");
    Ok(())
}

/// Makes a bootstrap token valid for `ttl` and returns its join token.
pub async fn create_token(
    client: &Client,
    ca_pem: &str,
    ttl: Duration,
    description: &str,
) -> anyhow::Result<String> {
    let hash = pki::ca_fingerprint(ca_pem)?;
    let (id, secret) = (random_chars(6)?, random_chars(16)?);
    Api::<Secret>::namespaced(client.clone(), "kube-system")
        .create(&token_secret(&id, &secret, ttl, description))
        .await
        .context("creating the bootstrap token")?;
    let hex = hash.trim_start_matches("sha256:");
    Ok(format!("K10{hex}::{id}.{secret}"))
}

/// What a node agent connects with: its client, TLS for its own API, and the task that
/// renews its bootstrapped client certificate.
pub struct NodeCredentials {
    pub client: Client,
    pub tls: Option<node::kubelet::AgentTls>,
    pub renewal: Option<tokio::task::JoinHandle<()>>,
}

/// With a join token: the bootstrapped certificate (requested now, or the stored one),
/// renewed before it expires. Otherwise the client configuration as given.
pub async fn node_credentials(
    args: &crate::connect::ClientArgs,
    token_file: Option<&std::path::Path>,
    name: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<NodeCredentials> {
    let from_file = match token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("--token-file {}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let join = from_file
        .as_deref()
        .or(args.token.as_deref())
        .filter(|t| node::certs::parse_join_token(t).is_some());
    if from_file.is_some() && join.is_none() {
        anyhow::bail!("--token-file: not a join token (K10<CA sha256>::<id>.<secret>)");
    }
    match join {
        Some(join) => joined_credentials(args, join, name, data_dir).await,
        None => configured_credentials(args),
    }
}

/// The node's credentials from its client configuration, without a join token.
fn configured_credentials(args: &crate::connect::ClientArgs) -> anyhow::Result<NodeCredentials> {
    let cfg = crate::ctl::resolve_client_config(
        args.server.as_deref(),
        args.config.as_deref(),
        args.token.as_deref(),
    )?;
    let ca_pem = match (&cfg.ca_pem, &cfg.ca) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(f)) => {
            Some(std::fs::read_to_string(f).with_context(|| f.display().to_string())?)
        }
        (None, None) => None,
    };
    let tls = ca_pem.map(|ca_pem| node::kubelet::AgentTls {
        ca_pem,
        served: pki::ServedCert::new(),
    });
    Ok(NodeCredentials {
        client: Client::new(cfg)?,
        tls,
        renewal: None,
    })
}

/// The apiserver URLs of `--server` (comma-separated; `https://` when no scheme is given).
fn server_urls(server: Option<&str>) -> anyhow::Result<Vec<String>> {
    Ok(server
        .context("--server: joining with a token needs the apiserver addresses")?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.contains("://") {
            true => s.to_string(),
            false => format!("https://{s}"),
        })
        .collect())
}

/// Joins with `join` (or reuses the certificate stored under `data_dir`) and keeps the
/// client certificate renewed.
async fn joined_credentials(
    args: &crate::connect::ClientArgs,
    join: &str,
    name: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<NodeCredentials> {
    let servers = server_urls(args.server.as_deref())?;
    let dir = data_dir.join("pki");
    let (cfg, ca_pem) = node::certs::bootstrap(&servers, join, name, &dir)
        .await
        .context("joining the cluster")?;
    let client = Client::new(cfg)?;
    let spec = node::certs::CertSpec::client(name, &dir);
    let renew_at = spec
        .load(&ca_pem)
        .map_or_else(std::time::SystemTime::now, |(_, _, at)| at);
    let c = client.clone();
    let renewal = tokio::spawn(node::certs::keep_renewed(
        client.clone(),
        spec,
        ca_pem.clone(),
        renew_at,
        move |cert, key| c.set_identity(cert, key),
    ));
    Ok(NodeCredentials {
        client,
        tls: Some(node::kubelet::AgentTls {
            ca_pem,
            served: pki::ServedCert::new(),
        }),
        renewal: Some(renewal),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_and_token_shapes() {
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
        let s = random_chars(16).unwrap();
        assert_eq!(s.len(), 16);
        assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
        let sec = token_secret("abcdef", &s, Duration::from_secs(60), "");
        let data = sec.data.unwrap();
        assert_eq!(data["token-secret"].0, s.as_bytes());
        assert!(data.contains_key("expiration"));
    }
}
