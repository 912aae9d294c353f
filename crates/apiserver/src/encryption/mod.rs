//! Encryption at rest, as kube-apiserver's `--encryption-provider-config`: an
//! `EncryptionConfiguration` names, per resource, the providers that seal values before they
//! reach the store.
//!
//! The first provider (and its first key) seals every write; the keys of all providers open
//! what they sealed, recognised by the prefix each stored value carries
//! (`k8s:enc:aesgcm:v1:<key name>:`), so a key is rotated by listing the new one first and
//! keeping the old one until [`rewrite_stale`] has re-sealed every value. Values without the
//! `k8s:enc:` prefix are plaintext and are always read as such (see [`identity`]).
//!
//! Only [`rewrite`] knows the store; the rest depends on nothing but the RustCrypto AEADs.

mod aesgcm;
mod config;
mod identity;
mod resource;
mod rewrite;
mod secretbox;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::generic_array::typenum::Unsigned;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, Nonce, OsRng, Payload};
use bytes::Bytes;
use resource::Resource;
pub use rewrite::{rewrite_stale, rewrite_stale_in};

/// What went wrong with encryption at rest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read. Not retryable until the file is there.
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid. `field` is the path of the offending field, as
    /// `resources[0].providers[1].aesgcm.keys[0].secret`. Not retryable until it is fixed.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The configuration in `path` is invalid. Not retryable until it is fixed.
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// A stored value was sealed with a provider and key (`prefix`) that the configuration
    /// of its resource does not have: the key was removed before every value was rewritten.
    /// Not retryable until the key is configured again.
    #[error("{etcd_key}: the stored value is encrypted with {prefix}, which is not configured for this resource")]
    UnknownKey { etcd_key: String, prefix: String },
    /// A stored value did not authenticate under the key its prefix names: different key
    /// material under the same name, a tampered value, or (aesgcm) a value copied from
    /// another etcd key. Not retryable.
    #[error("{etcd_key}: the value stored under {prefix} does not decrypt: wrong key, or the value was altered or copied from another key")]
    Decrypt { etcd_key: String, prefix: String },
    /// Sealing failed: the OS random source or the cipher refused. Retryable.
    #[error("{etcd_key}: encryption failed: {reason}")]
    Encrypt { etcd_key: String, reason: String },
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for crate::error::Error {
    fn from(e: Error) -> Self {
        crate::error::Error::Internal(e.to_string())
    }
}

/// An AEAD as a provider uses it; one implementation per provider file.
trait Cipher: Send + Sync {
    /// Appends a fresh nonce and the ciphertext of `plaintext` to `out`, authenticating
    /// `aad` where the provider does.
    fn seal(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), String>;
    /// The plaintext of `sealed` (nonce, then ciphertext), or None if it does not
    /// authenticate.
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>>;
}

/// How a provider makes the cipher of one key from its decoded secret, or says why not.
type NewCipher = fn(&[u8]) -> Result<Box<dyn Cipher>, String>;

/// `seal` for an AEAD whose nonces are random: nonce, then ciphertext and tag.
fn seal_random_nonce<C: Aead>(
    cipher: &C,
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut nonce = Nonce::<C>::default();
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| format!("random nonce: {e}"))?;
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| "the cipher refused the plaintext".to_string())?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(())
}

