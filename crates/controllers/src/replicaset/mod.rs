//! ReplicaSet and ReplicationController controller: keeps `spec.replicas` pods of the
//! template running.
//!
//! It adopts orphans its selector matches and releases pods that stop matching; on scale
//! down it gives up unscheduled and not-ready pods before ready ones; and it remembers the
//! pods it created or deleted until the watch shows them ("expectations"), so a slow
//! watch never makes it create or delete twice.
//!
//! [`plan`] decides; `reconcile` makes the calls.

use client::state::EventType;
use std::sync::Arc;

use client::informer::{Change, Informer};
use client::reflector::ObjectKey;
use client::{Api, ApiObject, PatchParams};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::json;

use crate::context::Ctx;
use crate::pods::controller_ref;
use client::events::now;
use client::runtime::Expectations;
use client::runtime::{backoff, Action};

mod plan;
use client::selectors::selector_matches;

/// What this controller reads of a kind that keeps N pods: ReplicaSet and
/// ReplicationController.
pub(crate) struct View {
    pub selector: LabelSelector,
    pub replicas: i32,
    pub template: Option<PodTemplateSpec>,
    pub min_ready_seconds: i32,
    /// replicas, fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration
    pub status: (i32, i32, i32, i32, Option<i64>),
}

pub(crate) trait Replicated: ApiObject {
    fn informer(ctx: &Ctx) -> &Arc<Informer<Self>>;
    fn view(&self) -> View;
}

impl Replicated for ReplicaSet {
    fn informer(ctx: &Ctx) -> &Arc<Informer<Self>> {
        &ctx.replicasets
    }
    fn view(&self) -> View {
        let st = self.status.clone().unwrap_or_default();
        View {
            selector: self.spec.selector.clone(),
            replicas: self.spec.replicas.unwrap_or(1),
            template: self.spec.template.clone(),
            min_ready_seconds: self.spec.min_ready_seconds.unwrap_or(0),
            status: (
                st.replicas,
                st.fully_labeled_replicas.unwrap_or(0),
                st.ready_replicas.unwrap_or(0),
                st.available_replicas.unwrap_or(0),
                st.observed_generation,
            ),
        }
    }
}

impl Replicated for ReplicationController {
    fn informer(ctx: &Ctx) -> &Arc<Informer<Self>> {
        &ctx.replication_controllers
    }
    fn view(&self) -> View {
        let spec = self.spec.clone().unwrap_or_default();
        let st = self.status.clone().unwrap_or_default();
        // An RC without a selector selects its template's labels.
        let labels = spec
            .selector
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| spec.template.as_ref()?.metadata.as_ref()?.labels.clone());
        View {
            selector: LabelSelector {
                match_labels: labels,
                match_expressions: None,
            },
            replicas: spec.replicas.unwrap_or(1),
            template: spec.template.clone(),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            status: (
                st.replicas,
                st.fully_labeled_replicas.unwrap_or(0),
                st.ready_replicas.unwrap_or(0),
                st.available_replicas.unwrap_or(0),
                st.observed_generation,
            ),
        }
    }
}

pub(crate) struct ReplicaSetController<K> {
    expectations: Expectations,
    _k: std::marker::PhantomData<fn() -> K>,
}

impl<K> Default for ReplicaSetController<K> {
    fn default() -> Self {
        ReplicaSetController {
            expectations: Expectations::default(),
            _k: std::marker::PhantomData,
        }
    }
}

/// The ReplicaSet keys a pod change concerns: its controller, or for an orphan every
/// ReplicaSet of its namespace that selects it.
fn owners<K: Replicated>(ctx: &Ctx, c: &Change<Pod>) -> Vec<ObjectKey> {
    let p = c.object();
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    match controller_ref(&p.metadata) {
        Some(r) if r.kind == K::KIND => vec![ObjectKey {
            namespace: ns,
            name: r.name.clone(),
        }],
        Some(_) => vec![],
        None => {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            K::informer(ctx)
                .list_namespace(&ns)
                .iter()
                .filter(|rs| selector_matches(&rs.view().selector, &labels))
                .map(|rs| ObjectKey::of(rs.as_ref()))
                .collect()
        }
    }
}

/// Runs the controller for ReplicaSets (`K = ReplicaSet`) or ReplicationControllers.
pub(crate) async fn run<K: Replicated>(ctx: Arc<Ctx>, workers: usize) {
    let this = Arc::new(ReplicaSetController::<K>::default());
    let c = ctx.clone();
    ctx.controller(K::KIND, K::informer(&ctx))
        .watches(ctx.pods.clone(), move |ch| owners::<K>(&c, ch))
        .concurrency(workers)
        .run(
            move |key, ctx| {
                let this = this.clone();
                async move { this.reconcile(&ctx, key).await }
            },
            backoff,
            ctx.clone(),
        )
        .await
}

