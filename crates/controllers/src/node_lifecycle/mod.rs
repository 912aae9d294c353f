//! Node lifecycle controller: failure detection, taint-based eviction and pod CIDRs.
//!
//! - A node whose kubelet has not renewed its Lease in `kube-node-lease` (nor posted a
//!   Ready heartbeat) for the grace period gets Ready=Unknown and the
//!   `node.kubernetes.io/unreachable` taints (NoSchedule and NoExecute); a node reporting
//!   Ready=False gets the `not-ready` ones. A node that recovers loses them.
//! - Pods on a node with a NoExecute taint they do not tolerate are evicted at once; those
//!   that tolerate it for `tolerationSeconds` are evicted when that time has run out.
//! - Every node gets a `podCIDR` from the cluster CIDR.

use client::state::EventType;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::informer::Change;
use client::reflector::ObjectKey;
use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use parking_lot::Mutex;
use serde_json::json;

use crate::context::Ctx;
use crate::pods;
use client::events::now;
use client::runtime::{backoff, Action};
use client::state::ConditionStatus;

mod plan;

pub(crate) const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub(crate) const NOT_READY: &str = "node.kubernetes.io/not-ready";

#[derive(Clone, Debug)]
pub struct NodeLifecycleConfig {
    /// No heartbeat for this long: the node is unreachable (Kubernetes' 40 s default).
    pub grace_period: Duration,
    /// How often every node is looked at.
    pub monitor_period: Duration,
    /// Pod CIDRs are carved from this range, one `/node_mask` per node.
    pub cluster_cidr: Option<(Ipv4Addr, u8)>,
    pub node_mask: u8,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            grace_period: Duration::from_secs(40),
            monitor_period: Duration::from_secs(5),
            cluster_cidr: Some((Ipv4Addr::new(10, 244, 0, 0), 16)),
            node_mask: 24,
        }
    }
}

/// Parses `10.244.0.0/16`.
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let bits: u8 = bits.parse().ok()?;
    (bits <= 32).then_some((ip.parse().ok()?, bits))
}

struct Controller {
    cfg: NodeLifecycleConfig,
    /// When this controller first saw each node: the heartbeat baseline of a node that
    /// never sent one.
    first_seen: Mutex<HashMap<String, Instant>>,
    /// CIDRs given out by this controller, which the node watch may not show yet.
    allocated: Mutex<HashMap<String, String>>,
}

fn node_of_pod(c: &Change<Pod>) -> Vec<ObjectKey> {
    let p = c.object();
    match p.spec.as_ref().and_then(|s| s.node_name.clone()) {
        Some(n) if !n.is_empty() => vec![ObjectKey {
            namespace: String::new(),
            name: n,
        }],
        _ => vec![],
    }
}

fn node_of_lease(c: &Change<k8s_openapi::api::coordination::v1::Lease>) -> Vec<ObjectKey> {
    vec![ObjectKey {
        namespace: String::new(),
        name: c.object().metadata.name.clone().unwrap_or_default(),
    }]
}

pub(crate) async fn run(ctx: Arc<Ctx>, cfg: NodeLifecycleConfig) {
    let this = Arc::new(Controller {
        cfg,
        first_seen: Mutex::new(HashMap::new()),
        allocated: Mutex::new(HashMap::new()),
    });
    // One worker: pod CIDRs are handed out one node at a time.
    ctx.controller("node-lifecycle", &ctx.nodes)
        .watches(ctx.node_leases.clone(), node_of_lease)
        .watches(ctx.pods.clone(), node_of_pod)
        .run(
            move |key, ctx| {
                let this = this.clone();
                async move { this.reconcile(&ctx, key).await }
            },
            backoff,
            ctx.clone(),
        )
        .await
}

pub(crate) fn ready_condition(n: &Node) -> Option<&k8s_openapi::api::core::v1::NodeCondition> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

