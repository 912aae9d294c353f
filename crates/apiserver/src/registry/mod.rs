//! API registration: the kinds this server serves, built-in and from
//! CustomResourceDefinitions, and how to find them by apiVersion/kind or by resource name.

mod builtin;
pub mod crd;
mod schema;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::error::{Error, FieldError, Result};

pub use builtin::builtin_types;

/// How objects of a kind are checked and normalised.
pub enum Schema {
    /// A built-in kind: decoded into its `k8s-openapi` type (type errors name the field),
    /// then encoded again, which drops fields the type does not know, as Kubernetes prunes.
    Builtin(fn(Value) -> Result<Value, FieldError>),
    /// A custom kind: checked against the CRD's openAPIV3Schema, when it has one.
    Custom(Option<Value>),
}

/// One served kind.
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural resource name, as in URLs and storage keys: `pods`.
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether `status` is a subresource: updates of the object keep the old status, and
    /// status updates keep everything else.
    pub has_status: bool,
    /// Field selector keys beyond `metadata.name` and `metadata.namespace`.
    pub fields: &'static [&'static str],
    pub schema: Schema,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, or `deployments.apps`: how Kubernetes names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage prefix of this kind, or of one namespace of it.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        match namespace {
            Some(ns) if self.namespaced && !ns.is_empty() => {
                format!("/registry/{group}/{}/{ns}/", self.plural)
            }
            _ => format!("/registry/{group}/{}/", self.plural),
        }
    }

    pub fn key(&self, namespace: &str, name: &str) -> String {
        format!("{}{name}", self.prefix(Some(namespace)))
    }

    /// Decodes and normalises an object of this kind; type errors name the field.
    pub fn check_schema(&self, obj: Value) -> Result<Value, FieldError> {
        match &self.schema {
            Schema::Builtin(f) => f(obj),
            Schema::Custom(Some(s)) => {
                schema::check(s, &obj, "")?;
                Ok(obj)
            }
            Schema::Custom(None) => Ok(obj),
        }
    }

    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name" || field == "metadata.namespace" || self.fields.contains(&field)
    }
}

/// Every kind served, looked up by `(apiVersion, kind)` or by resource name.
#[derive(Default)]
pub struct Registry {
    by_kind: RwLock<HashMap<(String, String), Arc<ResourceType>>>,
    /// Bumped by every `add` and `remove`, so that what is derived from the kinds served
    /// (the OpenAPI documents) knows when to rebuild.
    generation: AtomicU64,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let r = Registry::default();
        for t in builtin_types() {
            r.add(t);
        }
        r
    }

    pub fn add(&self, t: ResourceType) {
        self.by_kind
            .write()
            .insert((t.api_version(), t.kind.clone()), Arc::new(t));
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn remove(&self, api_version: &str, kind: &str) {
        self.by_kind
            .write()
            .remove(&(api_version.to_string(), kind.to_string()));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Changes whenever a kind is added or removed; read it before `all` to know what an
    /// answer derived from `all` is current for.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, api_version: &str, kind: &str) -> Result<Arc<ResourceType>> {
        self.by_kind
            .read()
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
            .ok_or_else(|| Error::UnknownKind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
    }

    /// The kind stored under `group` and `plural`, whichever version serves it.
    pub fn by_resource(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.by_kind
            .read()
            .values()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        let mut v: Vec<_> = self.by_kind.read().values().cloned().collect();
        v.sort_by(|a, b| (&a.group, &a.plural).cmp(&(&b.group, &b.plural)));
        v
    }
}
