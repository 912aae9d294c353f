//! The `aesgcm` provider: AES-GCM with a 128-, 192- or 256-bit key, a random 96-bit nonce
//! per write, and the etcd key as associated data, so a value copied under another key does
//! not decrypt. Stored as `k8s:enc:aesgcm:v1:<key name>:<nonce><ciphertext><tag>`, the layout
//! kube-apiserver uses.
//!
//! Random 96-bit nonces bound how many writes one key may seal (Kubernetes advises rotating
//! aesgcm keys every 200,000 writes); rotate by listing a new key first.

use aes_gcm::aead::consts::U12;
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, KeyInit};

use super::{open_random_nonce, seal_random_nonce, Cipher};

/// The provider's name in the configuration and in stored prefixes.
pub const NAME: &str = "aesgcm";

type Aes192Gcm = AesGcm<Aes192, U12>;

/// One AES-GCM key; the key size picks the variant.
enum Gcm {
    Aes128(Aes128Gcm),
    Aes192(Aes192Gcm),
    Aes256(Aes256Gcm),
}

/// The cipher for a decoded `secret`, or why the secret cannot be one.
pub(super) fn cipher(secret: &[u8]) -> Result<Box<dyn Cipher>, String> {
    let bad = || {
        format!(
            "must be 16, 24 or 32 bytes after base64 decoding, got {}",
            secret.len()
        )
    };
    let gcm = match secret.len() {
        16 => Gcm::Aes128(Aes128Gcm::new_from_slice(secret).map_err(|_| bad())?),
        24 => Gcm::Aes192(Aes192Gcm::new_from_slice(secret).map_err(|_| bad())?),
        32 => Gcm::Aes256(Aes256Gcm::new_from_slice(secret).map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok(Box::new(gcm))
}

impl Cipher for Gcm {
    fn seal(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Gcm::Aes128(c) => seal_random_nonce(c, aad, plaintext, out),
            Gcm::Aes192(c) => seal_random_nonce(c, aad, plaintext, out),
            Gcm::Aes256(c) => seal_random_nonce(c, aad, plaintext, out),
        }
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        match self {
            Gcm::Aes128(c) => open_random_nonce(c, aad, sealed),
            Gcm::Aes192(c) => open_random_nonce(c, aad, sealed),
            Gcm::Aes256(c) => open_random_nonce(c, aad, sealed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_size_round_trips_and_binds_the_associated_data() {
        for len in [16, 24, 32] {
            let c = cipher(&vec![7u8; len]).expect("valid size");
            let mut sealed = Vec::new();
            c.seal(b"/registry/core/secrets/a/b", b"hello", &mut sealed)
                .expect("seal");
            assert_eq!(sealed.len(), 12 + 5 + 16);
            assert_eq!(
                c.open(b"/registry/core/secrets/a/b", &sealed).as_deref(),
                Some(&b"hello"[..])
            );
            assert_eq!(c.open(b"/registry/core/secrets/a/c", &sealed), None);
        }
    }

    #[test]
    fn other_sizes_are_refused() {
        for len in [0, 7, 31, 64] {
            let err = cipher(&vec![0u8; len]).err().expect("refused");
            assert!(err.ends_with(&format!("got {len}")), "{err}");
        }
    }

    #[test]
    fn short_or_tampered_values_do_not_open() {
        let c = cipher(&[1u8; 32]).expect("valid size");
        let mut sealed = Vec::new();
        c.seal(b"k", b"secret data", &mut sealed).expect("seal");
        assert_eq!(c.open(b"k", &sealed[..11]), None);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(c.open(b"k", &sealed), None);
    }
}
