//! The DaemonSet controller's decisions, one table row per case Kubernetes' daemon set
//! controller tests cover: node eligibility (selector, taints and the daemon
//! tolerations), a missing pod, a failed pod, extra pods, misscheduled pods, pods for
//! nodes that are gone, and the rolling update one node at a time.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use super::*;

const NOW: i64 = 1_700_000_000;

fn ds(template_spec: Value, strategy: &str) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": strategy},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec}}
    }))
    .unwrap()
}

fn plain() -> DaemonSet {
    ds(
        json!({"containers": [{"name": "c", "image": "busybox"}]}),
        "RollingUpdate",
    )
}

fn node(name: &str, labels: Value, taints: Value) -> Arc<Node> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints}}))
        .unwrap(),
    )
}

fn nodes(names: &[&str]) -> Vec<Arc<Node>> {
    names
        .iter()
        .map(|n| node(n, json!({}), json!([])))
        .collect()
}

/// A pod of `d` on `node`: `phase`, `r` ready, `o` of an outdated template; created at
/// minute `minute`.
fn pod(d: &DaemonSet, name: &str, node: &str, phase: &str, flags: &str, minute: u32) -> Arc<Pod> {
    let hash = if flags.contains('o') {
        "old".to_string()
    } else {
        template_hash(&d.spec.template, 0)
    };
    let ready = if flags.contains('r') { "True" } else { "False" };
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {HASH_LABEL: hash},
                "creationTimestamp": format!("2023-11-14T22:{minute:02}:00Z")},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready,
                "lastTransitionTime": "2023-11-14T22:00:00Z"}]}
        }))
        .unwrap(),
    )
}

