//! `rkube up`: a whole local cluster in one command — control-plane members
//! (`rkube server`, each with the cloud-controller-manager), worker nodes (`rkube node`,
//! process runtime, userspace proxy) and the built-in `local` cloud provider, each its own
//! process with its own data directory under `--dir`. It reports progress, writes
//! the client configuration, and stops everything (pods included) on Ctrl-C; started again
//! in the same directory it brings the same cluster back. `rkube up --down` removes it.

mod claims;
mod cloud;
mod conflicts;
pub(crate) mod creds;
mod kubeconfig;
mod plan;
mod status;
mod supervise;
mod wait;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use k8s_openapi::api::core::v1::Node;
use tokio::sync::mpsc;

use self::plan::{Proc, State};
use self::wait::{wait_leader, wait_member_ok, wait_node_ready};

#[derive(Args)]
pub struct UpArgs {
    /// Where the cluster lives: data directories, logs, client configuration.
    #[arg(long, default_value = ".rkube")]
    pub dir: PathBuf,
    /// Control-plane members.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Worker nodes.
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// Member i serves its API on BASE+10i and Raft on BASE+10i+1 (127.0.0.1); 0 picks
    /// free ports.
    #[arg(long, default_value_t = 6443)]
    pub base_port: u16,
    /// Pod networking: `auto` (own network per pod when root and the CNI plugins are
    /// installed, else the host network), `cni` or `host`.
    #[arg(long, default_value = "auto")]
    pub pod_network: String,
    /// Pod IPs; every node gets a /24 of it (default: 10.244.0.0/16, or the next /16 the
    /// host does not route yet).
    #[arg(long)]
    pub cluster_cidr: Option<String>,
    /// Service ClusterIPs (default 10.96.0.0/16 as root, 127.96.0.0/16 otherwise, so the
    /// userspace proxy needs no root; or the next /16 the host does not use yet).
    #[arg(long)]
    pub service_cidr: Option<String>,
    /// NodePorts (default 30000-32767, or a range below it that no other `rkube up`
    /// cluster on this host holds).
    #[arg(long)]
    pub service_node_port_range: Option<String>,
    /// Also write the client configuration here (default: ~/.rkube/config).
    #[arg(long)]
    pub write_config: Option<PathBuf>,
    /// Merge an `rkube` context into this kubeconfig (default: the first file of
    /// $KUBECONFIG, else ~/.kube/config); its server is a local balancer over the members.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where the kubeconfig's balancer listens (127.0.0.1); 0 picks a free port.
    #[arg(long, default_value_t = 6440)]
    pub balancer_port: u16,
    /// The cloud provider: `local` (the built-in one, as a process of the cluster: nodes
    /// are initialized by the cloud-controller-manager, and `type: LoadBalancer` Services
    /// get loopback addresses) or `none`.
    #[arg(long, default_value = "local")]
    pub cloud_provider: String,
    /// Load balancer addresses of the `local` provider (default: a /24 of 127.0.0.0/8 that
    /// depends on --dir).
    #[arg(long)]
    pub lb_pool: Option<String>,
    /// An extra flag for every member, e.g. `--server-arg=--node-monitor-grace-period-ms=5000`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// An extra flag for every node, e.g. `--node-arg=--eviction-hard=`.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Stop the cluster in --dir (if it runs) and remove the directory.
    #[arg(long)]
    pub down: bool,
    /// `always`: a member, node or provider that exits is started again, with back-off;
    /// `never`: it is reported, and left for you (or a test) to start.
    #[arg(long, value_parser = ["always", "never"], default_value = "always")]
    pub restart: String,
    /// Print the members (with the leader), nodes and their health, and exit.
    #[arg(long, conflicts_with = "down")]
    pub status: bool,
}

/// What a child process reports when it exits.
struct Exit {
    name: String,
    status: String,
}

fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("logs").join(format!("{name}.log"))
}

