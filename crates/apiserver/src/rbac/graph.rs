//! What each node may read: the Secrets, ConfigMaps, PersistentVolumeClaims and service
//! accounts that pods bound to it reference, kept from the watch cache's pods.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::cache::{Cached, EventKind, Msg, WatchCache};

const PODS: &str = "/registry/core/pods/";

/// A kind of object a pod can reference.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Ref {
    Secret,
    ConfigMap,
    Claim,
    ServiceAccount,
}

type Edge = (Ref, String, String);

#[derive(Default)]
struct Graph {
    /// Per pod key: its node and what it references.
    pods: HashMap<String, (String, Vec<Edge>)>,
    /// (node, reference) → how many of its pods hold it.
    count: HashMap<(String, Edge), usize>,
}

/// Every object `pod` references, in namespace `ns`.
pub fn references(pod: &Value, ns: &str) -> Vec<Edge> {
    let mut out = Vec::new();
    let mut add = |r: Ref, v: &Value| {
        if let Some(n) = v.as_str().filter(|n| !n.is_empty()) {
            out.push((r, ns.to_string(), n.to_string()));
        }
    };
    let spec = &pod["spec"];
    add(
        Ref::ServiceAccount,
        spec.get("serviceAccountName")
            .unwrap_or(&Value::from("default")),
    );
    for s in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        add(Ref::Secret, &s["name"]);
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        add(Ref::Secret, &v["secret"]["secretName"]);
        add(Ref::ConfigMap, &v["configMap"]["name"]);
        add(Ref::Claim, &v["persistentVolumeClaim"]["claimName"]);
        for src in v["projected"]["sources"].as_array().into_iter().flatten() {
            add(Ref::Secret, &src["secret"]["name"]);
            add(Ref::ConfigMap, &src["configMap"]["name"]);
        }
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                add(Ref::Secret, &e["valueFrom"]["secretKeyRef"]["name"]);
                add(Ref::ConfigMap, &e["valueFrom"]["configMapKeyRef"]["name"]);
            }
            for e in c["envFrom"].as_array().into_iter().flatten() {
                add(Ref::Secret, &e["secretRef"]["name"]);
                add(Ref::ConfigMap, &e["configMapRef"]["name"]);
            }
        }
    }
    out.sort_by(|a, b| (a.1.as_str(), a.2.as_str()).cmp(&(b.1.as_str(), b.2.as_str())));
    out.dedup();
    out
}

impl Graph {
    fn remove(&mut self, key: &str) {
        if let Some((node, edges)) = self.pods.remove(key) {
            for e in edges {
                let k = (node.clone(), e);
                if let Some(n) = self.count.get_mut(&k) {
                    *n -= 1;
                    if *n == 0 {
                        self.count.remove(&k);
                    }
                }
            }
        }
    }

    fn put(&mut self, c: &Cached) {
        self.remove(&c.key);
        // Most pod events before binding: read only the node name, not the whole pod.
        let node = serde_json::from_slice::<Bound>(&c.json)
            .ok()
            .and_then(|b| b.spec.node_name)
            .unwrap_or_default();
        if node.is_empty() {
            return;
        }
        let Ok(pod) = serde_json::from_slice::<Value>(&c.json) else {
            return;
        };
        let edges = references(&pod, &c.namespace);
        for e in &edges {
            *self.count.entry((node.clone(), e.clone())).or_default() += 1;
        }
        self.pods.insert(c.key.clone(), (node, edges));
    }
}

/// The one field of a pod that says whether it is in the graph.
#[derive(serde::Deserialize)]
struct Bound {
    #[serde(default)]
    spec: BoundSpec,
}

#[derive(Default, serde::Deserialize)]
struct BoundSpec {
    #[serde(rename = "nodeName")]
    node_name: Option<String>,
}

/// The node → referenced objects graph, kept current by [`NodeGraph::run`].
#[derive(Default)]
pub struct NodeGraph(RwLock<Graph>);

impl NodeGraph {
    /// Whether a pod bound to `node` references `r` `ns/name`.
    pub fn has(&self, node: &str, r: Ref, ns: &str, name: &str) -> bool {
        self.0
            .read()
            .count
            .contains_key(&(node.to_string(), (r, ns.to_string(), name.to_string())))
    }

    /// The node pod `ns/name` is bound to.
    pub fn node_of(&self, ns: &str, name: &str) -> Option<String> {
        self.0
            .read()
            .pods
            .get(&format!("{PODS}{ns}/{name}"))
            .map(|(n, _)| n.clone())
    }

    /// Takes in a pod as it is now.
    #[cfg(test)]
    pub(crate) fn observe(&self, c: &Cached) {
        self.0.write().put(c);
    }

    pub async fn run(self: Arc<Self>, cache: Arc<WatchCache>) {
        loop {
            let (mut sub, items) = cache.snapshot(PODS);
            {
                let mut g = Graph::default();
                for c in &items {
                    g.put(c);
                }
                *self.0.write() = g;
            }
            loop {
                match sub.rx.recv().await {
                    Ok(Msg::Event(e)) if e.obj.key.starts_with(PODS) => {
                        let mut g = self.0.write();
                        match e.kind {
                            EventKind::Deleted => g.remove(&e.obj.key),
                            _ => g.put(&e.obj),
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_way_a_pod_names_an_object_is_an_edge() {
        let pod = json!({"spec": {"serviceAccountName": "sa", "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"secret": {"secretName": "vol"}}, {"configMap": {"name": "cm"}},
                {"persistentVolumeClaim": {"claimName": "data"}},
                {"projected": {"sources": [{"secret": {"name": "proj"}}]}}],
            "initContainers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": "env"}}}]}],
            "containers": [{"envFrom": [{"configMapRef": {"name": "from"}}]}]}});
        let names: Vec<String> = references(&pod, "ns").into_iter().map(|e| e.2).collect();
        for n in ["sa", "pull", "vol", "cm", "data", "proj", "env", "from"] {
            assert!(names.contains(&n.to_string()), "{n} in {names:?}");
        }
    }
}
