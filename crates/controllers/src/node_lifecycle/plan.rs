//! What the node lifecycle controller decides, as pure functions: the taint a node's
//! state calls for, its taints after that, when each pod on a NoExecute-tainted node is
//! due for eviction, and the next free pod CIDR.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use client::selectors::tolerates;
use client::state::ConditionStatus;
use k8s_openapi::api::core::v1::{Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{NOT_READY, UNREACHABLE};

/// The taint key a node's state calls for: unreachable when its heartbeats stopped
/// (`stale`) or its Ready condition is missing or Unknown, not-ready when Ready=False,
/// none when Ready=True.
pub(crate) fn state_taint(stale: bool, ready: Option<ConditionStatus>) -> Option<&'static str> {
    match (stale, ready) {
        (true, _) => Some(UNREACHABLE),
        (false, Some(ConditionStatus::False)) => Some(NOT_READY),
        (false, Some(ConditionStatus::True)) => None,
        (false, _) => Some(UNREACHABLE),
    }
}

/// The node's taints with the state taints as `want` says: the other state taint goes,
/// the wanted one is there as NoSchedule and NoExecute (added `now` when new), and every
/// other taint stays as it is.
pub(crate) fn next_taints(taints: &[Taint], want: Option<&str>, now: Timestamp) -> Vec<Taint> {
    let mut next: Vec<Taint> = taints
        .iter()
        .filter(|t| (t.key != UNREACHABLE && t.key != NOT_READY) || Some(t.key.as_str()) == want)
        .cloned()
        .collect();
    if let Some(k) = want {
        for effect in ["NoSchedule", "NoExecute"] {
            if !next.iter().any(|t| t.key == k && t.effect == effect) {
                next.push(Taint {
                    key: k.into(),
                    effect: effect.into(),
                    time_added: Some(Time(now)),
                    value: None,
                });
            }
        }
    }
    next
}

/// When `pod` is to be evicted for the NoExecute taints `no_exec` (seconds since the
/// epoch): at once for a taint it does not tolerate, `tolerationSeconds` after the taint
/// was added for one it tolerates for a while, never for one it tolerates for good.
pub(crate) fn eviction_due(pod: &Pod, no_exec: &[&Taint], now_s: i64) -> Option<i64> {
    let tols = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut due: Option<i64> = None;
    for t in no_exec {
        let added = t.time_added.as_ref().map_or(now_s, |x| x.0.as_second());
        let matching: Vec<_> = tols.iter().filter(|tol| tolerates(tol, t)).collect();
        let at = if matching.is_empty() {
            Some(added)
        } else if matching.iter().any(|tol| tol.toleration_seconds.is_none()) {
            None
        } else {
            let secs = matching
                .iter()
                .filter_map(|tol| tol.toleration_seconds)
                .min();
            Some(added + secs.unwrap_or(0).max(0))
        };
        due = match (due, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    due
}

/// Of the pods on a node with `taints`, those due for eviction now, and how long until
/// the next one is.
pub(crate) fn evictions(
    pods: &[Arc<Pod>],
    taints: &[Taint],
    now_s: i64,
) -> (Vec<Arc<Pod>>, Option<Duration>) {
    let no_exec: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_exec.is_empty() {
        return (Vec::new(), None);
    }
    let mut now_due = Vec::new();
    let mut next: Option<i64> = None;
    for p in pods {
        match eviction_due(p, &no_exec, now_s) {
            Some(due) if due <= now_s => now_due.push(p.clone()),
            Some(due) => next = Some(next.map_or(due, |n| n.min(due))),
            None => {}
        }
    }
    let wait = next.map(|t| Duration::from_secs((t - now_s).max(1) as u64));
    (now_due, wait)
}

/// The lowest `/mask` block of `base/bits` that `used` does not hold.
pub(crate) fn free_cidr(
    base: Ipv4Addr,
    bits: u8,
    mask: u8,
    used: &BTreeSet<String>,
) -> Option<String> {
    if mask < bits || mask > 32 {
        return None;
    }
    let count = 1u64 << (mask - bits);
    let step = 1u64 << (32 - mask);
    let base = u64::from(u32::from(base)) & !((1u64 << (32 - bits)) - 1);
    (0..count)
        .map(|i| format!("{}/{mask}", Ipv4Addr::from((base + i * step) as u32)))
        .find(|c| !used.contains(c))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
