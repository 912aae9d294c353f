//! CronJob controller: creates a Job from `jobTemplate` at every time the `schedule` (five
//! cron fields, or @hourly and friends, in UTC) names, honouring `concurrencyPolicy`
//! (Allow, Forbid, Replace), `startingDeadlineSeconds`, `suspend`, and the successful and
//! failed job history limits.

//!
//! [`plan`] decides, from the CronJob, its Jobs and the time; `reconcile` makes the
//! calls.

use std::sync::Arc;
use std::time::Duration;

use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::state::EventType;
use client::{Api, DeleteParams, PatchParams};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use serde_json::json;

use crate::context::Ctx;
use crate::pods::controller_ref;
use client::events::now;

mod plan;
mod schedule;

pub(crate) async fn run(ctx: Arc<Ctx>) {
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

/// Gathers the CronJob's Jobs, decides, and makes the calls.
async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(cj) = ctx.cronjobs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let mut jobs: Vec<Arc<Job>> = ctx
        .jobs
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|j| controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    jobs.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let plan = match plan::plan(&cj, &jobs, now().as_second()) {
        Ok(p) => p,
        Err(e) => {
            let message = format!("unparseable schedule {:?}: {e}", cj.spec.schedule);
            ctx.events.record(
                cj.as_ref(),
                EventType::Warning,
                "UnparseableSchedule",
                message,
            );
            return Ok(Action::AwaitChange);
        }
    };
    apply(ctx, &key, &cj, plan).await
}

/// Deletes what the plan gives up (a Job's pods go in the background), creates the due
/// Job, and writes the status.
async fn apply(
    ctx: &Ctx,
    key: &ObjectKey,
    cj: &CronJob,
    plan: plan::Plan,
) -> Result<Action, client::Error> {
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), &key.namespace);
    let background = DeleteParams {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    for name in &plan.replace {
        delete(&jobs_api, name, &background).await?;
    }
    if let Some(job) = &plan.create {
        match jobs_api.create(job).await {
            Ok(j) => {
                let message = format!("Created job {}", j.metadata.name.unwrap_or_default());
                ctx.events
                    .record(cj, EventType::Normal, "SuccessfulCreate", message);
            }
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    for name in &plan.expired {
        delete(&jobs_api, name, &background).await?;
    }
    if let Some(status) = &plan.status {
        Api::<CronJob>::namespaced(ctx.client.clone(), &key.namespace)
            .patch_status(&key.name, PatchParams::Merge, &json!({ "status": status }))
            .await?;
    }
    Ok(Action::requeue(Duration::from_secs(plan.next_in)))
}

async fn delete(api: &Api<Job>, name: &str, dp: &DeleteParams) -> client::Result<()> {
    match api.delete_with(name, dp).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}
