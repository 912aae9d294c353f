//! The cloud node controller: a node registered with `--cloud-provider=external` carries the
//! `node.cloudprovider.kubernetes.io/uninitialized` taint, and nothing is scheduled to it
//! until this controller has set its providerID, zone, region and instance-type labels
//! (and addresses, when the provider names them) from InstanceMetadata, and removed the
//! taint.

use std::sync::Arc;

use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::Api;
use k8s_openapi::api::core::v1::Node;
use rkube_proto::cloudprovider as cp;

use super::{plan, Cloud, CloudError};
use crate::context::Ctx;

pub(crate) async fn run(ctx: Arc<Ctx>, cloud: Arc<Cloud>) {
    ctx.controller("cloud-node", &ctx.nodes)
        .concurrency(2)
        .run(
            move |key, ctx| {
                let cloud = cloud.clone();
                async move { reconcile(&ctx, &cloud, key).await }
            },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, cloud: &Cloud, key: ObjectKey) -> Result<Action, CloudError> {
    let Some(n) = ctx.nodes.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if !plan::needs_init(&n) {
        return Ok(Action::AwaitChange);
    }
    let req = cp::InstanceRequest {
        node: Some(plan::to_proto(&n)),
    };
    let md = cloud
        .plugin
        .call("InstanceMetadata", req, |ch, r| async move {
            cp::instances_client::InstancesClient::new(ch)
                .instance_metadata(r)
                .await
        })
        .await?;
    let want = plan::initialized(&n, &md);
    let api = Api::<Node>::all(ctx.client.clone());
    let mut stored = api.replace(&want).await?;
    if want.status.as_ref().and_then(|s| s.addresses.as_ref())
        != stored.status.as_ref().and_then(|s| s.addresses.as_ref())
    {
        let addresses = want.status.and_then(|s| s.addresses);
        stored.status.get_or_insert_with(Default::default).addresses = addresses;
        api.replace_status(&stored).await?;
    }
    tracing::info!(node = %key.name, provider = cloud.plugin.name(), "node initialized");
    Ok(Action::AwaitChange)
}
