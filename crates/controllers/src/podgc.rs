//! Pod garbage collection, as Kubernetes' PodGC does for orphans: a pod bound to a node
//! that no longer exists is deleted at once (grace period 0), since no kubelet will ever
//! finish it; its controller then replaces it elsewhere. A node's deletion collects its
//! pods at once, and a scan every 20 s finds the rest. The API is asked before a delete,
//! so a node the informer has not seen yet is not taken for a gone one.

use std::sync::Arc;

use std::time::Duration;

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

/// How often every pod is checked for a node that is gone (Kubernetes' PodGC period).
const SCAN_PERIOD: Duration = Duration::from_secs(20);

pub(crate) async fn run(ctx: Arc<Ctx>) {
    // Keyed by node: a node's deletion collects its pods at once. Pods are not watched one
    // by one (every pod change would be a reconcile); a periodic scan finds pods bound to
    // a node this controller never saw.
    let scan = ctx.every(SCAN_PERIOD, || async {
        if let Err(e) = scan(&ctx).await {
            tracing::warn!(error = %e, "collecting orphaned pods failed");
        }
    });
    let by_node = ctx.controller("pod-garbage-collector", &ctx.nodes).run(
        |key, ctx| async move { collect(&ctx, &key.name).await.map(|()| Action::AwaitChange) },
        backoff,
        ctx.clone(),
    );
    tokio::join!(scan, by_node);
}

/// Every pod bound to a node the informer does not have.
async fn scan(ctx: &Ctx) -> Result<(), client::Error> {
    let known = |n: &str| ctx.nodes.get(&node_key(n)).is_some();
    let mut gone: Vec<String> = ctx
        .pods
        .list()
        .iter()
        .filter(|p| orphaned(p, known))
        .filter_map(|p| bound_node(p).map(str::to_string))
        .collect();
    gone.sort();
    gone.dedup();
    for node in gone {
        collect(ctx, &node).await?;
    }
    Ok(())
}

fn node_key(name: &str) -> ObjectKey {
    ObjectKey {
        namespace: String::new(),
        name: name.to_string(),
    }
}

/// Deletes the pods bound to `node` if it is gone: the informer no longer has it, and
/// neither has the API (the informer may be behind a node just created).
async fn collect(ctx: &Ctx, node: &str) -> Result<(), client::Error> {
    if ctx.nodes.get(&node_key(node)).is_some() {
        return Ok(());
    }
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .list()
        .into_iter()
        .filter(|p| bound_node(p) == Some(node))
        .collect();
    if pods.is_empty()
        || Api::<Node>::all(ctx.client.clone())
            .get_opt(node)
            .await?
            .is_some()
    {
        return Ok(());
    }
    for pod in pods {
        delete(ctx, &pod, node).await?;
    }
    Ok(())
}

async fn delete(ctx: &Ctx, pod: &Pod, node: &str) -> Result<(), client::Error> {
    let (ns, name) = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        precondition_uid: pod.metadata.uid.clone(),
        ..Default::default()
    };
    match Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .delete_with(&name, &dp)
        .await
    {
        Ok(_) => {
            tracing::info!(pod = %name, namespace = %ns, node, "deleted a pod whose node is gone");
            Ok(())
        }
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
        Err(e) => Err(e),
    }
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