#[test]
fn a_node_is_eligible_when_its_labels_and_taints_admit_the_pod() {
    let template =
        |spec: Value| -> PodTemplateSpec { serde_json::from_value(json!({"spec": spec})).unwrap() };
    let taint = |key: &str, effect: &str| json!([{"key": key, "effect": effect}]);
    let ssd = json!({"disk": "ssd"});
    type Row = (&'static str, Value, Value, Value, bool);
    let rows: Vec<Row> = vec![
        ("no constraints", json!({}), json!({}), json!([]), true),
        (
            "nodeSelector matches",
            json!({"nodeSelector": {"disk": "ssd"}}),
            ssd.clone(),
            json!([]),
            true,
        ),
        (
            "nodeSelector does not match",
            json!({"nodeSelector": {"disk": "ssd"}}),
            json!({}),
            json!([]),
            false,
        ),
        (
            "an untolerated NoSchedule taint",
            json!({}),
            json!({}),
            taint("dedicated", "NoSchedule"),
            false,
        ),
        (
            "an untolerated NoExecute taint",
            json!({}),
            json!({}),
            taint("dedicated", "NoExecute"),
            false,
        ),
        (
            "PreferNoSchedule does not keep it off",
            json!({}),
            json!({}),
            taint("dedicated", "PreferNoSchedule"),
            true,
        ),
        (
            "a tolerated taint",
            json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
            json!({}),
            taint("dedicated", "NoSchedule"),
            true,
        ),
        (
            "daemon pods tolerate not-ready",
            json!({}),
            json!({}),
            taint("node.kubernetes.io/not-ready", "NoExecute"),
            true,
        ),
        (
            "and unschedulable",
            json!({}),
            json!({}),
            taint("node.kubernetes.io/unschedulable", "NoSchedule"),
            true,
        ),
    ];
    for (name, spec, labels, taints, want) in rows {
        let n = node("n1", labels, taints);
        assert_eq!(eligible(&template(spec), &n), want, "{name}");
    }
}

struct Row {
    name: &'static str,
    ds: DaemonSet,
    pods: Vec<Arc<Pod>>,
    nodes: Vec<Arc<Node>>,
    /// The nodes new pods are pinned to.
    create: Vec<&'static str>,
    delete: Vec<(&'static str, Option<i64>)>,
    /// desired, current, misscheduled, updated.
    counts: (i32, i32, i32, i32),
}

fn rows() -> Vec<Row> {
    let d = plain();
    let selective = ds(
        json!({"nodeSelector": {"disk": "ssd"}, "containers": []}),
        "RollingUpdate",
    );
    let on_delete = ds(
        json!({"containers": [{"name": "c", "image": "busybox"}]}),
        "OnDelete",
    );
    vec![
        Row {
            name: "a pod for every node without one",
            ds: d.clone(),
            pods: vec![pod(&d, "a", "n1", "Running", "r", 1)],
            nodes: nodes(&["n1", "n2"]),
            create: vec!["n2"],
            delete: vec![],
            counts: (2, 1, 0, 1),
        },
        Row {
            name: "a failed pod is deleted at once and replaced",
            ds: d.clone(),
            pods: vec![pod(&d, "a", "n1", "Failed", "", 1)],
            nodes: nodes(&["n1"]),
            create: vec!["n1"],
            delete: vec![("a", Some(0))],
            counts: (1, 0, 0, 0),
        },
        Row {
            name: "of two pods on a node the oldest stays",
            ds: d.clone(),
            pods: vec![
                pod(&d, "new", "n1", "Running", "r", 5),
                pod(&d, "old", "n1", "Running", "r", 1),
            ],
            nodes: nodes(&["n1"]),
            create: vec![],
            delete: vec![("new", None)],
            counts: (1, 1, 0, 1),
        },
        Row {
            name: "a node the selector no longer admits loses its pod",
            ds: selective.clone(),
            pods: vec![pod(&selective, "a", "n1", "Running", "r", 1)],
            nodes: nodes(&["n1"]),
            create: vec![],
            delete: vec![("a", None)],
            counts: (0, 0, 1, 0),
        },
        Row {
            name: "a pod for a node that is gone is deleted",
            ds: d.clone(),
            pods: vec![pod(&d, "a", "gone", "Running", "r", 1)],
            nodes: nodes(&[]),
            create: vec![],
            delete: vec![("a", None)],
            counts: (0, 0, 1, 0),
        },
        Row {
            name: "a rolling update replaces one outdated pod once all are ready",
            ds: d.clone(),
            pods: vec![
                pod(&d, "a", "n1", "Running", "ro", 1),
                pod(&d, "b", "n2", "Running", "ro", 1),
            ],
            nodes: nodes(&["n1", "n2"]),
            create: vec![],
            delete: vec![("a", None)],
            counts: (2, 2, 0, 0),
        },
        Row {
            name: "and waits while a pod is not ready",
            ds: d.clone(),
            pods: vec![
                pod(&d, "a", "n1", "Running", "o", 1),
                pod(&d, "b", "n2", "Running", "ro", 1),
            ],
            nodes: nodes(&["n1", "n2"]),
            create: vec![],
            delete: vec![],
            counts: (2, 2, 0, 0),
        },
        Row {
            name: "OnDelete leaves outdated pods alone",
            ds: on_delete.clone(),
            pods: vec![pod(&on_delete, "a", "n1", "Running", "ro", 1)],
            nodes: nodes(&["n1"]),
            create: vec![],
            delete: vec![],
            counts: (1, 1, 0, 0),
        },
    ]
}

#[test]
fn the_daemonset_controller_decides_as_kubernetes_does() {
    for r in rows() {
        let p = plan(&r.ds, &r.pods, &r.nodes, NOW);
        let pinned: Vec<String> = p.create.iter().filter_map(target_node).collect();
        assert_eq!(pinned, r.create, "{}: creates", r.name);
        let deleted: Vec<(String, Option<i64>)> = p
            .delete
            .iter()
            .map(|d| (d.name.clone(), d.grace_seconds))
            .collect();
        let want: Vec<(String, Option<i64>)> =
            r.delete.iter().map(|(n, g)| (n.to_string(), *g)).collect();
        assert_eq!(deleted, want, "{}: deletes", r.name);
        let s = p.status.expect("a first status is written");
        let counts = (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_misscheduled,
            s.updated_number_scheduled.unwrap_or(0),
        );
        assert_eq!(counts, r.counts, "{}: status", r.name);
    }
}

#[test]
fn new_pods_are_pinned_and_tolerate_node_conditions() {
    let d = plain();
    let p = plan(&d, &[], &nodes(&["n7"]), NOW);
    let pod = &p.create[0];
    assert_eq!(target_node(pod).as_deref(), Some("n7"));
    let tolerations = pod.spec.as_ref().unwrap().tolerations.clone().unwrap();
    assert!(tolerations
        .iter()
        .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")));
    assert_eq!(
        pod.metadata.labels.as_ref().unwrap().get(HASH_LABEL),
        Some(&template_hash(&d.spec.template, 0))
    );
}
