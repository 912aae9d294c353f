//! PersistentVolume binder, as kube-controller-manager's `persistentvolume-binder`: binds
//! each Pending claim to the smallest Available volume that fits it (or to the volume it,
//! or the volume, is pre-bound to), marks volumes whose claims are gone Released, and
//! deletes them when their reclaim policy is Delete. [`local_path`] is the built-in
//! `rkube.io/local-path` provisioner that makes volumes for claims no volume fits.
//!
//! [`plan`] decides; the controllers here make the calls. Binding writes the volume's
//! claimRef first, with its resourceVersion: that compare-and-swap is the lock that keeps
//! two claims off one volume (the loser gets a Conflict and tries again).

pub(crate) mod local_path;
pub(crate) mod plan;

use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::Api;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;

use self::plan::{ClaimPlan, ClaimWorld, VolumePhase, VolumePlan};
use crate::context::{api_error, ApiError, Ctx};

/// Why a reconcile failed. Every failure is retried with back-off; a Conflict on the
/// volume's claimRef means another claim won it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A call to the apiserver failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The claim binder and the volume reclaimer, until shutdown.
pub(crate) async fn run(ctx: Arc<Ctx>) {
    let (a, b) = (ctx.clone(), ctx.clone());
    let claims = ctx
        .controller("persistentvolume-binder-claims", &ctx.pvcs)
        .watches(ctx.pvs.clone(), move |c| claims_of_volume(&a, c))
        .watches(ctx.storage_classes.clone(), move |_| pending_claims(&b))
        .run(
            |key, ctx| async move { reconcile_claim(&ctx, key).await },
            backoff,
            ctx.clone(),
        );
    let volumes = ctx
        .controller("persistentvolume-binder-volumes", &ctx.pvs)
        .watches(ctx.pvcs.clone(), volume_of_claim)
        .run(
            |key, ctx| async move { reconcile_volume(&ctx, key).await },
            backoff,
            ctx.clone(),
        );
    tokio::join!(claims, volumes);
}

/// A volume change concerns the claim it refers to, and every claim still waiting (a
/// volume became Available).
fn claims_of_volume(ctx: &Ctx, c: &Change<PersistentVolume>) -> Vec<ObjectKey> {
    let mut keys = pending_claims(ctx);
    if let Some(r) = c.object().spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        keys.push(ObjectKey {
            namespace: r.namespace.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
        });
    }
    keys
}

fn pending_claims(ctx: &Ctx) -> Vec<ObjectKey> {
    ctx.pvcs
        .list()
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound"))
        .map(|c| ObjectKey::of(c.as_ref()))
        .collect()
}

fn volume_of_claim(c: &Change<PersistentVolumeClaim>) -> Vec<ObjectKey> {
    c.object()
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|n| !n.is_empty())
        .map(|name| ObjectKey {
            namespace: String::new(),
            name,
        })
        .into_iter()
        .collect()
}

fn cluster_key(name: &str) -> ObjectKey {
    ObjectKey {
        namespace: String::new(),
        name: name.to_string(),
    }
}

/// The class a claim names, from the informer.
pub(crate) fn class_of(ctx: &Ctx, claim: &PersistentVolumeClaim) -> Option<Arc<StorageClass>> {
    let name = plan::claim_class(claim);
    (!name.is_empty())
        .then(|| ctx.storage_classes.get(&cluster_key(name)))
        .flatten()
}

async fn reconcile_claim(ctx: &Ctx, key: ObjectKey) -> Result<Action, Error> {
    let Some(claim) = ctx.pvcs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let volumes = ctx.pvs.list();
    let refs: Vec<&PersistentVolume> = volumes.iter().map(|v| v.as_ref()).collect();
    let class = class_of(ctx, &claim);
    let selected = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(plan::SELECTED_NODE))
        .map(|n| {
            let labels = ctx
                .nodes
                .get(&cluster_key(n))
                .and_then(|node| node.metadata.labels.clone())
                .unwrap_or_default();
            (n.as_str(), labels)
        });
    let world = ClaimWorld {
        volumes: &refs,
        class: class.as_deref(),
        selected_node: selected,
    };
    match plan::plan_claim(&claim, &world) {
        ClaimPlan::Wait => Ok(Action::AwaitChange),
        ClaimPlan::Bind { volume } => {
            bind(ctx, &claim, &volume).await?;
            Ok(Action::AwaitChange)
        }
    }
}

