//! `rkube node`: the node agent — the kubelet on a container runtime — as a gRPC client of
//! the apiserver; and `rkube node-shim`, the per-container shim of the process runtime.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use node::kubelet::KubeletConfig;
use node::runtime::process::ProcessRuntime;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RuntimeKind {
    /// Containers as host processes (built in).
    Process,
    /// A CRI v1 runtime (containerd) over a unix socket.
    Cri,
}

#[derive(Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub client: crate::connect::ClientArgs,
    /// The node's name.
    #[arg(long)]
    pub name: String,
    /// A file holding the join token (`rkube token create`), instead of `--token`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Pod state, volumes and logs.
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long, value_enum, default_value = "process")]
    pub runtime: RuntimeKind,
    /// The CRI socket (with `--runtime cri`).
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub cri_socket: PathBuf,
    /// Where the agent API (pod logs and exec, for the apiserver) listens.
    #[arg(long, default_value = "0.0.0.0:10250")]
    pub listen: std::net::SocketAddr,
    /// Pod networking of the process runtime: `cni` gives each pod a network namespace on
    /// the node's bridge with an IP from the node's pod CIDR (root, with the CNI plugins
    /// installed); `host` runs every pod on the host network.
    #[arg(long, value_parser = ["cni", "host"], default_value = "cni")]
    pub pod_network: String,
    /// The CNI plugin binaries.
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_bin_dir: PathBuf,
    /// The node's pod bridge.
    #[arg(long, default_value = "rkube0")]
    pub cni_bridge: String,
    /// The cluster's pod CIDR: pod traffic to any other address leaves with the node's
    /// address (one masquerade rule per node).
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// The node's IP: its InternalIP and the host IP of its pods.
    #[arg(long, default_value = "127.0.0.1")]
    pub node_ip: String,
    /// Labels for the Node, `key=value,…`.
    #[arg(long, default_value = "")]
    pub node_labels: String,
    #[arg(long, default_value_t = 110)]
    pub max_pods: i64,
    /// `external`: a cloud-controller-manager initializes the Node, which registers with
    /// the `node.cloudprovider.kubernetes.io/uninitialized` taint until it has.
    #[arg(long, value_parser = ["external"])]
    pub cloud_provider: Option<String>,
    #[arg(long, default_value_t = 10_000)]
    pub node_lease_renew_interval_ms: u64,
    #[arg(long, default_value_t = 10_000)]
    pub node_status_update_frequency_ms: u64,
    /// How often each pod is looked at.
    #[arg(long, default_value_t = 1_000)]
    pub sync_interval_ms: u64,
    /// The first crash-loop back-off (it doubles up to five minutes).
    #[arg(long, default_value_t = 10_000)]
    pub crash_loop_backoff_ms: u64,
    /// A directory of static pod manifests (YAML or JSON), run without the apiserver and
    /// mirrored into it.
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// How often the static pod manifests are read.
    #[arg(long, default_value_t = 20_000)]
    pub file_check_frequency_ms: u64,
    /// Hard eviction thresholds: pods are evicted while one is crossed ("" turns eviction
    /// off).
    #[arg(long, default_value = "memory.available<100Mi,nodefs.available<10%")]
    pub eviction_hard: String,
    /// How often the eviction thresholds are checked (one pod is evicted per check).
    #[arg(long, default_value_t = 10_000)]
    pub eviction_interval_ms: u64,
    /// How often container usage is published (PodMetrics).
    #[arg(long, default_value_t = 15_000)]
    pub metrics_interval_ms: u64,
    #[command(flatten)]
    pub proxy: crate::proxy_cmd::ProxyFlags,
    #[command(flatten)]
    pub dns: crate::dns_flags::DnsFlags,
    /// On SIGINT or SIGTERM, stop and remove every pod too (a kubelet otherwise leaves
    /// them running, to adopt them when it starts again). `rkube up` uses it.
    #[arg(long)]
    pub stop_pods_on_exit: bool,
}

/// Stops every container and pod sandbox of the node's runtime, each container with
/// `grace`. Run after the agent is gone, so no pod status is reported on the way.
pub async fn stop_pods(args: &NodeArgs, grace: Duration) -> anyhow::Result<()> {
    let runtime = make_runtime(args).await?;
    let runtime = runtime.as_ref();
    let sandboxes = runtime.list_pod_sandboxes().await.unwrap_or_default();
    let stops = sandboxes.iter().map(|sb| async move {
        for c in runtime.list_containers(&sb.id).await.unwrap_or_default() {
            let _ = runtime.stop_container(&c.id, grace).await;
            let _ = runtime.remove_container(&c.id).await;
        }
        let _ = runtime.stop_pod_sandbox(&sb.id).await;
        let _ = runtime.remove_pod_sandbox(&sb.id).await;
    });
    futures::future::join_all(stops).await;
    // The node is going away: its pods' volumes and network go too.
    node::kubelet::unmount_under(&args.data_dir.join("pods"));
    node::runtime::egress::remove(&args.data_dir.join("runtime"));
    if matches!(args.runtime, RuntimeKind::Process) && args.pod_network == "cni" {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &args.cni_bridge])
            .output();
    }
    tracing::info!(pods = sandboxes.len(), "pods stopped");
    Ok(())
}

