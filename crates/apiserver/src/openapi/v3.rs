//! The OpenAPI v3 documents: one per group-version (`/openapi/v3/apis/apps/v1`) with the
//! paths of its kinds and the schemas they reach under `components.schemas`, and the index
//! (`/openapi/v3`) that names each with the hash of its content, which clients cache by.
//!
//! Parameters are written inline in every operation: kubectl's field-validation check reads
//! the names of the PATCH operation's parameters and follows no references.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::defs::{self, V2_PREFIX};
use super::params::{In, Param};
use super::paths::{Body, Op, PathItem, OPERATION_DEFINITIONS};
use super::{Group, Model};

const V3_PREFIX: &str = "#/components/schemas/";

/// The document of one group-version.
pub(super) fn document(model: &Model, group: &Group) -> Value {
    let mut paths = Map::new();
    for item in &group.items {
        paths.insert(item.path.clone(), path_item(item));
    }
    let schemas: Map<String, Value> = reachable(model, group)
        .into_iter()
        .filter_map(|name| Some((name.to_string(), to_v3(model.definition(name)?))))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": super::info(),
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// `{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=…"}}}`.
pub(super) fn index<'a>(hashes: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    let paths: Map<String, Value> = hashes
        .map(|(path, hash)| {
            let url = format!("/openapi/v3/{path}?hash={hash}");
            (path.to_string(), json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// The definitions a group-version's operations refer to, and everything they refer to.
fn reachable<'a>(model: &'a Model, group: &'a Group) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = OPERATION_DEFINITIONS.to_vec();
    todo.extend(group.roots.iter().map(String::as_str));
    while let Some(name) = todo.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(def) = model.definition(name) {
            defs::refs_of(def, &mut todo);
        }
    }
    seen
}

/// A canonical schema in v3 form: references into `components.schemas`, and a reference
/// with siblings (a description) wrapped in `allOf`, as Kubernetes writes it.
fn to_v3(schema: &Value) -> Value {
    match schema {
        Value::Object(obj) => {
            let mut out: Map<String, Value> = Map::new();
            let mut target = None;
            for (k, v) in obj {
                match (
                    k.as_str(),
                    v.as_str().and_then(|r| r.strip_prefix(V2_PREFIX)),
                ) {
                    ("$ref", Some(name)) => target = Some(format!("{V3_PREFIX}{name}")),
                    _ => {
                        out.insert(k.clone(), to_v3(v));
                    }
                }
            }
            match target {
                Some(r) if out.is_empty() => json!({ "$ref": r }),
                Some(r) => {
                    out.insert("allOf".into(), json!([{ "$ref": r }]));
                    Value::Object(out)
                }
                None => Value::Object(out),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(to_v3).collect()),
        other => other.clone(),
    }
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{V3_PREFIX}{name}") })
}

fn path_item(item: &PathItem) -> Value {
    let mut out = Map::new();
    for op in &item.ops {
        out.insert(op.method.as_str().into(), operation(op));
    }
    let params: Vec<Value> = item.params.iter().map(|p| parameter(p)).collect();
    out.insert("parameters".into(), params.into());
    Value::Object(out)
}

fn operation(op: &Op) -> Value {
    let responses: Map<String, Value> = op
        .responses
        .iter()
        .map(|(code, def)| {
            let answer = json!({
                "description": super::status_text(code),
                "content": {"application/json": {"schema": reference(def)}},
            });
            (code.to_string(), answer)
        })
        .collect();
    let params: Vec<Value> = op.params.iter().map(|p| parameter(p)).collect();
    let mut out = json!({
        "description": op.description,
        "operationId": op.id,
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk,
    });
    match &op.body {
        Some(Body::Object(def)) => {
            out["requestBody"] = json!({
                "content": {"*/*": {"schema": reference(def)}},
                "required": true,
            });
        }
        Some(Body::Patch(types)) => {
            let content: BTreeMap<&str, Value> = types
                .iter()
                .map(|t| (*t, json!({ "schema": reference(defs::PATCH) })))
                .collect();
            out["requestBody"] = json!({ "content": content, "required": true });
        }
        None => {}
    }
    out
}

fn parameter(p: &Param) -> Value {
    let mut out = json!({
        "name": p.name,
        "in": if p.location == In::Path { "path" } else { "query" },
        "description": p.description,
        "schema": {"type": p.ty},
    });
    if p.location == In::Path {
        out["required"] = json!(true);
    }
    out
}
