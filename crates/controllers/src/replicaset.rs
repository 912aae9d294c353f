//! ReplicaSet and ReplicationController controller: keeps `spec.replicas` pods of the
//! template running.
//!
//! It adopts orphans its selector matches and releases pods that stop matching; on scale
//! down it gives up unscheduled and not-ready pods before ready ones; and it remembers the
//! pods it created or deleted until the watch shows them ("expectations"), so a slow
//! watch never makes it create or delete twice.

use client::state::EventType;
use std::sync::Arc;
use std::time::Duration;

use client::informer::{Change, Informer};
use client::reflector::ObjectKey;
use client::{Api, ApiObject, PatchParams};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::json;

use crate::context::Ctx;
use crate::pods::{self, controller_ref};
use client::events::now;
use client::runtime::Expectations;
use client::runtime::{backoff, Action};
use client::selectors::selector_matches;

/// Creates in flight at most, per ReplicaSet and pass (Kubernetes' burst).
const BURST: usize = 500;

/// What this controller reads of a kind that keeps N pods: ReplicaSet and
/// ReplicationController.
pub struct View {
    pub selector: LabelSelector,
    pub replicas: i32,
    pub template: Option<PodTemplateSpec>,
    pub min_ready_seconds: i32,
    /// replicas, fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration
    pub status: (i32, i32, i32, i32, Option<i64>),
}

