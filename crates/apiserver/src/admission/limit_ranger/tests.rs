//! Tests of LimitRanger: defaults and their annotation, the min, max and ratio checks per
//! Container, per Pod and per PersistentVolumeClaim with Kubernetes' messages, and the
//! plugin leaving a namespace without LimitRanges alone.

use std::time::Duration;

use serde_json::{json, Value};

use super::checks::{claim_violations, pod_violations};
use super::rules::{aggregate, apply_defaults, Range, ANNOTATION};
use super::*;
use crate::auth::UserInfo;
use crate::registry::Registry;

fn range(name: &str, limits: Value) -> Range {
    let v = json!({"metadata": {"name": name, "namespace": "team"}, "spec": {"limits": limits}});
    match Range::from_json(&v) {
        Ok(r) => r,
        Err(e) => panic!("LimitRange {name} should read: {e}"),
    }
}

fn container(name: &str, resources: Value) -> Value {
    json!({"name": name, "image": "busybox", "resources": resources})
}

fn pod(containers: Vec<Value>) -> Value {
    json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": containers}})
}

fn violations(r: &Range, p: &Value) -> Vec<String> {
    match pod_violations(r, p) {
        Ok(v) => v,
        Err(e) => panic!("pod should read: {e}"),
    }
}

#[test]
fn defaults_fill_missing_limits_and_requests_and_are_annotated() {
    let r = range(
        "defaults",
        json!([{"type": "Container",
                "default": {"cpu": "1.5", "memory": "512Mi"},
                "defaultRequest": {"cpu": "250m", "memory": "256Mi"}}]),
    );
    let mut p = pod(vec![
        container("a", json!({})),
        container(
            "b",
            json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}),
        ),
    ]);
    let note = apply_defaults(&[r], &mut p);
    let expected = "LimitRanger plugin set: cpu, memory request for container a; \
                    cpu, memory limit for container a; memory request for container b; \
                    memory limit for container b";
    assert_eq!(note.as_deref(), Some(expected));
    assert_eq!(p["metadata"]["annotations"][ANNOTATION], expected);
    let a = &p["spec"]["containers"][0]["resources"];
    assert_eq!(a["limits"], json!({"cpu": "1500m", "memory": "512Mi"}));
    assert_eq!(a["requests"], json!({"cpu": "250m", "memory": "256Mi"}));
    let b = &p["spec"]["containers"][1]["resources"];
    assert_eq!(b["limits"], json!({"cpu": "200m", "memory": "512Mi"}));
    assert_eq!(b["requests"], json!({"cpu": "100m", "memory": "256Mi"}));
}

#[test]
fn init_containers_are_defaulted_and_named_as_such() {
    let r = range(
        "d",
        json!([{"type": "Container", "defaultRequest": {"cpu": "100m"}}]),
    );
    let mut p = pod(vec![container("app", json!({"requests": {"cpu": "1"}}))]);
    p["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"}]);
    let note = apply_defaults(&[r], &mut p);
    assert_eq!(
        note.as_deref(),
        Some("LimitRanger plugin set: cpu request for init container setup")
    );
    assert_eq!(
        p["spec"]["initContainers"][0]["resources"]["requests"]["cpu"],
        "100m"
    );
}

#[test]
fn a_request_defaults_to_the_limit() {
    // A default limit alone is also the default request, as Kubernetes defaults it.
    let r = range(
        "d",
        json!([{"type": "Container", "default": {"memory": "1Gi"}}]),
    );
    let mut p = pod(vec![
        container("given", json!({"limits": {"cpu": "2"}})),
        container("none", json!({})),
    ]);
    let note = apply_defaults(&[r], &mut p);
    let given = &p["spec"]["containers"][0]["resources"];
    assert_eq!(given["requests"], json!({"cpu": "2", "memory": "1Gi"}));
    let none = &p["spec"]["containers"][1]["resources"];
    assert_eq!(none["requests"], json!({"memory": "1Gi"}));
    assert_eq!(none["limits"], json!({"memory": "1Gi"}));
    // The request copied from the container's own limit is not the plugin's doing.
    let note = note.unwrap_or_default();
    assert!(!note.contains("cpu"), "{note}");
}

#[test]
fn max_and_min_of_a_range_become_its_defaults() {
    let r = range(
        "bounds",
        json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}}]),
    );
    let mut p = pod(vec![container("c", json!({}))]);
    apply_defaults(&[r], &mut p);
    let res = &p["spec"]["containers"][0]["resources"];
    assert_eq!(res["limits"], json!({"cpu": "1"}));
    assert_eq!(res["requests"], json!({"cpu": "1", "memory": "64Mi"}));
}

#[test]
fn the_last_range_that_sets_something_writes_the_annotation() {
    let first = range("a", json!([{"type": "Container", "default": {"cpu": "1"}}]));
    let second = range(
        "b",
        json!([{"type": "Container", "default": {"memory": "1Gi"}}]),
    );
    let mut p = pod(vec![container("c", json!({}))]);
    let note = apply_defaults(&[first, second], &mut p);
    assert_eq!(
        note.as_deref(),
        Some(
            "LimitRanger plugin set: memory request for container c; memory limit for container c"
        )
    );
    let res = &p["spec"]["containers"][0]["resources"];
    assert_eq!(res["limits"], json!({"cpu": "1", "memory": "1Gi"}));
}

