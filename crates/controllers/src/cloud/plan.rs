//! What the cloud loops decide, as pure functions of a Node and the provider's answers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeAddress, Taint};
use rkube_proto::cloudprovider as cp;

/// The taint a node registered with `--cloud-provider=external` carries until the
/// cloud-controller-manager has initialized it.
pub const UNINITIALIZED: &str = "node.cloudprovider.kubernetes.io/uninitialized";
/// The taint of a node whose machine is shut down.
pub const SHUTDOWN: &str = "node.cloudprovider.kubernetes.io/shutdown";

pub const ZONE: &str = "topology.kubernetes.io/zone";
pub const REGION: &str = "topology.kubernetes.io/region";
pub const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";

fn taints(n: &Node) -> &[Taint] {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

fn has_taint(n: &Node, key: &str) -> bool {
    taints(n).iter().any(|t| t.key == key)
}

/// Whether the node waits for the cloud-controller-manager.
pub fn needs_init(n: &Node) -> bool {
    has_taint(n, UNINITIALIZED)
}

/// The node as the provider describes it: providerID (kept when it has one), the zone,
/// region and instance-type labels and the provider's own, its addresses when the
/// provider names them, and without the uninitialized taint.
pub fn initialized(n: &Node, md: &cp::InstanceMetadataResponse) -> Node {
    let mut out = n.clone();
    let labels = out.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in [
        (ZONE, &md.zone),
        (REGION, &md.region),
        (INSTANCE_TYPE, &md.instance_type),
    ] {
        if !v.is_empty() {
            labels.insert(k.to_string(), v.clone());
        }
    }
    labels.extend(md.additional_labels.clone());
    let spec = out.spec.get_or_insert_with(Default::default);
    if spec.provider_id.as_deref().unwrap_or_default().is_empty() && !md.provider_id.is_empty() {
        spec.provider_id = Some(md.provider_id.clone());
    }
    if let Some(t) = spec.taints.as_mut() {
        t.retain(|t| t.key != UNINITIALIZED);
    }
    if !md.node_addresses.is_empty() {
        let status = out.status.get_or_insert_with(Default::default);
        status.addresses = Some(
            md.node_addresses
                .iter()
                .map(|a| NodeAddress {
                    type_: a.r#type.clone(),
                    address: a.address.clone(),
                })
                .collect(),
        );
    }
    out
}

/// The node as the provider sees it in a request.
pub fn to_proto(n: &Node) -> cp::Node {
    let status = n.status.as_ref();
    cp::Node {
        name: n.metadata.name.clone().unwrap_or_default(),
        provider_id: n
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .unwrap_or_default(),
        addresses: status
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .map(|a| cp::NodeAddress {
                r#type: a.type_.clone(),
                address: a.address.clone(),
            })
            .collect(),
        labels: n
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        pod_cidr: n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.clone())
            .unwrap_or_default(),
        ready: is_ready(n),
    }
}

/// Ready condition True.
pub fn is_ready(n: &Node) -> bool {
    crate::node_lifecycle::ready_condition(n).is_some_and(|c| c.status == "True")
}

/// What the node lifecycle loop does with a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LifecycleStep {
    Nothing,
    /// Its machine is gone: delete the Node (its pods are then evicted and rescheduled).
    Delete,
    /// Its machine is shut down: taint it.
    TaintShutdown,
    /// Its machine runs again (or it is Ready): drop the shutdown taint.
    Untaint,
}

/// What the provider said about a node's machine; asked only of nodes that are not Ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    pub exists: bool,
    pub shutdown: bool,
}

/// Decides, as Kubernetes' cloud node lifecycle controller does: a Ready node is left
/// alone (but loses a stale shutdown taint); a node that is not Ready is deleted when its
/// machine is gone, and tainted while its machine is shut down.
pub fn lifecycle(n: &Node, machine: Option<Machine>) -> LifecycleStep {
    let tainted = has_taint(n, SHUTDOWN);
    match machine {
        None if tainted => LifecycleStep::Untaint,
        None => LifecycleStep::Nothing,
        Some(m) if !m.exists => LifecycleStep::Delete,
        Some(m) if m.shutdown && !tainted => LifecycleStep::TaintShutdown,
        Some(m) if !m.shutdown && tainted => LifecycleStep::Untaint,
        Some(_) => LifecycleStep::Nothing,
    }
}

/// The node's taints after `step`.
pub fn taints_after(n: &Node, step: &LifecycleStep) -> Vec<Taint> {
    let mut t: Vec<Taint> = taints(n).to_vec();
    match step {
        LifecycleStep::TaintShutdown => t.push(Taint {
            key: SHUTDOWN.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }),
        LifecycleStep::Untaint => t.retain(|t| t.key != SHUTDOWN),
        LifecycleStep::Nothing | LifecycleStep::Delete => {}
    }
    t
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
