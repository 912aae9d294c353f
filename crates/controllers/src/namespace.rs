//! Namespace controller: a deleted namespace (Terminating, held by the `kubernetes`
//! finalizer in `spec.finalizers`) has every object of every namespaced kind the server
//! serves deleted; once nothing is left, the finalizer is removed and the apiserver
//! removes the namespace.

use std::sync::Arc;
use std::time::Duration;

use client::reflector::ObjectKey;
use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::Namespace;
use rkube_proto::api::{DeleteRequest, ListRequest};
use serde_json::json;

use crate::context::Ctx;
use client::runtime::{backoff, Action};

pub const FINALIZER: &str = "kubernetes";

pub async fn run(ctx: Arc<Ctx>) {
    ctx.controller("namespace", &ctx.namespaces)
        .concurrency(2)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(ns) = ctx.namespaces.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let held = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if ns.metadata.deletion_timestamp.is_none() || !held {
        return Ok(Action::AwaitChange);
    }
    let name = key.name.clone();
    let mut left = 0;
    for r in ctx.client.discovery().await? {
        if !r.namespaced || !r.verbs.iter().any(|v| v == "delete") {
            continue;
        }
        let ty = crate::context::type_of(&r);
        let list = ctx
            .client
            .list(ListRequest {
                r#type: Some(ty.clone()),
                namespace: name.clone(),
                ..Default::default()
            })
            .await?;
        for o in list.items {
            left += 1;
            let v: serde_json::Value = serde_json::from_slice(&o.json).unwrap_or_default();
            if !v["metadata"]["deletionTimestamp"].is_null() {
                continue;
            }
            let req = DeleteRequest {
                r#type: Some(ty.clone()),
                namespace: name.clone(),
                name: o.name.clone(),
                propagation_policy: "Background".into(),
                ..Default::default()
            };
            match ctx.client.delete(req).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    if left > 0 {
        // Pods stop gracefully and finalizers run: look again shortly.
        return Ok(Action::Requeue(Duration::from_secs(1)));
    }
    let rest: Vec<String> = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    let patch = json!({"spec": {"finalizers": rest},
        "metadata": {"resourceVersion": ns.metadata.resource_version}});
    match Api::<Namespace>::all(ctx.client.clone())
        .patch(&name, PatchParams::Merge, &patch)
        .await
    {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}
