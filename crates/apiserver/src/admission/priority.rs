//! Priority: a new pod's `spec.priority` comes from its PriorityClass (or the global
//! default class, or 0), as Kubernetes' Priority admission plugin does. An unknown class,
//! or a priority that disagrees with the class, is refused.

use std::sync::Arc;

use async_trait::async_trait;
use raft_store::Store;
use serde_json::{json, Value};

use super::{AdmissionRequest, MutatingAdmission, Operation};
use crate::cache::WatchCache;
use crate::error::{Error, Result};

pub const CLASS_PREFIX: &str = "/registry/scheduling.k8s.io/priorityclasses/";

/// The classes every Kubernetes cluster has.
const SYSTEM_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

pub struct Priority {
    pub cache: Arc<WatchCache>,
    pub store: Store,
}

impl Priority {
    /// The class's value and preemption policy; `None` when it does not exist.
    async fn class(&self, name: &str) -> Result<Option<(i64, Value)>> {
        if let Some((_, v)) = SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
            return Ok(Some((*v, Value::Null)));
        }
        let key = format!("{CLASS_PREFIX}{name}");
        let found = match self.cache.get(&key) {
            Some(c) => Some(c),
            None => {
                // The class may be newer than this member's cache.
                self.cache.wait_fresh(&self.store).await?;
                self.cache.get(&key)
            }
        };
        match found {
            None => Ok(None),
            Some(c) => {
                let v = c.value()?;
                Ok(Some((
                    v["value"].as_i64().unwrap_or(0),
                    v["preemptionPolicy"].clone(),
                )))
            }
        }
    }

    fn global_default(&self) -> Result<Option<(String, i64, Value)>> {
        let (_, classes) = self.cache.list(CLASS_PREFIX, None);
        for c in classes {
            let v = c.value()?;
            if v["globalDefault"] == json!(true) {
                let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
                return Ok(Some((
                    name,
                    v["value"].as_i64().unwrap_or(0),
                    v["preemptionPolicy"].clone(),
                )));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl MutatingAdmission for Priority {
    fn name(&self) -> &'static str {
        "Priority"
    }

    async fn admit(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()> {
        if req.op != Operation::Create || req.rt.kind != "Pod" || !req.rt.group.is_empty() {
            return Ok(());
        }
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let name = spec
            .get("priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (value, policy) = if name.is_empty() {
            match self.global_default()? {
                Some((n, v, p)) => {
                    spec.insert("priorityClassName".into(), n.into());
                    (v, p)
                }
                None => (0, Value::Null),
            }
        } else {
            self.class(&name).await?.ok_or_else(|| {
                Error::Forbidden(format!(
                    "pods {:?} is forbidden: no PriorityClass with name {name} was found",
                    req.name
                ))
            })?
        };
        if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
            if given != value {
                return Err(Error::Forbidden(format!(
                    "pods {:?} is forbidden: the integer value of priority ({given}) must not be \
                     provided in pod spec; priority admission controller computed {value} from \
                     the given PriorityClass name",
                    req.name
                )));
            }
        }
        spec.insert("priority".into(), value.into());
        if !policy.is_null() && !spec.contains_key("preemptionPolicy") {
            spec.insert("preemptionPolicy".into(), policy);
        }
        Ok(())
    }
}
