//! ResourceQuota controller: keeps each quota's `status.hard` equal to its spec and
//! recomputes `status.used` from the objects that exist. Admission raises `used` with
//! every create; this controller is what lowers it when objects are deleted or pods
//! finish, and what fills it in for a new quota (admission refuses creates a quota
//! covers until it has).
//!
//! A recount is written only against the quota's revision it started from, and only from
//! lists at least that new: a create charged after the quota was read changes that
//! revision, so a recount that missed it cannot be written.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use api_model::quota::{self, Usage};
use client::informer::Change;
use client::reflector::ObjectKey;
use client::Api;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use rkube_proto::api::{ApiResource, ListRequest};
use serde_json::{json, Value};

use crate::context::{type_of, Ctx};
use client::runtime::{backoff, Action};

/// How often every quota is recounted even when nothing it watches changed (objects of
/// kinds without an informer here go away unseen).
const RECOUNT: Duration = Duration::from_secs(30);

/// The quotas of the namespace of a pod that stopped holding its resources.
fn quotas_of_released_pod(ctx: &Ctx, c: &Change<Pod>) -> Vec<ObjectKey> {
    let pod = c.object();
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    let released =
        matches!(c, Change::Deleted(_)) || terminal || pod.metadata.deletion_timestamp.is_some();
    if !released {
        return vec![];
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    ctx.quotas
        .keys()
        .into_iter()
        .filter(|k| k.namespace == ns)
        .collect()
}

pub(crate) async fn run(ctx: Arc<Ctx>) {
    let c = ctx.clone();
    ctx.controller("resourcequota", &ctx.quotas)
        .watches(ctx.pods.clone(), move |ch| quotas_of_released_pod(&c, ch))
        .concurrency(2)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let api = Api::<ResourceQuota>::namespaced(ctx.client.clone(), &key.namespace);
    let Some(mut rq) = api.get_opt(&key.name).await? else {
        return Ok(Action::AwaitChange);
    };
    let q = serde_json::to_value(&rq).unwrap_or_default();
    let hard = match quota::hard_of(&q["spec"]["hard"]) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(quota = %key, "{e}");
            return Ok(Action::AwaitChange);
        }
    };
    let since: i64 = rq
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let Some(used) = count(ctx, &key.namespace, &q["spec"], &hard, since).await? else {
        // A list was older than the quota: read both again.
        return Ok(Action::Requeue(Duration::from_millis(100)));
    };
    let status = json!({"hard": q["spec"]["hard"], "used": quota::to_status(&hard, &used)});
    if q["status"] == status {
        return Ok(Action::Requeue(RECOUNT));
    }
    rq.status = serde_json::from_value(status).ok();
    match api.replace_status(&rq).await {
        Ok(_) => Ok(Action::Requeue(RECOUNT)),
        // A create charged the quota meanwhile: count again from the new revision.
        Err(e) if e.is_conflict() => Ok(Action::Requeue(Duration::ZERO)),
        Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

/// What the objects of `namespace` that a quota with `spec` covers use of `hard`'s
/// resources; None when some list was older than revision `since`.
async fn count(
    ctx: &Ctx,
    namespace: &str,
    spec: &Value,
    hard: &Usage,
    since: i64,
) -> Result<Option<Usage>, client::Error> {
    let sources: BTreeSet<(String, String)> =
        hard.keys().filter_map(|r| quota::source_of(r)).collect();
    let mut used: Usage = hard.keys().map(|k| (k.clone(), 0)).collect();
    if sources.is_empty() {
        return Ok(Some(used));
    }
    let resources = ctx.client.discovery().await?;
    for (group, plural) in sources {
        let Some(r) = find(&resources, &group, &plural) else {
            continue;
        };
        let list = ctx
            .client
            .list(ListRequest {
                r#type: Some(type_of(r)),
                namespace: namespace.into(),
                ..Default::default()
            })
            .await?;
        if list.resource_version.parse::<i64>().unwrap_or(0) < since {
            return Ok(None);
        }
        let objects: Vec<Value> = list
            .items
            .iter()
            .map(|o| serde_json::from_slice(&o.json).unwrap_or_default())
            .collect();
        add_usage(&mut used, spec, (&group, &plural), &objects);
    }
    Ok(Some(used))
}

/// Adds what `objects` (of `group`/`plural`) that the quota `spec` covers use to `used`,
/// for the resources `used` tracks.
fn add_usage(used: &mut Usage, spec: &Value, (group, plural): (&str, &str), objects: &[Value]) {
    for obj in objects
        .iter()
        .filter(|o| quota::covers(spec, group, plural, o))
    {
        for (res, n) in quota::usage(group, plural, obj) {
            if let Some(u) = used.get_mut(&res) {
                *u += n;
            }
        }
    }
}

fn find<'a>(resources: &'a [ApiResource], group: &str, plural: &str) -> Option<&'a ApiResource> {
    resources
        .iter()
        .find(|r| r.group == group && r.name == plural && r.namespaced)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(cpu: &str, phase: &str) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}}]},
            "status": {"phase": phase}})
    }

    #[test]
    fn a_recount_adds_what_covered_live_objects_use() {
        let hard = quota::hard_of(&json!({"pods": "10", "requests.cpu": "4"})).unwrap();
        type Row = (&'static str, Value, Vec<Value>, i64, i64);
        let rows: Vec<Row> = vec![
            ("no pods", json!({}), vec![], 0, 0),
            (
                "two running pods",
                json!({}),
                vec![pod("500m", "Running"), pod("1", "Running")],
                2,
                1500,
            ),
            (
                "finished pods use nothing",
                json!({}),
                vec![pod("1", "Succeeded"), pod("1", "Failed")],
                0,
                0,
            ),
            (
                "a Terminating scope covers only pods with a deadline",
                json!({"scopes": ["Terminating"]}),
                vec![pod("1", "Running")],
                0,
                0,
            ),
        ];
        for (name, spec, objects, pods, millis) in rows {
            let mut used: Usage = hard.keys().map(|k| (k.clone(), 0)).collect();
            add_usage(&mut used, &spec, ("", "pods"), &objects);
            assert_eq!(
                (used["pods"], used["requests.cpu"]),
                (pods, millis),
                "{name}"
            );
        }
    }
}
