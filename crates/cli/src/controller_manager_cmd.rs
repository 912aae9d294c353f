//! `rkube controller-manager`: every controller in one process, a gRPC client of the
//! apiserver.

use std::time::Duration;

use clap::{ArgAction, Args};
use controllers::manager::{self, ManagerConfig};

#[derive(Args, Clone)]
pub struct ControllerManagerArgs {
    #[command(flatten)]
    pub client: crate::connect::ClientArgs,
    #[command(flatten)]
    pub options: ControllerManagerOptions,
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
}

impl ControllerManagerOptions {
    pub fn config(&self) -> ManagerConfig {
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
        cfg
    }
}

pub async fn run(args: ControllerManagerArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    tokio::select! {
        _ = manager::run(client, args.options.config()) => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
    }
    Ok(())
}
