//! From a pod and its metrics to a sample, one table row per rule Kubernetes' replica
//! calculator applies before counting: failed and deleting pods are ignored, Pending pods
//! are unready, cpu readiness during and after the initialization period, stale metrics,
//! missing requests, and container metrics.

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::*;

#[test]
fn windows() {
    assert_eq!(window_secs("15s"), 15);
    assert_eq!(window_secs("1m30s"), 90);
    assert_eq!(window_secs("500ms"), 1);
    assert_eq!(window_secs(""), 0);
}

const NOW: i64 = 1_700_000_000;

fn ts(ago: i64) -> String {
    Timestamp::from_second(NOW - ago).unwrap().to_string()
}

/// The pod's state: phase, Ready status, seconds since it started and since Ready last
/// changed, and whether it is being deleted.
struct State {
    phase: &'static str,
    ready: bool,
    started: i64,
    changed: i64,
    deleting: bool,
}

const SETTLED: State = State {
    phase: "Running",
    ready: true,
    started: 3600,
    changed: 3500,
    deleting: false,
};

/// A pod with containers `app` (250m cpu, 64Mi) and `sidecar` (250m cpu; memory only when
/// `sidecar_memory`), with metrics sampled `sampled` seconds ago (None: no metrics).
fn pod(s: &State, sampled: Option<i64>, sidecar_memory: bool) -> (Pod, Option<PodMetrics>) {
    let sidecar: Value = if sidecar_memory {
        json!({"cpu": "250m", "memory": "64Mi"})
    } else {
        json!({"cpu": "250m"})
    };
    let mut p = json!({
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [
            {"name": "app", "image": "x", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            {"name": "sidecar", "image": "x", "resources": {"requests": sidecar}}]},
        "status": {"phase": s.phase, "startTime": ts(s.started), "conditions": [{"type": "Ready",
            "status": if s.ready { "True" } else { "False" }, "lastTransitionTime": ts(s.changed)}]}
    });
    if s.deleting {
        p["metadata"]["deletionTimestamp"] = json!(ts(1));
    }
    let m = sampled.map(|ago| {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"},
            "timestamp": ts(ago), "window": "15s", "containers": [
                {"name": "app", "usage": {"cpu": "100m", "memory": "32Mi"}},
                {"name": "sidecar", "usage": {"cpu": "50m", "memory": "16Mi"}}]}))
        .unwrap()
    });
    (serde_json::from_value(p).unwrap(), m)
}

struct Row {
    name: &'static str,
    state: State,
    sampled: Option<i64>,
    resource: &'static str,
    container: Option<&'static str>,
    sidecar_memory: bool,
    /// request, usage, ignored, unready
    want: (Option<i64>, Option<i64>, bool, bool),
}

fn row(name: &'static str, state: State, want: (Option<i64>, Option<i64>, bool, bool)) -> Row {
    Row {
        name,
        state,
        sampled: Some(10),
        resource: CPU,
        container: None,
        sidecar_memory: true,
        want,
    }
}

fn rows() -> Vec<Row> {
    let counted = (Some(500), Some(150), false, false);
    let unready = (Some(500), Some(150), false, true);
    let young = |ready, changed| State {
        ready,
        started: 100,
        changed,
        ..SETTLED
    };
    const MI: i64 = 1024 * 1024;
    vec![
        row("a ready running pod counts", SETTLED, counted),
        row(
            "a Pending pod is unready",
            State {
                phase: "Pending",
                ..SETTLED
            },
            unready,
        ),
        row(
            "a Failed pod is ignored",
            State {
                phase: "Failed",
                ..SETTLED
            },
            (Some(500), Some(150), true, false),
        ),
        row(
            "a pod being deleted is ignored",
            State {
                deleting: true,
                ..SETTLED
            },
            (Some(500), Some(150), true, false),
        ),
        row(
            "cpu: not ready during the initialization period: unready",
            young(false, 100),
            unready,
        ),
        Row {
            sampled: Some(40),
            ..row(
                "cpu: ready during the initialization period, metrics from before: unready",
                young(true, 50),
                unready,
            )
        },
        row(
            "cpu: ready during the initialization period, metrics from after: counts",
            young(true, 50),
            counted,
        ),
        row(
            "cpu: never ready since it started: unready",
            State {
                ready: false,
                changed: 3590,
                ..SETTLED
            },
            unready,
        ),
        row(
            "cpu: unready long after it started: counts",
            State {
                ready: false,
                changed: 100,
                ..SETTLED
            },
            counted,
        ),
        Row {
            resource: "memory",
            ..row(
                "memory: readiness does not matter",
                young(false, 100),
                (Some(128 * MI), Some(48 * MI), false, false),
            )
        },
        Row {
            sampled: Some(200),
            ..row(
                "metrics older than two minutes are missing",
                SETTLED,
                (Some(500), None, false, false),
            )
        },
        Row {
            sampled: None,
            ..row(
                "a pod without metrics",
                SETTLED,
                (Some(500), None, false, false),
            )
        },
        Row {
            resource: "memory",
            sidecar_memory: false,
            ..row(
                "a container without a request: no request",
                SETTLED,
                (None, Some(48 * MI), false, false),
            )
        },
        Row {
            container: Some("app"),
            ..row(
                "a container metric: that container only",
                SETTLED,
                (Some(250), Some(100), false, false),
            )
        },
    ]
}

#[test]
fn samples_follow_the_replica_calculators_rules() {
    let cfg = HpaConfig::default();
    for r in rows() {
        let (p, m) = pod(&r.state, r.sampled, r.sidecar_memory);
        let s = sample(&p, m.as_ref(), r.resource, r.container, &cfg, NOW);
        assert_eq!(
            (s.request, s.usage, s.ignored, s.unready),
            r.want,
            "{}",
            r.name
        );
        assert_eq!(s.name, "p");
    }
}
