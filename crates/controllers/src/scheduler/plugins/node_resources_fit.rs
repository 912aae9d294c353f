//! NodeResourcesFit: the pod's requests (cpu, memory, ephemeral-storage, the pod count and
//! extended resources) fit in what the node has left; scored LeastAllocated — the node
//! with the most room left after placing the pod scores highest.

use crate::scheduler::framework::{
    CycleState, FilterPlugin, Plugin, ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use crate::scheduler::resources::Resources;

pub(crate) const NAME: &str = "NodeResourcesFit";
pub(crate) const TOO_MANY_PODS: &str = "Too many pods";

pub(crate) struct NodeResourcesFit;

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
}

/// What is short on `node` for `requests`: one "Insufficient <resource>" per resource.
pub(crate) fn insufficient(requests: &Resources, node: &NodeInfo) -> Vec<String> {
    let (have, used) = (&node.allocatable, &node.requested);
    let mut out = Vec::new();
    if used.pods + 1 > have.pods {
        out.push(TOO_MANY_PODS.to_string());
    }
    for (name, want, have, used) in [
        ("cpu", requests.milli_cpu, have.milli_cpu, used.milli_cpu),
        ("memory", requests.memory, have.memory, used.memory),
        (
            "ephemeral-storage",
            requests.ephemeral_storage,
            have.ephemeral_storage,
            used.ephemeral_storage,
        ),
    ] {
        if want > 0 && want > have - used {
            out.push(format!("Insufficient {name}"));
        }
    }
    for (name, want) in &requests.scalar {
        let have = have.scalar.get(name).copied().unwrap_or(0);
        let used = used.scalar.get(name).copied().unwrap_or(0);
        if *want > 0 && *want > have - used {
            out.push(format!("Insufficient {name}"));
        }
    }
    out
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient(&pod.requests, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status {
                code: crate::scheduler::framework::Code::Unschedulable,
                reasons,
            }
        }
    }
}

/// The fraction of cpu and memory requested once the pod is placed (non-zero requests).
pub(crate) fn utilization(pod: &PodInfo, node: &NodeInfo) -> [(i64, i64); 2] {
    let r = &node.non_zero_requested;
    let a = &node.allocatable;
    [
        (r.milli_cpu + pod.non_zero.milli_cpu, a.milli_cpu),
        (r.memory + pod.non_zero.memory, a.memory),
    ]
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let parts = utilization(pod, node);
        let free = |(req, cap): (i64, i64)| {
            if cap == 0 || req > cap {
                0
            } else {
                (cap - req) * MAX_NODE_SCORE / cap
            }
        };
        parts.iter().map(|p| free(*p)).sum::<i64>() / parts.len() as i64
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::testing::{node, on, pod, pod_requesting};

    #[test]
    fn requests_must_fit_what_is_left() {
        let busy = pod_requesting("busy", "1500m", "1Gi");
        let gpu = pod(
            "gpu",
            json!({}),
            json!({"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"example.com/gpu": "1"}}}]}),
        );
        for (p, want) in [
            (pod_requesting("p", "500m", "1Gi"), vec![]),
            (pod_requesting("p", "600m", "1Gi"), vec!["Insufficient cpu"]),
            (
                pod_requesting("p", "100m", "4Gi"),
                vec!["Insufficient memory"],
            ),
            (
                pod_requesting("p", "3", "4Gi"),
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            (gpu, vec!["Insufficient example.com/gpu"]),
        ] {
            let mut n = NodeInfo::of(node("n", "2", "4Gi", json!({})).into());
            n.add_pod(on(busy.clone(), "n"));
            let s = NodeResourcesFit.filter(&CycleState::default(), &p, &n);
            assert_eq!(s.reasons, want, "{:?}", p.requests);
            assert_eq!(s.is_success(), want.is_empty());
        }
    }

    #[test]
    fn the_pod_count_is_a_resource() {
        let mut n = NodeInfo::of(
            node(
                "n",
                "2",
                "4Gi",
                json!({"status": {"allocatable": {"pods": "1"}}}),
            )
            .into(),
        );
        let p = pod_requesting("p", "0", "0");
        assert!(NodeResourcesFit
            .filter(&CycleState::default(), &p, &n)
            .is_success());
        n.add_pod(on(pod_requesting("q", "0", "0"), "n"));
        let s = NodeResourcesFit.filter(&CycleState::default(), &p, &n);
        assert_eq!(s.reasons, vec![TOO_MANY_PODS]);
    }

    #[test]
    fn least_allocated_prefers_room() {
        let p = pod_requesting("p", "1", "1Gi");
        for (cpu, mem, want) in [
            ("4", "4Gi", 75),
            ("2", "2Gi", 50),
            ("1", "1Gi", 0),
            ("8", "2Gi", 68),
        ] {
            let n = NodeInfo::of(node("n", cpu, mem, json!({})).into());
            assert_eq!(
                NodeResourcesFit.score(&CycleState::default(), &p, &n),
                want,
                "{cpu} {mem}"
            );
        }
    }
}
