//! The process runtime's pod networking: the CNI network pods join once the node has a
//! pod CIDR, the node's egress rule, and the pod's resolv.conf mounted in its containers.

use std::path::PathBuf;

use super::ProcessRuntime;
use crate::runtime::cni::CniConfig;
use crate::runtime::{ContainerConfig, Mount, Sandbox};

/// The pod's resolv.conf in its sandbox directory, bind-mounted at /etc/resolv.conf.
pub(super) const RESOLV_CONF: &str = "resolv.conf";

impl ProcessRuntime {
    /// Masquerades pod traffic that leaves `cluster_cidr` (with pod networking).
    pub fn with_cluster_cidr(mut self, cluster_cidr: &str) -> Self {
        self.cluster_cidr = Some(cluster_cidr.to_string());
        self.masquerade();
        self
    }

    /// The egress rule for the node's pod CIDR, when pods have networks of their own.
    pub(super) fn masquerade(&self) {
        let (Some(cni), Some(cluster), Some(pods)) =
            (&self.cni, &self.cluster_cidr, self.pod_cidr.lock().clone())
        else {
            return;
        };
        if let Err(e) = crate::runtime::egress::ensure(&self.root, &cni.bridge, &pods, cluster) {
            tracing::warn!(error = %e, "pod egress: the masquerade rule is not in place");
        }
    }

    /// The network to put pods on, once the node's pod CIDR is known.
    pub(super) fn network(&self) -> Option<CniConfig> {
        let cidr = self.pod_cidr.lock().clone()?;
        self.cni.clone().map(|c| CniConfig { subnet: cidr, ..c })
    }

    pub(super) fn netns_of(&self, sandbox_id: &str) -> Option<PathBuf> {
        super::read_json::<Sandbox>(&self.sandbox_dir(sandbox_id).join("sandbox.json"))?
            .netns
            .map(|n| crate::runtime::cni::netns_path(&n))
    }

    /// The container's mounts: its volumes, and the pod's resolv.conf when it has one.
    pub(super) fn mounts_of(&self, sandbox_id: &str, cfg: &ContainerConfig) -> Vec<Mount> {
        let mut mounts = cfg.mounts.clone();
        let resolv = self.sandbox_dir(sandbox_id).join(RESOLV_CONF);
        if resolv.exists()
            && !mounts
                .iter()
                .any(|m| m.container_path == "/etc/resolv.conf")
        {
            mounts.push(Mount {
                host_path: resolv,
                container_path: "/etc/resolv.conf".into(),
                read_only: true,
                volume_root: None,
            });
        }
        mounts
    }
}
