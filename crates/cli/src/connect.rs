//! How component commands find the apiserver: `--server`, `--config`, `--token`.

use anyhow::Context;
use std::path::PathBuf;

use clap::Args;
use client::Client;

#[derive(Args, Clone)]
pub struct ClientArgs {
    /// Apiserver endpoints, comma-separated (or RKUBE_SERVER).
    #[arg(long, env = "RKUBE_SERVER")]
    pub server: Option<String>,
    /// Client configuration file (or RKUBE_CONFIG; default ~/.rkube/config).
    #[arg(long, env = "RKUBE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bearer token (or RKUBE_TOKEN).
    #[arg(long, env = "RKUBE_TOKEN")]
    pub token: Option<String>,
}

impl ClientArgs {
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(self.config()?)?)
    }

    /// The client configuration these flags resolve to.
    pub fn config(&self) -> anyhow::Result<client::ClientConfig> {
        crate::ctl::resolve_client_config(
            self.server.as_deref(),
            self.config.as_deref(),
            self.token.as_deref(),
        )
    }

    /// The client certificate and key (PEM) the configuration presents, if any.
    pub fn identity_pem(&self) -> anyhow::Result<Option<(String, String)>> {
        let cfg = self.config()?;
        let read = |pem: Option<String>, path: Option<PathBuf>, what: &str| match (pem, path) {
            (Some(p), _) => Ok(Some(p)),
            (None, Some(f)) => std::fs::read_to_string(&f)
                .map(Some)
                .with_context(|| format!("the client {what} {}", f.display())),
            (None, None) => Ok(None),
        };
        let cert = read(cfg.cert_pem, cfg.cert, "certificate")?;
        let key = read(cfg.key_pem, cfg.key, "key")?;
        Ok(cert.zip(key))
    }

    /// The PEM of the cluster CA the configuration trusts, if it names one.
    pub fn ca_pem(&self) -> anyhow::Result<Option<String>> {
        let cfg = self.config()?;
        if let Some(pem) = cfg.ca_pem {
            return Ok(Some(pem));
        }
        cfg.ca
            .map(|p| {
                std::fs::read_to_string(&p).with_context(|| format!("the CA file {}", p.display()))
            })
            .transpose()
    }
}
