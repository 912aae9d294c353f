//! Namespace controller: a deleted namespace (Terminating, held by the `kubernetes`
//! finalizer in `spec.finalizers`) has every object of every namespaced kind the server
//! serves deleted; once nothing is left, the finalizer is removed and the apiserver
//! removes the namespace.

use std::sync::Arc;
use std::time::Duration;

use client::reflector::ObjectKey;
use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::Namespace;
use rkube_proto::api::{DeleteRequest, ListRequest, Object};
use serde_json::json;

use crate::context::Ctx;
use client::runtime::{backoff, Action};

pub(crate) const FINALIZER: &str = "kubernetes";

pub(crate) async fn run(ctx: Arc<Ctx>) {
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
    let Some(ns) = ctx.namespaces.get(&key).filter(|ns| emptying(ns)) else {
        return Ok(Action::AwaitChange);
    };
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
        left += list.items.len();
        for o in to_delete(&list.items) {
            let req = DeleteRequest {
                r#type: Some(ty.clone()),
                namespace: name.clone(),
                name: o,
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
    let patch = json!({"spec": {"finalizers": finalizers_after(&ns)},
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

/// A namespace being deleted and still held by this controller's finalizer: its objects
/// are to go.
fn emptying(ns: &Namespace) -> bool {
    let held = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    ns.metadata.deletion_timestamp.is_some() && held
}

/// The names of the objects not already being deleted.
fn to_delete(items: &[Object]) -> Vec<String> {
    items
        .iter()
        .filter(|o| {
            let v: serde_json::Value = serde_json::from_slice(&o.json).unwrap_or_default();
            v["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|o| o.name.clone())
        .collect()
}

/// The namespace's finalizers without this controller's.
fn finalizers_after(ns: &Namespace) -> Vec<String> {
    let all = ns.spec.as_ref().and_then(|s| s.finalizers.clone());
    all.unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn ns(deleting: bool, finalizers: Value) -> Namespace {
        let mut v = json!({"metadata": {"name": "shop"}, "spec": {"finalizers": finalizers}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:13:20Z");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_a_deleted_namespace_held_by_the_finalizer_is_emptied() {
        let rows = [
            ("live", ns(false, json!(["kubernetes"])), false),
            ("deleted and held", ns(true, json!(["kubernetes"])), true),
            (
                "deleted, finalizer gone",
                ns(true, json!(["example.com/x"])),
                false,
            ),
        ];
        for (name, n, want) in rows {
            assert_eq!(emptying(&n), want, "{name}");
        }
        let n = ns(true, json!(["example.com/x", "kubernetes"]));
        assert_eq!(
            finalizers_after(&n),
            ["example.com/x"],
            "other finalizers stay"
        );
    }

    #[test]
    fn objects_already_going_are_not_deleted_again() {
        let obj = |name: &str, deleting: bool| Object {
            name: name.into(),
            json: serde_json::to_vec(&json!({"metadata": {"name": name,
                "deletionTimestamp": deleting.then_some("2023-11-14T22:13:20Z")}}))
            .unwrap()
            .into(),
            ..Default::default()
        };
        let items = [obj("a", false), obj("b", true), obj("c", false)];
        assert_eq!(to_delete(&items), ["a", "c"]);
    }
}
