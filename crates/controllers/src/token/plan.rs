//! What the token controller decides, as pure functions of a ServiceAccount or a Secret
//! and what the informers hold: the token Secret a ServiceAccount lacks, and whether a
//! token Secret is deleted, filled, or left alone. [`super`] gathers the inputs and makes
//! the calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

pub(crate) const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub(crate) const SA_NAME: &str = "kubernetes.io/service-account.name";
pub(crate) const SA_UID: &str = "kubernetes.io/service-account.uid";

pub(crate) fn annotation<'a>(m: &'a ObjectMeta, key: &str) -> &'a str {
    m.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map_or("", String::as_str)
}

pub(crate) fn is_token_secret(s: &Secret) -> bool {
    s.type_.as_deref() == Some(SECRET_TYPE)
}

/// Whether `s` is a token Secret that names ServiceAccount `sa`.
pub(crate) fn is_token_of(s: &Secret, sa: &str) -> bool {
    is_token_secret(s) && annotation(&s.metadata, SA_NAME) == sa
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

/// The token Secret ServiceAccount `sa` lacks, given the Secrets of its namespace; `None`
/// when one names it with its uid, or when it is being deleted. The Secret is created
/// without a token: its own sync fills it.
pub(crate) fn missing_secret(sa: &ServiceAccount, secrets: &[Arc<Secret>]) -> Option<Secret> {
    if sa.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let name = sa.metadata.name.clone().unwrap_or_default();
    let uid = sa.metadata.uid.clone().unwrap_or_default();
    let has = secrets
        .iter()
        .any(|s| is_token_of(s, &name) && annotation(&s.metadata, SA_UID) == uid);
    if has {
        return None;
    }
    Some(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(sa)),
            namespace: sa.metadata.namespace.clone(),
            annotations: Some(BTreeMap::from([
                (SA_NAME.to_string(), name),
                (SA_UID.to_string(), uid),
            ])),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        ..Default::default()
    })
}

/// What to do with one Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecretPlan {
    /// Not a token Secret, being deleted, or holding a token already.
    Nothing,
    /// Its ServiceAccount is gone, or was re-created (another uid): delete it, which
    /// revokes its token.
    Delete,
    /// Ask the apiserver for a token for its ServiceAccount and write it in.
    Fill,
}

/// What to do with `secret`, whose ServiceAccount (the one its annotation names) is `sa`.
pub(crate) fn plan_secret(secret: &Secret, sa: Option<&ServiceAccount>) -> SecretPlan {
    if !is_token_secret(secret) || secret.metadata.deletion_timestamp.is_some() {
        return SecretPlan::Nothing;
    }
    let want_uid = annotation(&secret.metadata, SA_UID);
    let matches =
        sa.is_some_and(|sa| want_uid.is_empty() || sa.metadata.uid.as_deref() == Some(want_uid));
    if !matches {
        return SecretPlan::Delete;
    }
    let has_token = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .is_some_and(|t| !t.0.is_empty());
    if has_token {
        SecretPlan::Nothing
    } else {
        SecretPlan::Fill
    }
}

/// `secret` with `token`, and the namespace it is valid in, in its data.
pub(crate) fn filled(secret: &Secret, namespace: &str, token: &str) -> Secret {
    let mut updated = secret.clone();
    let data = updated.data.get_or_insert_with(Default::default);
    data.insert("token".into(), ByteString(token.as_bytes().to_vec()));
    data.insert(
        "namespace".into(),
        ByteString(namespace.as_bytes().to_vec()),
    );
    updated
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
