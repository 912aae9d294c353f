//! InterPodAffinity: required pod affinity and anti-affinity filter nodes by topology
//! domain (`topologyKey`); preferred terms, on the incoming pod and on the pods already
//! placed, score them.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::scheduler::cache::{Cache, TermKind};
use crate::scheduler::framework::{
    normalize_by_range, Code, CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreScorePlugin,
    ScorePlugin, Status,
};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::{AffinityTerm, PodInfo};

pub(crate) const NAME: &str = "InterPodAffinity";
pub(crate) const AFFINITY_REASON: &str = "node(s) didn't match pod affinity rules";
pub(crate) const ANTI_AFFINITY_REASON: &str = "node(s) didn't match pod anti-affinity rules";
pub(crate) const EXISTING_ANTI_AFFINITY_REASON: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

pub(crate) struct InterPodAffinity;

/// Counts per topology key, then per value.
type TopologyCounts = HashMap<String, HashMap<String, i64>>;

fn add(counts: &mut TopologyCounts, key: &str, node: Option<&NodeInfo>, n: i64) {
    if let Some(v) = node.and_then(|n| n.labels.get(key)) {
        *counts
            .entry(key.to_string())
            .or_default()
            .entry(v.clone())
            .or_default() += n;
    }
}

fn count_at(counts: &TopologyCounts, node: &NodeInfo) -> i64 {
    counts
        .iter()
        .filter_map(|(k, vals)| vals.get(node.labels.get(k)?))
        .sum()
}

/// Per term, the pods it selects counted by topology domain.
fn term_counts(terms: &[AffinityTerm], cache: &Cache) -> Vec<TopologyCounts> {
    terms
        .iter()
        .map(|t| {
            let mut c = TopologyCounts::default();
            for p in cache.matching_pods(t) {
                add(&mut c, &t.topology_key, cache.node(&p.node_name), 1);
            }
            c
        })
        .collect()
}

/// Topology domains as `(key, values)`: a node is in one when its label `key` has one
/// of the values.
type Domains = Vec<(String, HashSet<String>)>;

fn occupied(counts: &TopologyCounts) -> Domains {
    counts
        .iter()
        .map(|(k, vals)| {
            let set = vals
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(v, _)| v.clone())
                .collect();
            (k.clone(), set)
        })
        .collect()
}

fn in_any(domains: &Domains, node: &NodeInfo) -> bool {
    domains
        .iter()
        .any(|(k, vals)| !vals.is_empty() && node.labels.get(k).is_some_and(|v| vals.contains(v)))
}

struct PreFilterState {
    /// Domains where a placed pod's required anti-affinity selects the incoming pod.
    existing_anti: Domains,
    /// Per required affinity term: its topology key and the domains holding a match.
    affinity: Vec<(String, HashSet<String>)>,
    /// Domains holding a pod the incoming pod's required anti-affinity selects.
    anti: Domains,
    /// No pod matches the affinity terms anywhere, but the pod matches them itself: the
    /// first pod of a group that wants to be together may go anywhere.
    first_of_group: bool,
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, cache: &Cache) -> Status {
        let mut existing_anti = TopologyCounts::default();
        for tc in cache.terms_for(pod) {
            if tc.kind != TermKind::RequiredAnti || !tc.term.matches(pod, &cache.namespaces) {
                continue;
            }
            for (node, n) in &tc.per_node {
                add(
                    &mut existing_anti,
                    &tc.term.topology_key,
                    cache.node(node),
                    *n,
                );
            }
        }
        if existing_anti.is_empty()
            && pod.required_affinity.is_empty()
            && pod.required_anti_affinity.is_empty()
        {
            return Status::skip();
        }
        let affinity = term_counts(&pod.required_affinity, cache);
        let first_of_group = !pod.required_affinity.is_empty()
            && affinity.iter().all(|c| c.is_empty())
            && pod
                .required_affinity
                .iter()
                .all(|t| t.matches(pod, &cache.namespaces));
        let affinity = pod
            .required_affinity
            .iter()
            .zip(&affinity)
            .map(|(t, c)| {
                let vals = occupied(c)
                    .into_iter()
                    .find(|(k, _)| *k == t.topology_key)
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                (t.topology_key.clone(), vals)
            })
            .collect();
        let anti = term_counts(&pod.required_anti_affinity, cache)
            .iter()
            .flat_map(occupied)
            .collect();
        state.write(
            NAME,
            PreFilterState {
                existing_anti: occupied(&existing_anti),
                affinity,
                anti,
                first_of_group,
            },
        );
        Status::success()
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(NAME) else {
            return Status::success();
        };
        if in_any(&s.existing_anti, node) {
            return Status::unschedulable(EXISTING_ANTI_AFFINITY_REASON);
        }
        for (key, vals) in &s.affinity {
            let here = node.labels.get(key);
            let ok = here.is_some() && (s.first_of_group || here.is_some_and(|v| vals.contains(v)));
            if !ok {
                return Status::new(Code::UnschedulableAndUnresolvable, AFFINITY_REASON);
            }
        }
        if in_any(&s.anti, node) {
            return Status::unschedulable(ANTI_AFFINITY_REASON);
        }
        Status::success()
    }
}