fn spawn(
    exe: &Path,
    dir: &Path,
    p: &mut Proc,
    exits: &mpsc::UnboundedSender<Exit>,
) -> anyhow::Result<()> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(dir, &p.name))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(&p.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: Ctrl-C reaches `rkube up` alone, which stops the
        // processes in order.
        .process_group(0)
        // It stops (SIGTERM) when `rkube up` dies, even by SIGKILL: see `exit_with_parent`.
        .env(PARENT_ENV, std::process::id().to_string());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", p.name))?;
    p.pid = child.id();
    let (name, tx) = (p.name.clone(), exits.clone());
    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        let _ = tx.send(Exit { name, status });
    });
    Ok(())
}

/// Names the `rkube up` a process was started by.
const PARENT_ENV: &str = "RKUBE_UP_PARENT";

/// In a process `rkube up` started: asks the kernel for SIGTERM when `rkube up` dies, on
/// which members, nodes (stopping their pods and networks) and the provider stop cleanly;
/// and exits at once if it died already. Run first thing, before any thread exists.
pub fn exit_with_parent() {
    let parent = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    // Not for this process's own children (a node's shims): their parent is not `rkube up`.
    std::env::remove_var(PARENT_ENV);
    let Some(parent) = parent else {
        return;
    };
    let term = rustix::process::Signal::TERM;
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(term)) {
        eprintln!("rkube: cannot follow rkube up (pid {parent}): {e}");
    }
    let now = rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32);
    if now != Some(parent) {
        eprintln!("rkube: rkube up (pid {parent}) is gone; not starting");
        std::process::exit(1);
    }
}

fn send_signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

pub async fn run(a: UpArgs) -> anyhow::Result<()> {
    if a.down {
        return down(&a.dir).await;
    }
    if a.status {
        return status::print(&a.dir).await;
    }
    let started = Instant::now();
    let root = rustix::process::geteuid().is_root();
    let dir = a.dir.clone();
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("--dir {}", dir.display()))?;
    let previous = plan::load(&dir);
    if let Some(p) = previous
        .as_ref()
        .and_then(|s| s.pid)
        .filter(|p| plan::alive(*p))
    {
        anyhow::bail!(
            "a cluster from {} is running already (pid {p}); `rkube up --down --dir {}` stops and removes it",
            dir.display(),
            dir.display()
        );
    }
    // Ranges are chosen and claimed under the host's lock, so two `rkube up` never pick
    // the same; the claim lasts until this returns.
    let registry = claims::Registry::lock()?;
    let others = registry.others(&std::path::absolute(&dir)?);
    let mut state = match previous {
        Some(s) if s.members.len() == a.members && s.nodes.len() == a.nodes => {
            println!("bringing back the cluster in {}", dir.display());
            claims::still_free(&s.claim(&dir, 0), &others)?;
            s
        }
        _ => plan::plan(&a, root, &others)?,
    };
    state.pid = Some(std::process::id());
    let _claim = registry.hold(&state.claim(&dir, std::process::id()))?;
    drop(registry);
    let (tx, mut exits) = mpsc::unbounded_channel();

    if let Err(e) = bring_up(&a, &mut state, root, started, &tx, &mut exits).await {
        stop_all(&dir, &mut state, &mut exits).await?;
        return Err(e);
    }
    supervise::run(&dir, &mut state, &tx, &mut exits, a.restart == "always").await?;
    println!("stopping: nodes (and their pods), then members");
    stop_all(&dir, &mut state, &mut exits).await?;
    println!("stopped; `rkube up` brings it back, `rkube up --down` removes it");
    Ok(())
}

/// Starts the kubeconfig's balancer over the members and merges the `rkube` context.
async fn write_kubeconfig(
    a: &UpArgs,
    state: &State,
    admin: &client::ClientConfig,
    ca_pem: &str,
) -> anyhow::Result<()> {
    let Some(path) = a.kubeconfig.clone().or_else(kubeconfig::default_path) else {
        return Ok(());
    };
    let port = if a.base_port == 0 { 0 } else { a.balancer_port };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("--balancer-port {port}"))?;
    let addr = listener.local_addr()?;
    let members = state.members.iter().filter_map(|m| m.api).collect();
    tokio::spawn(kubeconfig::balance(listener, members));
    let read = |p: &Option<PathBuf>, what: &str| -> anyhow::Result<String> {
        let p = p
            .as_ref()
            .with_context(|| format!("the admin configuration names no {what}"))?;
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let (cert, key) = (read(&admin.cert, "certificate")?, read(&admin.key, "key")?);
    let creds = kubeconfig::Credentials {
        server: format!("https://{addr}"),
        ca_pem,
        cert_pem: &cert,
        key_pem: &key,
    };
    kubeconfig::merge(&path, &creds)?;
    println!(
        "kubeconfig: context {:?} in {} (server {addr}, balanced over the members)",
        kubeconfig::CONTEXT,
        path.display()
    );
    Ok(())
}

