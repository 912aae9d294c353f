//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes' strategic
//! merge patch, which merges by the kind's patch metadata (`api_model::merge`).

use api_model::schema::Node;
use serde_json::Value;

use crate::error::{Error, Result};

/// The kind of a patch, as `PatchType` in the API.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PatchKind {
    Merge,
    Strategic,
    Json,
}

/// Applies `patch` to `target`. A strategic merge patch needs the kind's schema (`schema`):
/// custom kinds without one do not take it, as in Kubernetes.
pub fn apply(kind: PatchKind, target: &Value, patch: &[u8], schema: Option<Node>) -> Result<Value> {
    let p: Value = serde_json::from_slice(patch)
        .map_err(|e| Error::BadRequest(format!("the patch is not valid JSON: {e}")))?;
    let mut out = target.clone();
    match kind {
        PatchKind::Merge => json_patch::merge(&mut out, &p),
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(p)
                .map_err(|e| Error::BadRequest(format!("the JSON patch is malformed: {e}")))?;
            json_patch::patch(&mut out, &ops)
                .map_err(|e| Error::BadRequest(format!("the JSON patch does not apply: {e}")))?;
        }
        PatchKind::Strategic => {
            if !p.is_object() {
                return Err(Error::BadRequest(
                    "a strategic merge patch must be a JSON object".into(),
                ));
            }
            let Some(schema) = schema else {
                return Err(Error::BadRequest(
                    "strategic merge patch is not supported for this kind (it has no schema); use a JSON merge patch".into(),
                ));
            };
            out = api_model::merge::strategic_merge(target, &p, schema).map_err(|e| {
                Error::BadRequest(format!("the strategic merge patch does not apply: {e}"))
            })?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod_schema() -> Option<Node<'static>> {
        api_model::schema::builtin().root("v1", "Pod")
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}});
        let patch = json!({"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"}]}});
        let out = apply(
            PatchKind::Strategic,
            &pod,
            patch.to_string().as_bytes(),
            pod_schema(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "image": "a:2",
                "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]}]}})
        );
    }

    #[test]
    fn merge_patch_replaces_lists_and_null_deletes() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"l": [1, 2]}});
        let p = json!({"metadata": {"labels": {"a": null}}, "spec": {"l": [3]}});
        let out = apply(PatchKind::Merge, &obj, p.to_string().as_bytes(), None).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"l": [3]}})
        );
    }

    #[test]
    fn json_patch_and_bad_patches() {
        let obj = json!({"spec": {"replicas": 1}});
        let p = json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]);
        let out = apply(PatchKind::Json, &obj, p.to_string().as_bytes(), None).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert!(apply(PatchKind::Merge, &obj, b"{nope", None).is_err());
        let p = json!([{"op": "remove", "path": "/spec/missing"}]);
        assert!(apply(PatchKind::Json, &obj, p.to_string().as_bytes(), None).is_err());
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let obj = json!({"metadata": {"finalizers": ["a"]}});
        let p = json!({"metadata": {"finalizers": ["b", "a"]}});
        let out = apply(
            PatchKind::Strategic,
            &obj,
            p.to_string().as_bytes(),
            pod_schema(),
        )
        .unwrap();
        // As Kubernetes merges: the patch's order, then what only the object had.
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
    }
}
