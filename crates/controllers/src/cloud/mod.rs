//! The cloud-controller-manager: the loops that need a cloud provider, which is a plugin
//! process reached over gRPC ([`plugin`]; the protocol is `proto/cloudprovider.proto`).
//! Leader-elected on the `kube-system/cloud-controller-manager` Lease.
//!
//! - [`node`]: initializes nodes registered with `--cloud-provider=external`;
//! - [`lifecycle`]: deletes nodes whose machine is gone and taints shut-down ones;
//! - [`service`]: load balancers for `type: LoadBalancer` Services, when the provider
//!   offers them;
//! - [`route`]: a route to every node's pod CIDR, when the provider offers routes and a
//!   cluster CIDR is set;
//! - [`volume`] and [`attach`]: volumes for claims of StorageClasses whose `provisioner`
//!   is the provider's name, and their VolumeAttachments to the nodes of the pods that use
//!   them, when the provider offers volumes.
//!
//! Each decides in [`plan`], [`lb_plan`], [`route_plan`] or [`volume_plan`], as pure
//! functions of the objects and the provider's answers.

mod attach;
pub(crate) mod lb_plan;
mod lifecycle;
mod node;
pub(crate) mod plan;
pub mod plugin;
mod route;
pub(crate) mod route_plan;
mod service;
mod volume;
pub(crate) mod volume_plan;

use std::sync::Arc;
use std::time::Duration;

use client::leader::LeaderElectionConfig;
use client::runtime::CancellationToken;
use client::Client;
use rkube_proto::cloudprovider as cp;

use crate::context::Ctx;
use plugin::{Address, CallPolicy, Plugin, PluginError};

#[derive(Clone, Debug)]
pub struct CloudConfig {
    /// `None`: act at once, without a Lease.
    pub leader_election: Option<LeaderElectionConfig>,
    pub plugin: Address,
    pub calls: CallPolicy,
    /// How often every node's machine is looked up.
    pub node_monitor_period: Duration,
    /// The cluster's name, as providers tag their resources with it.
    pub cluster_name: String,
    /// The pod network: with it (and a provider that offers routes), every node's pod
    /// CIDR is routed to the node.
    pub cluster_cidr: Option<String>,
    /// How often the routes are reconciled.
    pub route_period: Duration,
    pub metrics: client::runtime::Metrics,
}

impl CloudConfig {
    pub fn new(identity: &str, plugin: Address) -> Self {
        CloudConfig {
            leader_election: Some(LeaderElectionConfig::new(
                "kube-system",
                "cloud-controller-manager",
                identity,
            )),
            plugin,
            calls: CallPolicy::default(),
            node_monitor_period: Duration::from_secs(5),
            cluster_name: "kubernetes".into(),
            cluster_cidr: None,
            route_period: Duration::from_secs(10),
            metrics: Default::default(),
        }
    }
}

/// Why a cloud loop's step failed.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error(transparent)]
    Api(#[from] client::Error),
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// The provider, as the loops share it.
pub(crate) struct Cloud {
    pub plugin: Plugin,
}

/// Connects to the plugin, then runs the loops while holding the Lease, until `shutdown`
/// is cancelled. Fails when the plugin cannot be reached or offers no Instances.
pub async fn run(
    client: Client,
    cfg: CloudConfig,
    shutdown: CancellationToken,
) -> Result<(), PluginError> {
    let plugin = Plugin::connect(&cfg.plugin, cfg.calls).await?;
    plugin.require(cp::Capability::Instances, "Instances")?;
    tracing::info!(provider = plugin.name(), version = %plugin.info.version, "cloud provider connected");
    let cloud = Arc::new(Cloud { plugin });
    let (client_ref, cfg_ref, shutdown_ref, cloud_ref) = (&client, &cfg, &shutdown, &cloud);
    let leading = client::runtime::run_while_leading(
        client.clone(),
        cfg.leader_election.clone(),
        move || async move {
            let ctx: Arc<Ctx> = Ctx::start(
                client_ref.clone(),
                "cloud-controller-manager",
                cfg_ref.metrics.clone(),
                shutdown_ref.clone(),
            );
            if shutdown_ref
                .run_until_cancelled(ctx.wait_ready())
                .await
                .is_none()
            {
                return;
            }
            let balancers = async {
                if cloud_ref.plugin.offers(cp::Capability::LoadBalancer) {
                    let name = cfg_ref.cluster_name.clone();
                    service::run(ctx.clone(), cloud_ref.clone(), name).await
                }
            };
            let routes = async {
                let Some(cidr) = cfg_ref.cluster_cidr.clone() else {
                    return;
                };
                if cloud_ref.plugin.offers(cp::Capability::Routes) {
                    let r = route::Routes {
                        cluster_name: cfg_ref.cluster_name.clone(),
                        cluster_cidr: cidr,
                        period: cfg_ref.route_period,
                    };
                    route::run(ctx.clone(), cloud_ref.clone(), r).await
                }
            };
            let volumes = async {
                if cloud_ref.plugin.offers(cp::Capability::Volumes) {
                    run_volumes(ctx.clone(), cloud_ref.clone()).await
                }
            };
            tokio::join!(
                volumes,
                node::run(ctx.clone(), cloud_ref.clone()),
                lifecycle::run(ctx.clone(), cloud_ref.clone(), cfg_ref.node_monitor_period),
                balancers,
                routes,
            );
        },
    );
    shutdown.run_until_cancelled(leading).await;
    Ok(())
}

/// The provisioner, the reclaimer and the attacher, with their own VolumeAttachment
/// informer (the controller-manager's shared context has none).
async fn run_volumes(ctx: Arc<Ctx>, cloud: Arc<Cloud>) {
    let attachments = client::informer::Informer::start(
        client::Api::<k8s_openapi::api::storage::v1::VolumeAttachment>::all(ctx.client.clone()),
        Default::default(),
    );
    if ctx
        .shutdown
        .run_until_cancelled(attachments.wait_ready())
        .await
        .is_none()
    {
        return;
    }
    let this = Arc::new(volume::VolumeLoop {
        ctx,
        cloud,
        attachments,
    });
    tokio::join!(volume::run(this.clone()), attach::run(this));
}
