//! Garbage collector: cascading deletion along `ownerReferences`.
//!
//! - Background (the default): a dependent whose owners are all gone is deleted; a
//!   reference to a gone owner is dropped from a dependent that still has others.
//! - Foreground: an owner deleted with the `foregroundDeletion` finalizer has its
//!   dependents deleted (foreground too, so the whole tree goes bottom-up), and loses the
//!   finalizer — and so goes — once no dependent with `blockOwnerDeletion` is left.
//! - Orphan: an owner deleted with the `orphan` finalizer has its reference removed from
//!   every dependent, then loses the finalizer.
//!
//! Dependents and owners are the kinds the shared informers hold (pods, ReplicaSets,
//! Deployments, Services, EndpointSlices, StatefulSets with their ControllerRevisions and
//! PersistentVolumeClaims). An owner missing from the informers is looked
//! up live before anything is deleted, so a lagging watch never deletes a dependent of an
//! owner that exists.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use client::informer::{Change, Informer};
use client::reflector::ObjectKey;
use client::{Api, ApiObject, DeleteParams, PatchParams};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use parking_lot::Mutex;
use rkube_proto::api::{GetRequest, TypeRef};
use serde_json::json;

use crate::context::Ctx;
use client::runtime::{backoff, Action};

mod plan;

pub(crate) const FOREGROUND: &str = "foregroundDeletion";
pub(crate) const ORPHAN: &str = "orphan";

/// An object of one of the kinds the collector knows.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct GcKey {
    kind: &'static str,
    key: ObjectKey,
}

impl fmt::Display for GcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.key)
    }
}

const KINDS: &[&str] = &[
    "Pod",
    "ReplicaSet",
    "Deployment",
    "Service",
    "EndpointSlice",
    "StatefulSet",
    "ControllerRevision",
    "PersistentVolumeClaim",
];

fn kind_of(name: &str) -> Option<&'static str> {
    KINDS.iter().find(|k| **k == name).copied()
}

fn meta_of(ctx: &Ctx, k: &GcKey) -> Option<ObjectMeta> {
    fn get<K: ApiObject>(i: &Informer<K>, key: &ObjectKey) -> Option<ObjectMeta> {
        i.get(key).map(|o| o.metadata().clone())
    }
    match k.kind {
        "Pod" => get(&ctx.pods, &k.key),
        "ReplicaSet" => get(&ctx.replicasets, &k.key),
        "Deployment" => get(&ctx.deployments, &k.key),
        "Service" => get(&ctx.services, &k.key),
        "EndpointSlice" => get(&ctx.endpoint_slices, &k.key),
        "StatefulSet" => get(&ctx.statefulsets, &k.key),
        "ControllerRevision" => get(&ctx.controller_revisions, &k.key),
        "PersistentVolumeClaim" => get(&ctx.pvcs, &k.key),
        _ => None,
    }
}

/// Known objects by the uids their ownerReferences name, so finding an owner's
/// dependents costs what it has, not a scan of every cache. Entries may be stale;
/// `dependents_of` checks each against the cache.
#[derive(Default)]
struct Graph {
    by_owner: Mutex<HashMap<String, HashSet<GcKey>>>,
}

impl Graph {
    fn record(&self, k: &GcKey, m: &ObjectMeta) {
        let mut g = self.by_owner.lock();
        for r in m.owner_references.iter().flatten() {
            g.entry(r.uid.clone()).or_default().insert(k.clone());
        }
    }

    fn forget(&self, k: &GcKey, m: &ObjectMeta) {
        let mut g = self.by_owner.lock();
        for r in m.owner_references.iter().flatten() {
            if let Some(set) = g.get_mut(&r.uid) {
                set.remove(k);
                if set.is_empty() {
                    g.remove(&r.uid);
                }
            }
        }
    }

    /// Every known object whose ownerReferences name `uid`.
    fn dependents_of(&self, ctx: &Ctx, uid: &str) -> Vec<(GcKey, ObjectMeta)> {
        let mut g = self.by_owner.lock();
        let Some(set) = g.get_mut(uid) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        set.retain(|k| match meta_of(ctx, k) {
            Some(m) if m.owner_references.iter().flatten().any(|r| r.uid == uid) => {
                out.push((k.clone(), m));
                true
            }
            _ => false,
        });
        if set.is_empty() {
            g.remove(uid);
        }
        out
    }
}