/// The controller reference a ReplicaSet puts on its pods.
pub(crate) fn owner_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod from a template, owned by `owner`.
pub(crate) fn pod_from_template(
    template: &PodTemplateSpec,
    owner: &OwnerReference,
    ns: &str,
) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.name)),
            namespace: Some(ns.to_string()),
            labels: tm.labels,
            annotations: tm.annotations,
            owner_references: Some(vec![owner.clone()]),
            finalizers: tm.finalizers,
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Adds (`Some`) or removes (`None`) a controller reference on a pod, guarded by the pod's
/// resourceVersion.
pub(crate) async fn set_controller(
    pods: &Api<Pod>,
    p: &Pod,
    owner: Option<&OwnerReference>,
    uid: &str,
) -> client::Result<()> {
    let mut refs: Vec<OwnerReference> = p
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != uid)
        .cloned()
        .collect();
    if let Some(o) = owner {
        refs.push(o.clone());
    }
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": p.metadata.resource_version,
    }});
    pods.patch(
        p.metadata.name.as_deref().unwrap_or_default(),
        PatchParams::Merge,
        &patch,
    )
    .await
    .map(|_| ())
}

impl<K: Replicated> ReplicaSetController<K> {
    /// Claims the pods, decides, and carries the decision out.
    async fn reconcile(&self, ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
        let Some(rs) = K::informer(ctx).get(&key) else {
            self.expectations.forget(&key);
            return Ok(Action::AwaitChange);
        };
        let view = rs.view();
        let meta = rs.metadata();
        let owner = owner_ref(K::API_VERSION, K::KIND, meta);
        let deleting = meta.deletion_timestamp.is_some();
        let pods_api = Api::<Pod>::namespaced(ctx.client.clone(), &key.namespace);
        let found = ctx.pods.list_namespace(&key.namespace);
        let claims = plan::claims(&found, &view.selector, &owner.uid, deleting);
        let active = claim(&pods_api, claims, &owner).await?;
        let met = self.expectations.satisfied(&key, &ctx.pods);
        let scale = plan::scale(&active, view.replicas.max(0) as usize, deleting, met);
        if scale.create > 0 {
            let template = view.template.clone().unwrap_or_default();
            let pod = pod_from_template(&template, &owner, &key.namespace);
            self.create(ctx, &key, &pods_api, &pod, scale.create, rs.as_ref())
                .await?;
        }
        if !scale.delete.is_empty() {
            self.delete(ctx, &key, &pods_api, scale.delete, rs.as_ref())
                .await?;
        }
        let (status, requeue) = plan::status(&view, &active, meta.generation, now().as_second());
        if let Some(status) = status {
            Api::<K>::namespaced(ctx.client.clone(), &key.namespace)
                .patch_status(&key.name, PatchParams::Merge, &json!({ "status": status }))
                .await?;
        }
        Ok(Action::requeue_after(requeue))
    }

    /// Creates `n` copies of `pod` in slow-start batches; the first failure stops it.
    async fn create(
        &self,
        ctx: &Ctx,
        key: &ObjectKey,
        api: &Api<Pod>,
        pod: &Pod,
        n: usize,
        rs: &K,
    ) -> Result<(), client::Error> {
        for size in plan::slow_start(n) {
            let results = futures::future::join_all((0..size).map(|_| api.create(pod))).await;
            let mut first_err = None;
            for r in results {
                match r {
                    Ok(p) => self
                        .expectations
                        .created(key, p.metadata.name.unwrap_or_default()),
                    Err(err) => {
                        first_err.get_or_insert(err);
                    }
                }
            }
            if let Some(err) = first_err {
                let message = format!("Error creating: {err}");
                ctx.events
                    .record(rs, EventType::Warning, "FailedCreate", message);
                return Err(err);
            }
        }
        let message = format!("Created {n} pod(s)");
        ctx.events
            .record(rs, EventType::Normal, "SuccessfulCreate", message);
        Ok(())
    }

    /// Deletes the pods named `victims` (one already gone counts as deleted).
    async fn delete(
        &self,
        ctx: &Ctx,
        key: &ObjectKey,
        api: &Api<Pod>,
        victims: Vec<String>,
        rs: &K,
    ) -> Result<(), client::Error> {
        self.expectations.deleting(key, victims.iter().cloned());
        let results = futures::future::join_all(victims.iter().map(|v| api.delete(v, None))).await;
        for (v, r) in victims.iter().zip(results) {
            match r {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    self.expectations.not_deleting(key, v);
                    return Err(e);
                }
            }
        }
        let message = format!("Deleted {} pod(s)", victims.len());
        ctx.events
            .record(rs, EventType::Normal, "SuccessfulDelete", message);
        Ok(())
    }
}

/// Releases and adopts as `claims` says; the active pods the owner then controls. A pod
/// gone or changed meanwhile is left for the next pass.
async fn claim(
    api: &Api<Pod>,
    claims: plan::Claims,
    owner: &OwnerReference,
) -> Result<Vec<Arc<Pod>>, client::Error> {
    for p in &claims.release {
        match set_controller(api, p, None, &owner.uid).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let mut owned = claims.owned;
    for p in claims.adopt {
        match set_controller(api, &p, Some(owner), &owner.uid).await {
            Ok(()) => owned.push(p),
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(owned)
}
