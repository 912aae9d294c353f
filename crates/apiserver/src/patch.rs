//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes' strategic
//! merge patch, where lists of the built-in kinds merge by their merge key.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The kind of a patch, as `PatchType` in the API.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PatchKind {
    Merge,
    Strategic,
    Json,
}

pub fn apply(kind: PatchKind, target: &Value, patch: &[u8]) -> Result<Value> {
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
            strategic(&mut out, &p);
        }
    }
    Ok(out)
}

/// The merge key of a list field of the built-in kinds, by field name and, where one name
/// means two lists, by what the items hold.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Lists of scalars that merge as sets instead of being replaced.
fn merges_as_set(field: &str) -> bool {
    field == "finalizers"
}

fn strategic(target: &mut Value, patch: &Value) {
    let Some(pm) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(|v| v.as_str()) == Some("replace") {
        let mut p = pm.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let tm = target.as_object_mut().expect("object");
    for (k, pv) in pm {
        if k.starts_with('$') {
            continue;
        }
        match pv {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(_) => strategic(tm.entry(k.clone()).or_insert(Value::Null), pv),
            Value::Array(items) => {
                let cur = tm.get(k).and_then(|v| v.as_array()).cloned();
                let merged = match (cur, merge_key(k, items)) {
                    (Some(cur), Some(key)) => merge_list(cur, items, key),
                    (Some(mut cur), None) if merges_as_set(k) => {
                        for i in items {
                            if !cur.contains(i) {
                                cur.push(i.clone());
                            }
                        }
                        cur
                    }
                    _ => items.iter().filter(|i| !is_directive(i)).cloned().collect(),
                };
                tm.insert(k.clone(), Value::Array(merged));
            }
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
}

fn is_directive(v: &Value) -> bool {
    v.get("$patch").is_some()
}

fn merge_list(mut cur: Vec<Value>, patch: &[Value], key: &str) -> Vec<Value> {
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(|v| v.as_str()) == Some("replace"))
    {
        return patch.iter().filter(|p| !is_directive(p)).cloned().collect();
    }
    for p in patch {
        let id = p.get(key);
        let pos = id.and_then(|id| cur.iter().position(|c| c.get(key) == Some(id)));
        let delete = p.get("$patch").and_then(|v| v.as_str()) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut cur[i], p),
            (None, false) => {
                let mut item = Value::Null;
                strategic(&mut item, p);
                cur.push(item);
            }
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strategic_merges_containers_by_name() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}});
        let patch = json!({"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"}]}});
        let out = apply(PatchKind::Strategic, &pod, patch.to_string().as_bytes()).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "image": "a:2",
                "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}})
        );
    }

    #[test]
    fn merge_patch_replaces_lists_and_null_deletes() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"l": [1, 2]}});
        let p = json!({"metadata": {"labels": {"a": null}}, "spec": {"l": [3]}});
        let out = apply(PatchKind::Merge, &obj, p.to_string().as_bytes()).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"l": [3]}})
        );
    }

    #[test]
    fn json_patch_and_bad_patches() {
        let obj = json!({"spec": {"replicas": 1}});
        let p = json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]);
        let out = apply(PatchKind::Json, &obj, p.to_string().as_bytes()).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert!(apply(PatchKind::Merge, &obj, b"{nope").is_err());
        let p = json!([{"op": "remove", "path": "/spec/missing"}]);
        assert!(apply(PatchKind::Json, &obj, p.to_string().as_bytes()).is_err());
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let obj = json!({"metadata": {"finalizers": ["a"]}});
        let p = json!({"metadata": {"finalizers": ["b", "a"]}});
        let out = apply(PatchKind::Strategic, &obj, p.to_string().as_bytes()).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
    }
}
