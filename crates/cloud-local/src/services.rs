//! The gRPC services of the `local` provider.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rkube_proto::cloudprovider as cp;
use tonic::{Request, Response, Status};

use crate::balancer::{BalancerError, Balancers, Spec};
use crate::inventory::{Inventory, InventoryError, Machine, State, PROVIDER_ID_PREFIX};
use crate::routes::Routes;
use crate::volumes::Pool;

/// The provider: the inventory's path, read at every call, the load balancers when it
/// has an address pool, the route table when it offers routes, and the volume pool when
/// it offers volumes.
#[derive(Clone)]
pub struct Local {
    inventory: Arc<PathBuf>,
    balancers: Option<Arc<Balancers>>,
    routes: Option<Arc<Routes>>,
    volumes: Option<Arc<Pool>>,
}

impl Local {
    /// The provider of the inventory `inventory`, which must parse now (later edits are
    /// read at every call).
    pub fn new(
        inventory: PathBuf,
        balancers: Option<Balancers>,
        routes: Option<Routes>,
    ) -> Result<Self, InventoryError> {
        Inventory::read(&inventory)?;
        Ok(Local {
            inventory: Arc::new(inventory),
            balancers: balancers.map(Arc::new),
            routes: routes.map(Arc::new),
            volumes: None,
        })
    }

    /// The provider, offering volumes from `pool` too.
    pub fn with_volumes(mut self, pool: Pool) -> Self {
        self.volumes = Some(Arc::new(pool));
        self
    }

    pub fn offers_volumes(&self) -> bool {
        self.volumes.is_some()
    }

    pub(crate) fn volumes(&self) -> Result<&Pool, Status> {
        self.volumes
            .as_deref()
            .ok_or_else(|| Status::unimplemented("volumes need --volume-pool"))
    }

    pub fn offers_load_balancers(&self) -> bool {
        self.balancers.is_some()
    }

    pub fn offers_routes(&self) -> bool {
        self.routes.is_some()
    }

    pub(crate) fn routes(&self) -> Result<&Routes, Status> {
        self.routes
            .as_deref()
            .ok_or_else(|| Status::unimplemented("routes need --route-state"))
    }

    /// The balancers, for node agents: only when nodes announce the addresses.
    pub(crate) fn node_held_balancers(
        &self,
    ) -> Result<tokio::sync::watch::Receiver<std::collections::BTreeMap<String, Spec>>, Status>
    {
        match self.balancers.as_deref() {
            Some(b) if b.announce() == crate::balancer::Announce::Nodes => Ok(b.subscribe()),
            _ => Err(Status::unimplemented(
                "nodes announce no load balancers (--lb-pool with --lb-announce nodes)",
            )),
        }
    }

    fn balancers(&self) -> Result<&Balancers, Status> {
        self.balancers
            .as_deref()
            .ok_or_else(|| Status::unimplemented("load balancers need --lb-pool"))
    }

    fn read(&self) -> Result<Inventory, Status> {
        Inventory::read(&self.inventory).map_err(|e| Status::unavailable(e.to_string()))
    }

    /// The machine of the node in `req`, with the inventory's region; `None` if the
    /// inventory does not list it.
    fn machine(&self, req: &cp::InstanceRequest) -> Result<Option<(Machine, String)>, Status> {
        let node = req
            .node
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("node: Required value"))?;
        if node.name.is_empty() {
            return Err(Status::invalid_argument("node.name: Required value"));
        }
        let inv = self.read()?;
        Ok(inv
            .machine(&node.name, &node.provider_id)
            .cloned()
            .map(|m| (m, inv.region.clone())))
    }
}

