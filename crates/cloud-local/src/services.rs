//! The gRPC services of the `local` provider.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rkube_proto::cloudprovider as cp;
use tonic::{Request, Response, Status};

use crate::inventory::{Inventory, Machine, State, PROVIDER_ID_PREFIX};

/// The provider: the inventory's path, read at every call.
#[derive(Clone)]
pub struct Local {
    inventory: Arc<PathBuf>,
}

impl Local {
    pub fn new(inventory: PathBuf) -> Self {
        Local {
            inventory: Arc::new(inventory),
        }
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
            capabilities: vec![cp::Capability::Instances as i32],
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