/// Keys to look at when an object changes: itself, its owners (a waiting owner rechecks
/// when a dependent goes), and on deletion its dependents.
fn keys<K: ApiObject>(ctx: &Ctx, graph: &Graph, kind: &'static str, c: &Change<K>) -> Vec<GcKey> {
    let o = c.object();
    let m = o.metadata();
    let ns = m.namespace.clone().unwrap_or_default();
    let me = GcKey {
        kind,
        key: ObjectKey::of(o.as_ref()),
    };
    match c {
        Change::Applied(_) => graph.record(&me, m),
        Change::Deleted(_) => graph.forget(&me, m),
    }
    let mut out = vec![me];
    for r in m.owner_references.iter().flatten() {
        if let Some(k) = kind_of(&r.kind) {
            out.push(GcKey {
                kind: k,
                key: ObjectKey {
                    namespace: ns.clone(),
                    name: r.name.clone(),
                },
            });
        }
    }
    if let Change::Deleted(_) = c {
        let uid = m.uid.clone().unwrap_or_default();
        out.extend(graph.dependents_of(ctx, &uid).into_iter().map(|(k, _)| k));
    }
    out
}

pub(crate) async fn run(ctx: Arc<Ctx>) {
    let graph = Arc::new(Graph::default());
    let c = ctx.clone();
    let every_key = move || {
        let of = |kind: &'static str, keys: Vec<ObjectKey>| {
            keys.into_iter().map(move |key| GcKey { kind, key })
        };
        of("Pod", c.pods.keys())
            .chain(of("ReplicaSet", c.replicasets.keys()))
            .chain(of("Deployment", c.deployments.keys()))
            .chain(of("Service", c.services.keys()))
            .chain(of("EndpointSlice", c.endpoint_slices.keys()))
            .chain(of("StatefulSet", c.statefulsets.keys()))
            .chain(of("ControllerRevision", c.controller_revisions.keys()))
            .chain(of("PersistentVolumeClaim", c.pvcs.keys()))
            .collect()
    };
    macro_rules! source {
        ($inf:ident, $kind:literal) => {{
            let (c, g) = (ctx.clone(), graph.clone());
            move |ch: &Change<_>| keys(&c, &g, $kind, ch)
        }};
    }
    ctx.controller_with_resync("garbage-collector", Arc::new(every_key))
        .watches(ctx.pods.clone(), source!(pods, "Pod"))
        .watches(ctx.replicasets.clone(), source!(replicasets, "ReplicaSet"))
        .watches(ctx.deployments.clone(), source!(deployments, "Deployment"))
        .watches(ctx.services.clone(), source!(services, "Service"))
        .watches(
            ctx.endpoint_slices.clone(),
            source!(endpoint_slices, "EndpointSlice"),
        )
        .watches(
            ctx.statefulsets.clone(),
            source!(statefulsets, "StatefulSet"),
        )
        .watches(
            ctx.controller_revisions.clone(),
            source!(controller_revisions, "ControllerRevision"),
        )
        .watches(ctx.pvcs.clone(), source!(pvcs, "PersistentVolumeClaim"))
        .concurrency(2)
        .run(
            move |key, ctx| {
                let graph = graph.clone();
                async move { reconcile(&ctx, &graph, key).await }
            },
            backoff,
            ctx.clone(),
        )
        .await
}

