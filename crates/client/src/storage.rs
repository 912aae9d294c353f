//! Names both ends of a volume attachment must agree on: the cloud-controller-manager
//! creates a VolumeAttachment under this name, and the node's kubelet gets it by the same
//! name (the Node authorizer lets it read only its own).

use sha2::{Digest, Sha256};

/// The VolumeAttachment of volume `handle` of driver `attacher` on node `node`:
/// `csi-<sha256(handle + attacher + node)>` as Kubernetes names it, but with the first 24
/// bytes of the digest only, so that the name is one DNS label (at most 63 characters).
pub fn attachment_name(handle: &str, attacher: &str, node: &str) -> String {
    let digest = Sha256::digest(format!("{handle}{attacher}{node}").as_bytes());
    let hex: String = digest.iter().take(24).map(|b| format!("{b:02x}")).collect();
    format!("csi-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kubernetes_and_differ_per_node() {
        let a = attachment_name("w1/pvc-1", "local", "w1");
        assert!(a.starts_with("csi-") && a.len() == 52, "{a}");
        assert_eq!(a, attachment_name("w1/pvc-1", "local", "w1"));
        assert_ne!(a, attachment_name("w1/pvc-1", "local", "w2"));
        // Known answer: sha256("vlocaln").
        assert_eq!(
            attachment_name("v", "local", "n"),
            format!("csi-{}", "0b351a5d1b3d7b2d0030826bdd551ce52f51d0787736b555")
        );
    }
}
