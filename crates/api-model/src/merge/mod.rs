//! The merge semantics of the Kubernetes REST API, as pure functions over JSON objects and
//! their schemas: strategic merge patch ([`strategic_merge`]), the FieldsV1 field sets of
//! `metadata.managedFields` ([`FieldSet`]), server-side apply ([`apply`]) and the ownership
//! an ordinary write takes ([`record_update`]). Nothing here does I/O or knows about storage;
//! the apiserver calls these on every write.

mod apply;
mod fields;
mod managed;
mod strategic;
mod walk;

#[cfg(test)]
mod tests;

pub use apply::{apply, apply_to, ApplyError, Target};
pub use fields::{FieldSet, FieldsError, PathElement};
pub use managed::{
    conflict_cause_message, conflict_message, record_update, Conflict, ManagedEntry,
};
pub use strategic::{strategic_merge, MergeError};

use crate::schema::Node;

/// How a list's items are identified when merging and owning them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ListType<'a> {
    /// Replaced and owned as one value (the default for lists without markers).
    Atomic,
    /// Scalars identified by their value.
    Set,
    /// Objects identified by the values of these keys.
    Map(&'a [serde_json::Value]),
}

/// The schema of one place in an object, or none where the schema says nothing (custom
/// kinds without a schema, unknown fields): there maps merge key by key and lists are atomic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape<'a>(pub(crate) Option<Node<'a>>);

impl<'a> Shape<'a> {
    /// The schema of property or map entry `name` of an object.
    pub(crate) fn child(self, name: &str) -> Shape<'a> {
        self.field(name).0
    }

    /// The schema of property or map entry `name`, and whether it is a declared property (a
    /// struct field, not a map entry).
    pub(crate) fn field(self, name: &str) -> (Shape<'a>, bool) {
        let Some(n) = self.0 else {
            return (self, false);
        };
        let r = n.resolved();
        if let Some(f) = r.field(name) {
            return (Shape(Some(f)), true);
        }
        (Shape(r.values()), false)
    }

    /// The schema of a list's items.
    pub(crate) fn items(self) -> Shape<'a> {
        Shape(self.0.and_then(|n| n.items()))
    }

    pub(crate) fn list_type(self) -> ListType<'a> {
        let Some(n) = self.0 else {
            return ListType::Atomic;
        };
        match n.ext("x-kubernetes-list-type").and_then(|t| t.as_str()) {
            Some("set") => ListType::Set,
            Some("map") => match n.ext("x-kubernetes-list-map-keys") {
                Some(serde_json::Value::Array(keys)) if !keys.is_empty() => ListType::Map(keys),
                _ => ListType::Atomic,
            },
            _ => ListType::Atomic,
        }
    }

    /// Whether an object here is set and owned as one value.
    pub(crate) fn atomic_map(self) -> bool {
        self.0
            .and_then(|n| n.ext("x-kubernetes-map-type"))
            .and_then(|t| t.as_str())
            == Some("atomic")
    }

    /// `x-kubernetes-patch-strategy`, split on commas.
    pub(crate) fn has_strategy(self, strategy: &str) -> bool {
        self.0
            .and_then(|n| n.ext("x-kubernetes-patch-strategy"))
            .and_then(|s| s.as_str())
            .is_some_and(|s| s.split(',').any(|p| p == strategy))
    }

    pub(crate) fn merge_key(self) -> Option<&'a str> {
        self.0?
            .ext("x-kubernetes-patch-merge-key")
            .and_then(|k| k.as_str())
    }

    /// The declared default of property `name` of this object.
    pub(crate) fn default_of(self, name: &str) -> Option<&'a serde_json::Value> {
        self.0?.resolved().field(name)?.ext("default")
    }
}
