//! `rkube cloud-controller-manager`: the loops that need a cloud provider, a gRPC client
//! of the apiserver and of a provider plugin. `rkube cloud-provider local`: the built-in
//! provider, as a plugin process like any other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args, Subcommand};
use client::runtime::CancellationToken;
use controllers::cloud::plugin::Address;
use controllers::cloud::{self, CloudConfig};

/// The environment variable that tells a plugin started with `--cloud-plugin-exec` where
/// to listen.
pub const PLUGIN_SOCKET_ENV: &str = "RKUBE_CLOUD_PLUGIN_SOCKET";
/// Set for a plugin the cloud-controller-manager started. Its stdin is a pipe the manager
/// holds open: a plugin must stop when its stdin reaches end of file, which happens however
/// the manager ends, so that no plugin outlives it.
const PLUGIN_PARENT_ENV: &str = "RKUBE_CLOUD_PLUGIN_PARENT";

/// Where the cloud provider plugin is, or how to start it.
#[derive(Args, Clone, Default)]
pub struct PluginArgs {
    /// The provider plugin's address: `unix:///run/rkube/provider.sock`, or
    /// `https://HOST:PORT` (mutual TLS: this component's client certificate, and the
    /// plugin's serving certificate checked against `--cloud-plugin-ca-file`, by default
    /// the cluster CA).
    #[arg(long)]
    pub cloud_plugin: Option<String>,
    #[arg(long)]
    pub cloud_plugin_ca_file: Option<PathBuf>,
    /// Start the provider plugin as a child process (restarted when it exits); it listens
    /// on the socket named by RKUBE_CLOUD_PLUGIN_SOCKET.
    #[arg(long, conflicts_with = "cloud_plugin")]
    pub cloud_plugin_exec: Option<PathBuf>,
    /// An argument of the plugin started with `--cloud-plugin-exec` (repeatable; it may
    /// start with `-`).
    #[arg(long, allow_hyphen_values = true)]
    pub cloud_plugin_arg: Vec<String>,
}

/// A plugin, reachable at `address`; one started by this process runs in `child` (which
/// restarts it) and its socket lives in `dir`. Dropping it stops the plugin.
pub struct Provider {
    pub address: Address,
    pub child: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    _dir: Option<tempfile::TempDir>,
}

impl PluginArgs {
    pub fn is_set(&self) -> bool {
        self.cloud_plugin.is_some() || self.cloud_plugin_exec.is_some()
    }

    /// The plugin these flags name; with `--cloud-plugin-exec`, its supervisor (to run).
    /// An `https://` plugin is dialed with `client` (the CA and the client certificate and
    /// key, as PEM).
    pub fn provider(&self, client: Option<(String, String, String)>) -> anyhow::Result<Provider> {
        let mut dir = None;
        let (address, child) = match (&self.cloud_plugin, &self.cloud_plugin_exec) {
            (Some(s), _) if s.starts_with("https://") => (self.tcp(s, client)?, None),
            (Some(s), _) => (
                Address::parse_unix(s).with_context(|| {
                    format!("--cloud-plugin {s:?}: not unix:///ABSOLUTE/PATH nor https://HOST:PORT")
                })?,
                None,
            ),
            (None, Some(exe)) => {
                let d = plugin_dir(&std::env::temp_dir())
                    .context("a directory for the plugin's socket")?;
                let socket = d.path().join("provider.sock");
                dir = Some(d);
                let sup = supervise(exe.clone(), self.cloud_plugin_arg.clone(), socket.clone());
                let sup: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
                    Box::pin(sup);
                (Address::Unix(socket), Some(sup))
            }
            (None, None) => anyhow::bail!("--cloud-plugin or --cloud-plugin-exec is required"),
        };
        Ok(Provider {
            address,
            child,
            _dir: dir,
        })
    }
}

const PLUGIN_DIR_PREFIX: &str = "rkube-cloud-plugin-";

