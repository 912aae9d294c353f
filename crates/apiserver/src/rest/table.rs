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
    let rows = Rows::new(api, rt, include);
    let built = objs.iter().map(|o| rows.row(o)).collect();
    Ok(rows.finish(built, resource_version, continue_token))
}

/// The Table of stored objects, decoded and printed on every core (a 10,000-pod
/// `kubectl get` is mostly this work), off the async workers.
pub fn of_stored(
    api: &Api,
    rt: &ResourceType,
    items: &[bytes::Bytes],
    resource_version: &str,
    continue_token: &str,
    include: Include,
) -> Result<Value> {
    let rows = Rows::new(api, rt, include);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(256);
    let work = || -> Result<Vec<api_model::table::TableRow>> {
        let parts: Vec<Result<Vec<_>>> = std::thread::scope(|s| {
            let handles: Vec<_> = items
                .chunks(chunk)
                .map(|part| {
                    let rows = &rows;
                    s.spawn(move || {
                        part.iter()
                            .map(|b| {
                                let o: Value = serde_json::from_slice(b)
                                    .map_err(|e| Error::Internal(format!("stored object: {e}")))?;
                                Ok(rows.row(&o))
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Internal("table".into())))
                })
                .collect()
        });
        let mut all = Vec::with_capacity(items.len());
        for p in parts {
            all.extend(p?);
        }
        Ok(all)
    };
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let built = if multi {
        tokio::task::block_in_place(work)?
    } else {
        work()?
    };
    Ok(rows.finish(built, resource_version, continue_token))
}

/// How rows of one kind are printed.
struct Rows {
    printer: Printer,
    include: Include,
    now: i64,
}

enum Printer {
    Builtin(&'static api_model::table::Printer),
    Custom(api_model::table::CustomPrinter),
}

impl Rows {
    fn new(api: &Api, rt: &ResourceType, include: Include) -> Rows {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let custom = match rt.schema {
            Schema::Custom(_) => printer_columns(api, rt),
            Schema::Builtin(_) => None,
        };
        let printer = match custom {
            Some(pc) => Printer::Custom(api_model::table::CustomPrinter::new(&pc)),
            None => Printer::Builtin(api_model::table::Printer::for_kind(&rt.group, &rt.kind)),
        };
        Rows {
            printer,
            include,
            now,
        }
    }

    fn row(&self, o: &Value) -> api_model::table::TableRow {
        match &self.printer {
            Printer::Builtin(p) => p.row(o, self.include.row_object(o), self.now),
            Printer::Custom(p) => {
                api_model::table::TableRow::new(p.cells(o, self.now), self.include.row_object(o))
            }
        }
    }

    fn finish(
        &self,
        rows: Vec<api_model::table::TableRow>,
        resource_version: &str,
        continue_token: &str,
    ) -> Value {
        let columns = match &self.printer {
            Printer::Builtin(p) => p.columns(),
            Printer::Custom(p) => p.columns().to_vec(),
        };
        let mut t = api_model::table::table(&columns, rows, resource_version, continue_token);
        if self.include == Include::None {
            if let Some(rows) = t["rows"].as_array_mut() {
                for r in rows {
                    if let Some(m) = r.as_object_mut() {
                        m.remove("object");
                    }
                }
            }
        }
        t
    }
}
