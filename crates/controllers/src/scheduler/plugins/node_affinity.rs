//! NodeAffinity: `spec.nodeSelector` and required node affinity filter nodes; preferred
//! node affinity scores them by the summed weight of the terms they match.

use k8s_openapi::api::core::v1::PodSpec;

use crate::scheduler::framework::{
    normalize_by_max, CycleState, FilterPlugin, Plugin, ScorePlugin, Status,
};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use client::selectors::{term_matches, Labels};

pub(crate) const NAME: &str = "NodeAffinity";
pub(crate) const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

pub(crate) struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
}

/// Whether the pod's nodeSelector and required node affinity admit the node.
pub(crate) fn required_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    spec_admits(pod.spec(), &node.name, &node.labels)
}

/// Whether a pod spec's nodeSelector and required node affinity admit a node with this
/// name and these labels.
pub(crate) fn spec_admits(spec: &PodSpec, node_name: &str, labels: &Labels) -> bool {
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| term_matches(t, node_name, labels))
        })
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if required_matches(pod, node) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let preferred = pod
            .spec()
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        preferred
            .into_iter()
            .flatten()
            .filter(|p| term_matches(&p.preference, &node.name, &node.labels))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        normalize_by_max(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::framework::{Code, Profile};
    use crate::scheduler::testing::{cache, node, pod, score_all};

    fn labelled(name: &str, labels: serde_json::Value) -> k8s_openapi::api::core::v1::Node {
        node(name, "1", "1Gi", json!({"metadata": {"labels": labels}}))
    }

    #[test]
    fn selector_and_required_terms_filter() {
        let n = NodeInfo::of(labelled("n1", json!({"disk": "ssd", "zone": "a"})).into());
        for (spec, want) in [
            (json!({}), Code::Success),
            (json!({"nodeSelector": {"disk": "ssd"}}), Code::Success),
            (
                json!({"nodeSelector": {"disk": "hdd"}}),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                    {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]}}}}),
                Code::Success,
            ),
            (
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]}}}}),
                Code::UnschedulableAndUnresolvable,
            ),
        ] {
            let mut s = spec.clone();
            s["containers"] = json!([]);
            let p = pod("p", json!({}), s);
            assert_eq!(
                NodeAffinity.filter(&CycleState::default(), &p, &n).code,
                want,
                "{spec}"
            );
        }
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let c = cache(
            vec![
                labelled("both", json!({"disk": "ssd", "zone": "a"})),
                labelled("disk", json!({"disk": "ssd"})),
                labelled("none", json!({})),
            ],
            vec![],
        );
        let p = pod(
            "p",
            json!({}),
            json!({"containers": [], "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 30, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]}}}),
        );
        let profile = Profile {
            score: vec![(Box::new(NodeAffinity), 2)],
            ..Default::default()
        };
        let mut got = score_all(&profile, &c, &p);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("both".into(), 100),
                ("disk".into(), 75),
                ("none".into(), 0)
            ]
        );
    }
}
