//! The OpenAPI v2 (Swagger 2.0) document of everything served, as JSON; [`super::proto`]
//! turns it into the protobuf kubectl asks for.
//!
//! Shared query parameters are written once under `parameters` and referenced
//! (`#/parameters/<name>`), as Kubernetes does; kubectl's field-validation check follows
//! those references.

use serde_json::{json, Map, Value};

use super::defs;
use super::params::{In, Param, SHARED};
use super::paths::{Body, Op, PathItem};
use super::Model;

/// The whole v2 document.
pub(super) fn document(model: &Model) -> Value {
    let mut definitions: Map<String, Value> = defs::builtin()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, def) in &model.custom {
        definitions.insert(name.clone(), defs::v2_compatible(def));
    }
    let mut paths = Map::new();
    for group in model.groups.values() {
        for item in &group.items {
            paths.insert(item.path.clone(), path_item(item));
        }
    }
    let parameters: Map<String, Value> = SHARED
        .iter()
        .map(|p| (p.name.to_string(), parameter(p)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": super::info(),
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": paths,
        "definitions": definitions,
        "parameters": parameters,
    })
}

fn path_item(item: &PathItem) -> Value {
    let mut out = Map::new();
    for op in &item.ops {
        out.insert(op.method.as_str().into(), operation(op));
    }
    let params: Vec<Value> = item.params.iter().map(|p| parameter_ref(p)).collect();
    out.insert("parameters".into(), params.into());
    Value::Object(out)
}

fn operation(op: &Op) -> Value {
    let mut params = Vec::new();
    if let Some(body) = &op.body {
        let schema = match body {
            Body::Object(def) => defs::reference(def),
            Body::Patch(_) => defs::reference(defs::PATCH),
        };
        params.push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
    }
    params.extend(op.params.iter().map(|p| parameter_ref(p)));
    let responses: Map<String, Value> = op
        .responses
        .iter()
        .map(|(code, def)| {
            let answer =
                json!({"description": super::status_text(code), "schema": defs::reference(def)});
            (code.to_string(), answer)
        })
        .collect();
    let mut out = json!({
        "description": op.description,
        "operationId": op.id,
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk,
    });
    if let Some(Body::Patch(types)) = &op.body {
        out["consumes"] = json!(types);
    }
    out
}

/// A reference to a shared parameter, or the parameter itself.
fn parameter_ref(p: &'static Param) -> Value {
    if SHARED.iter().any(|s| std::ptr::eq(*s, p)) {
        json!({ "$ref": format!("#/parameters/{}", p.name) })
    } else {
        parameter(p)
    }
}

fn parameter(p: &Param) -> Value {
    let mut out = json!({
        "name": p.name,
        "in": if p.location == In::Path { "path" } else { "query" },
        "description": p.description,
        "type": p.ty,
    });
    if p.location == In::Path {
        out["required"] = json!(true);
    }
    out
}
