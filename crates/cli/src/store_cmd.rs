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
    /// Address for etcd v3 API clients (`rkube store`: 127.0.0.1:2379 when unset).
    #[arg(long)]
    pub client_listen: Option<SocketAddr>,
    /// Address for Raft traffic from the other members (default: this member's address in
    /// --initial-cluster, so every member can run the same command but for --name).
    #[arg(long)]
    pub peer_listen: Option<SocketAddr>,
    /// Founding members as name=host:port of their peer listeners; identical on every member.
    #[arg(long)]
    pub initial_cluster: String,
    /// `new` founds the cluster; `existing` joins one after MemberAdd.
    #[arg(long, value_enum, default_value = "new")]
    pub initial_cluster_state: InitialClusterState,
    /// Client URL to publish in the member list (defaults to the address clients use).
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
    /// Dial members at other addresses than they advertise, as ADVERTISED=DIAL pairs
    /// (host:port each, comma-separated): for proxies or NAT between members.
    #[arg(long, value_delimiter = ',')]
    pub peer_dial_override: Vec<String>,
    /// Idle interval between progress notifications of watches that asked for them, in ms.
    #[arg(long, default_value_t = 600_000)]
    pub watch_progress_notify_interval_ms: u64,
    /// Largest message between members, in bytes (at least 4 x --max-request-bytes + 1 MiB).
    #[arg(long, default_value_t = 64 << 20)]
    pub max_peer_message_bytes: usize,
    #[command(flatten)]
    pub security: crate::security::SecurityArgs,
}

impl StoreArgs {
    pub fn config(&self) -> anyhow::Result<StoreConfig> {
        let initial = StoreConfig::parse_initial_cluster(&self.initial_cluster)?;
        let peer_listen = match (self.peer_listen, initial.get(&self.name)) {
            (Some(a), _) => a,
            (None, Some(own)) => own
                .parse()
                .with_context(|| format!("--initial-cluster: the address of {}", self.name))?,
            (None, None) => SocketAddr::from(([127, 0, 0, 1], 2380)),
        };
        let mut cfg = StoreConfig::new(&self.name, self.data_dir.clone(), peer_listen, initial);
        cfg.initial_cluster_state = match self.initial_cluster_state {
            InitialClusterState::New => ClusterState::New,
            InitialClusterState::Existing => ClusterState::Existing,
        };
        cfg.client_urls = self.advertise_client_url.iter().cloned().collect();
        cfg.limits.max_request_bytes = self.max_request_bytes;
        cfg.limits.max_txn_ops = self.max_txn_ops;
        cfg.heartbeat_interval = Duration::from_millis(self.heartbeat_interval_ms);
        cfg.election_timeout = Duration::from_millis(self.election_timeout_ms);
        cfg.auto_compaction_retention = self.auto_compaction_retention;
        cfg.snapshot_entries = self.snapshot_count;
        cfg.watch_progress_interval = Duration::from_millis(self.watch_progress_notify_interval_ms);
        cfg.max_peer_message_bytes = self.max_peer_message_bytes;
        for pair in &self.peer_dial_override {
            let (from, to) = pair
                .split_once('=')
                .with_context(|| format!("--peer-dial-override {pair:?}: want ADVERTISED=DIAL"))?;
            cfg.peer_dial_overrides
                .insert(from.to_string(), to.to_string());
        }
        Ok(cfg)
    }
}

pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let mut cfg = args.config()?;
    let client_listen = args
        .client_listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 2379)));
    let pki = args.security.member(
        &args.name,
        &args.data_dir,
        &[client_listen, cfg.peer_listen],
        &[],
    )?;
    if let Some(p) = &pki {
        cfg.tls = Some(p.member.clone());
        write_admin_files(p)?;
    }
    if cfg.client_urls.is_empty() {
        cfg.client_urls = vec![crate::security::url_of(client_listen, pki.is_some())];
    }
    let listener = tokio::net::TcpListener::bind(client_listen)
        .await
        .with_context(|| format!("--client-listen {client_listen}"))?;
    let peer = cfg.peer_listen;
    let store = Store::open(cfg).await?;
    tracing::info!(name = %args.name, id = %format!("{:x}", store.id()), client = %client_listen, %peer, "store member started");
    let tls = pki.as_ref().map(|p| p.member.clone());
    tokio::select! {
        r = raft_store::etcd::serve(store.clone(), listener, tls) => {
            r.map_err(|e| anyhow::anyhow!("etcd API listener: {e}"))?
        }
        e = store.fatal() => crate::exit_on_fatal(&e),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
    }
    store.shutdown().await;
    Ok(())
}

/// The admin client certificate (`system:masters`) for etcdctl and `rkube ctl`.
pub fn write_admin_files(
    p: &crate::security::MemberPki,
) -> anyhow::Result<crate::security::CredentialFiles> {
    p.client_files(
        "admin",
        pki::ADMIN_USER,
        &[pki::MASTERS_GROUP],
        Duration::from_secs(365 * 24 * 3600),
    )
}