/// A directory under `tmp` for the socket of a plugin this process starts, named with its
/// pid; the directories of processes that are gone (killed before they could remove
/// theirs) are removed first.
fn plugin_dir(tmp: &Path) -> std::io::Result<tempfile::TempDir> {
    remove_orphans(tmp);
    tempfile::Builder::new()
        .prefix(&format!("{PLUGIN_DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(tmp)
}

fn remove_orphans(tmp: &Path) {
    for e in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = name
            .strip_prefix(PLUGIN_DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

impl PluginArgs {
    fn tcp(&self, url: &str, client: Option<(String, String, String)>) -> anyhow::Result<Address> {
        let Some((ca, cert, key)) = client else {
            anyhow::bail!("--cloud-plugin {url}: mutual TLS needs a client certificate in the client configuration");
        };
        let ca = match &self.cloud_plugin_ca_file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("--cloud-plugin-ca-file {}", f.display()))?,
            None => ca,
        };
        Address::tcp(url, &ca, &cert, &key)
            .with_context(|| format!("--cloud-plugin {url}: not https://HOST:PORT"))
    }
}

impl Provider {
    /// Runs the plugin's supervisor, if this process started the plugin; else never ends.
    pub async fn supervise(&mut self) {
        match self.child.as_mut() {
            Some(c) => c.await,
            None => std::future::pending().await,
        }
    }
}

#[derive(Args, Clone)]
pub struct CloudControllerManagerArgs {
    #[command(flatten)]
    pub client: crate::connect::ClientArgs,
    #[command(flatten)]
    pub plugin: PluginArgs,
    #[command(flatten)]
    pub secure: crate::secure_port::SecurePortArgs,
    /// Act only while holding the kube-system/cloud-controller-manager Lease.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub leader_elect: bool,
    /// This candidate's name in the Lease (default: host name and process id).
    #[arg(long)]
    pub leader_elect_identity: Option<String>,
    #[arg(long, default_value_t = 15_000)]
    pub leader_elect_lease_duration_ms: u64,
    /// How often every node that is not Ready is looked up with the provider.
    #[arg(long, default_value_t = 5_000)]
    pub node_monitor_period_ms: u64,
    /// Each call to the plugin has this long.
    #[arg(long, default_value_t = 30_000)]
    pub cloud_call_timeout_ms: u64,
    /// Route every node's pod CIDR to the node (when the provider offers routes).
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub configure_cloud_routes: bool,
    /// The pod network; routes inside it belong to the route loop.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    #[arg(long, default_value_t = 10_000)]
    pub route_reconciliation_period_ms: u64,
}

#[derive(Subcommand, Clone)]
pub enum ProviderCommand {
    /// The built-in provider: instances from an inventory file.
    Local(LocalArgs),
    /// The built-in provider's agent on every machine: installs the routes to the other
    /// nodes' pod CIDRs (`local --route-state …`) and announces the load balancer
    /// addresses its node holds (`local --lb-announce nodes`), as the provider says.
    LocalAgent(LocalAgentArgs),
}

#[derive(Args, Clone)]
pub struct LocalAgentArgs {
    /// The provider: https://HOST:PORT.
    #[arg(long)]
    pub provider: String,
    /// The CA of the provider's serving certificate.
    #[arg(long)]
    pub ca_file: PathBuf,
    /// This node's client certificate (system:node:<name>, group system:nodes), e.g. the
    /// node agent's own.
    #[arg(long)]
    pub cert_file: PathBuf,
    #[arg(long)]
    pub key_file: PathBuf,
    /// The interface load balancer addresses this node holds go on (default: the
    /// interface of the route to each address).
    #[arg(long)]
    pub lb_interface: Option<String>,
}

#[derive(Args, Clone)]
pub struct LocalArgs {
    /// The unix socket to listen on (default: RKUBE_CLOUD_PLUGIN_SOCKET).
    #[arg(long, env = PLUGIN_SOCKET_ENV, required_unless_present = "listen")]
    pub socket: Option<PathBuf>,
    /// Listen on TCP instead, with mutual TLS (`--tls-cert-file`, `--tls-private-key-file`,
    /// `--client-ca-file`).
    #[arg(long, conflicts_with = "socket", requires_all = ["tls_cert_file", "tls_private_key_file", "client_ca_file"])]
    pub listen: Option<std::net::SocketAddr>,
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// Callers need a client certificate from this CA.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// The users (certificate common names) that may call (repeatable).
    #[arg(long, default_value = "system:cloud-controller-manager")]
    pub allow_user: Vec<String>,
    /// The machines: YAML or JSON, read again at every call.
    #[arg(long)]
    pub inventory: PathBuf,
    /// Offer load balancers, with addresses from this range (e.g. 127.200.0.0/24; an
    /// address outside 127.0.0.0/8 must be local to this machine).
    #[arg(long)]
    pub lb_pool: Option<cloud_local::balancer::Pool>,
    /// Where the load balancers are kept, to serve them again after a restart (default:
    /// `local-balancers.json` beside the inventory).
    #[arg(long)]
    pub lb_state: Option<PathBuf>,
    /// Who announces the load balancers' addresses: `provider` (this machine listens on
    /// them all) or `nodes` (one node holds each, through its `local-agent`, and another
    /// takes over when it goes).
    #[arg(long, default_value = "provider")]
    pub lb_announce: cloud_local::balancer::Announce,
    /// Offer routes, kept in this file; every machine's `local-agent` installs them.
    #[arg(long)]
    pub route_state: Option<PathBuf>,
    /// Offer volumes, kept under this directory: sparse files attached as loop devices
    /// (StorageClass parameter `type: block`, the default) or directories (`type:
    /// directory`). It must be on the nodes' machine.
    #[arg(long)]
    pub volume_pool: Option<PathBuf>,
}

fn read(flag: &str, path: &Option<PathBuf>) -> anyhow::Result<String> {
    let p = path
        .as_ref()
        .with_context(|| format!("{flag} is required with --listen"))?;
    std::fs::read_to_string(p).with_context(|| format!("{flag} {}", p.display()))
}

async fn run_local(
    a: LocalArgs,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let balancers = match a.lb_pool {
        Some(pool) => {
            let state = a
                .lb_state
                .clone()
                .unwrap_or_else(|| a.inventory.with_file_name("local-balancers.json"));
            Some(cloud_local::balancer::Balancers::restore(pool, state, a.lb_announce).await?)
        }
        None => None,
    };
    let routes = match &a.route_state {
        Some(state) => Some(
            cloud_local::routes::Routes::restore(state.clone())
                .with_context(|| format!("--route-state {}", state.display()))?,
        ),
        None => None,
    };
    let mut local = cloud_local::Local::new(a.inventory.clone(), balancers, routes)
        .with_context(|| format!("--inventory {}", a.inventory.display()))?;
    if let Some(pool) = &a.volume_pool {
        let pool = cloud_local::volumes::Pool::open(pool.clone())
            .with_context(|| format!("--volume-pool {}", pool.display()))?;
        local = local.with_volumes(pool);
    }
    let tls = tls_of(&a)?;
    let served = serve_local(a.listen, a.socket.clone(), tls, local, stop).await;
    // Stopping: the volumes' loop devices go with the provider that set them up.
    if let Some(pool) = &a.volume_pool {
        for dev in cloud_local::volumes::release_pool(pool) {
            tracing::info!(device = %dev, "loop device detached");
        }
    }
    served
}

/// The TLS of `--listen`, when given.
fn tls_of(a: &LocalArgs) -> anyhow::Result<Option<cloud_local::TcpTls>> {
    if a.listen.is_none() {
        return Ok(None);
    }
    Ok(Some(cloud_local::TcpTls {
        cert_pem: read("--tls-cert-file", &a.tls_cert_file)?,
        key_pem: read("--tls-private-key-file", &a.tls_private_key_file)?,
        client_ca_pem: read("--client-ca-file", &a.client_ca_file)?,
        allowed_users: a.allow_user.clone(),
    }))
}

/// Serves the provider on `--listen` (TCP with `tls`) or on `--socket`.
async fn serve_local(
    listen: Option<std::net::SocketAddr>,
    socket: Option<PathBuf>,
    tls: Option<cloud_local::TcpTls>,
    local: cloud_local::Local,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (Some(addr), Some(tls)) = (listen, tls) else {
        let socket = socket.context("--socket or --listen is required")?;
        return Ok(cloud_local::serve(&socket, local, stop).await?);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--listen {addr}"))?;
    Ok(cloud_local::serve_tcp(listener, tls, local, stop).await?)
}

async fn run_local_agent(
    a: LocalAgentArgs,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let file = |flag: &str, p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("{flag} {}", p.display()))
    };
    let cfg = cloud_local::agent::AgentConfig {
        provider: a.provider,
        ca_pem: file("--ca-file", &a.ca_file)?,
        cert_pem: file("--cert-file", &a.cert_file)?,
        key_pem: file("--key-file", &a.key_file)?,
        lb_interface: a.lb_interface,
    };
    Ok(cloud_local::agent::run(cfg, stop).await?)
}

pub async fn run_provider(cmd: ProviderCommand) -> anyhow::Result<()> {
    let stop = async {
        tokio::select! {
            () = crate::proxy_cmd::stop_signal() => {}
            () = parent_gone() => tracing::info!("the cloud-controller-manager is gone; stopping"),
        }
    };
    match cmd {
        ProviderCommand::Local(a) => run_local(a, stop).await,
        ProviderCommand::LocalAgent(a) => run_local_agent(a, stop).await,
    }
}

/// Resolves when the cloud-controller-manager that started this plugin is gone (its pipe
/// on stdin ends); never for a plugin started otherwise.
async fn parent_gone() {
    if std::env::var_os(PLUGIN_PARENT_ENV).is_none() {
        return std::future::pending().await;
    }
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    loop {
        match tokio::io::AsyncReadExt::read(&mut stdin, &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The configuration of a cloud-controller-manager inside `rkube server`: the
/// controller-manager's identity, Lease timings, node monitor period and cluster CIDR.
pub fn in_process_config(
    cm: &crate::controller_manager_cmd::ControllerManagerOptions,
    provider: &Provider,
) -> anyhow::Result<CloudConfig> {
    let identity = cm
        .cm_leader_elect_identity
        .clone()
        .unwrap_or_else(crate::scheduler_cmd::default_identity);
    let mut cfg = CloudConfig::new(&identity, provider.address.clone());
    match &mut cfg.leader_election {
        Some(le) if cm.cm_leader_elect => {
            le.lease_duration = Duration::from_millis(cm.cm_leader_elect_lease_duration_ms);
            le.renew_deadline = Duration::from_millis(cm.cm_leader_elect_renew_deadline_ms);
            le.retry_period = Duration::from_millis(cm.cm_leader_elect_retry_period_ms);
        }
        _ => cfg.leader_election = None,
    }
    cfg.node_monitor_period = Duration::from_millis(cm.node_monitor_period_ms.max(100));
    cfg.route_period = Duration::from_millis(cm.route_reconciliation_period_ms.max(100));
    if !cm.cluster_cidr.is_empty() {
        if controllers::node_lifecycle::parse_cidr(&cm.cluster_cidr).is_none() {
            anyhow::bail!("--cluster-cidr {:?}: not an IPv4 CIDR", cm.cluster_cidr);
        }
        cfg.cluster_cidr = Some(cm.cluster_cidr.clone());
    }
    Ok(cfg)
}

pub async fn run(args: CloudControllerManagerArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    let client_tls = match (args.client.ca_pem()?, args.client.identity_pem()?) {
        (Some(ca), Some((cert, key))) => Some((ca, cert, key)),
        _ => None,
    };
    let mut provider = args.plugin.provider(client_tls)?;
    let identity = args
        .leader_elect_identity
        .clone()
        .unwrap_or_else(crate::scheduler_cmd::default_identity);
    let mut cfg = CloudConfig::new(&identity, provider.address.clone());
    match &mut cfg.leader_election {
        Some(le) if args.leader_elect => {
            le.lease_duration = Duration::from_millis(args.leader_elect_lease_duration_ms);
        }
        _ => cfg.leader_election = None,
    }
    cfg.node_monitor_period = Duration::from_millis(args.node_monitor_period_ms.max(100));
    cfg.calls.timeout = Duration::from_millis(args.cloud_call_timeout_ms.max(100));
    if args.configure_cloud_routes {
        if controllers::node_lifecycle::parse_cidr(&args.cluster_cidr).is_none() {
            anyhow::bail!("--cluster-cidr {:?}: not an IPv4 CIDR", args.cluster_cidr);
        }
        cfg.cluster_cidr = Some(args.cluster_cidr.clone());
    }
    cfg.route_period = Duration::from_millis(args.route_reconciliation_period_ms.max(100));
    let port = crate::secure_port::start(
        &args.secure,
        10258,
        "cloud-controller-manager",
        &args.client,
        &client,
        &cfg.metrics,
    )
    .await?;
    let served = async {
        match port {
            Some(p) => p.serve().await,
            None => std::future::pending().await,
        }
    };
    let shutdown = CancellationToken::new();
    tokio::select! {
        r = cloud::run(client, cfg, shutdown.clone()) => r?,
        () = provider.supervise() => {}
        () = served => {}
        () = crate::proxy_cmd::stop_signal() => {
            tracing::info!("stopping");
            shutdown.cancel();
        }
    }
    Ok(())
}

/// Runs the plugin `exe` with `args`, listening on `socket`, and starts it again whenever
/// it exits (after a pause that doubles up to 30 s while it keeps failing fast). Dropping
/// the future kills the plugin.
async fn supervise(exe: PathBuf, args: Vec<String>, socket: PathBuf) {
    let mut pause = Duration::from_millis(500);
    loop {
        let started = std::time::Instant::now();
        match spawn(&exe, &args, &socket) {
            Ok(mut child) => {
                // Held open while the child runs (`wait` would close it), and closed when
                // this process goes, however it goes.
                let _stdin = child.stdin.take();
                match child.wait().await {
                    Ok(st) => {
                        tracing::warn!(plugin = %exe.display(), status = %st, "the cloud provider plugin exited; restarting it")
                    }
                    Err(e) => {
                        tracing::warn!(plugin = %exe.display(), error = %e, "waiting for the cloud provider plugin failed")
                    }
                }
            }
            Err(e) => {
                tracing::error!(plugin = %exe.display(), error = %e, "starting the cloud provider plugin failed")
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            pause = Duration::from_millis(500);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

fn spawn(exe: &Path, args: &[String], socket: &Path) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(exe)
        .args(args)
        .env(PLUGIN_SOCKET_ENV, socket)
        .env(PLUGIN_PARENT_ENV, std::process::id().to_string())
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_directories_of_processes_that_are_gone_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp
            .path()
            .join(format!("{PLUGIN_DIR_PREFIX}{}-abc", u32::MAX - 1));
        let other = tmp.path().join("rkube-cloud-plugin-unrelated");
        std::fs::create_dir_all(&gone).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let mine = plugin_dir(tmp.path()).unwrap();
        assert!(!gone.exists(), "a dead process's directory is removed");
        assert!(
            other.exists(),
            "a directory not named with a pid is left alone"
        );
        let name = mine
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert!(name.starts_with(&format!("{PLUGIN_DIR_PREFIX}{}-", std::process::id())));
        let again = plugin_dir(tmp.path()).unwrap();
        assert!(mine.path().exists(), "a live process's directory stays");
        drop((mine, again));
    }
}
