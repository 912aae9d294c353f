//! What each node may read: the Secrets, ConfigMaps, PersistentVolumeClaims and service
//! accounts that pods bound to it reference, kept from the watch cache's pods; the
//! PersistentVolumes those claims are bound to, kept from its claims; and the
//! `rkube.io/local-path` volumes that live on it, whose directories it removes.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::cache::{Cached, EventKind, Msg, WatchCache};

const PODS: &str = "/registry/core/pods/";
const CLAIMS: &str = "/registry/core/persistentvolumeclaims/";
const VOLUMES: &str = "/registry/core/persistentvolumes/";
/// The provisioner whose volumes live on one node, which removes their directories.
pub const LOCAL_PATH: &str = "rkube.io/local-path";

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
    /// Per claim key: the revision it was seen at, and the claim edge with the volume it
    /// is bound to.
    claims: HashMap<String, (i64, Edge, String)>,
    /// Per `rkube.io/local-path` volume name: the revision it was seen at, and its node.
    local_volumes: HashMap<String, (i64, String)>,
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

impl Graph {
    /// Takes in a claim's binding, unless a later revision of it is known (events the
    /// subscription replays after the claims were listed).
    fn put_claim(&mut self, c: &Cached) {
        if self
            .claims
            .get(&c.key)
            .is_some_and(|(rv, _, _)| *rv >= c.rv)
        {
            return;
        }
        let volume = serde_json::from_slice::<Value>(&c.json)
            .ok()
            .and_then(|v| v["spec"]["volumeName"].as_str().map(str::to_string))
            .unwrap_or_default();
        let edge = (Ref::Claim, c.namespace.clone(), c.name.clone());
        self.claims.insert(c.key.clone(), (c.rv, edge, volume));
    }

    /// Forgets a claim deleted at revision `at`, unless it was seen again later.
    fn remove_claim(&mut self, key: &str, at: i64) {
        if self.claims.get(key).is_some_and(|(rv, _, _)| *rv < at) {
            self.claims.remove(key);
        }
    }
}

impl Graph {
    /// Takes in a volume: its node if it is a `rkube.io/local-path` one.
    fn put_volume(&mut self, c: &Cached) {
        if self
            .local_volumes
            .get(&c.name)
            .is_some_and(|(rv, _)| *rv >= c.rv)
        {
            return;
        }
        match local_node(&c.json) {
            Some(node) => {
                self.local_volumes.insert(c.name.clone(), (c.rv, node));
            }
            None => {
                self.local_volumes.remove(&c.name);
            }
        }
    }

    /// Forgets a volume deleted at revision `at`, unless it was seen again later.
    fn remove_volume(&mut self, name: &str, at: i64) {
        if self.local_volumes.get(name).is_some_and(|(rv, _)| *rv < at) {
            self.local_volumes.remove(name);
        }
    }
}

/// The node of a `rkube.io/local-path` volume: the one node its affinity requires.
fn local_node(json: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(json).ok()?;
    if v["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] != LOCAL_PATH {
        return None;
    }
    let [term] = v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        .as_array()?
        .as_slice()
    else {
        return None;
    };
    let [e] = term["matchExpressions"].as_array()?.as_slice() else {
        return None;
    };
    if e["key"] != "kubernetes.io/hostname" || e["operator"] != "In" {
        return None;
    }
    let [node] = e["values"].as_array()?.as_slice() else {
        return None;
    };
    node.as_str().filter(|n| !n.is_empty()).map(str::to_string)
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

    /// Whether a pod bound to `node` uses a claim bound to PersistentVolume `volume`.
    pub fn uses_volume(&self, node: &str, volume: &str) -> bool {
        let g = self.0.read();
        g.claims
            .values()
            .filter(|(_, _, v)| !v.is_empty() && v == volume)
            .any(|(_, edge, _)| g.count.contains_key(&(node.to_string(), edge.clone())))
    }

    /// Whether `volume` is a `rkube.io/local-path` volume living on `node`.
    pub fn local_volume_on(&self, node: &str, volume: &str) -> bool {
        self.0
            .read()
            .local_volumes
            .get(volume)
            .is_some_and(|(_, n)| n == node)
    }

    /// The node pod `ns/name` is bound to.
    pub fn node_of(&self, ns: &str, name: &str) -> Option<String> {
        self.0
            .read()
            .pods
            .get(&format!("{PODS}{ns}/{name}"))
            .map(|(n, _)| n.clone())
    }

    /// Takes in a pod or a claim as it is now.
    #[cfg(test)]
    pub(crate) fn observe(&self, c: &Cached) {
        if c.key.starts_with(CLAIMS) {
            self.0.write().put_claim(c);
        } else if c.key.starts_with(VOLUMES) {
            self.0.write().put_volume(c);
        } else {
            self.0.write().put(c);
        }
    }

    pub async fn run(self: Arc<Self>, cache: Arc<WatchCache>) {
        loop {
            let (mut sub, items) = cache.snapshot(PODS);
            // Listed after subscribing: the events replayed from before the list are
            // older than what it holds, and `put_claim` skips them.
            let (_, claims) = cache.list(CLAIMS, None);
            let (_, volumes) = cache.list(VOLUMES, None);
            {
                let mut g = Graph::default();
                for c in &items {
                    g.put(c);
                }
                for c in &claims {
                    g.put_claim(c);
                }
                for c in &volumes {
                    g.put_volume(c);
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
                    Ok(Msg::Event(e)) if e.obj.key.starts_with(CLAIMS) => {
                        let mut g = self.0.write();
                        match e.kind {
                            EventKind::Deleted => g.remove_claim(&e.obj.key, e.rv),
                            _ => g.put_claim(&e.obj),
                        }
                    }
                    Ok(Msg::Event(e)) if e.obj.key.starts_with(VOLUMES) => {
                        let mut g = self.0.write();
                        match e.kind {
                            EventKind::Deleted => g.remove_volume(&e.obj.name, e.rv),
                            _ => g.put_volume(&e.obj),
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

    #[test]
    fn a_local_path_volume_is_its_one_nodes() {
        let pv = |ann: &str, nodes: serde_json::Value| {
            serde_json::to_vec(&json!({
                "metadata": {"name": "pvc-1", "annotations": {"pv.kubernetes.io/provisioned-by": ann}},
                "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": nodes}]}]}}}
            }))
            .unwrap()
        };
        assert_eq!(
            local_node(&pv(LOCAL_PATH, json!(["w1"]))).as_deref(),
            Some("w1")
        );
        assert_eq!(local_node(&pv("example.com/nfs", json!(["w1"]))), None);
        assert_eq!(local_node(&pv(LOCAL_PATH, json!(["w1", "w2"]))), None);
        assert_eq!(local_node(&pv(LOCAL_PATH, json!([]))), None);
    }
}
