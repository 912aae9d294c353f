//! A node with what is placed on it: the unit every Filter and Score plugin looks at.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use super::pod_info::{HostPort, PodInfo};
use super::resources::Resources;
use client::selectors::Labels;

#[derive(Clone, Debug, Default)]
pub(crate) struct NodeInfo {
    pub name: String,
    /// `None` for a placeholder: pods are known on a node whose object is not (yet).
    pub node: Option<Arc<Node>>,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// Every name of every image the node reports, with the image's size.
    pub images: HashMap<String, i64>,
}

impl NodeInfo {
    pub(crate) fn new(name: &str) -> Self {
        NodeInfo {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// A node with its object set.
    #[cfg(test)]
    pub(crate) fn of(node: Arc<Node>) -> Self {
        let mut n = NodeInfo::new(node.metadata.name.as_deref().unwrap_or_default());
        n.set_node(node);
        n
    }

    pub(crate) fn set_node(&mut self, node: Arc<Node>) {
        let spec = node.spec.clone().unwrap_or_default();
        let status = node.status.clone().unwrap_or_default();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.taints = spec.taints.unwrap_or_default();
        self.unschedulable = spec.unschedulable.unwrap_or(false);
        self.allocatable =
            Resources::from_list(status.allocatable.as_ref().or(status.capacity.as_ref()));
        self.images = status
            .images
            .iter()
            .flatten()
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names.iter().flatten().map(move |n| (n.clone(), size))
            })
            .collect();
        self.node = Some(node);
    }

    pub(crate) fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.non_zero_requested.add(&p.non_zero);
        self.used_ports.extend(p.host_ports.iter().cloned());
        self.pods.push(p);
    }

    /// Removes a pod by key; false when it was not here.
    pub(crate) fn remove_pod(&mut self, p: &PodInfo) -> bool {
        let Some(i) = self.pods.iter().position(|q| q.key == p.key) else {
            return false;
        };
        let q = self.pods.swap_remove(i);
        self.requested.sub(&q.requests);
        self.non_zero_requested.sub(&q.non_zero);
        for hp in &q.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        true
    }
}
