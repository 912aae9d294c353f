//! The kubelet: registers its Node and keeps it alive ([`register`], [`heartbeat`]), takes
//! the pods bound to it from a watch ([`source`]) and runs each through a pod worker
//! ([`worker`]) on a [`crate::runtime::Runtime`].

pub mod env;
pub mod eviction;
pub mod heartbeat;
pub mod probe;
pub mod register;
pub mod security_context;
pub mod service_env;
pub mod source;
pub mod static_pods;
pub mod status;
pub mod usage;
pub mod volume_mounts;
pub mod volumes;
pub mod worker;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use client::events::Recorder;
use client::Client;
use parking_lot::Mutex;

use crate::certs;
use crate::runtime::Runtime;

#[derive(Clone, Debug)]
pub struct KubeletConfig {
    pub node_name: String,
    pub data_dir: PathBuf,
    /// The node's address, reported as InternalIP and used as the host IP.
    pub node_ip: String,
    pub labels: BTreeMap<String, String>,
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
        }
    }
}

/// What every part of the kubelet shares.
pub struct Shared {
    pub client: Client,
    pub runtime: Arc<dyn Runtime>,
    pub cfg: KubeletConfig,
    pub events: Recorder,
    /// Whether the kubelet runs as root (tmpfs volumes, mounts, cgroups).
    pub root: bool,
    /// Pods already removed from the API whose workers are still cleaning up.
    pub gone: Mutex<HashSet<String>>,
    /// The port the agent API listens on.
    pub agent_port: u16,
    /// The pod CIDR handed to the runtime.
    pub pod_cidr: Mutex<Option<String>>,
    /// Every Service, for the discovery variables of containers.
    pub services: Arc<client::informer::Informer<k8s_openapi::api::core::v1::Service>>,
}

/// Hands the node's pod CIDR to the runtime when it is new.
pub async fn set_pod_cidr(shared: &Shared, cidr: &str) {
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

/// Waits (a little) for the agent API's first serving certificate, so that logs and exec
/// work by the time pods run.
async fn wait_serving(served: &pki::ServedCert) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !served.is_set() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !served.is_set() {
        tracing::warn!(
            "no serving certificate yet: logs and exec fail until its request is signed"
        );
    }
}

/// Now, in Unix seconds.
pub use crate::runtime::shim::unix_now as now_secs;

/// Runs the kubelet until the future is dropped.
pub async fn run(
    client: Client,
    cfg: KubeletConfig,
    runtime: Arc<dyn Runtime>,
) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| format!("--data-dir {}: {e}", cfg.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", cfg.listen))?;
    let agent_port = listener.local_addr().map_err(|e| e.to_string())?.port();
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
        cfg,
    });
    register::register(&shared).await?;
    wait_pod_cidr(&shared).await;
    tracing::info!(node = %shared.cfg.node_name, runtime = shared.runtime.name(), "node registered");
    let hb = tokio::spawn(heartbeat::run(shared.clone()));
    let usage = tokio::spawn(usage::run(shared.clone()));
    let tls = shared.cfg.tls.clone();
    let serving = tls.as_ref().map(|t| {
        let dir = shared.cfg.data_dir.join("pki");
        let spec = certs::CertSpec::serving(
            &shared.cfg.node_name,
            vec![shared.cfg.node_ip.clone()],
            &dir,
        );
        tokio::spawn(certs::serve(
            shared.client.clone(),
            t.served.clone(),
            spec,
            t.ca_pem.clone(),
        ))
    });
    if let Some(t) = &tls {
        wait_serving(&t.served).await;
    }
    let svc = crate::server::NodeAgentService {
        verifier: Arc::new(crate::server::Verifier::new(shared.clone(), tls.is_some())),
        shared: shared.clone(),
    };
    let server_cfg = match &tls {
        Some(t) => Some(
            t.served
                .server_config(&t.ca_pem, pki::ClientAuth::Required, &[b"h2"])
                .map_err(|e| format!("the agent API's TLS: {e}"))?,
        ),
        None => None,
    };
    let api = tokio::spawn(async move {
        let server = tonic::transport::Server::builder().add_service(
            rkube_proto::api::node_agent_server::NodeAgentServer::new(svc),
        );
        let r = match server_cfg {
            Some(cfg) => {
                server
                    .serve_with_incoming(pki::tls_incoming(listener, cfg))
                    .await
            }
            None => {
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                server.serve_with_incoming(incoming).await
            }
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "the agent API stopped");
        }
    });
    let (evict_tx, evict_rx) = tokio::sync::mpsc::channel(8);
    let evictor = tokio::spawn(eviction::run(shared.clone(), evict_tx));
    let r = source::run(shared, evict_rx).await;
    evictor.abort();
    hb.abort();
    usage.abort();
    api.abort();
    if let Some(s) = serving {
        s.abort();
    }
    r
}
