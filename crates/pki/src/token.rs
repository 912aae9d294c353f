//! The cluster token: the one secret every founding member is given.
//!
//! Its form follows k3s: `K10<sha256 of the CA public key>::<secret>`. The part before
//! `::` pins the CA, so a client or node that holds the token trusts no other CA; a bare
//! secret (no `K10…::`) is accepted too.

use std::fmt;

use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// Fewest characters a secret may have: 32 hex digits are 128 bits.
const MIN_SECRET_LEN: usize = 32;
const SALT: &[u8] = b"rkube cluster token v1";

/// A parsed cluster token. Its `Debug` form hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken {
    secret: String,
    ca_hash: Option<String>,
}

impl fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterToken")
            .field("ca_hash", &self.ca_hash)
            .finish_non_exhaustive()
    }
}

impl ClusterToken {
    /// Parses `K10<hash>::<secret>` or a bare secret.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (ca_hash, secret) = match text.strip_prefix("K10") {
            Some(rest) => {
                let (hash, secret) = rest.split_once("::").ok_or_else(|| {
                    Error::Token("K10 form is K10<ca sha256>::<secret>, no '::' found".into())
                })?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Token(
                        "the CA hash after K10 must be 64 hex digits".into(),
                    ));
                }
                (Some(hash.to_ascii_lowercase()), secret)
            }
            None => (None, text),
        };
        if secret.len() < MIN_SECRET_LEN {
            return Err(Error::Token(format!(
                "the secret has {} characters; at least {MIN_SECRET_LEN} are required \
                 (`rkube token generate` makes one)",
                secret.len()
            )));
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Token(
                "the secret contains whitespace or control characters".into(),
            ));
        }
        Ok(ClusterToken {
            secret: secret.to_string(),
            ca_hash,
        })
    }

    /// A new token with 256 bits of entropy, in the `K10` form.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Token("the system random generator failed".into()))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut token = ClusterToken {
            secret,
            ca_hash: None,
        };
        let ca = crate::ClusterCa::from_token(&token)?;
        token.ca_hash = Some(ca.fingerprint_hex());
        Ok(token)
    }

    /// The CA hash this token pins, if it is in the `K10` form.
    pub fn pinned_ca_hash(&self) -> Option<&str> {
        self.ca_hash.as_deref()
    }

    /// A 32-byte key for `purpose`, derived from the secret (HKDF-SHA256). Distinct
    /// purposes give independent keys.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        struct Len;
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                32
            }
        }
        let mut out = [0u8; 32];
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(self.secret.as_bytes());
        let info = [purpose.as_bytes()];
        // Both calls fail only for an output longer than 255 hash lengths; 32 bytes is not.
        if let Ok(okm) = prk.expand(&info, Len) {
            let _ = okm.fill(&mut out);
        }
        out
    }

    /// The token text, `K10<hash>::<secret>` when the hash is known.
    pub fn to_text(&self) -> String {
        match &self.ca_hash {
            Some(h) => format!("K10{h}::{}", self.secret),
            None => self.secret.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_refuses_weak_or_malformed_tokens() {
        let t = ClusterToken::generate().unwrap();
        let text = t.to_text();
        assert!(text.starts_with("K10"));
        assert_eq!(ClusterToken::parse(&text).unwrap(), t);
        let bare = ClusterToken::parse(&"a".repeat(32)).unwrap();
        assert_eq!(bare.pinned_ca_hash(), None);
        let short = ClusterToken::parse("tooshort").unwrap_err().to_string();
        assert!(short.contains("at least 32"), "{short}");
        assert!(ClusterToken::parse("K10abc::x").is_err());
        assert!(ClusterToken::parse(&format!("K10{}", "a".repeat(64))).is_err());
        assert!(!format!("{t:?}").contains(&text[text.len() - 10..]));
    }

    #[test]
    fn derived_keys_depend_on_secret_and_purpose() {
        let a = ClusterToken::parse(&"a".repeat(40)).unwrap();
        let b = ClusterToken::parse(&"b".repeat(40)).unwrap();
        assert_eq!(a.derive("x"), a.derive("x"));
        assert_ne!(a.derive("x"), a.derive("y"));
        assert_ne!(a.derive("x"), b.derive("x"));
    }
}
