//! `rkube store`: one member of the replicated store on its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use raft_store::{ClusterState, Store, StoreConfig};

#[derive(Clone, Copy, ValueEnum)]
pub enum InitialClusterState {
    New,
    Existing,
}

/// Flags shared by every command that runs a store member (the apiserver embeds the same).
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// This member's name; must appear in --initial-cluster.
    #[arg(long)]
    pub name: String,
    /// Directory for the member's data; created if missing.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address for etcd v3 API clients.
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub client_listen: SocketAddr,
    /// Address for Raft traffic from the other members.
    #[arg(long, default_value = "127.0.0.1:2380")]
    pub peer_listen: SocketAddr,
    /// Founding members as name=host:port of their peer listeners; identical on every member.
    #[arg(long)]
    pub initial_cluster: String,
    /// `new` founds the cluster; `existing` joins one after MemberAdd.
    #[arg(long, value_enum, default_value = "new")]
    pub initial_cluster_state: InitialClusterState,
    /// Client URL to publish in the member list (defaults to http://<client-listen>).
    #[arg(long)]
    pub advertise_client_url: Option<String>,
    /// Largest accepted request in bytes.
    #[arg(long, default_value_t = 1536 * 1024)]
    pub max_request_bytes: usize,
    /// Most operations in one transaction branch.
    #[arg(long, default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Raft heartbeat interval in milliseconds; also the time a replication RPC may take.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_interval_ms: u64,
    /// Raft election timeout in milliseconds (randomised up to 1.5 times this).
    #[arg(long, default_value_t = 100)]
    pub election_timeout_ms: u64,
    /// Revisions of history kept by automatic compaction; 0 turns it off.
    #[arg(long, default_value_t = 10_000)]
    pub auto_compaction_retention: i64,
    /// Log entries between snapshots.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_count: u64,
    /// Idle interval between progress notifications of watches that asked for them, in ms.
    #[arg(long, default_value_t = 600_000)]
    pub watch_progress_notify_interval_ms: u64,
}

impl StoreArgs {
    pub fn config(&self) -> anyhow::Result<StoreConfig> {
        let initial = StoreConfig::parse_initial_cluster(&self.initial_cluster)?;
        let mut cfg =
            StoreConfig::new(&self.name, self.data_dir.clone(), self.peer_listen, initial);
        cfg.initial_cluster_state = match self.initial_cluster_state {
            InitialClusterState::New => ClusterState::New,
            InitialClusterState::Existing => ClusterState::Existing,
        };
        cfg.client_urls = vec![self
            .advertise_client_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.client_listen))];
        cfg.limits.max_request_bytes = self.max_request_bytes;
        cfg.limits.max_txn_ops = self.max_txn_ops;
        cfg.heartbeat_interval = Duration::from_millis(self.heartbeat_interval_ms);
        cfg.election_timeout = Duration::from_millis(self.election_timeout_ms);
        cfg.auto_compaction_retention = self.auto_compaction_retention;
        cfg.snapshot_entries = self.snapshot_count;
        cfg.watch_progress_interval = Duration::from_millis(self.watch_progress_notify_interval_ms);
        Ok(cfg)
    }
}

pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let listener = tokio::net::TcpListener::bind(args.client_listen)
        .await
        .with_context(|| format!("--client-listen {}", args.client_listen))?;
    let store = Store::open(cfg).await?;
    tracing::info!(name = %args.name, id = %format!("{:x}", store.id()), client = %args.client_listen, peer = %args.peer_listen, "store member started");
    tokio::select! {
        r = raft_store::etcd::serve(store.clone(), listener) => r.context("etcd API listener")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
    }
    store.shutdown().await;
    Ok(())
}
