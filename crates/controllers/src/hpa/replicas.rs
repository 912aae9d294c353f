//! How many replicas one resource metric asks for: Kubernetes' replica calculator, for a
//! target utilization (percent of the pods' requests) or a target average value, with its
//! rules for pods that have no metrics yet or are not ready.

use std::collections::BTreeMap;

/// One pod of the scale target, as the calculator sees it.
#[derive(Clone, Debug, Default)]
pub struct PodSample {
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
pub enum Target {
    /// Percent of the request.
    Utilization(i32),
    /// An absolute average per pod, in the resource's unit.
    AverageValue(i64),
}

/// A metric's answer: the replicas it wants and what it measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
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
pub fn replicas_for(
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
    let mut requests = BTreeMap::new();
    if matches!(target, Target::Utilization(_)) {
        for p in &pods {
            let r = p
                .request
                .ok_or_else(|| format!("missing request for {resource} in pod {}", p.name))?;
            requests.insert(p.name.as_str(), r);
        }
    }
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
    // Scaling down, a pod without metrics counts as using the target (at least its whole
    // request); scaling up, as using nothing. Unready pods count as using nothing.
    for p in &missing {
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
    if scale_up_with_unready {
        for p in &unready {
            metrics.insert(p.name.as_str(), 0);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, request: i64, usage: Option<i64>) -> PodSample {
        PodSample {
            name: name.into(),
            request: Some(request),
            usage,
            ..Default::default()
        }
    }

    const TOL: f64 = 0.1;

    #[test]
    fn utilization_scales_by_the_ratio_to_the_target() {
        let pods = [pod("a", 100, Some(150)), pod("b", 100, Some(150))];
        // 150% of request against a 50% target: three times the ready pods.
        let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
        assert_eq!(p.replicas, 6);
        assert_eq!(p.utilization, Some(150));
        let pods = [
            pod("a", 100, Some(10)),
            pod("b", 100, Some(10)),
            pod("c", 100, Some(10)),
        ];
        let p = replicas_for("cpu", 3, &pods, Target::Utilization(50), TOL).unwrap();
        assert_eq!(p.replicas, 1);
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        let pods = [pod("a", 100, Some(54)), pod("b", 100, Some(54))];
        let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn missing_metrics_damp_the_change() {
        // Scaling up: the pod without metrics counts as 0%.
        let pods = [pod("a", 100, Some(200)), pod("b", 100, None)];
        let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
        assert_eq!(p.replicas, 4);
        // Scaling down: it counts as 100% of its request, which flips the direction.
        let pods = [pod("a", 100, Some(20)), pod("b", 100, None)];
        let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn unready_pods_count_as_idle_when_scaling_up_and_ignored_pods_not_at_all() {
        let mut u = pod("u", 100, Some(500));
        u.unready = true;
        let mut gone = pod("g", 100, Some(1000));
        gone.ignored = true;
        let pods = [pod("a", 100, Some(100)), u, gone];
        // Ready pod at 100% of a 50% target; the unready pod counts as 0: (100+0)/200 = 50%.
        let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn average_value_and_errors() {
        let pods = [pod("a", 0, Some(300)), pod("b", 0, Some(100))];
        let p = replicas_for("memory", 2, &pods, Target::AverageValue(100), TOL).unwrap();
        assert_eq!(p.replicas, 4);
        assert_eq!(p.average, 200);
        let mut no_req = pod("x", 0, Some(1));
        no_req.request = None;
        let e = replicas_for("cpu", 1, &[no_req], Target::Utilization(50), TOL).unwrap_err();
        assert!(e.contains("missing request for cpu in pod x"), "{e}");
        assert!(replicas_for("cpu", 1, &[], Target::Utilization(50), TOL).is_err());
        let e =
            replicas_for("cpu", 1, &[pod("a", 1, None)], Target::Utilization(50), TOL).unwrap_err();
        assert!(e.contains("did not receive metrics"), "{e}");
    }
}
