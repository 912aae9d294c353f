//! NodeRestriction: a node creates only mirror pods bound to itself, may not give its
//! own Node labels under `node-restriction.kubernetes.io/`, which workloads use to pick
//! trusted nodes, and changes nothing of a PersistentVolume but its own finalizer
//! ([`LOCAL_PATH_FINALIZER`]). (Which objects a node may touch at all is the Node authorizer's call.)

use async_trait::async_trait;
use serde_json::Value;

use super::node::node_name;
use crate::admission::{AdmissionRequest, Operation, ValidatingAdmission};
use crate::error::{Error, Result};

pub const MIRROR: &str = "kubernetes.io/config.mirror";
pub const RESTRICTED_LABELS: &str = "node-restriction.kubernetes.io/";

/// The finalizer a node puts on a `rkube.io/local-path` volume whose directory it made,
/// and takes off once the directory is removed.
pub const LOCAL_PATH_FINALIZER: &str = "rkube.io/local-path-directory";

pub struct NodeRestriction;

/// What a node changed in a PersistentVolume besides [`LOCAL_PATH_FINALIZER`], if anything.
fn volume_change(old: Option<&Value>, new: &Value) -> Option<&'static str> {
    let old = old?;
    for (what, path) in [
        ("spec", "/spec"),
        ("status", "/status"),
        ("labels", "/metadata/labels"),
        ("annotations", "/metadata/annotations"),
        ("ownerReferences", "/metadata/ownerReferences"),
    ] {
        if old.pointer(path) != new.pointer(path) {
            return Some(what);
        }
    }
    let others = |v: &Value| -> Vec<String> {
        v["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|f| *f != LOCAL_PATH_FINALIZER)
            .map(str::to_string)
            .collect()
    };
    (others(old) != others(new)).then_some("finalizers")
}

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
            ("PersistentVolume", Operation::Update, "") => match volume_change(req.old, obj) {
                Some(what) => forbidden(format!(
                    "node {node:?} may change only the {LOCAL_PATH_FINALIZER:?} finalizer of a \
                     PersistentVolume, not its {what}"
                )),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_node_changes_only_its_finalizer_of_a_volume() {
        let old = json!({"metadata": {"finalizers": ["kubernetes.io/pv-protection"]},
            "spec": {"local": {"path": "/data/pvc-1"}}});
        let mut new = old.clone();
        new["metadata"]["finalizers"] =
            json!(["kubernetes.io/pv-protection", LOCAL_PATH_FINALIZER]);
        new["metadata"]["resourceVersion"] = json!("9");
        assert_eq!(volume_change(Some(&old), &new), None);
        let mut moved = new.clone();
        moved["spec"]["local"]["path"] = json!("/etc");
        assert_eq!(volume_change(Some(&old), &moved), Some("spec"));
        let mut dropped = old.clone();
        dropped["metadata"]["finalizers"] = json!([]);
        assert_eq!(volume_change(Some(&old), &dropped), Some("finalizers"));
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        assert_eq!(volume_change(Some(&old), &relabelled), Some("labels"));
    }
}
