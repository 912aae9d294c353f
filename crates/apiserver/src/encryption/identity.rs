//! The `identity` provider: values stored as they are.
//!
//! Unlike kube-apiserver, which reads plaintext only when `identity` is listed, every value
//! without the `k8s:enc:` prefix is read as plaintext whatever the configuration, so turning
//! encryption on for a resource keeps its existing values readable until
//! [`super::rewrite_stale`] seals them. Listing `identity` first writes plaintext again
//! (turning encryption off), while the keys listed after it still open sealed values.

/// The provider's name in the configuration.
pub const NAME: &str = "identity";

/// What every sealed value starts with; JSON never does.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// Whether `stored` was sealed by some provider.
pub(super) fn is_encrypted(stored: &[u8]) -> bool {
    stored.starts_with(ENCRYPTED_PREFIX)
}

/// `k8s:enc:<provider>:<version>:<key name>` of a sealed value, for messages.
pub(super) fn prefix_of(stored: &[u8]) -> String {
    const FIELDS: usize = 5;
    const MAX: usize = 128;
    let end = stored
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b':')
        .nth(FIELDS - 1)
        .map_or(stored.len(), |(i, _)| i)
        .min(MAX);
    String::from_utf8_lossy(&stored[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_of_stops_at_the_key_name() {
        assert_eq!(
            prefix_of(b"k8s:enc:kms:v2:key1:\x00\x01:junk"),
            "k8s:enc:kms:v2:key1"
        );
        assert_eq!(prefix_of(b"k8s:enc:x"), "k8s:enc:x");
        assert!(!is_encrypted(br#"{"kind":"Secret"}"#));
    }
}
