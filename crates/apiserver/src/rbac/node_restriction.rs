//! NodeRestriction: a node creates only mirror pods bound to itself, and may not give its
//! own Node labels under `node-restriction.kubernetes.io/`, which workloads use to pick
//! trusted nodes. (Which objects a node may touch at all is the Node authorizer's call.)

use async_trait::async_trait;
use serde_json::Value;

use super::node::node_name;
use crate::admission::{AdmissionRequest, Operation, ValidatingAdmission};
use crate::error::{Error, Result};

pub const MIRROR: &str = "kubernetes.io/config.mirror";
pub const RESTRICTED_LABELS: &str = "node-restriction.kubernetes.io/";

pub struct NodeRestriction;

fn restricted(obj: Option<&Value>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = obj
        .and_then(|o| o["metadata"]["labels"].as_object())
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(RESTRICTED_LABELS))
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    out.sort();
    out
}

#[async_trait]
impl ValidatingAdmission for NodeRestriction {
    fn name(&self) -> &'static str {
        "NodeRestriction"
    }

    async fn validate(&self, req: &AdmissionRequest<'_>, obj: &Value) -> Result<()> {
        let Some(node) = node_name(req.user) else {
            return Ok(());
        };
        if !req.rt.group.is_empty() {
            return Ok(());
        }
        let forbidden = |why: String| Err(Error::Forbidden(format!("{why} (NodeRestriction)")));
        match (req.rt.kind.as_str(), req.op, req.subresource) {
            ("Pod", Operation::Create, "") => {
                if obj["metadata"]["annotations"][MIRROR].is_null() {
                    return forbidden(format!(
                        "pod does not have \"{MIRROR}\" annotation, node {node:?} can only create mirror pods"
                    ));
                }
                let bound = obj["spec"]["nodeName"].as_str().unwrap_or_default();
                if bound != node {
                    return forbidden(format!(
                        "node {node:?} can only create pods with spec.nodeName set to itself, not {bound:?}"
                    ));
                }
                Ok(())
            }
            ("Node", Operation::Create | Operation::Update, _) => {
                if restricted(req.old) != restricted(Some(obj)) {
                    return forbidden(format!(
                        "node {node:?} is not allowed to modify labels under {RESTRICTED_LABELS}"
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
