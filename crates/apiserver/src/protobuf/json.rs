//! Kubernetes JSON from a decoded Kubernetes protobuf message, as Go's `encoding/json` writes
//! the same object after Go's protobuf decoding: proto field names are the JSON names (but
//! for the few in [`go_fields`]), zero scalars are written only where Go writes them, and the
//! types with their own JSON form (times, quantities, int-or-strings, raw JSON, …) take it.

use base64::Engine;
use prost_reflect::{DynamicMessage, FieldDescriptor, MapKey, ReflectMessage, Value as Proto};
use serde_json::{Map, Number, Value};

use super::{format, go_fields};

const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Duration";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
const VERBS: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const APIEXTENSIONS: &str = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.";

/// Why a field's content has no Kubernetes JSON form, and where it is.
#[derive(Debug)]
pub(super) struct Unrepresentable {
    /// Path segments, innermost first: `name`, `[0]` or `[key]`.
    path: Vec<String>,
    reason: String,
}

impl Unrepresentable {
    pub(super) fn new(reason: impl Into<String>) -> Self {
        Unrepresentable {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    fn within(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }
}

impl std::fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        if path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{path}: {}", self.reason)
        }
    }
}

type Result<T, E = Unrepresentable> = std::result::Result<T, E>;

/// Converts messages found `depth` protobuf envelopes deep (raw objects nest envelopes).
pub(super) struct Converter {
    pub(super) depth: u8,
}

impl Converter {
    /// The JSON object of a message with no JSON form of its own.
    pub(super) fn object(&self, msg: &DynamicMessage) -> Result<Map<String, Value>> {
        let desc = msg.descriptor();
        let mut out = Map::new();
        for (field, value) in msg.fields() {
            let name = go_fields::json_name(field.full_name()).unwrap_or(field.name());
            if let Some(json) = self
                .field(desc.full_name(), &field, value)
                .map_err(|e| e.within(name))?
            {
                out.insert(name.to_string(), json);
            }
        }
        Ok(out)
    }

    /// `None` when Go's JSON would leave the field out.
    fn field(
        &self,
        message: &str,
        field: &FieldDescriptor,
        value: &Proto,
    ) -> Result<Option<Value>> {
        match value {
            Proto::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.element(item).map_err(|e| e.within(format!("[{i}]")))?);
                }
                Ok(Some(Value::Array(out)))
            }
            Proto::Map(entries) => {
                let mut keyed: Vec<(String, &Proto)> =
                    entries.iter().map(|(k, v)| (map_key(k), v)).collect();
                keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                let mut out = Map::new();
                for (key, item) in keyed {
                    let json = self
                        .element(item)
                        .map_err(|e| e.within(format!("[{key}]")))?;
                    out.insert(key, json);
                }
                Ok(Some(Value::Object(out)))
            }
            Proto::Message(m) => self.message(m),
            scalar if is_zero(scalar) && !go_fields::writes_zero(message, field.name()) => Ok(None),
            scalar => scalar_json(scalar).map(Some),
        }
    }

    /// A list item or map value: kept even when zero, `null` where Go writes `null`.
    fn element(&self, value: &Proto) -> Result<Value> {
        match value {
            Proto::Message(m) => Ok(self.message(m)?.unwrap_or(Value::Null)),
            scalar => scalar_json(scalar),
        }
    }

    /// A message in its JSON form; `None` for the values Go writes as `null`.
    fn message(&self, msg: &DynamicMessage) -> Result<Option<Value>> {
        let desc = msg.descriptor();
        let name = desc.full_name();
        match name {
            TIME | MICRO_TIME => time(msg, name == MICRO_TIME),
            DURATION => Ok(Some(Value::String(format::go_duration(int(
                msg, "duration",
            ))))),
            QUANTITY => Ok(Some(Value::String(
                string(msg, "string").unwrap_or_else(|| "0".to_string()),
            ))),
            INT_OR_STRING => int_or_string(msg).map(Some),
            FIELDS_V1 | RAW_EXTENSION => self.raw(msg),
            VERBS => Ok(Some(self.list(msg, "items")?.unwrap_or_default().into())),
            _ if desc.name() == "ExtraValue" && desc.package_name().starts_with("k8s.io.api.") => {
                Ok(Some(self.list(msg, "items")?.unwrap_or_default().into()))
            }
            _ => match name.strip_prefix(APIEXTENSIONS) {
                Some("JSON") => self.raw(msg),
                Some("JSONSchemaPropsOrArray") => self.either(msg, "jSONSchemas", "schema"),
                Some("JSONSchemaPropsOrStringArray") => self.either(msg, "property", "schema"),
                Some("JSONSchemaPropsOrBool") => match self.nested(msg, "schema")? {
                    Some(schema) => Ok(Some(schema)),
                    None => Ok(Some(Value::Bool(int(msg, "allows") != 0))),
                },
                _ => self.object(msg).map(|o| Some(Value::Object(o))),
            },
        }
    }

    /// The items of a repeated field, `None` when it has none.
    fn list(&self, msg: &DynamicMessage, field: &str) -> Result<Option<Vec<Value>>> {
        match msg.get_field_by_name(field).as_deref() {
            Some(Proto::List(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, v)| self.element(v).map_err(|e| e.within(format!("[{i}]"))))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            _ => Ok(None),
        }
    }

    /// A message field in its JSON form, `None` when unset. The field is not a JSON path
    /// segment: the unions that hold it are written as the field's value itself.
    fn nested(&self, msg: &DynamicMessage, field: &str) -> Result<Option<Value>> {
        match msg.get_field_by_name(field).as_deref() {
            Some(Proto::Message(m)) if msg.has_field_by_name(field) => self.message(m),
            _ => Ok(None),
        }
    }

    /// apiextensions' "X or Y" unions: the list `many` when it has items, else `one`.
    fn either(&self, msg: &DynamicMessage, many: &str, one: &str) -> Result<Option<Value>> {
        match self.list(msg, many)? {
            Some(items) => Ok(Some(Value::Array(items))),
            None => self.nested(msg, one),
        }
    }

    /// The JSON held in the bytes field 1 (`raw`, or `Raw` in `FieldsV1`); a nested
    /// protobuf envelope is read as well.
    fn raw(&self, msg: &DynamicMessage) -> Result<Option<Value>> {
        let Some(Proto::Bytes(raw)) = msg.get_field_by_number(1).as_deref().cloned() else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.starts_with(super::MAGIC) {
            return super::decode_nested(&raw, self.depth + 1)
                .map(Some)
                .map_err(|e| Unrepresentable::new(e.to_string()).within("raw"));
        }
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| Unrepresentable::new(format!("is not JSON: {e}")).within("raw"))
    }
}

