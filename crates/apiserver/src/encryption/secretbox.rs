//! The `secretbox` provider: NaCl's XSalsa20-Poly1305 with a 256-bit key and a random
//! 192-bit nonce per write. Stored as `k8s:enc:secretbox:v1:<key name>:<nonce><tag><ciphertext>`,
//! the layout kube-apiserver uses. Secretbox authenticates no associated data, so, as in
//! Kubernetes, a value copied under another etcd key still decrypts.

use crypto_secretbox::{KeyInit, XSalsa20Poly1305};

use super::{open_random_nonce, seal_random_nonce, Cipher};

/// The provider's name in the configuration and in stored prefixes.
pub const NAME: &str = "secretbox";

/// The only key size.
const KEY_LEN: usize = 32;

/// The cipher for a decoded `secret`, or why the secret cannot be one.
pub(super) fn cipher(secret: &[u8]) -> Result<Box<dyn Cipher>, String> {
    let bad = || {
        format!(
            "must be {KEY_LEN} bytes after base64 decoding, got {}",
            secret.len()
        )
    };
    if secret.len() != KEY_LEN {
        return Err(bad());
    }
    let c = XSalsa20Poly1305::new_from_slice(secret).map_err(|_| bad())?;
    Ok(Box::new(Secretbox(c)))
}

struct Secretbox(XSalsa20Poly1305);

impl Cipher for Secretbox {
    fn seal(&self, _aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        seal_random_nonce(&self.0, &[], plaintext, out)
    }

    fn open(&self, _aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open_random_nonce(&self.0, &[], sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_tampering() {
        let c = cipher(&[3u8; 32]).expect("valid size");
        let mut sealed = Vec::new();
        c.seal(b"ignored", b"hello", &mut sealed).expect("seal");
        assert_eq!(sealed.len(), 24 + 16 + 5);
        assert_eq!(c.open(b"other", &sealed).as_deref(), Some(&b"hello"[..]));
        sealed[30] ^= 0x80;
        assert_eq!(c.open(b"other", &sealed), None);
    }

    #[test]
    fn only_32_byte_keys() {
        assert_eq!(
            cipher(&[0u8; 16]).err().as_deref(),
            Some("must be 32 bytes after base64 decoding, got 16")
        );
    }
}
