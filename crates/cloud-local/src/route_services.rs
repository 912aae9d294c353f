//! The route services of the `local` provider: the cloud provider protocol's Routes, for
//! the cloud-controller-manager, and NodeAgent, which tells each machine's node agent
//! the kernel routes it must have.

use std::pin::Pin;

use rkube_proto::cloudlocal as cl;
use rkube_proto::cloudprovider as cp;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::routes::{for_node, RouteError, StoredRoute};
use crate::services::Local;

fn to_status(e: RouteError) -> Status {
    match e {
        RouteError::Invalid { .. } => Status::invalid_argument(e.to_string()),
        RouteError::Io { .. } => Status::unavailable(e.to_string()),
    }
}

fn to_proto(r: StoredRoute) -> cp::Route {
    cp::Route {
        name: r.name,
        target_node: r.target_node,
        target_node_addresses: r
            .gateway
            .map(|ip| cp::NodeAddress {
                r#type: "InternalIP".into(),
                address: ip.to_string(),
            })
            .into_iter()
            .collect(),
        destination_cidr: r.destination_cidr,
        blackhole: r.gateway.is_none(),
    }
}

fn route_of(r: Option<cp::Route>) -> Result<cp::Route, Status> {
    r.ok_or_else(|| Status::invalid_argument("route: Required value"))
}

#[tonic::async_trait]
impl cp::routes_server::Routes for Local {
    async fn list_routes(
        &self,
        req: Request<cp::ListRoutesRequest>,
    ) -> Result<Response<cp::ListRoutesResponse>, Status> {
        let routes = self.routes()?.list(&req.get_ref().cluster_name);
        Ok(Response::new(cp::ListRoutesResponse {
            routes: routes.into_iter().map(to_proto).collect(),
        }))
    }

    async fn create_route(
        &self,
        req: Request<cp::CreateRouteRequest>,
    ) -> Result<Response<cp::CreateRouteResponse>, Status> {
        let r = req.into_inner();
        let route = route_of(r.route)?;
        self.routes()?
            .create(&r.cluster_name, &r.name_hint, &route)
            .map_err(to_status)?;
        Ok(Response::new(cp::CreateRouteResponse {}))
    }

    async fn delete_route(
        &self,
        req: Request<cp::DeleteRouteRequest>,
    ) -> Result<Response<cp::DeleteRouteResponse>, Status> {
        let r = req.into_inner();
        let route = route_of(r.route)?;
        self.routes()?
            .delete(&r.cluster_name, &route)
            .map_err(to_status)?;
        Ok(Response::new(cp::DeleteRouteResponse {}))
    }
}

/// The node a NodeAgent caller is: its certificate must name `system:node:<name>` in
/// the group `system:nodes`.
fn calling_node<T>(req: &Request<T>) -> Result<String, Status> {
    let id = req
        .peer_certs()
        .and_then(|c| pki::Identity::of(&c))
        .ok_or_else(|| Status::unauthenticated("a node's client certificate is required"))?;
    match id.user.strip_prefix("system:node:") {
        Some(node) if !node.is_empty() && id.groups.iter().any(|g| g == "system:nodes") => {
            Ok(node.to_string())
        }
        _ => Err(Status::permission_denied(format!(
            "{} is not a node (system:node:<name> in group system:nodes)",
            id.user
        ))),
    }
}

type RouteStream = Pin<Box<dyn Stream<Item = Result<cl::HostRoutes, Status>> + Send>>;

#[tonic::async_trait]
impl cl::node_agent_server::NodeAgent for Local {
    type WatchRoutesStream = RouteStream;

    async fn watch_routes(
        &self,
        req: Request<cl::WatchRoutesRequest>,
    ) -> Result<Response<RouteStream>, Status> {
        let node = calling_node(&req)?;
        let rx = self.routes()?.subscribe();
        tracing::info!(%node, "a node agent watches its routes");
        let stream = WatchStream::new(rx).map(move |table| {
            Ok(cl::HostRoutes {
                routes: for_node(&table, &node),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
