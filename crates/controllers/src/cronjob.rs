//! CronJob controller: creates a Job from `jobTemplate` at every time the `schedule` (five
//! cron fields, or @hourly and friends, in UTC) names, honouring `concurrencyPolicy`
//! (Allow, Forbid, Replace), `startingDeadlineSeconds`, `suspend`, and the successful and
//! failed job history limits.

use client::state::EventType;
use client::state::JobConditionType;
use std::sync::Arc;
use std::time::Duration;

use client::reflector::ObjectKey;
use client::{Api, DeleteParams, PatchParams};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::context::Ctx;
use crate::job::finished;
use crate::pods::controller_ref;
use crate::replicaset::owner_ref;
use client::events::now;
use client::runtime::{backoff, Action};

pub const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// A parsed five-field schedule: the allowed values of each field.
#[derive(Debug, PartialEq)]
pub struct Schedule {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days: Vec<u32>,
    months: Vec<u32>,
    weekdays: Vec<u32>,
    /// Both day fields restricted: either may match, as cron has it.
    day_or: bool,
}

fn field(s: &str, lo: u32, hi: u32, name: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (
                r,
                st.parse::<u32>()
                    .map_err(|_| format!("{name}: bad step {st:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("{name}: step must be positive"));
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let p = |x: &str| {
                x.parse::<u32>()
                    .map_err(|_| format!("{name}: bad value {x:?}"))
            };
            (p(a)?, p(b)?)
        } else {
            let v = range
                .parse::<u32>()
                .map_err(|_| format!("{name}: bad value {range:?}"))?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{name}: {part:?} is outside {lo}-{hi}"));
        }
        out.extend((a..=b).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let s = match s.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!("expected 5 fields, got {}", f.len()));
        }
        let mut weekdays = field(f[4], 0, 7, "day of week")?;
        if weekdays.contains(&7) {
            weekdays.retain(|d| *d != 7);
            weekdays.push(0);
            weekdays.sort_unstable();
            weekdays.dedup();
        }
        Ok(Schedule {
            minutes: field(f[0], 0, 59, "minute")?,
            hours: field(f[1], 0, 23, "hour")?,
            days: field(f[2], 1, 31, "day of month")?,
            months: field(f[3], 1, 12, "month")?,
            weekdays,
            day_or: f[2] != "*" && f[4] != "*",
        })
    }

    /// Whether the minute starting at `t` (seconds since the epoch, UTC) is scheduled.
    pub fn matches(&self, t: i64) -> bool {
        let Ok(ts) = Timestamp::from_second(t) else {
            return false;
        };
        let dt = ts.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).datetime();
        let day = self.days.contains(&(dt.day() as u32));
        let wday = self
            .weekdays
            .contains(&(dt.weekday().to_sunday_zero_offset() as u32));
        let day_ok = if self.day_or {
            day || wday
        } else {
            day && wday
        };
        self.minutes.contains(&(dt.minute() as u32))
            && self.hours.contains(&(dt.hour() as u32))
            && self.months.contains(&(dt.month() as u32))
            && day_ok
    }

    /// The first scheduled minute after `after`, within a year.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = (after / 60 + 1) * 60;
        for _ in 0..(366 * 24 * 60) {
            if self.matches(t) {
                return Some(t);
            }
            t += 60;
        }
        None
    }
}

