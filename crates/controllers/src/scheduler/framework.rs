//! The scheduling framework: one small trait per extension point, and the status every
//! plugin answers with.

use rustc_hash::FxHashMap as HashMap;
use std::any::Any;

use super::cache::Cache;
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;

/// The highest score a Score plugin gives a node, after normalization.
pub(crate) const MAX_NODE_SCORE: i64 = 100;

/// What a plugin's answer means to the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Code {
    Success,
    /// The pod does not fit now; preempting lower-priority pods might make it fit.
    Unschedulable,
    /// The pod does not fit, and preemption on this node cannot change that.
    UnschedulableAndUnresolvable,
    /// (PreFilter, PreScore) the plugin has nothing to do for this pod.
    Skip,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub code: Code,
    /// Human-readable reasons, as they appear in FailedScheduling events.
    pub reasons: Vec<String>,
}

impl Status {
    pub(crate) const fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
        }
    }

    pub(crate) const fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
        }
    }

    pub(crate) fn new(code: Code, reason: impl Into<String>) -> Self {
        Status {
            code,
            reasons: vec![reason.into()],
        }
    }

    pub(crate) fn unschedulable(reason: impl Into<String>) -> Self {
        Status::new(Code::Unschedulable, reason)
    }

    pub(crate) fn unresolvable(reason: impl Into<String>) -> Self {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub(crate) fn is_success(&self) -> bool {
        self.code == Code::Success
    }
}

/// Data a plugin computes once per pod (PreFilter, PreScore) and reads per node.
#[derive(Default)]
pub(crate) struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    pub(crate) fn write<T: Any + Send + Sync>(&mut self, key: &'static str, v: T) {
        self.data.insert(key, Box::new(v));
    }

    pub(crate) fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|v| v.downcast_ref())
    }
}

pub(crate) trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
}

/// Runs once per pod before any node is looked at; may reject the pod outright.
pub(crate) trait PreFilterPlugin: Plugin {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, cache: &Cache) -> Status;
}

/// Says whether the pod can run on one node.
pub(crate) trait FilterPlugin: Plugin {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// Runs once per pod on the nodes that passed filtering, before scoring.
pub(crate) trait PreScorePlugin: Plugin {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        cache: &Cache,
    ) -> Status;
}

/// Ranks a feasible node; `normalize` brings the raw scores of all nodes into
/// 0..=MAX_NODE_SCORE.
pub(crate) trait ScorePlugin: Plugin {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;

    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}
}

/// Scales scores so that the highest becomes MAX_NODE_SCORE (or, `reverse`, the lowest).
pub(crate) fn normalize_by_max(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = match (max, reverse) {
            (0, true) => MAX_NODE_SCORE,
            (0, false) => 0,
            (m, false) => *s * MAX_NODE_SCORE / m,
            (m, true) => MAX_NODE_SCORE - *s * MAX_NODE_SCORE / m,
        };
    }
}

/// Scales scores that may be negative into 0..=MAX_NODE_SCORE by their range.
pub(crate) fn normalize_by_range(scores: &mut [i64]) {
    let (min, max) = scores
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    for s in scores.iter_mut() {
        *s = if max > min {
            (*s - min) * MAX_NODE_SCORE / (max - min)
        } else {
            0
        };
    }
}

/// The plugins a profile runs, in order, with each Score plugin's weight.
#[derive(Default)]
pub(crate) struct Profile {
    pub pre_filter: Vec<Box<dyn PreFilterPlugin>>,
    pub filter: Vec<Box<dyn FilterPlugin>>,
    pub pre_score: Vec<Box<dyn PreScorePlugin>>,
    pub score: Vec<(Box<dyn ScorePlugin>, i64)>,
}

impl Profile {
    /// Runs every Filter plugin; the first failure wins.
    pub(crate) fn run_filters(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for f in &self.filter {
            let s = f.filter(state, pod, node);
            if !s.is_success() {
                return s;
            }
        }
        Status::success()
    }
}
