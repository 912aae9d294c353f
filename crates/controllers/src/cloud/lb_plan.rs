//! What the service loop decides for a Service, as pure functions: whether it is the
//! provider's load balancer to keep, what the provider is asked for, and the status.

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Node, Service};
use rkube_proto::cloudprovider as cp;

use super::plan;

/// The finalizer that keeps a Service until its load balancer is deleted.
pub const FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
/// Nodes with this label are never backends.
pub const EXCLUDE: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The service loop's next step for a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// Take the finalizer first, so that the balancer cannot outlive the Service.
    AddFinalizer,
    /// Create or update the balancer, and write its address.
    Ensure,
    /// Delete the balancer, clear the status, then drop the finalizer.
    Delete,
}

fn is_load_balancer(s: &Service) -> bool {
    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// Whether the provider with `class` (empty: the Services without one) owns `s`'s class.
pub fn ours(s: &Service, class: &str) -> bool {
    let want = s
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref())
        .unwrap_or_default();
    want == class
}

fn has_finalizer(s: &Service) -> bool {
    s.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

/// Decides, as Kubernetes' service controller does: a LoadBalancer Service of this
/// provider's class gets a balancer (finalizer first); one that is being deleted, or is
/// no longer a LoadBalancer of this class, has its balancer deleted if it had one.
pub fn step(s: &Service, class: &str) -> Step {
    let wanted = is_load_balancer(s) && ours(s, class) && s.metadata.deletion_timestamp.is_none();
    match (wanted, has_finalizer(s)) {
        (true, false) => Step::AddFinalizer,
        (true, true) => Step::Ensure,
        (false, true) => Step::Delete,
        (false, false) => Step::Nothing,
    }
}

/// The backends: Ready nodes without the exclusion label, by name.
pub fn backends(nodes: &[std::sync::Arc<Node>]) -> Vec<cp::Node> {
    let mut out: Vec<cp::Node> = nodes
        .iter()
        .filter(|n| plan::is_ready(n))
        .filter(|n| {
            !n.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(EXCLUDE))
        })
        .map(|n| plan::to_proto(n))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The Service as the provider is told of it.
pub fn to_proto(s: &Service) -> cp::Service {
    let spec = s.spec.clone().unwrap_or_default();
    cp::Service {
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
        uid: s.metadata.uid.clone().unwrap_or_default(),
        ports: spec
            .ports
            .iter()
            .flatten()
            .map(|p| cp::ServicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: p.port,
                node_port: p.node_port.unwrap_or_default(),
            })
            .collect(),
        load_balancer_ip: spec.load_balancer_ip.unwrap_or_default(),
        load_balancer_source_ranges: spec.load_balancer_source_ranges.unwrap_or_default(),
        external_traffic_policy: spec
            .external_traffic_policy
            .unwrap_or_else(|| "Cluster".into()),
        health_check_node_port: spec.health_check_node_port.unwrap_or_default(),
        load_balancer_class: spec.load_balancer_class.unwrap_or_default(),
        annotations: s
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    }
}

/// `status.loadBalancer` from what the provider answered.
pub fn status(st: &cp::LoadBalancerStatus) -> LoadBalancerStatus {
    let ingress: Vec<LoadBalancerIngress> = st
        .ingress
        .iter()
        .map(|i| LoadBalancerIngress {
            ip: (!i.ip.is_empty()).then(|| i.ip.clone()),
            hostname: (!i.hostname.is_empty()).then(|| i.hostname.clone()),
            ..Default::default()
        })
        .collect();
    LoadBalancerStatus {
        ingress: (!ingress.is_empty()).then_some(ingress),
    }
}

#[cfg(test)]
#[path = "lb_plan_tests.rs"]
mod tests;
