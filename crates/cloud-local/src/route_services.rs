//! The cloud provider protocol's Routes, as the `local` provider serves them to the
//! cloud-controller-manager.

use rkube_proto::cloudprovider as cp;
use tonic::{Request, Response, Status};

use crate::routes::{RouteError, StoredRoute};
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
