//! The scheduler's cache: every node with the pods placed on it, including pods it has
//! assumed — chosen a node for and sent to bind — before the watch echoes the binding, so
//! the next pod is scheduled against the cluster as it will be.
//!
//! It also keeps the indexes the inter-pod plugins need so that a scheduling cycle costs
//! what matches, not what exists: assigned pods by label, and the (anti-)affinity terms of
//! assigned pods, counted per node.

use std::sync::Arc;

use client::reflector::ObjectKey;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::node_info::NodeInfo;
use super::pod_info::{AffinityTerm, PodInfo};
use client::selectors::Labels;

/// How an assigned pod's term acts on pods scheduled after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TermKind {
    /// Required anti-affinity: matching pods may not share its topology domain.
    RequiredAnti,
    /// A preference (positive: affinity, negative: anti-affinity), or required affinity
    /// counted with the hard-affinity weight.
    Weighted(i32),
}

/// One distinct term of assigned pods, with how many such pods sit on each node.
#[derive(Clone, Debug)]
pub(crate) struct TermCount {
    pub kind: TermKind,
    pub term: AffinityTerm,
    pub per_node: HashMap<String, i64>,
}

type TermId = (Arc<str>, TermKind);

/// The weight existing pods' required affinity terms carry in scoring, as Kubernetes'
/// `hardPodAffinityWeight` default.
pub(crate) const HARD_POD_AFFINITY_WEIGHT: i32 = 1;

#[derive(Default)]
pub(crate) struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Assigned and assumed pods, and whether each is only assumed.
    pods: HashMap<ObjectKey, (Arc<PodInfo>, bool)>,
    by_label: HashMap<(String, String), HashSet<ObjectKey>>,
    terms: HashMap<TermId, TermCount>,
    /// Terms by a label pair every pod they select carries; the rest in `unindexed`.
    terms_by_label: HashMap<(String, String), HashSet<TermId>>,
    unindexed_terms: HashSet<TermId>,
    /// How many nodes report each image.
    image_nodes: HashMap<String, usize>,
    /// Pods that preempted others, by the node they wait for.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    pub namespaces: HashMap<String, Labels>,
    pub pvcs: HashMap<ObjectKey, Arc<PersistentVolumeClaim>>,
    pub pvs: HashMap<String, Arc<PersistentVolume>>,
    pub storage_classes: HashMap<String, Arc<StorageClass>>,
    pub pdbs: HashMap<ObjectKey, Arc<PodDisruptionBudget>>,
}

