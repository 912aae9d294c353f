//! StatefulSet controller: pods with a stable identity — `<set>-<ordinal>`, its own
//! hostname under the set's Service, its own PersistentVolumeClaims
//! `<template>-<set>-<ordinal>` that outlive it — started in order (OrderedReady) or all
//! at once (Parallel), scaled down from the highest ordinal, and updated by revision
//! (RollingUpdate with a partition, or OnDelete) with the history kept as
//! ControllerRevisions. A pod that is deleted or fails is made again under the same name,
//! with the same claims.
//!
//! [`plan`] decides, from the set, its pods, the claims of its namespace, its revisions
//! and the time; `reconcile` claims the pods (adopting orphans, releasing pods it no
//! longer selects) and makes the calls, in the plan's order: revisions, claims, pods,
//! pruning, status.

pub mod history;
mod identity;
mod plan;
mod status;

use std::sync::Arc;

use client::events::now;
use client::informer::Change;
use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::selectors::selector_matches;
use client::state::EventType;
use client::{Api, ApiObject, DeleteParams, PatchParams};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use serde_json::json;

use self::plan::{Plan, World};
use crate::context::{api_error, ApiError, Ctx};
use crate::pods::controller_ref;
use crate::replicaset::set_controller;

/// Why a reconcile failed. Every failure is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A call to the apiserver failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The name the set's template hashes to is taken by a revision of another template;
    /// the collision count is raised, so the next pass hashes to another name.
    #[error("ControllerRevision {name} holds another template")]
    RevisionCollision { name: String },
}

