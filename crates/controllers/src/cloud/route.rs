//! The route loop: every period, the provider's routes are compared with the nodes' pod
//! CIDRs (`route_plan`): a node without a route to its pod CIDR gets one, and then the
//! condition `NetworkUnavailable=False` (reason RouteCreated); a route in the cluster CIDR
//! that no node needs any more is deleted.

use std::sync::Arc;
use std::time::Duration;

use client::events::now;
use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::Node;
use rkube_proto::cloudprovider as cp;
use serde_json::json;

use super::route_plan::{self, NodeRoute};
use super::{plan, Cloud, CloudError};
use crate::context::Ctx;

/// What the route loop needs to know.
#[derive(Clone, Debug)]
pub(crate) struct Routes {
    pub cluster_name: String,
    /// Routes inside it are this loop's.
    pub cluster_cidr: String,
    pub period: Duration,
}

pub(crate) async fn run(ctx: Arc<Ctx>, cloud: Arc<Cloud>, cfg: Routes) {
    ctx.every(cfg.period, || async {
        if let Err(e) = sync(&ctx, &cloud, &cfg).await {
            tracing::warn!(error = %e, "reconciling routes failed");
        }
    })
    .await
}

fn node_route(n: &Node) -> NodeRoute {
    let p = plan::to_proto(n);
    NodeRoute {
        node: p.name,
        cidr: p.pod_cidr,
        addresses: p.addresses,
    }
}

async fn sync(ctx: &Ctx, cloud: &Cloud, cfg: &Routes) -> Result<(), CloudError> {
    let list = cp::ListRoutesRequest {
        cluster_name: cfg.cluster_name.clone(),
    };
    let existing = cloud
        .plugin
        .call("ListRoutes", list, |ch, r| async move {
            cp::routes_client::RoutesClient::new(ch)
                .list_routes(r)
                .await
        })
        .await?
        .routes;
    let nodes: Vec<NodeRoute> = ctx.nodes.list().iter().map(|n| node_route(n)).collect();
    let p = route_plan::plan(&nodes, &existing, &cfg.cluster_cidr);
    for route in p.create {
        let node = route.target_node.clone();
        let req = cp::CreateRouteRequest {
            cluster_name: cfg.cluster_name.clone(),
            name_hint: route.name.clone(),
            route: Some(route),
        };
        cloud
            .plugin
            .call("CreateRoute", req, |ch, r| async move {
                cp::routes_client::RoutesClient::new(ch)
                    .create_route(r)
                    .await
            })
            .await?;
        tracing::info!(%node, "created a route to the node's pod CIDR");
        network_available(ctx, &node).await?;
    }
    for route in p.delete {
        let node = route.target_node.clone();
        let req = cp::DeleteRouteRequest {
            cluster_name: cfg.cluster_name.clone(),
            route: Some(route),
        };
        cloud
            .plugin
            .call("DeleteRoute", req, |ch, r| async move {
                cp::routes_client::RoutesClient::new(ch)
                    .delete_route(r)
                    .await
            })
            .await?;
        tracing::info!(%node, "deleted a route no node needs");
    }
    Ok(())
}

/// `NetworkUnavailable=False`, as Kubernetes' route controller sets it.
async fn network_available(ctx: &Ctx, node: &str) -> Result<(), client::Error> {
    let t = now().to_string();
    let patch = json!({"status": {"conditions": [{"type": "NetworkUnavailable",
        "status": "False", "reason": "RouteCreated",
        "message": "RouteController created a route", "lastTransitionTime": t,
        "lastHeartbeatTime": t}]}});
    match Api::<Node>::all(ctx.client.clone())
        .patch_status(node, PatchParams::Strategic, &patch)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}
