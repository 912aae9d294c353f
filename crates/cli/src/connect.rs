//! How component commands find the apiserver: `--server`, `--config`, `--token`.

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
        let cfg = crate::ctl::resolve_client_config(
            self.server.as_deref(),
            self.config.as_deref(),
            self.token.as_deref(),
        )?;
        Ok(Client::new(cfg)?)
    }
}