#[tonic::async_trait]
impl cp::identity_server::Identity for Local {
    async fn get_plugin_info(
        &self,
        _: Request<cp::GetPluginInfoRequest>,
    ) -> Result<Response<cp::GetPluginInfoResponse>, Status> {
        Ok(Response::new(cp::GetPluginInfoResponse {
            name: crate::NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: [
                Some(cp::Capability::Instances),
                self.offers_load_balancers()
                    .then_some(cp::Capability::LoadBalancer),
                self.offers_routes().then_some(cp::Capability::Routes),
                self.offers_volumes().then_some(cp::Capability::Volumes),
            ]
            .into_iter()
            .flatten()
            .map(|c| c as i32)
            .collect(),
            protocol_version: cp::ProtocolVersion::ProtocolVersion1 as i32,
            load_balancer_class: String::new(),
        }))
    }

    async fn probe(
        &self,
        _: Request<cp::ProbeRequest>,
    ) -> Result<Response<cp::ProbeResponse>, Status> {
        let ready = self.read().is_ok();
        Ok(Response::new(cp::ProbeResponse { ready }))
    }
}

#[tonic::async_trait]
impl cp::instances_server::Instances for Local {
    async fn instance_exists(
        &self,
        req: Request<cp::InstanceRequest>,
    ) -> Result<Response<cp::InstanceExistsResponse>, Status> {
        let exists = self.machine(req.get_ref())?.is_some();
        Ok(Response::new(cp::InstanceExistsResponse { exists }))
    }

    async fn instance_shutdown(
        &self,
        req: Request<cp::InstanceRequest>,
    ) -> Result<Response<cp::InstanceShutdownResponse>, Status> {
        let (m, _) = self
            .machine(req.get_ref())?
            .ok_or_else(not_listed(req.get_ref()))?;
        Ok(Response::new(cp::InstanceShutdownResponse {
            shutdown: m.state == State::Shutdown,
        }))
    }

    async fn instance_metadata(
        &self,
        req: Request<cp::InstanceRequest>,
    ) -> Result<Response<cp::InstanceMetadataResponse>, Status> {
        let (m, region) = self
            .machine(req.get_ref())?
            .ok_or_else(not_listed(req.get_ref()))?;
        Ok(Response::new(metadata(&m, &region)))
    }
}

fn not_listed(req: &cp::InstanceRequest) -> impl FnOnce() -> Status + '_ {
    move || {
        let name = req
            .node
            .as_ref()
            .map(|n| n.name.as_str())
            .unwrap_or_default();
        Status::not_found(format!("machine of node {name:?} is not in the inventory"))
    }
}

/// What a node on machine `m` is initialized with. Its addresses are its own (the node
/// agent reports them), so none are given.
fn metadata(m: &Machine, region: &str) -> cp::InstanceMetadataResponse {
    let or_local = |s: &str| {
        if s.is_empty() {
            "local".to_string()
        } else {
            s.to_string()
        }
    };
    cp::InstanceMetadataResponse {
        provider_id: format!("{PROVIDER_ID_PREFIX}{}", m.name),
        instance_type: or_local(&m.instance_type),
        node_addresses: vec![],
        zone: or_local(&m.zone),
        region: or_local(region),
        additional_labels: m.labels.clone().into_iter().collect::<HashMap<_, _>>(),
    }
}

