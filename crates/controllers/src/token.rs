//! Token controller: every ServiceAccount has a token Secret (type
//! `kubernetes.io/service-account-token`) whose `data.token` is a signed JWT for it, and a
//! token Secret whose ServiceAccount is gone is deleted, which revokes its token.
//!
//! The controller holds no key: the apiserver signs the token (TokenRequest with a
//! `secret_name`), so the signing key never leaves the control-plane members.

use std::collections::BTreeMap;
use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::{Api, DeleteParams};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use rkube_proto::api::CreateTokenRequest;

use crate::context::Ctx;
use client::runtime::{backoff, key_of, Action, Controller};

pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub const SA_NAME: &str = "kubernetes.io/service-account.name";
pub const SA_UID: &str = "kubernetes.io/service-account.uid";

fn annotation<'a>(m: &'a ObjectMeta, key: &str) -> &'a str {
    m.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map_or("", String::as_str)
}

fn is_token_secret(s: &Secret) -> bool {
    s.type_.as_deref() == Some(SECRET_TYPE)
}

/// The token Secrets of namespace `ns` that name ServiceAccount `sa`.
fn token_secrets(ctx: &Ctx, ns: &str, sa: &str) -> Vec<Arc<Secret>> {
    ctx.secrets
        .list_namespace(ns)
        .into_iter()
        .filter(|s| is_token_secret(s) && annotation(&s.metadata, SA_NAME) == sa)
        .collect()
}

/// The name of the Secret made for a ServiceAccount: fixed per ServiceAccount uid, so a
/// retry or a second worker gets AlreadyExists instead of making a second Secret.
fn secret_name(sa: &ServiceAccount) -> String {
    let uid = sa.metadata.uid.as_deref().unwrap_or_default();
    let suffix: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(5)
        .collect();
    format!(
        "{}-token-{suffix}",
        sa.metadata.name.as_deref().unwrap_or_default()
    )
}

pub async fn run(ctx: Arc<Ctx>) {
    tokio::join!(run_service_accounts(ctx.clone()), run_secrets(ctx));
}

/// Every ServiceAccount gets a token Secret; a deleted token Secret sends its
/// ServiceAccount to get a new one.
async fn run_service_accounts(ctx: Arc<Ctx>) {
    ctx.controller("token-serviceaccounts", &ctx.service_accounts)
        .watches(ctx.secrets.clone(), |ch: &Change<Secret>| match ch {
            Change::Deleted(s) if is_token_secret(s) => vec![ObjectKey {
                namespace: s.metadata.namespace.clone().unwrap_or_default(),
                name: annotation(&s.metadata, SA_NAME).to_string(),
            }],
            _ => vec![],
        })
        .concurrency(2)
        .run(
            |key, ctx| async move { ensure_secret(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

/// Token Secrets are kept in step with their ServiceAccount; a deleted ServiceAccount
/// sends its Secrets to be deleted.
async fn run_secrets(ctx: Arc<Ctx>) {
    let c = ctx.clone();
    let token_secrets_of = move |ch: &Change<ServiceAccount>| match ch {
        Change::Deleted(sa) => {
            let ns = sa.metadata.namespace.as_deref().unwrap_or_default();
            let name = sa.metadata.name.as_deref().unwrap_or_default();
            token_secrets(&c, ns, name)
                .iter()
                .map(|s| ObjectKey::of(s.as_ref()))
                .collect()
        }
        Change::Applied(_) => vec![],
    };
    let c = ctx.clone();
    Controller::with_resync("token-secrets", Arc::new(move || c.secrets.keys()))
        .watches(ctx.secrets.clone(), |ch: &Change<Secret>| {
            if is_token_secret(ch.object()) {
                vec![key_of(ch)]
            } else {
                vec![]
            }
        })
        .watches(ctx.service_accounts.clone(), token_secrets_of)
        .concurrency(2)
        .metrics(&ctx.metrics)
        .run(
            |key, ctx| async move { sync_secret(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

/// A ServiceAccount without a token Secret gets one; the Secret's own sync fills it.
async fn ensure_secret(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(sa) = ctx.service_accounts.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if sa.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let uid = sa.metadata.uid.clone().unwrap_or_default();
    let has = token_secrets(ctx, &key.namespace, &key.name)
        .iter()
        .any(|s| annotation(&s.metadata, SA_UID) == uid);
    if has {
        return Ok(Action::AwaitChange);
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&sa)),
            namespace: Some(key.namespace.clone()),
            annotations: Some(BTreeMap::from([
                (SA_NAME.to_string(), key.name.clone()),
                (SA_UID.to_string(), uid),
            ])),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        ..Default::default()
    };
    match Api::<Secret>::namespaced(ctx.client.clone(), &key.namespace)
        .create(&secret)
        .await
    {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_already_exists() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

/// Deletes a token Secret whose ServiceAccount is gone (or was re-created: another uid);
/// fills one that has no token yet.
async fn sync_secret(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(secret) = ctx.secrets.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if !is_token_secret(&secret) || secret.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let sa_name = annotation(&secret.metadata, SA_NAME).to_string();
    let want_uid = annotation(&secret.metadata, SA_UID).to_string();
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &key.namespace);
    let sa_key = ObjectKey {
        namespace: key.namespace.clone(),
        name: sa_name.clone(),
    };
    let matches = |sa: Option<&ServiceAccount>| {
        sa.is_some_and(|sa| want_uid.is_empty() || sa.metadata.uid.as_deref() == Some(&want_uid))
    };
    if !matches(ctx.service_accounts.get(&sa_key).as_deref()) {
        // The cache may lag a new ServiceAccount: ask the apiserver before deleting.
        let live = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &key.namespace)
            .get_opt(&sa_name)
            .await?;
        if !matches(live.as_ref()) {
            let dp = DeleteParams {
                precondition_uid: secret.metadata.uid.clone(),
                ..Default::default()
            };
            return match secrets.delete_with(&key.name, &dp).await {
                Ok(_) => Ok(Action::AwaitChange),
                Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
                Err(e) => Err(e),
            };
        }
    }
    let has_token = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .is_some_and(|t| !t.0.is_empty());
    if has_token {
        return Ok(Action::AwaitChange);
    }
    let resp = ctx
        .client
        .create_token(CreateTokenRequest {
            namespace: key.namespace.clone(),
            name: sa_name,
            json: Default::default(),
            secret_name: key.name.clone(),
        })
        .await?;
    let tr: serde_json::Value =
        serde_json::from_slice(&resp.json).map_err(|source| client::Error::Decode {
            kind: "TokenRequest".into(),
            source,
        })?;
    let token = tr["status"]["token"].as_str().unwrap_or_default();
    let mut updated = (*secret).clone();
    let data = updated.data.get_or_insert_with(Default::default);
    data.insert("token".into(), ByteString(token.as_bytes().to_vec()));
    data.insert(
        "namespace".into(),
        ByteString(key.namespace.as_bytes().to_vec()),
    );
    match secrets.replace(&updated).await {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}