#[test]
fn no_range_leaves_the_pod_unchanged() {
    let mut p = pod(vec![container("c", json!({}))]);
    let before = p.clone();
    assert_eq!(apply_defaults(&[], &mut p), None);
    assert_eq!(p, before);
    let pod_only = range("pod", json!([{"type": "Pod", "max": {"cpu": "4"}}]));
    assert_eq!(apply_defaults(&[pod_only], &mut p), None);
    assert_eq!(p, before);
}

#[test]
fn container_max_violations() {
    let r = range("max", json!([{"type": "Container", "max": {"cpu": "1"}}]));
    let over = pod(vec![container("c", json!({"limits": {"cpu": "2"}}))]);
    assert_eq!(
        violations(&r, &over),
        ["maximum cpu usage per Container is 1, but limit is 2"]
    );
    let unlimited = pod(vec![container("c", json!({"requests": {"cpu": "500m"}}))]);
    assert_eq!(
        violations(&r, &unlimited),
        ["maximum cpu usage per Container is 1.  No limit is specified"]
    );
    let fits = pod(vec![container("c", json!({"limits": {"cpu": "1000m"}}))]);
    assert!(violations(&r, &fits).is_empty());
}

#[test]
fn container_min_violations() {
    let r = range(
        "min",
        json!([{"type": "Container", "min": {"memory": "100Mi"}}]),
    );
    let low = pod(vec![container(
        "c",
        json!({"requests": {"memory": "50Mi"}}),
    )]);
    assert_eq!(
        violations(&r, &low),
        ["minimum memory usage per Container is 100Mi, but request is 50Mi"]
    );
    let low_limit = pod(vec![container(
        "c",
        json!({"requests": {"memory": "100Mi"}, "limits": {"memory": "0.05Gi"}}),
    )]);
    assert_eq!(
        violations(&r, &low_limit),
        ["minimum memory usage per Container is 100Mi, but limit is 53687091200m"]
    );
    let none = pod(vec![container("c", json!({}))]);
    assert_eq!(
        violations(&r, &none),
        ["minimum memory usage per Container is 100Mi.  No request is specified"]
    );
}

#[test]
fn container_ratio_violations() {
    let r = range(
        "ratio",
        json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]),
    );
    let wide = pod(vec![container(
        "c",
        json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}),
    )]);
    assert_eq!(
        violations(&r, &wide),
        ["cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"]
    );
    let exact = pod(vec![container(
        "c",
        json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}),
    )]);
    assert!(violations(&r, &exact).is_empty());
    let no_request = pod(vec![container("c", json!({"limits": {"cpu": "1"}}))]);
    assert_eq!(
        violations(&r, &no_request),
        ["cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"]
    );
}

#[test]
fn every_container_and_init_container_is_checked() {
    let r = range(
        "both",
        json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"}}]),
    );
    let mut p = pod(vec![container(
        "app",
        json!({"requests": {"cpu": "50m"}, "limits": {"cpu": "2"}}),
    )]);
    p["spec"]["initContainers"] = json!([container(
        "init",
        json!({"requests": {"cpu": "3"}, "limits": {"cpu": "3"}})
    )]);
    let found = violations(&r, &p);
    assert_eq!(
        found,
        [
            "minimum cpu usage per Container is 100m, but request is 50m",
            "maximum cpu usage per Container is 1, but limit is 2",
            "maximum cpu usage per Container is 1, but limit is 3",
        ]
    );
    assert_eq!(
        aggregate(&found),
        "[minimum cpu usage per Container is 100m, but request is 50m, \
         maximum cpu usage per Container is 1, but limit is 2, \
         maximum cpu usage per Container is 1, but limit is 3]"
    );
}

#[test]
fn pod_limits_apply_to_the_sum_of_its_containers() {
    let r = range(
        "pod",
        json!([{"type": "Pod", "max": {"memory": "1Gi"}, "min": {"cpu": "1"},
                "maxLimitRequestRatio": {"memory": "2"}}]),
    );
    let p = pod(vec![
        container(
            "a",
            json!({"requests": {"cpu": "300m", "memory": "256Mi"},
                              "limits": {"memory": "768Mi"}}),
        ),
        container(
            "b",
            json!({"requests": {"cpu": "300m", "memory": "256Mi"},
                              "limits": {"memory": "768Mi"}}),
        ),
    ]);
    assert_eq!(
        violations(&r, &p),
        [
            "minimum cpu usage per Pod is 1, but request is 600m",
            "maximum memory usage per Pod is 1Gi, but limit is 1536Mi",
            "memory max limit to request ratio per Pod is 2, but provided ratio is 3.000000",
        ]
    );
    let fits = pod(vec![
        container(
            "a",
            json!({"requests": {"cpu": "500m", "memory": "256Mi"},
                              "limits": {"memory": "512Mi"}}),
        ),
        container(
            "b",
            json!({"requests": {"cpu": "500m", "memory": "256Mi"},
                              "limits": {"memory": "512Mi"}}),
        ),
    ]);
    assert!(violations(&r, &fits).is_empty());
}