pub async fn run(ctx: Arc<Ctx>) {
    ctx.controller("cronjob", &ctx.cronjobs)
        .owns(ctx.jobs.clone(), "CronJob")
        .concurrency(2)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

/// Deletes a Job and, in the background, its pods.
async fn delete_job(api: &Api<Job>, j: &Job) {
    let dp = DeleteParams {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    let _ = api
        .delete_with(j.metadata.name.as_deref().unwrap_or_default(), &dp)
        .await;
}

fn ts(t: i64) -> String {
    Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(cj) = ctx.cronjobs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let spec = cj.spec.clone();
    let schedule = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            ctx.events.record(
                cj.as_ref(),
                EventType::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule {:?}: {e}", spec.schedule),
            );
            return Ok(Action::AwaitChange);
        }
    };
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), &key.namespace);
    let mut jobs: Vec<Arc<Job>> = ctx
        .jobs
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|j| controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    jobs.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let now_s = now().as_second();
    let last = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(now_s, |t| t.0.as_second());
    // The most recent missed start, if any.
    let mut due = None;
    let mut t = last;
    while let Some(n) = schedule.next_after(t).filter(|n| *n <= now_s) {
        due = Some(n);
        t = n;
    }
    let active: Vec<&Arc<Job>> = jobs.iter().filter(|j| finished(j).is_none()).collect();
    let mut last_schedule = None;
    if let Some(at) = due.filter(|_| spec.suspend != Some(true)) {
        let late = spec
            .starting_deadline_seconds
            .is_some_and(|d| at + d < now_s);
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        let forbidden = policy == "Forbid" && !active.is_empty();
        if !late && !forbidden {
            if policy == "Replace" {
                for j in &active {
                    delete_job(&jobs_api, j).await;
                }
            }
            let tmpl = spec.job_template.clone();
            let tm = tmpl.metadata.clone().unwrap_or_default();
            let job = Job {
                metadata: ObjectMeta {
                    name: Some(format!("{}-{}", key.name, at / 60)),
                    namespace: Some(key.namespace.clone()),
                    labels: tm.labels,
                    annotations: Some([(SCHEDULED_AT.to_string(), ts(at))].into()),
                    owner_references: Some(vec![owner_ref("batch/v1", "CronJob", &cj.metadata)]),
                    ..Default::default()
                },
                spec: tmpl.spec,
                status: None,
            };
            match jobs_api.create(&job).await {
                Ok(j) => ctx.events.record(
                    cj.as_ref(),
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created job {}", j.metadata.name.unwrap_or_default()),
                ),
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        last_schedule = Some(at);
    }
    // History: keep the newest successful and failed jobs up to their limits.
    for (kind, limit) in [
        (
            JobConditionType::Complete,
            spec.successful_jobs_history_limit.unwrap_or(3),
        ),
        (
            JobConditionType::Failed,
            spec.failed_jobs_history_limit.unwrap_or(1),
        ),
    ] {
        let done: Vec<&Arc<Job>> = jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
        let extra = done.len().saturating_sub(limit.max(0) as usize);
        for j in done.iter().take(extra) {
            delete_job(&jobs_api, j).await;
        }
    }
    let active_refs: Vec<serde_json::Value> = active
        .iter()
        .map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": j.metadata.name, "namespace": key.namespace, "uid": j.metadata.uid}))
        .collect();
    let mut status = json!({"active": active_refs});
    if let Some(at) = last_schedule {
        status["lastScheduleTime"] = ts(at).into();
    }
    let cur_active = cj
        .status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .map_or(0, |a| a.len());
    if last_schedule.is_some() || cur_active != active_refs.len() {
        Api::<CronJob>::namespaced(ctx.client.clone(), &key.namespace)
            .patch_status(&key.name, PatchParams::Merge, &json!({ "status": status }))
            .await?;
    }
    let next = schedule
        .next_after(now_s)
        .map_or(60, |n| (n - now_s).max(1));
    Ok(Action::Requeue(Duration::from_secs(next as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_match_as_cron() {
        // 2026-11-26T10:15:00Z is a Thursday.
        let at = |s: &str| {
            "2026-11-26T10:15:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_second()
                + s.parse::<i64>().unwrap()
        };
        for (sched, offset, want) in [
            ("* * * * *", "0", true),
            ("15 10 * * *", "0", true),
            ("*/5 * * * *", "0", true),
            ("*/7 * * * *", "0", false),
            ("0-20/15 10 * * *", "0", true),
            ("15 10 * * 4", "0", true),
            ("15 10 * * 1-3", "0", false),
            ("15 10 1 * 4", "0", true),
            ("15 10 26 11 *", "0", true),
            ("@hourly", "2700", true),
        ] {
            let s = Schedule::parse(sched).unwrap();
            assert_eq!(s.matches(at(offset)), want, "{sched}");
        }
        for bad in ["* * * *", "61 * * * *", "*/0 * * * *", "a * * * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        let s = Schedule::parse("30 * * * *").unwrap();
        assert_eq!(s.next_after(at("0")), Some(at("900")));
    }
}
