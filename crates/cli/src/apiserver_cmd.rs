//! `rkube apiserver` and `rkube server`: a control-plane member — the store and the API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use apiserver::tls::TlsFiles;
use apiserver::{ApiServer, ApiServerConfig};
use clap::{ArgAction, Args};

use crate::store_cmd::StoreArgs;

#[derive(Args, Clone)]
pub struct ApiServerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The API port: the rkube API, the etcd v3 API, /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Serving certificate (PEM); with --tls-private-key-file turns TLS on.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA (PEM) whose client certificates authenticate users (CN = user, O = groups).
    #[arg(long, requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
    /// Serve requests without credentials as system:anonymous.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub anonymous_auth: bool,
    /// Largest object accepted, in bytes of JSON.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_object_bytes: usize,
    /// Interval of BOOKMARK events on watches that ask for them, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub bookmark_interval_ms: u64,
    /// Where Service ClusterIPs come from. Every member must be given the same range. A
    /// range inside 127.0.0.0/8 lets the userspace proxy serve ClusterIPs without root.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// Where Service NodePorts come from, FIRST-LAST.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// The tolerationSeconds of the not-ready toleration added to every pod without one.
    #[arg(long, default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// The tolerationSeconds of the unreachable toleration added to every pod without one.
    #[arg(long, default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
    /// How often the leader checks Service allocations against the Services, in
    /// milliseconds.
    #[arg(long, default_value_t = 180_000)]
    pub service_allocation_repair_interval_ms: u64,
    /// Also write the client configuration (endpoints) here; it is always written to
    /// <data-dir>/client.yaml.
    #[arg(long)]
    pub write_client_config: Option<PathBuf>,
}

impl ApiServerArgs {
    pub fn config(&self) -> anyhow::Result<ApiServerConfig> {
        let mut cfg = ApiServerConfig::new(self.store.config()?, self.listen);
        cfg.token_file = self.token_auth_file.clone();
        cfg.tls = match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.client_ca_file.clone(),
            }),
            _ => None,
        };
        cfg.anonymous_auth = self.anonymous_auth;
        cfg.max_object_bytes = self.max_object_bytes;
        cfg.bookmark_interval = Duration::from_millis(self.bookmark_interval_ms.max(100));
        cfg.default_not_ready_toleration_seconds = self.default_not_ready_toleration_seconds;
        cfg.default_unreachable_toleration_seconds = self.default_unreachable_toleration_seconds;
        cfg.service_allocation_repair_interval =
            Duration::from_millis(self.service_allocation_repair_interval_ms.max(100));
        cfg.service_ranges = apiserver::services::ServiceRanges {
            cluster_ips: self
                .service_cluster_ip_range
                .parse()
                .map_err(|e| anyhow::anyhow!("--service-cluster-ip-range {e}"))?,
            node_ports: apiserver::services::parse_port_range(&self.service_node_port_range)
                .map_err(|e| anyhow::anyhow!("--service-node-port-range {e}"))?,
        };
        Ok(cfg)
    }
}

fn client_config_text(server: &ApiServer, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let mut servers = vec![format!("{scheme}://{}", server.local_addr)];
    for m in server.api.store.members() {
        for u in m.client_ur_ls {
            if !servers.contains(&u) {
                servers.push(u);
            }
        }
    }
    let list: Vec<String> = servers.iter().map(|s| format!("  - {s}")).collect();
    format!(
        "# rkube client configuration, written by `rkube server`.\nservers:\n{}\n",
        list.join("\n")
    )
}

/// `rkube server`: an apiserver member plus the control-plane components, which reach the
/// API through the client crate as any other client would.
#[derive(Args, Clone)]
pub struct ServerArgs {
    #[command(flatten)]
    pub apiserver: ApiServerArgs,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    pub disable_scheduler: bool,
    /// Do not run the controller-manager in this process.
    #[arg(long)]
    pub disable_controller_manager: bool,
    /// Client configuration the in-process components use (default: this member's own
    /// address, with the serving certificate as the CA when TLS is on).
    #[arg(long)]
    pub components_config: Option<PathBuf>,
    #[command(flatten)]
    pub scheduler: crate::scheduler_cmd::SchedulerOptions,
    #[command(flatten)]
    pub controller_manager: crate::controller_manager_cmd::ControllerManagerOptions,
}

/// The control-plane components `rkube server` runs beside its apiserver.
pub struct Components {
    pub config: Option<PathBuf>,
    pub scheduler: Option<controllers::scheduler::SchedulerConfig>,
    pub controller_manager: Option<controllers::manager::ManagerConfig>,
}

pub async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let components = Components {
        config: args.components_config.clone(),
        scheduler: (!args.disable_scheduler).then(|| args.scheduler.config()),
        controller_manager: (!args.disable_controller_manager)
            .then(|| args.controller_manager.config()),
    };
    run(args.apiserver, Some(components)).await
}

fn components_client(
    server: &ApiServer,
    args: &ApiServerArgs,
    config: Option<&std::path::Path>,
) -> anyhow::Result<client::Client> {
    let cfg = match config {
        Some(p) => client::ClientConfig::load(p)?,
        None => {
            let tls = args.tls_cert_file.is_some();
            let scheme = if tls { "https" } else { "http" };
            let mut cfg =
                client::ClientConfig::from_servers(&format!("{scheme}://{}", server.local_addr));
            cfg.ca = args.tls_cert_file.clone();
            cfg
        }
    };
    Ok(client::Client::new(cfg)?)
}

pub async fn run(args: ApiServerArgs, components: Option<Components>) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let tls = cfg.tls.is_some();
    let server = ApiServer::start(cfg)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("starting the apiserver")?;
    let text = client_config_text(&server, tls);
    let mut paths = vec![args.store.data_dir.join("client.yaml")];
    paths.extend(args.write_client_config.iter().cloned());
    for p in paths {
        std::fs::write(&p, &text).with_context(|| format!("writing {}", p.display()))?;
    }
    let etcd = match args.store.client_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--client-listen {addr}"))?;
            Some(tokio::spawn(raft_store::etcd::serve(
                server.api.store.clone(),
                l,
            )))
        }
        None => None,
    };
    let mut running = Vec::new();
    if let Some(c) = components {
        let client = components_client(&server, &args, c.config.as_deref())?;
        if let Some(sched) = c.scheduler {
            running.push(tokio::spawn(crate::scheduler_cmd::run_with(
                client.clone(),
                sched,
            )));
        }
        if let Some(cm) = c.controller_manager {
            running.push(tokio::spawn(controllers::manager::run(client, cm)));
        }
    }
    tokio::signal::ctrl_c().await.ok();
    tracing::info!("interrupted; stopping");
    for t in running {
        t.abort();
    }
    if let Some(e) = etcd {
        e.abort();
    }
    server.shutdown().await;
    Ok(())
}