/// Whether the owner a reference names exists (with that uid).
async fn owner_exists(ctx: &Ctx, r: &OwnerReference, ns: &str) -> Result<bool, client::Error> {
    if let Some(kind) = kind_of(&r.kind) {
        let k = GcKey {
            kind,
            key: ObjectKey {
                namespace: ns.to_string(),
                name: r.name.clone(),
            },
        };
        if meta_of(ctx, &k).is_some_and(|m| m.uid.as_deref() == Some(r.uid.as_str())) {
            return Ok(true);
        }
    }
    // Not in the caches (or of another kind): ask the apiserver before deciding.
    let ty = TypeRef {
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
    };
    for namespace in [ns, ""] {
        let req = GetRequest {
            r#type: Some(ty.clone()),
            namespace: namespace.to_string(),
            name: r.name.clone(),
        };
        match ctx.client.get(req).await {
            Ok(o) => {
                let v: serde_json::Value = serde_json::from_slice(&o.json).unwrap_or_default();
                return Ok(v["metadata"]["uid"].as_str() == Some(r.uid.as_str()));
            }
            Err(e) if e.is_not_found() => {
                // A kind this server does not serve is not a reason to delete anything.
                if e.to_string().contains("no kind") {
                    return Ok(true);
                }
                return Ok(false);
            }
            Err(e) if e.code() == tonic::Code::InvalidArgument => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Runs `$call` on the typed Api of `$k`'s kind, as a `Result<(), _>`.
macro_rules! with_api {
    ($ctx:expr, $k:expr, |$api:ident| $call:expr) => {{
        let (c, ns) = ($ctx.client.clone(), &$k.key.namespace);
        match $k.kind {
            "Pod" => {
                let $api = Api::<Pod>::namespaced(c, ns);
                $call.await.map(|_| ())
            }
            "ReplicaSet" => {
                let $api = Api::<ReplicaSet>::namespaced(c, ns);
                $call.await.map(|_| ())
            }
            "Deployment" => {
                let $api = Api::<Deployment>::namespaced(c, ns);
                $call.await.map(|_| ())
            }
            "Service" => {
                let $api = Api::<Service>::namespaced(c, ns);
                $call.await.map(|_| ())
            }
            "EndpointSlice" => {
                let $api = Api::<EndpointSlice>::namespaced(c, ns);
                $call.await.map(|_| ())
            }
            "StatefulSet" => {
                let $api = Api::<StatefulSet>::namespaced(c, ns);
                $call.await.map(|_| ())
            }
            "ControllerRevision" => {
                let $api = Api::<ControllerRevision>::namespaced(c, ns);
                $call.await.map(|_| ())
            }
            "PersistentVolumeClaim" => {
                let $api = Api::<PersistentVolumeClaim>::namespaced(c, ns);
                $call.await.map(|_| ())
            }
            _ => Ok(()),
        }
    }};
}

async fn delete(ctx: &Ctx, k: &GcKey, uid: &str, policy: &str) -> Result<(), client::Error> {
    let dp = DeleteParams {
        propagation_policy: Some(policy.into()),
        precondition_uid: Some(uid.into()),
        ..Default::default()
    };
    match with_api!(ctx, k, |api| api.delete_with(&k.key.name, &dp)) {
        Err(e) if e.is_not_found() || e.code() == tonic::Code::FailedPrecondition => Ok(()),
        other => other,
    }
}

/// A merge patch on metadata, guarded by the object's resourceVersion.
async fn patch_meta(
    ctx: &Ctx,
    k: &GcKey,
    m: &ObjectMeta,
    meta: serde_json::Value,
) -> Result<(), client::Error> {
    let mut meta = meta;
    meta["resourceVersion"] = json!(m.resource_version);
    let patch = json!({ "metadata": meta });
    match with_api!(ctx, k, |api| api.patch(
        &k.key.name,
        PatchParams::Merge,
        &patch
    )) {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Serves an owner's finalizer, or collects a dependent whose owners are gone, as
/// [`plan`] decides.
async fn reconcile(ctx: &Ctx, graph: &Graph, k: GcKey) -> Result<Action, client::Error> {
    let Some(m) = meta_of(ctx, &k) else {
        return Ok(Action::AwaitChange);
    };
    // Objects listed before the feeds subscribed reach the graph here (every key is
    // reconciled once at start).
    graph.record(&k, &m);
    let uid = m.uid.clone().unwrap_or_default();
    if m.deletion_timestamp.is_some() {
        let deps = graph.dependents_of(ctx, &uid);
        if let Some(f) = plan::finalizing(&m, &deps) {
            finalize(ctx, &k, &m, &deps, f).await?;
            return Ok(Action::AwaitChange);
        }
    }
    let ns = k.key.namespace.clone();
    let mut alive = Vec::new();
    for r in m.owner_references.iter().flatten() {
        alive.push(owner_exists(ctx, r, &ns).await?);
    }
    match plan::owners(&m, &alive) {
        plan::Owners::Collect => delete(ctx, &k, &uid, "Background").await?,
        plan::Owners::Keep(refs) => {
            patch_meta(ctx, &k, &m, json!({"ownerReferences": refs})).await?
        }
        plan::Owners::Nothing => {}
    }
    Ok(Action::AwaitChange)
}

async fn finalize(
    ctx: &Ctx,
    k: &GcKey,
    m: &ObjectMeta,
    deps: &[(GcKey, ObjectMeta)],
    f: plan::Finalizing<GcKey>,
) -> Result<(), client::Error> {
    let meta_of_dep = |dk: &GcKey| deps.iter().find(|(k, _)| k == dk).map(|(_, m)| m);
    match f {
        plan::Finalizing::Orphan {
            dependents,
            finalizers,
        } => {
            for (dk, refs) in dependents {
                if let Some(dm) = meta_of_dep(&dk) {
                    patch_meta(ctx, &dk, dm, json!({"ownerReferences": refs})).await?;
                }
            }
            patch_meta(ctx, k, m, json!({"finalizers": finalizers})).await
        }
        plan::Finalizing::Foreground {
            delete: doomed,
            finalizers,
        } => {
            for dk in doomed {
                let uid = meta_of_dep(&dk)
                    .and_then(|m| m.uid.clone())
                    .unwrap_or_default();
                delete(ctx, &dk, &uid, "Foreground").await?;
            }
            match finalizers {
                Some(f) => patch_meta(ctx, k, m, json!({"finalizers": f})).await,
                None => Ok(()),
            }
        }
    }
}
