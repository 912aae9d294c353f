//! A structural check of custom objects against a CRD's openAPIV3Schema: types, required
//! properties, enums and string/number bounds. Unknown fields are kept.

use serde_json::Value;

use crate::error::{FieldError, FieldErrorKind};

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub fn check(schema: &Value, v: &Value, path: &str) -> Result<(), FieldError> {
    if v.is_null() && schema["nullable"] == Value::Bool(true) {
        return Ok(());
    }
    if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        return match v {
            Value::String(_) => Ok(()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
            _ => Err(type_error(path, "integer or string", v)),
        };
    }
    if let Some(want) = schema["type"].as_str() {
        let got = type_of(v);
        let ok = got == want || (want == "number" && got == "integer");
        if !ok {
            return Err(type_error(path, want, v));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            let supported: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            return Err(FieldError {
                path: path.to_string(),
                kind: FieldErrorKind::NotSupported {
                    value: v.to_string(),
                    supported,
                },
            });
        }
    }
    match v {
        Value::Object(map) => check_object(schema, map, path),
        Value::Array(items) if schema["items"].is_object() => {
            for (i, it) in items.iter().enumerate() {
                check(&schema["items"], it, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Value::Number(n) => check_number(schema, n, path),
        Value::String(s) => check_string(schema, s, path),
        _ => Ok(()),
    }
}

/// Required properties first, then each property against its own schema, or against
/// `additionalProperties` when the schema does not name it.
fn check_object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
) -> Result<(), FieldError> {
    if let Some(req) = schema["required"].as_array() {
        for r in req.iter().filter_map(|r| r.as_str()) {
            if !map.contains_key(r) {
                return Err(FieldError::required(child(path, r)));
            }
        }
    }
    let props = schema["properties"].as_object();
    for (k, val) in map {
        // The object's own metadata and type fields are checked by the server.
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)) {
            check(s, val, &child(path, k))?;
        } else if schema["additionalProperties"].is_object() {
            check(&schema["additionalProperties"], val, &child(path, k))?;
        }
    }
    Ok(())
}

fn check_number(schema: &Value, n: &serde_json::Number, path: &str) -> Result<(), FieldError> {
    let x = n.as_f64().unwrap_or(0.0);
    if let Some(min) = schema["minimum"].as_f64() {
        if x < min {
            return Err(FieldError::invalid(
                path,
                n,
                format!("should be greater than or equal to {min}"),
            ));
        }
    }
    if let Some(max) = schema["maximum"].as_f64() {
        if x > max {
            return Err(FieldError::invalid(
                path,
                n,
                format!("should be less than or equal to {max}"),
            ));
        }
    }
    Ok(())
}

fn check_string(schema: &Value, s: &str, path: &str) -> Result<(), FieldError> {
    if let Some(max) = schema["maxLength"].as_u64() {
        if s.chars().count() as u64 > max {
            return Err(FieldError {
                path: path.to_string(),
                kind: FieldErrorKind::TooLong(max as usize),
            });
        }
    }
    if let Some(min) = schema["minLength"].as_u64() {
        if (s.chars().count() as u64) < min {
            return Err(FieldError::invalid(
                path,
                s,
                format!("should be at least {min} chars long"),
            ));
        }
    }
    Ok(())
}

fn type_error(path: &str, want: &str, v: &Value) -> FieldError {
    FieldError {
        path: path.to_string(),
        kind: FieldErrorKind::Type(format!("{v}: {path} in body must be of type {want}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn types_required_and_enums_name_the_field() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "required": ["size"],
            "properties": {"size": {"type": "integer", "minimum": 1},
                           "mode": {"type": "string", "enum": ["a", "b"]},
                           "tags": {"type": "array", "items": {"type": "string"}}}}}});
        assert!(check(
            &schema,
            &json!({"spec": {"size": 3, "mode": "a", "tags": ["x"]}}),
            ""
        )
        .is_ok());
        let e = check(&schema, &json!({"spec": {"size": "3"}}), "").unwrap_err();
        assert_eq!(e.path, "spec.size");
        let e = check(&schema, &json!({"spec": {}}), "").unwrap_err();
        assert_eq!(e.to_string(), "spec.size: Required value");
        let e = check(&schema, &json!({"spec": {"size": 0}}), "").unwrap_err();
        assert_eq!(e.path, "spec.size");
        let e = check(&schema, &json!({"spec": {"size": 1, "mode": "c"}}), "").unwrap_err();
        assert_eq!(e.path, "spec.mode");
        let e = check(&schema, &json!({"spec": {"size": 1, "tags": [1]}}), "").unwrap_err();
        assert_eq!(e.path, "spec.tags[0]");
    }
}
