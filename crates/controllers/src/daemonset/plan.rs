//! What the DaemonSet controller decides for one DaemonSet, as pure functions of it, its
//! pods, the nodes and the time: which nodes are eligible, the pods to create and delete
//! (failed, extra, misscheduled, and one outdated pod at a time in a rolling update), and
//! the status.

use std::collections::HashMap;
use std::sync::Arc;

use client::selectors::tolerated;
use client::state::PodPhase;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};

use crate::deployment::history::template_hash;
use crate::pods;
use crate::replicaset::{owner_ref, pod_from_template};
use crate::scheduler::plugins::node_affinity::spec_admits;

pub(crate) const HASH_LABEL: &str = "controller-revision-hash";

/// The taints every daemon pod tolerates, as Kubernetes adds them.
fn daemon_tolerations() -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

/// Whether a daemon pod of `template` belongs on `node`.
fn eligible(template: &PodTemplateSpec, node: &Node) -> bool {
    let name = node.metadata.name.clone().unwrap_or_default();
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let spec = template.spec.clone().unwrap_or_default();
    let admitted = spec_admits(&spec, &name, &labels);
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    tolerations.extend(daemon_tolerations());
    let taints_ok = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| tolerated(&tolerations, t));
    admitted && taints_ok
}

/// The node a daemon pod is for: where it runs, or the node its affinity names.
fn target_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name" && f.operator == "In")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

/// The template for `node`: its hash label, the daemon tolerations, and required node
/// affinity to that node alone.
fn pod_for(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let spec = ds.spec.clone();
    let mut t = spec.template.clone();
    t.metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.to_string());
    let ps = t.spec.get_or_insert_with(Default::default);
    let mut tolerations = ps.tolerations.clone().unwrap_or_default();
    tolerations.extend(daemon_tolerations());
    ps.tolerations = Some(tolerations);
    let pin = NodeSelectorRequirement {
        key: "metadata.name".into(),
        operator: "In".into(),
        values: Some(vec![node.to_string()]),
    };
    let affinity = ps.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let required = na
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    if required.node_selector_terms.is_empty() {
        required
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    for term in &mut required.node_selector_terms {
        term.match_fields = Some(vec![pin.clone()]);
    }
    pod_from_template(
        &t,
        &owner_ref("apps/v1", "DaemonSet", &ds.metadata),
        ds.metadata.namespace.as_deref().unwrap_or_default(),
    )
}

/// A pod to delete; a failed one goes at once (grace 0).
#[derive(Debug, PartialEq)]
pub(crate) struct Deletion {
    pub name: String,
    pub grace_seconds: Option<i64>,
}

/// What to do for one DaemonSet.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub create: Vec<Pod>,
    pub delete: Vec<Deletion>,
    /// The new status, when it differs from the DaemonSet's.
    pub status: Option<DaemonSetStatus>,
}

/// Counts toward the status, summed over the nodes.
#[derive(Default)]
struct Tally {
    desired: i32,
    scheduled: i32,
    misscheduled: i32,
    ready: i32,
    available: i32,
    updated: i32,
    all_ready: bool,
    outdated: Vec<String>,
}

fn delete(p: &Pod, grace_seconds: Option<i64>) -> Deletion {
    Deletion {
        name: p.metadata.name.clone().unwrap_or_default(),
        grace_seconds,
    }
}

/// Decides for `ds`, whose live pods are `owned`, over `nodes` at `now_s`.
pub(crate) fn plan(ds: &DaemonSet, owned: &[Arc<Pod>], nodes: &[Arc<Node>], now_s: i64) -> Plan {
    let hash = template_hash(&ds.spec.template, 0);
    let mut by_node: HashMap<String, Vec<&Arc<Pod>>> = HashMap::new();
    for p in owned {
        by_node
            .entry(target_node(p).unwrap_or_default())
            .or_default()
            .push(p);
    }
    let mut plan = Plan::default();
    let mut t = Tally {
        all_ready: true,
        ..Default::default()
    };
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let here = by_node.remove(&name).unwrap_or_default();
        on_node(ds, &hash, node, here, now_s, &mut plan, &mut t);
    }
    // Pods for nodes that are gone.
    for p in by_node.values().flatten() {
        t.misscheduled += 1;
        plan.delete.push(delete(p, None));
    }
    // Rolling update with maxUnavailable 1: one outdated pod at a time, once all are ready.
    let strategy = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref());
    if strategy != Some("OnDelete") && t.all_ready {
        if let Some(name) = t.outdated.first() {
            plan.delete.push(Deletion {
                name: name.clone(),
                grace_seconds: None,
            });
        }
    }
    plan.status = status(ds, &t);
    plan
}

/// The DaemonSet's pods on one node: a failed one is replaced, an ineligible node loses
/// its pods, a missing pod is created, and of several the oldest stays.
fn on_node(
    ds: &DaemonSet,
    hash: &str,
    node: &Node,
    mut here: Vec<&Arc<Pod>>,
    now_s: i64,
    plan: &mut Plan,
    t: &mut Tally,
) {
    let name = node.metadata.name.clone().unwrap_or_default();
    for p in here.iter().filter(|p| pods::phase(p) == PodPhase::Failed) {
        plan.delete.push(delete(p, Some(0)));
    }
    here.retain(|p| pods::is_active(p));
    if !eligible(&ds.spec.template, node) {
        t.misscheduled += here.len() as i32;
        plan.delete.extend(here.iter().map(|p| delete(p, None)));
        return;
    }
    t.desired += 1;
    if here.is_empty() {
        plan.create.push(pod_for(ds, hash, &name));
        t.all_ready = false;
        return;
    }
    t.scheduled += 1;
    here.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    plan.delete
        .extend(here.iter().skip(1).map(|p| delete(p, None)));
    let p = here[0];
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let is_ready = pods::is_ready(p);
    t.ready += i32::from(is_ready);
    t.available += i32::from(pods::is_available(p, min_ready, now_s));
    t.all_ready &= is_ready && here.len() == 1;
    if p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL))
        .map(String::as_str)
        == Some(hash)
    {
        t.updated += 1;
    } else {
        t.outdated.push(p.metadata.name.clone().unwrap_or_default());
    }
}

/// The status the tally gives; None when the DaemonSet's says the same.
fn status(ds: &DaemonSet, t: &Tally) -> Option<DaemonSetStatus> {
    let next = DaemonSetStatus {
        desired_number_scheduled: t.desired,
        current_number_scheduled: t.scheduled,
        number_misscheduled: t.misscheduled,
        number_ready: t.ready,
        number_available: Some(t.available),
        number_unavailable: Some((t.desired - t.available).max(0)),
        updated_number_scheduled: Some(t.updated),
        observed_generation: ds.metadata.generation,
        ..Default::default()
    };
    let cur = ds.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let same = cur.desired_number_scheduled == next.desired_number_scheduled
        && cur.current_number_scheduled == next.current_number_scheduled
        && cur.number_misscheduled == next.number_misscheduled
        && cur.number_ready == next.number_ready
        && n(cur.number_available) == n(next.number_available)
        && n(cur.number_unavailable) == n(next.number_unavailable)
        && n(cur.updated_number_scheduled) == n(next.updated_number_scheduled)
        && cur.observed_generation.unwrap_or(0) == next.observed_generation.unwrap_or(0);
    (!same).then_some(next)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