fn labels(s: &str) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    s.split(',')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("--node-labels: {kv:?} is not key=value"))
        })
        .collect()
}

/// The container runtime `args` name.
async fn make_runtime(args: &NodeArgs) -> anyhow::Result<Arc<dyn node::runtime::Runtime>> {
    Ok(match args.runtime {
        RuntimeKind::Process => {
            let exe = std::env::current_exe().context("locating the rkube binary for the shim")?;
            let cni = (args.pod_network == "cni" && args.cni_bin_dir.join("bridge").exists())
                .then(|| (args.cni_bin_dir.clone(), args.cni_bridge.clone()));
            if args.pod_network == "cni" && cni.is_none() {
                tracing::warn!(dir = %args.cni_bin_dir.display(), "no CNI bridge plugin; pods use the host network");
            }
            Arc::new(
                ProcessRuntime::new(
                    args.data_dir.join("runtime"),
                    exe,
                    args.node_ip.clone(),
                    cni,
                )?
                .with_cluster_cidr(&args.cluster_cidr),
            )
        }
        RuntimeKind::Cri => Arc::new(
            node::runtime::cri::CriRuntime::connect(&args.cri_socket, &args.node_ip).await?,
        ),
    })
}

/// Runs the node agent until it fails or is told to stop. `Ok(true)`: stop the pods too
/// (`--stop-pods-on-exit`), which [`stop_pods`] does once this runtime is gone.
pub async fn run(args: &NodeArgs) -> anyhow::Result<bool> {
    // Pods' secrets and tokens live below: no other host user may enter.
    pki::restrict_dir(&args.data_dir)?;
    let creds = crate::join::node_credentials(
        &args.client,
        args.token_file.as_deref(),
        &args.name,
        &args.data_dir,
    )
    .await?;
    let client = creds.client.clone();
    let _renewal = AbortOnDrop(creds.renewal);
    let mut cfg = KubeletConfig::new(&args.name, args.data_dir.clone(), &args.node_ip);
    cfg.labels = labels(&args.node_labels)?;
    cfg.cloud_provider_external = args.cloud_provider.is_some();
    cfg.max_pods = args.max_pods;
    cfg.lease_renew_interval = Duration::from_millis(args.node_lease_renew_interval_ms.max(100));
    cfg.status_update_interval =
        Duration::from_millis(args.node_status_update_frequency_ms.max(100));
    cfg.sync_interval_ms = args.sync_interval_ms.max(50);
    cfg.crash_backoff_base = Duration::from_millis(args.crash_loop_backoff_ms);
    cfg.metrics_interval = Duration::from_millis(args.metrics_interval_ms.max(100));
    cfg.pod_manifest_path = args.pod_manifest_path.clone();
    cfg.listen = args.listen;
    cfg.eviction = node::kubelet::Thresholds::parse(&args.eviction_hard)?;
    cfg.eviction_interval = Duration::from_millis(args.eviction_interval_ms.max(100));
    cfg.file_check_interval = Duration::from_millis(args.file_check_frequency_ms.max(100));
    cfg.tls = creds.tls;
    cfg.cluster_dns = args.dns.cluster_dns.clone();
    cfg.cluster_domain = args.dns.cluster_domain.clone();
    cfg.dns_server = args.dns.server(&args.node_ip)?;
    let runtime = make_runtime(args).await?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut proxy = args.proxy.mode().map(|mode| {
        let (client, name) = (client.clone(), args.name.clone());
        tokio::spawn(async move {
            let stop = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            node::proxy::run(client, &name, mode, stop).await
        })
    });
    let r = {
        let proxy_ended = async {
            match proxy.as_mut() {
                Some(h) => h.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = node::run(client, cfg, runtime.clone()) => r.map(|()| false).map_err(anyhow::Error::from),
            _ = crate::proxy_cmd::stop_signal() => {
                if args.stop_pods_on_exit {
                    tracing::info!("interrupted; stopping the agent, then the pods");
                } else {
                    tracing::info!("interrupted; stopping (pods keep running)");
                }
                Ok(args.stop_pods_on_exit)
            }
            p = proxy_ended => {
                let why = match p {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(())) => "stopped".into(),
                    Err(e) => e.to_string(),
                };
                return Err(anyhow::anyhow!("service proxy: {why}"));
            }
        }
    };
    let _ = stop_tx.send(true);
    if let Some(p) = proxy {
        if let Ok(Err(e)) = p.await {
            return Err(anyhow::anyhow!("service proxy: {e}"));
        }
    }
    r
}

/// Stops a task when the agent stops.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

#[derive(Args)]
pub struct ShimArgs {
    /// The container's directory (spec.json inside).
    pub dir: PathBuf,
}

pub fn shim(args: ShimArgs) -> anyhow::Result<()> {
    node::runtime::shim::run(&args.dir).with_context(|| format!("shim for {}", args.dir.display()))
}
