//! What the StatefulSet controller decides for one set, as a pure function of it, the
//! pods it controls, the claims of its namespace, its revisions and the time, as
//! Kubernetes' stateful set control does it:
//!
//! 1. each ordinal in range, lowest first: a missing pod is created (its claims first), a
//!    finished one deleted to be made again; OrderedReady stops at the first pod that is
//!    not Running and Ready (and available), Parallel goes on;
//! 2. pods beyond the range, highest first: deleted, OrderedReady one at a time and only
//!    when every other pod is Ready;
//! 3. RollingUpdate: the highest ordinal at or above the partition whose revision is not
//!    the update revision is deleted (to be made again from the new template), one at a
//!    time, each after the ones above it are Ready again; OnDelete leaves pods alone, and
//!    only pods made again get the new revision;
//! 4. claims follow `persistentVolumeClaimRetentionPolicy`;
//! 5. old revisions are pruned, and the status is counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::history::{self, Rev};
use super::identity::{self, REVISION_LABEL};
use super::status;
use crate::pods;

/// `spec.podManagementPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PodManagement {
    OrderedReady,
    Parallel,
}

/// `spec.updateStrategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpdateStrategy {
    RollingUpdate { partition: i32 },
    OnDelete,
}

/// A `persistentVolumeClaimRetentionPolicy` rule; anything unknown retains, as in
/// Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retention {
    Retain,
    Delete,
}

/// The set's policies, parsed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    pub management: PodManagement,
    pub update: UpdateStrategy,
    pub when_deleted: Retention,
    pub when_scaled: Retention,
}

impl Policy {
    pub(crate) fn of(set: &StatefulSet) -> Policy {
        let spec = &set.spec;
        let management = match spec.pod_management_policy.as_deref() {
            Some("Parallel") => PodManagement::Parallel,
            _ => PodManagement::OrderedReady,
        };
        let strategy = spec.update_strategy.as_ref();
        let update = match strategy.and_then(|s| s.type_.as_deref()) {
            Some("OnDelete") => UpdateStrategy::OnDelete,
            _ => UpdateStrategy::RollingUpdate {
                partition: strategy
                    .and_then(|s| s.rolling_update.as_ref()?.partition)
                    .unwrap_or(0)
                    .max(0),
            },
        };
        let retention = |rule: Option<&String>| match rule.map(String::as_str) {
            Some("Delete") => Retention::Delete,
            _ => Retention::Retain,
        };
        let policy = spec.persistent_volume_claim_retention_policy.as_ref();
        Policy {
            management,
            update,
            when_deleted: retention(policy.and_then(|p| p.when_deleted.as_ref())),
            when_scaled: retention(policy.and_then(|p| p.when_scaled.as_ref())),
        }
    }
}

/// What the controller sees of the world around one set.
pub(crate) struct World<'a> {
    /// The pods the set controls.
    pub pods: &'a [Arc<Pod>],
    /// The PersistentVolumeClaims of the set's namespace.
    pub claims: &'a [Arc<PersistentVolumeClaim>],
    /// The ControllerRevisions the set controls.
    pub revisions: &'a [Arc<ControllerRevision>],
    pub now_s: i64,
}

/// A pod to delete, only while it is still the one seen (its uid).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PodRef {
    pub name: String,
    pub uid: String,
}

/// New owner references of a claim, guarded by its resourceVersion.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ClaimOwners {
    pub name: String,
    pub resource_version: Option<String>,
    pub owner_references: Vec<OwnerReference>,
}

/// Identity labels to put back on a pod.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Relabel {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// What to do for one set, in the order `reconcile` does it.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub create_revision: Option<ControllerRevision>,
    pub renumber_revision: Option<(String, i64)>,
    pub claim_owners: Vec<ClaimOwners>,
    pub create_claims: Vec<PersistentVolumeClaim>,
    pub create_pods: Vec<Pod>,
    pub relabel_pods: Vec<Relabel>,
    pub delete_pods: Vec<PodRef>,
    pub delete_claims: Vec<String>,
    pub delete_revisions: Vec<String>,
    /// The new status, when it differs from the set's.
    pub status: Option<StatefulSetStatus>,
    /// When to look again without a change (a Ready pod becoming available).
    pub requeue: Option<Duration>,
}