struct ScoreState(TopologyCounts);

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        cache: &Cache,
    ) -> Status {
        let mut scores = TopologyCounts::default();
        let own = pod
            .preferred_affinity
            .iter()
            .map(|w| (w.weight, &w.term))
            .chain(
                pod.preferred_anti_affinity
                    .iter()
                    .map(|w| (-w.weight, &w.term)),
            );
        for (weight, term) in own {
            for p in cache.matching_pods(term) {
                add(
                    &mut scores,
                    &term.topology_key,
                    cache.node(&p.node_name),
                    i64::from(weight),
                );
            }
        }
        for tc in cache.terms_for(pod) {
            let TermKind::Weighted(w) = tc.kind else {
                continue;
            };
            if !tc.term.matches(pod, &cache.namespaces) {
                continue;
            }
            for (node, n) in &tc.per_node {
                add(
                    &mut scores,
                    &tc.term.topology_key,
                    cache.node(node),
                    i64::from(w) * n,
                );
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(NAME, ScoreState(scores));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        state
            .read::<ScoreState>(NAME)
            .map_or(0, |s| count_at(&s.0, node))
    }

    fn normalize(&self, state: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        if state.read::<ScoreState>(NAME).is_some() {
            normalize_by_range(scores);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

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

    fn labelled(name: &str, app: &str, affinity: Value) -> PodInfo {
        pod(
            name,
            json!({"labels": {"app": app}}),
            json!({"containers": [{"name": "c", "image": "i"}], "affinity": affinity}),
        )
    }

    fn term(app: &str, key: &str) -> Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    fn profile() -> Profile {
        Profile {
            pre_filter: vec![Box::new(InterPodAffinity)],
            filter: vec![Box::new(InterPodAffinity)],
            pre_score: vec![Box::new(InterPodAffinity)],
            score: vec![(Box::new(InterPodAffinity), 2)],
        }
    }

    fn feasible(c: &Cache, p: &PodInfo) -> Vec<String> {
        let mut v: Vec<String> = filter_all(&profile(), c, p)
            .into_iter()
            .filter(|(_, s)| s.is_success())
            .map(|(n, _)| n)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn required_terms_by_topology_domain() {
        let nodes = || vec![zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b")];
        let db = on(labelled("db", "db", json!({})), "a1");
        let c = cache(nodes(), vec![db]);
        let cases = [
            // Affinity to db by zone: zone a only.
            (
                json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}),
                vec!["a1", "a2"],
            ),
            // Anti-affinity to db by zone: zone b only.
            (
                json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}),
                vec!["b1"],
            ),
            // Anti-affinity to db by host: anywhere but a1.
            (
                json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                term("db", "kubernetes.io/hostname")]}}),
                vec!["a2", "b1"],
            ),
            // Affinity to a pod that does not exist: nowhere.
            (
                json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("cache", "zone")]}}),
                vec![],
            ),
        ];
        for (affinity, want) in cases {
            let p = labelled("p", "web", affinity.clone());
            assert_eq!(feasible(&c, &p), want, "{affinity}");
        }
        // The first pod of a group that wants to be with its own kind may go anywhere.
        let p = labelled(
            "p",
            "web",
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}),
        );
        assert_eq!(feasible(&c, &p), vec!["a1", "a2", "b1"]);
    }

    #[test]
    fn existing_pods_anti_affinity_keeps_matching_pods_away() {
        let guard = on(
            labelled(
                "guard",
                "guard",
                json!({"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}),
            ),
            "b1",
        );
        let c = cache(
            vec![zoned("a1", "a"), zoned("b1", "b"), zoned("b2", "b")],
            vec![guard],
        );
        assert_eq!(feasible(&c, &labelled("p", "web", json!({}))), vec!["a1"]);
        assert_eq!(
            feasible(&c, &labelled("p", "db", json!({}))),
            vec!["a1", "b1", "b2"]
        );
        let s = filter_all(&profile(), &c, &labelled("p", "web", json!({})));
        assert!(s
            .iter()
            .any(|(_, s)| s.reasons == vec![EXISTING_ANTI_AFFINITY_REASON]));
    }

    #[test]
    fn preferred_terms_score_domains() {
        let c = cache(
            vec![zoned("a1", "a"), zoned("b1", "b"), zoned("c1", "c")],
            vec![
                on(labelled("db", "db", json!({})), "a1"),
                on(labelled("noisy", "noisy", json!({})), "b1"),
            ],
        );
        let p = labelled(
            "p",
            "web",
            json!({
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": term("db", "zone")}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": term("noisy", "zone")}]}}),
        );
        let mut got = score_all(&profile(), &c, &p);
        got.sort();
        assert_eq!(
            got,
            vec![("a1".into(), 100), ("b1".into(), 0), ("c1".into(), 50)]
        );
    }
}
