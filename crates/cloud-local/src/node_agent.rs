//! NodeAgent, the `local` provider's service for the node agent on every machine: the
//! kernel routes each machine must have, and the load balancer addresses it holds. A
//! caller must be a node (its client certificate names `system:node:<name>` in the group
//! `system:nodes`), and learns only about its own machine.

use std::pin::Pin;

use rkube_proto::cloudlocal as cl;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::balancer::{held_by, Spec};
use crate::routes::for_node;
use crate::services::Local;

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
type BalancerStream = Pin<Box<dyn Stream<Item = Result<cl::HeldBalancers, Status>> + Send>>;

fn held(uid: &str, s: &Spec) -> cl::HeldBalancer {
    cl::HeldBalancer {
        uid: uid.to_string(),
        service: s.service.clone(),
        ip: s.ip.to_string(),
        ports: [("TCP", &s.ports), ("UDP", &s.udp_ports)]
            .into_iter()
            .flat_map(|(protocol, ports)| {
                ports.iter().map(move |(port, node_port)| cl::BalancerPort {
                    port: u32::from(*port),
                    node_port: u32::from(*node_port),
                    protocol: protocol.into(),
                })
            })
            .collect(),
        backends: s.backends.iter().map(|b| b.ip().to_string()).collect(),
        source_ranges: s.source_ranges.clone(),
        health_check_node_port: u32::from(s.health_check_port),
    }
}

#[tonic::async_trait]
impl cl::node_agent_server::NodeAgent for Local {
    type WatchRoutesStream = RouteStream;
    type WatchBalancersStream = BalancerStream;

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

    async fn watch_balancers(
        &self,
        req: Request<cl::WatchBalancersRequest>,
    ) -> Result<Response<BalancerStream>, Status> {
        let node = calling_node(&req)?;
        let rx = self.node_held_balancers()?;
        tracing::info!(%node, "a node agent watches the balancers it holds");
        let stream = WatchStream::new(rx).map(move |specs| {
            Ok(cl::HeldBalancers {
                balancers: held_by(&specs, &node)
                    .iter()
                    .map(|(uid, s)| held(uid, s))
                    .collect(),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
