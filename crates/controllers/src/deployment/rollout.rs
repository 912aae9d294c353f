//! The two rollout strategies. RollingUpdate: grow the new ReplicaSet within `maxSurge`
//! above the desired count, shrink the old ones only as far as `maxUnavailable` allows,
//! counting available pods. Recreate: all old pods gone first, then the new ones.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `maxSurge` and `maxUnavailable` as pod counts: a percentage of `replicas`, surge
/// rounded up and unavailability down; both 0 would stall, so unavailability is then 1.
pub(crate) fn surge_and_unavailable(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.clone();
    let replicas = spec.replicas.unwrap_or(1);
    let ru = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .unwrap_or_default();
    let resolve = |v: Option<IntOrString>, round_up: bool| -> i32 {
        match v.unwrap_or(IntOrString::String("25%".into())) {
            IntOrString::Int(i) => i,
            IntOrString::String(s) => {
                let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
                let x = f64::from(replicas) * pct / 100.0;
                if round_up {
                    x.ceil() as i32
                } else {
                    x.floor() as i32
                }
            }
        }
    };
    let surge = resolve(ru.max_surge, true).max(0);
    let mut unavailable = resolve(ru.max_unavailable, false).clamp(0, replicas.max(0));
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

pub(crate) fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(0)
}

pub(crate) fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The new ReplicaSet's next size under RollingUpdate.
pub(crate) fn new_replicas(d: &Deployment, new: &ReplicaSet, all: &[Arc<ReplicaSet>]) -> i32 {
    let replicas = d.spec.replicas.unwrap_or(1);
    let cur = spec_replicas(new);
    if cur >= replicas {
        return replicas;
    }
    let (surge, _) = surge_and_unavailable(d);
    let total: i32 = all.iter().map(|rs| spec_replicas(rs)).sum();
    let room = replicas + surge - total;
    if room <= 0 {
        return cur;
    }
    cur + room.min(replicas - cur)
}

/// How far each old ReplicaSet (oldest first) may shrink now under RollingUpdate:
/// first pods that are not available anyway, then available ones down to
/// `replicas - maxUnavailable` available overall.
pub(crate) fn old_scale_downs(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    olds: &[Arc<ReplicaSet>],
) -> Vec<(Arc<ReplicaSet>, i32)> {
    let replicas = d.spec.replicas.unwrap_or(1);
    let (_, unavailable) = surge_and_unavailable(d);
    let min_available = replicas - unavailable;
    let new_spec = new.map_or(0, spec_replicas);
    let new_unavailable = (new_spec - new.map_or(0, available)).max(0);
    let all_pods: i32 = new_spec + olds.iter().map(|rs| spec_replicas(rs)).sum::<i32>();
    let mut budget = all_pods - min_available - new_unavailable;
    let mut sorted: Vec<Arc<ReplicaSet>> = olds
        .iter()
        .filter(|rs| spec_replicas(rs) > 0)
        .cloned()
        .collect();
    sorted.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let mut target: Vec<(Arc<ReplicaSet>, i32)> = sorted
        .iter()
        .map(|rs| (rs.clone(), spec_replicas(rs)))
        .collect();
    if budget <= 0 {
        return Vec::new();
    }
    // Unhealthy replicas first: removing them costs no availability.
    for (rs, to) in target.iter_mut() {
        let unhealthy = (*to - available(rs)).max(0);
        let cut = unhealthy.min(budget);
        *to -= cut;
        budget -= cut;
    }
    // Then available ones, as far as overall availability allows.
    let total_available: i32 =
        new.map_or(0, available) + target.iter().map(|(rs, _)| available(rs)).sum::<i32>();
    let mut can = (total_available - min_available).min(budget).max(0);
    for (rs, to) in target.iter_mut() {
        let healthy_left = (*to).min(available(rs));
        let cut = healthy_left.min(can);
        *to -= cut;
        can -= cut;
    }
    target
        .into_iter()
        .filter(|(rs, to)| *to != spec_replicas(rs))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deploy(
        replicas: i32,
        surge: serde_json::Value,
        unavailable: serde_json::Value,
    ) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {"replicas": replicas,
            "selector": {"matchLabels": {"app": "a"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}}}}))
        .unwrap()
    }

    fn rs(name: &str, created: &str, replicas: i32, available: i32) -> Arc<ReplicaSet> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "availableReplicas": available}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn surge_and_unavailable_round_as_kubernetes() {
        assert_eq!(
            surge_and_unavailable(&deploy(10, json!("25%"), json!("25%"))),
            (3, 2)
        );
        assert_eq!(
            surge_and_unavailable(&deploy(3, json!(1), json!(0))),
            (1, 0)
        );
        assert_eq!(
            surge_and_unavailable(&deploy(3, json!(0), json!(0))),
            (0, 1)
        );
    }

    #[test]
    fn max_unavailable_zero_surges_first_and_shrinks_only_available() {
        let d = deploy(3, json!(1), json!(0));
        let old = rs("old", "2026-01-01T00:00:00Z", 3, 3);
        let new = rs("new", "2026-01-02T00:00:00Z", 0, 0);
        let all = vec![old.clone(), new.clone()];
        // One surge pod.
        assert_eq!(new_replicas(&d, &new, &all), 1);
        // Nothing old goes until the new pod is available.
        let new1 = rs("new", "2026-01-02T00:00:00Z", 1, 0);
        assert!(old_scale_downs(&d, Some(&new1), std::slice::from_ref(&old)).is_empty());
        let new1_ready = rs("new", "2026-01-02T00:00:00Z", 1, 1);
        let downs = old_scale_downs(&d, Some(&new1_ready), &[old]);
        assert_eq!(downs.len(), 1);
        assert_eq!(downs[0].1, 2);
    }

    #[test]
    fn unavailable_old_pods_go_first() {
        let d = deploy(4, json!(0), json!(1));
        let old = rs("old", "2026-01-01T00:00:00Z", 4, 2);
        let new = rs("new", "2026-01-02T00:00:00Z", 0, 0);
        // 2 of the old pods are unavailable, but only one pod may be missing at a time
        // (4 pods, 3 must stay): one unavailable pod goes, no available one does.
        let downs = old_scale_downs(&d, Some(&new), &[old]);
        assert_eq!(downs[0].1, 3);
    }
}
