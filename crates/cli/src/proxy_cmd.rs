//! `rkube proxy`: the service proxy on its own (`rkube node` runs it too), and the flags
//! both share.

use clap::Args;

#[derive(Args, Clone)]
pub struct ProxyFlags {
    /// The service proxy: `userspace` (the proxy carries connections; no root needed when
    /// ClusterIPs are in 127.0.0.0/8), `nftables` (DNAT rules; root), or `none`.
    #[arg(long, value_parser = ["userspace", "nftables", "none"], default_value = "userspace")]
    pub proxy_mode: String,
}

impl ProxyFlags {
    pub fn mode(&self) -> Option<node::proxy::Mode> {
        self.proxy_mode.parse().ok()
    }
}

#[derive(Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub client: crate::connect::ClientArgs,
    /// The node this proxy serves.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub proxy: ProxyFlags,
}

/// Completes on SIGINT or SIGTERM.
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let Some(mode) = args.proxy.mode() else {
        anyhow::bail!("--proxy-mode none: nothing to run");
    };
    let client = args.client.client()?;
    Ok(node::proxy::run(client, &args.name, mode, stop_signal()).await?)
}
