//! The cloud node lifecycle controller: every monitor period, each node that is not Ready
//! is looked up with the provider. A node whose machine no longer exists is deleted (its
//! pods are then rescheduled); a node whose machine is shut down gets the
//! `node.cloudprovider.kubernetes.io/shutdown` taint, which goes when it runs again.

use std::sync::Arc;
use std::time::Duration;

use client::state::EventType;
use client::Api;
use k8s_openapi::api::core::v1::Node;
use rkube_proto::cloudprovider as cp;

use super::plan::{self, LifecycleStep, Machine};
use super::{Cloud, CloudError};
use crate::context::Ctx;

pub(crate) async fn run(ctx: Arc<Ctx>, cloud: Arc<Cloud>, period: Duration) {
    ctx.every(period, || async {
        for n in ctx.nodes.list() {
            if let Err(e) = check(&ctx, &cloud, &n).await {
                let name = n.metadata.name.as_deref().unwrap_or_default();
                tracing::warn!(node = name, error = %e, "checking a node's machine failed");
            }
        }
    })
    .await
}

/// What the provider says of the machine of a node that is not Ready.
async fn machine(cloud: &Cloud, n: &Node) -> Result<Option<Machine>, CloudError> {
    if plan::is_ready(n) {
        return Ok(None);
    }
    let req = cp::InstanceRequest {
        node: Some(plan::to_proto(n)),
    };
    let exists = cloud
        .plugin
        .call("InstanceExists", req.clone(), |ch, r| async move {
            cp::instances_client::InstancesClient::new(ch)
                .instance_exists(r)
                .await
        })
        .await?
        .exists;
    let shutdown = exists
        && cloud
            .plugin
            .call("InstanceShutdown", req, |ch, r| async move {
                cp::instances_client::InstancesClient::new(ch)
                    .instance_shutdown(r)
                    .await
            })
            .await?
            .shutdown;
    Ok(Some(Machine { exists, shutdown }))
}

async fn check(ctx: &Ctx, cloud: &Cloud, n: &Node) -> Result<(), CloudError> {
    let step = plan::lifecycle(n, machine(cloud, n).await?);
    let name = n.metadata.name.clone().unwrap_or_default();
    let api = Api::<Node>::all(ctx.client.clone());
    match step {
        LifecycleStep::Nothing => {}
        LifecycleStep::Delete => {
            ctx.events.record(
                n,
                EventType::Normal,
                "DeletingNode",
                format!("Deleting node {name} because it does not exist in the cloud provider"),
            );
            match api.delete(&name, None).await {
                Ok(_) => tracing::info!(node = %name, "deleted a node whose machine is gone"),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        LifecycleStep::TaintShutdown | LifecycleStep::Untaint => {
            let mut want = n.clone();
            want.spec.get_or_insert_with(Default::default).taints =
                Some(plan::taints_after(n, &step));
            api.replace(&want).await?;
        }
    }
    Ok(())
}
