//! Builders for the HPA's plan tests: HPAs, metric specs, and pods with their PodMetrics,
//! from JSON fragments.

use std::sync::Arc;

use client::metrics::PodMetrics;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

/// Now, in the tests' clock: seconds since the epoch.
pub(crate) const NOW: i64 = 1_700_000_000;

/// A pod of the scale target with its metrics, as the plan sees it.
pub(crate) type Sampled = (Arc<Pod>, Option<Arc<PodMetrics>>);

/// RFC 3339 time `ago` seconds before [`NOW`].
pub(crate) fn ts(ago: i64) -> String {
    Timestamp::from_second(NOW - ago).unwrap().to_string()
}

/// An HPA of Deployment `web` between `min` and `max` replicas, on `metrics`.
pub(crate) fn hpa(min: i32, max: i32, metrics: Value) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": min, "maxReplicas": max, "metrics": metrics}
    }))
    .unwrap()
}

/// `h` with `spec.behavior`.
pub(crate) fn behaving(mut h: HorizontalPodAutoscaler, behavior: Value) -> HorizontalPodAutoscaler {
    h.spec.behavior = serde_json::from_value(behavior).unwrap();
    h
}

pub(crate) fn utilization(resource: &str, percent: i32) -> Value {
    json!({"type": "Resource", "resource": {"name": resource,
        "target": {"type": "Utilization", "averageUtilization": percent}}})
}

pub(crate) fn average(resource: &str, value: &str) -> Value {
    json!({"type": "Resource", "resource": {"name": resource,
        "target": {"type": "AverageValue", "averageValue": value}}})
}

/// The metrics of an HPA on cpu at `percent` of the requests.
pub(crate) fn cpu(percent: i32) -> Value {
    json!([utilization("cpu", percent)])
}

/// A metric type the controller does not compute.
pub(crate) fn external() -> Value {
    json!({"type": "External", "external": {"metric": {"name": "queue"},
        "target": {"type": "Value", "value": "1"}}})
}

/// `[[container, x], …]` as `[f(container, x), …]`.
fn each(v: &Value, f: impl Fn(&Value, &Value) -> Value) -> Vec<Value> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| f(&c[0], &c[1]))
        .collect()
}

/// A pod whose containers request `requests` and use `usage` (None: no PodMetrics), each
/// `[[container, {resource: quantity}], …]`. Flags: `u` never ready since it started long
/// ago, `f` Failed, `d` being deleted, `s` its metrics are stale.
pub(crate) fn pod_of(name: &str, requests: &Value, usage: Option<&Value>, flags: &str) -> Sampled {
    let containers = each(
        requests,
        |n, r| json!({"name": n, "image": "x", "resources": {"requests": r}}),
    );
    let unready = flags.contains('u');
    let phase = if flags.contains('f') {
        "Failed"
    } else {
        "Running"
    };
    let mut p = json!({
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"containers": containers},
        "status": {"phase": phase, "startTime": ts(3600), "conditions": [{"type": "Ready",
            "status": if unready { "False" } else { "True" },
            "lastTransitionTime": ts(if unready { 3600 } else { 3500 })}]}
    });
    if flags.contains('d') {
        p["metadata"]["deletionTimestamp"] = json!(ts(5));
    }
    let m = usage.map(|u| {
        let age = if flags.contains('s') { 200 } else { 10 };
        let containers = each(u, |n, u| json!({"name": n, "usage": u}));
        let m = json!({"metadata": {"name": name, "namespace": "ns"},
            "timestamp": ts(age), "window": "15s", "containers": containers});
        Arc::new(serde_json::from_value(m).unwrap())
    });
    (Arc::new(serde_json::from_value(p).unwrap()), m)
}

/// Pods `a`, `b`, … requesting `requests` each, and using `usage[i]`.
pub(crate) fn pods(requests: Value, usage: &[Value]) -> Vec<Sampled> {
    let names = ["a", "b", "c", "d", "e", "f"];
    let each = usage.iter().zip(names);
    each.map(|(u, n)| pod_of(n, &requests, Some(u), ""))
        .collect()
}

/// A pod requesting a whole cpu, using `usage` millicores.
pub(crate) fn cpu_pod(name: &str, usage: Option<i64>, flags: &str) -> Sampled {
    let usage = usage.map(|u| json!([["app", {"cpu": format!("{u}m")}]]));
    pod_of(name, &json!([["app", {"cpu": "1"}]]), usage.as_ref(), flags)
}

/// Pods requesting `request` millicores each, using `usage[i]` millicores.
pub(crate) fn cpu_pods(request: i64, usage: &[i64]) -> Vec<Sampled> {
    let usage: Vec<_> = usage
        .iter()
        .map(|u| json!([["app", {"cpu": format!("{u}m")}]]))
        .collect();
    pods(json!([["app", {"cpu": format!("{request}m")}]]), &usage)
}
