//! The Node authorizer: what a node's identity (`system:node:<name>` in `system:nodes`)
//! may do, decided from the objects its pods use. It reads only the Secrets, ConfigMaps,
//! claims (and the volumes they are bound to) and service-account tokens of pods bound to
//! it, writes only its own Node, Lease and pods (and the finalizer of the
//! `rkube.io/local-path` volumes that live on it), and reads what every node needs
//! (services, endpoints, nodes, its pods).

use std::sync::Arc;

use super::graph::{NodeGraph, Ref};
use crate::auth::{Attributes, Authorizer, Decision};

pub const NODES_GROUP: &str = "system:nodes";

pub struct NodeAuthorizer {
    pub graph: Arc<NodeGraph>,
}

/// The node a user is, if it is a node.
pub fn node_name(user: &crate::auth::UserInfo) -> Option<&str> {
    if !user.groups.iter().any(|g| g == NODES_GROUP) {
        return None;
    }
    user.name
        .strip_prefix("system:node:")
        .filter(|n| !n.is_empty())
}

const READ: &[&str] = &["get", "list", "watch"];

impl NodeAuthorizer {
    fn decide(&self, node: &str, a: &Attributes<'_>) -> bool {
        let read = READ.contains(&a.verb);
        let own_pod = || self.graph.node_of(a.namespace, a.name).as_deref() == Some(node);
        let uses = |r: Ref| a.verb == "get" && self.graph.has(node, r, a.namespace, a.name);
        match (a.group, a.resource, a.subresource) {
            ("", "secrets", "") => uses(Ref::Secret),
            ("", "configmaps", "") => uses(Ref::ConfigMap),
            ("", "persistentvolumeclaims", "") => uses(Ref::Claim),
            ("", "persistentvolumes", "") => {
                (a.verb == "get" && self.graph.uses_volume(node, a.name))
                    // Its own local-path volumes, to remove their directories and then
                    // their finalizer (NodeRestriction allows no other change).
                    || (matches!(a.verb, "get" | "update")
                        && self.graph.local_volume_on(node, a.name))
            }
            ("", "serviceaccounts", "token") => {
                a.verb == "create"
                    && self
                        .graph
                        .has(node, Ref::ServiceAccount, a.namespace, a.name)
            }
            ("", "nodes", "" | "status") => read || a.name == node,
            ("coordination.k8s.io", "leases", "") => {
                a.namespace == "kube-node-lease" && (a.name == node || (read && a.name.is_empty()))
            }
            // Creating is for mirror pods, which NodeRestriction holds to this node.
            ("", "pods", "") => read || a.verb == "create" || (a.verb == "delete" && own_pod()),
            ("", "pods", "status") => own_pod(),
            ("", "pods", "eviction") => a.verb == "create" && own_pod(),
            ("", "events", "") | ("events.k8s.io", "events", "") => {
                matches!(a.verb, "create" | "update" | "patch")
            }
            ("", "services" | "endpoints", "") | ("discovery.k8s.io", "endpointslices", "") => read,
            ("certificates.k8s.io", "certificatesigningrequests", "") => read || a.verb == "create",
            // Usage of its own pods (PodMetrics share the pod's name).
            ("metrics.k8s.io", "pods", "") => read || own_pod() || a.verb == "delete",
            _ => false,
        }
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, a: &Attributes<'_>) -> Decision {
        match node_name(a.user) {
            Some(node) if self.decide(node, a) => Decision::Allow,
            _ => Decision::NoOpinion,
        }
    }
}
