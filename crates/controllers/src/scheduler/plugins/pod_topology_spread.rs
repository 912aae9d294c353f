//! PodTopologySpread: `topologySpreadConstraints` — matching pods spread over topology
//! domains with at most `maxSkew` between the fullest and the emptiest domain.
//! DoNotSchedule constraints filter; ScheduleAnyway constraints score.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{
    CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreScorePlugin, ScorePlugin, Status,
    MAX_NODE_SCORE,
};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::plugins::node_affinity::required_matches;
use crate::scheduler::pod_info::{AffinityTerm, PodInfo};
use client::selectors::selector_matches;

pub(crate) const NAME: &str = "PodTopologySpread";
pub(crate) const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub(crate) const MISSING_LABEL_REASON: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

pub(crate) struct PodTopologySpread;

/// One constraint with the matching pods counted per domain.
struct Counted {
    key: String,
    max_skew: i64,
    counts: HashMap<String, i64>,
    /// The emptiest eligible domain's count (0 when there are fewer than minDomains).
    min: i64,
    /// 1 when the incoming pod matches its own selector.
    self_match: i64,
}

fn constraints<'a>(pod: &'a PodInfo, action: &str) -> Vec<&'a TopologySpreadConstraint> {
    pod.spec()
        .topology_spread_constraints
        .iter()
        .flatten()
        .filter(|c| c.when_unsatisfiable == action)
        .collect()
}

/// The constraint's selector with `matchLabelKeys` folded in.
fn selector(c: &TopologySpreadConstraint, pod: &PodInfo) -> Option<LabelSelector> {
    let mut sel = c.label_selector.clone()?;
    for k in c.match_label_keys.iter().flatten() {
        if let Some(v) = pod.labels.get(k) {
            sel.match_labels
                .get_or_insert_with(BTreeMap::new)
                .insert(k.clone(), v.clone());
        }
    }
    Some(sel)
}

fn count(
    c: &TopologySpreadConstraint,
    pod: &PodInfo,
    nodes: &[&NodeInfo],
    cache: &Cache,
) -> Counted {
    let honor_affinity = c.node_affinity_policy.as_deref().unwrap_or("Honor") == "Honor";
    let eligible = |n: &NodeInfo| {
        n.node.is_some()
            && n.labels.contains_key(&c.topology_key)
            && (!honor_affinity || required_matches(pod, n))
    };
    let mut counts: HashMap<String, i64> = HashMap::new();
    for n in nodes.iter().filter(|n| eligible(n)) {
        counts.entry(n.labels[&c.topology_key].clone()).or_default();
    }
    let sel = selector(c, pod);
    let term = AffinityTerm::from_parts(
        sel.clone(),
        [pod.namespace.clone()].into(),
        None,
        c.topology_key.clone(),
    );
    for p in cache.matching_pods(&term) {
        if p.terminating {
            continue;
        }
        if let Some(n) = cache.node(&p.node_name).filter(|n| eligible(n)) {
            if let Some(v) = counts.get_mut(&n.labels[&c.topology_key]) {
                *v += 1;
            }
        }
    }
    let min_domains = c.min_domains.unwrap_or(1).max(1) as usize;
    let min = if counts.len() < min_domains {
        0
    } else {
        counts.values().copied().min().unwrap_or(0)
    };
    Counted {
        key: c.topology_key.clone(),
        max_skew: i64::from(c.max_skew),
        counts,
        min,
        self_match: i64::from(sel.is_some_and(|s| selector_matches(&s, &pod.labels))),
    }
}

