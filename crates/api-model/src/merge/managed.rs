//! `metadata.managedFields`: reading and writing its entries, the ownership an ordinary write
//! (create, update, patch) takes ([`record_update`]), and the conflict messages of apply.

use serde_json::{json, Map, Value};

use super::fields::{FieldSet, PathElement};
use super::walk::{compare, field_set, Diff};
use super::Shape;
use crate::schema::Node;

pub(crate) const APPLY: &str = "Apply";
pub(crate) const UPDATE: &str = "Update";

/// The manager that owns what an object held before its first apply, when it was written
/// without field tracking.
pub(crate) const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    /// Empty for the main resource.
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// Whether this entry is the one of `manager` doing `operation`: apply entries are one per
    /// manager and subresource, update entries also one per API version.
    pub(crate) fn is(&self, manager: &str, operation: &str, api_version: &str, sub: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == sub
            && (operation == APPLY || self.api_version == api_version)
    }

    /// Reads an entry; `None` when it is not a valid one (Kubernetes drops those).
    pub fn from_json(v: &Value) -> Option<ManagedEntry> {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str());
        let operation = s("operation")?;
        if operation != APPLY && operation != UPDATE {
            return None;
        }
        if s("fieldsType")? != "FieldsV1" || s("apiVersion").unwrap_or("").is_empty() {
            return None;
        }
        let fields = match v.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(f) => FieldSet::from_json(f).ok()?,
        };
        Some(ManagedEntry {
            manager: s("manager").unwrap_or("").to_string(),
            operation: operation.to_string(),
            api_version: s("apiVersion")?.to_string(),
            time: s("time").map(str::to_string),
            subresource: s("subresource").unwrap_or("").to_string(),
            fields,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_json());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    /// How Kubernetes names this manager in conflict messages.
    fn describe(&self) -> String {
        describe_manager(
            &self.manager,
            &self.operation,
            &self.api_version,
            &self.subresource,
            self.time.as_deref(),
        )
    }
}

fn describe_manager(
    manager: &str,
    op: &str,
    api_version: &str,
    sub: &str,
    time: Option<&str>,
) -> String {
    let mut s = format!("{manager:?}");
    if !sub.is_empty() {
        s.push_str(&format!(" with subresource {sub:?}"));
    }
    if op == UPDATE {
        s.push_str(&format!(" using {api_version}"));
        if let Some(t) = time {
            s.push_str(&format!(" at {t}"));
        }
    }
    s
}

/// The entries of an object's `metadata.managedFields`, without the invalid ones.
pub(crate) fn decode(obj: &Value) -> Vec<ManagedEntry> {
    let Some(Value::Array(entries)) = obj.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(ManagedEntry::from_json)
        .map(|mut e| {
            strip(&mut e.fields);
            e
        })
        .collect()
}

