//! Job controller: runs pods to completion — `completions` successful pods, at most
//! `parallelism` at a time; more than `backoffLimit` failed pods, or running past
//! `activeDeadlineSeconds`, fails the Job and stops its pods. After a pod fails, the next
//! one waits out an exponential back-off, as Kubernetes' does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use client::reflector::ObjectKey;
use client::{Api, PatchParams};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::context::Ctx;
use crate::expectations::Expectations;
use crate::pods::{self, controller_ref};
use crate::replicaset::{owner_ref, pod_from_template};
use crate::scheduler::recorder::now;
use crate::worker::{self, Requeue};

pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// The back-off between failed pods and their replacements.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// The first delay; it doubles with each further failure.
    pub pod_failure_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            pod_failure_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(600),
        }
    }
}

/// The delay before a Job with `failures` failed pods may create another:
/// `base · 2^(failures-1)`, at most `max`.
pub fn backoff_delay(failures: i32, base: Duration, max: Duration) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    base.saturating_mul(1u32 << (failures - 1).min(30)).min(max)
}

/// When each Job's failure count last went up, as this controller saw it.
#[derive(Default)]
struct Backoff(Mutex<HashMap<ObjectKey, (i32, Instant)>>);

impl Backoff {
    /// How long the Job must still wait before creating a pod.
    fn remaining(&self, key: &ObjectKey, failed: i32, cfg: &JobConfig) -> Duration {
        if failed == 0 {
            return Duration::ZERO;
        }
        let mut m = self.0.lock();
        let e = m.entry(key.clone()).or_insert((failed, Instant::now()));
        if failed > e.0 {
            *e = (failed, Instant::now());
        }
        backoff_delay(failed, cfg.pod_failure_backoff, cfg.max_backoff)
            .saturating_sub(e.1.elapsed())
    }

    fn forget(&self, key: &ObjectKey) {
        self.0.lock().remove(key);
    }
}

pub async fn run(ctx: Arc<Ctx>, workers: usize, cfg: JobConfig) {
    let q = worker::queue();
    let expectations = Arc::new(Expectations::default());
    let backoff = Arc::new((Backoff::default(), cfg));
    let c1 = ctx.clone();
    let jobs = worker::feed(ctx.jobs.clone(), q.clone(), worker::own_key, move || {
        c1.jobs.keys()
    });
    let c2 = ctx.clone();
    let pods = worker::feed(
        ctx.pods.clone(),
        q.clone(),
        |c| worker::controller_key(c, "Job"),
        move || c2.jobs.keys(),
    );
    let work = worker::run("job", q, workers, move |key| {
        let (ctx, exp, b) = (ctx.clone(), expectations.clone(), backoff.clone());
        async move { reconcile(&ctx, &exp, &b, key).await }
    });
    tokio::join!(jobs, pods, work);
}

/// The condition that ended the Job, if it has ended.
pub fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

