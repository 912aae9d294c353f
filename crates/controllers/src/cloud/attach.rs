//! The volume loop's attacher, through `storage.k8s.io/v1` VolumeAttachments: when a pod
//! using a claim of the provider's volume is bound to a node, the VolumeAttachment for
//! (volume, node) is created, Attach is called with the node's providerID, and
//! `status.attached` and `attachmentMetadata` (the provider's publish context) are
//! written; the node's kubelet waits for that and mounts the volume. When no pod on the
//! node uses the volume any more (the kubelet unmounts before it lets a pod object go),
//! Detach is called and the VolumeAttachment deleted.
//!
//! One key ("all") is reconciled, level-triggered, on every change of pods, volumes,
//! nodes and attachments: [`volume_plan::attachments`](super::volume_plan::attachments)
//! compares what pods need with what exists.

use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::{Api, ApiObject};
use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use k8s_openapi::api::storage::v1::{VolumeAttachment, VolumeAttachmentStatus};
use rkube_proto::cloudprovider as cp;

use super::volume::VolumeLoop;
use super::volume_plan::{self, Placement};
use super::CloudError;

/// The providerID of the node, on a VolumeAttachment.
const PROVIDER_ID: &str = "rkube.io/provider-id";

fn all() -> ObjectKey {
    ObjectKey {
        namespace: String::new(),
        name: "all".into(),
    }
}

fn everything<K: ApiObject>(_: &Change<K>) -> Vec<ObjectKey> {
    vec![all()]
}

/// Runs the attacher until shutdown.
pub(crate) async fn run(this: Arc<VolumeLoop>) {
    let ctx = &this.ctx;
    ctx.controller_with_resync("cloud-volume-attacher", Arc::new(|| vec![all()]))
        .watches(ctx.pods.clone(), everything::<Pod>)
        .watches(ctx.pvs.clone(), everything::<PersistentVolume>)
        .watches(ctx.nodes.clone(), everything)
        .watches(this.attachments.clone(), everything::<VolumeAttachment>)
        .run(
            |_, this: Arc<VolumeLoop>| async move { sync(&this).await },
            backoff,
            this.clone(),
        )
        .await
}

async fn sync(this: &VolumeLoop) -> Result<Action, CloudError> {
    let provider = this.cloud.plugin.name().to_string();
    let (pods, pvs, vas) = (
        this.ctx.pods.list(),
        this.ctx.pvs.list(),
        this.attachments.list(),
    );
    let pods: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let pvs: Vec<&PersistentVolume> = pvs.iter().map(|p| p.as_ref()).collect();
    let vas: Vec<&VolumeAttachment> = vas.iter().map(|v| v.as_ref()).collect();
    let wanted = volume_plan::wanted(&pods, &pvs, &provider);
    let plan = volume_plan::attachments(&wanted, &vas, &pvs, &provider);
    let api = Api::<VolumeAttachment>::all(this.ctx.client.clone());
    // Detach first: a node's old attachment goes before a new one is made.
    for (name, p) in &plan.detach {
        let annotated = vas
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name))
            .and_then(|v| v.metadata.annotations.as_ref()?.get(PROVIDER_ID))
            .map(String::as_str);
        detach(this, &api, name, p, annotated).await?;
    }
    for va in &plan.create {
        let mut va = va.clone();
        // Detach needs the providerID even when the node is gone by then.
        if let Some(id) = provider_id(this, &va.spec.node_name) {
            va.metadata.annotations = Some([(PROVIDER_ID.to_string(), id)].into());
        }
        match api.create(&va).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
    }
    for (name, p) in &plan.attach {
        attach(this, &api, name, p).await?;
    }
    Ok(Action::AwaitChange)
}

/// The providerID of node `name`; `None` until the node has one.
fn provider_id(this: &VolumeLoop, name: &str) -> Option<String> {
    let key = ObjectKey {
        namespace: String::new(),
        name: name.to_string(),
    };
    this.ctx
        .nodes
        .get(&key)?
        .spec
        .as_ref()?
        .provider_id
        .clone()
        .filter(|p| !p.is_empty())
}

async fn attach(
    this: &VolumeLoop,
    api: &Api<VolumeAttachment>,
    name: &str,
    p: &Placement,
) -> Result<(), CloudError> {
    let Some(node_id) = provider_id(this, &p.node) else {
        tracing::info!(node = %p.node, volume = %p.volume, "waiting for the node's providerID to attach");
        return Ok(());
    };
    let req = cp::AttachRequest {
        volume_id: p.handle.clone(),
        node_id,
        readonly: false,
        volume_context: Default::default(),
    };
    let answer = this
        .cloud
        .plugin
        .call("Attach", req, |ch, r| async move {
            cp::volumes_client::VolumesClient::new(ch).attach(r).await
        })
        .await?;
    let mut va = api.get(name).await?;
    va.status = Some(VolumeAttachmentStatus {
        attached: true,
        attachment_metadata: Some(answer.publish_context.into_iter().collect()),
        ..Default::default()
    });
    api.replace_status(&va).await?;
    tracing::info!(volume = %p.volume, node = %p.node, "volume attached");
    Ok(())
}

async fn detach(
    this: &VolumeLoop,
    api: &Api<VolumeAttachment>,
    name: &str,
    p: &Placement,
    annotated: Option<&str>,
) -> Result<(), CloudError> {
    // A volume already gone has no handle: its deletion waited for its attachments, so
    // nothing is left to detach.
    let node_id = provider_id(this, &p.node).or_else(|| annotated.map(str::to_string));
    match (p.handle.is_empty(), node_id) {
        (true, _) => {}
        (false, None) => {
            tracing::warn!(volume = %p.volume, node = %p.node,
                "the node and its providerID are unknown: the provider is not told to detach");
        }
        (false, Some(node_id)) => {
            let req = cp::DetachRequest {
                volume_id: p.handle.clone(),
                node_id,
            };
            this.cloud
                .plugin
                .call("Detach", req, |ch, r| async move {
                    cp::volumes_client::VolumesClient::new(ch).detach(r).await
                })
                .await?;
        }
    }
    match api.delete(name, None).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(volume = %p.volume, node = %p.node, "volume detached");
    Ok(())
}
