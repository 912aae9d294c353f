//! ServiceAccount: pods without a service account run as `default`, and every pod gets its
//! ServiceAccount's token mounted at `/var/run/secrets/kubernetes.io/serviceaccount` (a
//! projected volume: a bound token, `ca.crt` and `namespace`), unless the pod or its
//! ServiceAccount sets `automountServiceAccountToken: false`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{AdmissionRequest, MutatingAdmission, Operation};
use crate::cache::WatchCache;
use crate::error::Result;

pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

pub struct ServiceAccount {
    pub cache: Arc<WatchCache>,
}

/// The projected volume Kubernetes names `kube-api-access-<suffix>`. The CA bundle is
/// optional: clusters without TLS have none to publish.
fn token_volume(name: &str) -> Value {
    json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "optional": true,
            "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}})
}

impl ServiceAccount {
    fn automount(&self, ns: &str, sa: &str, spec: &serde_json::Map<String, Value>) -> bool {
        if let Some(b) = spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
        {
            return b;
        }
        self.cache
            .get(&format!("/registry/core/serviceaccounts/{ns}/{sa}"))
            .and_then(|c| c.value().ok())
            .and_then(|v| v["automountServiceAccountToken"].as_bool())
            .unwrap_or(true)
    }
}

#[async_trait]
impl MutatingAdmission for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn admit(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()> {
        if req.op != Operation::Create || req.rt.kind != "Pod" || !req.rt.group.is_empty() {
            return Ok(());
        }
        let mirror = obj["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string();
        let Some(spec) = obj.get_mut("spec").and_then(|s| s.as_object_mut()) else {
            return Ok(());
        };
        let sa = spec
            .get("serviceAccountName")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        spec.insert("serviceAccountName".into(), sa.clone().into());
        spec.insert("serviceAccount".into(), sa.clone().into());
        if mirror || !self.automount(req.namespace, &sa, spec) {
            return Ok(());
        }
        let mounted = ["containers", "initContainers"].iter().any(|list| {
            spec.get(*list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    c["volumeMounts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|m| m["mountPath"] == TOKEN_MOUNT_PATH)
                })
        });
        if mounted {
            return Ok(());
        }
        let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_string();
        let vol = format!("kube-api-access-{suffix}");
        let vols = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(v) = vols.as_array_mut() {
            v.push(token_volume(&vol));
        }
        for list in ["containers", "initContainers"] {
            for c in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let mounts = c
                    .as_object_mut()
                    .map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
                if let Some(Value::Array(m)) = mounts {
                    m.push(json!({"name": vol, "mountPath": TOKEN_MOUNT_PATH, "readOnly": true}));
                }
            }
        }
        Ok(())
    }
}
