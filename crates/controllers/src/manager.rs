//! The controller-manager: every controller in one process, acting only while it holds the
//! `kube-system/kube-controller-manager` Lease. Losing the Lease stops every controller;
//! winning it again starts them afresh from new lists. A cancelled shutdown token stops
//! them gracefully.

use std::sync::Arc;

use client::leader::LeaderElectionConfig;
use client::runtime::CancellationToken;
use client::Client;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use tokio::sync::watch;

use crate::context::Ctx;
use crate::credentials;
pub use crate::hpa::HpaConfig;
pub use crate::job::JobConfig;

#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// `None`: act at once, without a Lease.
    pub leader_election: Option<LeaderElectionConfig>,
    /// Concurrent reconciles per controller.
    pub workers: usize,
    pub node_lifecycle: crate::node_lifecycle::NodeLifecycleConfig,
    pub hpa: HpaConfig,
    pub job: JobConfig,
    /// The CA `csrsigning` signs with; `None` leaves requests unsigned.
    pub signer: Option<crate::certificates::signing::Signer>,
    /// The cluster CA (PEM) published in every namespace as `kube-root-ca.crt`; `None`
    /// publishes nothing.
    pub root_ca: Option<String>,
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
            root_ca: None,
            metrics: Default::default(),
        }
    }
}

/// Runs every controller while holding the Lease, until `shutdown` is cancelled. Then
/// every controller stops taking keys, and `run` returns once the reconciles under way
/// have finished (at once when not leading). Dropping the future stops everything at once.
pub async fn run(client: Client, cfg: ManagerConfig, shutdown: CancellationToken) {
    let lease = cfg.leader_election.clone();
    // Whether the controllers run: a shutdown waits for them, and only for them.
    let (working, mut working_rx) = watch::channel(false);
    let (client_ref, cfg_ref, shutdown_ref, working_ref) = (&client, &cfg, &shutdown, &working);
    let leading = client::runtime::run_while_leading(client.clone(), lease, move || async move {
        if shutdown_ref.is_cancelled() {
            return;
        }
        working_ref.send_replace(true);
        let _stopped = Stopped(working_ref);
        run_leading(client_ref.clone(), cfg_ref.clone(), shutdown_ref.clone()).await
    });
    let stopped = async {
        shutdown.cancelled().await;
        let _ = working_rx.wait_for(|w| !*w).await;
    };
    tokio::select! {
        () = leading => {}
        () = stopped => {}
    }
}

/// Marks the controllers stopped when their future ends or is dropped (the Lease lost).
struct Stopped<'a>(&'a watch::Sender<bool>);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// The controllers' credentials, once the informers have listed.
async fn prepare(ctx: &Ctx, client: &Client) -> Vec<(&'static str, Client)> {
    ctx.wait_ready().await;
    tracing::info!("controller-manager caches synced");
    let mut clients = Vec::new();
    for name in credentials::CONTROLLERS {
        clients.push((*name, credentials::client_for(client, name).await));
    }
    clients
}

async fn run_leading(client: Client, cfg: ManagerConfig, shutdown: CancellationToken) {
    let metrics = cfg.metrics.clone();
    let ctx: Arc<Ctx> = Ctx::start(
        client.clone(),
        "controller-manager",
        metrics,
        shutdown.clone(),
    );
    let Some(clients) = shutdown.run_until_cancelled(prepare(&ctx, &client)).await else {
        return;
    };
    run_controllers(&ctx, &client, &clients, &cfg).await;
}

