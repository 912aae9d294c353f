//! The definitions (named schemas) of the OpenAPI documents: the built-in kinds from
//! `api_model::schema`, the served custom kinds from their CRD's openAPIV3Schema, and a
//! `<Kind>List` beside every kind, each kind tagged with `x-kubernetes-group-version-kind`.
//!
//! Definitions are kept in one canonical form: references are `#/definitions/<name>` and a
//! described reference is `{"$ref", "description"}` (as OpenAPI v2 writes it); custom schemas
//! keep their OpenAPI v3 keywords (`nullable`, `anyOf`, …), which [`v2_compatible`] removes
//! for the v2 document.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use api_model::schema::ROOTS;
use serde_json::{json, Map, Value};

use crate::registry::{ResourceType, Schema};

pub(super) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
pub(super) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(super) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(super) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(super) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

pub(super) const V2_PREFIX: &str = "#/definitions/";

pub(super) type Defs = BTreeMap<String, Value>;

const GVK: &str = "x-kubernetes-group-version-kind";

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this \
    representation of an object. Servers should convert recognized schemas to the latest \
    internal value, and may reject unrecognized values. More info: \
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this \
    object represents. Servers may infer this from the endpoint the client submits requests \
    to. Cannot be updated. In CamelCase. More info: \
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DESCRIPTION: &str = "Standard object's metadata. More info: \
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// `{"group", "kind", "version"}`, as `x-kubernetes-group-version-kind` spells one kind.
pub(super) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// A reference to a definition, in the canonical (v2) form.
pub(super) fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{V2_PREFIX}{name}") })
}

/// The definition name of a custom kind, as Kubernetes names it: the group reversed, then
/// version and kind (`stable.example.com`, `v1`, `CronTab` → `com.example.stable.v1.CronTab`).
pub(super) fn custom_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The definition name of a served kind, if it has one.
pub(super) fn definition_name(t: &ResourceType) -> Option<String> {
    match t.schema {
        Schema::Builtin(_) => {
            let api_version = t.api_version();
            ROOTS
                .iter()
                .find(|r| r.api_version == api_version && r.kind == t.kind)
                .map(|r| r.definition.to_string())
        }
        Schema::Custom(_) => Some(custom_name(&t.group, &t.version, &t.kind)),
    }
}

/// The built-in definitions in canonical form, with their kinds tagged and their lists and
/// the PATCH body type beside them; built once.
pub(super) fn builtin() -> &'static Defs {
    static DEFS: OnceLock<Defs> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut defs = api_model::schema::builtin().defs.clone();
        for schema in defs.values_mut() {
            refs_as_siblings(schema);
        }
        for root in ROOTS {
            let (group, version) = split_api_version(root.api_version);
            if let Some(Value::Object(def)) = defs.get_mut(root.definition) {
                def.insert(GVK.into(), json!([gvk(group, version, root.kind)]));
                relax_required(def, root.definition);
            }
            let list = list_definition(root.definition, group, version, root.kind);
            defs.insert(format!("{}List", root.definition), list);
        }
        defs.insert(
            PATCH.into(),
            json!({
                "description": "Patch is provided to give a concrete name and type to the \
                    Kubernetes PATCH request body.",
                "type": "object",
            }),
        );
        defs
    })
}

/// The definitions of one custom kind: the kind and its list.
pub(super) fn custom(t: &ResourceType, schema: Option<&Value>) -> [(String, Value); 2] {
    let name = custom_name(&t.group, &t.version, &t.kind);
    let mut def = match schema {
        Some(Value::Object(s)) => s.clone(),
        _ => Map::from_iter([
            ("type".to_string(), json!("object")),
            (
                "x-kubernetes-preserve-unknown-fields".to_string(),
                json!(true),
            ),
        ]),
    };
    def.entry("type").or_insert_with(|| json!("object"));
    let props = def
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(props) = props {
        props.insert(
            "apiVersion".into(),
            string_property(API_VERSION_DESCRIPTION),
        );
        props.insert("kind".into(), string_property(KIND_DESCRIPTION));
        let mut meta = reference(OBJECT_META);
        meta["description"] = json!(METADATA_DESCRIPTION);
        props.insert("metadata".into(), meta);
    }
    def.insert(GVK.into(), json!([gvk(&t.group, &t.version, &t.kind)]));
    let list = list_definition(&name, &t.group, &t.version, &t.kind);
    [(format!("{name}List"), list), (name, Value::Object(def))]
}

