//! The volume loop's provisioner: a claim of a StorageClass whose `provisioner` is the
//! provider's name gets a volume from CreateVolume (named after the claim, so a call
//! repeated after a crash finds the same volume), and a PersistentVolume pre-bound to it
//! that the binder then binds. A provisioned volume with reclaim policy Delete holds
//! [`FINALIZER`] until, once it is deleted and detached everywhere, DeleteVolume removed
//! the provider's volume. Decisions are in [`volume_plan`](super::volume_plan).

use std::collections::BTreeSet;
use std::sync::Arc;

use client::informer::{Change, Informer};
use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::Api;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use rkube_proto::cloudprovider as cp;

use super::volume_plan::{self, Reclaim, FINALIZER};
use super::{Cloud, CloudError};
use crate::context::Ctx;

pub(crate) struct VolumeLoop {
    pub ctx: Arc<Ctx>,
    pub cloud: Arc<Cloud>,
    pub attachments: Arc<Informer<VolumeAttachment>>,
}

fn cluster_key(name: &str) -> ObjectKey {
    ObjectKey {
        namespace: String::new(),
        name: name.to_string(),
    }
}

/// Runs the provisioner and the reclaimer until shutdown.
pub(crate) async fn run(this: Arc<VolumeLoop>) {
    let ctx = &this.ctx;
    let pvcs = ctx.pvcs.clone();
    let all_claims = move |_: &Change<k8s_openapi::api::storage::v1::StorageClass>| {
        pvcs.list()
            .iter()
            .map(|c| ObjectKey::of(c.as_ref()))
            .collect()
    };
    let claims = ctx
        .controller("cloud-volume-provisioner", &ctx.pvcs)
        .watches(ctx.storage_classes.clone(), all_claims)
        .run(
            |key, this: Arc<VolumeLoop>| async move { this.provision(key).await },
            backoff,
            this.clone(),
        );
    let of_volume = |c: &Change<VolumeAttachment>| {
        c.object()
            .spec
            .source
            .persistent_volume_name
            .as_deref()
            .map(cluster_key)
            .into_iter()
            .collect()
    };
    let volumes = ctx
        .controller("cloud-volume-reclaimer", &ctx.pvs)
        .watches(this.attachments.clone(), of_volume)
        .run(
            |key, this: Arc<VolumeLoop>| async move { this.reclaim(key).await },
            backoff,
            this.clone(),
        );
    tokio::join!(claims, volumes);
}

impl VolumeLoop {
    fn provider(&self) -> &str {
        self.cloud.plugin.name()
    }

    /// The topology of node `name`, from the informer.
    fn topology_of(&self, name: &str) -> cp::Topology {
        let labels = self
            .ctx
            .nodes
            .get(&cluster_key(name))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        volume_plan::topology(name, &labels)
    }

    async fn provision(&self, key: ObjectKey) -> Result<Action, CloudError> {
        let ctx = &self.ctx;
        let Some(claim) = ctx.pvcs.get(&key) else {
            return Ok(Action::AwaitChange);
        };
        let Some(class) = crate::volume::class_of(ctx, &claim) else {
            return Ok(Action::AwaitChange);
        };
        let all = ctx.pvs.list();
        let volumes: Vec<&PersistentVolume> = all.iter().map(|v| v.as_ref()).collect();
        let selected = claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::volume::plan::SELECTED_NODE))
            .map(|n| self.topology_of(n));
        let names = ctx.ready_node_names();
        let ready: Vec<cp::Topology> = names.iter().map(|n| self.topology_of(n)).collect();
        let provider = self.provider();
        let Some(req) =
            volume_plan::provision(&claim, &class, provider, &volumes, selected, &ready)
        else {
            return Ok(Action::AwaitChange);
        };
        let name = req.name.clone();
        let volume = self
            .cloud
            .plugin
            .call("CreateVolume", req, |ch, r| async move {
                cp::volumes_client::VolumesClient::new(ch)
                    .create_volume(r)
                    .await
            })
            .await?
            .volume
            .ok_or_else(|| {
                CloudError::Plugin(super::plugin::PluginError::Call {
                    what: "CreateVolume".into(),
                    status: tonic::Status::internal("the provider answered no volume"),
                })
            })?;
        let pv = volume_plan::volume_for(&claim, &class, provider, &volume);
        match Api::<PersistentVolume>::all(ctx.client.clone())
            .create(&pv)
            .await
        {
            Ok(_) => {
                tracing::info!(claim = %key.name, namespace = %key.namespace, volume = %name,
                    id = %volume.volume_id, "provisioned a volume");
            }
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::AwaitChange)
    }

    async fn reclaim(&self, key: ObjectKey) -> Result<Action, CloudError> {
        let Some(pv) = self.ctx.pvs.get(&key) else {
            return Ok(Action::AwaitChange);
        };
        let listed = self.attachments.list();
        let attached: BTreeSet<&str> = listed
            .iter()
            .filter_map(|va| va.spec.source.persistent_volume_name.as_deref())
            .collect();
        let id = match volume_plan::reclaim(&pv, self.provider(), &attached) {
            Reclaim::Nothing | Reclaim::WaitForDetach => return Ok(Action::AwaitChange),
            Reclaim::DeleteVolume { id } => id,
        };
        let req = cp::DeleteVolumeRequest {
            volume_id: id.clone(),
        };
        self.cloud
            .plugin
            .call("DeleteVolume", req, |ch, r| async move {
                cp::volumes_client::VolumesClient::new(ch)
                    .delete_volume(r)
                    .await
            })
            .await?;
        tracing::info!(volume = %key.name, %id, "deleted the provider's volume");
        let mut pv = (*pv).clone();
        if let Some(f) = pv.metadata.finalizers.as_mut() {
            f.retain(|f| f != FINALIZER);
        }
        match Api::<PersistentVolume>::all(self.ctx.client.clone())
            .replace(&pv)
            .await
        {
            Ok(_) => Ok(Action::AwaitChange),
            Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
            Err(e) => Err(e.into()),
        }
    }
}
