//! One scheduling decision: filter nodes until enough feasible ones are found, score them,
//! pick the best (ties broken at random), or explain why no node fits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::cache::Cache;
use super::framework::{Code, CycleState, Profile, Status};
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;

/// Why a pod fits no node: the status of every node that was looked at.
#[derive(Clone, Debug, Default)]
pub(crate) struct FitError {
    pub nodes: usize,
    pub statuses: HashMap<String, Status>,
}

impl FitError {
    /// Nodes with the same reason, counted: ("Insufficient cpu", 3).
    pub(crate) fn reason_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for s in self.statuses.values() {
            for r in &s.reasons {
                *counts.entry(r.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// As kube-scheduler words it: "0/5 nodes are available: 2 Insufficient cpu, 3
    /// node(s) had untolerated taint {k: v}."
    pub(crate) fn message(&self) -> String {
        let mut parts: Vec<String> = self
            .reason_counts()
            .into_iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        parts.sort();
        format!(
            "0/{} nodes are available: {}.",
            self.nodes,
            parts.join(", ")
        )
    }

    /// Nodes where preempting pods could help (every failure there was Unschedulable).
    pub(crate) fn preemption_candidates(&self) -> Vec<&str> {
        self.statuses
            .iter()
            .filter(|(_, s)| s.code == Code::Unschedulable)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

pub(crate) enum Decision {
    Fit { node: String },
    NoFit(FitError),
}

pub(crate) struct Algorithm {
    pub profile: Profile,
    /// Percentage of nodes to look at once enough fit (`None`: Kubernetes' adaptive
    /// default, 50% minus 1% per 125 nodes, at least 5%).
    pub percentage_of_nodes_to_score: Option<u32>,
    next_start: usize,
    rng: u64,
}

/// Below this many nodes, every node is looked at.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;

impl Algorithm {
    pub(crate) fn new(profile: Profile, percentage_of_nodes_to_score: Option<u32>) -> Self {
        Algorithm {
            profile,
            percentage_of_nodes_to_score,
            next_start: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn num_feasible_to_find(&self, all: usize) -> usize {
        if all < MIN_FEASIBLE_NODES_TO_FIND {
            return all;
        }
        let pct = self
            .percentage_of_nodes_to_score
            .unwrap_or_else(|| (50i64 - (all as i64) / 125).max(5) as u32);
        if pct >= 100 {
            return all;
        }
        (all * pct as usize / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
    }

    fn random(&mut self) -> u64 {
        // xorshift64: tie-breaking needs spread, not quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Filters one node, leaving room for pods nominated to it that outrank `pod`.
    pub(crate) fn filter_node(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        cache: &Cache,
    ) -> Status {
        if cache.has_nominations() {
            let nominated = cache.nominated_for(&node.name, pod.priority, &pod.key);
            if !nominated.is_empty() {
                let mut with = node.clone();
                for p in nominated {
                    let mut p = (*p).clone();
                    p.node_name = node.name.clone();
                    with.add_pod(Arc::new(p));
                }
                return self.profile.run_filters(state, pod, &with);
            }
        }
        self.profile.run_filters(state, pod, node)
    }

    /// Runs every PreFilter plugin; a rejection applies to every node.
    pub(crate) fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        cache: &Cache,
    ) -> Status {
        for p in &self.profile.pre_filter {
            let s = p.pre_filter(state, pod, cache);
            if !matches!(s.code, Code::Success | Code::Skip) {
                return s;
            }
        }
        Status::success()
    }

    pub(crate) fn schedule(&mut self, cache: &Cache, pod: &PodInfo) -> Decision {
        let nodes = cache.nodes();
        let all = cache.node_count();
        let mut err = FitError {
            nodes: all,
            ..Default::default()
        };
        let mut state = CycleState::default();
        let pre = self.pre_filter(&mut state, pod, cache);
        if !pre.is_success() {
            for n in nodes.iter().filter(|n| n.node.is_some()) {
                err.statuses.insert(n.name.clone(), pre.clone());
            }
            return Decision::NoFit(err);
        }
        let want = self.num_feasible_to_find(all);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(nodes.len()));
        let start = if nodes.is_empty() {
            0
        } else {
            self.next_start % nodes.len()
        };
        let mut looked = 0;
        for i in 0..nodes.len() {
            looked = i + 1;
            let n = &nodes[(start + i) % nodes.len()];
            if n.node.is_none() {
                continue;
            }
            let s = self.filter_node(&state, pod, n, cache);
            if s.is_success() {
                feasible.push(n);
                if feasible.len() >= want {
                    break;
                }
            } else {
                err.statuses.insert(n.name.clone(), s);
            }
        }
        if !nodes.is_empty() {
            self.next_start = (start + looked) % nodes.len();
        }
        match feasible.len() {
            0 => Decision::NoFit(err),
            1 => Decision::Fit {
                node: feasible[0].name.clone(),
            },
            _ => {
                let scores = self.score(&mut state, pod, &feasible, cache);
                let best = self.select(&scores);
                Decision::Fit {
                    node: feasible[best].name.clone(),
                }
            }
        }
    }

    /// The weighted sum of every Score plugin's normalized score, per node.
    fn score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        cache: &Cache,
    ) -> Vec<i64> {
        let mut skipped = Vec::new();
        for p in &self.profile.pre_score {
            if p.pre_score(state, pod, nodes, cache).code == Code::Skip {
                skipped.push(p.name());
            }
        }
        let mut total = vec![0i64; nodes.len()];
        let mut scores = vec![0i64; nodes.len()];
        for (plugin, weight) in &self.profile.score {
            if skipped.contains(&plugin.name()) {
                continue;
            }
            for (s, n) in scores.iter_mut().zip(nodes) {
                *s = plugin.score(state, pod, n);
            }
            plugin.normalize(state, pod, &mut scores);
            for (t, s) in total.iter_mut().zip(&scores) {
                *t += s * weight;
            }
        }
        total
    }

    /// The index of the highest score; equal scores are chosen between uniformly.
    fn select(&mut self, scores: &[i64]) -> usize {
        let mut best = 0;
        let mut ties = 0u64;
        for (i, s) in scores.iter().enumerate() {
            if *s > scores[best] {
                best = i;
                ties = 1;
            } else if *s == scores[best] {
                ties += 1;
                if self.random().is_multiple_of(ties) {
                    best = i;
                }
            }
        }
        best
    }
}
