//! Bootstrap tokens, as kubeadm and the kubelet's TLS bootstrap use them: a token
//! `<id>.<secret>` is valid while Secret `kube-system/bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token` holds that secret, allows authentication and has not
//! expired. Its user is `system:bootstrap:<id>`, in group `system:bootstrappers`.
//!
//! Until RBAC arrives, [`BootstrapperScope`] keeps bootstrappers to what the
//! `system:node-bootstrapper` role grants: making and reading CertificateSigningRequests.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use raft_store::Store;
use serde_json::Value;

use crate::auth::UserInfo;
use crate::auth::{bearer_token, Attributes, Authenticator, Authorizer, Credentials, Decision};
use crate::cache::WatchCache;
use crate::error::{Error, Result};
use crate::object;

pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

pub struct BootstrapTokens {
    pub cache: Arc<WatchCache>,
    pub store: Store,
}

/// `(id, secret)` of a token in the bootstrap format: `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn parse_token(t: &str) -> Option<(&str, &str)> {
    let (id, secret) = t.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

fn data(secret: &Value, key: &str) -> Option<String> {
    use base64::Engine;
    let b64 = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The user a bootstrap token Secret authenticates as, if `secret` is its value.
fn verify(s: &Value, id: &str, secret: &str, now: Timestamp) -> Result<Option<UserInfo>> {
    if s["type"] != SECRET_TYPE
        || object::is_deleting(s)
        || data(s, "token-id").as_deref() != Some(id)
        || !data(s, "token-secret").is_some_and(|v| same(&v, secret))
    {
        return Ok(None);
    }
    if data(s, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(Error::Unauthorized(format!(
            "bootstrap token {id} is not for authentication"
        )));
    }
    if let Some(exp) = data(s, "expiration") {
        match exp.parse::<Timestamp>() {
            Ok(t) if t > now => {}
            Ok(_) => {
                return Err(Error::Unauthorized(format!(
                    "bootstrap token {id} expired at {exp}"
                )))
            }
            Err(_) => {
                return Err(Error::Unauthorized(format!(
                    "bootstrap token {id} has an unreadable expiration {exp:?}"
                )))
            }
        }
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    for g in data(s, "auth-extra-groups").unwrap_or_default().split(',') {
        let g = g.trim();
        // Only more specific bootstrapper groups, as Kubernetes allows.
        if g.starts_with("system:bootstrappers:") && !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    groups.push("system:authenticated".into());
    Ok(Some(UserInfo {
        name: format!("system:bootstrap:{id}"),
        uid: String::new(),
        groups,
    }))
}

#[async_trait]
impl Authenticator for BootstrapTokens {
    async fn authenticate(&self, creds: &Credentials<'_>) -> Result<Option<UserInfo>> {
        let Some((id, secret)) = bearer_token(creds.metadata).and_then(parse_token) else {
            return Ok(None);
        };
        let key = format!("/registry/core/secrets/kube-system/bootstrap-token-{id}");
        let mut found = self.cache.get(&key);
        if found.is_none() {
            // A token made a moment ago may not have reached this member's cache yet.
            self.cache.wait_fresh(&self.store).await?;
            found = self.cache.get(&key);
        }
        match found {
            Some(c) => {
                let now = object::now()
                    .parse::<Timestamp>()
                    .map_err(|e| Error::Internal(format!("the clock: {e}")))?;
                verify(&c.value()?, id, secret, now)
            }
            None => Ok(None),
        }
    }
}

/// Bootstrappers may create and read CertificateSigningRequests, and nothing else.
pub struct BootstrapperScope;

impl Authorizer for BootstrapperScope {
    fn authorize(&self, a: &Attributes<'_>) -> Decision {
        if !a.user.groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP) {
            return Decision::NoOpinion;
        }
        let csr = a.group == super::GROUP
            && a.resource == "certificatesigningrequests"
            && a.subresource.is_empty()
            && matches!(a.verb, "create" | "get" | "list" | "watch");
        if csr {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::json;

    use super::*;

    fn secret(fields: &[(&str, &str)]) -> Value {
        let e = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let data: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), e(v).into()))
            .collect();
        json!({"type": SECRET_TYPE, "metadata": {"name": "bootstrap-token-abcdef"}, "data": data})
    }

    #[test]
    fn a_token_authenticates_while_its_secret_says_so() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let base = [
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
            (
                "auth-extra-groups",
                "system:bootstrappers:worker,system:masters",
            ),
            ("expiration", "2026-01-01T01:00:00Z"),
        ];
        let u = verify(&secret(&base), "abcdef", "0123456789abcdef", now)
            .unwrap()
            .unwrap();
        assert_eq!(u.name, "system:bootstrap:abcdef");
        assert_eq!(
            u.groups,
            vec![
                "system:bootstrappers",
                "system:bootstrappers:worker",
                "system:authenticated"
            ]
        );
        assert!(verify(&secret(&base), "abcdef", "0123456789abcdeX", now)
            .unwrap()
            .is_none());
        let later: Timestamp = "2026-01-01T02:00:00Z".parse().unwrap();
        let e = verify(&secret(&base), "abcdef", "0123456789abcdef", later).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let mut no_auth = base;
        no_auth[2].1 = "false";
        assert!(verify(&secret(&no_auth), "abcdef", "0123456789abcdef", now).is_err());
        assert_eq!(
            parse_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse_token("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse_token("abcdef.short"), None);
    }
}