/// The balancer a request asks for: TCP ports with their node ports, and the backends'
/// InternalIPs.
fn spec_of(
    req: &cp::LoadBalancerRequest,
) -> Result<(String, Option<std::net::Ipv4Addr>, Spec), Status> {
    let svc = req
        .service
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("service: Required value"))?;
    if svc.uid.is_empty() {
        return Err(Status::invalid_argument("service.uid: Required value"));
    }
    let (mut ports, mut udp_ports) = (Vec::new(), Vec::new());
    for p in &svc.ports {
        let into = match p.protocol.as_str() {
            "TCP" | "" => &mut ports,
            "UDP" => &mut udp_ports,
            other => {
                return Err(Status::invalid_argument(format!(
                    "service.ports[{}].protocol: {other} is not supported by the local provider (TCP and UDP)",
                    p.name
                )))
            }
        };
        let (Ok(port), Ok(node_port)) = (u16::try_from(p.port), u16::try_from(p.node_port)) else {
            return Err(Status::invalid_argument(format!(
                "service.ports[{}]: port out of range",
                p.name
            )));
        };
        if node_port == 0 {
            return Err(Status::invalid_argument(format!(
                "service.ports[{}].nodePort: Required value",
                p.name
            )));
        }
        into.push((port, node_port));
    }
    let (nodes, backends) = req
        .nodes
        .iter()
        .filter_map(|n| {
            let a = n.addresses.iter().find(|a| a.r#type == "InternalIP")?;
            let ip: std::net::IpAddr = a.address.parse().ok()?;
            Some((n.name.clone(), std::net::SocketAddr::new(ip, 0)))
        })
        .unzip();
    let wanted = match svc.load_balancer_ip.as_str() {
        "" => None,
        s => Some(s.parse().map_err(|_| {
            Status::invalid_argument(format!(
                "service.loadBalancerIP: {s:?} is not an IPv4 address"
            ))
        })?),
    };
    let spec = Spec {
        service: format!("{}/{}", svc.namespace, svc.name),
        ip: std::net::Ipv4Addr::UNSPECIFIED,
        ports,
        udp_ports,
        backends,
        source_ranges: svc.load_balancer_source_ranges.clone(),
        health_check_port: match svc.external_traffic_policy.as_str() {
            "Local" => u16::try_from(svc.health_check_node_port).unwrap_or(0),
            _ => 0,
        },
        nodes,
        holder: None,
    };
    Ok((svc.uid.clone(), wanted, spec))
}

fn status_of(ip: std::net::Ipv4Addr) -> cp::LoadBalancerStatus {
    cp::LoadBalancerStatus {
        ingress: vec![cp::LoadBalancerIngress {
            ip: ip.to_string(),
            hostname: String::new(),
        }],
    }
}

fn to_status(e: BalancerError) -> Status {
    match e {
        BalancerError::Unavailable(_) => Status::failed_precondition(e.to_string()),
        BalancerError::Exhausted => Status::resource_exhausted(e.to_string()),
        BalancerError::Io { .. } => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl cp::load_balancer_server::LoadBalancer for Local {
    async fn get_load_balancer(
        &self,
        req: Request<cp::LoadBalancerRequest>,
    ) -> Result<Response<cp::GetLoadBalancerResponse>, Status> {
        let (uid, _, _) = spec_of(req.get_ref())?;
        let ip = self.balancers()?.get(&uid);
        Ok(Response::new(cp::GetLoadBalancerResponse {
            exists: ip.is_some(),
            status: ip.map(status_of),
        }))
    }

    async fn ensure_load_balancer(
        &self,
        req: Request<cp::LoadBalancerRequest>,
    ) -> Result<Response<cp::LoadBalancerStatus>, Status> {
        let (uid, wanted, spec) = spec_of(req.get_ref())?;
        let ip = self
            .balancers()?
            .ensure(&uid, wanted, spec)
            .await
            .map_err(to_status)?;
        Ok(Response::new(status_of(ip)))
    }

    async fn update_load_balancer(
        &self,
        req: Request<cp::LoadBalancerRequest>,
    ) -> Result<Response<cp::UpdateLoadBalancerResponse>, Status> {
        self.ensure_load_balancer(req).await?;
        Ok(Response::new(cp::UpdateLoadBalancerResponse {}))
    }

    async fn ensure_load_balancer_deleted(
        &self,
        req: Request<cp::LoadBalancerRequest>,
    ) -> Result<Response<cp::EnsureLoadBalancerDeletedResponse>, Status> {
        let (uid, _, _) = spec_of(req.get_ref())?;
        self.balancers()?.delete(&uid).await.map_err(to_status)?;
        Ok(Response::new(cp::EnsureLoadBalancerDeletedResponse {}))
    }
}