pub(crate) async fn run(ctx: Arc<Ctx>, workers: usize) {
    let (for_pods, for_claims) = (ctx.clone(), ctx.clone());
    ctx.controller("statefulset", &ctx.statefulsets)
        .watches(ctx.pods.clone(), move |c| sets_of_pod(&for_pods, c))
        .owns(ctx.controller_revisions.clone(), "StatefulSet")
        .watches(ctx.pvcs.clone(), move |c| sets_of_claim(&for_claims, c))
        .concurrency(workers)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

/// The sets a pod change concerns: its controller, or for an orphan every set of its
/// namespace that selects it (to adopt it).
fn sets_of_pod(ctx: &Ctx, c: &Change<Pod>) -> Vec<ObjectKey> {
    let p = c.object();
    let namespace = p.metadata.namespace.clone().unwrap_or_default();
    match controller_ref(&p.metadata) {
        Some(r) if r.kind == "StatefulSet" => vec![ObjectKey {
            namespace,
            name: r.name.clone(),
        }],
        Some(_) => vec![],
        None => {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            ctx.statefulsets
                .list_namespace(&namespace)
                .iter()
                .filter(|s| selector_matches(&s.spec.selector, &labels))
                .map(|s| ObjectKey::of(s.as_ref()))
                .collect()
        }
    }
}

/// The sets whose claim templates a claim's name comes from (a claim being deleted
/// holds its pod back until it is gone).
fn sets_of_claim(ctx: &Ctx, c: &Change<PersistentVolumeClaim>) -> Vec<ObjectKey> {
    let claim = c.object();
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    ctx.statefulsets
        .list_namespace(&namespace)
        .iter()
        .filter(|s| identity::claim_ordinal(s, claim).is_some())
        .map(|s| ObjectKey::of(s.as_ref()))
        .collect()
}

/// Claims the pods, decides, and makes the calls.
async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, Error> {
    let Some(set) = ctx.statefulsets.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    // Its pods, and its claims as the retention policy says, go with the garbage collector.
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let act = Act {
        ctx,
        set: &set,
        ns: &key.namespace,
    };
    let pods = act.claim_pods().await?;
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let revisions: Vec<Arc<ControllerRevision>> = ctx
        .controller_revisions
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|r| controller_ref(&r.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let claims = ctx.pvcs.list_namespace(&key.namespace);
    let world = World {
        pods: &pods,
        claims: &claims,
        revisions: &revisions,
        now_s: now().as_second(),
    };
    let plan = plan::plan(&set, &world);
    act.revisions(&plan).await?;
    act.claims(&plan).await?;
    act.pods(&plan).await?;
    act.prune(&plan).await?;
    act.status(&plan).await?;
    Ok(Action::requeue_after(plan.requeue))
}

/// The calls for one set.
struct Act<'a> {
    ctx: &'a Ctx,
    set: &'a StatefulSet,
    ns: &'a str,
}

impl Act<'_> {
    fn api<K: ApiObject>(&self) -> Api<K> {
        Api::namespaced(self.ctx.client.clone(), self.ns)
    }

    fn event(&self, type_: EventType, reason: &str, message: String) {
        self.ctx.events.record(self.set, type_, reason, message);
    }

    fn set_name(&self) -> &str {
        identity::set_name(self.set)
    }

    /// Releases and adopts as [`identity::claim_pods`] says; the pods the set then controls.
    /// A pod gone or changed meanwhile is left for the next pass.
    async fn claim_pods(&self) -> Result<Vec<Arc<Pod>>, Error> {
        let api = self.api::<Pod>();
        let found = self.ctx.pods.list_namespace(self.ns);
        let claims = identity::claim_pods(self.set, &found);
        let owner = identity::set_owner(self.set);
        for p in &claims.release {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            match set_controller(&api, p, None, &owner.uid).await {
                Err(e) if !e.is_not_found() => {
                    return Err(api_error::<Pod>("release", name)(e).into())
                }
                _ => {}
            }
        }
        let mut owned = claims.owned;
        for p in claims.adopt {
            let name = p.metadata.name.clone().unwrap_or_default();
            match set_controller(&api, &p, Some(&owner), &owner.uid).await {
                Ok(()) => owned.push(p),
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(api_error::<Pod>("adopt", &name)(e).into()),
            }
        }
        Ok(owned)
    }

    async fn revisions(&self, plan: &Plan) -> Result<(), Error> {
        let api = self.api::<ControllerRevision>();
        if let Some(r) = &plan.create_revision {
            let name = r.metadata.name.clone().unwrap_or_default();
            match api.create(r).await {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => self.existing_revision(&api, r).await?,
                Err(e) => return Err(api_error::<ControllerRevision>("create", &name)(e).into()),
            }
        }
        if let Some((name, number)) = &plan.renumber_revision {
            api.patch(name, PatchParams::Merge, &json!({ "revision": number }))
                .await
                .map_err(api_error::<ControllerRevision>("renumber", name))?;
        }
        Ok(())
    }

    /// The revision to create exists already: made by a pass whose result the informer
    /// has not shown yet, or left by an earlier set of the same name (adopted). Another
    /// template under that name is a hash collision.
    async fn existing_revision(
        &self,
        api: &Api<ControllerRevision>,
        wanted: &ControllerRevision,
    ) -> Result<(), Error> {
        let name = wanted.metadata.name.clone().unwrap_or_default();
        let found = api
            .get(&name)
            .await
            .map_err(api_error::<ControllerRevision>("get", &name))?;
        let same = history::template_of(&found) == history::template_of(wanted);
        let owner = identity::set_owner(self.set);
        match controller_ref(&found.metadata) {
            Some(r) if same && r.uid == owner.uid => Ok(()),
            None if same => {
                let mut refs = found.metadata.owner_references.clone().unwrap_or_default();
                refs.push(owner);
                let patch = json!({"metadata": {"ownerReferences": refs,
                    "resourceVersion": found.metadata.resource_version}});
                api.patch(&name, PatchParams::Merge, &patch)
                    .await
                    .map_err(api_error::<ControllerRevision>("adopt", &name))?;
                Ok(())
            }
            _ => {
                let count = self.set.status.as_ref().and_then(|s| s.collision_count);
                let patch = json!({"status": {"collisionCount": count.unwrap_or(0) + 1}});
                self.api::<StatefulSet>()
                    .patch_status(self.set_name(), PatchParams::Merge, &patch)
                    .await
                    .map_err(api_error::<StatefulSet>(
                        "update status of",
                        self.set_name(),
                    ))?;
                Err(Error::RevisionCollision { name })
            }
        }
    }

    /// Owner references as the retention policy says, then the missing claims.
    async fn claims(&self, plan: &Plan) -> Result<(), Error> {
        let api = self.api::<PersistentVolumeClaim>();
        for o in &plan.claim_owners {
            let patch = json!({"metadata": {"ownerReferences": o.owner_references,
                "resourceVersion": o.resource_version}});
            match api.patch(&o.name, PatchParams::Merge, &patch).await {
                Err(e) if !(e.is_conflict() || e.is_not_found()) => {
                    return Err(api_error::<PersistentVolumeClaim>("update", &o.name)(e).into())
                }
                _ => {}
            }
        }
        let results =
            futures::future::join_all(plan.create_claims.iter().map(|c| api.create(c))).await;
        for (c, r) in plan.create_claims.iter().zip(results) {
            self.created("Claim", c.metadata.name.as_deref().unwrap_or_default(), r)?;
        }
        Ok(())
    }

    /// The pods to create, relabel and delete.
    async fn pods(&self, plan: &Plan) -> Result<(), Error> {
        let api = self.api::<Pod>();
        let results =
            futures::future::join_all(plan.create_pods.iter().map(|p| api.create(p))).await;
        for (p, r) in plan.create_pods.iter().zip(results) {
            self.created("Pod", p.metadata.name.as_deref().unwrap_or_default(), r)?;
        }
        for r in &plan.relabel_pods {
            let patch = json!({"metadata": {"labels": r.labels}});
            match api.patch(&r.name, PatchParams::Merge, &patch).await {
                Err(e) if !e.is_not_found() => {
                    return Err(api_error::<Pod>("relabel", &r.name)(e).into())
                }
                _ => {}
            }
        }
        let deletes = plan.delete_pods.iter().map(|d| {
            let dp = DeleteParams {
                precondition_uid: Some(d.uid.clone()).filter(|u| !u.is_empty()),
                ..Default::default()
            };
            let api = api.clone();
            async move { api.delete_with(&d.name, &dp).await }
        });
        let results = futures::future::join_all(deletes).await;
        for (d, r) in plan.delete_pods.iter().zip(results) {
            match r {
                Ok(_) => self.event(
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!(
                        "delete Pod {} in StatefulSet {} successful",
                        d.name,
                        self.set_name()
                    ),
                ),
                // Gone already, or replaced by a pod of the same name (the uid
                // precondition fails): the next pass sees.
                Err(e) if e.is_not_found() || e.code() == tonic::Code::FailedPrecondition => {}
                Err(e) => {
                    self.event(
                        EventType::Warning,
                        "FailedDelete",
                        format!(
                            "delete Pod {} in StatefulSet {} failed error: {e}",
                            d.name,
                            self.set_name()
                        ),
                    );
                    return Err(api_error::<Pod>("delete", &d.name)(e).into());
                }
            }
        }
        Ok(())
    }

    /// Records a create; one that exists already was made by an earlier pass.
    fn created<K>(&self, what: &str, name: &str, r: client::Result<K>) -> Result<(), Error>
    where
        K: ApiObject,
    {
        let set = self.set_name();
        match r {
            Ok(_) => {
                let message = format!("create {what} {name} in StatefulSet {set} successful");
                self.event(EventType::Normal, "SuccessfulCreate", message);
                Ok(())
            }
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => {
                let message =
                    format!("create {what} {name} in StatefulSet {set} failed error: {e}");
                self.event(EventType::Warning, "FailedCreate", message);
                Err(api_error::<K>("create", name)(e).into())
            }
        }
    }

    /// Claims of scaled-down ordinals and revisions beyond the history limit.
    async fn prune(&self, plan: &Plan) -> Result<(), Error> {
        let claims = self.api::<PersistentVolumeClaim>();
        for name in &plan.delete_claims {
            match claims.delete(name, None).await {
                Ok(_) => {
                    let message = format!(
                        "delete Claim {name} in StatefulSet {} successful",
                        self.set_name()
                    );
                    self.event(EventType::Normal, "SuccessfulDelete", message);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(api_error::<PersistentVolumeClaim>("delete", name)(e).into()),
            }
        }
        let revisions = self.api::<ControllerRevision>();
        for name in &plan.delete_revisions {
            match revisions.delete(name, None).await {
                Err(e) if !e.is_not_found() => {
                    return Err(api_error::<ControllerRevision>("delete", name)(e).into())
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn status(&self, plan: &Plan) -> Result<(), Error> {
        let Some(status) = &plan.status else {
            return Ok(());
        };
        match self
            .api::<StatefulSet>()
            .patch_status(
                self.set_name(),
                PatchParams::Merge,
                &json!({ "status": status }),
            )
            .await
        {
            Err(e) if !e.is_not_found() => {
                Err(api_error::<StatefulSet>("update status of", self.set_name())(e).into())
            }
            _ => Ok(()),
        }
    }
}
