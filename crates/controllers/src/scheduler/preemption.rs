//! Preemption (kube-scheduler's DefaultPreemption): when a pod fits nowhere, find the node
//! where evicting the fewest and least important lower-priority pods makes it fit.
//!
//! Per candidate node: remove every lower-priority pod, check the pod fits, then give back
//! ("reprieve") as many of them as still leave room, most important first. Among the
//! candidates, pick the one whose most important victim matters least, then the smallest
//! sum of victim priorities, then the fewest victims.

use std::sync::Arc;

use super::algorithm::{Algorithm, FitError};
use super::cache::Cache;
use super::framework::CycleState;
use super::pod_info::PodInfo;

#[derive(Clone, Debug)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

impl Candidate {
    fn rank(&self) -> (i32, i64, usize, String) {
        let max = self
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum = self.victims.iter().map(|v| i64::from(v.priority)).sum();
        (max, sum, self.victims.len(), self.node.clone())
    }
}

/// Whether the pod may preempt at all: not with `preemptionPolicy: Never`, and not while
/// victims of an earlier preemption on its nominated node are still terminating.
pub fn eligible(pod: &PodInfo, cache: &Cache) -> bool {
    let spec = pod.spec();
    if spec.preemption_policy.as_deref() == Some("Never") {
        return false;
    }
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or("");
    if let Some(n) = cache.node(nominated) {
        if n.pods
            .iter()
            .any(|p| p.terminating && p.priority < pod.priority)
        {
            return false;
        }
    }
    true
}

/// The best node to preempt on, with its victims; `None` when preemption cannot help.
pub fn find(alg: &Algorithm, cache: &Cache, pod: &PodInfo, err: &FitError) -> Option<Candidate> {
    if !eligible(pod, cache) {
        return None;
    }
    let mut state = CycleState::default();
    if !alg.pre_filter(&mut state, pod, cache).is_success() {
        return None;
    }
    let mut names = err.preemption_candidates();
    names.sort_unstable();
    let mut best: Option<Candidate> = None;
    for name in names {
        let Some(node) = cache.node(name) else {
            continue;
        };
        let mut lower: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority && !p.terminating)
            .cloned()
            .collect();
        if lower.is_empty() {
            continue;
        }
        let mut sim = node.clone();
        for p in &lower {
            sim.remove_pod(p);
        }
        if !alg.filter_node(&state, pod, &sim, cache).is_success() {
            continue;
        }
        // Most important first: they get the first chance to stay.
        lower.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.created.cmp(&b.created)));
        let mut victims = Vec::new();
        for p in lower {
            sim.add_pod(p.clone());
            if !alg.filter_node(&state, pod, &sim, cache).is_success() {
                sim.remove_pod(&p);
                victims.push(p);
            }
        }
        let c = Candidate {
            node: name.to_string(),
            victims,
        };
        if best.as_ref().is_none_or(|b| c.rank() < b.rank()) {
            best = Some(c);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::algorithm::Decision;
    use crate::scheduler::plugins::default_profile;
    use crate::scheduler::testing::{cache, node, on, pod};

    fn prio(name: &str, priority: i32, cpu: &str) -> PodInfo {
        pod(
            name,
            json!({}),
            json!({"priority": priority, "containers": [{"name": "c",
            "image": "i", "resources": {"requests": {"cpu": cpu, "memory": "1Mi"}}}]}),
        )
    }

    fn victims_of(c: &Cache, p: &PodInfo) -> Option<(String, Vec<String>)> {
        let mut alg = Algorithm::new(default_profile(), None);
        let Decision::NoFit(err) = alg.schedule(c, p) else {
            panic!("the pod should not fit");
        };
        find(&alg, c, p, &err).map(|c| {
            let mut v: Vec<String> = c.victims.iter().map(|v| v.key.name.clone()).collect();
            v.sort();
            (c.node, v)
        })
    }

    #[test]
    fn the_least_disruptive_node_and_the_fewest_victims() {
        let nodes = || {
            vec![
                node("n1", "4", "8Gi", json!({})),
                node("n2", "4", "8Gi", json!({})),
                node("n3", "4", "8Gi", json!({})),
            ]
        };
        // n1: three low pods; n2: one mid pod; n3: a pod of the preemptor's priority.
        let pods = || {
            vec![
                on(prio("low-a", 20, "2"), "n1"),
                on(prio("low-b", 10, "1"), "n1"),
                on(prio("low-c", 10, "1"), "n1"),
                on(prio("mid", 50, "4"), "n2"),
                on(prio("peer", 100, "4"), "n3"),
            ]
        };
        let c = cache(nodes(), pods());
        // Needs 2 cpus: on n1 the more important low-a is reprieved; low-b and low-c go.
        assert_eq!(
            victims_of(&c, &prio("p", 100, "2")),
            Some(("n1".into(), vec!["low-b".into(), "low-c".into()]))
        );
        // Needs 4 cpus: n1 would lose all three (highest priority 20), n2 one pod of 50.
        // The lower highest-victim priority wins: n1.
        assert_eq!(
            victims_of(&c, &prio("p", 100, "4")),
            Some((
                "n1".into(),
                vec!["low-a".into(), "low-b".into(), "low-c".into()]
            ))
        );
        // With n4 holding one pod of priority 10, one victim there beats two on n1.
        let mut all = nodes();
        all.push(node("n4", "4", "8Gi", json!({})));
        let mut placed = pods();
        placed.push(on(prio("low-d", 10, "3"), "n4"));
        let c4 = cache(all, placed);
        assert_eq!(
            victims_of(&c4, &prio("p", 100, "2")),
            Some(("n4".into(), vec!["low-d".into()]))
        );
        // A pod of priority 10 can preempt nothing.
        assert_eq!(victims_of(&c, &prio("p", 10, "2")), None);
        // preemptionPolicy: Never.
        let mut never = prio("p", 100, "2");
        let mut p = (*never.pod).clone();
        p.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        never.pod = Arc::new(p);
        assert_eq!(victims_of(&c, &never), None);
    }

    #[test]
    fn unresolvable_nodes_are_not_candidates() {
        let c = cache(
            vec![node(
                "tainted",
                "4",
                "8Gi",
                json!({"spec": {"taints": [
                {"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
            )],
            vec![on(prio("low", 0, "4"), "tainted")],
        );
        assert_eq!(victims_of(&c, &prio("p", 100, "1")), None);
    }
}