async fn reconcile(
    ctx: &Ctx,
    exp: &Expectations,
    (backoff, cfg): &(Backoff, JobConfig),
    key: ObjectKey,
) -> Result<Requeue, client::Error> {
    let Some(job) = ctx.jobs.get(&key) else {
        exp.forget(&key);
        backoff.forget(&key);
        return Ok(None);
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let owned: Vec<Arc<Pod>> = ctx
        .pods
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|p| controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let succeeded = owned
        .iter()
        .filter(|p| pods::phase(p) == "Succeeded")
        .count() as i32;
    let failed = owned.iter().filter(|p| pods::phase(p) == "Failed").count() as i32;
    let active: Vec<&Arc<Pod>> = owned
        .iter()
        .filter(|p| pods::is_active(p) && !pods::is_deleting(p))
        .collect();
    let ready = active.iter().filter(|p| pods::is_ready(p)).count() as i32;
    let now_t = now();
    let start = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.as_second())
        .unwrap_or(now_t.as_second());
    let pods_api = Api::<Pod>::namespaced(ctx.client.clone(), &key.namespace);
    let mut end: Option<(&str, &str, String)> = None;
    let mut wait: Option<Duration> = None;
    if finished(&job).is_none() {
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        let deadline = spec.active_deadline_seconds;
        if failed > backoff_limit {
            end = Some((
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".into(),
            ));
        } else if deadline.is_some_and(|d| start + d <= now_t.as_second()) {
            end = Some((
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline".into(),
            ));
        } else {
            let completions = spec.completions;
            let parallelism = spec.parallelism.unwrap_or(1).max(0);
            let done = match completions {
                Some(c) => succeeded >= c,
                // Work-queue mode: one success and nothing running.
                None => succeeded > 0 && active.is_empty(),
            };
            if !exp.satisfied(&key, &ctx.pods) {
                // Pods created or deleted a moment ago are not in the informer yet.
            } else if done {
                end = Some(("Complete", "", String::new()));
            } else {
                let wanted = match completions {
                    Some(c) => parallelism.min(c - succeeded),
                    None if succeeded > 0 => 0,
                    None => parallelism,
                }
                .max(0) as usize;
                let remaining = backoff.remaining(&key, failed, cfg);
                if active.len() < wanted && !remaining.is_zero() {
                    wait = Some(remaining);
                } else if active.len() < wanted {
                    let owner = owner_ref("batch/v1", "Job", &job.metadata);
                    let mut template = spec.template.clone();
                    let labels = template
                        .metadata
                        .get_or_insert_with(Default::default)
                        .labels
                        .get_or_insert_with(Default::default);
                    labels.insert(JOB_NAME_LABEL.into(), key.name.clone());
                    labels.insert(CONTROLLER_UID_LABEL.into(), uid.clone());
                    let pod = pod_from_template(&template, &owner, &key.namespace);
                    for _ in active.len()..wanted {
                        let p = pods_api.create(&pod).await?;
                        exp.created(&key, p.metadata.name.unwrap_or_default());
                    }
                    ctx.events.record(
                        job.as_ref(),
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created {} pod(s)", wanted - active.len()),
                    );
                } else if active.len() > wanted {
                    let mut ranked = active.clone();
                    ranked.sort_by_key(|p| pods::deletion_rank(p));
                    for p in ranked.iter().take(active.len() - wanted) {
                        let _ = pods_api
                            .delete(p.metadata.name.as_deref().unwrap_or_default(), None)
                            .await;
                    }
                }
            }
        }
    }
    if let Some((kind, _, _)) = &end {
        if *kind == "Failed" {
            for p in &active {
                let _ = pods_api
                    .delete(p.metadata.name.as_deref().unwrap_or_default(), None)
                    .await;
            }
        }
    }
    let active_n = if matches!(end, Some(("Failed", _, _))) {
        0
    } else {
        active.len()
    };
    let mut status = json!({
        "active": active_n,
        "succeeded": succeeded,
        "failed": failed,
        "ready": ready,
        "startTime": k8s_openapi::jiff::Timestamp::from_second(start).map(|t| t.to_string()).unwrap_or_default(),
    });
    if let Some((kind, reason, message)) = end {
        let t = k8s_openapi::jiff::Timestamp::from_second(now_t.as_second())
            .map(|t| t.to_string())
            .unwrap_or_default();
        let mut cond =
            json!({"type": kind, "status": "True", "lastProbeTime": t, "lastTransitionTime": t});
        if !reason.is_empty() {
            cond["reason"] = reason.into();
            cond["message"] = message.into();
        }
        status["conditions"] = json!([cond]);
        if kind == "Complete" {
            status["completionTime"] = t.into();
        }
        let what = if kind == "Complete" {
            "Completed"
        } else {
            reason
        };
        ctx.events.record(
            job.as_ref(),
            if kind == "Complete" {
                "Normal"
            } else {
                "Warning"
            },
            what,
            format!("Job {what}"),
        );
    }
    let cur = job.status.clone().unwrap_or_default();
    let same = cur.active.unwrap_or(0) == active_n as i32
        && cur.succeeded.unwrap_or(0) == succeeded
        && cur.failed.unwrap_or(0) == failed
        && cur.ready.unwrap_or(0) == ready
        && cur.start_time.is_some()
        && status.get("conditions").is_none();
    if !same {
        Api::<Job>::namespaced(ctx.client.clone(), &key.namespace)
            .patch_status(&key.name, PatchParams::Merge, &json!({ "status": status }))
            .await?;
    }
    // Look again at the deadline, if one is running, and when the back-off ends.
    let deadline = spec
        .active_deadline_seconds
        .filter(|_| finished(&job).is_none())
        .map(|d| Duration::from_secs((start + d - now_t.as_second()).clamp(1, 60) as u64));
    Ok(match (deadline, wait) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(600));
        let d = |n| backoff_delay(n, base, max).as_secs();
        assert_eq!(
            [d(0), d(1), d(2), d(3), d(6), d(7), d(40)],
            [0, 10, 20, 40, 320, 600, 600]
        );
    }
}
