//! Where a client finds the cluster: explicit endpoints, `RKUBE_SERVER`, or the file that
//! `rkube server` writes (a kubeconfig for rkube).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The client configuration file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ClientConfig {
    /// Every apiserver endpoint known, e.g. `http://127.0.0.1:6443`.
    pub servers: Vec<String>,
    /// A bearer token, if the apiserver wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// For `https://` endpoints: the CA (PEM file) that signed the apiserver's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// A client certificate and key (PEM files) to authenticate with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The same three as PEM text instead of files (kubeconfig's `…-data`); each wins
    /// over its file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
    /// Act as this user (`--as`), if the credentials may impersonate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonate_user: Option<String>,
    /// …and as a member of these groups (`--as-group`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub impersonate_groups: Vec<String>,
}

impl ClientConfig {
    /// Endpoints from a comma-separated list; `host:port` means `http://host:port`.
    pub fn from_servers(list: &str) -> Self {
        ClientConfig {
            servers: list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.contains("://") {
                        s.to_string()
                    } else {
                        format!("http://{s}")
                    }
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Parses the YAML or JSON text of a configuration file.
    pub fn parse(text: &str) -> Result<Self> {
        let c: ClientConfig = serde_json::from_str(text)
            .or_else(|_| parse_yaml_servers(text))
            .map_err(|e| Error::Config(e.to_string()))?;
        if c.servers.is_empty() {
            return Err(Error::Config("servers: Required value".into()));
        }
        Ok(c)
    }

    /// Reads a configuration file; relative `ca`, `cert` and `key` paths are relative to
    /// the file's directory (as in a kubeconfig), so a directory of credentials can move.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let mut c =
            Self::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        if let Some(dir) = path.parent() {
            for p in [&mut c.ca, &mut c.cert, &mut c.key].into_iter().flatten() {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(c)
    }

    /// The configuration as the file format `load` reads.
    pub fn to_text(&self) -> String {
        let mut text = String::from("# rkube client configuration.\nservers:\n");
        for s in &self.servers {
            text.push_str(&format!("  - {s}\n"));
        }
        for (k, v) in [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)] {
            if let Some(p) = v {
                text.push_str(&format!("{k}: {}\n", p.display()));
            }
        }
        if let Some(t) = &self.token {
            text.push_str(&format!("token: {t}\n"));
        }
        text
    }

    /// `~/.rkube/config`.
    pub fn default_path() -> Option<PathBuf> {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rkube").join("config"))
    }
}

/// The file format is a tiny YAML subset (a `servers:` list and a `token:`), read here
/// without a YAML dependency so every client can load it.
fn parse_yaml_servers(text: &str) -> std::result::Result<ClientConfig, String> {
    let mut c = ClientConfig::default();
    let mut in_servers = false;
    for line in text.lines() {
        let l = line.trim_end();
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(rest) = t.strip_prefix("- ") {
            if in_servers {
                c.servers.push(rest.trim().trim_matches('"').to_string());
                continue;
            }
            return Err(format!("unexpected list item: {t}"));
        }
        in_servers = false;
        match t.split_once(':') {
            Some(("servers", v)) if v.trim().is_empty() => in_servers = true,
            Some(("token", v)) => c.token = Some(v.trim().trim_matches('"').to_string()),
            Some(("ca", v)) => c.ca = Some(v.trim().trim_matches('"').into()),
            Some(("cert", v)) => c.cert = Some(v.trim().trim_matches('"').into()),
            Some(("key", v)) => c.key = Some(v.trim().trim_matches('"').into()),
            _ => return Err(format!("unexpected line: {t}")),
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_server_written_file() {
        let c = ClientConfig::parse("# x\nservers:\n  - http://a:1\n  - http://b:2\ntoken: t\n")
            .unwrap();
        assert_eq!(c.servers, vec!["http://a:1", "http://b:2"]);
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(ClientConfig::parse("servers:\n").is_err());
        assert_eq!(
            ClientConfig::from_servers("a:1, http://b:2").servers,
            vec!["http://a:1", "http://b:2"]
        );
    }

    #[test]
    fn relative_credential_paths_follow_the_file() {
        let d = tempfile::tempdir().unwrap();
        let c = ClientConfig {
            servers: vec!["https://a:1".into()],
            ca: Some("ca.crt".into()),
            cert: Some("/abs/w1.crt".into()),
            key: Some("w1.key".into()),
            ..Default::default()
        };
        let path = d.path().join("w1.config");
        std::fs::write(&path, c.to_text()).unwrap();
        let back = ClientConfig::load(&path).unwrap();
        assert_eq!(back.ca, Some(d.path().join("ca.crt")));
        assert_eq!(back.cert, Some("/abs/w1.crt".into()));
        assert_eq!(back.key, Some(d.path().join("w1.key")));
        assert_eq!(back.servers, c.servers);
    }
}
