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

    fn row_object(self, obj: &Value) -> Value {
        match self {
            Include::None => Value::Null,
            Include::Object => obj.clone(),
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
    let (columns, rows) = match custom {
        Some(pc) => {
            let p = api_model::table::CustomPrinter::new(&pc);
            let rows = objs
                .into_iter()
                .map(|o| {
                    let cells = p.cells(&o, now);
                    api_model::table::TableRow::new(cells, include.row_object(&o))
                })
                .collect();
            (p.columns().to_vec(), rows)
        }
        None => {
            let p = api_model::table::Printer::for_kind(&rt.group, &rt.kind);
            let rows = objs
                .into_iter()
                .map(|o| p.row(&o, include.row_object(&o), now))
                .collect();
            (p.columns(), rows)
        }
    };
    let mut t = api_model::table::table(&columns, rows, resource_version, continue_token);
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
