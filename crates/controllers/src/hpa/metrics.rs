//! From pods and their PodMetrics to what the replica calculator needs: one
//! [`PodSample`] per pod of the scale target, for one resource.

use client::state::PodPhase;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::replicas::PodSample;
use super::HpaConfig;
use crate::pods;
use crate::scheduler::resources::{parse, parse_milli, CPU};
use client::metrics::PodMetrics;

/// Metrics older than this count as missing: their kubelet stopped reporting.
const STALE_SECS: i64 = 120;

fn quantity(resource: &str, s: &str) -> Option<i64> {
    if resource == CPU {
        parse_milli(s)
    } else {
        parse(s)
    }
}

fn seconds(t: &str) -> Option<i64> {
    t.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// A duration as metrics write it: "15s", "1m", "1m30s", "500ms".
fn window_secs(w: &str) -> i64 {
    let (mut total, mut num) = (0f64, String::new());
    let mut chars = w.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().unwrap_or(0.0);
        num.clear();
        total += match c {
            'h' => n * 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                n / 1000.0
            }
            'm' => n * 60.0,
            _ => n,
        };
    }
    total.ceil() as i64
}

/// The sample of `pod` for `resource`, limited to container `container` when given.
pub(crate) fn sample(
    pod: &Pod,
    m: Option<&PodMetrics>,
    resource: &str,
    container: Option<&str>,
    cfg: &HpaConfig,
    now: i64,
) -> PodSample {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec_containers = pod.spec.as_ref().map(|s| &s.containers[..]).unwrap_or(&[]);
    let wanted = |n: &str| container.is_none_or(|c| c == n);
    let mut request = Some(0i64);
    for c in spec_containers.iter().filter(|c| wanted(&c.name)) {
        let r = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))
            .and_then(|q| quantity(resource, &q.0));
        request = match (request, r) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
    let fresh = m.filter(|m| {
        m.timestamp
            .as_deref()
            .and_then(seconds)
            .is_none_or(|t| now - t <= STALE_SECS)
    });
    let usage = fresh.map(|m| {
        m.containers
            .iter()
            .filter(|c| wanted(&c.name))
            .filter_map(|c| c.usage.get(resource))
            .filter_map(|q| quantity(resource, &q.0))
            .sum::<i64>()
    });
    let ignored = pods::is_deleting(pod) || pods::phase(pod) == PodPhase::Failed;
    let unready = pods::phase(pod) == PodPhase::Pending
        || (resource == CPU && cpu_unready(pod, fresh, cfg, now));
    PodSample {
        name,
        request,
        usage,
        ignored,
        unready,
    }
}

/// Kubernetes' rule for cpu: a pod still in its initialization period counts only once it
/// is ready and its metrics were taken after it became ready; later, a pod counts unless
/// it has never been ready since shortly after it started.
fn cpu_unready(pod: &Pod, m: Option<&PodMetrics>, cfg: &HpaConfig, now: i64) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return true;
    };
    let Some(ready) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
    else {
        return true;
    };
    let Some(start) = status.start_time.as_ref().map(|t| t.0.as_second()) else {
        return true;
    };
    let changed = ready
        .last_transition_time
        .as_ref()
        .map_or(0, |t| t.0.as_second());
    let is_ready = ready.status == "True";
    if start + cfg.cpu_initialization_period.as_secs() as i64 > now {
        let sampled = m.and_then(|m| m.timestamp.as_deref()).and_then(seconds);
        let window = m.and_then(|m| m.window.as_deref()).map_or(0, window_secs);
        !is_ready || sampled.is_some_and(|t| t < changed + window)
    } else {
        !is_ready && start + cfg.initial_readiness_delay.as_secs() as i64 > changed
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
