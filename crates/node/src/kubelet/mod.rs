//! The kubelet: registers its Node and keeps it alive ([`register`], [`heartbeat`]), takes
//! the pods bound to it from a watch ([`source`]) and runs each through a pod worker
//! ([`worker`]) on a [`crate::runtime::Runtime`].

mod attached;
mod claims;
mod dns;
mod env;
mod eviction;
mod heartbeat;
mod local_path;
mod probe;
mod qos;
mod register;
mod security_context;
mod service_env;
mod source;
mod static_pods;
mod usage;
mod volume_mounts;
mod volumes;
mod worker;

pub use eviction::{Amount, Thresholds};
pub use volumes::unmount_under;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use client::events::Recorder;
use client::Client;
use parking_lot::Mutex;

use crate::runtime::Runtime;
use tokio::task::JoinSet;

#[derive(Clone, Debug)]
pub struct KubeletConfig {
    pub node_name: String,
    pub data_dir: PathBuf,
    /// The node's address, reported as InternalIP and used as the host IP.
    pub node_ip: String,
    pub labels: BTreeMap<String, String>,
    /// A cloud-controller-manager initializes the Node: it registers with the
    /// `node.cloudprovider.kubernetes.io/uninitialized` taint.
    pub cloud_provider_external: bool,
    pub max_pods: i64,
    /// How often the node's Lease is renewed.
    pub lease_renew_interval: Duration,
    pub lease_duration_seconds: i32,
    /// How often the node's status (conditions, capacity) is written.
    pub status_update_interval: Duration,
    /// How often each pod worker looks at its pod.
    pub sync_interval_ms: u64,
    /// The first crash-loop back-off; it doubles up to five minutes.
    pub crash_backoff_base: Duration,
    /// How often container usage is sampled and published as PodMetrics.
    pub metrics_interval: Duration,
    /// Static pod manifests, and how often they are read.
    pub pod_manifest_path: Option<PathBuf>,
    pub file_check_interval: Duration,
    /// Where the agent API (logs, exec) listens; port 0 picks one.
    pub listen: std::net::SocketAddr,
    /// Hard eviction thresholds, and how often they are checked.
    pub eviction: eviction::Thresholds,
    pub eviction_interval: Duration,
    /// TLS on the agent API: a serving certificate from a kubelet-serving request, and
    /// only callers with a certificate from the cluster CA. `None`: plaintext, each call
    /// carrying a token the apiserver signed (clusters under `--insecure-plaintext`).
    pub tls: Option<AgentTls>,
    /// The resolver pods are given (`--cluster-dns`); `None`: the kube-dns Service's
    /// ClusterIP.
    pub cluster_dns: Option<String>,
    /// The cluster's DNS domain (`--cluster-domain`).
    pub cluster_domain: String,
    /// The node's DNS server, when it runs one.
    pub dns_server: Option<crate::dns::DnsConfig>,
}

#[derive(Clone, Debug)]
pub struct AgentTls {
    pub ca_pem: String,
    pub served: Arc<pki::ServedCert>,
}

impl KubeletConfig {
    pub fn new(node_name: &str, data_dir: PathBuf, node_ip: &str) -> Self {
        KubeletConfig {
            node_name: node_name.into(),
            data_dir,
            node_ip: node_ip.into(),
            labels: BTreeMap::new(),
            cloud_provider_external: false,
            max_pods: 110,
            lease_renew_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_update_interval: Duration::from_secs(10),
            sync_interval_ms: 1000,
            crash_backoff_base: Duration::from_secs(10),
            metrics_interval: Duration::from_secs(15),
            pod_manifest_path: None,
            file_check_interval: Duration::from_secs(20),
            listen: std::net::SocketAddr::from(([0, 0, 0, 0], 10250)),
            eviction: Default::default(),
            eviction_interval: Duration::from_secs(10),
            tls: None,
            cluster_dns: None,
            cluster_domain: "cluster.local".into(),
            dns_server: None,
        }
    }
}

