//! ServiceAccount tokens: JWTs signed (ES256) with the cluster key of [`key`], in the two
//! shapes Kubernetes has.
//!
//! - Bound tokens come from a TokenRequest ([`request`]): they expire, name their audiences
//!   and may be bound to a Pod or Secret, and die with it.
//! - Secret-based tokens are minted for the token controller and stored in a Secret of type
//!   `kubernetes.io/service-account-token`; they are valid while that Secret holds them.
//!
//! [`verify`] authenticates both as `system:serviceaccount:<namespace>:<name>`.

pub mod key;
pub mod request;
pub mod verify;

use std::sync::{Arc, OnceLock};

use jsonwebtoken::{Algorithm, Header};
use raft_store::Store;
use serde::{Deserialize, Serialize};

use crate::cache::WatchCache;
use crate::error::{Error, Result};
use key::SigningKey;

/// `iss` of bound tokens, and the audience the apiserver accepts.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
pub const API_AUDIENCE: &str = ISSUER;
/// The audience of the tokens the apiserver presents to node agents, and its subject.
pub const NODE_AUDIENCE: &str = "rkube-node";
pub const APISERVER_USER: &str = "system:apiserver";
/// `iss` of Secret-based tokens, as Kubernetes writes it.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// The Secret type and annotations the token controller works with.
pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
pub const SA_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// A name and uid, as bound tokens carry them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The private claims of a bound token (`kubernetes.io`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Bound {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
}

/// The claims of both token shapes.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(
        rename = "kubernetes.io",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bound: Option<Bound>,
    #[serde(
        rename = "kubernetes.io/serviceaccount/namespace",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub legacy_namespace: String,
    #[serde(
        rename = "kubernetes.io/serviceaccount/secret.name",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub legacy_secret: String,
    #[serde(
        rename = "kubernetes.io/serviceaccount/service-account.name",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub legacy_sa_name: String,
    #[serde(
        rename = "kubernetes.io/serviceaccount/service-account.uid",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub legacy_sa_uid: String,
}

pub fn subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Signs and verifies service-account tokens on one apiserver member.
pub struct Tokens {
    key: OnceLock<SigningKey>,
    pub(crate) cache: Arc<WatchCache>,
    pub(crate) store: Store,
    wrap: key::Wrap,
}

impl Tokens {
    pub fn new(cache: Arc<WatchCache>, store: Store, wrap: key::Wrap) -> Arc<Tokens> {
        Arc::new(Tokens {
            key: OnceLock::new(),
            cache,
            store,
            wrap,
        })
    }

    /// Loads (or, on a new cluster, creates) the signing key; returns once it is loaded.
    pub async fn load_key(&self) {
        let key = key::load_or_create(&self.store, &self.wrap).await;
        let _ = self.key.set(key);
        tracing::info!("service-account signing key loaded");
    }

    pub fn is_ready(&self) -> bool {
        self.key.get().is_some()
    }

    fn key(&self) -> Result<&SigningKey> {
        self.key.get().ok_or_else(|| {
            Error::Unavailable("the service-account signing key is not loaded yet".into())
        })
    }

    pub fn public_pem(&self) -> Result<String> {
        Ok(self.key()?.public_pem.clone())
    }

    /// A token for calling a node agent on behalf of the apiserver: audience
    /// [`NODE_AUDIENCE`], valid for a minute.
    pub fn node_token(&self) -> Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.sign(&Claims {
            iss: ISSUER.into(),
            sub: APISERVER_USER.into(),
            aud: vec![NODE_AUDIENCE.into()],
            exp: Some(now + 60),
            iat: Some(now),
            jti: Some(crate::object::new_uid()),
            ..Default::default()
        })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            claims,
            &self.key()?.encoding,
        )
        .map_err(|e| Error::Internal(format!("signing a token: {e}")))
    }
}
