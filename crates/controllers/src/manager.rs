//! The controller-manager: every controller in one process, acting only while it holds the
//! `kube-system/kube-controller-manager` Lease. Losing the Lease stops every controller;
//! winning it again starts them afresh from new lists.

use std::sync::Arc;

use client::leader::LeaderElectionConfig;
use client::Client;

use crate::context::Ctx;

#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// `None`: act at once, without a Lease.
    pub leader_election: Option<LeaderElectionConfig>,
    /// Concurrent reconciles per controller.
    pub workers: usize,
    pub node_lifecycle: crate::node_lifecycle::NodeLifecycleConfig,
    pub hpa: crate::hpa::HpaConfig,
    pub job: crate::job::JobConfig,
    /// The CA `csrsigning` signs with; `None` leaves requests unsigned.
    pub signer: Option<crate::certificates::signing::Signer>,
}

impl ManagerConfig {
    pub fn new(identity: &str) -> Self {
        ManagerConfig {
            leader_election: Some(LeaderElectionConfig::new(
                "kube-system",
                "kube-controller-manager",
                identity,
            )),
            workers: 4,
            node_lifecycle: Default::default(),
            hpa: Default::default(),
            job: Default::default(),
            signer: None,
        }
    }
}

/// Runs until dropped.
pub async fn run(client: Client, cfg: ManagerConfig) {
    let lease = cfg.leader_election.clone();
    crate::leading::run_while_leading(client.clone(), lease, || {
        run_leading(client.clone(), cfg.clone())
    })
    .await;
}

async fn run_leading(client: Client, cfg: ManagerConfig) {
    let ctx: Arc<Ctx> = Ctx::start(client, "controller-manager");
    ctx.wait_ready().await;
    tracing::info!("controller-manager caches synced");
    let w = cfg.workers.max(1);
    tokio::join!(
        crate::replicaset::run::<k8s_openapi::api::apps::v1::ReplicaSet>(ctx.clone(), w),
        crate::replicaset::run::<k8s_openapi::api::core::v1::ReplicationController>(ctx.clone(), w),
        crate::deployment::run(ctx.clone(), w),
        crate::serviceaccount::run(ctx.clone()),
        crate::token::run(ctx.clone()),
        crate::endpoints::run(ctx.clone(), w),
        crate::node_lifecycle::run(ctx.clone(), cfg.node_lifecycle.clone()),
        crate::garbage_collector::run(ctx.clone()),
        crate::job::run(ctx.clone(), w, cfg.job.clone()),
        crate::cronjob::run(ctx.clone()),
        crate::daemonset::run(ctx.clone(), w),
        crate::namespace::run(ctx.clone()),
        crate::hpa::run(ctx.clone(), cfg.hpa.clone()),
        crate::certificates::approving::run(ctx.clone()),
        crate::resource_quota::run(ctx.clone()),
        crate::clusterrole_aggregation::run(ctx.clone()),
        async {
            match cfg.signer.clone() {
                Some(s) => crate::certificates::signing::run(ctx.clone(), s).await,
                None => std::future::pending().await,
            }
        },
    );
}
