//! Authenticating service-account tokens: the signature, issuer and expiry, then the
//! objects the token names — the ServiceAccount with the same uid, and the Secret or Pod it
//! is bound to — must still exist, so deleting any of them revokes the token.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};

use super::{Claims, Tokens, API_AUDIENCE, ISSUER, LEGACY_ISSUER};
use crate::auth::{bearer_token, Authenticator, Credentials, UserInfo};
use crate::error::{Error, Result};

/// Who a verified token speaks for.
struct Identity<'a> {
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
}

fn identity(c: &Claims) -> Result<Identity<'_>> {
    if c.iss == LEGACY_ISSUER {
        return Ok(Identity {
            namespace: &c.legacy_namespace,
            name: &c.legacy_sa_name,
            uid: &c.legacy_sa_uid,
        });
    }
    if !c.aud.iter().any(|a| a == API_AUDIENCE) {
        return Err(invalid(format!(
            "the token's audiences {:?} do not include {API_AUDIENCE:?}",
            c.aud
        )));
    }
    let b = c
        .bound
        .as_ref()
        .ok_or_else(|| invalid("the token has no kubernetes.io claims".into()))?;
    Ok(Identity {
        namespace: &b.namespace,
        name: &b.serviceaccount.name,
        uid: &b.serviceaccount.uid,
    })
}

fn invalid(reason: String) -> Error {
    Error::Unauthorized(format!("invalid service account token: {reason}"))
}

impl Tokens {
    /// Verifies an ES256 JWT. `Ok(None)`: not a token of this kind.
    pub async fn verify(&self, token: &str) -> Result<Option<UserInfo>> {
        match jsonwebtoken::decode_header(token) {
            Ok(h) if h.alg == Algorithm::ES256 => {}
            _ => return Ok(None),
        }
        let mut v = Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_aud = false;
        v.set_issuer(&[ISSUER, LEGACY_ISSUER]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key()?.decoding, &v)
            .map_err(|e| invalid(e.to_string()))?
            .claims;
        let id = identity(&claims)?;
        // The objects may be newer than this member's cache: re-check after catching up.
        if self.check_objects(&claims, &id, token).is_err() {
            self.cache.wait_fresh(&self.store).await?;
            self.check_objects(&claims, &id, token)?;
        }
        Ok(Some(UserInfo {
            name: super::subject(id.namespace, id.name),
            uid: id.uid.to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", id.namespace),
                "system:authenticated".into(),
            ],
        }))
    }

    fn check_objects(&self, c: &Claims, id: &Identity<'_>, token: &str) -> Result<()> {
        let ns = id.namespace;
        let uid_of = |resource: &str, name: &str| -> Option<(String, serde_json::Value)> {
            let v = self
                .cache
                .get(&format!("/registry/core/{resource}/{ns}/{name}"))?
                .value()
                .ok()?;
            Some((crate::object::str_of(&v, "uid").to_string(), v))
        };
        match uid_of("serviceaccounts", id.name) {
            Some((uid, _)) if uid == id.uid => {}
            Some((uid, _)) => {
                return Err(invalid(format!(
                    "service account {ns}/{} has uid {uid}, not {}",
                    id.name, id.uid
                )))
            }
            None => {
                return Err(invalid(format!(
                    "service account {ns}/{} has been deleted",
                    id.name
                )))
            }
        }
        if c.iss == LEGACY_ISSUER {
            let stored = uid_of("secrets", &c.legacy_secret).and_then(|(_, s)| {
                let b64 = s["data"]["token"].as_str()?.to_string();
                base64::engine::general_purpose::STANDARD.decode(b64).ok()
            });
            if stored.as_deref() != Some(token.as_bytes()) {
                return Err(invalid(format!(
                    "the token is no longer held by secret {ns}/{}",
                    c.legacy_secret
                )));
            }
            return Ok(());
        }
        let b = c.bound.as_ref().expect("checked by identity");
        for (resource, r) in [("pods", &b.pod), ("secrets", &b.secret)] {
            let Some(r) = r else { continue };
            match uid_of(resource, &r.name) {
                Some((uid, _)) if uid == r.uid => {}
                _ => {
                    return Err(invalid(format!(
                        "the token is bound to {resource} {ns}/{} (uid {}), which no longer exists",
                        r.name, r.uid
                    )))
                }
            }
        }
        Ok(())
    }
}

/// The service-account token authenticator of the chain.
pub struct ServiceAccountTokens(pub Arc<Tokens>);

#[async_trait]
impl Authenticator for ServiceAccountTokens {
    async fn authenticate(&self, creds: &Credentials<'_>) -> Result<Option<UserInfo>> {
        match bearer_token(creds.metadata) {
            Some(t) => self.0.verify(t).await,
            None => Ok(None),
        }
    }
}
