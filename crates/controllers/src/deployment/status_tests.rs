//! A Deployment's status and conditions, one table row per case Kubernetes' deployment
//! controller tests cover for them: progressing, complete, paused, past the progress
//! deadline, minimum availability under maxUnavailable, and nothing to write.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::*;

const NOW: i64 = 1_700_000_000;

fn deploy(spec: Value, status: Value) -> Deployment {
    let mut s = json!({"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}}});
    if let (Some(a), Value::Object(b)) = (s.as_object_mut(), spec) {
        a.extend(b);
    }
    serde_json::from_value(json!({"metadata": {"name": "d", "generation": 2},
        "spec": s, "status": status}))
    .unwrap()
}

/// A ReplicaSet with `replicas` pods of which `available` are available (all ready).
fn rs(name: &str, replicas: i32, available: i32) -> Arc<ReplicaSet> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "generation": 1},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "readyReplicas": available,
                "availableReplicas": available, "observedGeneration": 1}
        }))
        .unwrap(),
    )
}

fn progressing(reason: &str, status: &str, updated: &str) -> Value {
    json!({"type": "Progressing", "status": status, "reason": reason, "message": "m",
        "lastUpdateTime": updated, "lastTransitionTime": updated})
}

fn written(observed: i64, replicas: i32, available: i32, conds: Value) -> Value {
    json!({"observedGeneration": observed, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": available, "availableReplicas": available,
        "unavailableReplicas": (4 - available).max(0), "conditions": conds})
}

fn available_cond(status: &str, reason: &str) -> Value {
    json!({"type": "Available", "status": status, "reason": reason,
        "lastUpdateTime": "2023-11-14T22:00:00Z", "lastTransitionTime": "2023-11-14T22:00:00Z"})
}

struct Row {
    name: &'static str,
    d: Deployment,
    rss: Vec<Arc<ReplicaSet>>,
    /// (Available status, Progressing status, Progressing reason); None: nothing written.
    want: Option<(&'static str, &'static str, &'static str)>,
    requeue: bool,
}

fn rows() -> Vec<Row> {
    let fresh = "2023-11-14T22:13:00Z";
    let stale = "2023-11-14T21:00:00Z";
    vec![
        Row {
            name: "a rollout under way is progressing and looked at again",
            d: deploy(json!({}), json!(null)),
            rss: vec![rs("new", 2, 2)],
            want: Some(("False", "True", "ReplicaSetUpdated")),
            requeue: true,
        },
        Row {
            name: "all new pods available completes the rollout",
            d: deploy(json!({}), json!(null)),
            rss: vec![rs("new", 4, 4)],
            want: Some(("True", "True", "NewReplicaSetAvailable")),
            requeue: false,
        },
        Row {
            name: "maxUnavailable 25% of 4: three available is minimum availability",
            d: deploy(json!({}), json!(null)),
            rss: vec![rs("new", 4, 3)],
            want: Some(("True", "True", "ReplicaSetUpdated")),
            requeue: true,
        },
        Row {
            name: "a paused Deployment reports Unknown progress and waits",
            d: deploy(json!({"paused": true}), json!(null)),
            rss: vec![rs("new", 2, 2)],
            want: Some(("False", "Unknown", "DeploymentPaused")),
            requeue: false,
        },
        Row {
            name: "no progress for longer than the deadline times out",
            d: deploy(
                json!({"progressDeadlineSeconds": 600}),
                written(
                    2,
                    2,
                    2,
                    json!([
                        available_cond("False", "MinimumReplicasUnavailable"),
                        progressing("ReplicaSetUpdated", "True", stale)
                    ]),
                ),
            ),
            rss: vec![rs("new", 2, 2)],
            want: Some(("False", "False", "ProgressDeadlineExceeded")),
            requeue: false,
        },
        Row {
            name: "no progress within the deadline writes nothing and waits",
            d: deploy(
                json!({"progressDeadlineSeconds": 600}),
                written(
                    2,
                    2,
                    2,
                    json!([
                        available_cond("False", "MinimumReplicasUnavailable"),
                        progressing("ReplicaSetUpdated", "True", fresh)
                    ]),
                ),
            ),
            rss: vec![rs("new", 2, 2)],
            want: None,
            requeue: true,
        },
        Row {
            name: "a complete rollout already written writes nothing",
            d: deploy(
                json!({}),
                written(
                    2,
                    4,
                    4,
                    json!([
                        available_cond("True", "MinimumReplicasAvailable"),
                        progressing("NewReplicaSetAvailable", "True", fresh)
                    ]),
                ),
            ),
            rss: vec![rs("new", 4, 4)],
            want: None,
            requeue: false,
        },
    ]
}

#[test]
fn status_and_conditions_follow_the_rollout() {
    let now = Timestamp::from_second(NOW).unwrap();
    for r in rows() {
        let p = plan(&r.d, r.rss.first().map(|n| n.as_ref()), &r.rss, now);
        let got = p.status.as_ref().map(|s| {
            let c = s.conditions.clone().unwrap_or_default();
            let get = |t: &str| {
                c.iter()
                    .find(|c| c.type_.as_deref() == Some(t))
                    .cloned()
                    .unwrap_or_default()
            };
            let (a, pr) = (get("Available"), get("Progressing"));
            (
                a.status.unwrap_or_default(),
                pr.status.unwrap_or_default(),
                pr.reason.unwrap_or_default(),
            )
        });
        let want = r
            .want
            .map(|(a, p, reason)| (a.to_string(), p.to_string(), reason.to_string()));
        assert_eq!(got, want, "{}", r.name);
        assert_eq!(p.requeue.is_some(), r.requeue, "{}: requeue", r.name);
    }
}

#[test]
fn a_condition_keeps_its_transition_time_while_its_status_holds() {
    let d = deploy(
        json!({}),
        written(
            1,
            2,
            2,
            json!([
                available_cond("False", "MinimumReplicasUnavailable"),
                progressing("ReplicaSetUpdated", "True", "2023-11-14T22:13:00Z")
            ]),
        ),
    );
    let p = plan(
        &d,
        None,
        &[rs("new", 3, 3)],
        Timestamp::from_second(NOW).unwrap(),
    );
    let conds = p.status.unwrap().conditions.unwrap();
    let prog = conds
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    let t = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().unwrap().0.as_second()
    };
    assert_eq!(
        t(&prog.last_transition_time),
        NOW - 20,
        "the status did not change"
    );
    assert_eq!(t(&prog.last_update_time), NOW, "the rollout moved");
}