#[test]
fn pod_totals_count_init_containers_as_kubernetes_does() {
    let r = range("pod", json!([{"type": "Pod", "max": {"cpu": "2"}}]));
    // A plain init container runs alone: the pod needs the larger of it and the rest.
    let mut p = pod(vec![container("app", json!({"limits": {"cpu": "1"}}))]);
    p["spec"]["initContainers"] = json!([container("init", json!({"limits": {"cpu": "3"}}))]);
    assert_eq!(
        violations(&r, &p),
        ["maximum cpu usage per Pod is 2, but limit is 3"]
    );
    // A sidecar keeps running, so it adds to the containers.
    p["spec"]["initContainers"] = json!([
        {"name": "side", "image": "proxy", "restartPolicy": "Always",
         "resources": {"limits": {"cpu": "1500m"}}}
    ]);
    assert_eq!(
        violations(&r, &p),
        ["maximum cpu usage per Pod is 2, but limit is 2500m"]
    );
}

#[test]
fn an_unreadable_quantity_in_the_pod_names_its_field() {
    let r = range("max", json!([{"type": "Container", "max": {"cpu": "1"}}]));
    let p = pod(vec![container("c", json!({"limits": {"cpu": "lots"}}))]);
    let err = pod_violations(&r, &p).err().map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(
        err.starts_with(
            "spec.containers[0].resources.limits[cpu]: Invalid value: \"\\\"lots\\\"\""
        ),
        "{err}"
    );
}

#[test]
fn an_unreadable_quantity_in_a_range_names_its_field() {
    let v = json!({"metadata": {"name": "bad"},
                   "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}},
                                       {"type": "Container", "min": {"cpu": "x"}}]}});
    let err = Range::from_json(&v).err().map(|e| e.path);
    assert_eq!(err.as_deref(), Some("spec.limits[1].min[cpu]"));
}

fn claim(storage: &str) -> Value {
    json!({"metadata": {"name": "data"},
           "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": storage}}}})
}

fn claim_checks(r: &Range, c: &Value, old: Option<&Value>) -> Vec<String> {
    match claim_violations(r, c, old) {
        Ok(v) => v,
        Err(e) => panic!("claim should read: {e}"),
    }
}

#[test]
fn claim_storage_min_and_max() {
    let r = range(
        "storage",
        json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"},
                "max": {"storage": "10Gi"}}]),
    );
    assert_eq!(
        claim_checks(&r, &claim("500Mi"), None),
        ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
    );
    assert_eq!(
        claim_checks(&r, &claim("20Gi"), None),
        ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
    );
    assert!(claim_checks(&r, &claim("5Gi"), None).is_empty());
    let empty = json!({"metadata": {"name": "data"}, "spec": {}});
    assert_eq!(
        claim_checks(&r, &empty, None),
        [
            "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
            "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified",
        ]
    );
}

#[test]
fn a_claim_update_checks_only_a_changed_request() {
    let r = range(
        "storage",
        json!([{"type": "PersistentVolumeClaim", "max": {"storage": "10Gi"}}]),
    );
    let stored = claim("20Gi");
    assert!(claim_checks(&r, &claim("20Gi"), Some(&stored)).is_empty());
    assert_eq!(
        claim_checks(&r, &claim("30Gi"), Some(&stored)),
        ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 30Gi"]
    );
}

#[test]
fn container_ranges_do_not_touch_claims() {
    let r = range(
        "c",
        json!([{"type": "Container", "max": {"storage": "1Gi"}}]),
    );
    assert!(claim_checks(&r, &claim("5Gi"), None).is_empty());
}

#[tokio::test]
async fn a_namespace_without_ranges_is_left_alone() {
    let registry = Arc::new(Registry::with_builtins());
    let rt = match registry.get("v1", "Pod") {
        Ok(rt) => rt,
        Err(e) => panic!("Pod should be registered: {e}"),
    };
    let plugin = LimitRanger {
        cache: WatchCache::new(registry, 10),
    };
    let user = UserInfo::anonymous();
    let req = AdmissionRequest {
        op: Operation::Create,
        rt: &rt,
        user: &user,
        namespace: "team",
        name: "p",
        old: None,
        subresource: "",
    };
    let mut p = pod(vec![container("c", json!({"limits": {"cpu": "2"}}))]);
    let before = p.clone();
    let run = async {
        plugin.admit(&req, &mut p).await?;
        plugin.validate(&req, &p).await
    };
    let out = tokio::time::timeout(Duration::from_secs(10), run).await;
    assert!(matches!(out, Ok(Ok(()))), "admission should pass");
    assert_eq!(p, before);
}
