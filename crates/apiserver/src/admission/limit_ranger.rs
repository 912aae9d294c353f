//! LimitRanger: the LimitRanges of a namespace bound what its pods and claims may ask
//! for, as Kubernetes' LimitRanger admission plugin does. The mutating stage gives a new
//! pod's containers the ranges' default limits and requests; the validating stage refuses
//! a new pod, or a new or resized claim, outside a range's min, max or
//! limit-to-request ratio.
//!
//! Pods are checked on create only: their containers' resources cannot change after.

mod checks;
mod rules;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{AdmissionRequest, MutatingAdmission, Operation, ValidatingAdmission};
use crate::cache::WatchCache;
use crate::error::{Error, Result};
use crate::object;

pub const NAME: &str = "LimitRanger";

/// Where LimitRanges are stored, by namespace.
pub const PREFIX: &str = "/registry/core/limitranges/";

pub struct LimitRanger {
    pub cache: Arc<WatchCache>,
}

/// The kinds the plugin looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Pod,
    Claim,
}

fn target(req: &AdmissionRequest<'_>) -> Option<Target> {
    if !req.subresource.is_empty() || !req.rt.group.is_empty() {
        return None;
    }
    match (req.rt.kind.as_str(), req.op) {
        ("Pod", Operation::Create) => Some(Target::Pod),
        ("PersistentVolumeClaim", Operation::Create | Operation::Update) => Some(Target::Claim),
        _ => None,
    }
}

/// The name Kubernetes gives the object in messages: its name, else its generateName.
fn display_name(req: &AdmissionRequest<'_>, obj: &Value) -> String {
    let meta = &obj["metadata"];
    [
        meta["name"].as_str(),
        Some(req.name),
        meta["generateName"].as_str(),
    ]
    .into_iter()
    .flatten()
    .find(|n| !n.is_empty())
    .unwrap_or("Unknown")
    .to_string()
}

fn forbidden(req: &AdmissionRequest<'_>, obj: &Value, detail: impl std::fmt::Display) -> Error {
    Error::Forbidden(format!(
        "{} {:?} is forbidden: {detail}",
        req.rt.qualified(),
        display_name(req, obj)
    ))
}

impl LimitRanger {
    /// The namespace's LimitRanges, in name order.
    fn ranges(&self, req: &AdmissionRequest<'_>, obj: &Value) -> Result<Vec<rules::Range>> {
        let (_, stored) = self
            .cache
            .list(&format!("{PREFIX}{}/", req.namespace), None);
        stored
            .iter()
            .map(|c| {
                let v = c.value()?;
                rules::Range::from_json(&v).map_err(|e| {
                    let name = v["metadata"]["name"].as_str().unwrap_or_default();
                    forbidden(
                        req,
                        obj,
                        format!("LimitRange {name:?} cannot be enforced: {e}"),
                    )
                })
            })
            .collect()
    }
}

#[async_trait]
impl MutatingAdmission for LimitRanger {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn admit(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()> {
        if target(req) != Some(Target::Pod) {
            return Ok(());
        }
        let ranges = self.ranges(req, obj)?;
        rules::apply_defaults(&ranges, obj);
        Ok(())
    }
}

#[async_trait]
impl ValidatingAdmission for LimitRanger {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn validate(&self, req: &AdmissionRequest<'_>, obj: &Value) -> Result<()> {
        let Some(target) = target(req) else {
            return Ok(());
        };
        if req.old.is_some_and(object::is_deleting) {
            return Ok(());
        }
        for range in self.ranges(req, obj)? {
            let found = match target {
                Target::Pod => checks::pod_violations(&range, obj),
                Target::Claim => checks::claim_violations(&range, obj, req.old),
            };
            let violations = found
                .map_err(|e| Error::invalid(&req.rt.kind, &display_name(req, obj), vec![e]))?;
            // As in Kubernetes, the first range a request breaks is the one reported.
            if !violations.is_empty() {
                return Err(forbidden(req, obj, rules::aggregate(&violations)));
            }
        }
        Ok(())
    }
}
