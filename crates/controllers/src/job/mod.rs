//! Job controller: runs pods to completion — `completions` successful pods, at most
//! `parallelism` at a time; more than `backoffLimit` failed pods, or running past
//! `activeDeadlineSeconds`, fails the Job and stops its pods. After a pod fails, the next
//! one waits out an exponential back-off, as Kubernetes' does.
//!
//! [`plan`] decides, from the Job, its pods and the time; [`apply`] makes the calls.

use client::state::PodPhase;
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
use crate::pods::{self, controller_ref};
use client::events::now;
use client::runtime::Expectations;
use client::runtime::{backoff, Action};

mod plan;

pub(crate) use plan::finished;
use plan::{Plan, World};

pub(crate) const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub(crate) const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

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
pub(crate) fn backoff_delay(failures: i32, base: Duration, max: Duration) -> Duration {
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

pub(crate) async fn run(ctx: Arc<Ctx>, workers: usize, cfg: JobConfig) {
    let expectations = Arc::new(Expectations::default());
    let backoffs = Arc::new((Backoff::default(), cfg));
    ctx.controller("job", &ctx.jobs)
        .owns(ctx.pods.clone(), "Job")
        .concurrency(workers)
        .run(
            move |key, ctx| {
                let (exp, b) = (expectations.clone(), backoffs.clone());
                async move { reconcile(&ctx, &exp, &b, key).await }
            },
            backoff,
            ctx.clone(),
        )
        .await
}

/// Gathers what the Job's plan needs, decides, and carries the plan out.
async fn reconcile(
    ctx: &Ctx,
    exp: &Expectations,
    (backoff, cfg): &(Backoff, JobConfig),
    key: ObjectKey,
) -> Result<Action, client::Error> {
    let Some(job) = ctx.jobs.get(&key) else {
        exp.forget(&key);
        backoff.forget(&key);
        return Ok(Action::AwaitChange);
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let owned: Vec<Arc<Pod>> = ctx
        .pods
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|p| controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let failed = owned
        .iter()
        .filter(|p| pods::phase(p) == PodPhase::Failed)
        .count() as i32;
    let world = World {
        pods: &owned,
        expectations_met: exp.satisfied(&key, &ctx.pods),
        backoff_remaining: backoff.remaining(&key, failed, cfg),
    };
    let plan = plan::plan(&job, &world, now());
    apply(ctx, exp, &key, &job, plan).await
}

/// Makes the plan's calls; the first that fails fails the reconcile (a pod already gone
/// counts as deleted).
async fn apply(
    ctx: &Ctx,
    exp: &Expectations,
    key: &ObjectKey,
    job: &Job,
    plan: Plan,
) -> Result<Action, client::Error> {
    let pods_api = Api::<Pod>::namespaced(ctx.client.clone(), &key.namespace);
    for pod in &plan.create {
        let p = pods_api.create(pod).await?;
        exp.created(key, p.metadata.name.unwrap_or_default());
    }
    for name in &plan.delete {
        match pods_api.delete(name, None).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(status) = &plan.status {
        Api::<Job>::namespaced(ctx.client.clone(), &key.namespace)
            .patch_status(&key.name, PatchParams::Merge, &json!({ "status": status }))
            .await?;
    }
    for n in plan.notes {
        ctx.events.record(job, n.type_, n.reason, n.message);
    }
    Ok(Action::requeue_after(plan.requeue))
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
