//! The ReplicaSet controller's decisions, one table row per case Kubernetes' replica set
//! controller tests cover: slow start, which pods go first on scale down, adoption and
//! release, expectations, and the status with minReadySeconds.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

use super::*;

const NOW: i64 = 1_700_000_000;

/// A pod: `n` scheduled, `r` ready (for `ready_for` seconds), `d` being deleted, owned by
/// `owner` (a controller uid) or an orphan.
fn pod(name: &str, phase: &str, flags: &str, owner: Option<&str>, app: &str) -> Arc<Pod> {
    let ready = if flags.contains('r') { "True" } else { "False" };
    let mut v: Value = json!({
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": app},
            "creationTimestamp": "2023-11-14T22:00:00Z"},
        "spec": {"containers": []},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready,
            "lastTransitionTime": "2023-11-14T22:13:10Z"}]}
    });
    if flags.contains('n') {
        v["spec"]["nodeName"] = json!("n1");
    }
    if flags.contains('d') {
        v["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:13:15Z");
    }
    if let Some(uid) = owner {
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "rs", "uid": uid, "controller": true}]);
    }
    Arc::new(serde_json::from_value(v).unwrap())
}

fn web() -> LabelSelector {
    serde_json::from_value(json!({"matchLabels": {"app": "web"}})).unwrap()
}

fn names(pods: &[Arc<Pod>]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[test]
fn creates_go_in_doubling_batches() {
    let rows: [(usize, &[usize]); 5] = [
        (0, &[]),
        (1, &[1]),
        (3, &[1, 2]),
        (10, &[1, 2, 4, 3]),
        (16, &[1, 2, 4, 8, 1]),
    ];
    for (n, want) in rows {
        assert_eq!(slow_start(n), want, "{n} pods");
    }
}

#[test]
fn scaling_creates_up_to_the_burst_and_deletes_the_least_advanced_first() {
    let p = |name, phase, flags| pod(name, phase, flags, Some("u"), "web");
    type Row = (
        &'static str,
        Vec<Arc<Pod>>,
        usize,
        bool,
        usize,
        Vec<&'static str>,
    );
    let rows: Vec<Row> = vec![
        (
            "two missing: two creates",
            vec![p("a", "Running", "nr")],
            3,
            true,
            2,
            vec![],
        ),
        (
            "a thousand missing: the burst",
            vec![],
            1000,
            true,
            BURST,
            vec![],
        ),
        ("unseen creates: nothing", vec![], 3, false, 0, vec![]),
        (
            "just right: nothing",
            vec![p("a", "Running", "nr")],
            1,
            true,
            0,
            vec![],
        ),
        (
            "unscheduled before scheduled",
            vec![p("on-node", "Pending", "n"), p("nowhere", "Pending", "")],
            1,
            true,
            0,
            vec!["nowhere"],
        ),
        (
            "pending before running",
            vec![p("running", "Running", "n"), p("pending", "Pending", "n")],
            1,
            true,
            0,
            vec!["pending"],
        ),
        (
            "not ready before ready",
            vec![p("ready", "Running", "nr"), p("unready", "Running", "n")],
            1,
            true,
            0,
            vec!["unready"],
        ),
        (
            "to zero: all of them",
            vec![p("x", "Running", "nr"), p("y", "Running", "nr")],
            0,
            true,
            0,
            vec!["x", "y"],
        ),
    ];
    for (name, active, desired, met, create, delete) in rows {
        let s = scale(&active, desired, false, met);
        assert_eq!(s.create, create, "{name}: creates");
        let mut got = s.delete.clone();
        got.sort();
        assert_eq!(got, delete, "{name}: deletes");
    }
    let s = scale(&[], 3, true, true);
    assert_eq!(
        s,
        Scale::default(),
        "a ReplicaSet being deleted scales nothing"
    );
}

#[test]
fn claims_adopt_matching_orphans_and_release_what_no_longer_matches() {
    let pods = vec![
        pod("mine", "Running", "nr", Some("u"), "web"),
        pod("mine-relabelled", "Running", "nr", Some("u"), "db"),
        pod("orphan", "Running", "nr", None, "web"),
        pod("orphan-other-app", "Running", "nr", None, "db"),
        pod("theirs", "Running", "nr", Some("other"), "web"),
        pod("mine-finished", "Succeeded", "n", Some("u"), "web"),
        pod("mine-deleting", "Running", "nrd", Some("u"), "web"),
        pod("orphan-deleting", "Running", "nrd", None, "web"),
    ];
    let c = claims(&pods, &web(), "u", false);
    assert_eq!(names(&c.owned), ["mine"]);
    assert_eq!(names(&c.adopt), ["orphan"]);
    assert_eq!(names(&c.release), ["mine-relabelled"]);
    let c = claims(&pods, &web(), "u", true);
    assert!(
        c.adopt.is_empty(),
        "a ReplicaSet being deleted adopts nothing"
    );
}

#[test]
fn status_counts_ready_and_available_and_looks_again_at_min_ready() {
    let view = |min_ready: i32, status: (i32, i32, i32, i32, Option<i64>)| View {
        selector: web(),
        replicas: 2,
        template: serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}}})).ok(),
        min_ready_seconds: min_ready,
        status,
    };
    let active = vec![
        pod("a", "Running", "nr", Some("u"), "web"),
        pod("b", "Running", "n", Some("u"), "web"),
    ];
    // Ready since 22:13:10; NOW is 22:13:20.
    let (s, requeue) = status(&view(0, (0, 0, 0, 0, None)), &active, Some(3), NOW);
    let s = s.expect("a changed status is written");
    assert_eq!(
        (
            s.replicas,
            s.ready_replicas,
            s.available_replicas,
            s.fully_labeled_replicas
        ),
        (2, Some(1), Some(1), Some(2))
    );
    assert_eq!((s.observed_generation, requeue), (Some(3), None));
    let (s, requeue) = status(&view(30, (0, 0, 0, 0, None)), &active, Some(3), NOW);
    assert_eq!(
        s.and_then(|s| s.available_replicas),
        Some(0),
        "ready 10 s of 30"
    );
    assert_eq!(requeue, Some(std::time::Duration::from_secs(30)));
    let (s, _) = status(&view(0, (2, 2, 1, 1, Some(3))), &active, Some(3), NOW);
    assert!(s.is_none(), "an unchanged status is not written again");
}
