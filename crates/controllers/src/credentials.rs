//! Per-controller credentials, as kube-controller-manager's
//! `--use-service-account-credentials`: each controller writes as its own ServiceAccount
//! `kube-system/<controller>` (bound to the `system:controller:<controller>` role), so RBAC
//! holds each one to what it needs and the audit log names the controller that acted.
//! The shared informers keep reading as the controller-manager itself.
//!
//! Tokens come from the TokenRequest API and are renewed at two thirds of their lifetime.

use std::time::Duration;

use client::{Api, Client};
use k8s_openapi::api::core::v1::ServiceAccount;
use rkube_proto::api::CreateTokenRequest;
use serde_json::json;

pub(crate) const NAMESPACE: &str = "kube-system";

/// How long a controller's token lives.
const TOKEN_SECONDS: u64 = 3600;

/// Every controller that writes, by the name of its ServiceAccount and role.
pub(crate) const CONTROLLERS: &[&str] = &[
    "replicaset-controller",
    "replication-controller",
    "deployment-controller",
    "service-account-controller",
    "token-controller",
    "endpoint-controller",
    "node-lifecycle-controller",
    "generic-garbage-collector",
    "pod-garbage-collector",
    "job-controller",
    "cronjob-controller",
    "daemon-set-controller",
    "statefulset-controller",
    "namespace-controller",
    "horizontal-pod-autoscaler",
    "certificate-controller",
    "resourcequota-controller",
    "clusterrole-aggregation-controller",
    "root-ca-cert-publisher",
    "persistent-volume-binder",
    "local-path-provisioner",
];

/// A token for `kube-system/<name>`, creating the ServiceAccount first when missing.
async fn token(base: &Client, name: &str) -> Result<String, client::Error> {
    let sas = Api::<ServiceAccount>::namespaced(base.clone(), NAMESPACE);
    if sas.get_opt(name).await?.is_none() {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": NAMESPACE}}))
                .unwrap_or_default();
        match sas.create(&sa).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    let request = json!({"spec": {"expirationSeconds": TOKEN_SECONDS}});
    let o = base
        .create_token(CreateTokenRequest {
            namespace: NAMESPACE.into(),
            name: name.into(),
            json: serde_json::to_vec(&request).unwrap_or_default().into(),
            ..Default::default()
        })
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&o.json).unwrap_or_default();
    v["status"]["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| client::Error::Config("TokenRequest answered without a token".into()))
}

/// A client that acts as controller `name`, retrying until the apiserver gives a token.
pub(crate) async fn client_for(base: &Client, name: &'static str) -> Client {
    let mut wait = Duration::from_millis(100);
    loop {
        match token(base, name).await.and_then(|t| base.with_token(t)) {
            Ok(c) => return c,
            Err(e) => {
                tracing::warn!(controller = name, error = %e, "no credentials yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Renews the tokens of `clients` (controller name, client) until dropped.
pub(crate) async fn keep_renewed(base: Client, clients: Vec<(&'static str, Client)>) {
    let every = Duration::from_secs(TOKEN_SECONDS * 2 / 3);
    loop {
        tokio::time::sleep(every).await;
        for (name, c) in &clients {
            let mut wait = Duration::from_millis(100);
            loop {
                match token(&base, name).await {
                    Ok(t) => {
                        c.set_token(t);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(controller = name, error = %e, "token not renewed; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }
}