impl Controller {
    /// Seconds since the epoch of the node's last sign of life, if any.
    fn last_heartbeat(&self, ctx: &Ctx, n: &Node, name: &str) -> Option<i64> {
        let lease = ctx
            .node_leases
            .get(&ObjectKey {
                namespace: "kube-node-lease".into(),
                name: name.to_string(),
            })
            .and_then(|l| l.spec.clone()?.renew_time)
            .map(|t| t.0.as_second());
        let posted = ready_condition(n)
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0.as_second());
        lease.max(posted)
    }

    async fn reconcile(&self, ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
        let Some(node) = ctx.nodes.get(&key) else {
            self.first_seen.lock().remove(&key.name);
            return Ok(Action::AwaitChange);
        };
        let api = Api::<Node>::all(ctx.client.clone());
        self.assign_cidr(ctx, &api, &node).await?;
        let now_s = now().as_second();
        let seen = *self
            .first_seen
            .lock()
            .entry(key.name.clone())
            .or_insert_with(Instant::now);
        let grace = self.cfg.grace_period.as_secs() as i64;
        let stale = match self.last_heartbeat(ctx, &node, &key.name) {
            Some(t) => now_s - t > grace && seen.elapsed() > self.cfg.grace_period,
            None => seen.elapsed() > self.cfg.grace_period,
        };
        let ready = ready_condition(&node).and_then(|c| ConditionStatus::parse(&c.status));
        let want = plan::state_taint(stale, ready);
        if stale && ready != Some(ConditionStatus::Unknown) {
            let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown",
                "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status.",
                "lastTransitionTime": now().to_string()}]}});
            api.patch_status(&key.name, PatchParams::Strategic, &patch)
                .await?;
            ctx.events.record(
                node.as_ref(),
                EventType::Normal,
                "NodeNotReady",
                format!("Node {} status is now: NodeNotReady", key.name),
            );
        }
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let next = plan::next_taints(&taints, want, now());
        if next != taints {
            let patch = json!({"spec": {"taints": next},
                "metadata": {"resourceVersion": node.metadata.resource_version}});
            api.patch(&key.name, PatchParams::Merge, &patch).await?;
            // The new taints come back through the watch; evict then.
            return Ok(Action::Requeue(self.cfg.monitor_period));
        }
        let wait = self.evict(ctx, &key.name, &next).await?;
        Ok(Action::Requeue(wait.map_or(self.cfg.monitor_period, |w| {
            w.min(self.cfg.monitor_period)
        })))
    }

    /// Evicts the pods due for eviction for the node's NoExecute taints; returns how long
    /// until the next one is due.
    async fn evict(
        &self,
        ctx: &Ctx,
        node: &str,
        taints: &[Taint],
    ) -> Result<Option<Duration>, client::Error> {
        let on_node: Vec<Arc<Pod>> = ctx
            .pods
            .list()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .filter(|p| pods::is_active(p) && !pods::is_deleting(p))
            .collect();
        let (due, wait) = plan::evictions(&on_node, taints, now().as_second());
        for p in due {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            match Api::<Pod>::namespaced(ctx.client.clone(), &ns)
                .delete(&name, None)
                .await
            {
                Ok(_) => ctx.events.record(
                    p.as_ref(),
                    EventType::Normal,
                    "TaintManagerEviction",
                    format!("Marking for deletion Pod {ns}/{name}"),
                ),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(wait)
    }

    /// Gives a node without one the lowest free pod CIDR.
    async fn assign_cidr(
        &self,
        ctx: &Ctx,
        api: &Api<Node>,
        node: &Node,
    ) -> Result<(), client::Error> {
        let Some((base, bits)) = self.cfg.cluster_cidr else {
            return Ok(());
        };
        let has = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .is_some_and(|c| !c.is_empty());
        if has || self.cfg.node_mask < bits || self.cfg.node_mask > 32 {
            return Ok(());
        }
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut used: BTreeSet<String> = ctx
            .nodes
            .list()
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
            .collect();
        {
            let mut mine = self.allocated.lock();
            mine.retain(|n, _| {
                ctx.nodes
                    .get(&ObjectKey {
                        namespace: String::new(),
                        name: n.clone(),
                    })
                    .is_some()
            });
            if mine.contains_key(&name) {
                // Given already; the watch has not caught up.
                return Ok(());
            }
            used.extend(mine.values().cloned());
        }
        let free = plan::free_cidr(base, bits, self.cfg.node_mask, &used);
        let Some(cidr) = free else {
            tracing::warn!(node = ?node.metadata.name, "no pod CIDR left in the cluster CIDR");
            return Ok(());
        };
        let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "metadata": {"resourceVersion": node.metadata.resource_version}});
        match api.patch(&name, PatchParams::Merge, &patch).await {
            Ok(_) => {
                self.allocated.lock().insert(name, cidr);
                Ok(())
            }
            // Another change won the race; the next pass sees it.
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