pub trait Replicated: ApiObject {
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

pub struct ReplicaSetController<K> {
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
pub async fn run<K: Replicated>(ctx: Arc<Ctx>, workers: usize) {
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
pub fn owner_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
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
pub fn pod_from_template(template: &PodTemplateSpec, owner: &OwnerReference, ns: &str) -> Pod {
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
pub async fn set_controller(
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
    async fn reconcile(&self, ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
        let Some(rs) = K::informer(ctx).get(&key) else {
            self.expectations.forget(&key);
            return Ok(Action::AwaitChange);
        };
        let spec = rs.view();
        let meta = rs.metadata();
        let owner = owner_ref(K::API_VERSION, K::KIND, meta);
        let desired = spec.replicas.max(0) as usize;
        let sync = Sync {
            ctx,
            key: &key,
            selector: &spec.selector,
            owner: &owner,
            deleting: meta.deletion_timestamp.is_some(),
        };
        let active = sync.claim_pods().await?;
        if !sync.deleting && self.expectations.satisfied(&key, &ctx.pods) {
            if active.len() < desired {
                let template = spec.template.clone().unwrap_or_default();
                self.create(&sync, &template, desired - active.len(), rs.as_ref())
                    .await?;
            } else if active.len() > desired {
                self.delete(&sync, &active, active.len() - desired, rs.as_ref())
                    .await?;
            }
        }
        let now_s = now().as_second();
        let min_ready = spec.min_ready_seconds;
        let ready = active.iter().filter(|p| pods::is_ready(p)).count() as i32;
        let available = active
            .iter()
            .filter(|p| pods::is_available(p, min_ready, now_s))
            .count() as i32;
        let template_labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let fully_labeled = active
            .iter()
            .filter(|p| {
                let l = p.metadata.labels.clone().unwrap_or_default();
                template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
            })
            .count() as i32;
        let status = json!({
            "replicas": active.len(),
            "fullyLabeledReplicas": fully_labeled,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": meta.generation,
        });
        let same = spec.status
            == (
                active.len() as i32,
                fully_labeled,
                ready,
                available,
                meta.generation,
            );
        if !same {
            Api::<K>::namespaced(ctx.client.clone(), &key.namespace)
                .patch_status(&key.name, PatchParams::Merge, &json!({ "status": status }))
                .await?;
        }
        // Ready pods become available minReadySeconds later: look again then.
        if min_ready > 0 && ready > available {
            return Ok(Action::Requeue(Duration::from_secs(min_ready as u64)));
        }
        Ok(Action::AwaitChange)
    }

    async fn create(
        &self,
        sync: &Sync<'_>,
        template: &PodTemplateSpec,
        n: usize,
        rs: &K,
    ) -> Result<(), client::Error> {
        let api = Api::<Pod>::namespaced(sync.ctx.client.clone(), &sync.key.namespace);
        let n = n.min(BURST);
        let pod = pod_from_template(template, sync.owner, &sync.key.namespace);
        // Slow start: batches of 1, 2, 4, … so a failing create fails once, not n times.
        let mut batch = 1;
        let mut done = 0;
        while done < n {
            let size = batch.min(n - done);
            let results = futures::future::join_all((0..size).map(|_| api.create(&pod))).await;
            let mut first_err = None;
            for r in results {
                match r {
                    Ok(p) => self
                        .expectations
                        .created(sync.key, p.metadata.name.unwrap_or_default()),
                    Err(err) => {
                        first_err.get_or_insert(err);
                    }
                }
            }
            if let Some(err) = first_err {
                sync.ctx.events.record(
                    rs,
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating: {err}"),
                );
                return Err(err);
            }
            done += size;
            batch *= 2;
        }
        sync.ctx.events.record(
            rs,
            EventType::Normal,
            "SuccessfulCreate",
            format!("Created {n} pod(s)"),
        );
        Ok(())
    }

    async fn delete(
        &self,
        sync: &Sync<'_>,
        active: &[Arc<Pod>],
        n: usize,
        rs: &K,
    ) -> Result<(), client::Error> {
        let api = Api::<Pod>::namespaced(sync.ctx.client.clone(), &sync.key.namespace);
        let mut ranked: Vec<&Arc<Pod>> = active.iter().collect();
        ranked.sort_by_key(|p| pods::deletion_rank(p));
        let victims: Vec<String> = ranked
            .iter()
            .take(n)
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        self.expectations
            .deleting(sync.key, victims.iter().cloned());
        let results = futures::future::join_all(victims.iter().map(|v| api.delete(v, None))).await;
        for (v, r) in victims.iter().zip(results) {
            match r {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    self.expectations.not_deleting(sync.key, v);
                    return Err(e);
                }
            }
        }
        sync.ctx.events.record(
            rs,
            EventType::Normal,
            "SuccessfulDelete",
            format!("Deleted {n} pod(s)"),
        );
        Ok(())
    }
}

/// One pass over one ReplicaSet's pods.
pub struct Sync<'a> {
    pub ctx: &'a Ctx,
    pub key: &'a ObjectKey,
    pub selector: &'a LabelSelector,
    pub owner: &'a OwnerReference,
    /// The owner is being deleted: adopt nothing.
    pub deleting: bool,
}

impl Sync<'_> {
    /// The active pods the owner controls, after adopting matching orphans and releasing
    /// owned pods that no longer match.
    pub async fn claim_pods(&self) -> Result<Vec<Arc<Pod>>, client::Error> {
        let api = Api::<Pod>::namespaced(self.ctx.client.clone(), &self.key.namespace);
        let mut owned = Vec::new();
        for p in self.ctx.pods.list_namespace(&self.key.namespace) {
            if !pods::is_active(&p) {
                continue;
            }
            let labels = p.metadata.labels.clone().unwrap_or_default();
            let matches = selector_matches(self.selector, &labels);
            match controller_ref(&p.metadata) {
                Some(r) if r.uid == self.owner.uid => {
                    if matches {
                        owned.push(p);
                    } else if let Err(e) = set_controller(&api, &p, None, &self.owner.uid).await {
                        if !e.is_not_found() {
                            return Err(e);
                        }
                    }
                }
                Some(_) => {}
                None if matches && !self.deleting && !pods::is_deleting(&p) => {
                    match set_controller(&api, &p, Some(self.owner), &self.owner.uid).await {
                        Ok(()) => owned.push(p),
                        Err(e) if e.is_not_found() || e.is_conflict() => {}
                        Err(e) => return Err(e),
                    }
                }
                None => {}
            }
        }
        owned.retain(|p| !pods::is_deleting(p));
        Ok(owned)
    }
}