/// Every controller, each writing as its own client in `clients` (or as `client`), until
/// `ctx.shutdown` is cancelled and each has finished the reconciles under way.
async fn run_controllers(
    ctx: &Ctx,
    client: &Client,
    clients: &[(&'static str, Client)],
    cfg: &ManagerConfig,
) {
    let shutdown = &ctx.shutdown;
    let as_ = |name: &str| {
        let c = clients
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.clone());
        ctx.for_controller(c.unwrap_or_else(|| client.clone()))
    };
    let w = cfg.workers.max(1);
    let renew = credentials::keep_renewed(client.clone(), clients.to_vec());
    tokio::join!(
        shutdown.run_until_cancelled(renew),
        crate::replicaset::run::<ReplicaSet>(as_("replicaset-controller"), w),
        crate::replicaset::run::<ReplicationController>(as_("replication-controller"), w),
        crate::deployment::run(as_("deployment-controller"), w),
        crate::serviceaccount::run(as_("service-account-controller")),
        crate::token::run(as_("token-controller")),
        crate::endpoints::run(as_("endpoint-controller"), w),
        crate::cluster_dns::run(as_("endpoint-controller")),
        crate::node_lifecycle::run(as_("node-lifecycle-controller"), cfg.node_lifecycle.clone()),
        crate::garbage_collector::run(as_("generic-garbage-collector")),
        crate::podgc::run(as_("pod-garbage-collector")),
        crate::job::run(as_("job-controller"), w, cfg.job.clone()),
        crate::cronjob::run(as_("cronjob-controller")),
        crate::daemonset::run(as_("daemon-set-controller"), w),
        crate::statefulset::run(as_("statefulset-controller"), w),
        crate::volume::run(as_("persistent-volume-binder")),
        crate::volume::local_path::run(as_("local-path-provisioner")),
        crate::namespace::run(as_("namespace-controller")),
        crate::hpa::run(as_("horizontal-pod-autoscaler"), cfg.hpa.clone()),
        crate::certificates::approving::run(as_("certificate-controller")),
        crate::resource_quota::run(as_("resourcequota-controller")),
        crate::clusterrole_aggregation::run(as_("clusterrole-aggregation-controller")),
        async {
            match cfg.root_ca.clone() {
                Some(ca) => crate::root_ca::run(as_("root-ca-cert-publisher"), ca).await,
                None => shutdown.cancelled().await,
            }
        },
        async {
            match cfg.signer.clone() {
                Some(s) => {
                    crate::certificates::signing::run(as_("certificate-controller"), s).await
                }
                None => shutdown.cancelled().await,
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A client of an address nothing listens on: informers never sync, no Lease is won.
    fn unreachable() -> Client {
        Client::from_servers("http://127.0.0.1:1").unwrap()
    }

    /// Asserts `fut` is still running after a moment, then that it returns once
    /// `shutdown` is cancelled.
    async fn stops_on<F: std::future::Future<Output = ()>>(fut: F, shutdown: CancellationToken) {
        tokio::pin!(fut);
        let early = tokio::time::timeout(Duration::from_millis(100), &mut fut).await;
        assert!(early.is_err(), "returned before the shutdown");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("returns once the shutdown token is cancelled");
    }

    #[tokio::test]
    async fn every_controller_stops_when_the_shutdown_token_is_cancelled() {
        let shutdown = CancellationToken::new();
        let client = unreachable();
        let ctx = Ctx::start(client.clone(), "test", Default::default(), shutdown.clone());
        let mut cfg = ManagerConfig::new("test");
        cfg.leader_election = None;
        stops_on(run_controllers(&ctx, &client, &[], &cfg), shutdown).await;
    }

    #[tokio::test]
    async fn a_shutdown_before_the_caches_sync_stops_at_once() {
        let shutdown = CancellationToken::new();
        let mut cfg = ManagerConfig::new("test");
        cfg.leader_election = None;
        stops_on(run(unreachable(), cfg, shutdown.clone()), shutdown).await;
    }

    #[tokio::test]
    async fn a_shutdown_without_the_lease_stops_at_once() {
        let shutdown = CancellationToken::new();
        let cfg = ManagerConfig::new("test");
        stops_on(run(unreachable(), cfg, shutdown.clone()), shutdown).await;
    }
}
