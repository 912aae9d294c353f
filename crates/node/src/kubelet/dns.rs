//! The resolver settings the kubelet gives a pod: by its `dnsPolicy` and `dnsConfig`,
//! with the cluster DNS at `--cluster-dns` or the `kube-dns` Service's ClusterIP.

use k8s_openapi::api::core::v1::Pod;

use super::Shared;
use crate::dns::resolv_conf::{for_pod, ClusterDns, DnsSettings};

impl Shared {
    /// The cluster DNS address pods are given, if one is known.
    fn cluster_dns(&self) -> Option<String> {
        if let Some(ip) = &self.cfg.cluster_dns {
            return Some(ip.clone());
        }
        let key = client::reflector::ObjectKey {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
        };
        self.services
            .get(&key)?
            .spec
            .as_ref()?
            .cluster_ip
            .clone()
            .filter(|ip| !ip.is_empty() && ip != "None")
    }

    /// `pod`'s resolver settings; `None` when they are the host's.
    pub(super) fn pod_dns(&self, pod: &Pod) -> Option<DnsSettings> {
        let cluster = ClusterDns {
            server: self.cluster_dns(),
            domain: self.cfg.cluster_domain.clone(),
        };
        let s = for_pod(pod, &cluster, &self.host_dns);
        (s != self.host_dns).then_some(s)
    }
}
