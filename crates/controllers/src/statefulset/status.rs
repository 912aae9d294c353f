//! The status of a StatefulSet, counted from its pods as Kubernetes counts it: every pod
//! it has (`replicas`), those Running and Ready, those available for `minReadySeconds`,
//! those not being deleted at the current and at the update revision; a rolling update
//! whose pods are all updated and Ready makes the update revision current.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};

use super::history::Rev;
use super::identity;
use super::plan::{revision_of, running_and_ready, Policy, UpdateStrategy, World};
use crate::pods;

/// The status of `set` in `w`, None when the set's says the same; and, when a Ready pod
/// is still to become available, when to look again.
pub(crate) fn status(
    set: &StatefulSet,
    w: &World,
    policy: Policy,
    current: &Rev,
    update: &Rev,
) -> (Option<StatefulSetStatus>, Option<Duration>) {
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let old = set.status.clone().unwrap_or_default();
    let mut st = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        collision_count: Some(old.collision_count.unwrap_or(0)),
        current_revision: Some(current.name.clone()),
        update_revision: Some(update.name.clone()),
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    let (mut ready, mut available, mut at_current, mut at_update) = (0, 0, 0, 0);
    let mut requeue: Option<i64> = None;
    let ours = w
        .pods
        .iter()
        .filter(|p| identity::pod_ordinal(set, p).is_some());
    for p in ours {
        st.replicas += 1;
        if running_and_ready(p) {
            ready += 1;
            if pods::is_available(p, min_ready, w.now_s) {
                available += 1;
            } else if let Some(since) = pods::ready_since(p) {
                let wait = (since + i64::from(min_ready) - w.now_s).max(1);
                requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
            }
        }
        if !pods::is_deleting(p) {
            at_current += i32::from(revision_of(p) == Some(current.name.as_str()));
            at_update += i32::from(revision_of(p) == Some(update.name.as_str()));
        }
    }
    let rolled_out = matches!(policy.update, UpdateStrategy::RollingUpdate { .. })
        && at_update == st.replicas
        && ready == st.replicas;
    if rolled_out {
        at_current = at_update;
        st.current_revision = Some(update.name.clone());
    }
    st.ready_replicas = Some(ready);
    st.available_replicas = Some(available);
    st.current_replicas = Some(at_current);
    st.updated_replicas = Some(at_update);
    let requeue = requeue.map(|s| Duration::from_secs(s as u64));
    ((!same(&old, &st)).then_some(st), requeue)
}

/// Equal but for unset counts, which read as 0.
fn same(a: &StatefulSetStatus, b: &StatefulSetStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    a.replicas == b.replicas
        && n(a.ready_replicas) == n(b.ready_replicas)
        && n(a.available_replicas) == n(b.available_replicas)
        && n(a.current_replicas) == n(b.current_replicas)
        && n(a.updated_replicas) == n(b.updated_replicas)
        && n(a.collision_count) == n(b.collision_count)
        && a.current_revision == b.current_revision
        && a.update_revision == b.update_revision
        && a.observed_generation == b.observed_generation
}
