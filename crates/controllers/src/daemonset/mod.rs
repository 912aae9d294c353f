//! DaemonSet controller: one pod per eligible node. A node is eligible when the template's
//! nodeSelector and required node affinity admit it and it has no NoSchedule or NoExecute
//! taint the pod does not tolerate. Daemon pods are placed by the scheduler, pinned to
//! their node by required node affinity on `metadata.name`, as Kubernetes does; they
//! tolerate the node-condition taints. A changed template replaces pods one at a time.

//!
//! [`plan`] decides, from the DaemonSet, its pods, the nodes and the time; `reconcile`
//! makes the calls.

use std::sync::Arc;

use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::{Api, PatchParams};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::context::Ctx;
use crate::pods::{self, controller_ref};
use client::events::now;

mod plan;

pub(crate) async fn run(ctx: Arc<Ctx>, workers: usize) {
    let c = ctx.clone();
    ctx.controller("daemonset", &ctx.daemonsets)
        .owns(ctx.pods.clone(), "DaemonSet")
        .watches(ctx.nodes.clone(), move |_| c.daemonsets.keys())
        .concurrency(workers)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

/// Gathers the DaemonSet's pods and the nodes, decides, and makes the calls (a pod
/// already gone counts as deleted; any other failure fails the reconcile).
async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(ds) = ctx.daemonsets.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let owned: Vec<Arc<Pod>> = ctx
        .pods
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|p| controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
        .filter(|p| !pods::is_deleting(p))
        .collect();
    let plan = plan::plan(&ds, &owned, &ctx.nodes.list(), now().as_second());
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &key.namespace);
    for pod in &plan.create {
        api.create(pod).await?;
    }
    for d in &plan.delete {
        match api.delete(&d.name, d.grace_seconds).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(status) = &plan.status {
        Api::<DaemonSet>::namespaced(ctx.client.clone(), &key.namespace)
            .patch_status(&key.name, PatchParams::Merge, &json!({ "status": status }))
            .await?;
    }
    Ok(Action::AwaitChange)
}
