//! Reading and writing the metadata of objects held as JSON.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

/// Now, as Kubernetes writes timestamps: RFC 3339 in UTC, whole seconds.
pub fn now() -> String {
    now_plus(0)
}

/// `now() + secs`.
pub fn now_plus(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Timestamp::from_second(now + secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

/// The metadata map, created if missing or not an object.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let m = obj.as_object_mut().expect("object");
    let md = m
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !md.is_object() {
        *md = Value::Object(Map::new());
    }
    md.as_object_mut().expect("metadata object")
}

pub fn str_of<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

pub fn name(obj: &Value) -> &str {
    str_of(obj, "name")
}

pub fn namespace(obj: &Value) -> &str {
    str_of(obj, "namespace")
}

pub fn resource_version(obj: &Value) -> &str {
    str_of(obj, "resourceVersion")
}

pub fn set(obj: &mut Value, field: &str, v: impl Into<Value>) {
    meta_mut(obj).insert(field.to_string(), v.into());
}

pub fn remove(obj: &mut Value, field: &str) {
    meta_mut(obj).remove(field);
}

/// Everything that holds a deleted object back: `metadata.finalizers`, and for a
/// Namespace also `spec.finalizers`.
pub fn all_finalizers(obj: &Value, kind: &str) -> Vec<String> {
    let mut f = finalizers(obj);
    if kind == "Namespace" {
        f.extend(
            obj["spec"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from)),
        );
    }
    f
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

/// Everything but `metadata` and `status`: what a change of bumps `generation`.
pub fn spec_differs(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
        m
    };
    strip(a) != strip(b)
}

/// The object's labels.
pub fn labels(obj: &Value) -> impl Iterator<Item = (&str, &str)> {
    obj["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.iter())
        .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
}

/// The value of a dotted field path, as text for field selectors (`spec.nodeName`).
pub fn field_text(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for p in path.split('.') {
        cur = &cur[p];
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
