//! The v2 JSON document as gnostic's `openapi.v2.Document` protobuf: the form kubectl and
//! client-go ask `/openapi/v2` for.
//!
//! Free-form values (defaults, enum members, examples, `x-…` extensions) travel as YAML
//! text; JSON is YAML, so they are written as compact JSON. Keywords the protobuf has no field
//! for are left out, as gnostic does.

use rkube_proto::openapi_v2 as pb;
use serde_json::Value;

/// The protobuf form of a v2 document.
pub(super) fn document(doc: &Value) -> pb::Document {
    let named_schemas = |v: &Value| -> Vec<pb::NamedSchema> {
        entries(v)
            .map(|(name, s)| pb::NamedSchema {
                name: name.clone(),
                value: Some(schema(s)),
            })
            .collect()
    };
    pb::Document {
        swagger: text(doc, "swagger"),
        info: doc.get("info").map(|i| pb::Info {
            title: text(i, "title"),
            version: text(i, "version"),
            ..Default::default()
        }),
        consumes: strings(doc, "consumes"),
        produces: strings(doc, "produces"),
        paths: doc.get("paths").map(|p| pb::Paths {
            path: entries(p)
                .map(|(name, item)| pb::NamedPathItem {
                    name: name.clone(),
                    value: Some(path_item(item)),
                })
                .collect(),
            vendor_extension: Vec::new(),
        }),
        definitions: doc.get("definitions").map(|d| pb::Definitions {
            additional_properties: named_schemas(d),
        }),
        parameters: doc.get("parameters").map(|p| pb::ParameterDefinitions {
            additional_properties: entries(p)
                .map(|(name, param)| pb::NamedParameter {
                    name: name.clone(),
                    value: Some(parameter(param)),
                })
                .collect(),
        }),
        vendor_extension: extensions(doc),
        ..Default::default()
    }
}

fn path_item(item: &Value) -> pb::PathItem {
    let op = |method: &str| item.get(method).map(operation);
    pb::PathItem {
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        patch: op("patch"),
        parameters: parameters(item),
        vendor_extension: extensions(item),
        ..Default::default()
    }
}

fn operation(op: &Value) -> pb::Operation {
    pb::Operation {
        description: text(op, "description"),
        operation_id: text(op, "operationId"),
        consumes: strings(op, "consumes"),
        produces: strings(op, "produces"),
        parameters: parameters(op),
        responses: op.get("responses").map(|r| pb::Responses {
            response_code: entries(r)
                .map(|(code, answer)| pb::NamedResponseValue {
                    name: code.clone(),
                    value: Some(pb::ResponseValue {
                        oneof: Some(pb::response_value::Oneof::Response(pb::Response {
                            description: text(answer, "description"),
                            schema: answer.get("schema").map(|s| pb::SchemaItem {
                                oneof: Some(pb::schema_item::Oneof::Schema(schema(s))),
                            }),
                            ..Default::default()
                        })),
                    }),
                })
                .collect(),
            vendor_extension: Vec::new(),
        }),
        vendor_extension: extensions(op),
        ..Default::default()
    }
}

fn parameters(v: &Value) -> Vec<pb::ParametersItem> {
    let items = v.get("parameters").and_then(Value::as_array);
    let item = |p: &Value| {
        let oneof = match p.get("$ref").and_then(Value::as_str) {
            Some(r) => pb::parameters_item::Oneof::JsonReference(pb::JsonReference {
                r#ref: r.to_string(),
                description: String::new(),
            }),
            None => pb::parameters_item::Oneof::Parameter(parameter(p)),
        };
        pb::ParametersItem { oneof: Some(oneof) }
    };
    items.into_iter().flatten().map(item).collect()
}

