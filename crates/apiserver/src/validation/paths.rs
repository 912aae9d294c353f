//! Paths and keys that name files inside volumes. A volume item's `path`, a ConfigMap's
//! or Secret's data key and a mount's `subPath` become file names under the volume's
//! directory on the node, so each must stay below it: not absolute, no `..` element.
//! The kubelet checks them again before it writes or mounts anything.

use serde_json::Value;

use crate::error::FieldError;

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// A path that must stay inside its volume: relative, with no `..` element.
pub fn descending_path(field: &str, p: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if p.starts_with('/') {
        errs.push(FieldError::invalid(field, p, "must be a relative path"));
    }
    if p.split('/').any(|e| e == "..") {
        errs.push(FieldError::invalid(field, p, "must not contain '..'"));
    }
    errs
}

/// A volume item's file name: a descending path that is not empty and does not start
/// with `..` (the kubelet's own `..data` names live there).
pub fn item_path(field: &str, p: &str) -> Vec<FieldError> {
    if p.is_empty() {
        return vec![FieldError::required(field)];
    }
    let mut errs = descending_path(field, p);
    if p.starts_with("..") && errs.is_empty() {
        errs.push(FieldError::invalid(field, p, "must not start with '..'"));
    }
    errs
}

/// A ConfigMap or Secret data key, which becomes a file name in its volume.
pub fn config_key(field: &str, k: &str) -> Vec<FieldError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
    if k.is_empty() || !k.bytes().all(allowed) {
        vec![FieldError::invalid(field, k, CONFIG_KEY_MSG)]
    } else if k == "." || k == ".." {
        vec![FieldError::invalid(field, k, format!("must not be '{k}'"))]
    } else if k.starts_with("..") {
        vec![FieldError::invalid(field, k, "must not start with '..'")]
    } else {
        vec![]
    }
}

/// The keys of a ConfigMap (`data`, `binaryData`) or a Secret (`data`, `stringData`).
pub fn data_keys(kind: &str, obj: &Value) -> Vec<FieldError> {
    let fields: &[&str] = match kind {
        "ConfigMap" => &["data", "binaryData"],
        "Secret" => &["data", "stringData"],
        _ => return vec![],
    };
    let mut errs = Vec::new();
    for f in fields {
        for k in obj[f].as_object().into_iter().flat_map(|m| m.keys()) {
            errs.extend(config_key(&format!("{f}[{k}]"), k));
        }
    }
    errs
}

fn items(list: &Value, field: &str, errs: &mut Vec<FieldError>) {
    for (i, item) in list.as_array().into_iter().flatten().enumerate() {
        let path = item["path"].as_str().unwrap_or("");
        errs.extend(item_path(&format!("{field}.items[{i}].path"), path));
        if let Some(k) = item["key"].as_str() {
            errs.extend(config_key(&format!("{field}.items[{i}].key"), k));
        }
    }
}

/// Every item path and key of a pod's volumes, and every mount's `subPath`.
pub fn pod_paths(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        for src in ["configMap", "secret", "downwardAPI"] {
            items(&v[src]["items"], &format!("{vp}.{src}"), &mut errs);
        }
        let sources = v["projected"]["sources"].as_array().into_iter().flatten();
        for (j, s) in sources.enumerate() {
            for src in ["configMap", "secret", "downwardAPI"] {
                let field = format!("{vp}.projected.sources[{j}].{src}");
                items(&s[src]["items"], &field, &mut errs);
            }
            if let Some(p) = s["serviceAccountToken"]["path"].as_str() {
                let field = format!("{vp}.projected.sources[{j}].serviceAccountToken.path");
                errs.extend(item_path(&field, p));
            }
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let mounts = c["volumeMounts"].as_array().into_iter().flatten();
            for (j, m) in mounts.enumerate() {
                for f in ["subPath", "subPathExpr"] {
                    if let Some(p) = m[f].as_str() {
                        let field = format!("{path}.{list}[{i}].volumeMounts[{j}].{f}");
                        errs.extend(descending_path(&field, p));
                    }
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn item_paths_stay_inside_the_volume() {
        for bad in [
            "../../x",
            "/etc/passwd",
            "a/../../b",
            "..",
            "..data",
            "a/..",
        ] {
            assert!(!item_path("p", bad).is_empty(), "{bad} accepted");
        }
        for good in ["a", "a/b", "a..b", "dir/..x", ".hidden"] {
            assert!(item_path("p", good).is_empty(), "{good} refused");
        }
        let msg = fields(&item_path("spec.volumes[0].configMap.items[0].path", "/x"));
        assert!(
            msg[0].contains("spec.volumes[0].configMap.items[0].path"),
            "{msg:?}"
        );
        assert!(msg[0].contains("must be a relative path"), "{msg:?}");
    }

    #[test]
    fn data_keys_are_file_names() {
        assert!(config_key("data[a.b]", "a.b").is_empty());
        for bad in ["..", ".", "../x", "a/b", "..x", ""] {
            assert!(!config_key("k", bad).is_empty(), "{bad} accepted");
        }
        let cm = json!({"data": {"ok": "1", "..evil": "2"}, "binaryData": {"a/b": ""}});
        let errs = fields(&data_keys("ConfigMap", &cm));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("data[..evil]")), "{errs:?}");
        assert!(data_keys("Pod", &cm).is_empty());
    }

    #[test]
    fn every_volume_shape_and_sub_path_is_checked() {
        let spec = json!({
            "volumes": [
                {"name": "a", "configMap": {"name": "c", "items": [{"key": "k", "path": "../../x"}]}},
                {"name": "b", "secret": {"secretName": "s", "items": [{"key": "..", "path": "ok"}]}},
                {"name": "c", "projected": {"sources": [
                    {"downwardAPI": {"items": [{"path": "/abs", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"serviceAccountToken": {"path": "../token"}}]}},
            ],
            "containers": [{"name": "c", "volumeMounts": [
                {"name": "a", "mountPath": "/m", "subPath": "/etc"},
                {"name": "a", "mountPath": "/n", "subPath": "sub/dir"}]}],
        });
        let errs = fields(&pod_paths(&spec, "spec"));
        for want in [
            "spec.volumes[0].configMap.items[0].path",
            "spec.volumes[1].secret.items[0].key",
            "spec.volumes[2].projected.sources[0].downwardAPI.items[0].path",
            "spec.volumes[2].projected.sources[1].serviceAccountToken.path",
            "spec.containers[0].volumeMounts[0].subPath",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(want)),
                "{want} not in {errs:?}"
            );
        }
        assert_eq!(errs.len(), 5, "{errs:?}");
    }
}
