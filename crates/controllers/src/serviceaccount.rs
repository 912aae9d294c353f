//! ServiceAccount controller: every namespace that is not terminating has a `default`
//! ServiceAccount; deleting it brings it back.

use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::Api;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::context::Ctx;
use crate::worker::{self, Requeue};

pub const DEFAULT: &str = "default";

fn namespace_of_sa(c: &Change<ServiceAccount>) -> Vec<ObjectKey> {
    let sa = c.object();
    match (c, sa.metadata.name.as_deref()) {
        (Change::Deleted(_), Some(DEFAULT)) => vec![ObjectKey {
            namespace: String::new(),
            name: sa.metadata.namespace.clone().unwrap_or_default(),
        }],
        _ => vec![],
    }
}

pub async fn run(ctx: Arc<Ctx>) {
    let q = worker::queue();
    let c1 = ctx.clone();
    let ns_feed = worker::feed(
        ctx.namespaces.clone(),
        q.clone(),
        worker::own_key,
        move || c1.namespaces.keys(),
    );
    let c2 = ctx.clone();
    let sa_feed = worker::feed(
        ctx.service_accounts.clone(),
        q.clone(),
        namespace_of_sa,
        move || c2.namespaces.keys(),
    );
    let work = worker::run("serviceaccount", q, 2, move |key| {
        let ctx = ctx.clone();
        async move { reconcile(&ctx, key).await }
    });
    tokio::join!(ns_feed, sa_feed, work);
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Requeue, client::Error> {
    let Some(ns) = ctx.namespaces.get(&key) else {
        return Ok(None);
    };
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(None);
    }
    let sa_key = ObjectKey {
        namespace: key.name.clone(),
        name: DEFAULT.into(),
    };
    if ctx.service_accounts.get(&sa_key).is_some() {
        return Ok(None);
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(key.name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<ServiceAccount>::namespaced(ctx.client.clone(), &key.name)
        .create(&sa)
        .await
    {
        Ok(_) => Ok(None),
        Err(e) if e.is_already_exists() => Ok(None),
        // The namespace went away or started terminating meanwhile.
        Err(e) if e.is_not_found() || e.code() == tonic::Code::PermissionDenied => Ok(None),
        Err(e) => Err(e),
    }
}
