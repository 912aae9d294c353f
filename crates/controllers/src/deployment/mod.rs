//! Deployment controller: declarative updates through ReplicaSets — one per template,
//! named by the template's hash — with RollingUpdate or Recreate, minReadySeconds,
//! revisions and their history limit, pause, and the Progressing/Available conditions
//! with `progressDeadlineSeconds`. Rolling back is writing an old template back (what
//! `rkube ctl rollout undo` does); the old ReplicaSet then becomes the new one again and
//! gets the next revision.

pub mod history;
pub mod rollout;

use client::state::EventType;
use std::sync::Arc;
use std::time::Duration;

use client::reflector::ObjectKey;
use client::{Api, PatchParams};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use self::history::{HASH_LABEL, REVISION};
use self::rollout::{available, spec_replicas};
use crate::context::Ctx;
use crate::pods::controller_ref;
use crate::replicaset::owner_ref;
use client::events::now;
use client::runtime::{backoff, Action};
use client::selectors::selector_matches;

pub async fn run(ctx: Arc<Ctx>, workers: usize) {
    ctx.controller("deployment", &ctx.deployments)
        .owns(ctx.replicasets.clone(), "Deployment")
        .concurrency(workers)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

/// The ReplicaSets the Deployment controls, adopting matching orphans.
async fn claim(ctx: &Ctx, d: &Deployment) -> client::Result<Vec<Arc<ReplicaSet>>> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let selector = d.spec.selector.clone();
    let owner = owner_ref("apps/v1", "Deployment", &d.metadata);
    let api = Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns);
    let mut out = Vec::new();
    for rs in ctx.replicasets.list_namespace(&ns) {
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        match controller_ref(&rs.metadata) {
            Some(r) if r.uid == uid => out.push(rs),
            None if selector_matches(&selector, &labels)
                && d.metadata.deletion_timestamp.is_none() =>
            {
                let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                refs.push(owner.clone());
                let patch = json!({"metadata": {"ownerReferences": refs,
                    "resourceVersion": rs.metadata.resource_version}});
                match api
                    .patch(
                        rs.metadata.name.as_deref().unwrap_or_default(),
                        PatchParams::Merge,
                        &patch,
                    )
                    .await
                {
                    Ok(rs) => out.push(Arc::new(rs)),
                    Err(e) if e.is_conflict() || e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

async fn scale(ctx: &Ctx, d: &Deployment, rs: &ReplicaSet, to: i32) -> client::Result<()> {
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let replicas = d.spec.replicas.unwrap_or(1);
    let (surge, _) = rollout::surge_and_unavailable(d);
    let patch = json!({
        "metadata": {"annotations": {
            history::DESIRED_REPLICAS: replicas.to_string(),
            history::MAX_REPLICAS: (replicas + surge).to_string()}},
        "spec": {"replicas": to},
    });
    Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns)
        .patch(&name, PatchParams::Merge, &patch)
        .await?;
    let verb = if to > spec_replicas(rs) { "up" } else { "down" };
    ctx.events.record(
        d,
        EventType::Normal,
        "ScalingReplicaSet",
        format!("Scaled {verb} replica set {name} to {to}"),
    );
    Ok(())
}

/// Creates the ReplicaSet of the current template with `replicas`, at revision `rev`.
async fn create_new(
    ctx: &Ctx,
    d: &Deployment,
    rev: i64,
    replicas: i32,
) -> client::Result<Arc<ReplicaSet>> {
    let spec = d.spec.clone();
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let collision = d
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let hash = history::template_hash(&spec.template, collision);
    let mut template = spec.template.clone();
    let tm = template.metadata.get_or_insert_with(Default::default);
    tm.labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.clone());
    let (surge, _) = rollout::surge_and_unavailable(d);
    let desired = spec.replicas.unwrap_or(1);
    let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: tm.labels.clone(),
            annotations: Some(
                [
                    (REVISION.to_string(), rev.to_string()),
                    (history::DESIRED_REPLICAS.to_string(), desired.to_string()),
                    (
                        history::MAX_REPLICAS.to_string(),
                        (desired + surge).to_string(),
                    ),
                ]
                .into(),
            ),
            owner_references: Some(vec![owner_ref("apps/v1", "Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
        status: None,
    };
    let created = Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns)
        .create(&rs)
        .await?;
    ctx.events.record(
        d,
        EventType::Normal,
        "ScalingReplicaSet",
        format!("Scaled up replica set {name} to {replicas}"),
    );
    Ok(Arc::new(created))
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(d) = ctx.deployments.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let spec = d.spec.clone();
    let replicas = spec.replicas.unwrap_or(1);
    let rss = claim(ctx, &d).await?;
    let mut new = history::find_new(&d, &rss);
    let olds: Vec<Arc<ReplicaSet>> = rss
        .iter()
        .filter(|rs| {
            new.as_ref()
                .is_none_or(|n| n.metadata.uid != rs.metadata.uid)
        })
        .cloned()
        .collect();
    let max_old_rev = olds
        .iter()
        .map(|rs| history::revision(rs))
        .max()
        .unwrap_or(0);
    let paused = spec.paused == Some(true);
    if !paused {
        // The new ReplicaSet carries the highest revision (also after a rollback).
        if let Some(n) = &new {
            if history::revision(n) <= max_old_rev {
                let patch =
                    json!({"metadata": {"annotations": {REVISION: (max_old_rev + 1).to_string()}}});
                Api::<ReplicaSet>::namespaced(ctx.client.clone(), &key.namespace)
                    .patch(
                        n.metadata.name.as_deref().unwrap_or_default(),
                        PatchParams::Merge,
                        &patch,
                    )
                    .await?;
            }
        }
        let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
        if recreate {
            let running: i32 = olds
                .iter()
                .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
                .sum();
            for rs in olds.iter().filter(|rs| spec_replicas(rs) > 0) {
                scale(ctx, &d, rs, 0).await?;
            }
            if running == 0 && olds.iter().all(|rs| spec_replicas(rs) == 0) {
                match &new {
                    Some(n) if spec_replicas(n) != replicas => scale(ctx, &d, n, replicas).await?,
                    Some(_) => {}
                    None => new = Some(create_new(ctx, &d, max_old_rev + 1, replicas).await?),
                }
            }
        } else {
            let all: Vec<Arc<ReplicaSet>> = rss.clone();
            match &new {
                Some(n) => {
                    let to = rollout::new_replicas(&d, n, &all);
                    if to != spec_replicas(n) {
                        scale(ctx, &d, n, to).await?;
                    }
                }
                None => {
                    let probe = ReplicaSet::default();
                    let to = rollout::new_replicas(&d, &probe, &all);
                    new = Some(create_new(ctx, &d, max_old_rev + 1, to).await?);
                }
            }
            for (rs, to) in rollout::old_scale_downs(&d, new.as_deref(), &olds) {
                scale(ctx, &d, &rs, to).await?;
            }
        }
        for rs in history::prunable(&d, &olds) {
            let name = rs.metadata.name.clone().unwrap_or_default();
            match Api::<ReplicaSet>::namespaced(ctx.client.clone(), &key.namespace)
                .delete(&name, None)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    sync_status(ctx, &d, new.as_deref(), &rss).await
}

/// Writes replicas, updatedReplicas, readyReplicas, availableReplicas and the Available
/// and Progressing conditions; asks to be called again at the progress deadline.
async fn sync_status(
    ctx: &Ctx,
    d: &Deployment,
    new: Option<&ReplicaSet>,
    rss: &[Arc<ReplicaSet>],
) -> Result<Action, client::Error> {
    let spec = d.spec.clone();
    let desired = spec.replicas.unwrap_or(1);
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let total: i32 = rss.iter().map(|rs| st(rs).replicas).sum();
    let ready: i32 = rss
        .iter()
        .map(|rs| st(rs).ready_replicas.unwrap_or(0))
        .sum();
    let avail: i32 = rss.iter().map(|rs| available(rs)).sum();
    let updated = new.map_or(0, |n| st(n).replicas);
    let (_, max_unavailable) = rollout::surge_and_unavailable(d);
    let cur = d.status.clone().unwrap_or_default();
    // Whole seconds, as Kubernetes' Time has them, so a re-read compares equal.
    let now_t = k8s_openapi::jiff::Timestamp::from_second(now().as_second()).unwrap_or(now());
    let old_cond = |t: &str| {
        cur.conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some(t))
            .cloned()
    };
    let complete = updated == desired
        && total == desired
        && avail >= desired
        && new.is_some_and(|n| st(n).observed_generation == n.metadata.generation);
    let moved = cur.updated_replicas.unwrap_or(0) != updated
        || cur.available_replicas.unwrap_or(0) != avail
        || cur.replicas.unwrap_or(0) != total
        || cur.observed_generation != d.metadata.generation;
    let deadline = spec.progress_deadline_seconds.unwrap_or(600);
    let prog = old_cond("Progressing");
    let (p_status, p_reason, p_msg, touch) = if spec.paused == Some(true) {
        (
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".to_string(),
            moved,
        )
    } else if complete {
        let name = new
            .and_then(|n| n.metadata.name.clone())
            .unwrap_or_default();
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet {name:?} has successfully progressed."),
            moved,
        )
    } else if moved
        || prog.is_none()
        || prog
            .as_ref()
            .is_some_and(|p| p.reason.as_deref() == Some("DeploymentPaused"))
    {
        let name = new
            .and_then(|n| n.metadata.name.clone())
            .unwrap_or_default();
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet {name:?} is progressing."),
            true,
        )
    } else {
        let last = prog
            .as_ref()
            .and_then(|p| p.last_update_time.as_ref())
            .map_or(0, |t| t.0.as_second());
        if last + i64::from(deadline) <= now_t.as_second() {
            let name = new
                .and_then(|n| n.metadata.name.clone())
                .unwrap_or_default();
            (
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet {name:?} has timed out progressing."),
                false,
            )
        } else {
            let p = prog.clone().unwrap_or_default();
            (
                "True",
                "ReplicaSetUpdated",
                p.message.unwrap_or_default(),
                false,
            )
        }
    };
    // A condition's time stays while its status does; a new status starts now.
    let keep = |c: Option<DeploymentCondition>, status: &str, update: bool| {
        c.filter(|c| c.status.as_deref() == Some(status))
            .and_then(|c| {
                if update {
                    c.last_update_time
                } else {
                    c.last_transition_time
                }
            })
            .map_or_else(|| json!(now_t.to_string()), |t| json!(t))
    };
    let p_update = if touch {
        json!(now_t.to_string())
    } else {
        keep(prog.clone(), p_status, true)
    };
    let available_ok = avail >= desired - max_unavailable;
    let (a_status, a_reason) = if available_ok {
        ("True", "MinimumReplicasAvailable")
    } else {
        ("False", "MinimumReplicasUnavailable")
    };
    let a = old_cond("Available");
    let status = json!({
        "observedGeneration": d.metadata.generation,
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": avail,
        "unavailableReplicas": (desired - avail).max(0),
        "conditions": [
            {"type": "Available", "status": a_status, "reason": a_reason,
             "message": if available_ok { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
             "lastUpdateTime": keep(a.clone(), a_status, true),
             "lastTransitionTime": keep(a, a_status, false)},
            {"type": "Progressing", "status": p_status, "reason": p_reason, "message": p_msg,
             "lastUpdateTime": p_update,
             "lastTransitionTime": keep(prog.clone(), p_status, false)},
        ],
    });
    let conds_now: Vec<(String, String, String)> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let f = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (f("type"), f("status"), f("reason"))
        })
        .collect();
    let conds_cur: Vec<(String, String, String)> = cur
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            (
                c.type_.clone().unwrap_or_default(),
                c.status.clone().unwrap_or_default(),
                c.reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    let changed = moved
        || conds_now != conds_cur
        || cur.ready_replicas.unwrap_or(0) != ready
        || cur.unavailable_replicas.unwrap_or(0) != (desired - avail).max(0);
    if changed {
        Api::<Deployment>::namespaced(
            ctx.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        )
        .patch_status(
            d.metadata.name.as_deref().unwrap_or_default(),
            PatchParams::Merge,
            &json!({"status": status}),
        )
        .await?;
    }
    if !complete && spec.paused != Some(true) && p_reason != "ProgressDeadlineExceeded" {
        return Ok(Action::Requeue(Duration::from_secs(
            u64::from(deadline.max(1) as u32).min(30),
        )));
    }
    Ok(Action::AwaitChange)
}