/// Writes `entries` (without the empty ones) as `metadata.managedFields` of `obj`, in
/// Kubernetes' order: apply entries first, then by time, manager, API version, subresource.
pub(crate) fn encode(obj: &mut Value, mut entries: Vec<ManagedEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Value::Object(root) = obj else { return };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else { return };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        let list = entries.iter().map(ManagedEntry::to_json).collect();
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Removes from `set` the fields no manager owns: the object's identity and what the server
/// alone sets (name, uid, resourceVersion, managedFields, …).
pub(crate) fn strip(set: &mut FieldSet) {
    const TOP: [&str; 2] = ["f:apiVersion", "f:kind"];
    const META: [&str; 9] = [
        "f:name",
        "f:namespace",
        "f:creationTimestamp",
        "f:selfLink",
        "f:uid",
        "f:clusterName",
        "f:generation",
        "f:managedFields",
        "f:resourceVersion",
    ];
    set.retain(|pe| !TOP.contains(&pe.as_str()));
    let meta = PathElement::field("metadata");
    if let Some(m) = set.child_mut(&meta) {
        m.retain(|pe| !META.contains(&pe.as_str()));
    }
    set.demote(&meta);
}

/// Records the ownership a create, update or patch by `manager` takes: the fields the write
/// changed from `old` (`None` for a create) to `new` become the manager's (an `Update`
/// entry stamped `now`) and leave every other manager; fields it removed leave everyone.
/// A write that changes nothing leaves `metadata.managedFields` as it was. Managed fields the
/// client sent in `new` replace the stored ones, as in Kubernetes; objects that exist
/// without managed fields stay untracked until their first apply.
#[allow(clippy::too_many_arguments)]
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    schema: Option<Node>,
    api_version: &str,
    now: &str,
) {
    let sent =
        matches!(new.pointer("/metadata/managedFields"), Some(Value::Array(a)) if !a.is_empty());
    let mut entries = match (sent, old) {
        (true, _) => decode(new),
        (false, Some(o)) => decode(o),
        (false, None) => Vec::new(),
    };
    if entries.is_empty() && old.is_some() && !sent {
        return;
    }
    let empty = Value::Object(Map::new());
    let mut diff = Diff::default();
    compare(old.unwrap_or(&empty), new, Shape(schema), &mut diff);
    strip(&mut diff.changed);
    strip(&mut diff.removed);
    if diff.changed.is_empty() && diff.removed.is_empty() {
        if sent {
            encode(new, entries);
        } else if let Some(kept) = old.and_then(|o| o.pointer("/metadata/managedFields")) {
            let kept = kept.clone();
            if let Some(Value::Object(meta)) = new.get_mut("metadata") {
                meta.insert("managedFields".into(), kept);
            }
        }
        return;
    }
    take_ownership(&mut entries, &diff, manager, subresource, api_version, now);
    encode(new, entries);
}

/// The entries after `manager`'s update that made `diff`.
pub(crate) fn take_ownership(
    entries: &mut Vec<ManagedEntry>,
    diff: &Diff,
    manager: &str,
    sub: &str,
    api_version: &str,
    now: &str,
) {
    let mut mine = None;
    for (i, e) in entries.iter_mut().enumerate() {
        e.fields.subtract(&diff.removed);
        if e.is(manager, UPDATE, api_version, sub) {
            mine = Some(i);
        } else {
            e.fields.subtract(&diff.changed);
        }
    }
    if diff.changed.is_empty() {
        return;
    }
    let i = mine.unwrap_or_else(|| {
        entries.push(ManagedEntry {
            manager: manager.to_string(),
            operation: UPDATE.to_string(),
            api_version: api_version.to_string(),
            time: None,
            subresource: sub.to_string(),
            fields: FieldSet::new(),
        });
        entries.len() - 1
    });
    let e = &mut entries[i];
    e.fields.union_with(&diff.changed);
    e.time = Some(now.to_string());
}

/// The entry `before-first-apply` that owns everything an untracked object holds.
pub(crate) fn before_first_apply(
    live: &Value,
    shape: Shape,
    api_version: &str,
    now: &str,
) -> ManagedEntry {
    let mut fields = field_set(live, shape);
    strip(&mut fields);
    ManagedEntry {
        manager: BEFORE_FIRST_APPLY.to_string(),
        operation: UPDATE.to_string(),
        api_version: api_version.to_string(),
        time: Some(now.to_string()),
        subresource: String::new(),
        fields,
    }
}

/// A field an apply would change that another manager owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// The field, as Kubernetes prints it: `.spec.replicas`.
    pub field: String,
    /// How Kubernetes names the manager: `"kubectl"`, or for an update
    /// `"kube-controller-manager" using apps/v1 at 2024-05-01T10:00:00Z`.
    pub described: String,
}

/// The conflicts of each entry's fields with `changed`, sorted by manager and field.
pub(crate) fn conflicts_with(entry: &ManagedEntry, changed: &FieldSet) -> Vec<Conflict> {
    let described = entry.describe();
    entry
        .fields
        .intersection(changed)
        .paths()
        .into_iter()
        .map(|field| Conflict {
            manager: entry.manager.clone(),
            field,
            described: described.clone(),
        })
        .collect()
}

/// The message of a `FieldManagerConflict` cause: `conflict with "kubectl"`.
pub fn conflict_cause_message(c: &Conflict) -> String {
    format!("conflict with {}", c.described)
}

/// The message of the 409 an apply with conflicts gets, as Kubernetes writes it:
/// `Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas`.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.described, c.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.described.as_str()).collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.described == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}
