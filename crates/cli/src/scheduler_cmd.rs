//! `rkube scheduler`: the scheduler as its own process, a gRPC client of the apiserver.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args};
use client::Client;
use controllers::scheduler::{self, SchedulerConfig, Stats};

#[derive(Args, Clone)]
pub struct SchedulerArgs {
    #[command(flatten)]
    pub client: crate::connect::ClientArgs,
    #[command(flatten)]
    pub options: SchedulerOptions,
}

/// Scheduler options, shared with `rkube server`.
#[derive(Args, Clone)]
pub struct SchedulerOptions {
    /// Act only while holding the kube-system/kube-scheduler Lease.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub leader_elect: bool,
    /// This candidate's name in the Lease (default: host name and process id).
    #[arg(long)]
    pub leader_elect_identity: Option<String>,
    #[arg(long, default_value_t = 15_000)]
    pub leader_elect_lease_duration_ms: u64,
    #[arg(long, default_value_t = 10_000)]
    pub leader_elect_renew_deadline_ms: u64,
    #[arg(long, default_value_t = 2_000)]
    pub leader_elect_retry_period_ms: u64,
    /// Stop filtering once this percentage of nodes fit (default: adaptive, as Kubernetes).
    #[arg(long)]
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Binds in flight at once.
    #[arg(long, default_value_t = 256)]
    pub bind_concurrency: usize,
    /// Record a Scheduled event for every bound pod.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub scheduled_events: bool,
}

impl SchedulerOptions {
    pub fn config(&self) -> SchedulerConfig {
        let identity = self
            .leader_elect_identity
            .clone()
            .unwrap_or_else(default_identity);
        let mut cfg = SchedulerConfig::new(&identity);
        match &mut cfg.leader_election {
            Some(le) if self.leader_elect => {
                le.lease_duration = Duration::from_millis(self.leader_elect_lease_duration_ms);
                le.renew_deadline = Duration::from_millis(self.leader_elect_renew_deadline_ms);
                le.retry_period = Duration::from_millis(self.leader_elect_retry_period_ms);
            }
            _ => cfg.leader_election = None,
        }
        cfg.percentage_of_nodes_to_score = self.percentage_of_nodes_to_score;
        cfg.bind_concurrency = self.bind_concurrency;
        cfg.scheduled_events = self.scheduled_events;
        cfg
    }
}

/// A Lease candidate's default name: host name and process id.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}_{}", std::process::id())
}

/// Runs the scheduler on `client` and logs its counters every 10 s while they change.
pub async fn run_with(client: Client, cfg: SchedulerConfig) {
    let stats = Arc::new(Stats::default());
    let report = {
        let stats = stats.clone();
        async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let n = stats.scheduled.load(Ordering::Relaxed);
                if n != last {
                    tracing::info!(
                        scheduled = n,
                        unschedulable = stats.unschedulable.load(Ordering::Relaxed),
                        bind_errors = stats.bind_errors.load(Ordering::Relaxed),
                        preemptions = stats.preemptions.load(Ordering::Relaxed),
                        "scheduler"
                    );
                    last = n;
                }
            }
        }
    };
    tokio::select! {
        _ = scheduler::run(client, cfg, stats) => {}
        _ = report => {}
    }
}

pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    tokio::select! {
        _ = run_with(client, args.options.config()) => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
    }
    Ok(())
}