/// Decides for `set` (not being deleted) in `w`.
pub(crate) fn plan(set: &StatefulSet, w: &World) -> Plan {
    let mut plan = Plan::default();
    let revisions = history::resolve(set, w.revisions);
    if let Some(count) = revisions.collision {
        let mut st = set.status.clone().unwrap_or_default();
        st.collision_count = Some(count);
        plan.status = Some(st);
        return plan;
    }
    let (Some(current), Some(update)) = (revisions.current, revisions.update) else {
        return plan;
    };
    plan.create_revision = revisions.create;
    plan.renumber_revision = revisions.renumber;
    let policy = Policy::of(set);
    Pass::new(set, w, policy, &current, &update, &mut plan).run();
    retention(set, w, policy, &mut plan);
    let mut live: Vec<&str> = vec![&current.name, &update.name];
    live.extend(w.pods.iter().filter_map(|p| revision_of(p)));
    plan.delete_revisions = history::prunable(set, w.revisions, &live);
    let (st, requeue) = status::status(set, w, policy, &current, &update);
    plan.status = st;
    plan.requeue = requeue;
    plan
}

pub(crate) fn revision_of(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

/// Running and Ready (for `minReadySeconds`), and not being deleted.
pub(crate) fn healthy(p: &Pod, min_ready_seconds: i32, now_s: i64) -> bool {
    running_and_ready(p) && pods::is_available(p, min_ready_seconds, now_s) && !pods::is_deleting(p)
}

pub(crate) fn running_and_ready(p: &Pod) -> bool {
    pods::phase(p) == client::state::PodPhase::Running && pods::is_ready(p)
}

/// One pass over the set's pods: steps 1 to 3.
struct Pass<'a> {
    set: &'a StatefulSet,
    w: &'a World<'a>,
    policy: Policy,
    current: &'a Rev,
    update: &'a Rev,
    range: std::ops::Range<i32>,
    /// The pods in range, by ordinal.
    replicas: BTreeMap<i32, &'a Arc<Pod>>,
    /// The pods beyond the range, highest ordinal first.
    condemned: Vec<&'a Arc<Pod>>,
    claims: HashMap<&'a str, &'a Arc<PersistentVolumeClaim>>,
    /// Pods this pass deletes.
    deleted: HashSet<String>,
    plan: &'a mut Plan,
}

/// Whether a pass goes on after a step.
#[derive(PartialEq)]
enum Flow {
    Go,
    Stop,
}

impl<'a> Pass<'a> {
    fn new(
        set: &'a StatefulSet,
        w: &'a World<'a>,
        policy: Policy,
        current: &'a Rev,
        update: &'a Rev,
        plan: &'a mut Plan,
    ) -> Self {
        let range = identity::ordinal_range(set);
        let mut replicas = BTreeMap::new();
        let mut condemned = Vec::new();
        for p in w.pods {
            match identity::pod_ordinal(set, p) {
                Some(o) if range.contains(&o) => {
                    replicas.insert(o, p);
                }
                Some(o) => condemned.push((o, p)),
                None => {}
            }
        }
        condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
        let claims = w
            .claims
            .iter()
            .filter_map(|c| Some((c.metadata.name.as_deref()?, c)))
            .collect();
        Pass {
            set,
            w,
            policy,
            current,
            update,
            range,
            replicas,
            condemned: condemned.into_iter().map(|(_, p)| p).collect(),
            claims,
            deleted: HashSet::new(),
            plan,
        }
    }

    fn monotonic(&self) -> bool {
        self.policy.management == PodManagement::OrderedReady
    }

    fn healthy(&self, p: &Pod) -> bool {
        let min_ready = self.set.spec.min_ready_seconds.unwrap_or(0);
        healthy(p, min_ready, self.w.now_s)
    }

    fn run(&mut self) {
        if self.replicas_step() == Flow::Stop || self.condemned_step() == Flow::Stop {
            return;
        }
        self.rolling_update_step();
    }

    /// Step 1; OrderedReady stops at the first ordinal not healthy.
    fn replicas_step(&mut self) -> Flow {
        for ordinal in self.range.clone() {
            let healthy = match self.replicas.get(&ordinal).copied() {
                None => {
                    self.create(ordinal);
                    false
                }
                Some(p) if pods::phase(p).is_finished() => {
                    if !pods::is_deleting(p) {
                        self.delete(p);
                    }
                    false
                }
                Some(p) if pods::is_deleting(p) => false,
                Some(p) => {
                    self.keep(ordinal, p);
                    self.healthy(p)
                }
            };
            if !healthy && self.monotonic() {
                return Flow::Stop;
            }
        }
        Flow::Go
    }

    /// Step 2.
    fn condemned_step(&mut self) -> Flow {
        let first_unhealthy = self
            .replicas
            .values()
            .chain(self.condemned.iter())
            .find(|p| !self.healthy(p))
            .map(|p| p.metadata.name.clone());
        for p in self.condemned.clone() {
            if pods::is_deleting(p) {
                if self.monotonic() {
                    return Flow::Stop;
                }
                continue;
            }
            if self.monotonic()
                && !self.healthy(p)
                && first_unhealthy != Some(p.metadata.name.clone())
            {
                return Flow::Stop;
            }
            self.delete(p);
            if self.monotonic() {
                return Flow::Stop;
            }
        }
        Flow::Go
    }

