//! The credentials of an `rkube up` cluster: one cluster token (kept 0600 in the cluster's
//! directory, handed to members as `--token-file`, never on a command line), an
//! EncryptionConfiguration with a random AES-GCM key for Secrets, the admin's client
//! configuration, and one client certificate per node (`system:node:<name>`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use pki::{ClusterCa, ClusterToken, LeafSpec, Usage};

use super::plan::State;

/// Node and admin certificates last a year; `rkube up` issues new ones every start.
const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

pub fn token_path(dir: &Path) -> PathBuf {
    dir.join("token")
}

/// The cluster's token, created on first use.
pub fn token(dir: &Path) -> anyhow::Result<ClusterToken> {
    let path = token_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(t) => ClusterToken::parse(&t).with_context(|| path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t = ClusterToken::generate()?;
            pki::restrict_dir(dir)?;
            pki::write_private(&path, t.to_text().as_bytes())?;
            Ok(t)
        }
        Err(e) => Err(e).with_context(|| path.display().to_string()),
    }
}

pub fn encryption_config_path(dir: &Path) -> PathBuf {
    dir.join("encryption.yaml")
}

/// The cluster's EncryptionConfiguration, created with a random 256-bit key on first use.
pub fn encryption_config(dir: &Path) -> anyhow::Result<PathBuf> {
    use base64::Engine;
    let path = encryption_config_path(dir);
    if path.exists() {
        return Ok(path);
    }
    let key = pki::random_key()?;
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  \
         - resources: [\"secrets\"]\n    providers:\n      - aesgcm:\n          keys:\n            \
         - name: key1\n              secret: {key}\n      - identity: {{}}\n"
    );
    pki::restrict_dir(dir)?;
    pki::write_private(&path, text.as_bytes())?;
    Ok(path)
}

/// Writes the CA and the admin's client configuration under `<dir>/pki`;
/// returns the admin's configuration text.
pub fn write(dir: &Path, state: &State) -> anyhow::Result<String> {
    let ca = ClusterCa::from_token(&token(dir)?)?;
    let pki_dir = dir.join("pki");
    pki::restrict_dir(&pki_dir)?;
    let ca_file = pki_dir.join("ca.crt");
    pki::write_private(&ca_file, ca.cert_pem().as_bytes())?;
    let servers: Vec<String> = state
        .members
        .iter()
        .filter_map(|m| m.api.map(|a| format!("https://{a}")))
        .collect();
    let admin = config_for(
        &ca,
        &pki_dir,
        &servers,
        "admin",
        pki::ADMIN_USER,
        &[pki::MASTERS_GROUP],
    )?;
    Ok(admin.to_text())
}

/// Where the join token of the nodes lives.
pub fn join_token_path(dir: &Path) -> PathBuf {
    dir.join("pki").join("join-token")
}

/// Makes a bootstrap token for the nodes (an hour to join; they keep their certificates
/// after that) and writes its join token where their `--token-file` reads it.
pub async fn write_join_token(
    dir: &Path,
    admin: &client::Client,
    ca_pem: &str,
) -> anyhow::Result<()> {
    let join = crate::join::create_token(
        admin,
        ca_pem,
        std::time::Duration::from_secs(3600),
        "rkube up",
    )
    .await?;
    pki::write_private(&join_token_path(dir), join.as_bytes())?;
    Ok(())
}

/// A client configuration for `user` in `groups`: `<dir>/<name>.{crt,key}` beside the CA
/// (`<dir>/ca.crt`), and `<dir>/<name>.config` naming them by relative paths, so the
/// directory can be copied elsewhere. Returns the configuration with absolute paths.
pub fn config_for(
    ca: &ClusterCa,
    dir: &Path,
    servers: &[String],
    name: &str,
    user: &str,
    groups: &[&str],
) -> anyhow::Result<client::ClientConfig> {
    let issued = ca.issue(&LeafSpec {
        common_name: user.into(),
        organizations: groups.iter().map(|g| g.to_string()).collect(),
        sans: Vec::new(),
        usage: Usage::Client,
        validity: VALIDITY,
    })?;
    let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
    pki::write_private(&dir.join(&cert), issued.cert_pem.as_bytes())?;
    pki::write_private(&dir.join(&key), issued.key_pem.as_bytes())?;
    let relative = client::ClientConfig {
        servers: servers.to_vec(),
        ca: Some("ca.crt".into()),
        cert: Some(cert.into()),
        key: Some(key.into()),
        ..Default::default()
    };
    let path = dir.join(format!("{name}.config"));
    pki::write_private(&path, relative.to_text().as_bytes())?;
    Ok(client::ClientConfig::load(&std::path::absolute(&path)?)?)
}
