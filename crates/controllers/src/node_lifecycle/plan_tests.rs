//! The node lifecycle controller's decisions, one table row per case Kubernetes' node
//! lifecycle controller and taint manager tests cover: the state taints, keeping other
//! taints and their times, eviction times under tolerations, and pod CIDRs.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Taint};
use serde_json::{json, Value};

use super::*;

const NOW: i64 = 1_700_000_000;

fn taint(key: &str, effect: &str, added: i64) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        time_added: Some(Time(Timestamp::from_second(added).unwrap())),
        value: None,
    }
}

fn keys(ts: &[Taint]) -> Vec<String> {
    let mut k: Vec<String> = ts
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    k.sort();
    k
}

#[test]
fn a_nodes_state_calls_for_its_taints() {
    use ConditionStatus::*;
    let rows = [
        ("heartbeats stopped", true, Some(True), Some(UNREACHABLE)),
        ("Ready=False", false, Some(False), Some(NOT_READY)),
        ("Ready=Unknown", false, Some(Unknown), Some(UNREACHABLE)),
        ("no Ready condition yet", false, None, Some(UNREACHABLE)),
        ("Ready=True", false, Some(True), None),
    ];
    for (name, stale, ready, want) in rows {
        assert_eq!(state_taint(stale, ready), want, "{name}");
    }
}

#[test]
fn state_taints_come_and_go_and_others_stay() {
    let now = Timestamp::from_second(NOW).unwrap();
    let other = taint("dedicated", "NoSchedule", 1);
    let old_unreachable = vec![
        other.clone(),
        taint(UNREACHABLE, "NoSchedule", 5),
        taint(UNREACHABLE, "NoExecute", 5),
    ];
    type Row = (
        &'static str,
        Vec<Taint>,
        Option<&'static str>,
        Vec<&'static str>,
    );
    let rows: Vec<Row> = vec![
        (
            "a node going unreachable gets both effects",
            vec![other.clone()],
            Some(UNREACHABLE),
            vec![
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute",
                "node.kubernetes.io/unreachable:NoSchedule",
            ],
        ),
        (
            "unreachable turning not-ready swaps the key",
            old_unreachable.clone(),
            Some(NOT_READY),
            vec![
                "dedicated:NoSchedule",
                "node.kubernetes.io/not-ready:NoExecute",
                "node.kubernetes.io/not-ready:NoSchedule",
            ],
        ),
        (
            "a node that recovers loses them",
            old_unreachable.clone(),
            None,
            vec!["dedicated:NoSchedule"],
        ),
    ];
    for (name, taints, want, expect) in rows {
        assert_eq!(keys(&next_taints(&taints, want, now)), expect, "{name}");
    }
    let kept = next_taints(&old_unreachable, Some(UNREACHABLE), now);
    assert_eq!(
        kept, old_unreachable,
        "a taint that stays keeps its timeAdded"
    );
}

fn pod(tolerations: Value) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [], "tolerations": tolerations}}))
        .unwrap(),
    )
}

#[test]
fn pods_are_evicted_when_their_tolerations_run_out() {
    let unreachable = taint(UNREACHABLE, "NoExecute", NOW - 100);
    let no_exec = [&unreachable];
    let tol = |secs: Option<i64>| {
        json!([{"key": UNREACHABLE, "operator": "Exists",
        "effect": "NoExecute", "tolerationSeconds": secs}])
    };
    let rows = [
        (
            "no toleration: at once (when the taint came)",
            pod(json!([])),
            Some(NOW - 100),
        ),
        ("tolerated for good: never", pod(tol(None)), None),
        (
            "tolerated for 300 s: 300 s after the taint",
            pod(tol(Some(300))),
            Some(NOW + 200),
        ),
        (
            "tolerated for 30 s: already due",
            pod(tol(Some(30))),
            Some(NOW - 70),
        ),
        (
            "a toleration of another key does not help",
            pod(json!([{"key": "x", "operator": "Exists"}])),
            Some(NOW - 100),
        ),
    ];
    for (name, p, want) in rows {
        assert_eq!(eviction_due(&p, &no_exec, NOW), want, "{name}");
    }
    let (due, wait) = evictions(&[pod(json!([])), pod(tol(Some(300)))], &[unreachable], NOW);
    assert_eq!(due.len(), 1);
    assert_eq!(wait, Some(Duration::from_secs(200)));
    let (due, wait) = evictions(
        &[pod(json!([]))],
        &[taint(UNREACHABLE, "NoSchedule", NOW)],
        NOW,
    );
    assert!(
        due.is_empty() && wait.is_none(),
        "NoSchedule evicts nothing"
    );
}

#[test]
fn nodes_get_the_lowest_free_cidr() {
    let base: Ipv4Addr = "10.244.0.0".parse().unwrap();
    let used = |cs: &[&str]| cs.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        free_cidr(base, 16, 24, &used(&[])).as_deref(),
        Some("10.244.0.0/24")
    );
    assert_eq!(
        free_cidr(base, 16, 24, &used(&["10.244.0.0/24", "10.244.2.0/24"])).as_deref(),
        Some("10.244.1.0/24")
    );
    let all = used(&["10.244.0.0/25", "10.244.0.128/25"]);
    assert_eq!(free_cidr(base, 24, 25, &all), None, "a full range");
    assert_eq!(
        free_cidr(base, 24, 16, &all),
        None,
        "a mask wider than the range"
    );
}
