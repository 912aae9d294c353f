//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which kubectl and client-go (1.32 and later) send for built-in kinds, read as the
//! Kubernetes JSON of the same object.
//!
//! The wire format is Kubernetes' protobuf serializer's: the magic `k8s\0`, then a
//! `runtime.Unknown` whose `typeMeta` names the kind and whose `raw` is the kind's own
//! message. The message is decoded through the descriptors `rkube-proto` compiles from
//! Kubernetes' `generated.proto` files, so every kind of the groups listed in [`PACKAGES`]
//! is read by the same code; [`json`] turns it into JSON.

mod format;
mod go_fields;
mod json;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_envelope;
#[cfg(test)]
mod tests_kubectl;
#[cfg(test)]
mod tests_special;

use std::sync::OnceLock;

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage,
    Value as Proto,
};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The media type of Kubernetes' protobuf encoding.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body begins with.
const MAGIC: &[u8] = b"k8s\0";

/// How deep raw objects may nest further protobuf envelopes.
const MAX_NESTING: u8 = 8;

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const TYPE_META: &str = "k8s.io.apimachinery.pkg.runtime.TypeMeta";
const META_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";
const OBJECT_META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.ListMeta";

/// The proto package (without the version) of each API group served in protobuf.
const PACKAGES: &[(&str, &str)] = &[
    ("", "k8s.io.api.core"),
    (
        "admissionregistration.k8s.io",
        "k8s.io.api.admissionregistration",
    ),
    (
        "apiextensions.k8s.io",
        "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions",
    ),
    ("apps", "k8s.io.api.apps"),
    ("authentication.k8s.io", "k8s.io.api.authentication"),
    ("authorization.k8s.io", "k8s.io.api.authorization"),
    ("autoscaling", "k8s.io.api.autoscaling"),
    ("batch", "k8s.io.api.batch"),
    ("certificates.k8s.io", "k8s.io.api.certificates"),
    ("coordination.k8s.io", "k8s.io.api.coordination"),
    ("discovery.k8s.io", "k8s.io.api.discovery"),
    ("meta.k8s.io", "k8s.io.apimachinery.pkg.apis.meta"),
    ("policy", "k8s.io.api.policy"),
    ("rbac.authorization.k8s.io", "k8s.io.api.rbac"),
    ("scheduling.k8s.io", "k8s.io.api.scheduling"),
];

/// Kinds of `meta.k8s.io/v1` that every group version also serves under its own name
/// (Kubernetes' `metav1.AddToGroupVersion`): client-go sends `DeleteOptions` as `apps/v1`.
const META_KINDS: &[&str] = &[
    "CreateOptions",
    "DeleteOptions",
    "GetOptions",
    "ListOptions",
    "PatchOptions",
    "UpdateOptions",
    "WatchEvent",
];

/// Reads a protobuf request body as the Kubernetes JSON object it encodes, with `apiVersion`
/// and `kind` set from its envelope.
///
/// A body without the magic, a truncated or malformed message, a kind that is not served in
/// protobuf, or a value JSON cannot hold is [`Error::BadRequest`].
pub fn decode(body: &[u8]) -> Result<Value> {
    decode_nested(body, 0)
}

fn decode_nested(body: &[u8], depth: u8) -> Result<Value> {
    let data = match body {
        [] => return Err(bad("empty data")),
        b if !b.starts_with(MAGIC) => {
            return Err(bad(
                "provided data does not appear to be a protobuf message, expected prefix \
                 [107 56 115 0]",
            ))
        }
        [_, _, _, _] => return Err(bad("empty body")),
        b => &b[MAGIC.len()..],
    };
    if depth > MAX_NESTING {
        return Err(bad(format!(
            "protobuf objects nest more than {MAX_NESTING} deep"
        )));
    }
    let pool = pool()?;
    let envelope = Envelope::read(pool, data)?;
    let what = format!("{} {}", envelope.api_version, envelope.kind);
    let desc = kind_message(pool, &envelope.api_version, &envelope.kind)?;
    let msg = DynamicMessage::decode(desc, envelope.raw).map_err(|e| {
        bad(format!(
            "the protobuf body of {what} could not be decoded: {e}"
        ))
    })?;
    let fields = json::Converter { depth }
        .object(&msg)
        .map_err(|e| bad(format!("the protobuf body of {what} is invalid: {e}")))?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), envelope.api_version.into());
    object.insert("kind".into(), envelope.kind.into());
    object.extend(fields);
    Ok(Value::Object(object))
}

fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}

/// The descriptors of `rkube-proto`, decoded once.
fn pool() -> Result<&'static DescriptorPool> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(rkube_proto::K8S_DESCRIPTORS).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| {
        Error::Internal(format!(
            "the Kubernetes protobuf descriptors are invalid: {e}"
        ))
    })
}

/// The `runtime.Unknown` around every protobuf body. Its `contentEncoding` and
/// `contentType` are ignored, as Kubernetes' decoder ignores them.
struct Envelope {
    api_version: String,
    kind: String,
    raw: prost_reflect::bytes::Bytes,
}

impl Envelope {
    fn read(pool: &DescriptorPool, data: &[u8]) -> Result<Self> {
        let desc = message_named(pool, UNKNOWN)?;
        let unknown = DynamicMessage::decode(desc, data)
            .map_err(|e| bad(format!("the protobuf body could not be decoded: {e}")))?;
        let type_meta = match unknown.get_field_by_name("typeMeta").as_deref() {
            Some(Proto::Message(m)) if m.descriptor().full_name() == TYPE_META => m.clone(),
            _ => return Err(Error::Internal(format!("{UNKNOWN} has no typeMeta"))),
        };
        let text = |msg: &DynamicMessage, field: &str| match msg.get_field_by_name(field).as_deref()
        {
            Some(Proto::String(s)) => s.clone(),
            _ => String::new(),
        };
        let raw = match unknown.get_field_by_name("raw").as_deref() {
            Some(Proto::Bytes(b)) => b.clone(),
            _ => Default::default(),
        };
        let envelope = Envelope {
            api_version: text(&type_meta, "apiVersion"),
            kind: text(&type_meta, "kind"),
            raw,
        };
        if envelope.kind.is_empty() {
            return Err(bad("Object 'Kind' is missing in the protobuf body"));
        }
        if envelope.api_version.is_empty() {
            return Err(bad("Object 'apiVersion' is missing in the protobuf body"));
        }
        Ok(envelope)
    }
}

fn message_named(pool: &DescriptorPool, name: &str) -> Result<MessageDescriptor> {
    pool.get_message_by_name(name)
        .ok_or_else(|| Error::Internal(format!("the protobuf descriptors lack {name}")))
}

/// The message of a kind: `apps/v1` `Deployment` is `k8s.io.api.apps.v1.Deployment`.
/// Only top-level kinds qualify, those with object or list metadata, and the options kinds.
fn kind_message(pool: &DescriptorPool, api_version: &str, kind: &str) -> Result<MessageDescriptor> {
    let not_registered = || {
        bad(format!(
            "no kind {kind:?} is registered for version {api_version:?}"
        ))
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let identifier = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !identifier(version) || !identifier(kind) {
        return Err(not_registered());
    }
    let package = PACKAGES
        .iter()
        .find(|(g, _)| *g == group)
        .map(|(_, p)| *p)
        .ok_or_else(not_registered)?;
    if let Some(desc) = pool.get_message_by_name(&format!("{package}.{version}.{kind}")) {
        let metadata = desc.get_field_by_name("metadata");
        let has_meta =
            metadata.is_some_and(|f| is_message(&f, OBJECT_META) || is_message(&f, LIST_META));
        if has_meta || (desc.package_name() == META_V1 && META_KINDS.contains(&kind)) {
            return Ok(desc);
        }
    }
    if META_KINDS.contains(&kind) {
        return message_named(pool, &format!("{META_V1}.{kind}"));
    }
    Err(not_registered())
}

/// Whether a field holds the message named `full_name`.
fn is_message(field: &FieldDescriptor, full_name: &str) -> bool {
    matches!(field.kind(), Kind::Message(m) if m.full_name() == full_name)
}
