//! The cluster's service-account signing key: an ECDSA P-256 key, created once by whichever
//! member gets there first and kept in the store, so every member signs and verifies with
//! the same key and a restart keeps it. With a cluster token it is stored sealed under a
//! key derived from the token, so the etcd API and the data directory hold ciphertext.

use std::time::Duration;

use bytes::Bytes;
use jsonwebtoken::{DecodingKey, EncodingKey};
use raft_store::Store;
use rkube_proto::etcd::RangeRequest;

use crate::storage::{self, Swap};

/// Where the key lives in the store: outside `/registry/`, so no resource API serves it.
pub const KEY_PATH: &str = "/rkube/internal/service-account-signing-key";

pub struct SigningKey {
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The public key (SPKI PEM), for those who verify without the store.
    pub public_pem: String,
}

impl SigningKey {
    /// A fresh key and its PKCS#8 PEM.
    pub fn generate() -> Result<(SigningKey, String), String> {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("generating the signing key: {e}"))?;
        let pem = kp.serialize_pem();
        Ok((Self::from_pem(&pem)?, pem))
    }

    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let kp = rcgen::KeyPair::from_pem(pem).map_err(|e| format!("signing key: {e}"))?;
        let encoding =
            EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| format!("signing key: {e}"))?;
        let public_pem = kp.public_key_pem();
        let decoding = DecodingKey::from_ec_pem(public_pem.as_bytes())
            .map_err(|e| format!("signing key: {e}"))?;
        Ok(SigningKey {
            encoding,
            decoding,
            public_pem,
        })
    }
}

/// The key that seals the signing key in the store, if the cluster has a token.
pub type Wrap = Option<[u8; 32]>;

async fn read(store: &Store, wrap: &Wrap) -> Result<Option<String>, String> {
    let resp = store
        .range(&RangeRequest {
            key: Bytes::from_static(KEY_PATH.as_bytes()),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let Some(kv) = resp.kvs.first() else {
        return Ok(None);
    };
    let plain = match wrap {
        Some(k) if pki::is_sealed(&kv.value) => {
            pki::open(k, KEY_PATH.as_bytes(), &kv.value).map_err(|e| e.to_string())?
        }
        _ if pki::is_sealed(&kv.value) => {
            return Err("the stored signing key is sealed and this member has no token".into())
        }
        _ => kv.value.to_vec(),
    };
    String::from_utf8(plain)
        .map(Some)
        .map_err(|e| format!("stored signing key: {e}"))
}

/// Reads the key, creating it when the cluster has none. Retries until the store answers.
pub async fn load_or_create(store: &Store, wrap: &Wrap) -> SigningKey {
    loop {
        let attempt = async {
            if let Some(pem) = read(store, wrap).await? {
                return SigningKey::from_pem(&pem);
            }
            let (key, pem) = SigningKey::generate()?;
            let value = match wrap {
                Some(k) => {
                    pki::seal(k, KEY_PATH.as_bytes(), pem.as_bytes()).map_err(|e| e.to_string())?
                }
                None => pem.into_bytes(),
            };
            match storage::create(store, KEY_PATH, Bytes::from(value), &Default::default())
                .await
                .map_err(|e| e.to_string())?
            {
                Swap::Done(_) => Ok(key),
                // Another member created it first: use theirs.
                Swap::Lost => Err("created concurrently".to_string()),
            }
        };
        match attempt.await {
            Ok(key) => return key,
            Err(e) => {
                tracing::debug!(error = %e, "service-account signing key not loaded yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, Header, Validation};

    use super::SigningKey;
    use crate::tokens::Claims;

    #[test]
    fn a_stored_key_verifies_what_it_signed_and_another_key_does_not() {
        let (key, pem) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(&pem).unwrap();
        let (other, _) = SigningKey::generate().unwrap();
        let claims = Claims {
            iss: "kubernetes/serviceaccount".into(),
            sub: "system:serviceaccount:a:b".into(),
            ..Default::default()
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key.encoding).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_aud = false;
        let got = jsonwebtoken::decode::<Claims>(&token, &again.decoding, &v).unwrap();
        assert_eq!(got.claims, claims);
        assert!(jsonwebtoken::decode::<Claims>(&token, &other.decoding, &v).is_err());
        // An expired token is refused.
        let expired = Claims {
            exp: Some(1_000),
            ..claims
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &expired, &key.encoding).unwrap();
        assert!(jsonwebtoken::decode::<Claims>(&token, &key.decoding, &v).is_err());
        assert!(SigningKey::from_pem("not a key").is_err());
    }
}
