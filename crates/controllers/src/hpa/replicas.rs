//! How many replicas one resource metric asks for: Kubernetes' replica calculator, for a
//! target utilization (percent of the pods' requests) or a target average value, with its
//! rules for pods that have no metrics yet or are not ready.

use std::collections::BTreeMap;

/// One pod of the scale target, as the calculator sees it.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodSample {
    pub name: String,
    /// The pod's request of the resource (cpu in millicores, memory in bytes); `None` when
    /// a container has no request.
    pub request: Option<i64>,
    /// The pod's usage; `None` when it has no metrics.
    pub usage: Option<i64>,
    /// Deleting or failed: left out entirely.
    pub ignored: bool,
    /// Pending, or (for cpu) not ready within its initialization period.
    pub unready: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Target {
    /// Percent of the request.
    Utilization(i32),
    /// An absolute average per pod, in the resource's unit.
    AverageValue(i64),
}

/// A metric's answer: the replicas it wants and what it measured.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Proposal {
    pub replicas: i32,
    /// Measured utilization in percent (utilization targets only).
    pub utilization: Option<i32>,
    /// Measured average usage per pod.
    pub average: i64,
}

fn ratio(
    metrics: &BTreeMap<&str, i64>,
    requests: &BTreeMap<&str, i64>,
    t: Target,
) -> (f64, Option<i32>, i64) {
    let sum: i64 = metrics.values().sum();
    let average = if metrics.is_empty() {
        0
    } else {
        sum / metrics.len() as i64
    };
    match t {
        Target::Utilization(target) => {
            let req: i64 = metrics.keys().filter_map(|p| requests.get(p)).sum();
            let util = if req > 0 { sum * 100 / req } else { 0 };
            (
                util as f64 / f64::from(target.max(1)),
                Some(util as i32),
                average,
            )
        }
        Target::AverageValue(v) => (
            sum as f64 / metrics.len().max(1) as f64 / v.max(1) as f64,
            None,
            average,
        ),
    }
}

/// The replicas `resource` asks for at `target`, given the target's `current` replicas.
pub(crate) fn replicas_for(
    resource: &str,
    current: i32,
    pods: &[PodSample],
    target: Target,
    tolerance: f64,
) -> Result<Proposal, String> {
    let pods: Vec<&PodSample> = pods.iter().filter(|p| !p.ignored).collect();
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let requests = requests_of(resource, &pods, target)?;
    let mut metrics: BTreeMap<&str, i64> = pods
        .iter()
        .filter(|p| !p.unready)
        .filter_map(|p| Some((p.name.as_str(), p.usage?)))
        .collect();
    let missing: Vec<&PodSample> = pods.iter().filter(|p| p.usage.is_none()).copied().collect();
    let unready: Vec<&PodSample> = pods
        .iter()
        .filter(|p| p.unready && p.usage.is_some())
        .copied()
        .collect();
    if metrics.is_empty() {
        return Err(format!(
            "did not receive metrics for {resource} of any ready pod of the target"
        ));
    }
    let ready = metrics.len() as f64;
    let (usage_ratio, utilization, average) = ratio(&metrics, &requests, target);
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average,
    };
    let scale_up_with_unready = !unready.is_empty() && usage_ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if (1.0 - usage_ratio).abs() <= tolerance {
            return Ok(proposal(current));
        }
        return Ok(proposal((usage_ratio * ready).ceil() as i32));
    }
    fill_in(
        &mut metrics,
        &requests,
        &missing,
        &unready,
        usage_ratio,
        target,
    );
    let (new_ratio, _, _) = ratio(&metrics, &requests, target);
    let flipped = (usage_ratio < 1.0 && new_ratio > 1.0) || (usage_ratio > 1.0 && new_ratio < 1.0);
    if (1.0 - new_ratio).abs() <= tolerance || flipped {
        return Ok(proposal(current));
    }
    let n = (new_ratio * metrics.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && n > current) || (new_ratio > 1.0 && n < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(n))
}

/// Each pod's request, by name (utilization targets only; none for average values).
fn requests_of<'a>(
    resource: &str,
    pods: &[&'a PodSample],
    target: Target,
) -> Result<BTreeMap<&'a str, i64>, String> {
    let mut requests = BTreeMap::new();
    if matches!(target, Target::Utilization(_)) {
        for p in pods {
            let r = p
                .request
                .ok_or_else(|| format!("missing request for {resource} in pod {}", p.name))?;
            requests.insert(p.name.as_str(), r);
        }
    }
    Ok(requests)
}

/// Fills in the usage of the pods the first estimate left out. Scaling down, a pod without
/// metrics counts as using the target (at least its whole request); scaling up, as using
/// nothing. Unready pods count as using nothing.
fn fill_in<'a>(
    metrics: &mut BTreeMap<&'a str, i64>,
    requests: &BTreeMap<&'a str, i64>,
    missing: &[&'a PodSample],
    unready: &[&'a PodSample],
    usage_ratio: f64,
    target: Target,
) {
    for p in missing {
        let v = if usage_ratio < 1.0 {
            match target {
                Target::Utilization(t) => requests[p.name.as_str()] * i64::from(t.max(100)) / 100,
                Target::AverageValue(v) => v,
            }
        } else if usage_ratio > 1.0 {
            0
        } else {
            continue;
        };
        metrics.insert(p.name.as_str(), v);
    }
    if !unready.is_empty() && usage_ratio > 1.0 {
        for p in unready {
            metrics.insert(p.name.as_str(), 0);
        }
    }
}

#[cfg(test)]
#[path = "replicas_tests.rs"]
mod tests;
