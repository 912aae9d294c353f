//! Pod garbage collection, as Kubernetes' PodGC does for orphans: a pod bound to a node
//! that no longer exists is deleted at once (grace period 0), since no kubelet will ever
//! finish it; its controller then replaces it elsewhere. The API is asked before a delete,
//! so a node the informer has not seen yet is not taken for a gone one.

use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::{Api, DeleteParams};
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::context::Ctx;

/// The node `p` is bound to, if any.
fn bound_node(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Whether `p` is an orphan: bound to a node, which `node_exists` says is gone.
pub(crate) fn orphaned(p: &Pod, node_exists: impl Fn(&str) -> bool) -> bool {
    bound_node(p).is_some_and(|n| !node_exists(n))
}

pub(crate) async fn run(ctx: Arc<Ctx>) {
    let pods = ctx.pods.clone();
    // A deleted node: every pod bound to it.
    let pods_of_node = move |c: &Change<Node>| -> Vec<ObjectKey> {
        let node = c.object().metadata.name.clone().unwrap_or_default();
        pods.list()
            .iter()
            .filter(|p| bound_node(p) == Some(node.as_str()))
            .map(|p| ObjectKey {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
            })
            .collect()
    };
    ctx.controller("pod-garbage-collector", &ctx.pods)
        .watches(ctx.nodes.clone(), pods_of_node)
        .concurrency(2)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(pod) = ctx.pods.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let known = |n: &str| {
        ctx.nodes
            .get(&ObjectKey {
                namespace: String::new(),
                name: n.to_string(),
            })
            .is_some()
    };
    if !orphaned(&pod, known) {
        return Ok(Action::AwaitChange);
    }
    let node = bound_node(&pod).unwrap_or_default().to_string();
    if Api::<Node>::all(ctx.client.clone())
        .get_opt(&node)
        .await?
        .is_some()
    {
        // The informer is behind: the node exists.
        return Ok(Action::AwaitChange);
    }
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        precondition_uid: pod.metadata.uid.clone(),
        ..Default::default()
    };
    match Api::<Pod>::namespaced(ctx.client.clone(), &key.namespace)
        .delete_with(&key.name, &dp)
        .await
    {
        Ok(_) => tracing::info!(pod = %key.name, namespace = %key.namespace, %node,
            "deleted a pod whose node is gone"),
        Err(e) if e.is_not_found() || e.is_conflict() => {}
        Err(e) => return Err(e),
    }
    Ok(Action::AwaitChange)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_pods_bound_to_a_missing_node_are_orphans() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        let exists = |n: &str| n == "n1";
        let rows = [
            (
                "unscheduled",
                pod(json!({"metadata": {"name": "p"}, "spec": {"containers": []}})),
                false,
            ),
            (
                "empty node name",
                pod(json!({"metadata": {"name": "p"}, "spec": {"nodeName": "", "containers": []}})),
                false,
            ),
            (
                "on a node that exists",
                pod(
                    json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}}),
                ),
                false,
            ),
            (
                "on a node that is gone",
                pod(
                    json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n2", "containers": []}}),
                ),
                true,
            ),
            (
                "terminating on a node that is gone",
                pod(json!({"metadata": {"name": "p",
                "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": "n2", "containers": []}})),
                true,
            ),
        ];
        for (what, p, want) in rows {
            assert_eq!(orphaned(&p, exists), want, "{what}");
        }
    }
}
