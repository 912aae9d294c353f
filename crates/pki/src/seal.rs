//! Sealing small secrets with a key derived from the cluster token (AES-256-GCM), so a
//! value that must live in the store (the service-account signing key) is ciphertext to
//! anyone who reads the store without the token.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

const PREFIX: &[u8] = b"rkube:enc:aesgcm:v1:";

fn key(k: &[u8; 32]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, k)
        .map(LessSafeKey::new)
        .map_err(|_| Error::Tls("AES-256-GCM key refused".into()))
}

/// Encrypts `plaintext`, authenticating `context` (where the value is stored) with it.
pub fn seal(k: &[u8; 32], context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| Error::Tls("the system random generator failed".into()))?;
    let mut buf = plaintext.to_vec();
    key(k)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut buf,
        )
        .map_err(|_| Error::Tls("sealing failed".into()))?;
    Ok([PREFIX, &nonce, &buf].concat())
}

/// A fresh random 256-bit key (for an EncryptionConfiguration, say).
pub fn random_key() -> Result<[u8; 32]> {
    let mut k = [0u8; 32];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| Error::Tls("the system random generator failed".into()))?;
    Ok(k)
}

/// Whether `stored` was written by [`seal`].
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(PREFIX)
}

/// Decrypts what [`seal`] wrote; a wrong key, context or a changed byte is an error.
pub fn open(k: &[u8; 32], context: &[u8], stored: &[u8]) -> Result<Vec<u8>> {
    let body = stored
        .strip_prefix(PREFIX)
        .filter(|b| b.len() >= NONCE_LEN)
        .ok_or_else(|| Error::Parse {
            what: "sealed value".into(),
            reason: "not written by seal".into(),
        })?;
    let (nonce, ct) = body.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Parse {
        what: "sealed value".into(),
        reason: "bad nonce".into(),
    })?;
    let mut buf = ct.to_vec();
    let plain = key(k)?
        .open_in_place(nonce, Aad::from(context), &mut buf)
        .map_err(|_| Error::Parse {
            what: "sealed value".into(),
            reason: "does not decrypt with this cluster's token (a different token, or altered)"
                .into(),
        })?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let k = [7u8; 32];
        let s = seal(&k, b"/a", b"secret").unwrap();
        assert!(is_sealed(&s));
        assert!(!s.windows(6).any(|w| w == b"secret"));
        assert_eq!(open(&k, b"/a", &s).unwrap(), b"secret");
        assert!(open(&[8u8; 32], b"/a", &s).is_err());
        assert!(open(&k, b"/b", &s).is_err());
        let mut t = s.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(open(&k, b"/a", &t).is_err());
    }
}
