//! What the Job controller decides for one Job, as a pure function of the Job, its pods
//! and the time: the pods to create and delete, the status, the event, and when to look
//! again. [`super`] gathers the inputs and carries the plan out.

use std::sync::Arc;
use std::time::Duration;

use client::state::{EventType, JobConditionType, PodPhase};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{CONTROLLER_UID_LABEL, JOB_NAME_LABEL};
use crate::pods;
use crate::replicaset::{owner_ref, pod_from_template};

/// What the controller sees of one Job besides the Job itself.
pub(crate) struct World<'a> {
    /// The pods the Job controls.
    pub pods: &'a [Arc<Pod>],
    /// Every pod it created or deleted lately is in the informer.
    pub expectations_met: bool,
    /// How long the Job must still wait after its last failed pod before creating one.
    pub backoff_remaining: Duration,
}

/// Why a Job failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailReason {
    BackoffLimitExceeded,
    DeadlineExceeded,
}

impl FailReason {
    fn as_str(self) -> &'static str {
        match self {
            FailReason::BackoffLimitExceeded => "BackoffLimitExceeded",
            FailReason::DeadlineExceeded => "DeadlineExceeded",
        }
    }

    fn message(self) -> &'static str {
        match self {
            FailReason::BackoffLimitExceeded => "Job has reached the specified backoff limit",
            FailReason::DeadlineExceeded => "Job was active longer than specified deadline",
        }
    }
}

/// How a Job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Complete,
    Failed(FailReason),
}

/// An event to record about the Job.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

/// What to do for one Job.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Pods to create, from the Job's template.
    pub create: Vec<Pod>,
    /// Names of pods to delete: extra ones, or every active one when the Job failed.
    pub delete: Vec<String>,
    /// The new status, when it differs from the Job's.
    pub status: Option<JobStatus>,
    pub notes: Vec<Note>,
    /// Look again after this long (a running deadline, or the end of a back-off).
    pub requeue: Option<Duration>,
}

/// The Job's pods by what became of them.
struct Counts<'a> {
    succeeded: i32,
    failed: i32,
    /// Running or pending, and not being deleted.
    active: Vec<&'a Arc<Pod>>,
    ready: i32,
}

impl<'a> Counts<'a> {
    fn of(pods: &'a [Arc<Pod>]) -> Self {
        let count = |phase| pods.iter().filter(|p| pods::phase(p) == phase).count() as i32;
        let active: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| pods::is_active(p) && !pods::is_deleting(p))
            .collect();
        Counts {
            succeeded: count(PodPhase::Succeeded),
            failed: count(PodPhase::Failed),
            ready: active.iter().filter(|p| pods::is_ready(p)).count() as i32,
            active,
        }
    }
}

/// The condition that ended the Job, if it has ended.
pub(crate) fn finished(job: &Job) -> Option<JobConditionType> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .filter(|c| c.status == "True")
        .filter_map(|c| JobConditionType::parse(&c.type_))
        .find(|t| matches!(t, JobConditionType::Complete | JobConditionType::Failed))
}

/// Decides what to do for `job` at `now`.
pub(crate) fn plan(job: &Job, w: &World, now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let counts = Counts::of(w.pods);
    let start = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or(now.as_second(), |t| t.0.as_second());
    let running = finished(job).is_none();
    let mut plan = Plan::default();
    let end = running.then(|| decide(job, &spec, &counts, w, start, now, &mut plan));
    let end = end.flatten();
    if let Some(End::Failed(_)) = end {
        plan.delete = counts.active.iter().map(|p| name(p)).collect();
    }
    plan.status = status(job, &counts, end, start, now);
    if let Some(e) = end {
        plan.notes.push(note_of(e));
    }
    let deadline = spec
        .active_deadline_seconds
        .filter(|_| running && end.is_none())
        .map(|d| Duration::from_secs((start + d - now.as_second()).clamp(1, 60) as u64));
    plan.requeue = match (deadline, plan.requeue) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    plan
}

