//! ServiceAccount controller: every namespace that is not terminating has a `default`
//! ServiceAccount; deleting it brings it back.

use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::Api;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::context::Ctx;
use client::runtime::{backoff, Action};

pub(crate) const DEFAULT: &str = "default";

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

pub(crate) async fn run(ctx: Arc<Ctx>) {
    ctx.controller("serviceaccount", &ctx.namespaces)
        .watches(ctx.service_accounts.clone(), namespace_of_sa)
        .concurrency(2)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(ns) = ctx.namespaces.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let sa_key = ObjectKey {
        namespace: key.name.clone(),
        name: DEFAULT.into(),
    };
    let has_default = ctx.service_accounts.get(&sa_key).is_some();
    let Some(sa) = missing_default(&ns, has_default) else {
        return Ok(Action::AwaitChange);
    };
    match Api::<ServiceAccount>::namespaced(ctx.client.clone(), &key.name)
        .create(&sa)
        .await
    {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_already_exists() => Ok(Action::AwaitChange),
        // The namespace went away or started terminating meanwhile.
        Err(e) if e.is_not_found() || e.code() == tonic::Code::PermissionDenied => {
            Ok(Action::AwaitChange)
        }
        Err(e) => Err(e),
    }
}

/// The `default` ServiceAccount a namespace lacks; None when it has one or is
/// terminating.
fn missing_default(ns: &Namespace, has_default: bool) -> Option<ServiceAccount> {
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating || has_default {
        return None;
    }
    Some(ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: ns.metadata.name.clone(),
            ..Default::default()
        },
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn ns(v: Value) -> Namespace {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_live_namespace_gets_a_default_service_account() {
        let live = ns(json!({"metadata": {"name": "shop"}}));
        let rows = [
            ("live, without one", live.clone(), false, true),
            ("live, with one", live, true, false),
            (
                "being deleted",
                ns(
                    json!({"metadata": {"name": "shop", "deletionTimestamp": "2023-11-14T22:13:20Z"}}),
                ),
                false,
                false,
            ),
            (
                "Terminating",
                ns(json!({"metadata": {"name": "shop"}, "status": {"phase": "Terminating"}})),
                false,
                false,
            ),
        ];
        for (name, n, has, want) in rows {
            let sa = missing_default(&n, has);
            assert_eq!(sa.is_some(), want, "{name}");
            if let Some(sa) = sa {
                let m = sa.metadata;
                assert_eq!(
                    (m.name.as_deref(), m.namespace.as_deref()),
                    (Some("default"), Some("shop"))
                );
            }
        }
    }
}
