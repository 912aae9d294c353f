//! What the PersistentVolume binder decides, without calls: which volume a claim binds to
//! (the smallest Available volume that fits), and what becomes of a volume whose claim is
//! gone (Released, then deleted or retained as its reclaim policy says).

use std::collections::BTreeMap;

use client::selectors::{selector_matches, term_matches};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Set on a claim once the binder has bound it.
pub(crate) const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set by the scheduler on a WaitForFirstConsumer claim: the node its first pod runs on.
pub(crate) const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
pub(crate) const WAIT_FOR_FIRST_CONSUMER: &str = "WaitForFirstConsumer";

/// A volume's `status.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VolumePhase {
    Available,
    Bound,
    Released,
}

impl VolumePhase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            VolumePhase::Available => "Available",
            VolumePhase::Bound => "Bound",
            VolumePhase::Released => "Released",
        }
    }
}

/// What to do for one claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClaimPlan {
    /// Bound already, or nothing fits yet: wait for a change.
    Wait,
    /// Bind the claim to this volume: the volume's claimRef first (the lock), then the
    /// claim's volumeName, then both statuses.
    Bind { volume: String },
}

/// What to do for one volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VolumePlan {
    Nothing,
    /// Write `status.phase`.
    Phase(VolumePhase),
    /// Its claim is gone and its reclaim policy is Delete.
    Delete,
}

fn phase_of(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The class a claim asks for: `""` when it names none.
pub(crate) fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

fn volume_class(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

/// Bytes of a quantity (`1Gi`, `500M`, `1024`); 0 when unreadable.
pub(crate) fn bytes(q: &Quantity) -> u128 {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mult: u128 = match unit {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return 0,
    };
    num.parse::<f64>()
        .map(|n| (n * mult as f64) as u128)
        .unwrap_or(0)
}

/// The storage a claim requests.
pub(crate) fn requested(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
}

fn capacity(pv: &PersistentVolume) -> u128 {
    pv.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map_or(0, bytes)
}

/// Whether the volume's claimRef names this claim (by uid when the ref has one).
pub(crate) fn refers_to(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    let uid_ok = match (r.uid.as_deref(), claim.metadata.uid.as_deref()) {
        (Some(a), Some(b)) if !a.is_empty() => a == b,
        _ => true,
    };
    r.name == claim.metadata.name && r.namespace == claim.metadata.namespace && uid_ok
}

/// Whether `pv` satisfies the claim: class, access modes, size, selector, volume mode.
pub(crate) fn fits(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let (Some(ps), Some(cs)) = (pv.spec.as_ref(), claim.spec.as_ref()) else {
        return false;
    };
    let modes = ps.access_modes.clone().unwrap_or_default();
    let wanted = cs.access_modes.clone().unwrap_or_default();
    let selected = cs
        .selector
        .as_ref()
        .is_none_or(|sel| selector_matches(sel, &pv.metadata.labels.clone().unwrap_or_default()));
    let mode = |m: Option<&String>| m.map_or("Filesystem", |s| s.as_str()).to_string();
    volume_class(pv) == claim_class(claim)
        && wanted.iter().all(|m| modes.contains(m))
        && capacity(pv) >= requested(claim).map_or(0, bytes)
        && selected
        && mode(ps.volume_mode.as_ref()) == mode(cs.volume_mode.as_ref())
}

/// Whether the volume is reachable from `node` (its name and labels), as its nodeAffinity says.
pub(crate) fn reachable_from(
    pv: &PersistentVolume,
    node: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    pv.spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .is_none_or(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| term_matches(t, node, labels))
        })
}

/// The inputs of [`plan_claim`].
pub(crate) struct ClaimWorld<'a> {
    pub volumes: &'a [&'a PersistentVolume],
    pub class: Option<&'a StorageClass>,
    /// The labels of the node the claim's selected-node annotation names, if any.
    pub selected_node: Option<(&'a str, BTreeMap<String, String>)>,
}

/// Whether the claim waits for its first pod to be scheduled before it binds.
pub(crate) fn waits_for_consumer(
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
) -> bool {
    let wffc = class
        .and_then(|c| c.volume_binding_mode.as_deref())
        .is_some_and(|m| m == WAIT_FOR_FIRST_CONSUMER);
    wffc && !claim
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(SELECTED_NODE))
}

/// Which volume the claim binds to, if any.
pub(crate) fn plan_claim(claim: &PersistentVolumeClaim, w: &ClaimWorld) -> ClaimPlan {
    if claim.metadata.deletion_timestamp.is_some() {
        return ClaimPlan::Wait;
    }
    let named = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|n| !n.is_empty());
    let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    if let Some(name) = named {
        // Pre-bound (or half-bound): only that volume, and only if it is free or ours.
        let Some(pv) = w
            .volumes
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name))
        else {
            return ClaimPlan::Wait;
        };
        let free = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_none();
        let done = bound && refers_to(pv, claim) && phase_of(pv) == "Bound";
        return if !done && (free || refers_to(pv, claim)) {
            ClaimPlan::Bind {
                volume: name.to_string(),
            }
        } else {
            ClaimPlan::Wait
        };
    }
    // A volume pre-bound to this claim wins over every other.
    if let Some(pv) = w.volumes.iter().find(|v| refers_to(v, claim)) {
        return ClaimPlan::Bind {
            volume: pv.metadata.name.clone().unwrap_or_default(),
        };
    }
    if waits_for_consumer(claim, w.class) {
        return ClaimPlan::Wait;
    }
    w.volumes
        .iter()
        .filter(|v| v.spec.as_ref().is_some_and(|s| s.claim_ref.is_none()))
        .filter(|v| v.metadata.deletion_timestamp.is_none())
        .filter(|v| matches!(phase_of(v), "" | "Available" | "Pending"))
        .filter(|v| fits(v, claim))
        .filter(|v| {
            w.selected_node
                .as_ref()
                .is_none_or(|(n, labels)| reachable_from(v, n, labels))
        })
        .min_by_key(|v| (capacity(v), v.metadata.name.clone()))
        .map_or(ClaimPlan::Wait, |v| ClaimPlan::Bind {
            volume: v.metadata.name.clone().unwrap_or_default(),
        })
}

/// What becomes of a volume, given the claim its claimRef names (`None`: no such claim).
pub(crate) fn plan_volume(
    pv: &PersistentVolume,
    claim: Option<&PersistentVolumeClaim>,
) -> VolumePlan {
    if pv.metadata.deletion_timestamp.is_some() {
        return VolumePlan::Nothing;
    }
    let phase = phase_of(pv);
    let want = |p: VolumePhase| {
        if phase == p.as_str() {
            VolumePlan::Nothing
        } else {
            VolumePlan::Phase(p)
        }
    };
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return want(VolumePhase::Available);
    };
    let has_uid = r.uid.as_deref().is_some_and(|u| !u.is_empty());
    match claim {
        Some(c) if refers_to(pv, c) => {
            let named = c.spec.as_ref().and_then(|s| s.volume_name.as_deref());
            if named == pv.metadata.name.as_deref() {
                want(VolumePhase::Bound)
            } else {
                // Half-bound: the claim side is the binder's next step.
                VolumePlan::Nothing
            }
        }
        // Pre-bound to a claim that does not exist yet: it waits, available to it alone.
        _ if !has_uid => want(VolumePhase::Available),
        _ => {
            let policy = pv
                .spec
                .as_ref()
                .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                .unwrap_or("Retain");
            if policy == "Delete" {
                VolumePlan::Delete
            } else {
                want(VolumePhase::Released)
            }
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
