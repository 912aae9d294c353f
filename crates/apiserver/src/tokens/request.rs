//! TokenRequest (`serviceaccounts/<name>/token`): a token for a ServiceAccount, checked
//! against the objects it names at the time it is issued.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Bound, Claims, Ref, Tokens, API_AUDIENCE, ISSUER, LEGACY_ISSUER};
use super::{SA_NAME_ANNOTATION, SECRET_TYPE};
use crate::error::{Error, FieldError, Result};
use crate::object;

/// Kubernetes' bounds: at least ten minutes, an hour when unset.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// 2^32 seconds, Kubernetes' largest accepted value.
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BoundObjectRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    audiences: Vec<String>,
    expiration_seconds: Option<i64>,
    bound_object_ref: Option<BoundObjectRef>,
}

#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    #[serde(default)]
    spec: Spec,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Tokens {
    fn live(&self, resource: &str, ns: &str, name: &str) -> Result<Value> {
        self.cache
            .get(&format!("/registry/core/{resource}/{ns}/{name}"))
            .ok_or_else(|| Error::NotFound {
                resource: resource.into(),
                name: name.into(),
            })?
            .value()
    }

    /// Issues a token for ServiceAccount `ns/name`. `body` is a TokenRequest; with
    /// `secret_name`, the token is the non-expiring, Secret-held kind. Returns the
    /// TokenRequest with `status.token`.
    pub async fn request(
        &self,
        ns: &str,
        name: &str,
        body: &[u8],
        secret_name: &str,
    ) -> Result<Value> {
        let req: TokenRequest = if body.is_empty() {
            TokenRequest::default()
        } else {
            serde_json::from_slice(body)
                .map_err(|e| Error::BadRequest(format!("TokenRequest: {e}")))?
        };
        self.cache.wait_fresh(&self.store).await?;
        let sa = self.live("serviceaccounts", ns, name)?;
        let sa_uid = object::str_of(&sa, "uid").to_string();
        let now = unix_now();
        let (claims, expires) = if !secret_name.is_empty() {
            let claims = self.legacy_claims(ns, name, secret_name, sa_uid, now)?;
            (claims, None)
        } else {
            let (claims, expires) = self.bound_claims(ns, name, &req.spec, sa_uid, now)?;
            (claims, Some(expires))
        };
        let token = self.sign(&claims)?;
        let mut status = json!({ "token": token });
        if let Some(exp) = expires {
            status["expirationTimestamp"] = rfc3339(exp).into();
        }
        Ok(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": rfc3339(now)},
            "spec": {"audiences": claims.aud, "expirationSeconds": expires.map(|e| e - now)},
            "status": status,
        }))
    }

    /// The claims of a non-expiring token held by Secret `ns/secret_name`, which must be
    /// one for ServiceAccount `name`.
    fn legacy_claims(
        &self,
        ns: &str,
        name: &str,
        secret_name: &str,
        sa_uid: String,
        now: i64,
    ) -> Result<Claims> {
        let secret = self.live("secrets", ns, secret_name)?;
        if secret["type"].as_str() != Some(SECRET_TYPE)
            || secret["metadata"]["annotations"][SA_NAME_ANNOTATION].as_str() != Some(name)
        {
            return Err(invalid(
                name,
                FieldError::invalid(
                    "secretName",
                    secret_name,
                    format!(
                        "must be a Secret of type {SECRET_TYPE} annotated {SA_NAME_ANNOTATION}={name}"
                    ),
                ),
            ));
        }
        Ok(Claims {
            iss: LEGACY_ISSUER.into(),
            sub: super::subject(ns, name),
            legacy_namespace: ns.into(),
            legacy_secret: secret_name.into(),
            legacy_sa_name: name.into(),
            legacy_sa_uid: sa_uid,
            // Tokens minted again for a re-created Secret of the same name must differ.
            iat: Some(now),
            jti: Some(object::new_uid()),
            ..Default::default()
        })
    }

    /// The claims of an expiring token for ServiceAccount `ns/name`, bound to the object
    /// `spec` names, if any; and when it expires.
    fn bound_claims(
        &self,
        ns: &str,
        name: &str,
        spec: &Spec,
        sa_uid: String,
        now: i64,
    ) -> Result<(Claims, i64)> {
        let secs = spec
            .expiration_seconds
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        if !(MIN_EXPIRATION_SECONDS..=MAX_EXPIRATION_SECONDS).contains(&secs) {
            return Err(invalid(
                name,
                FieldError::invalid(
                    "spec.expirationSeconds",
                    secs,
                    format!("must be between {MIN_EXPIRATION_SECONDS} (10 minutes) and {MAX_EXPIRATION_SECONDS}"),
                ),
            ));
        }
        let mut bound = Bound {
            namespace: ns.into(),
            serviceaccount: Ref {
                name: name.into(),
                uid: sa_uid,
            },
            ..Default::default()
        };
        if let Some(r) = &spec.bound_object_ref {
            self.bind_object(ns, name, r, &mut bound)?;
        }
        let aud = if spec.audiences.is_empty() {
            vec![API_AUDIENCE.to_string()]
        } else {
            spec.audiences.clone()
        };
        let claims = Claims {
            iss: ISSUER.into(),
            sub: super::subject(ns, name),
            aud,
            exp: Some(now + secs),
            iat: Some(now),
            nbf: Some(now),
            jti: Some(object::new_uid()),
            bound: Some(bound),
            ..Default::default()
        };
        Ok((claims, now + secs))
    }

    /// Binds the token to the Pod or Secret `r` names, which must exist (with its uid, if
    /// `r` gives one). `name` is the ServiceAccount's.
    fn bind_object(
        &self,
        ns: &str,
        name: &str,
        r: &BoundObjectRef,
        bound: &mut Bound,
    ) -> Result<()> {
        let resource = match r.kind.as_str() {
            "Pod" => "pods",
            "Secret" => "secrets",
            other => {
                return Err(invalid(
                    name,
                    FieldError::not_supported(
                        "spec.boundObjectRef.kind",
                        other,
                        &["Pod", "Secret"],
                    ),
                ))
            }
        };
        let obj = self.live(resource, ns, &r.name)?;
        let uid = object::str_of(&obj, "uid").to_string();
        if !r.uid.is_empty() && r.uid != uid {
            return Err(Error::Conflict {
                resource: resource.into(),
                name: r.name.clone(),
                reason: format!("the uid in the request ({}) does not match ({uid})", r.uid),
            });
        }
        let rf = Some(Ref {
            name: r.name.clone(),
            uid,
        });
        if resource == "pods" {
            bound.pod = rf;
        } else {
            bound.secret = rf;
        }
        Ok(())
    }
}

/// A TokenRequest for ServiceAccount `name` that fails validation.
fn invalid(name: &str, e: FieldError) -> Error {
    Error::invalid("TokenRequest", name, vec![e])
}
