//! Revisions of a Deployment: the template hash that names a ReplicaSet, the revision
//! annotation, finding the ReplicaSet of the current template, and pruning old ones.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

pub const HASH_LABEL: &str = "pod-template-hash";
pub(crate) const REVISION: &str = "deployment.kubernetes.io/revision";
pub(crate) const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub(crate) const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// A short, stable name suffix for a template: FNV-1a over its JSON, written in
/// Kubernetes' alphabet for generated names (no vowels, no look-alike digits).
pub(crate) fn template_hash(t: &PodTemplateSpec, collision_count: i32) -> String {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    strip_hash_label(&mut v);
    let mut h: u32 = 0x811c_9dc5;
    let bytes = serde_json::to_vec(&v).unwrap_or_default();
    for b in bytes.iter().chain(collision_count.to_string().as_bytes()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

fn strip_hash_label(v: &mut Value) {
    if let Some(l) = v
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_object_mut)
    {
        l.remove(HASH_LABEL);
        if l.is_empty() {
            v["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
}

/// Whether two templates are equal but for the hash label.
pub(crate) fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let mut x = serde_json::to_value(a).unwrap_or_default();
    let mut y = serde_json::to_value(b).unwrap_or_default();
    strip_hash_label(&mut x);
    strip_hash_label(&mut y);
    x == y
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet running the Deployment's current template, if any; the oldest wins
/// when several do.
pub(crate) fn find_new(d: &Deployment, rss: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    let t = &d.spec.template;
    let mut same: Vec<&Arc<ReplicaSet>> = rss
        .iter()
        .filter(|rs| {
            rs.spec
                .template
                .as_ref()
                .is_some_and(|rt| same_template(rt, t))
        })
        .collect();
    same.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    same.first().map(|rs| (*rs).clone())
}

/// Old ReplicaSets without pods beyond `revisionHistoryLimit` (default 10), oldest first:
/// the ones to delete.
pub(crate) fn prunable(d: &Deployment, olds: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
    let limit = d.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let mut idle: Vec<Arc<ReplicaSet>> = olds
        .iter()
        .filter(|rs| {
            rs.spec.replicas.unwrap_or(0) == 0
                && rs.status.as_ref().map_or(0, |s| s.replicas) == 0
                && rs.metadata.deletion_timestamp.is_none()
        })
        .cloned()
        .collect();
    if idle.len() <= limit {
        return Vec::new();
    }
    idle.sort_by_key(|rs| revision(rs));
    let n = idle.len() - limit;
    idle.truncate(n);
    idle
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template(image: &str, hash: Option<&str>) -> PodTemplateSpec {
        let mut labels = json!({"app": "web"});
        if let Some(h) = hash {
            labels[HASH_LABEL] = h.into();
        }
        serde_json::from_value(json!({"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": image}]}}))
        .unwrap()
    }

    #[test]
    fn the_hash_ignores_its_own_label_and_follows_the_template() {
        let a = template("web:1", None);
        let h = template_hash(&a, 0);
        assert_eq!(h, template_hash(&template("web:1", Some(&h)), 0));
        assert_ne!(h, template_hash(&template("web:2", None), 0));
        assert_ne!(h, template_hash(&a, 1));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert!(same_template(&a, &template("web:1", Some("xyz"))));
        assert!(!same_template(&a, &template("web:2", None)));
    }
}
