//! Token controller: every ServiceAccount has a token Secret (type
//! `kubernetes.io/service-account-token`) whose `data.token` is a signed JWT for it, and a
//! token Secret whose ServiceAccount is gone is deleted, which revokes its token.
//!
//! The controller holds no key: the apiserver signs the token (TokenRequest with a
//! `secret_name`), so the signing key never leaves the control-plane members.
//!
//! [`plan`] decides, from a ServiceAccount or a Secret and what the informers hold; the
//! reconcilers here gather the inputs and make the calls.

use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::runtime::{backoff, key_of, Action};
use client::{Api, DeleteParams};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use rkube_proto::api::CreateTokenRequest;

use crate::context::Ctx;

mod plan;

use plan::{annotation, is_token_of, is_token_secret, SecretPlan, SA_NAME};

pub(crate) async fn run(ctx: Arc<Ctx>) {
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
            c.secrets
                .list_namespace(ns)
                .iter()
                .filter(|s| is_token_of(s, name))
                .map(|s| ObjectKey::of(s.as_ref()))
                .collect()
        }
        Change::Applied(_) => vec![],
    };
    let c = ctx.clone();
    ctx.controller_with_resync("token-secrets", Arc::new(move || c.secrets.keys()))
        .watches(ctx.secrets.clone(), |ch: &Change<Secret>| {
            if is_token_secret(ch.object()) {
                vec![key_of(ch)]
            } else {
                vec![]
            }
        })
        .watches(ctx.service_accounts.clone(), token_secrets_of)
        .concurrency(2)
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
    let secrets = ctx.secrets.list_namespace(&key.namespace);
    let Some(secret) = plan::missing_secret(&sa, &secrets) else {
        return Ok(Action::AwaitChange);
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
    let sa_name = annotation(&secret.metadata, SA_NAME).to_string();
    let sa_key = ObjectKey {
        namespace: key.namespace.clone(),
        name: sa_name.clone(),
    };
    let mut plan = plan::plan_secret(&secret, ctx.service_accounts.get(&sa_key).as_deref());
    if plan == SecretPlan::Delete {
        // The cache may lag a new ServiceAccount: ask the apiserver before deleting.
        let live = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &key.namespace)
            .get_opt(&sa_name)
            .await?;
        plan = plan::plan_secret(&secret, live.as_ref());
    }
    match plan {
        SecretPlan::Nothing => Ok(Action::AwaitChange),
        SecretPlan::Delete => delete_secret(ctx, &key, &secret).await,
        SecretPlan::Fill => fill_secret(ctx, &key, &secret, sa_name).await,
    }
}

/// Deletes `secret`, only if it is still the Secret planned for (its uid); one already
/// gone counts as deleted.
async fn delete_secret(
    ctx: &Ctx,
    key: &ObjectKey,
    secret: &Secret,
) -> Result<Action, client::Error> {
    let dp = DeleteParams {
        precondition_uid: secret.metadata.uid.clone(),
        ..Default::default()
    };
    match Api::<Secret>::namespaced(ctx.client.clone(), &key.namespace)
        .delete_with(&key.name, &dp)
        .await
    {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

/// Asks the apiserver for a token of ServiceAccount `sa_name`, bound to `secret`, and
/// writes it into the Secret.
async fn fill_secret(
    ctx: &Ctx,
    key: &ObjectKey,
    secret: &Secret,
    sa_name: String,
) -> Result<Action, client::Error> {
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
    let updated = plan::filled(secret, &key.namespace, token);
    match Api::<Secret>::namespaced(ctx.client.clone(), &key.namespace)
        .replace(&updated)
        .await
    {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}