/// Binds `claim` to volume `name`: the volume's claimRef (compare-and-swap on its
/// resourceVersion), the claim's volumeName and annotation, then both statuses.
async fn bind(ctx: &Ctx, claim: &PersistentVolumeClaim, name: &str) -> Result<(), Error> {
    let ns = claim.metadata.namespace.clone().unwrap_or_default();
    let claim_name = claim.metadata.name.clone().unwrap_or_default();
    let pvs = Api::<PersistentVolume>::all(ctx.client.clone());
    let Some(mut pv) = ctx.pvs.get(&cluster_key(name)).map(|p| (*p).clone()) else {
        return Ok(());
    };
    let spec = pv.spec.get_or_insert_with(Default::default);
    if spec.claim_ref.as_ref().and_then(|r| r.uid.as_deref()) != claim.metadata.uid.as_deref() {
        spec.claim_ref = Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: Some(ns.clone()),
            name: Some(claim_name.clone()),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            ..Default::default()
        });
        pv = pvs
            .replace(&pv)
            .await
            .map_err(api_error::<PersistentVolume>("claim", name))?;
    }
    if plan::VolumePhase::Bound.as_str()
        != pv
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("")
    {
        pv.status.get_or_insert_with(Default::default).phase =
            Some(VolumePhase::Bound.as_str().into());
        pv = pvs
            .replace_status(&pv)
            .await
            .map_err(api_error::<PersistentVolume>("update status of", name))?;
    }
    bind_claim(ctx, claim, &pv).await
}

/// The claim's half of a bind: volumeName and the bind-completed annotation, then status.
async fn bind_claim(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> Result<(), Error> {
    let ns = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    let api = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns);
    let mut c = claim.clone();
    let volume = pv.metadata.name.clone();
    let annotated = c
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(plan::BIND_COMPLETED))
        .is_some();
    let spec = c.spec.get_or_insert_with(Default::default);
    if spec.volume_name != volume || !annotated {
        spec.volume_name = volume;
        c.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(plan::BIND_COMPLETED.into(), "yes".into());
        c = api
            .replace(&c)
            .await
            .map_err(api_error::<PersistentVolumeClaim>("bind", &name))?;
    }
    let ps = pv.spec.clone().unwrap_or_default();
    let status = c.status.get_or_insert_with(Default::default);
    status.phase = Some("Bound".into());
    status.capacity = ps.capacity;
    status.access_modes = ps.access_modes;
    api.replace_status(&c)
        .await
        .map_err(api_error::<PersistentVolumeClaim>(
            "update status of",
            &name,
        ))?;
    Ok(())
}

async fn reconcile_volume(ctx: &Ctx, key: ObjectKey) -> Result<Action, Error> {
    let Some(pv) = ctx.pvs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let claim = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .and_then(|r| {
            ctx.pvcs.get(&ObjectKey {
                namespace: r.namespace.clone().unwrap_or_default(),
                name: r.name.clone().unwrap_or_default(),
            })
        });
    let pvs = Api::<PersistentVolume>::all(ctx.client.clone());
    match plan::plan_volume(&pv, claim.as_deref()) {
        VolumePlan::Nothing => {}
        VolumePlan::Phase(p) => {
            let mut v = (*pv).clone();
            v.status.get_or_insert_with(Default::default).phase = Some(p.as_str().into());
            match pvs.replace_status(&v).await {
                Err(e) if !e.is_not_found() => {
                    return Err(
                        api_error::<PersistentVolume>("update status of", &key.name)(e).into(),
                    )
                }
                _ => {}
            }
        }
        VolumePlan::Delete => match pvs.delete(&key.name, None).await {
            Err(e) if !e.is_not_found() => {
                return Err(api_error::<PersistentVolume>("delete", &key.name)(e).into())
            }
            _ => {}
        },
    }
    Ok(Action::AwaitChange)
}
