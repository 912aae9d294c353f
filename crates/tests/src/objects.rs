//! Objects tests and benchmarks create: fake nodes (Node objects with no agent behind them)
//! and pods.

use std::time::Duration;

use client::{Api, Client, ListParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

/// A Ready node with `cpu` and `memory` allocatable and room for 110 pods; `extra` is
/// merged in (labels, taints, `spec.unschedulable`…).
pub fn fake_node(name: &str, cpu: &str, memory: &str, extra: Value) -> Node {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("a node")
}

/// A pod with one container requesting `cpu` and `memory`; `extra` is merged in.
pub fn pod(name: &str, cpu: &str, memory: &str, extra: Value) -> Pod {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("a pod")
}

/// Deep-merges `extra` into `base`; arrays and scalars are replaced.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

pub fn node_name(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Waits until Deployment `default/<name>` reports `replicas` updated and available
/// replicas, and exactly that many pods labelled `app=<name>` run `image`.
pub async fn wait_rolled_out(client: &Client, name: &str, image: &str, replicas: i32) {
    let deploys = Api::<Deployment>::namespaced(client.clone(), "default");
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let what = format!("{replicas} replicas of {name} on {image}");
    crate::eventually(Duration::from_secs(90), &what, || async {
        let d = deploys.get(name).await.ok()?;
        let st = d.status?;
        let done = st.observed_generation == d.metadata.generation
            && st.updated_replicas == Some(replicas)
            && st.replicas == Some(replicas)
            && st.available_replicas == Some(replicas);
        let list = pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await
            .ok()?
            .items;
        let on_image = list.len() == replicas as usize
            && list.iter().all(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.spec
                        .as_ref()
                        .and_then(|s| s.containers.first()?.image.as_deref())
                        == Some(image)
            });
        (done && on_image).then_some(())
    })
    .await
}

/// The status of a node's Ready condition ("True", "False", "Unknown").
pub fn node_ready(n: &k8s_openapi::api::core::v1::Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(p: &k8s_openapi::api::core::v1::Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
