//! Pod facts controllers share: phase, readiness, availability, controller references,
//! and the order in which replicas are given up.

use client::state::PodPhase;
use std::cmp::Reverse;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub(crate) fn phase(p: &Pod) -> PodPhase {
    PodPhase::of(p)
}

/// Not finished (Succeeded or Failed).
pub(crate) fn is_active(p: &Pod) -> bool {
    !phase(p).is_finished()
}

pub(crate) fn is_deleting(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// When the Ready condition last became True; `None` when not ready.
pub(crate) fn ready_since(p: &Pod) -> Option<i64> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (c.status == "True").then(|| {
        c.last_transition_time
            .as_ref()
            .map_or(0, |t| t.0.as_second())
    })
}

pub(crate) fn is_ready(p: &Pod) -> bool {
    ready_since(p).is_some()
}

/// Ready for at least `min_ready_seconds` at `now` (seconds since the epoch).
pub(crate) fn is_available(p: &Pod, min_ready_seconds: i32, now: i64) -> bool {
    ready_since(p)
        .is_some_and(|t| min_ready_seconds <= 0 || t + i64::from(min_ready_seconds) <= now)
}

pub(crate) fn controller_ref(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
}

/// A key that sorts the pods to give up first to the front, as Kubernetes ranks them:
/// unscheduled before scheduled, Pending before Unknown before Running, not ready before
/// ready, ready for less time first, more restarts first, newer first.
pub(crate) fn deletion_rank(p: &Pod) -> impl Ord {
    let scheduled = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase_rank = match phase(p) {
        PodPhase::Pending => 0,
        PodPhase::Unknown => 1,
        PodPhase::Running => 2,
        _ => 3,
    };
    let ready = ready_since(p);
    let created = p
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second());
    (
        scheduled,
        phase_rank,
        ready.is_some(),
        Reverse(ready.unwrap_or(0)),
        Reverse(restarts(p)),
        Reverse(created),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_least_valuable_replicas_go_first() {
        let ready =
            |since: &str| json!({"type": "Ready", "status": "True", "lastTransitionTime": since});
        let mut pods = [
            (
                "running-ready-old",
                pod(
                    json!({"metadata": {"name": "a"}, "spec": {"containers": [], "nodeName": "n"},
                "status": {"phase": "Running", "conditions": [ready("2026-01-01T00:00:00Z")]}}),
                ),
            ),
            (
                "unscheduled",
                pod(json!({"metadata": {"name": "b"}, "spec": {"containers": []}})),
            ),
            (
                "running-ready-new",
                pod(
                    json!({"metadata": {"name": "c"}, "spec": {"containers": [], "nodeName": "n"},
                "status": {"phase": "Running", "conditions": [ready("2026-01-02T00:00:00Z")]}}),
                ),
            ),
            (
                "pending-scheduled",
                pod(
                    json!({"metadata": {"name": "d"}, "spec": {"containers": [], "nodeName": "n"},
                "status": {"phase": "Pending"}}),
                ),
            ),
            (
                "running-not-ready",
                pod(
                    json!({"metadata": {"name": "e"}, "spec": {"containers": [], "nodeName": "n"},
                "status": {"phase": "Running"}}),
                ),
            ),
        ];
        pods.sort_by_key(|(_, p)| deletion_rank(p));
        let order: Vec<&str> = pods.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            order,
            [
                "unscheduled",
                "pending-scheduled",
                "running-not-ready",
                "running-ready-new",
                "running-ready-old"
            ]
        );
    }
}