    /// Step 3.
    fn rolling_update_step(&mut self) {
        let UpdateStrategy::RollingUpdate { partition } = self.policy.update else {
            return;
        };
        let from = self.range.start.saturating_add(partition);
        for ordinal in (from..self.range.end).rev() {
            let Some(p) = self.replicas.get(&ordinal).copied() else {
                return;
            };
            if self
                .deleted
                .contains(p.metadata.name.as_deref().unwrap_or_default())
            {
                return;
            }
            if revision_of(p) != Some(self.update.name.as_str()) && !pods::is_deleting(p) {
                self.delete(p);
                return;
            }
            if !self.healthy(p) {
                return;
            }
        }
    }

    /// A missing pod: its claims, then the pod, from the current revision below the
    /// partition and the update revision otherwise. A claim still being deleted holds the
    /// pod back.
    fn create(&mut self, ordinal: i32) {
        if !self.ensure_claims(ordinal) {
            return;
        }
        let rev = match self.policy.update {
            UpdateStrategy::RollingUpdate { partition }
                if ordinal < self.range.start.saturating_add(partition) =>
            {
                self.current
            }
            _ => self.update,
        };
        let pod = identity::new_pod(self.set, &rev.template, &rev.name, ordinal);
        self.plan.create_pods.push(pod);
    }

    /// An existing pod in range: its claims are made again if gone, its identity labels
    /// put back if changed.
    fn keep(&mut self, ordinal: i32, p: &Pod) {
        self.ensure_claims(ordinal);
        if !identity::identity_matches(p, ordinal) {
            let name = p.metadata.name.clone().unwrap_or_default();
            self.plan.relabel_pods.push(Relabel {
                labels: identity::identity_labels(&name, ordinal)
                    .into_iter()
                    .collect(),
                name,
            });
        }
    }

    /// Plans the missing claims of `ordinal`; false while one is being deleted.
    fn ensure_claims(&mut self, ordinal: i32) -> bool {
        let owners = (self.policy.when_deleted == Retention::Delete)
            .then(|| vec![identity::claim_owner(self.set)]);
        let mut ready = true;
        for claim in identity::new_claims(self.set, ordinal, owners) {
            match self
                .claims
                .get(claim.metadata.name.as_deref().unwrap_or_default())
            {
                Some(c) if c.metadata.deletion_timestamp.is_some() => ready = false,
                Some(_) => {}
                None => self.plan.create_claims.push(claim),
            }
        }
        ready
    }

    fn delete(&mut self, p: &Pod) {
        let name = p.metadata.name.clone().unwrap_or_default();
        self.deleted.insert(name.clone());
        self.plan.delete_pods.push(PodRef {
            name,
            uid: p.metadata.uid.clone().unwrap_or_default(),
        });
    }
}

/// Step 4: a claim of an ordinal in range (or beyond it, when scaled-down claims are
/// retained) carries a reference to the set exactly when `whenDeleted` is Delete, so
/// that the garbage collector removes it with the set; with `whenScaled: Delete`, a
/// claim beyond the range is deleted once its pod is gone.
fn retention(set: &StatefulSet, w: &World, policy: Policy, plan: &mut Plan) {
    let uid = set.metadata.uid.as_deref().unwrap_or_default();
    let range = identity::ordinal_range(set);
    let selector = set.spec.selector.match_labels.clone().unwrap_or_default();
    let with_pod: HashSet<i32> = w
        .pods
        .iter()
        .filter_map(|p| identity::pod_ordinal(set, p))
        .collect();
    for c in w.claims {
        let Some(ordinal) = identity::claim_ordinal(set, c) else {
            continue;
        };
        let labels = c.metadata.labels.clone().unwrap_or_default();
        let ours = selector.iter().all(|(k, v)| labels.get(k) == Some(v));
        if !ours || c.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = c.metadata.name.clone().unwrap_or_default();
        if !range.contains(&ordinal) && policy.when_scaled == Retention::Delete {
            if !with_pod.contains(&ordinal) {
                plan.delete_claims.push(name);
            }
            continue;
        }
        let refs = c.metadata.owner_references.clone().unwrap_or_default();
        let has = refs.iter().any(|r| r.uid == uid);
        let want = policy.when_deleted == Retention::Delete;
        if has == want {
            continue;
        }
        let mut owner_references: Vec<OwnerReference> =
            refs.into_iter().filter(|r| r.uid != uid).collect();
        if want {
            owner_references.push(identity::claim_owner(set));
        }
        plan.claim_owners.push(ClaimOwners {
            name,
            resource_version: c.metadata.resource_version.clone(),
            owner_references,
        });
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
