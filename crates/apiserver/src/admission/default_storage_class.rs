//! DefaultStorageClass: a new PersistentVolumeClaim that names no class
//! (`spec.storageClassName` absent, not `""`) gets the default StorageClass — the one
//! annotated `storageclass.kubernetes.io/is-default-class: "true"`, the newest of them when
//! there are several, as Kubernetes' plugin does. Without a default, the claim is left
//! as it is.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{AdmissionRequest, MutatingAdmission, Operation};
use crate::cache::WatchCache;
use crate::error::Result;

const CLASSES: &str = "/registry/storage.k8s.io/storageclasses/";
pub const DEFAULT_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

pub struct DefaultStorageClass {
    pub cache: Arc<WatchCache>,
}

/// The default class among `classes`: the newest one marked default (by creation time,
/// then name).
pub fn default_class(classes: &[Value]) -> Option<String> {
    classes
        .iter()
        .filter(|c| c["metadata"]["annotations"][DEFAULT_ANNOTATION] == "true")
        .max_by(|a, b| {
            let key = |c: &Value| {
                (
                    c["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    c["metadata"]["name"].as_str().unwrap_or("").to_string(),
                )
            };
            key(a).cmp(&key(b))
        })
        .and_then(|c| c["metadata"]["name"].as_str().map(str::to_string))
}

#[async_trait]
impl MutatingAdmission for DefaultStorageClass {
    fn name(&self) -> &'static str {
        "DefaultStorageClass"
    }

    async fn admit(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()> {
        if req.op != Operation::Create
            || req.rt.kind != "PersistentVolumeClaim"
            || !req.rt.group.is_empty()
            || !obj["spec"]["storageClassName"].is_null()
        {
            return Ok(());
        }
        let (_, cached) = self.cache.list(CLASSES, None);
        let classes: Vec<Value> = cached.iter().filter_map(|c| c.value().ok()).collect();
        if let (Some(name), Some(spec)) = (default_class(&classes), obj.get_mut("spec")) {
            if let Some(spec) = spec.as_object_mut() {
                spec.insert("storageClassName".into(), Value::String(name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn class(name: &str, default: &str, created: &str) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": created,
            "annotations": {DEFAULT_ANNOTATION: default}}})
    }

    #[test]
    fn the_newest_class_marked_default_is_the_default() {
        let classes = [
            class("old", "true", "2026-01-01T00:00:00Z"),
            class("new", "true", "2026-06-01T00:00:00Z"),
            class("newest-not-default", "false", "2026-12-01T00:00:00Z"),
        ];
        assert_eq!(default_class(&classes).as_deref(), Some("new"));
        assert_eq!(default_class(&classes[2..]), None);
        assert_eq!(default_class(&[]), None);
    }
}
