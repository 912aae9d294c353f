//! Preemption (kube-scheduler's DefaultPreemption): when a pod fits nowhere, find the node
//! where evicting the fewest and least important lower-priority pods makes it fit.
//!
//! Per candidate node: remove every lower-priority pod, check the pod fits, then give back
//! ("reprieve") as many of them as still leave room — first those a PodDisruptionBudget
//! protects, then the rest, most important first. Among the candidates, pick the one that
//! breaks the fewest budgets, then whose most important victim matters least, then the
//! smallest sum of victim priorities, then the fewest victims.

use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::algorithm::{Algorithm, FitError};
use super::cache::Cache;
use super::framework::CycleState;
use super::pod_info::PodInfo;
use client::selectors::selector_matches;

#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
    /// Victims whose eviction a PodDisruptionBudget does not allow.
    pub pdb_violations: usize,
}

impl Candidate {
    fn rank(&self) -> (usize, i32, i64, usize, String) {
        let max = self
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum = self.victims.iter().map(|v| i64::from(v.priority)).sum();
        let n = self.victims.len();
        (self.pdb_violations, max, sum, n, self.node.clone())
    }
}

/// Splits pods into those whose eviction some PodDisruptionBudget forbids (its
/// `disruptionsAllowed` used up, counting the pods before them) and the rest.
fn split_by_budget(
    cache: &Cache,
    pods: Vec<Arc<PodInfo>>,
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<(&PodDisruptionBudget, i32)> = cache
        .pdbs
        .values()
        .map(|p| {
            let left = p
                .status
                .as_ref()
                .and_then(|s| s.disruptions_allowed)
                .unwrap_or(0);
            (p.as_ref(), left)
        })
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut breaks = false;
        for (pdb, left) in allowed.iter_mut() {
            let same_ns = pdb.metadata.namespace.as_deref() == Some(pod.namespace.as_str());
            let selects = pdb
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| selector_matches(sel, &pod.labels));
            if same_ns && selects {
                *left -= 1;
                breaks |= *left < 0;
            }
        }
        if breaks {
            violating.push(pod);
        } else {
            fine.push(pod);
        }
    }
    (violating, fine)
}

/// Whether the pod may preempt at all: not with `preemptionPolicy: Never`, and not while
/// victims of an earlier preemption on its nominated node are still terminating.
pub(crate) fn eligible(pod: &PodInfo, cache: &Cache) -> bool {
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
pub(crate) fn find(
    alg: &Algorithm,
    cache: &Cache,
    pod: &PodInfo,
    err: &FitError,
) -> Option<Candidate> {
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
        let (violating, fine) = split_by_budget(cache, lower);
        let mut victims = Vec::new();
        let mut pdb_violations = 0;
        for (protected, group) in [(true, violating), (false, fine)] {
            for p in group {
                sim.add_pod(p.clone());
                if !alg.filter_node(&state, pod, &sim, cache).is_success() {
                    sim.remove_pod(&p);
                    victims.push(p);
                    pdb_violations += usize::from(protected);
                }
            }
        }
        let c = Candidate {
            node: name.to_string(),
            victims,
            pdb_violations,
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

    use client::reflector::ObjectKey;

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
    fn disruption_budgets_steer_the_choice() {
        let labelled = |name: &str, app: &str| {
            pod(
                name,
                json!({"labels": {"app": app}}),
                json!({"priority": 10, "containers": [
                {"name": "c", "image": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}]}),
            )
        };
        let mut c = cache(
            vec![
                node("n1", "2", "8Gi", json!({})),
                node("n2", "2", "8Gi", json!({})),
            ],
            vec![
                on(labelled("guarded", "db"), "n1"),
                on(labelled("free", "web"), "n2"),
            ],
        );
        c.pdbs.insert(
            ObjectKey {
                namespace: "default".into(),
                name: "db".into(),
            },
            Arc::new(
                serde_json::from_value(json!({
                "metadata": {"name": "db", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "db"}}, "minAvailable": 1},
                "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1,
                           "expectedPods": 1}}))
                .unwrap(),
            ),
        );
        // Both nodes need one eviction of priority 10; the budget makes n2 the choice.
        assert_eq!(
            victims_of(&c, &prio("p", 100, "2")),
            Some(("n2".into(), vec!["free".into()]))
        );
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
