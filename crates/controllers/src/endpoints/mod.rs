//! Endpoints and EndpointSlice controller: for every Service with a selector, the pods it
//! selects — ready ones in `addresses`, the others in `notReadyAddresses` — with named
//! target ports resolved against each pod's container ports. The EndpointSlices carry the
//! same endpoints with ready/serving/terminating conditions, at most 100 per slice.
//!
//! [`plan`] decides; `reconcile` makes the calls.

use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::Api;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::context::Ctx;
use client::runtime::{backoff, Action};

pub(crate) mod plan;

use plan::Member;

pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub(crate) const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub(crate) const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

fn services_of_namespace(ctx: &Ctx, c: &Change<Pod>) -> Vec<ObjectKey> {
    let ns = c.object().metadata.namespace.clone().unwrap_or_default();
    ctx.services
        .list_namespace(&ns)
        .iter()
        .map(|s| ObjectKey::of(s.as_ref()))
        .collect()
}

pub(crate) async fn run(ctx: Arc<Ctx>, workers: usize) {
    let c = ctx.clone();
    ctx.controller("endpoints", &ctx.services)
        .watches(ctx.pods.clone(), move |ch| services_of_namespace(&c, ch))
        .concurrency(workers)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let eps_api = Api::<Endpoints>::namespaced(ctx.client.clone(), &key.namespace);
    let slices_api = Api::<EndpointSlice>::namespaced(ctx.client.clone(), &key.namespace);
    let svc = ctx.services.get(&key);
    let selector_set = svc
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    let Some(svc) = svc.filter(|_| selector_set) else {
        // No Service (or no selector): what this controller wrote goes.
        if ctx.services.get(&key).is_none() {
            match eps_api.delete(&key.name, None).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(Action::AwaitChange);
    };
    let ms = plan::members(&svc, &ctx.pods.list_namespace(&key.namespace));
    let labels = svc.metadata.labels.clone();
    let want = Endpoints {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            labels: labels.clone(),
            ..Default::default()
        },
        subsets: Some(plan::subsets(&ms)),
    };
    match eps_api.get_opt(&key.name).await? {
        None => {
            eps_api.create(&want).await?;
        }
        Some(cur)
            if cur.subsets.clone().unwrap_or_default()
                != want.subsets.clone().unwrap_or_default()
                || cur.metadata.labels != labels =>
        {
            let mut next = want.clone();
            next.metadata.resource_version = cur.metadata.resource_version.clone();
            eps_api.replace(&next).await?;
        }
        Some(_) => {}
    }
    sync_slices(&slices_api, &svc, &ms).await?;
    Ok(Action::AwaitChange)
}

/// Brings the Service's EndpointSlices in line with `ms`.
async fn sync_slices(
    api: &Api<EndpointSlice>,
    svc: &Service,
    ms: &[Member],
) -> Result<(), client::Error> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let selector = format!("{SERVICE_NAME_LABEL}={name}");
    let existing = api
        .list(&client::ListParams::default().labels(&selector))
        .await?
        .items;
    plan::slice_changes(plan::slices(svc, ms), &existing)
        .apply(api)
        .await
}

impl plan::SliceChanges {
    /// Creates, replaces and deletes the slices through `api` (a slice already gone is
    /// deleted).
    pub(crate) async fn apply(&self, api: &Api<EndpointSlice>) -> Result<(), client::Error> {
        for s in &self.create {
            api.create(s).await?;
        }
        for s in &self.replace {
            api.replace(s).await?;
        }
        for n in &self.delete {
            match api.delete(n, None).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
