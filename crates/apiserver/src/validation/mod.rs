//! Validation of what every object has (names, metadata) and of the built-in kinds'
//! required and immutable fields.

mod paths;

use serde_json::Value;

use crate::error::FieldError;
use crate::object;

pub use paths::{config_key, descending_path, item_path};

pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Kinds whose names must be DNS labels rather than subdomains, as in Kubernetes.
fn needs_label_name(kind: &str) -> bool {
    matches!(kind, "Namespace" | "Service")
}

/// Name, namespace, labels and other metadata.
pub fn metadata(kind: &str, namespaced: bool, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = object::name(obj);
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name"));
    } else if needs_label_name(kind) {
        if !is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                DNS1123_LABEL_MSG,
            ));
        }
    } else if kind == "Node"
        || kind == "Event"
        || kind.ends_with("Role")
        || kind.ends_with("RoleBinding")
    {
        // Kubernetes accepts these names with fewer rules (path segments only).
        if name.contains('/') || name.contains('%') || name == "." || name == ".." {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "may not contain '/' or '%'",
            ));
        }
    } else if !is_dns1123_subdomain(name) {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
    let ns = object::namespace(obj);
    if namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace"));
        } else if !is_dns1123_label(ns) {
            errs.push(FieldError::invalid(
                "metadata.namespace",
                ns,
                DNS1123_LABEL_MSG,
            ));
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    for (k, v) in object::labels(obj) {
        if !valid_qualified_name(k) {
            errs.push(FieldError::invalid("metadata.labels", k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
        if v.len() > 63
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            errs.push(FieldError::invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
    }
    if let Some(l) = obj["metadata"]["labels"].as_object() {
        if l.values().any(|v| !v.is_string()) {
            errs.push(FieldError::invalid(
                "metadata.labels",
                "",
                "label values must be strings",
            ));
        }
    }
    errs
}

fn valid_qualified_name(k: &str) -> bool {
    let name = match k.rsplit_once('/') {
        Some((prefix, n)) => {
            if !is_dns1123_subdomain(prefix) {
                return false;
            }
            n
        }
        None => k,
    };
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// What Kubernetes requires of the built-in kinds beyond their types.
pub fn kind_rules(kind: &str, obj: &Value) -> Vec<FieldError> {
    match kind {
        "Pod" => pod_spec(&obj["spec"], "spec"),
        "ReplicaSet" | "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicationController" => {
            let mut e = Vec::new();
            if kind != "ReplicationController" && !obj["spec"]["selector"].is_object() {
                e.push(FieldError::required("spec.selector"));
            }
            e.extend(template_labels_match(obj));
            e.extend(pod_spec(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
            ));
            e
        }
        "Job" => pod_spec(&obj["spec"]["template"]["spec"], "spec.template.spec"),
        "CronJob" => {
            let mut e = Vec::new();
            if obj["spec"]["schedule"].as_str().unwrap_or("").is_empty() {
                e.push(FieldError::required("spec.schedule"));
            }
            e.extend(pod_spec(
                &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                "spec.jobTemplate.spec.template.spec",
            ));
            e
        }
        "Service" => service(obj),
        "ConfigMap" | "Secret" => paths::data_keys(kind, obj),
        "ResourceQuota" => quota_hard(&obj["spec"]["hard"]),
        _ => Vec::new(),
    }
}

/// Every `spec.hard` value of a ResourceQuota is a quantity.
fn quota_hard(hard: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (name, v) in hard.as_object().into_iter().flatten() {
        let text = v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        if api_model::quantity::parse_for(name, &text).is_none() {
            errs.push(FieldError::invalid(
                format!("spec.hard[{name}]"),
                text,
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ));
        }
    }
    errs
}

fn template_labels_match(obj: &Value) -> Vec<FieldError> {
    let Some(want) = obj["spec"]["selector"]["matchLabels"].as_object() else {
        return Vec::new();
    };
    let have = &obj["spec"]["template"]["metadata"]["labels"];
    if want.iter().all(|(k, v)| &have[k] == v) {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            "spec.template.metadata.labels",
            have,
            "`selector` does not match template `labels`",
        )]
    }
}

pub fn pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers")));
    }
    let mut names = std::collections::HashSet::new();
    for (list, cs) in [
        (
            "initContainers",
            spec["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        ),
        ("containers", containers),
    ] {
        for (i, c) in cs.iter().enumerate() {
            let p = format!("{path}.{list}[{i}]");
            let name = c["name"].as_str().unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(format!("{p}.name")));
            } else if !is_dns1123_label(name) {
                errs.push(FieldError::invalid(
                    format!("{p}.name"),
                    name,
                    DNS1123_LABEL_MSG,
                ));
            } else if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{p}.name"), name));
            }
            if c["image"].as_str().unwrap_or("").trim().is_empty() {
                errs.push(FieldError::required(format!("{p}.image")));
            }
            for (j, port) in c["ports"].as_array().into_iter().flatten().enumerate() {
                let n = port["containerPort"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    errs.push(FieldError::invalid(
                        format!("{p}.ports[{j}].containerPort"),
                        n,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
    errs.extend(paths::pod_paths(spec, path));
    if let Some(rp) = spec["restartPolicy"].as_str() {
        if !["Always", "OnFailure", "Never"].contains(&rp) {
            errs.push(FieldError::not_supported(
                format!("{path}.restartPolicy"),
                rp,
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
    errs
}

fn service(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = obj["spec"]["type"].as_str().unwrap_or("ClusterIP");
    let ports = obj["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let headless = obj["spec"]["clusterIP"].as_str() == Some("None");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        errs.push(FieldError::required("spec.ports"));
    }
    for (i, p) in ports.iter().enumerate() {
        let n = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&n) {
            errs.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                n,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if ports.len() > 1 && p["name"].as_str().unwrap_or("").is_empty() {
            errs.push(FieldError::required(format!("spec.ports[{i}].name")));
        }
    }
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
        errs.push(FieldError::not_supported(
            "spec.type",
            ty,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let affinity = obj["spec"]["sessionAffinity"].as_str().unwrap_or("None");
    if !["None", "ClientIP"].contains(&affinity) {
        errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            affinity,
            &["ClientIP", "None"],
        ));
    }
    let timeout = &obj["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"];
    if let Some(t) = timeout.as_i64().filter(|t| !(1..=86400).contains(t)) {
        errs.push(FieldError::invalid(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            t,
            "must be greater than 0 and less than 86400",
        ));
    }
    for (i, p) in ports.iter().enumerate() {
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            errs.push(FieldError::not_supported(
                format!("spec.ports[{i}].protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    if ty == "ExternalName"
        && obj["spec"]["externalName"]
            .as_str()
            .unwrap_or("")
            .is_empty()
    {
        errs.push(FieldError::required("spec.externalName"));
    }
    errs
}

/// Fields that may not change once set.
pub fn immutable(kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut same = |path: &str| {
        let get = |v: &Value| {
            let mut cur = v;
            for p in path.split('.') {
                cur = &cur[p];
            }
            cur.clone()
        };
        let (a, b) = (get(old), get(new));
        if a != b {
            errs.push(FieldError::immutable(path, b));
        }
    };
    match kind {
        "Pod" => {
            // Of a pod's spec only images, activeDeadlineSeconds and tolerations may change.
            let strip = |v: &Value| {
                let mut s = v["spec"].clone();
                if let Some(m) = s.as_object_mut() {
                    m.remove("activeDeadlineSeconds");
                    m.remove("tolerations");
                    for list in ["containers", "initContainers"] {
                        if let Some(cs) = m.get_mut(list).and_then(|c| c.as_array_mut()) {
                            for c in cs {
                                if let Some(c) = c.as_object_mut() {
                                    c.remove("image");
                                }
                            }
                        }
                    }
                }
                s
            };
            if strip(old) != strip(new) {
                errs.push(FieldError::forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)",
                ));
            }
        }
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" => same("spec.selector"),
        "Service"
            if old["spec"]["clusterIP"].is_string() && new["spec"]["clusterIP"].is_string() =>
        {
            same("spec.clusterIP")
        }
        "ConfigMap" | "Secret" if old["immutable"] == Value::Bool(true) => {
            same("data");
            same("binaryData");
            same("immutable");
        }
        "Secret" => same("type"),
        "Node" if old["spec"]["podCIDR"].is_string() => same("spec.podCIDR"),
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_follow_rfc_1123() {
        assert!(is_dns1123_subdomain("web-1.example"));
        assert!(!is_dns1123_subdomain("Web"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_label("a.b"));
        let e = metadata(
            "Pod",
            true,
            &json!({"metadata": {"name": "Bad_Name", "namespace": "default"}}),
        );
        assert_eq!(e[0].path, "metadata.name");
        let e = metadata("Pod", true, &json!({"metadata": {"name": "ok"}}));
        assert_eq!(e[0].to_string(), "metadata.namespace: Required value");
    }

    #[test]
    fn pods_need_images_and_unique_names() {
        let spec = json!({"containers": [{"name": "a"}, {"name": "a", "image": "x"}]});
        let msgs: Vec<String> = pod_spec(&spec, "spec")
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(
            msgs.contains(&"spec.containers[0].image: Required value".to_string()),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("spec.containers[1].name: Duplicate")),
            "{msgs:?}"
        );
    }

    #[test]
    fn selectors_are_immutable() {
        let a = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}}});
        let b = json!({"spec": {"selector": {"matchLabels": {"app": "b"}}}});
        let e = immutable("Deployment", &a, &b);
        assert_eq!(e.len(), 1);
        assert!(e[0].to_string().contains("field is immutable"));
        assert!(immutable("Deployment", &a, &a).is_empty());
    }
}
