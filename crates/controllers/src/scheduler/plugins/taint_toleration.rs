//! TaintToleration: a node's NoSchedule and NoExecute taints keep off pods that do not
//! tolerate them; PreferNoSchedule taints only lower the node's score.

use crate::scheduler::framework::{
    normalize_by_max, CycleState, FilterPlugin, Plugin, ScorePlugin, Status,
};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use client::selectors::tolerated;

pub(crate) const NAME: &str = "TaintToleration";

pub(crate) struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let tolerations = pod.spec().tolerations.as_deref().unwrap_or_default();
        let untolerated = node.taints.iter().find(|t| {
            (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tolerations, t)
        });
        match untolerated {
            None => Status::success(),
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let tolerations: Vec<_> = pod
            .spec()
            .tolerations
            .iter()
            .flatten()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .cloned()
            .collect();
        node.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&tolerations, t))
            .count() as i64
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        normalize_by_max(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::framework::{Code, Profile};
    use crate::scheduler::testing::{cache, node, pod, score_all};

    fn tainted(name: &str, taints: serde_json::Value) -> k8s_openapi::api::core::v1::Node {
        node(name, "1", "1Gi", json!({"spec": {"taints": taints}}))
    }

    #[test]
    fn hard_taints_need_tolerations() {
        for (taints, tolerations, want) in [
            (json!([]), json!([]), Code::Success),
            (
                json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
                json!([]),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                json!([{"key": "gpu", "value": "true", "effect": "NoExecute"}]),
                json!([]),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                json!([{"key": "gpu", "value": "true", "effect": "PreferNoSchedule"}]),
                json!([]),
                Code::Success,
            ),
            (
                json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
                json!([{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]),
                Code::Success,
            ),
        ] {
            let n = NodeInfo::of(tainted("n", taints.clone()).into());
            let p = pod(
                "p",
                json!({}),
                json!({"containers": [], "tolerations": tolerations}),
            );
            let s = TaintToleration.filter(&CycleState::default(), &p, &n);
            assert_eq!(s.code, want, "{taints}");
        }
        let n = NodeInfo::of(
            tainted(
                "n",
                json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
            )
            .into(),
        );
        let p = pod("p", json!({}), json!({"containers": []}));
        assert_eq!(
            TaintToleration
                .filter(&CycleState::default(), &p, &n)
                .reasons,
            vec!["node(s) had untolerated taint {gpu: true}"]
        );
    }

    #[test]
    fn soft_taints_lower_the_score() {
        let soft = |k: &str| json!({"key": k, "value": "x", "effect": "PreferNoSchedule"});
        let c = cache(
            vec![
                tainted("clean", json!([])),
                tainted("one", json!([soft("a")])),
                tainted("two", json!([soft("a"), soft("b")])),
            ],
            vec![],
        );
        let p = pod(
            "p",
            json!({}),
            json!({"containers": [],
            "tolerations": [{"key": "b", "operator": "Exists"}]}),
        );
        let profile = Profile {
            score: vec![(Box::new(TaintToleration), 3)],
            ..Default::default()
        };
        let mut got = score_all(&profile, &c, &p);
        got.sort();
        assert_eq!(
            got,
            vec![("clean".into(), 100), ("one".into(), 0), ("two".into(), 0)]
        );
    }
}