struct FilterState(Vec<Counted>);
struct ScoreState(Vec<(Counted, f64)>);

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, cache: &Cache) -> Status {
        let cs = constraints(pod, "DoNotSchedule");
        if cs.is_empty() {
            return Status::skip();
        }
        let nodes: Vec<&NodeInfo> = cache.nodes().iter().collect();
        let counted = cs.iter().map(|c| count(c, pod, &nodes, cache)).collect();
        state.write(NAME, FilterState(counted));
        Status::success()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(FilterState(cs)) = state.read::<FilterState>(NAME) else {
            return Status::success();
        };
        for c in cs {
            let Some(v) = node.labels.get(&c.key) else {
                return Status::unresolvable(MISSING_LABEL_REASON);
            };
            let here = c.counts.get(v).copied().unwrap_or(0);
            if here + c.self_match - c.min > c.max_skew {
                return Status::unschedulable(REASON);
            }
        }
        Status::success()
    }
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        cache: &Cache,
    ) -> Status {
        let cs = constraints(pod, "ScheduleAnyway");
        if cs.is_empty() {
            return Status::skip();
        }
        let counted = cs
            .iter()
            .map(|c| {
                let counted = count(c, pod, nodes, cache);
                // More domains weigh more: as Kubernetes, log(domains + 2).
                let weight = ((counted.counts.len() + 2) as f64).ln();
                (counted, weight)
            })
            .collect();
        state.write(NAME, ScoreState(counted));
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    /// Raw score: the weighted count of matching pods in the node's domains (lower is
    /// better); -1 marks a node missing a topology key.
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(ScoreState(cs)) = state.read::<ScoreState>(NAME) else {
            return 0;
        };
        let mut total = 0.0;
        for (c, weight) in cs {
            let Some(v) = node.labels.get(&c.key) else {
                return -1;
            };
            let n = c.counts.get(v).copied().unwrap_or(0);
            total += (n as f64) * weight + (c.max_skew - 1) as f64;
        }
        total.round() as i64
    }

    fn normalize(&self, state: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        if state.read::<ScoreState>(NAME).is_none() {
            return;
        }
        let valid = scores.iter().copied().filter(|s| *s >= 0);
        let (min, max) = valid.fold((i64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
        for s in scores.iter_mut() {
            *s = match *s {
                -1 => 0,
                _ if max == 0 => MAX_NODE_SCORE,
                v => MAX_NODE_SCORE * (max + min - v) / max,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::framework::Profile;
    use crate::scheduler::testing::{cache, filter_all, node, on, pod, score_all};

    fn zoned(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
        node(
            name,
            "4",
            "8Gi",
            json!({"metadata": {"labels": {"zone": zone}}}),
        )
    }

    fn web(name: &str, when: &str, skew: i32) -> PodInfo {
        pod(
            name,
            json!({"labels": {"app": "web"}}),
            json!({
            "containers": [{"name": "c", "image": "i"}],
            "topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": "zone",
                "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}]}),
        )
    }

    fn profile() -> Profile {
        Profile {
            pre_filter: vec![Box::new(PodTopologySpread)],
            filter: vec![Box::new(PodTopologySpread)],
            pre_score: vec![Box::new(PodTopologySpread)],
            score: vec![(Box::new(PodTopologySpread), 2)],
        }
    }

    fn cluster() -> Cache {
        // Zone a holds two web pods, zone b one, zone c none; "nozone" has no zone label.
        cache(
            vec![
                zoned("a1", "a"),
                zoned("b1", "b"),
                zoned("c1", "c"),
                node("nozone", "4", "8Gi", json!({})),
            ],
            vec![
                on(web("w1", "DoNotSchedule", 1), "a1"),
                on(web("w2", "DoNotSchedule", 1), "a1"),
                on(web("w3", "DoNotSchedule", 1), "b1"),
            ],
        )
    }

    #[test]
    fn do_not_schedule_bounds_the_skew() {
        let c = cluster();
        for (skew, want) in [
            (1, vec!["c1"]),
            (2, vec!["b1", "c1"]),
            (3, vec!["a1", "b1", "c1"]),
        ] {
            let got: Vec<String> = filter_all(&profile(), &c, &web("p", "DoNotSchedule", skew))
                .into_iter()
                .filter(|(_, s)| s.is_success())
                .map(|(n, _)| n)
                .collect();
            let mut got = got;
            got.sort();
            assert_eq!(got, want, "maxSkew {skew}");
        }
        let s = filter_all(&profile(), &c, &web("p", "DoNotSchedule", 1));
        let nozone = s.iter().find(|(n, _)| n == "nozone").unwrap();
        assert_eq!(nozone.1.reasons, vec![MISSING_LABEL_REASON]);
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let c = cluster();
        let mut got = score_all(&profile(), &c, &web("p", "ScheduleAnyway", 1));
        got.sort();
        let score = |n: &str| got.iter().find(|(m, _)| m == n).unwrap().1;
        assert!(
            score("c1") > score("b1") && score("b1") > score("a1"),
            "{got:?}"
        );
        assert_eq!(score("nozone"), 0);
    }
}