/// Starts the members, then the nodes, reporting each step; fails when a process exits
/// or a step takes too long.
async fn bring_up(
    a: &UpArgs,
    state: &mut State,
    root: bool,
    started: Instant,
    tx: &mpsc::UnboundedSender<Exit>,
    exits: &mut mpsc::UnboundedReceiver<Exit>,
) -> anyhow::Result<()> {
    let dir = a.dir.clone();
    let exe = std::env::current_exe().context("locating the rkube binary")?;
    creds::encryption_config(&dir)?;
    let config = creds::write(&dir, state)?;
    let admin = client::ClientConfig::parse(&config)?;
    let ca_pem = admin
        .ca
        .as_ref()
        .map(std::fs::read_to_string)
        .transpose()?
        .context("the admin configuration names no CA")?;
    let tls = pki::client_config(&ca_pem, None)?;
    if let Some(p) = state.provider.as_mut() {
        cloud::write_inventory(&dir, &state.nodes)?;
        spawn(&exe, &dir, p, tx)?;
        wait::wait_provider(&cloud::socket(&dir), exits, &dir).await?;
        println!("cloud provider up ({})", cloud::socket(&dir).display());
    }
    for m in state.members.iter_mut() {
        spawn(&exe, &dir, m, tx)?;
    }
    plan::save(&dir, state)?;
    for m in &state.members {
        let what = format!("member {}", m.name);
        let api = wait_member_ok(m, "/healthz", &what, exits, &dir, &tls).await?;
        println!("member {} up (API {api})", m.name);
    }
    let client = client::Client::new(admin.clone())?;
    let leader = wait_leader(&client, exits, &dir).await?;
    println!("cluster formed, leader {leader}");
    for m in &state.members {
        let what = format!("member {} ready", m.name);
        wait_member_ok(m, "/readyz", &what, exits, &dir, &tls).await?;
    }
    let extra = write_client_config(a, &dir, &config)?;

    write_kubeconfig(a, state, &admin, &ca_pem).await?;
    creds::write_join_token(&dir, &client, &ca_pem).await?;
    for n in state.nodes.iter_mut() {
        spawn(&exe, &dir, n, tx)?;
    }
    plan::save(&dir, state)?;
    let nodes = client::Api::<Node>::all(client.clone());
    for n in &state.nodes {
        wait_node_ready(&nodes, &n.name, exits, &dir).await?;
        println!("node {} Ready", n.name);
    }
    // Pods mount volumes only as root.
    if state.provider.is_some() && root {
        cloud::default_storage_class(&client).await?;
    }
    let network = plan::pod_network(&a.pod_network, root)?;
    print_up(state, &dir, extra.as_ref(), network, root, started);
    Ok(())
}

