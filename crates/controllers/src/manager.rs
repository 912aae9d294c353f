//! The controller-manager: every controller in one process, acting only while it holds the
//! `kube-system/kube-controller-manager` Lease. Losing the Lease stops every controller;
//! winning it again starts them afresh from new lists.

use std::sync::Arc;

use client::leader::LeaderElectionConfig;
use client::Client;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;

use crate::context::Ctx;
use crate::credentials;

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
    /// Where every controller counts its reconciles and queue.
    pub metrics: client::runtime::Metrics,
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
            metrics: Default::default(),
        }
    }
}

/// Runs until dropped.
pub async fn run(client: Client, cfg: ManagerConfig) {
    let lease = cfg.leader_election.clone();
    client::runtime::run_while_leading(client.clone(), lease, || {
        run_leading(client.clone(), cfg.clone())
    })
    .await;
}

async fn run_leading(client: Client, cfg: ManagerConfig) {
    let ctx: Arc<Ctx> = Ctx::start(client.clone(), "controller-manager", cfg.metrics.clone());
    ctx.wait_ready().await;
    tracing::info!("controller-manager caches synced");
    let mut clients = Vec::new();
    for name in credentials::CONTROLLERS {
        clients.push((*name, credentials::client_for(&client, name).await));
    }
    let as_ = |name: &str| {
        let c = clients
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.clone());
        ctx.for_controller(c.unwrap_or_else(|| client.clone()))
    };
    let w = cfg.workers.max(1);
    tokio::join!(
        credentials::keep_renewed(client.clone(), clients.clone()),
        crate::replicaset::run::<ReplicaSet>(as_("replicaset-controller"), w),
        crate::replicaset::run::<ReplicationController>(as_("replication-controller"), w),
        crate::deployment::run(as_("deployment-controller"), w),
        crate::serviceaccount::run(as_("service-account-controller")),
        crate::token::run(as_("token-controller")),
        crate::endpoints::run(as_("endpoint-controller"), w),
        crate::node_lifecycle::run(as_("node-lifecycle-controller"), cfg.node_lifecycle.clone()),
        crate::garbage_collector::run(as_("generic-garbage-collector")),
        crate::job::run(as_("job-controller"), w, cfg.job.clone()),
        crate::cronjob::run(as_("cronjob-controller")),
        crate::daemonset::run(as_("daemon-set-controller"), w),
        crate::namespace::run(as_("namespace-controller")),
        crate::hpa::run(as_("horizontal-pod-autoscaler"), cfg.hpa.clone()),
        crate::certificates::approving::run(as_("certificate-controller")),
        crate::resource_quota::run(as_("resourcequota-controller")),
        crate::clusterrole_aggregation::run(as_("clusterrole-aggregation-controller")),
        async {
            match cfg.signer.clone() {
                Some(s) => {
                    crate::certificates::signing::run(as_("certificate-controller"), s).await
                }
                None => std::future::pending().await,
            }
        },
    );
}
