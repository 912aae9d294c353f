//! The root CA publisher, as kube-controller-manager's `root-ca-cert-publisher`: every
//! namespace that is not terminating has the ConfigMap `kube-root-ca.crt` whose `ca.crt`
//! is the cluster CA, so a pod can verify the API server (its token volume projects it).
//! A deleted or changed ConfigMap is put back. A certificate of the same CA key counts as
//! the same CA: every member derives the CA certificate from the cluster token, and the
//! bytes differ between members, so a new leader must not rewrite every namespace.

use std::collections::BTreeMap;
use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::Api;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::context::Ctx;

pub(crate) const NAME: &str = "kube-root-ca.crt";
const KEY: &str = "ca.crt";

/// What a namespace's ConfigMap needs.
#[derive(Debug, PartialEq)]
enum Write {
    Create(ConfigMap),
    /// The stored ConfigMap, with its data put right (its resourceVersion kept).
    Update(ConfigMap),
}

fn namespace_of(c: &Change<ConfigMap>) -> Vec<ObjectKey> {
    let cm = c.object();
    match cm.metadata.name.as_deref() {
        Some(NAME) => vec![ObjectKey {
            namespace: String::new(),
            name: cm.metadata.namespace.clone().unwrap_or_default(),
        }],
        _ => vec![],
    }
}

/// The CA to publish, with the fingerprint of its key.
struct RootCa {
    pem: String,
    fingerprint: String,
}

pub(crate) async fn run(ctx: Arc<Ctx>, ca_pem: String) {
    let fingerprint = match pki::ca_fingerprint(&ca_pem) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "the root CA to publish is not a certificate; not publishing");
            return ctx.shutdown.cancelled().await;
        }
    };
    let ca = Arc::new(RootCa {
        pem: ca_pem,
        fingerprint,
    });
    ctx.controller("root-ca-cert-publisher", &ctx.namespaces)
        .watches(ctx.config_maps.clone(), namespace_of)
        .concurrency(2)
        .run(
            move |key, ctx| {
                let ca = ca.clone();
                async move { reconcile(&ctx, key, &ca).await }
            },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey, ca: &RootCa) -> Result<Action, client::Error> {
    let Some(ns) = ctx.namespaces.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let cm_key = ObjectKey {
        namespace: key.name.clone(),
        name: NAME.into(),
    };
    let stored = ctx.config_maps.get(&cm_key);
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &key.name);
    let result = match plan(&ns, stored.as_deref(), ca) {
        None => return Ok(Action::AwaitChange),
        Some(Write::Create(cm)) => api.create(&cm).await.map(|_| ()),
        Some(Write::Update(cm)) => api.replace(&cm).await.map(|_| ()),
    };
    match result {
        Ok(()) => Ok(Action::AwaitChange),
        // Someone else made it first, or changed it meanwhile: the watch brings it back.
        Err(e) if e.is_already_exists() || e.is_conflict() => Ok(Action::AwaitChange),
        // The namespace went away or started terminating meanwhile.
        Err(e) if e.is_not_found() || e.code() == tonic::Code::PermissionDenied => {
            Ok(Action::AwaitChange)
        }
        Err(e) => Err(e),
    }
}

/// Whether `cm` holds exactly one certificate of the CA `ca`.
fn holds(cm: &ConfigMap, ca: &RootCa) -> bool {
    let data = cm.data.as_ref();
    let one = data.is_some_and(|d| d.len() == 1) && cm.binary_data.is_none();
    let pem = data.and_then(|d| d.get(KEY));
    one && pem.is_some_and(|p| pki::ca_fingerprint(p).ok().as_ref() == Some(&ca.fingerprint))
}

/// Decides, for namespace `ns` whose ConfigMap is `stored`: nothing for a terminating
/// namespace or a ConfigMap that holds the CA; else create or correct it.
fn plan(ns: &Namespace, stored: Option<&ConfigMap>, ca: &RootCa) -> Option<Write> {
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return None;
    }
    let data = BTreeMap::from([(KEY.to_string(), ca.pem.clone())]);
    match stored {
        Some(cm) if holds(cm, ca) => None,
        Some(cm) => {
            let mut cm = cm.clone();
            cm.data = Some(data);
            cm.binary_data = None;
            Some(Write::Update(cm))
        }
        None => Some(Write::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(NAME.into()),
                namespace: ns.metadata.name.clone(),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn ns(v: Value) -> Namespace {
        serde_json::from_value(v).unwrap()
    }

    fn cm(data: Value) -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": NAME, "namespace": "shop",
            "resourceVersion": "7"}, "data": data}))
        .unwrap()
    }

    fn root_ca_of(token: &pki::ClusterToken) -> RootCa {
        let pem = pki::ClusterCa::from_token(token)
            .unwrap()
            .cert_pem()
            .to_string();
        RootCa {
            fingerprint: pki::ca_fingerprint(&pem).unwrap(),
            pem,
        }
    }

    #[test]
    fn every_live_namespace_gets_the_cluster_ca() {
        let token = pki::ClusterToken::generate().unwrap();
        let ca = root_ca_of(&token);
        let other = root_ca_of(&pki::ClusterToken::generate().unwrap());
        let live = ns(json!({"metadata": {"name": "shop"}}));
        let gone =
            ns(json!({"metadata": {"name": "shop", "deletionTimestamp": "2023-11-14T22:13:20Z"}}));
        let ending = ns(json!({"metadata": {"name": "shop"}, "status": {"phase": "Terminating"}}));
        let right = cm(json!({"ca.crt": ca.pem}));
        let wrong = cm(json!({"ca.crt": other.pem}));
        let garbage = cm(json!({"ca.crt": "forged"}));
        let extra = cm(json!({"ca.crt": ca.pem, "more": "x"}));
        let rows: [(&str, &Namespace, Option<&ConfigMap>, &str); 7] = [
            ("live, without one", &live, None, "create"),
            ("live, right", &live, Some(&right), "none"),
            ("live, another CA", &live, Some(&wrong), "update"),
            ("live, not a certificate", &live, Some(&garbage), "update"),
            ("live, with more keys", &live, Some(&extra), "update"),
            ("being deleted", &gone, None, "none"),
            ("Terminating", &ending, Some(&wrong), "none"),
        ];
        for (name, n, stored, want) in rows {
            let got = plan(n, stored, &ca);
            let kind = match &got {
                None => "none",
                Some(Write::Create(_)) => "create",
                Some(Write::Update(_)) => "update",
            };
            assert_eq!(kind, want, "{name}");
            if let Some(Write::Create(c) | Write::Update(c)) = got {
                assert_eq!(c.data.unwrap()[KEY], ca.pem, "{name}");
                assert_eq!(c.metadata.namespace.as_deref(), Some("shop"), "{name}");
                if want == "update" {
                    assert_eq!(c.metadata.resource_version.as_deref(), Some("7"), "{name}");
                }
            }
        }
        // The CA derived again from the same token (as another member does) is the same
        // CA, whatever its certificate's bytes.
        let again = root_ca_of(&token);
        assert!(plan(&live, Some(&cm(json!({"ca.crt": again.pem}))), &ca).is_none());
    }
}
