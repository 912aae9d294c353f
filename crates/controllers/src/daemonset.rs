//! DaemonSet controller: one pod per eligible node. A node is eligible when the template's
//! nodeSelector and required node affinity admit it and it has no NoSchedule or NoExecute
//! taint the pod does not tolerate. Daemon pods are placed by the scheduler, pinned to
//! their node by required node affinity on `metadata.name`, as Kubernetes does; they
//! tolerate the node-condition taints. A changed template replaces pods one at a time.

use client::state::PodPhase;
use std::collections::HashMap;
use std::sync::Arc;

use client::reflector::ObjectKey;
use client::{Api, PatchParams};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};
use serde_json::json;

use crate::context::Ctx;
use crate::deployment::history::template_hash;
use crate::pods::{self, controller_ref};
use crate::replicaset::{owner_ref, pod_from_template};
use crate::scheduler::plugins::node_affinity::spec_admits;
use client::events::now;
use client::runtime::{backoff, Action};
use client::selectors::tolerated;

pub const HASH_LABEL: &str = "controller-revision-hash";

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

pub async fn run(ctx: Arc<Ctx>, workers: usize) {
    let c = ctx.clone();
    ctx.controller("daemonset", &ctx.daemonsets)
        .owns(ctx.pods.clone(), "DaemonSet")
        .watches(ctx.nodes.clone(), move |_| c.daemonsets.keys())
        .concurrency(workers)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(ds) = ctx.daemonsets.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let spec = ds.spec.clone();
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let hash = template_hash(&spec.template, 0);
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &key.namespace);
    let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for p in ctx.pods.list_namespace(&key.namespace) {
        if controller_ref(&p.metadata).is_some_and(|r| r.uid == uid) && !pods::is_deleting(&p) {
            by_node
                .entry(target_node(&p).unwrap_or_default())
                .or_default()
                .push(p);
        }
    }
    let nodes = ctx.nodes.list();
    let mut desired = 0;
    let (mut scheduled, mut ready, mut available, mut updated, mut misscheduled) = (0, 0, 0, 0, 0);
    let now_s = now().as_second();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut outdated: Vec<Arc<Pod>> = Vec::new();
    let mut all_ready = true;
    for node in &nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut here = by_node.remove(&name).unwrap_or_default();
        // A failed daemon pod is replaced.
        for p in here.iter().filter(|p| pods::phase(p) == PodPhase::Failed) {
            let _ = api
                .delete(p.metadata.name.as_deref().unwrap_or_default(), Some(0))
                .await;
        }
        here.retain(|p| pods::is_active(p));
        if !eligible(&spec.template, node) {
            misscheduled += here.len() as i32;
            for p in &here {
                let _ = api
                    .delete(p.metadata.name.as_deref().unwrap_or_default(), None)
                    .await;
            }
            continue;
        }
        desired += 1;
        match here.len() {
            0 => {
                api.create(&pod_for(&ds, &hash, &name)).await?;
                all_ready = false;
            }
            n => {
                scheduled += 1;
                // Extra pods for one node: keep the oldest.
                here.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
                for p in here.iter().skip(1) {
                    let _ = api
                        .delete(p.metadata.name.as_deref().unwrap_or_default(), None)
                        .await;
                }
                let p = &here[0];
                let is_ready = pods::is_ready(p);
                ready += i32::from(is_ready);
                available += i32::from(pods::is_available(p, min_ready, now_s));
                all_ready &= is_ready && n == 1;
                let current =
                    p.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)) == Some(&hash);
                if current {
                    updated += 1;
                } else {
                    outdated.push(p.clone());
                }
            }
        }
    }
    // Pods for nodes that are gone.
    for p in by_node.values().flatten() {
        misscheduled += 1;
        let _ = api
            .delete(p.metadata.name.as_deref().unwrap_or_default(), None)
            .await;
    }
    // Rolling update with maxUnavailable 1: one outdated pod at a time, once all are ready.
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    if rolling && all_ready {
        if let Some(p) = outdated.first() {
            api.delete(p.metadata.name.as_deref().unwrap_or_default(), None)
                .await?;
        }
    }
    let status = json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": scheduled,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": available,
        "numberUnavailable": (desired - available).max(0),
        "updatedNumberScheduled": updated,
        "observedGeneration": ds.metadata.generation,
    });
    let cur = serde_json::to_value(ds.status.clone().unwrap_or_default()).unwrap_or_default();
    let changed = status
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| cur.get(k).unwrap_or(&json!(0)) != v);
    if changed {
        Api::<DaemonSet>::namespaced(ctx.client.clone(), &key.namespace)
            .patch_status(&key.name, PatchParams::Merge, &json!({ "status": status }))
            .await?;
    }
    Ok(Action::AwaitChange)
}
