//! Static pods: manifests in `--pod-manifest-path` that the kubelet runs on its own, with
//! no apiserver in between. Each is named `<name>-<node>` and identified by a hash of its
//! manifest (its uid), and shows in the API as a mirror pod (annotated
//! `kubernetes.io/config.mirror`, owned by the Node) that carries its status. A deleted
//! mirror pod comes back; a removed manifest stops the pod and removes its mirror.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::path::Path;

use client::Api;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::Shared;

pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// Whether `pod` is the API's mirror of a static pod (the kubelet never runs those).
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR))
}

/// FNV-1a over the manifest and the node name: the same manifest on the same node keeps
/// its identity across kubelet restarts.
fn hash(bytes: &[u8], node: &str) -> String {
    let mut h = FnvHasher(0xcbf2_9ce4_8422_2325);
    h.write(bytes);
    h.write(node.as_bytes());
    format!("{:016x}", h.finish())
}

struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The static pods of `dir`, by uid. A manifest that does not parse is skipped with a
/// warning naming the file.
pub fn read(dir: &Path, node: &str) -> HashMap<String, Pod> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let mut pod: Pod = match serde_yaml_ng::from_slice(&bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(file = %f.display(), error = %e, "static pod manifest skipped");
                continue;
            }
        };
        let h = hash(&bytes, node);
        let m = &mut pod.metadata;
        let base = m.name.clone().unwrap_or_default();
        if base.is_empty() {
            tracing::warn!(file = %f.display(), "static pod manifest skipped: metadata.name is required");
            continue;
        }
        m.name = Some(format!("{base}-{node}"));
        m.namespace = Some(m.namespace.clone().unwrap_or_else(|| "default".into()));
        m.uid = Some(h.clone());
        let a = m.annotations.get_or_insert_with(BTreeMap::new);
        a.insert(CONFIG_SOURCE.into(), "file".into());
        a.insert(CONFIG_HASH.into(), h.clone());
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.node_name = Some(node.into());
        spec.restart_policy.get_or_insert_with(|| "Always".into());
        spec.termination_grace_period_seconds.get_or_insert(30);
        out.insert(h, pod);
    }
    out
}

/// Creates the mirror pod of `pod` if the API has none (or one of another manifest).
/// Returns whether it created one.
pub async fn ensure_mirror(shared: &Shared, pod: &Pod) -> bool {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let h = pod.metadata.uid.clone().unwrap_or_default();
    let api = Api::<Pod>::namespaced(shared.client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(m))
            if m.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CONFIG_MIRROR))
                == Some(&h) =>
        {
            if m.metadata.deletion_timestamp.is_none() {
                return false;
            }
        }
        Ok(Some(_)) => {
            // A stale mirror (an older manifest): replace it.
            let _ = api.delete(name, Some(0)).await;
            return false;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(pod = name, error = %e, "reading the mirror pod failed");
            return false;
        }
    }
    let node = Api::<Node>::all(shared.client.clone())
        .get_opt(&shared.cfg.node_name)
        .await
        .ok()
        .flatten();
    let mut mirror = pod.clone();
    mirror.status = None;
    let m = &mut mirror.metadata;
    m.uid = None;
    m.resource_version = None;
    m.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONFIG_MIRROR.into(), h);
    if let Some(n) = node {
        m.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: shared.cfg.node_name.clone(),
            uid: n.metadata.uid.unwrap_or_default(),
            controller: Some(true),
            ..Default::default()
        }]);
    }
    match api.create(&mirror).await {
        Ok(_) => {
            tracing::info!(pod = name, "mirror pod created");
            true
        }
        Err(e) if e.is_already_exists() => false,
        Err(e) => {
            tracing::warn!(pod = name, error = %e, "creating the mirror pod failed");
            false
        }
    }
}

/// Removes the mirror pod of a static pod that is no longer in the manifests.
pub async fn remove_mirror(shared: &Shared, pod: &Pod) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api = Api::<Pod>::namespaced(shared.client.clone(), ns);
    if let Ok(Some(m)) = api.get_opt(name).await {
        if is_mirror(&m) {
            let _ = api.delete(name, Some(0)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_static_pods() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: x\n    command: [sleep, '1']\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "metadata: [").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let pods = read(dir.path(), "w1");
        assert_eq!(pods.len(), 1);
        let (uid, p) = pods.iter().next().unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("web-w1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("w1"));
        assert_eq!(p.metadata.annotations.as_ref().unwrap()[CONFIG_HASH], *uid);
        // Same manifest, same identity; another node, another.
        assert!(read(dir.path(), "w1").contains_key(uid));
        assert!(!read(dir.path(), "w2").contains_key(uid));
    }
}