/// Writes the admin's client configuration to `<dir>/config` and to `--write-config`
/// (default ~/.rkube/config); the second path, if there is one.
fn write_client_config(a: &UpArgs, dir: &Path, config: &str) -> anyhow::Result<Option<PathBuf>> {
    pki::write_private(&dir.join("config"), config.as_bytes())?;
    let extra = match &a.write_config {
        Some(p) => Some(p.clone()),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rkube").join("config")),
    };
    if let Some(p) = &extra {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        pki::write_private(p, config.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(extra)
}

/// The report once the cluster is up: where its configuration and logs are, and what to
/// try.
fn print_up(
    state: &State,
    dir: &Path,
    extra: Option<&PathBuf>,
    network: &str,
    root: bool,
    started: Instant,
) {
    println!(
        "rkube is up: {} members, {} nodes (pod network: {network}, proxy: userspace) in {:.1} s.",
        state.members.len(),
        state.nodes.len(),
        started.elapsed().as_secs_f64()
    );
    println!("  client config: {}", dir.join("config").display());
    if let Some(p) = extra.filter(|p| **p != dir.join("config")) {
        println!("                 {} (rkube ctl reads it)", p.display());
    }
    if !root {
        println!("  not root: pods share the host network and get no volumes, and Service ports");
        println!("  below 1024 need net.ipv4.ip_unprivileged_port_start=0; run it with sudo for");
        println!("  the whole cluster.");
    }
    if let Some(p) = &state.provider {
        let pool = p.args.iter().skip_while(|a| *a != "--lb-pool").nth(1);
        println!(
            "  load balancers: addresses from {} (cloud provider: local)",
            pool.map_or("?", |s| s.as_str())
        );
    }
    println!("  logs:          {}", dir.join("logs").display());
    println!("Try:\n  rkube ctl get nodes\n  rkube ctl apply -f examples/web.yaml\n  rkube ctl get deploy,pods,svc");
    println!("Ctrl-C stops the cluster; `rkube up` brings it back; `rkube up --down` removes it.");
}

/// Stops the nodes (and with them their pods), then the members, and records that
/// nothing runs.
async fn stop_all(
    dir: &Path,
    state: &mut State,
    exits: &mut mpsc::UnboundedReceiver<Exit>,
) -> anyhow::Result<()> {
    stop_group(&state.nodes, exits, Duration::from_secs(20)).await;
    stop_group(&state.members, exits, Duration::from_secs(10)).await;
    stop_group(state.provider.as_slice(), exits, Duration::from_secs(5)).await;
    state.pid = None;
    let all = state.members.iter_mut().chain(state.nodes.iter_mut());
    for p in all.chain(state.provider.iter_mut()) {
        p.pid = None;
    }
    plan::save(dir, state)
}

/// SIGTERM to every process of `procs`, then SIGKILL to those still there after `grace`.
async fn stop_group(procs: &[Proc], exits: &mut mpsc::UnboundedReceiver<Exit>, grace: Duration) {
    let live: Vec<u32> = procs
        .iter()
        .filter_map(|p| p.pid)
        .filter(|p| plan::alive(*p))
        .collect();
    for pid in &live {
        send_signal(*pid, "TERM");
    }
    let deadline = tokio::time::Instant::now() + grace;
    while live.iter().any(|p| plan::alive(*p)) {
        match tokio::time::timeout_at(deadline, exits.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    for pid in live.iter().filter(|p| plan::alive(**p)) {
        send_signal(*pid, "KILL");
    }
}

/// `rkube up --down`: stops the cluster in `dir` and removes the directory.
async fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(state) = plan::load(dir) else {
        anyhow::ensure!(
            !dir.exists() || std::fs::read_dir(dir)?.next().is_none(),
            "{} holds no cluster of `rkube up` (no up.json); not removing it",
            dir.display()
        );
        println!("nothing to remove in {}", dir.display());
        return Ok(());
    };
    if let Some(pid) = state.pid.filter(|p| plan::alive(*p)) {
        println!("stopping the running cluster (pid {pid})");
        send_signal(pid, "TERM");
        let start = Instant::now();
        while plan::alive(pid) && start.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let all = state.members.iter().chain(state.nodes.iter());
    for p in all.chain(state.provider.iter()) {
        if let Some(pid) = p.pid.filter(|p| plan::alive(*p)) {
            send_signal(pid, "KILL");
        }
    }
    for n in &state.nodes {
        // Pod networks of a node that was killed.
        node::runtime::cni::remove_pod_networks(&dir.join(&n.name).join("runtime"));
        node::proxy::addrs::remove_all(&n.name);
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &plan::bridge(dir, &n.name)])
            .output();
    }
    node::kubelet::unmount_under(dir);
    cloud_local::volumes::release_pool(&cloud::volume_pool(dir));
    claims::Registry::lock()?.forget(dir);
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    println!("removed {}", dir.display());
    Ok(())
}
