//! NamespaceLifecycle: nothing is created in a namespace that is missing or terminating,
//! and the system namespaces cannot be deleted.

use std::sync::Arc;

use async_trait::async_trait;
use raft_store::Store;
use serde_json::Value;

use super::{AdmissionRequest, Operation, ValidatingAdmission};
use crate::cache::WatchCache;
use crate::error::{Error, Result};
use crate::object;

pub const IMMORTAL: &[&str] = &["default", "kube-system", "kube-public"];

pub struct NamespaceLifecycle {
    pub cache: Arc<WatchCache>,
    pub store: Store,
}

pub fn namespace_key(ns: &str) -> String {
    format!("/registry/core/namespaces/{ns}")
}

#[async_trait]
impl ValidatingAdmission for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    async fn validate(&self, req: &AdmissionRequest<'_>, _obj: &Value) -> Result<()> {
        if req.rt.kind == "Namespace" && req.rt.group.is_empty() {
            if req.op == Operation::Delete && IMMORTAL.contains(&req.name) {
                return Err(Error::Forbidden(format!(
                    "namespaces {:?} is forbidden: this namespace may not be deleted",
                    req.name
                )));
            }
            return Ok(());
        }
        if req.op != Operation::Create || !req.rt.namespaced {
            return Ok(());
        }
        let key = namespace_key(req.namespace);
        let ns = match self.cache.get(&key) {
            Some(ns) => ns,
            None => {
                // The namespace may be newer than this member's cache.
                self.cache.wait_fresh(&self.store).await?;
                self.cache.get(&key).ok_or_else(|| Error::NotFound {
                    resource: "namespaces".into(),
                    name: req.namespace.to_string(),
                })?
            }
        };
        if object::is_deleting(&ns.value()?) {
            return Err(Error::Forbidden(format!(
                "{} {:?} is forbidden: unable to create new content in namespace {} because it is being terminated",
                req.rt.qualified(),
                req.name,
                req.namespace
            )));
        }
        Ok(())
    }
}
