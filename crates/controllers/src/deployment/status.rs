//! A Deployment's status, decided from its ReplicaSets and the time: the replica counts
//! and the Available and Progressing conditions (with `progressDeadlineSeconds`), and
//! when to look again.

use std::sync::Arc;
use std::time::Duration;

use client::state::ConditionStatus;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::rollout::{self, available};

/// Why a Deployment is (or is not) progressing, as Kubernetes names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    Paused,
    /// NewReplicaSetAvailable.
    Complete,
    /// ReplicaSetUpdated.
    Updated,
    /// ProgressDeadlineExceeded.
    TimedOut,
}

impl Progress {
    fn as_str(self) -> &'static str {
        match self {
            Progress::Paused => "DeploymentPaused",
            Progress::Complete => "NewReplicaSetAvailable",
            Progress::Updated => "ReplicaSetUpdated",
            Progress::TimedOut => "ProgressDeadlineExceeded",
        }
    }

    fn status(self) -> ConditionStatus {
        match self {
            Progress::Paused => ConditionStatus::Unknown,
            Progress::TimedOut => ConditionStatus::False,
            _ => ConditionStatus::True,
        }
    }
}

/// The status to write (None: unchanged) and when to look again.
#[derive(Debug)]
pub(crate) struct StatusPlan {
    pub status: Option<DeploymentStatus>,
    pub requeue: Option<Duration>,
}

/// Replica counts over the Deployment's ReplicaSets.
struct Counts {
    total: i32,
    ready: i32,
    available: i32,
    updated: i32,
    complete: bool,
    /// Different from what the status says.
    moved: bool,
}

fn counts(d: &Deployment, new: Option<&ReplicaSet>, rss: &[Arc<ReplicaSet>]) -> Counts {
    let desired = d.spec.replicas.unwrap_or(1);
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let total: i32 = rss.iter().map(|rs| st(rs).replicas).sum();
    let ready = rss
        .iter()
        .map(|rs| st(rs).ready_replicas.unwrap_or(0))
        .sum();
    let avail: i32 = rss.iter().map(|rs| available(rs)).sum();
    let updated = new.map_or(0, |n| st(n).replicas);
    let cur = d.status.clone().unwrap_or_default();
    Counts {
        total,
        ready,
        available: avail,
        updated,
        complete: updated == desired
            && total == desired
            && avail >= desired
            && new.is_some_and(|n| st(n).observed_generation == n.metadata.generation),
        moved: cur.updated_replicas.unwrap_or(0) != updated
            || cur.available_replicas.unwrap_or(0) != avail
            || cur.replicas.unwrap_or(0) != total
            || cur.observed_generation != d.metadata.generation,
    }
}

fn condition(d: &Deployment, type_: &str) -> Option<DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
        .cloned()
}

/// Where the rollout stands, its message, and whether the condition's update time moves.
fn progress(
    d: &Deployment,
    new_name: &str,
    c: &Counts,
    now: Timestamp,
) -> (Progress, String, bool) {
    let prog = condition(d, "Progressing");
    let deadline = i64::from(d.spec.progress_deadline_seconds.unwrap_or(600));
    let was_paused = prog.as_ref().and_then(|p| p.reason.as_deref()) == Some("DeploymentPaused");
    if d.spec.paused == Some(true) {
        return (Progress::Paused, "Deployment is paused".into(), c.moved);
    }
    if c.complete {
        let msg = format!("ReplicaSet {new_name:?} has successfully progressed.");
        return (Progress::Complete, msg, c.moved);
    }
    if c.moved || prog.is_none() || was_paused {
        let msg = format!("ReplicaSet {new_name:?} is progressing.");
        return (Progress::Updated, msg, true);
    }
    let prog = prog.unwrap_or_default();
    let last = prog
        .last_update_time
        .as_ref()
        .map_or(0, |t| t.0.as_second());
    if last + deadline <= now.as_second() {
        let msg = format!("ReplicaSet {new_name:?} has timed out progressing.");
        return (Progress::TimedOut, msg, false);
    }
    (Progress::Updated, prog.message.unwrap_or_default(), false)
}

/// A condition of `type_`; its times stay while its status does, a new status starts
/// now, and `touch` moves its update time to now.
fn condition_now(
    old: Option<DeploymentCondition>,
    type_: &str,
    (status, reason, message): (ConditionStatus, &str, String),
    touch: bool,
    now: &Time,
) -> DeploymentCondition {
    let same = old.filter(|c| c.status.as_deref() == Some(status.as_str()));
    let kept = |t: Option<Time>| t.unwrap_or_else(|| now.clone());
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.as_str().into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: match touch {
            true => Some(now.clone()),
            false => Some(kept(same.as_ref().and_then(|c| c.last_update_time.clone()))),
        },
        last_transition_time: Some(kept(same.and_then(|c| c.last_transition_time))),
    }
}

/// Decides the status of `d` at `now` from its new ReplicaSet and all of its ReplicaSets.
pub(crate) fn plan(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    rss: &[Arc<ReplicaSet>],
    now: Timestamp,
) -> StatusPlan {
    let desired = d.spec.replicas.unwrap_or(1);
    let c = counts(d, new, rss);
    // Whole seconds, as Kubernetes' Time has them, so a re-read compares equal.
    let now_t = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let new_name = new
        .and_then(|n| n.metadata.name.clone())
        .unwrap_or_default();
    let (p, message, touch) = progress(d, &new_name, &c, now);
    let (_, max_unavailable) = rollout::surge_and_unavailable(d);
    let available_ok = c.available >= desired - max_unavailable;
    let a = match available_ok {
        true => (
            ConditionStatus::True,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        ),
        false => (
            ConditionStatus::False,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        ),
    };
    let conditions = vec![
        condition_now(
            condition(d, "Available"),
            "Available",
            (a.0, a.1, a.2.into()),
            false,
            &now_t,
        ),
        condition_now(
            condition(d, "Progressing"),
            "Progressing",
            (p.status(), p.as_str(), message),
            touch,
            &now_t,
        ),
    ];
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(c.total),
        updated_replicas: Some(c.updated),
        ready_replicas: Some(c.ready),
        available_replicas: Some(c.available),
        unavailable_replicas: Some((desired - c.available).max(0)),
        conditions: Some(conditions),
        ..Default::default()
    };
    let deadline = d.spec.progress_deadline_seconds.unwrap_or(600);
    let waiting = !c.complete && p != Progress::Paused && p != Progress::TimedOut;
    StatusPlan {
        status: changed(d, &status).then_some(status),
        requeue: waiting.then(|| Duration::from_secs(u64::from(deadline.max(1) as u32).min(30))),
    }
}

/// Whether `next` says anything the Deployment's status does not (condition times aside).
fn changed(d: &Deployment, next: &DeploymentStatus) -> bool {
    let cur = d.status.clone().unwrap_or_default();
    let key = |cs: &Option<Vec<DeploymentCondition>>| -> Vec<(Option<String>, Option<String>, Option<String>)> {
        cs.iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    };
    let n = |v: Option<i32>| v.unwrap_or(0);
    n(cur.replicas) != n(next.replicas)
        || n(cur.updated_replicas) != n(next.updated_replicas)
        || n(cur.available_replicas) != n(next.available_replicas)
        || n(cur.ready_replicas) != n(next.ready_replicas)
        || n(cur.unavailable_replicas) != n(next.unavailable_replicas)
        || cur.observed_generation != next.observed_generation
        || key(&cur.conditions) != key(&next.conditions)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