/// For a running Job: whether it ends now, else the pods to create or delete (and a
/// back-off to wait out, as `plan.requeue`).
fn decide(
    job: &Job,
    spec: &JobSpec,
    counts: &Counts,
    w: &World,
    start: i64,
    now: Timestamp,
    plan: &mut Plan,
) -> Option<End> {
    if counts.failed > spec.backoff_limit.unwrap_or(6) {
        return Some(End::Failed(FailReason::BackoffLimitExceeded));
    }
    if spec
        .active_deadline_seconds
        .is_some_and(|d| start + d <= now.as_second())
    {
        return Some(End::Failed(FailReason::DeadlineExceeded));
    }
    if !w.expectations_met {
        // Pods created or deleted a moment ago are not in the informer yet.
        return None;
    }
    let done = match spec.completions {
        Some(c) => counts.succeeded >= c,
        // Work-queue mode: one success and nothing running.
        None => counts.succeeded > 0 && counts.active.is_empty(),
    };
    if done {
        return Some(End::Complete);
    }
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let wanted = match spec.completions {
        Some(c) => parallelism.min(c - counts.succeeded),
        // Work-queue mode: after a success, running pods finish and no more start.
        None if counts.succeeded > 0 => counts.active.len() as i32,
        None => parallelism,
    }
    .max(0) as usize;
    let active = counts.active.len();
    if active < wanted && !w.backoff_remaining.is_zero() {
        plan.requeue = Some(w.backoff_remaining);
    } else if active < wanted {
        let pod = pod_for(job, spec);
        plan.create = vec![pod; wanted - active];
        plan.notes.push(Note {
            type_: EventType::Normal,
            reason: "SuccessfulCreate",
            message: format!("Created {} pod(s)", wanted - active),
        });
    } else if active > wanted {
        let mut ranked = counts.active.clone();
        ranked.sort_by_key(|p| pods::deletion_rank(p));
        plan.delete = ranked
            .iter()
            .take(active - wanted)
            .map(|p| name(p))
            .collect();
    }
    None
}

/// A pod of `job`, labelled with the Job's name and uid.
fn pod_for(job: &Job, spec: &JobSpec) -> Pod {
    let meta = &job.metadata;
    let mut template = spec.template.clone();
    let labels = template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    labels.insert(JOB_NAME_LABEL.into(), meta.name.clone().unwrap_or_default());
    labels.insert(
        CONTROLLER_UID_LABEL.into(),
        meta.uid.clone().unwrap_or_default(),
    );
    let owner = owner_ref("batch/v1", "Job", meta);
    pod_from_template(
        &template,
        &owner,
        meta.namespace.as_deref().unwrap_or_default(),
    )
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// The Job's status from its pods; None when nothing changed.
fn status(
    job: &Job,
    counts: &Counts,
    end: Option<End>,
    start: i64,
    now: Timestamp,
) -> Option<JobStatus> {
    let active = match end {
        Some(End::Failed(_)) => 0,
        _ => counts.active.len() as i32,
    };
    let cur = job.status.clone().unwrap_or_default();
    let same = cur.active.unwrap_or(0) == active
        && cur.succeeded.unwrap_or(0) == counts.succeeded
        && cur.failed.unwrap_or(0) == counts.failed
        && cur.ready.unwrap_or(0) == counts.ready
        && cur.start_time.is_some()
        && end.is_none();
    if same {
        return None;
    }
    let second = |s: i64| Time(Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH));
    let t = second(now.as_second());
    let mut status = JobStatus {
        active: Some(active),
        succeeded: Some(counts.succeeded),
        failed: Some(counts.failed),
        ready: Some(counts.ready),
        start_time: Some(second(start)),
        ..Default::default()
    };
    if let Some(e) = end {
        let (type_, reason) = match e {
            End::Complete => (JobConditionType::Complete, None),
            End::Failed(r) => (JobConditionType::Failed, Some(r)),
        };
        status.conditions = Some(vec![JobCondition {
            type_: type_.as_str().into(),
            status: "True".into(),
            last_probe_time: Some(t.clone()),
            last_transition_time: Some(t.clone()),
            reason: reason.map(|r| r.as_str().into()),
            message: reason.map(|r| r.message().into()),
        }]);
        if e == End::Complete {
            status.completion_time = Some(t);
        }
    }
    Some(status)
}

fn note_of(e: End) -> Note {
    let (type_, what) = match e {
        End::Complete => (EventType::Normal, "Completed"),
        End::Failed(r) => (EventType::Warning, r.as_str()),
    };
    Note {
        type_,
        reason: what,
        message: format!("Job {what}"),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
