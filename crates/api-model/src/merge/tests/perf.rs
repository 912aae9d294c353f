//! The cost of one apply, update record and strategic merge of a typical Deployment, printed
//! by an ignored test: `cargo test -p api-model --lib merge::tests::perf -- --ignored
//! --nocapture`. It asserts results, never timings.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::deployment;
use crate::merge::{apply, record_update, strategic_merge};

/// A Deployment as a controller-managed cluster holds it: two containers with env, ports,
/// probes, resources and mounts.
fn typical(replicas: u32, image: &str) -> Value {
    let container = |name: &str, port: u32| {
        json!({
            "name": name,
            "image": image,
            "args": ["--port", port.to_string(), "--log=json"],
            "ports": [{"containerPort": port, "name": "http"}, {"containerPort": port + 1, "name": "metrics"}],
            "env": [
                {"name": "MODE", "value": "production"},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "REGION", "value": "eu-west-1"}
            ],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": port}, "periodSeconds": 5},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]
        })
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "frontend"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {
                    "containers": [container("app", 8080), container("sidecar", 9090)],
                    "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
                    "tolerations": [{"key": "dedicated", "operator": "Exists"}]
                }
            }
        }
    })
}

fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

#[test]
#[ignore = "prints timings; run with --ignored --nocapture"]
fn cost_per_call_for_a_typical_deployment() {
    const N: u32 = 300;
    let schema = Some(deployment());
    let now = "2026-01-01T00:00:00Z";
    let cfg = typical(3, "web:1");
    let live = apply(None, &cfg, "kubectl", false, schema, "apps/v1", now).unwrap();
    let changed = typical(3, "web:2");

    let create = per_call(N, || {
        apply(None, &cfg, "kubectl", false, schema, "apps/v1", now).unwrap();
    });
    let reapply = per_call(N, || {
        let out = apply(
            Some(&live),
            &changed,
            "kubectl",
            false,
            schema,
            "apps/v1",
            now,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["image"],
            "web:2"
        );
    });
    let mut status = live.clone();
    status["status"] = json!({"replicas": 3, "readyReplicas": 3, "observedGeneration": 1});
    let update = per_call(N, || {
        let mut new = status.clone();
        record_update(
            Some(&live),
            &mut new,
            "deployment-controller",
            "status",
            schema,
            "apps/v1",
            now,
        );
    });
    let clone_only = per_call(N, || {
        std::hint::black_box(status.clone());
    });
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:3"}]}}}});
    let smp = per_call(N, || {
        strategic_merge(&live, &patch, deployment()).unwrap();
    });
    println!("typical Deployment, per call (build profile of this test run):");
    println!("  apply, create:                 {create:?}");
    println!("  apply, change one image:       {reapply:?}");
    println!(
        "  record_update, status write:   {update:?} (of which cloning the object {clone_only:?})"
    );
    println!("  strategic merge, one image:    {smp:?}");
}
