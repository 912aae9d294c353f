//! What the CronJob controller decides for one CronJob, as a pure function of it, its
//! Jobs and the time: the Job due now (the most recent missed start, within
//! `startingDeadlineSeconds`, as `concurrencyPolicy` allows), the Jobs to replace or
//! expire from the history, the status, and when to look again.

use std::sync::Arc;

use client::state::JobConditionType;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::schedule::Schedule;
use crate::job::finished;
use crate::replicaset::owner_ref;

pub(crate) const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// What to do for one CronJob.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// The Job due now.
    pub create: Option<Job>,
    /// Running Jobs the new one replaces (`concurrencyPolicy: Replace`).
    pub replace: Vec<String>,
    /// Finished Jobs beyond the history limits, oldest first.
    pub expired: Vec<String>,
    /// The new status, when it changed.
    pub status: Option<CronJobStatus>,
    /// Seconds until the next scheduled time (a minute when there is none within a year).
    pub next_in: u64,
}

/// The most recent scheduled time after `last` and not after `now`.
pub(crate) fn most_recent_due(schedule: &Schedule, last: i64, now: i64) -> Option<i64> {
    let mut due = None;
    let mut t = last;
    while let Some(n) = schedule.next_after(t).filter(|n| *n <= now) {
        due = Some(n);
        t = n;
    }
    due
}

/// Decides for `cj`, whose Jobs (oldest first) are `jobs`, at `now`; an error names
/// what is wrong with the schedule.
pub(crate) fn plan(cj: &CronJob, jobs: &[Arc<Job>], now: i64) -> Result<Plan, String> {
    let spec = &cj.spec;
    let schedule = Schedule::parse(&spec.schedule)?;
    let last = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0.as_second());
    let active: Vec<&Arc<Job>> = jobs.iter().filter(|j| finished(j).is_none()).collect();
    let mut plan = Plan::default();
    let due = most_recent_due(&schedule, last, now).filter(|_| spec.suspend != Some(true));
    if let Some(at) = due {
        let late = spec.starting_deadline_seconds.is_some_and(|d| at + d < now);
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        let forbidden = policy == "Forbid" && !active.is_empty();
        if !late && !forbidden {
            if policy == "Replace" {
                plan.replace = active.iter().map(|j| name(j)).collect();
            }
            plan.create = Some(job_for(cj, at));
        }
    }
    plan.expired = expired(cj, jobs);
    plan.status = status(cj, &active, due);
    plan.next_in = schedule.next_after(now).map_or(60, |n| (n - now).max(1)) as u64;
    Ok(plan)
}

fn name(j: &Job) -> String {
    j.metadata.name.clone().unwrap_or_default()
}

/// The Job for the time `at`, named after the CronJob and the minute, so two members
/// creating it make one.
fn job_for(cj: &CronJob, at: i64) -> Job {
    let tmpl = cj.spec.job_template.clone();
    let tm = tmpl.metadata.unwrap_or_default();
    let meta = &cj.metadata;
    Job {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{}",
                meta.name.as_deref().unwrap_or_default(),
                at / 60
            )),
            namespace: meta.namespace.clone(),
            labels: tm.labels,
            annotations: Some([(SCHEDULED_AT.to_string(), time(at).0.to_string())].into()),
            owner_references: Some(vec![owner_ref("batch/v1", "CronJob", meta)]),
            ..Default::default()
        },
        spec: tmpl.spec,
        status: None,
    }
}

fn time(t: i64) -> Time {
    Time(Timestamp::from_second(t).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The finished Jobs beyond the successful and failed history limits, oldest first.
fn expired(cj: &CronJob, jobs: &[Arc<Job>]) -> Vec<String> {
    let spec = &cj.spec;
    let limits = [
        (
            JobConditionType::Complete,
            spec.successful_jobs_history_limit.unwrap_or(3),
        ),
        (
            JobConditionType::Failed,
            spec.failed_jobs_history_limit.unwrap_or(1),
        ),
    ];
    let mut out = Vec::new();
    for (kind, limit) in limits {
        let done: Vec<&Arc<Job>> = jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
        let extra = done.len().saturating_sub(limit.max(0) as usize);
        out.extend(done.iter().take(extra).map(|j| name(j)));
    }
    out
}

/// The running Jobs and, when one was due, its time; None when neither changed.
fn status(cj: &CronJob, active: &[&Arc<Job>], due: Option<i64>) -> Option<CronJobStatus> {
    let refs: Vec<ObjectReference> = active
        .iter()
        .map(|j| ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: j.metadata.name.clone(),
            namespace: cj.metadata.namespace.clone(),
            uid: j.metadata.uid.clone(),
            ..Default::default()
        })
        .collect();
    let cur = cj
        .status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .map_or(0, Vec::len);
    if due.is_none() && cur == refs.len() {
        return None;
    }
    Some(CronJobStatus {
        active: Some(refs),
        last_schedule_time: due.map(time),
        ..Default::default()
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
