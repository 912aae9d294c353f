//! Deployment controller: declarative updates through ReplicaSets — one per template,
//! named by the template's hash — with RollingUpdate or Recreate, minReadySeconds,
//! revisions and their history limit, pause, and the Progressing/Available conditions
//! with `progressDeadlineSeconds`. Rolling back is writing an old template back (what
//! `rkube ctl rollout undo` does); the old ReplicaSet then becomes the new one again and
//! gets the next revision.

pub mod history;
pub(crate) mod rollout;
mod status;

use client::state::EventType;
use std::sync::Arc;

use client::reflector::ObjectKey;
use client::{Api, PatchParams};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use self::history::{HASH_LABEL, REVISION};
use self::rollout::spec_replicas;
use crate::context::Ctx;
use crate::pods::controller_ref;
use crate::replicaset::owner_ref;
use client::events::now;
use client::runtime::{backoff, Action};
use client::selectors::selector_matches;

pub(crate) async fn run(ctx: Arc<Ctx>, workers: usize) {
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
    if d.spec.paused != Some(true) {
        new = roll(ctx, &d, new, &olds, &rss).await?;
        prune(ctx, &d, &olds).await?;
    }
    let plan = status::plan(&d, new.as_deref(), &rss, now());
    if let Some(status) = &plan.status {
        Api::<Deployment>::namespaced(ctx.client.clone(), &key.namespace)
            .patch_status(&key.name, PatchParams::Merge, &json!({ "status": status }))
            .await?;
    }
    Ok(Action::requeue_after(plan.requeue))
}

/// One step of the rollout: the new ReplicaSet gets the highest revision, then the
/// strategy scales. Returns the new ReplicaSet (created if there was none).
async fn roll(
    ctx: &Ctx,
    d: &Deployment,
    new: Option<Arc<ReplicaSet>>,
    olds: &[Arc<ReplicaSet>],
    all: &[Arc<ReplicaSet>],
) -> Result<Option<Arc<ReplicaSet>>, client::Error> {
    let max_old_rev = olds
        .iter()
        .map(|rs| history::revision(rs))
        .max()
        .unwrap_or(0);
    // The new ReplicaSet carries the highest revision (also after a rollback).
    if let Some(n) = new.as_ref().filter(|n| history::revision(n) <= max_old_rev) {
        let patch = json!({"metadata": {"annotations": {REVISION: (max_old_rev + 1).to_string()}}});
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        Api::<ReplicaSet>::namespaced(ctx.client.clone(), ns)
            .patch(
                n.metadata.name.as_deref().unwrap_or_default(),
                PatchParams::Merge,
                &patch,
            )
            .await?;
    }
    let recreate = d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    if recreate {
        return recreate_step(ctx, d, new, olds, max_old_rev).await;
    }
    let new = match new {
        Some(n) => {
            let to = rollout::new_replicas(d, &n, all);
            if to != spec_replicas(&n) {
                scale(ctx, d, &n, to).await?;
            }
            n
        }
        None => {
            let to = rollout::new_replicas(d, &ReplicaSet::default(), all);
            create_new(ctx, d, max_old_rev + 1, to).await?
        }
    };
    for (rs, to) in rollout::old_scale_downs(d, Some(&new), olds) {
        scale(ctx, d, &rs, to).await?;
    }
    Ok(Some(new))
}

/// Recreate: every old pod gone first, then the new ReplicaSet at full size.
async fn recreate_step(
    ctx: &Ctx,
    d: &Deployment,
    new: Option<Arc<ReplicaSet>>,
    olds: &[Arc<ReplicaSet>],
    max_old_rev: i64,
) -> Result<Option<Arc<ReplicaSet>>, client::Error> {
    let replicas = d.spec.replicas.unwrap_or(1);
    let running: i32 = olds
        .iter()
        .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
        .sum();
    for rs in olds.iter().filter(|rs| spec_replicas(rs) > 0) {
        scale(ctx, d, rs, 0).await?;
    }
    if running > 0 || olds.iter().any(|rs| spec_replicas(rs) != 0) {
        return Ok(new);
    }
    match new {
        Some(n) if spec_replicas(&n) != replicas => {
            scale(ctx, d, &n, replicas).await?;
            Ok(Some(n))
        }
        Some(n) => Ok(Some(n)),
        None => Ok(Some(create_new(ctx, d, max_old_rev + 1, replicas).await?)),
    }
}

/// Deletes the old ReplicaSets beyond `revisionHistoryLimit`.
async fn prune(ctx: &Ctx, d: &Deployment, olds: &[Arc<ReplicaSet>]) -> client::Result<()> {
    let ns = d.metadata.namespace.as_deref().unwrap_or_default();
    let api = Api::<ReplicaSet>::namespaced(ctx.client.clone(), ns);
    for rs in history::prunable(d, olds) {
        match api
            .delete(rs.metadata.name.as_deref().unwrap_or_default(), None)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
