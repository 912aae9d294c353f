//! `controllers::scheduler`: kube-scheduler's design in rkube.
//!
//! Watches → [`informer`] → [`cache::Cache`] (nodes with their pods, assumed pods
//! included) and [`queue::SchedulingQueue`] (pending pods by priority, back-off,
//! unschedulable) → [`scheduler::run_loop`]: the plugins of [`plugins::default_profile`]
//! filter and score nodes ([`algorithm`]); a pod that fits nowhere may preempt
//! ([`preemption`]); the choice is assumed in the cache and bound through the apiserver's
//! Bind (a compare-and-swap on the pod), many binds in flight at once.
//!
//! Only the instance holding the `kube-system/kube-scheduler` Lease acts.

pub(crate) mod algorithm;
pub(crate) mod cache;
pub(crate) mod framework;
pub(crate) mod informer;
pub(crate) mod node_info;
pub(crate) mod plugins;
pub(crate) mod pod_info;
pub(crate) mod preemption;
pub(crate) mod queue;
pub(crate) mod recorder;
pub(crate) mod resources;
#[allow(clippy::module_inception)]
pub(crate) mod scheduler;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;

use client::leader::LeaderElectionConfig;
use client::Client;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use self::algorithm::Algorithm;
use self::informer::Shared;
pub use self::scheduler::Stats;

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Pods with this `spec.schedulerName` are ours.
    pub scheduler_name: String,
    /// `None`: act at once, without a Lease.
    pub leader_election: Option<LeaderElectionConfig>,
    /// See [`Algorithm::percentage_of_nodes_to_score`].
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Binds in flight at once.
    pub bind_concurrency: usize,
    /// Record a Scheduled event per bound pod.
    pub scheduled_events: bool,
}

impl SchedulerConfig {
    pub fn new(identity: &str) -> Self {
        SchedulerConfig {
            scheduler_name: recorder::COMPONENT.into(),
            leader_election: Some(LeaderElectionConfig::new(
                "kube-system",
                "kube-scheduler",
                identity,
            )),
            percentage_of_nodes_to_score: None,
            bind_concurrency: 256,
            scheduled_events: true,
        }
    }
}

/// Schedules until the future is dropped: while leading, or all the time without leader
/// election. Losing the Lease stops every scheduling task; winning it again starts afresh
/// from a new list.
pub async fn run(client: Client, cfg: SchedulerConfig, stats: Arc<Stats>) {
    let lease = cfg.leader_election.clone();
    client::runtime::run_while_leading(client.clone(), lease, || {
        run_leading(client.clone(), cfg.clone(), stats.clone())
    })
    .await;
}

/// Everything a leading scheduler runs; all of it stops when this future is dropped.
async fn run_leading(client: Client, cfg: SchedulerConfig, stats: Arc<Stats>) {
    let shared = Arc::new(Shared {
        cache: Mutex::new(Default::default()),
        queue: Default::default(),
        priorities: Mutex::new(Default::default()),
        scheduler_name: cfg.scheduler_name.clone(),
    });
    let mut tasks = JoinSet::new();
    for mut r in start_watches(&mut tasks, &shared, &client) {
        let _ = r.wait_for(|r| *r).await;
    }
    {
        let c = shared.cache.lock();
        tracing::info!(
            nodes = c.node_count(),
            pods = c.pod_count(),
            pending = shared.queue.len(),
            "scheduler caches synced"
        );
    }
    start_scheduling(&mut tasks, shared, client, &cfg, stats);
    // No task ends by itself; if one does, stop them all.
    tasks.join_next().await;
    tracing::error!("a scheduler task ended; stopping");
    tasks.shutdown().await;
}

/// Starts the watches that fill the cache and the queue; each returned flag turns true
/// once its watch has listed.
fn start_watches(
    tasks: &mut JoinSet<()>,
    shared: &Arc<Shared>,
    client: &Client,
) -> Vec<watch::Receiver<bool>> {
    let mut ready = Vec::new();
    let mut ready_flag = || {
        let (tx, rx) = watch::channel(false);
        ready.push(rx.clone());
        (tx, rx)
    };
    let (pc_tx, mut pc_rx) = ready_flag();
    tasks.spawn(shared.clone().run_mirror::<PriorityClass>(
        client.clone(),
        pc_tx,
        informer::apply_priority_class,
    ));
    let (tx, _) = ready_flag();
    tasks.spawn(shared.clone().run_mirror::<Namespace>(
        client.clone(),
        tx,
        informer::apply_namespace,
    ));
    let (tx, _) = ready_flag();
    tasks.spawn(shared.clone().run_mirror::<PersistentVolumeClaim>(
        client.clone(),
        tx,
        informer::apply_pvc,
    ));
    let (tx, _) = ready_flag();
    tasks.spawn(shared.clone().run_mirror::<PersistentVolume>(
        client.clone(),
        tx,
        informer::apply_pv,
    ));
    let (tx, _) = ready_flag();
    tasks.spawn(shared.clone().run_mirror::<StorageClass>(
        client.clone(),
        tx,
        informer::apply_storage_class,
    ));
    let (tx, _) = ready_flag();
    tasks.spawn(shared.clone().run_mirror::<PodDisruptionBudget>(
        client.clone(),
        tx,
        informer::apply_pdb,
    ));
    let (tx, _) = ready_flag();
    tasks.spawn(shared.clone().run_nodes(client.clone(), tx));
    let (pods_tx, _) = ready_flag();
    let (shared, client) = (shared.clone(), client.clone());
    tasks.spawn(async move {
        // Priorities must be known before the first pod is queued.
        let _ = pc_rx.wait_for(|r| *r).await;
        shared.run_pods(client, pods_tx).await;
    });
    ready
}

/// Starts the event writer, the binder, the queue's flusher and the scheduling loop.
fn start_scheduling(
    tasks: &mut JoinSet<()>,
    shared: Arc<Shared>,
    client: Client,
    cfg: &SchedulerConfig,
    stats: Arc<Stats>,
) {
    let recorder = recorder::Recorder::new(client.clone(), &cfg.scheduler_name);
    let (writes_tx, writes_rx) = mpsc::channel(1024);
    let (binds_tx, binds_rx) = mpsc::unbounded_channel();
    tasks.spawn(scheduler::run_writes(writes_rx, recorder));
    tasks.spawn(scheduler::run_binder(
        shared.clone(),
        client,
        binds_rx,
        cfg.bind_concurrency.max(1),
        writes_tx.clone(),
        stats.clone(),
        cfg.scheduled_events,
    ));
    tasks.spawn(scheduler::run_flusher(shared.clone()));
    let alg = Algorithm::new(plugins::default_profile(), cfg.percentage_of_nodes_to_score);
    tasks.spawn(scheduler::run_loop(shared, alg, binds_tx, writes_tx, stats));
}
