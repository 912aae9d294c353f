//! NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory would be used in
//! equal proportion once the pod is placed, so no resource is stranded and workloads with
//! opposite profiles share nodes instead of competing for one resource.

use crate::scheduler::framework::{CycleState, Plugin, ScorePlugin, MAX_NODE_SCORE};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::plugins::node_resources_fit::utilization;
use crate::scheduler::pod_info::PodInfo;

pub(crate) const NAME: &str = "NodeResourcesBalancedAllocation";

pub(crate) struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let fractions: Vec<f64> = utilization(pod, node)
            .iter()
            .map(|(req, cap)| {
                if *cap == 0 {
                    1.0
                } else {
                    (*req as f64 / *cap as f64).min(1.0)
                }
            })
            .collect();
        let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
        let var =
            fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / fractions.len() as f64;
        ((1.0 - var.sqrt()) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::testing::{node, pod_requesting};

    #[test]
    fn balanced_use_scores_highest() {
        let p = pod_requesting("p", "1", "1Gi");
        for (cpu, mem, want) in [("4", "4Gi", 100), ("2", "4Gi", 87), ("1", "8Gi", 56)] {
            let n = NodeInfo::of(node("n", cpu, mem, json!({})).into());
            assert_eq!(
                BalancedAllocation.score(&CycleState::default(), &p, &n),
                want,
                "{cpu} {mem}"
            );
        }
    }
}
