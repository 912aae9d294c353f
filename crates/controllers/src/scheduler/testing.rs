//! Builders for plugin tests: nodes and pods from JSON fragments.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use super::cache::Cache;
use super::framework::{CycleState, Profile, Status};
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;

/// A node with `cpu` and `memory` allocatable, 110 pods; `extra` is merged into the object
/// (e.g. `{"metadata": {"labels": …}, "spec": {"taints": …}}`).
pub(crate) fn node(name: &str, cpu: &str, memory: &str, extra: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110",
                                   "ephemeral-storage": "100Gi"}},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("node")
}

/// A pod in namespace `default`; `meta` is merged into its metadata.
pub(crate) fn pod(name: &str, meta: Value, spec: Value) -> PodInfo {
    let mut m = json!({"name": name, "namespace": "default", "uid": format!("uid-{name}")});
    merge(&mut m, meta);
    let p: Pod = serde_json::from_value(json!({"metadata": m, "spec": spec})).expect("pod");
    let priority = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
    PodInfo::new(Arc::new(p), priority)
}

/// A pod with one container asking for `cpu` and `memory`.
pub(crate) fn pod_requesting(name: &str, cpu: &str, memory: &str) -> PodInfo {
    pod(
        name,
        json!({}),
        json!({"containers": [{"name": "c", "image": "app",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}),
    )
}

/// The same pod, placed on `node`.
pub(crate) fn on(mut p: PodInfo, node: &str) -> Arc<PodInfo> {
    p.node_name = node.to_string();
    Arc::new(p)
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// A cache holding `nodes` and `pods`.
pub(crate) fn cache(nodes: Vec<Node>, pods: Vec<Arc<PodInfo>>) -> Cache {
    let mut c = Cache::default();
    for n in nodes {
        c.set_node(Arc::new(n));
    }
    for p in pods {
        c.add_pod(p, false);
    }
    c
}

/// Runs `profile`'s PreFilter and Filter plugins for `pod` on every node of `cache`:
/// (node, status) in node order.
pub(crate) fn filter_all(profile: &Profile, cache: &Cache, pod: &PodInfo) -> Vec<(String, Status)> {
    let mut state = CycleState::default();
    for p in &profile.pre_filter {
        let s = p.pre_filter(&mut state, pod, cache);
        if !s.is_success() && s.code != super::framework::Code::Skip {
            return cache
                .nodes()
                .iter()
                .map(|n| (n.name.clone(), s.clone()))
                .collect();
        }
    }
    cache
        .nodes()
        .iter()
        .map(|n| (n.name.clone(), profile.run_filters(&state, pod, n)))
        .collect()
}

/// Runs `profile`'s PreScore and Score plugins (with normalization) for `pod` on every
/// node of `cache`; weights are ignored.
pub(crate) fn score_all(profile: &Profile, cache: &Cache, pod: &PodInfo) -> Vec<(String, i64)> {
    let mut state = CycleState::default();
    for p in &profile.pre_filter {
        p.pre_filter(&mut state, pod, cache);
    }
    let nodes: Vec<&NodeInfo> = cache.nodes().iter().collect();
    for p in &profile.pre_score {
        p.pre_score(&mut state, pod, &nodes, cache);
    }
    let mut total = vec![0; nodes.len()];
    for (s, _) in &profile.score {
        let mut scores: Vec<i64> = nodes.iter().map(|n| s.score(&state, pod, n)).collect();
        s.normalize(&state, pod, &mut scores);
        for (t, v) in total.iter_mut().zip(scores) {
            *t += v;
        }
    }
    nodes.iter().map(|n| n.name.clone()).zip(total).collect()
}
