//! `rkube controller-manager`: every controller in one process, a gRPC client of the
//! apiserver.

use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args};
use client::runtime::CancellationToken;
use controllers::certificates::signing::Signer;
use controllers::manager::{self, ManagerConfig};

#[derive(Args, Clone)]
pub struct ControllerManagerArgs {
    #[command(flatten)]
    pub client: crate::connect::ClientArgs,
    #[command(flatten)]
    pub options: ControllerManagerOptions,
    /// The cluster token file: csrsigning signs with the CA it yields (kube-controller-
    /// manager's `--cluster-signing-key-file`). Without it, requests stay unsigned.
    #[arg(long)]
    pub cluster_signing_token_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub secure: crate::secure_port::SecurePortArgs,
}

/// Controller-manager options, shared with `rkube server`.
#[derive(Args, Clone)]
pub struct ControllerManagerOptions {
    /// Act only while holding the kube-system/kube-controller-manager Lease.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub cm_leader_elect: bool,
    /// This candidate's name in the Lease (default: host name and process id).
    #[arg(long)]
    pub cm_leader_elect_identity: Option<String>,
    #[arg(long, default_value_t = 15_000)]
    pub cm_leader_elect_lease_duration_ms: u64,
    #[arg(long, default_value_t = 10_000)]
    pub cm_leader_elect_renew_deadline_ms: u64,
    #[arg(long, default_value_t = 2_000)]
    pub cm_leader_elect_retry_period_ms: u64,
    /// Concurrent reconciles per controller.
    #[arg(long, default_value_t = 4)]
    pub concurrent_syncs: usize,
    /// A node without a heartbeat for this long is unreachable.
    #[arg(long, default_value_t = 40_000)]
    pub node_monitor_grace_period_ms: u64,
    /// How often every node is checked.
    #[arg(long, default_value_t = 5_000)]
    pub node_monitor_period_ms: u64,
    /// Pod CIDRs for nodes come from this range ("" turns node IPAM off).
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// How often the cloud-controller-manager run in a member (`rkube server
    /// --cloud-plugin…`) compares the provider's routes with the nodes' pod CIDRs.
    #[arg(long, default_value_t = 10_000)]
    pub route_reconciliation_period_ms: u64,
    /// How often every HorizontalPodAutoscaler is synced.
    #[arg(long, default_value_t = 15_000)]
    pub horizontal_pod_autoscaler_sync_period_ms: u64,
    /// The HPA leaves the replicas alone while usage is this close to the target (0.1 = 10%).
    #[arg(long, default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// The default scale-down stabilization window of HPAs.
    #[arg(long, default_value_t = 300_000)]
    pub horizontal_pod_autoscaler_downscale_stabilization_ms: u64,
    /// A Job waits this long before replacing its first failed pod, twice as long after
    /// the second, and so on (at most ten minutes).
    #[arg(long, default_value_t = 10_000)]
    pub job_pod_failure_backoff_ms: u64,
    /// The longest lifetime csrsigning gives a certificate (a request may ask for less;
    /// at least 10 s).
    #[arg(long, default_value_t = 365 * 24 * 3600)]
    pub cluster_signing_duration_secs: u64,
}

impl ControllerManagerOptions {
    pub fn config(&self) -> ManagerConfig {
        if !self.cluster_cidr.is_empty()
            && controllers::node_lifecycle::parse_cidr(&self.cluster_cidr).is_none()
        {
            tracing::warn!(cidr = %self.cluster_cidr, "--cluster-cidr is not an IPv4 CIDR; node IPAM is off");
        }
        let identity = self
            .cm_leader_elect_identity
            .clone()
            .unwrap_or_else(crate::scheduler_cmd::default_identity);
        let mut cfg = ManagerConfig::new(&identity);
        match &mut cfg.leader_election {
            Some(le) if self.cm_leader_elect => {
                le.lease_duration = Duration::from_millis(self.cm_leader_elect_lease_duration_ms);
                le.renew_deadline = Duration::from_millis(self.cm_leader_elect_renew_deadline_ms);
                le.retry_period = Duration::from_millis(self.cm_leader_elect_retry_period_ms);
            }
            _ => cfg.leader_election = None,
        }
        cfg.workers = self.concurrent_syncs;
        cfg.node_lifecycle.grace_period = Duration::from_millis(self.node_monitor_grace_period_ms);
        cfg.node_lifecycle.monitor_period =
            Duration::from_millis(self.node_monitor_period_ms.max(100));
        cfg.node_lifecycle.cluster_cidr =
            controllers::node_lifecycle::parse_cidr(&self.cluster_cidr);
        cfg.node_lifecycle.node_mask = self.node_cidr_mask_size;
        cfg.hpa.sync_period =
            Duration::from_millis(self.horizontal_pod_autoscaler_sync_period_ms.max(100));
        cfg.hpa.tolerance = self.horizontal_pod_autoscaler_tolerance;
        cfg.hpa.downscale_stabilization =
            Duration::from_millis(self.horizontal_pod_autoscaler_downscale_stabilization_ms);
        cfg.job.pod_failure_backoff = Duration::from_millis(self.job_pod_failure_backoff_ms);
        cfg
    }

    /// csrsigning with `ca`.
    pub fn signer(&self, ca: std::sync::Arc<pki::ClusterCa>) -> Signer {
        Signer {
            ca,
            duration: Duration::from_secs(self.cluster_signing_duration_secs.max(10)),
        }
    }
}

pub async fn run(args: ControllerManagerArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    let mut cfg = args.options.config();
    // The CA the controller-manager trusts the API server with is the one every
    // namespace gets (kube-controller-manager's default for --root-ca-file).
    cfg.root_ca = args.client.ca_pem()?;
    if let Some(f) = &args.cluster_signing_token_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("--cluster-signing-token-file {}", f.display()))?;
        let ca = pki::ClusterCa::from_token(&pki::ClusterToken::parse(text.trim())?)?;
        cfg.signer = Some(args.options.signer(std::sync::Arc::new(ca)));
    }
    let port = crate::secure_port::start(
        &args.secure,
        10257,
        "kube-controller-manager",
        &args.client,
        &client,
        &cfg.metrics,
    )
    .await?;
    let shutdown = CancellationToken::new();
    let running = async {
        let served = async {
            match port {
                Some(p) => p.serve().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = manager::run(client, cfg, shutdown.clone()) => {}
            () = served => {}
        }
    };
    tokio::pin!(running);
    tokio::select! {
        () = &mut running => return Ok(()),
        () = crate::proxy_cmd::stop_signal() => {
            tracing::info!("stopping: the controllers finish the reconciles under way");
        }
    }
    shutdown.cancel();
    tokio::select! {
        () = running => {}
        () = crate::proxy_cmd::stop_signal() => tracing::warn!("signalled again; stopping at once"),
    }
    Ok(())
}
