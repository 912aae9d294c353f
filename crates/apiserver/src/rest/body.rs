//! Request bodies: JSON (the default when no Content-Type is sent), YAML and Kubernetes
//! protobuf, and the field validation of `fieldValidation=Strict|Warn|Ignore`: fields the
//! kind does not have, and keys given twice.

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::query::Validation;
use crate::error::{Error, Result};
use crate::registry::{ResourceType, Schema};

/// The media type of a request body, without parameters.
pub fn media_type(content_type: Option<&str>) -> &str {
    content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("")
}

/// Decodes an object body. Duplicate keys are reported in `dups` (JSON and YAML only).
pub fn decode(content_type: Option<&str>, body: &[u8]) -> Result<(Value, Vec<String>)> {
    match media_type(content_type) {
        "" | "application/json" | "*/*" => {
            let v: Value = serde_json::from_slice(body).map_err(|e| {
                Error::BadRequest(format!("the request body is not valid JSON: {e}"))
            })?;
            Ok((v, duplicates(body)))
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let v: Value = serde_yaml_ng::from_slice(body).map_err(|e| {
                Error::BadRequest(format!("the request body is not valid YAML: {e}"))
            })?;
            Ok((v, Vec::new()))
        }
        other => Err(unsupported(other)),
    }
}

/// Decodes an object body of any accepted type, protobuf included. Fields set to null are
/// dropped: Kubernetes decodes a null as the field's zero value (`"audiences": null` is no
/// audiences).
pub fn decode_any(content_type: Option<&str>, body: &[u8]) -> Result<(Value, Vec<String>)> {
    let (mut v, dups) = if media_type(content_type) == crate::protobuf::CONTENT_TYPE {
        (crate::protobuf::decode(body)?, Vec::new())
    } else {
        decode(content_type, body)?
    };
    drop_nulls(&mut v);
    Ok((v, dups))
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

pub fn unsupported(media: &str) -> Error {
    Error::BadRequest(format!(
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {media:?})"
    ))
}

/// The problems `fieldValidation` looks for: unknown fields (a built-in kind's typed
/// decoding drops them) and duplicate keys.
pub fn field_problems(rt: &ResourceType, obj: &Value, dups: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = dups
        .into_iter()
        .map(|d| format!("duplicate field {d:?}"))
        .collect();
    let mut unknown = Vec::new();
    match &rt.schema {
        Schema::Builtin(_) => {
            if let Ok(pruned) = rt.check_schema(obj.clone()) {
                pruned_paths(obj, &pruned, "", &mut unknown);
            }
        }
        Schema::Custom(Some(schema)) => {
            if let Some(m) = obj.as_object() {
                for (k, v) in m {
                    // apiVersion, kind and metadata are the API's, not the schema's.
                    if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        match schema.get("properties").and_then(|p| p.get(k)) {
                            Some(s) => unknown_in_schema(v, s, k, &mut unknown),
                            None if preserves(schema) => {}
                            None => unknown.push(k.clone()),
                        }
                    }
                }
            }
        }
        Schema::Custom(None) => {}
    }
    out.extend(unknown.into_iter().map(|u| format!("unknown field {u:?}")));
    out
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
}

/// Fields of `v` that a CRD's structural schema does not declare (and does not preserve).
fn unknown_in_schema(v: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    if preserves(schema) || schema["x-kubernetes-embedded-resource"] == Value::Bool(true) {
        return;
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(|p| p.as_object());
            let extra = schema.get("additionalProperties");
            for (k, child) in m {
                let p = join(path, k);
                match (props.and_then(|ps| ps.get(k)), extra) {
                    (Some(s), _) => unknown_in_schema(child, s, &p, out),
                    (None, Some(s @ Value::Object(_))) => unknown_in_schema(child, s, &p, out),
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) if props.is_some() => out.push(p),
                    (None, _) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_in_schema(item, s, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Applies `fieldValidation` to the problems found: Strict refuses, Warn warns.
pub fn enforce(v: Validation, kind: &str, name: &str, problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    match v {
        Validation::Ignore => Ok(()),
        Validation::Warn => {
            for p in problems {
                crate::admission::warn(p);
            }
            Ok(())
        }
        Validation::Strict => Err(Error::BadRequest(format!(
            "{kind} in version {name:?} cannot be handled as a {kind}: strict decoding error: {}",
            problems.join(", ")
        ))),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Paths set in `orig` that the typed round trip dropped.
fn pruned_paths(orig: &Value, pruned: &Value, path: &str, out: &mut Vec<String>) {
    match (orig, pruned) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    None if !v.is_null() => out.push(join(path, k)),
                    None => {}
                    Some(pv) => pruned_paths(v, pv, &join(path, k), out),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                pruned_paths(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Keys given twice anywhere in a JSON document, by path.
pub fn duplicates(body: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Walk {
        path: String::new(),
        found: &mut found,
    }
    .deserialize(&mut de);
    found
}

struct Walk<'a> {
    path: String,
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = m.next_key::<String>()? {
            let p = join(&self.path, &k);
            if !seen.insert(k) {
                self.found.push(p.clone());
            }
            m.next_value_seed(Walk {
                path: p,
                found: self.found,
            })?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let seed = Walk {
                path: format!("{}[{i}]", self.path),
                found: &mut *self.found,
            };
            if s.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn finds_duplicate_keys_by_path() {
        let body = br#"{"metadata":{"name":"a","name":"b"},"spec":{"containers":[{"x":1,"x":2}]}}"#;
        assert_eq!(duplicates(body), ["metadata.name", "spec.containers[0].x"]);
        assert!(duplicates(br#"{"a":{"b":1},"c":[1,2]}"#).is_empty());
    }

    #[test]
    fn finds_unknown_fields_of_builtin_kinds() {
        let reg = Registry::with_builtins();
        let rt = reg.get("v1", "ConfigMap").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "bogus": 1}, "data": {"a": "b"}, "extra": null, "spec": {}});
        let p = field_problems(&rt, &obj, Vec::new());
        assert_eq!(
            p,
            ["unknown field \"metadata.bogus\"", "unknown field \"spec\""]
        );
        assert!(enforce(Validation::Strict, "ConfigMap", "v1", p.clone()).is_err());
        assert!(enforce(Validation::Ignore, "ConfigMap", "v1", p).is_ok());
    }

    #[test]
    fn finds_fields_a_crd_schema_does_not_declare() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "m": {"type": "object", "additionalProperties": {"type": "string"}}}}}});
        let rt = crate::registry::ResourceType {
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Thing".into(),
            plural: "things".into(),
            singular: "thing".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            has_status: false,
            fields: &[],
            schema: Schema::Custom(Some(schema)),
        };
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"},
            "spec": {"a": "x", "bogus": 1, "free": {"anything": 1}, "m": {"k": "v"}}, "top": 1});
        assert_eq!(
            field_problems(&rt, &obj, Vec::new()),
            ["unknown field \"spec.bogus\"", "unknown field \"top\""]
        );
    }

    #[test]
    fn bodies_by_content_type() {
        assert!(decode(None, b"{\"a\":1}").is_ok());
        assert!(decode(Some("application/yaml"), b"a: 1\n").is_ok());
        assert!(decode(Some("application/json"), b"{nope").is_err());
        assert!(decode(Some("text/html"), b"{}").is_err());
    }
}
