//! Objects tests and benchmarks create: fake nodes (Node objects with no agent behind them)
//! and pods.

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