/// What every part of the kubelet shares.
struct Shared {
    client: Client,
    runtime: Arc<dyn Runtime>,
    cfg: KubeletConfig,
    events: Recorder,
    /// Whether the kubelet runs as root (tmpfs volumes, mounts, cgroups).
    root: bool,
    /// Pods already removed from the API whose workers are still cleaning up.
    gone: Mutex<HashSet<String>>,
    /// The port the agent API listens on.
    agent_port: u16,
    /// The pod CIDR handed to the runtime.
    pod_cidr: Mutex<Option<String>>,
    /// Every Service, for the discovery variables of containers.
    services: Arc<client::informer::Informer<k8s_openapi::api::core::v1::Service>>,
    /// The host's resolver settings (/etc/resolv.conf), for pods that get them.
    host_dns: crate::dns::resolv_conf::DnsSettings,
}

/// Hands the node's pod CIDR to the runtime when it is new.
async fn set_pod_cidr(shared: &Shared, cidr: &str) {
    if shared.pod_cidr.lock().as_deref() == Some(cidr) {
        return;
    }
    match shared.runtime.update_pod_cidr(cidr).await {
        Ok(()) => {
            tracing::info!(cidr, "pod CIDR");
            *shared.pod_cidr.lock() = Some(cidr.to_string());
        }
        Err(e) => tracing::warn!(error = %e, "handing the pod CIDR to the runtime failed"),
    }
}

/// Waits (a little) for the node IPAM controller to give the node a pod CIDR, so the first
/// pods get pod networking too.
async fn wait_pod_cidr(shared: &Shared) {
    let api = client::Api::<k8s_openapi::api::core::v1::Node>::all(shared.client.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(n) = api.get(&shared.cfg.node_name).await {
            if let Some(cidr) = n.spec.and_then(|s| s.pod_cidr) {
                set_pod_cidr(shared, &cidr).await;
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::info!("the node has no pod CIDR yet; pods start on the host network until it does");
}

/// A kubelet whose Node is registered, and which keeps it alive: its heartbeats and
/// usage samples run until it is dropped.
pub struct Kubelet {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

impl Kubelet {
    /// Registers the node (its agent API on `agent_port`), waits a little for its pod
    /// CIDR, and starts its heartbeats.
    pub async fn register(
        client: Client,
        cfg: KubeletConfig,
        runtime: Arc<dyn Runtime>,
        agent_port: u16,
    ) -> crate::Result<Kubelet> {
        let services =
            client::informer::Informer::start(client::Api::all(client.clone()), Default::default());
        let shared = Arc::new(Shared {
            agent_port,
            events: Recorder::new(client.clone(), "kubelet"),
            client,
            runtime,
            root: rustix::process::geteuid().is_root(),
            gone: Mutex::new(HashSet::new()),
            pod_cidr: Mutex::new(None),
            services,
            host_dns: crate::dns::resolv_conf::DnsSettings::parse(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            ),
            cfg,
        });
        register::register(&shared).await?;
        wait_pod_cidr(&shared).await;
        tracing::info!(node = %shared.cfg.node_name, runtime = shared.runtime.name(), "node registered");
        let mut tasks = JoinSet::new();
        tasks.spawn(heartbeat::run(shared.clone()));
        tasks.spawn(usage::run(shared.clone()));
        tasks.spawn(local_path::run(
            shared.client.clone(),
            shared.cfg.data_dir.clone(),
        ));
        Ok(Kubelet { shared, tasks })
    }

    /// Runs the pods and eviction until the pod watch ends. Dropping the future stops
    /// everything the kubelet started.
    pub async fn run(self) -> crate::Result<()> {
        let Kubelet { shared, mut tasks } = self;
        let (evict_tx, evict_rx) = tokio::sync::mpsc::channel(8);
        tasks.spawn(eviction::run(shared.clone(), evict_tx));
        source::run(shared, evict_rx).await
    }
}
