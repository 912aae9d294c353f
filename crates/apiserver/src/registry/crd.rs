//! CustomResourceDefinitions: the kinds a CRD registers, and the CRD's own checks.

use serde_json::{json, Value};

use super::{ResourceType, Schema};
use crate::error::FieldError;

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

/// Checks what the typed decoding cannot: names, scope, versions.
pub fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = s(crd, &["spec", "group"]);
    let plural = s(crd, &["spec", "names", "plural"]);
    if group.is_empty() {
        errs.push(FieldError::required("spec.group"));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural"));
    }
    if s(crd, &["spec", "names", "kind"]).is_empty() {
        errs.push(FieldError::required("spec.names.kind"));
    }
    let name = s(crd, &["metadata", "name"]);
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = s(crd, &["spec", "scope"]);
    if scope != "Namespaced" && scope != "Cluster" {
        errs.push(FieldError::not_supported(
            "spec.scope",
            scope,
            &["Cluster", "Namespaced"],
        ));
    }
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            storage,
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v["name"].as_str().unwrap_or("").is_empty() {
            errs.push(FieldError::required(format!("spec.versions[{i}].name")));
        }
    }
    errs
}

/// The kinds a CRD serves: one per served version.
pub fn resource_types(crd: &Value) -> Vec<ResourceType> {
    let names = &crd["spec"]["names"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"] != json!(false))
        .map(|v| {
            let kind = s(crd, &["spec", "names", "kind"]).to_string();
            ResourceType {
                group: s(crd, &["spec", "group"]).to_string(),
                version: v["name"].as_str().unwrap_or_default().to_string(),
                singular: match s(crd, &["spec", "names", "singular"]) {
                    "" => kind.to_lowercase(),
                    sg => sg.to_string(),
                },
                kind,
                plural: s(crd, &["spec", "names", "plural"]).to_string(),
                namespaced: s(crd, &["spec", "scope"]) == "Namespaced",
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                has_status: v["subresources"]["status"].is_object(),
                fields: &[],
                schema: Schema::Custom(
                    v["schema"]["openAPIV3Schema"]
                        .is_object()
                        .then(|| v["schema"]["openAPIV3Schema"].clone()),
                ),
            }
        })
        .collect()
}

/// The status a CRD gets when it is stored: its names are accepted and it is established,
/// because it is served from the moment it is committed.
pub fn accepted_status(crd: &Value) -> Value {
    let now = crate::object::now();
    let cond = |t: &str, reason: &str, msg: &str| {
        json!({"type": t, "status": "True", "reason": reason, "message": msg,
               "lastTransitionTime": now})
    };
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == json!(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": storage,
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    })
}