/// `open` for what [`seal_random_nonce`] wrote.
fn open_random_nonce<C: Aead>(cipher: &C, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let n = <C as AeadCore>::NonceSize::USIZE;
    if sealed.len() < n {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(n);
    cipher
        .decrypt(
            <&Nonce<C>>::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

/// One key of an encrypting provider: the prefix of the values it seals, and its cipher.
struct Key {
    prefix: Box<[u8]>,
    cipher: Box<dyn Cipher>,
}

impl Key {
    /// `k8s:enc:<provider>:v1:<name>`, for messages.
    fn label(&self) -> String {
        let p = String::from_utf8_lossy(&self.prefix);
        p.trim_end_matches(':').to_string()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// One `resources[]` entry of the configuration.
#[derive(Debug)]
struct Rule {
    resources: Vec<Resource>,
    /// Every key of every encrypting provider, in configuration order.
    keys: Vec<Key>,
    /// The first provider is `identity`: writes stay plaintext.
    writes_plaintext: bool,
}

impl Rule {
    /// The key new values are sealed with; None when they are written as plaintext.
    fn write_key(&self) -> Option<&Key> {
        if self.writes_plaintext {
            None
        } else {
            self.keys.first()
        }
    }
}

/// Seals and opens stored values as an `EncryptionConfiguration` says. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Transformer(Arc<[Rule]>);

impl Transformer {
    /// The configuration in `text`, YAML or JSON.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(Transformer(config::parse(text)?.into()))
    }

    /// The configuration in the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| Error::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Whether this configuration neither seals nor opens anything: every provider is
    /// `identity`.
    pub fn is_identity(&self) -> bool {
        self.0.iter().all(|r| r.keys.is_empty())
    }

    /// The rule of the resource stored at `etcd_key`: the first entry naming it.
    fn rule(&self, etcd_key: &str) -> Option<&Rule> {
        let (group, plural) = resource::of_key(etcd_key)?;
        self.0
            .iter()
            .find(|r| r.resources.iter().any(|x| x.matches(group, plural)))
    }

    /// Whether the configuration names the resource stored at `etcd_key`.
    pub fn applies_to(&self, etcd_key: &str) -> bool {
        self.rule(etcd_key).is_some()
    }

    /// The value to store at `etcd_key`: `plaintext` sealed with the current write key of its
    /// resource, or as it is when the resource is not encrypted.
    pub fn encrypt(&self, etcd_key: &str, plaintext: &[u8]) -> Result<Bytes> {
        let Some(key) = self.rule(etcd_key).and_then(Rule::write_key) else {
            return Ok(Bytes::copy_from_slice(plaintext));
        };
        let mut out = Vec::with_capacity(key.prefix.len() + plaintext.len() + 64);
        out.extend_from_slice(&key.prefix);
        key.cipher
            .seal(etcd_key.as_bytes(), plaintext, &mut out)
            .map_err(|reason| Error::Encrypt {
                etcd_key: etcd_key.to_string(),
                reason,
            })?;
        Ok(Bytes::from(out))
    }

    /// The plaintext of the value `stored` at `etcd_key`: borrowed when it was stored as
    /// plaintext, decrypted with the key its prefix names otherwise.
    pub fn decrypt<'a>(&self, etcd_key: &str, stored: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        if !identity::is_encrypted(stored) {
            return Ok(Cow::Borrowed(stored));
        }
        let key = self
            .rule(etcd_key)
            .and_then(|r| r.keys.iter().find(|k| stored.starts_with(&k.prefix)))
            .ok_or_else(|| Error::UnknownKey {
                etcd_key: etcd_key.to_string(),
                prefix: identity::prefix_of(stored),
            })?;
        key.cipher
            .open(etcd_key.as_bytes(), &stored[key.prefix.len()..])
            .map(Cow::Owned)
            .ok_or_else(|| Error::Decrypt {
                etcd_key: etcd_key.to_string(),
                prefix: key.label(),
            })
    }

    /// Whether the value `stored` at `etcd_key` is already written the way a write would
    /// write it now: sealed with the current key, or plaintext when the first provider is
    /// `identity`. Values of resources the configuration does not name are current.
    pub fn is_current(&self, etcd_key: &str, stored: &[u8]) -> bool {
        match self.rule(etcd_key) {
            None => true,
            Some(rule) => match rule.write_key() {
                None => !identity::is_encrypted(stored),
                Some(key) => stored.starts_with(&key.prefix),
            },
        }
    }
}

/// The transformer for `--encryption-provider-config`: None when no file is given or when
/// it only names `identity`, so that an unencrypted apiserver does no work per value.
pub fn from_file(path: Option<&Path>) -> Result<Option<Transformer>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let t = Transformer::load(path)?;
    Ok((!t.is_identity()).then_some(t))
}