/// Fields the `k8s-openapi` types hold without `Option` (so their schemas require them) that
/// Kubernetes publishes as optional: `metadata` of every kind but Event, and `spec` of these.
const OPTIONAL_SPEC: &[&str] = &[
    "io.k8s.api.apps.v1.DaemonSet",
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.apps.v1.ReplicaSet",
    "io.k8s.api.apps.v1.StatefulSet",
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    "io.k8s.api.batch.v1.CronJob",
];

fn relax_required(def: &mut Map<String, Value>, name: &str) {
    let optional = |field: &str| match field {
        "metadata" => name != "io.k8s.api.core.v1.Event",
        "spec" => OPTIONAL_SPEC.contains(&name),
        _ => false,
    };
    if let Some(Value::Array(required)) = def.get_mut("required") {
        required.retain(|f| !f.as_str().is_some_and(optional));
        if required.is_empty() {
            def.remove("required");
        }
    }
}

fn string_property(description: &str) -> Value {
    json!({"description": description, "type": "string"})
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// `<Kind>List`: what a list call answers.
fn list_definition(item: &str, group: &str, version: &str, kind: &str) -> Value {
    let mut meta = reference(LIST_META);
    meta["description"] = json!(
        "Standard list metadata. More info: \
        https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
    );
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": string_property(API_VERSION_DESCRIPTION),
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": reference(item),
            },
            "kind": string_property(KIND_DESCRIPTION),
            "metadata": meta,
        },
        GVK: [gvk(group, version, &format!("{kind}List"))],
    })
}

/// Rewrites `{"allOf": [{"$ref": r}], …}` (how the generated schemas describe a reference)
/// as `{"$ref": r, …}`, everywhere in `schema`.
fn refs_as_siblings(schema: &mut Value) {
    match schema {
        Value::Object(obj) => {
            let single_ref = match obj.get("allOf") {
                Some(Value::Array(all)) if all.len() == 1 => all[0]
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.get("$ref"))
                    .cloned(),
                _ => None,
            };
            if let Some(r) = single_ref {
                obj.remove("allOf");
                obj.insert("$ref".into(), r);
            }
            obj.values_mut().for_each(refs_as_siblings);
        }
        Value::Array(items) => items.iter_mut().for_each(refs_as_siblings),
        _ => {}
    }
}

/// A custom kind's schema as OpenAPI v2 can say it, as Kubernetes publishes CRDs in v2:
/// without `nullable` (a nullable node loses its type, so that null stays valid), `anyOf`,
/// `oneOf`, `not` and `allOf`.
pub(super) fn v2_compatible(schema: &Value) -> Value {
    match schema {
        Value::Object(obj) => {
            let nullable = obj.get("nullable") == Some(&Value::Bool(true));
            let mut out = Map::new();
            for (k, v) in obj {
                let drop = matches!(k.as_str(), "nullable" | "anyOf" | "oneOf" | "not" | "allOf")
                    || (nullable && k == "type");
                if drop {
                    continue;
                }
                let keeps_schemas = matches!(
                    k.as_str(),
                    "properties" | "items" | "additionalProperties" | "patternProperties"
                );
                let v = match (keeps_schemas, k.as_str(), v) {
                    (true, "properties" | "patternProperties", Value::Object(props)) => {
                        Value::Object(
                            props
                                .iter()
                                .map(|(name, s)| (name.clone(), v2_compatible(s)))
                                .collect(),
                        )
                    }
                    (true, _, v) => v2_compatible(v),
                    (false, _, v) => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The names every `$ref` in `schema` points at.
pub(super) fn refs_of<'a>(schema: &'a Value, out: &mut Vec<&'a str>) {
    match schema {
        Value::Object(obj) => {
            if let Some(name) = obj
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(V2_PREFIX))
            {
                out.push(name);
            }
            obj.values().for_each(|v| refs_of(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_of(v, out)),
        _ => {}
    }
}
