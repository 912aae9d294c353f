//! The cloud provider protocol's Volumes, as the `local` provider serves them from its
//! [`Pool`](crate::volumes::Pool): CreateVolume on the first node of the topology asked
//! for (the preferred ones first, then the requisite), a volume reachable from that node
//! alone; Attach and Detach as loop device setup and teardown.

use rkube_proto::cloudprovider as cp;
use tonic::{Request, Response, Status};

use crate::services::Local;
use crate::volumes::{self, Kind, VolumeError, HOSTNAME_KEY};

fn to_status(e: VolumeError) -> Status {
    match e {
        VolumeError::Invalid { .. } => Status::invalid_argument(e.to_string()),
        VolumeError::Conflict { .. } => Status::already_exists(e.to_string()),
        VolumeError::Precondition(_) => Status::failed_precondition(e.to_string()),
        VolumeError::Host { .. } => Status::unavailable(e.to_string()),
    }
}

/// The node a new volume goes to: the first topology, preferred before requisite, that
/// names a node.
fn node_of(req: &cp::CreateVolumeRequest) -> Result<String, Status> {
    req.accessibility_requirements
        .iter()
        .flat_map(|t| t.preferred.iter().chain(&t.requisite))
        .find_map(|t| t.segments.get(HOSTNAME_KEY).filter(|n| !n.is_empty()))
        .cloned()
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "accessibility_requirements: Required value: a topology with {HOSTNAME_KEY} (a local volume lives on one node)"
            ))
        })
}

fn to_proto(v: &volumes::Volume, required: i64) -> cp::Volume {
    let capacity = match v.kind {
        Kind::Block => v.bytes as i64,
        // A directory holds what its node's disk holds: report what was asked.
        Kind::Directory => required,
    };
    let kind = match v.kind {
        Kind::Block => "block",
        Kind::Directory => "directory",
    };
    cp::Volume {
        volume_id: v.id(),
        capacity_bytes: capacity,
        volume_context: [("type".to_string(), kind.to_string())].into(),
        accessible_topology: vec![cp::Topology {
            segments: [(HOSTNAME_KEY.to_string(), v.node.clone())].into(),
        }],
    }
}

#[tonic::async_trait]
impl cp::volumes_server::Volumes for Local {
    async fn create_volume(
        &self,
        req: Request<cp::CreateVolumeRequest>,
    ) -> Result<Response<cp::CreateVolumeResponse>, Status> {
        let pool = self.volumes()?;
        let r = req.into_inner();
        if !matches!(r.volume_mode.as_str(), "" | "Filesystem") {
            return Err(Status::invalid_argument(format!(
                "volume_mode: Unsupported value: {:?}: supported values: \"Filesystem\"",
                r.volume_mode
            )));
        }
        let kind = Kind::parse(r.parameters.get("type").map(String::as_str)).map_err(to_status)?;
        let range = r.capacity_range.unwrap_or_default();
        let bytes = match kind {
            Kind::Block => volumes::block_size(range.required_bytes, range.limit_bytes),
            Kind::Directory => Ok(0),
        }
        .map_err(to_status)?;
        let node = node_of(&r)?;
        let v = pool
            .create(&r.name, &node, kind, bytes)
            .map_err(to_status)?;
        tracing::info!(volume = %v.id(), bytes = v.bytes, "volume created");
        Ok(Response::new(cp::CreateVolumeResponse {
            volume: Some(to_proto(&v, range.required_bytes)),
        }))
    }

    async fn delete_volume(
        &self,
        req: Request<cp::DeleteVolumeRequest>,
    ) -> Result<Response<cp::DeleteVolumeResponse>, Status> {
        let id = req.into_inner().volume_id;
        self.volumes()?.delete(&id).await.map_err(to_status)?;
        tracing::info!(volume = %id, "volume deleted");
        Ok(Response::new(cp::DeleteVolumeResponse {}))
    }

    async fn attach(
        &self,
        req: Request<cp::AttachRequest>,
    ) -> Result<Response<cp::AttachResponse>, Status> {
        let r = req.into_inner();
        let node = volumes::node_of_provider_id(&r.node_id).map_err(to_status)?;
        let ctx = self
            .volumes()?
            .attach(&r.volume_id, node)
            .await
            .map_err(to_status)?;
        tracing::info!(volume = %r.volume_id, %node, "volume attached");
        Ok(Response::new(cp::AttachResponse {
            publish_context: ctx.into_iter().collect(),
        }))
    }

    async fn detach(
        &self,
        req: Request<cp::DetachRequest>,
    ) -> Result<Response<cp::DetachResponse>, Status> {
        let r = req.into_inner();
        volumes::node_of_provider_id(&r.node_id).map_err(to_status)?;
        self.volumes()?
            .detach(&r.volume_id)
            .await
            .map_err(to_status)?;
        tracing::info!(volume = %r.volume_id, node = %r.node_id, "volume detached");
        Ok(Response::new(cp::DetachResponse {}))
    }
}