fn parameter(p: &Value) -> pb::Parameter {
    use pb::non_body_parameter::Oneof as NonBody;
    let location = text(p, "in");
    let oneof = match location.as_str() {
        "body" => pb::parameter::Oneof::BodyParameter(pb::BodyParameter {
            description: text(p, "description"),
            name: text(p, "name"),
            r#in: location,
            required: flag(p, "required"),
            schema: p.get("schema").map(schema),
            vendor_extension: extensions(p),
        }),
        "path" => non_body(NonBody::PathParameterSubSchema(
            pb::PathParameterSubSchema {
                required: flag(p, "required"),
                r#in: location,
                description: text(p, "description"),
                name: text(p, "name"),
                r#type: text(p, "type"),
                unique_items: flag(p, "uniqueItems"),
                vendor_extension: extensions(p),
                ..Default::default()
            },
        )),
        _ => non_body(NonBody::QueryParameterSubSchema(
            pb::QueryParameterSubSchema {
                required: flag(p, "required"),
                r#in: location,
                description: text(p, "description"),
                name: text(p, "name"),
                r#type: text(p, "type"),
                unique_items: flag(p, "uniqueItems"),
                vendor_extension: extensions(p),
                ..Default::default()
            },
        )),
    };
    pb::Parameter { oneof: Some(oneof) }
}

fn non_body(oneof: pb::non_body_parameter::Oneof) -> pb::parameter::Oneof {
    pb::parameter::Oneof::NonBodyParameter(pb::NonBodyParameter { oneof: Some(oneof) })
}

/// A JSON schema as gnostic's `Schema`.
pub(super) fn schema(s: &Value) -> pb::Schema {
    let number = |k: &str| s.get(k).and_then(Value::as_f64).unwrap_or_default();
    let int = |k: &str| s.get(k).and_then(Value::as_i64).unwrap_or_default();
    pb::Schema {
        r#ref: text(s, "$ref"),
        format: text(s, "format"),
        title: text(s, "title"),
        description: text(s, "description"),
        default: s.get("default").map(any),
        multiple_of: number("multipleOf"),
        maximum: number("maximum"),
        exclusive_maximum: flag(s, "exclusiveMaximum"),
        minimum: number("minimum"),
        exclusive_minimum: flag(s, "exclusiveMinimum"),
        max_length: int("maxLength"),
        min_length: int("minLength"),
        pattern: text(s, "pattern"),
        max_items: int("maxItems"),
        min_items: int("minItems"),
        unique_items: flag(s, "uniqueItems"),
        max_properties: int("maxProperties"),
        min_properties: int("minProperties"),
        required: strings(s, "required"),
        r#enum: s
            .get("enum")
            .and_then(Value::as_array)
            .map(|e| e.iter().map(any).collect())
            .unwrap_or_default(),
        additional_properties: s.get("additionalProperties").and_then(additional),
        r#type: match s.get("type") {
            Some(Value::String(t)) => Some(pb::TypeItem {
                value: vec![t.clone()],
            }),
            Some(Value::Array(_)) => Some(pb::TypeItem {
                value: strings(s, "type"),
            }),
            _ => None,
        },
        items: match s.get("items") {
            Some(Value::Array(all)) => Some(pb::ItemsItem {
                schema: all.iter().map(schema).collect(),
            }),
            Some(one @ Value::Object(_)) => Some(pb::ItemsItem {
                schema: vec![schema(one)],
            }),
            _ => None,
        },
        all_of: s
            .get("allOf")
            .and_then(Value::as_array)
            .map(|all| all.iter().map(schema).collect())
            .unwrap_or_default(),
        properties: s.get("properties").map(|p| pb::Properties {
            additional_properties: entries(p)
                .map(|(name, s)| pb::NamedSchema {
                    name: name.clone(),
                    value: Some(schema(s)),
                })
                .collect(),
        }),
        discriminator: text(s, "discriminator"),
        read_only: flag(s, "readOnly"),
        example: s.get("example").map(any),
        vendor_extension: extensions(s),
        ..Default::default()
    }
}

fn additional(v: &Value) -> Option<Box<pb::AdditionalPropertiesItem>> {
    use pb::additional_properties_item::Oneof;
    let oneof = match v {
        Value::Bool(b) => Oneof::Boolean(*b),
        Value::Object(_) => Oneof::Schema(Box::new(schema(v))),
        _ => return None,
    };
    Some(Box::new(pb::AdditionalPropertiesItem {
        oneof: Some(oneof),
    }))
}

/// The `x-…` keys of an object, in key order.
fn extensions(v: &Value) -> Vec<pb::NamedAny> {
    let Some(obj) = v.as_object() else {
        return Vec::new();
    };
    obj.iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| pb::NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn any(v: &Value) -> pb::Any {
    pb::Any {
        yaml: v.to_string(),
    }
}

fn entries(v: &Value) -> impl Iterator<Item = (&String, &Value)> {
    v.as_object().into_iter().flatten()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or_default()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