impl Cache {
    pub(crate) fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub(crate) fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Nodes with an object (not placeholders).
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.node.is_some()).count()
    }

    pub(crate) fn image_node_count(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.nodes.push(NodeInfo::new(name));
                self.index.insert(name.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    fn drop_node_if_empty(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].node.is_some() || !self.nodes[i].pods.is_empty() {
            return;
        }
        self.index.remove(name);
        self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            self.index.insert(self.nodes[i].name.clone(), i);
        }
    }

    fn count_images(&mut self, n: &NodeInfo, delta: isize) {
        for img in n.images.keys() {
            let c = self.image_nodes.entry(img.clone()).or_default();
            *c = c.saturating_add_signed(delta);
        }
    }

    /// Adds or updates a node; true when something a plugin looks at changed (so pods
    /// that did not fit may fit now), false for e.g. a heartbeat.
    pub(crate) fn set_node(&mut self, node: Arc<Node>) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut n = std::mem::take(self.node_mut(&name));
        self.count_images(&n, -1);
        // What plugins look at, before; the node's pods are not copied.
        let before = (
            n.node.is_some(),
            n.labels.clone(),
            n.taints.clone(),
            n.unschedulable,
            n.allocatable.clone(),
            std::mem::take(&mut n.images),
        );
        n.name = name.clone();
        n.set_node(node);
        self.count_images(&n, 1);
        let (had_node, labels, taints, unschedulable, allocatable, images) = before;
        let changed = !had_node
            || labels != n.labels
            || taints != n.taints
            || unschedulable != n.unschedulable
            || allocatable != n.allocatable
            || images != n.images;
        *self.node_mut(&name) = n;
        changed
    }

    pub(crate) fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        let old = self.nodes[i].clone();
        self.count_images(&old, -1);
        self.nodes[i].node = None;
        self.drop_node_if_empty(name);
    }

    pub(crate) fn pod(&self, key: &ObjectKey) -> Option<&Arc<PodInfo>> {
        self.pods.get(key).map(|(p, _)| p)
    }

    pub(crate) fn is_assumed(&self, key: &ObjectKey) -> bool {
        self.pods.get(key).is_some_and(|(_, a)| *a)
    }

    pub(crate) fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Places a pod on its node (`p.node_name`); replaces an earlier version.
    pub(crate) fn add_pod(&mut self, p: Arc<PodInfo>, assumed: bool) {
        self.remove_pod(&p.key);
        self.node_mut(&p.node_name.clone()).add_pod(p.clone());
        for (k, v) in &p.labels {
            self.by_label
                .entry((k.clone(), v.clone()))
                .or_default()
                .insert(p.key.clone());
        }
        self.count_terms(&p, 1);
        self.pods.insert(p.key.clone(), (p, assumed));
    }

    /// Removes a pod (assumed or assigned); returns it.
    pub(crate) fn remove_pod(&mut self, key: &ObjectKey) -> Option<Arc<PodInfo>> {
        let (p, _) = self.pods.remove(key)?;
        if let Some(&i) = self.index.get(&p.node_name) {
            self.nodes[i].remove_pod(&p);
        }
        self.drop_node_if_empty(&p.node_name.clone());
        for (k, v) in &p.labels {
            let pair = (k.clone(), v.clone());
            if let Some(set) = self.by_label.get_mut(&pair) {
                set.remove(key);
                if set.is_empty() {
                    self.by_label.remove(&pair);
                }
            }
        }
        self.count_terms(&p, -1);
        Some(p)
    }

    fn count_terms(&mut self, p: &PodInfo, delta: i64) {
        let mut entries: Vec<(TermKind, &AffinityTerm)> = Vec::new();
        entries.extend(
            p.required_anti_affinity
                .iter()
                .map(|t| (TermKind::RequiredAnti, t)),
        );
        entries.extend(
            p.required_affinity
                .iter()
                .map(|t| (TermKind::Weighted(HARD_POD_AFFINITY_WEIGHT), t)),
        );
        entries.extend(
            p.preferred_affinity
                .iter()
                .map(|w| (TermKind::Weighted(w.weight), &w.term)),
        );
        entries.extend(
            p.preferred_anti_affinity
                .iter()
                .map(|w| (TermKind::Weighted(-w.weight), &w.term)),
        );
        for (kind, term) in entries {
            if term.selector.is_none() {
                // Selects no pod: it can never act on one.
                continue;
            }
            let id: TermId = (term.identity.clone(), kind);
            let tc = self.terms.entry(id.clone()).or_insert_with(|| TermCount {
                kind,
                term: term.clone(),
                per_node: HashMap::default(),
            });
            let fresh = tc.per_node.is_empty();
            let c = tc.per_node.entry(p.node_name.clone()).or_default();
            *c += delta;
            if *c <= 0 {
                tc.per_node.remove(&p.node_name);
            }
            let gone = tc.per_node.is_empty();
            let label = term.required_label().map(|(k, v)| (k.clone(), v.clone()));
            if gone {
                self.terms.remove(&id);
                match label {
                    Some(l) => {
                        if let Some(set) = self.terms_by_label.get_mut(&l) {
                            set.remove(&id);
                            if set.is_empty() {
                                self.terms_by_label.remove(&l);
                            }
                        }
                    }
                    None => {
                        self.unindexed_terms.remove(&id);
                    }
                }
            } else if fresh {
                match label {
                    Some(l) => {
                        self.terms_by_label.entry(l).or_default().insert(id);
                    }
                    None => {
                        self.unindexed_terms.insert(id);
                    }
                }
            }
        }
    }

    /// Terms of assigned pods that may select `pod` (each still to be matched).
    pub(crate) fn terms_for<'a>(
        &'a self,
        pod: &'a PodInfo,
    ) -> impl Iterator<Item = &'a TermCount> + 'a {
        pod.labels
            .iter()
            .filter_map(|(k, v)| self.terms_by_label.get(&(k.clone(), v.clone())))
            .flatten()
            .chain(self.unindexed_terms.iter())
            .filter_map(|id| self.terms.get(id))
    }

    /// The distinct terms of assigned pods.
    #[cfg(test)]
    pub(crate) fn terms(&self) -> impl Iterator<Item = &TermCount> {
        self.terms.values()
    }

    /// Assigned pods a term selects. Uses the label index when the selector names a label
    /// value, and looks at every pod otherwise.
    pub(crate) fn matching_pods<'a>(
        &'a self,
        term: &'a AffinityTerm,
    ) -> Box<dyn Iterator<Item = &'a Arc<PodInfo>> + 'a> {
        let Some(sel) = &term.selector else {
            return Box::new(std::iter::empty());
        };
        let smallest = sel
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| self.by_label.get(&(k.clone(), v.clone())))
            .min_by_key(|s| s.map_or(0, |s| s.len()));
        let keep = move |p: &&Arc<PodInfo>| term.matches(p, &self.namespaces);
        match smallest {
            Some(None) => Box::new(std::iter::empty()),
            Some(Some(set)) => Box::new(
                set.iter()
                    .filter_map(|k| self.pods.get(k).map(|(p, _)| p))
                    .filter(keep),
            ),
            None => Box::new(self.pods.values().map(|(p, _)| p).filter(keep)),
        }
    }

    pub(crate) fn nominate(&mut self, p: Arc<PodInfo>, node: &str) {
        self.unnominate(&p.key);
        self.nominated.entry(node.to_string()).or_default().push(p);
    }

    pub(crate) fn unnominate(&mut self, key: &ObjectKey) {
        self.nominated.retain(|_, ps| {
            ps.retain(|p| p.key != *key);
            !ps.is_empty()
        });
    }

    /// Pods nominated to `node` that a pod of `priority` must leave room for.
    pub(crate) fn nominated_for(
        &self,
        node: &str,
        priority: i32,
        except: &ObjectKey,
    ) -> Vec<Arc<PodInfo>> {
        self.nominated
            .get(node)
            .into_iter()
            .flatten()
            .filter(|p| p.priority >= priority && p.key != *except)
            .cloned()
            .collect()
    }

    pub(crate) fn has_nominations(&self) -> bool {
        !self.nominated.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::testing::{node, pod};

    #[test]
    fn assumed_pods_count_and_leave_no_trace() {
        let mut c = Cache::default();
        c.set_node(Arc::new(node("n1", "4", "8Gi", json!({}))));
        let p = Arc::new(PodInfo {
            node_name: "n1".into(),
            ..pod(
                "p",
                json!({"labels": {"app": "a"}}),
                json!({
                    "containers": [{"name": "c", "image": "i",
                                    "resources": {"requests": {"cpu": "1"}}}],
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": "a"}},
                         "topologyKey": "kubernetes.io/hostname"}]}},
                }),
            )
        });
        c.add_pod(p.clone(), true);
        assert!(c.is_assumed(&p.key));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
        assert_eq!(c.terms().count(), 1);
        assert_eq!(c.matching_pods(&p.required_anti_affinity[0]).count(), 1);
        c.remove_pod(&p.key);
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 0);
        assert_eq!(c.terms().count(), 0);
        assert_eq!(c.matching_pods(&p.required_anti_affinity[0]).count(), 0);
    }

    #[test]
    fn only_changes_plugins_see_count_as_node_updates() {
        let mut c = Cache::default();
        assert!(
            c.set_node(Arc::new(node("n1", "4", "8Gi", json!({})))),
            "a new node"
        );
        let heartbeat = node(
            "n1",
            "4",
            "8Gi",
            json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:10Z"}]}}),
        );
        assert!(!c.set_node(Arc::new(heartbeat)), "a heartbeat");
        let labelled = node(
            "n1",
            "4",
            "8Gi",
            json!({"metadata": {"labels": {"disk": "ssd"}}}),
        );
        assert!(c.set_node(Arc::new(labelled)), "a new label");
        assert!(
            c.set_node(Arc::new(node("n1", "8", "8Gi", json!({})))),
            "more cpu"
        );
    }

    #[test]
    fn pods_on_an_unknown_node_wait_in_a_placeholder() {
        let mut c = Cache::default();
        let p = Arc::new(PodInfo {
            node_name: "later".into(),
            ..pod(
                "p",
                json!({}),
                json!({"containers": [{"name": "c", "image": "i"}]}),
            )
        });
        c.add_pod(p.clone(), false);
        assert_eq!(c.node_count(), 0);
        c.set_node(Arc::new(node("later", "1", "1Gi", json!({}))));
        assert_eq!(c.node_count(), 1);
        assert_eq!(c.node("later").unwrap().pods.len(), 1);
        c.remove_node("later");
        assert!(c.node("later").is_some(), "still holds the pod");
        c.remove_pod(&p.key);
        assert!(c.node("later").is_none());
    }
}