/// `metav1.Time` (whole seconds, as Go's protobuf decoding keeps it) or `MicroTime`; an
/// empty message is Go's zero time, which its JSON writes as `null`.
fn time(msg: &DynamicMessage, micros: bool) -> Result<Option<Value>> {
    if !msg.has_field_by_name("seconds") && !msg.has_field_by_name("nanos") {
        return Ok(None);
    }
    let seconds = int(msg, "seconds");
    let nanos = if micros { int(msg, "nanos") } else { 0 };
    let nanos = i32::try_from(nanos).unwrap_or_default();
    format::rfc3339(seconds, nanos, micros)
        .map(|t| Some(Value::String(t)))
        .ok_or_else(|| Unrepresentable::new(format!("time {seconds}s is out of range")))
}

fn int_or_string(msg: &DynamicMessage) -> Result<Value> {
    match int(msg, "type") {
        0 => Ok(Value::from(int(msg, "intVal"))),
        1 => Ok(Value::String(string(msg, "strVal").unwrap_or_default())),
        other => Err(Unrepresentable::new(format!(
            "IntOrString type {other} is neither 0 (int) nor 1 (string)"
        ))),
    }
}

/// An integer or bool field's value, 0 when unset.
fn int(msg: &DynamicMessage, field: &str) -> i64 {
    match msg.get_field_by_name(field).as_deref() {
        Some(Proto::I32(v)) => i64::from(*v),
        Some(Proto::I64(v)) => *v,
        Some(Proto::Bool(v)) => i64::from(*v),
        _ => 0,
    }
}

fn string(msg: &DynamicMessage, field: &str) -> Option<String> {
    match msg.get_field_by_name(field).as_deref() {
        Some(Proto::String(s)) if msg.has_field_by_name(field) => Some(s.clone()),
        _ => None,
    }
}

fn is_zero(value: &Proto) -> bool {
    match value {
        Proto::Bool(v) => !v,
        Proto::I32(v) | Proto::EnumNumber(v) => *v == 0,
        Proto::I64(v) => *v == 0,
        Proto::U32(v) => *v == 0,
        Proto::U64(v) => *v == 0,
        Proto::F32(v) => *v == 0.0,
        Proto::F64(v) => *v == 0.0,
        Proto::String(v) => v.is_empty(),
        Proto::Bytes(v) => v.is_empty(),
        Proto::Message(_) | Proto::List(_) | Proto::Map(_) => false,
    }
}

fn scalar_json(value: &Proto) -> Result<Value> {
    Ok(match value {
        Proto::Bool(v) => Value::Bool(*v),
        Proto::I32(v) | Proto::EnumNumber(v) => Value::from(*v),
        Proto::I64(v) => Value::from(*v),
        Proto::U32(v) => Value::from(*v),
        Proto::U64(v) => Value::from(*v),
        Proto::F32(v) => float(f64::from(*v))?,
        Proto::F64(v) => float(*v)?,
        Proto::String(v) => Value::String(v.clone()),
        Proto::Bytes(v) => Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
        Proto::Message(_) | Proto::List(_) | Proto::Map(_) => {
            return Err(Unrepresentable::new(
                "a nested list or map has no JSON form",
            ))
        }
    })
}

fn float(v: f64) -> Result<Value> {
    Number::from_f64(v)
        .map(Value::Number)
        .ok_or_else(|| Unrepresentable::new(format!("{v} is not a JSON number")))
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::String(s) => s.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(v) => v.to_string(),
        MapKey::I64(v) => v.to_string(),
        MapKey::U32(v) => v.to_string(),
        MapKey::U64(v) => v.to_string(),
    }
}
