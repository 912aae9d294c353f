//! Server-side apply: merging an applied configuration into the live object by the schema's
//! list types (list-maps by their keys, sets by value, atomic lists and maps replaced),
//! removing what the applier applied before and no longer applies (unless another manager
//! owns it), refusing to change fields other managers own unless forced, and recording the
//! applier's ownership in `metadata.managedFields`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::fields::{FieldSet, PathElement};
use super::managed::{
    before_first_apply, conflict_message, conflicts_with, decode, encode, strip, Conflict,
    ManagedEntry, APPLY,
};
use super::walk::{compare, field_set, item_element, item_elements, Diff};
use super::{ListType, Shape};
use crate::schema::Node;

/// Why an apply was refused. Neither is retryable as is: conflicts need `force` or a changed
/// configuration, an invalid configuration needs fixing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// Fields the configuration changes that other managers own (a 409 with
    /// `FieldManagerConflict` causes).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration cannot be applied (a 400/422); `path` is empty when the error is
    /// about the whole configuration.
    #[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    Invalid { path: String, message: String },
}

/// Applies the configuration `applied` for `manager` to `live` (`None` when the object does
/// not exist yet) and returns the object to store, with `metadata.managedFields` updated. A
/// `None` schema (custom kinds without one) treats every list as atomic. `now` stamps the
/// applier's entry (RFC 3339).
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schema: Option<Node>,
    api_version: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    let to = Target {
        manager,
        subresource: "",
        api_version,
        now,
    };
    apply_to(live, applied, &to, force, schema)
}

/// Who applies, to what, and when.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub manager: &'a str,
    /// `status` for an apply to the status subresource; empty for the object itself.
    pub subresource: &'a str,
    pub api_version: &'a str,
    /// The time that stamps the applier's entry (RFC 3339).
    pub now: &'a str,
}

/// [`apply`] to a subresource: the applier's entry records `to.subresource`. The caller
/// leaves in `applied` only what the subresource may change.
pub fn apply_to(
    live: Option<&Value>,
    applied: &Value,
    to: &Target,
    force: bool,
    schema: Option<Node>,
) -> Result<Value, ApplyError> {
    let Target {
        manager,
        subresource: sub,
        api_version,
        now,
    } = *to;
    let shape = Shape(schema);
    validate(applied, shape)?;
    let empty = Value::Object(Map::new());
    let live_v = live.unwrap_or(&empty);
    let mut entries = decode(live_v);
    if entries.is_empty() && live.is_some() {
        entries.push(before_first_apply(live_v, shape, api_version, now));
    }
    let applied_set = field_set(applied, shape);
    let mut owned = applied_set.clone();
    strip(&mut owned);

    let mut merged = live_v.clone();
    merge_into(&mut merged, applied, shape);
    let mine = entries
        .iter()
        .position(|e| e.is(manager, APPLY, api_version, sub));
    if let Some(last) = mine.map(|i| &entries[i].fields).filter(|f| !f.is_empty()) {
        let mut keep = applied_set;
        for (i, e) in entries.iter().enumerate() {
            if Some(i) != mine {
                keep.union_with(&e.fields);
            }
        }
        if let Value::Object(root) = &mut merged {
            prune_object(root, last, &keep, shape, true);
        }
    }

    let mut diff = Diff::default();
    compare(live_v, &merged, shape, &mut diff);
    strip(&mut diff.changed);
    strip(&mut diff.removed);
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) != mine {
            conflicts.extend(conflicts_with(e, &diff.changed));
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| (&a.described, &a.field).cmp(&(&b.described, &b.field)));
        return Err(ApplyError::Conflicts(conflicts));
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            e.fields.subtract(&diff.changed);
            e.fields.subtract(&diff.removed);
        }
    }
    record_applier(&mut entries, mine, owned, &diff, to);
    encode(&mut merged, entries);
    Ok(merged)
}

/// The applier's entry now owns exactly what it applied; its time moves when the apply
/// changed the object or what it owns.
fn record_applier(
    entries: &mut Vec<ManagedEntry>,
    mine: Option<usize>,
    owned: FieldSet,
    diff: &Diff,
    to: &Target,
) {
    let (api_version, now) = (to.api_version, to.now);
    let changed = !diff.changed.is_empty() || !diff.removed.is_empty();
    match mine {
        Some(i) => {
            let e = &mut entries[i];
            if changed || e.fields != owned || e.api_version != api_version {
                e.time = Some(now.to_string());
            }
            e.fields = owned;
            e.api_version = api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: to.manager.to_string(),
            operation: APPLY.to_string(),
            api_version: api_version.to_string(),
            time: Some(now.to_string()),
            subresource: to.subresource.to_string(),
            fields: owned,
        }),
    }
}

/// Checks what apply needs of a configuration: no managed fields, and list-map items that
/// carry their keys once each.
fn validate(applied: &Value, shape: Shape) -> Result<(), ApplyError> {
    if !applied.is_object() {
        return Err(invalid(
            "",
            "the applied configuration must be a JSON object",
        ));
    }
    match applied.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => {}
        Some(_) => return Err(invalid("metadata.managedFields", "must be nil")),
    }
    validate_value(applied, shape, &mut String::new())
}

fn invalid(path: &str, message: impl Into<String>) -> ApplyError {
    ApplyError::Invalid {
        path: path.trim_start_matches('.').to_string(),
        message: message.into(),
    }
}

fn validate_value(v: &Value, shape: Shape, path: &mut String) -> Result<(), ApplyError> {
    match v {
        Value::Object(m) if !shape.atomic_map() => {
            for (k, cv) in m {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                validate_value(cv, shape.child(k), path)?;
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            let lt = shape.list_type();
            if lt == ListType::Atomic {
                return Ok(());
            }
            let item_shape = shape.items();
            let mut seen = HashMap::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Some(pe) = item_element(item, lt, item_shape) else {
                    return Err(invalid(path, missing_key(i, item, lt, item_shape)));
                };
                if seen.insert(pe.clone(), i).is_some() {
                    return Err(invalid(path, format!("duplicate entries for key {pe}")));
                }
                if lt != ListType::Set {
                    let len = path.len();
                    path.push_str(&pe.to_string());
                    validate_value(item, item_shape, path)?;
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Why item `i` of a list-map has no identity, in the words of Kubernetes.
fn missing_key(i: usize, item: &Value, lt: ListType, item_shape: Shape) -> String {
    let ListType::Map(keys) = lt else {
        return format!("element {i}: cannot be identified");
    };
    if !item.is_object() {
        return format!("element {i}: associative list with keys may not have non-map elements");
    }
    let missing = keys
        .iter()
        .filter_map(|k| k.as_str())
        .find(|k| item.get(*k).is_none() && item_shape.default_of(k).is_none())
        .unwrap_or_default();
    format!(
        "element {i}: associative list with keys has an element that omits key field {missing:?} \
         (and doesn't have default value)"
    )
}

/// `v` without its nulls: what a configuration value sets where nothing was.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, c)| !c.is_null())
                .map(|(k, c)| (k.clone(), without_nulls(c)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Merges the configuration value `rhs` into `target`: the configuration wins wherever it
/// sets something; null removes.
fn merge_into(target: &mut Value, rhs: &Value, shape: Shape) {
    match (&mut *target, rhs) {
        (Value::Object(t), Value::Object(r)) if !shape.atomic_map() => {
            for (k, rv) in r {
                if rv.is_null() {
                    t.remove(k);
                    continue;
                }
                match t.get_mut(k) {
                    Some(tv) => merge_into(tv, rv, shape.child(k)),
                    None => {
                        t.insert(k.clone(), without_nulls(rv));
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(r)) if !(t.is_empty() && r.is_empty()) => {
            match (item_elements(t, shape), item_elements(r, shape)) {
                (Some(lpe), Some(rpe)) => {
                    let lhs = std::mem::take(t);
                    *t = merge_items(lhs, &lpe, r, &rpe, shape);
                }
                _ => *target = without_nulls(rhs),
            }
        }
        _ => *target = without_nulls(rhs),
    }
}

/// Merges list items by identity. Items the configuration names come in its order; live
/// items it does not name stay where they were relative to them.
fn merge_items(
    lhs: Vec<Value>,
    lpe: &[PathElement],
    rhs: &[Value],
    rpe: &[PathElement],
    shape: Shape,
) -> Vec<Value> {
    let item_shape = shape.items();
    let in_rhs: HashMap<&PathElement, usize> =
        rpe.iter().enumerate().map(|(i, p)| (p, i)).collect();
    let mut first_lhs: HashMap<&PathElement, usize> = HashMap::with_capacity(lpe.len());
    for (i, p) in lpe.iter().enumerate() {
        first_lhs.entry(p).or_insert(i);
    }
    let mut lhs: Vec<Option<Value>> = lhs.into_iter().map(Some).collect();
    let mut shared = rpe.iter().filter(|p| first_lhs.contains_key(p));
    let mut next_shared = shared.next();
    let mut done = vec![false; rpe.len()];
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let take = |pe: &PathElement, lhs: &mut Vec<Option<Value>>, r: &Value| -> Value {
        match first_lhs.get(pe).and_then(|&i| lhs[i].take()) {
            Some(mut l) => {
                merge_into(&mut l, r, item_shape);
                l
            }
            None => without_nulls(r),
        }
    };
    let (mut li, mut ri) = (0, 0);
    while li < lpe.len() || ri < rpe.len() {
        if li < lpe.len() && ri < rpe.len() {
            if lpe[li] == rpe[ri] {
                out.push(take(&rpe[ri], &mut lhs, &rhs[ri]));
                done[ri] = true;
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_rhs.contains_key(&lpe[li]) && next_shared.is_some_and(|n| *n != lpe[li]) {
                li += 1;
                continue;
            }
        }
        if li < lpe.len() {
            match in_rhs.get(&lpe[li]) {
                None => {
                    out.extend(lhs[li].take());
                    li += 1;
                    continue;
                }
                Some(&r) if done[r] => li += 1,
                Some(_) => {}
            }
        }
        if ri < rpe.len() {
            out.push(take(&rpe[ri], &mut lhs, &rhs[ri]));
            done[ri] = true;
            if next_shared == Some(&rpe[ri]) {
                next_shared = shared.next();
            }
            ri += 1;
        }
    }
    out
}

/// Removes from an object what the applier owned (`last`) and no one owns now (`keep`): a
/// struct field goes with everything under it unless someone owns something there.
fn prune_object(
    t: &mut Map<String, Value>,
    last: &FieldSet,
    keep: &FieldSet,
    shape: Shape,
    root: bool,
) {
    for (pe, member, last_child) in last.entries() {
        let Some(name) = pe.as_str().strip_prefix("f:") else {
            continue;
        };
        if root && name == "metadata" {
            if let Some(v) = t.get_mut(name) {
                prune_value(v, last_child, keep.child(pe), shape.child(name));
            }
            continue;
        }
        let (child_shape, named) = shape.field(name);
        let in_last = member || named;
        let in_keep = keep.has_member(pe) || (named && keep.touches(pe));
        if in_last && !in_keep {
            t.remove(name);
        } else if !last_child.is_empty() {
            let Some(v) = t.get_mut(name) else { continue };
            if prune_value(v, last_child, keep.child(pe), child_shape) {
                t.remove(name);
            }
        }
    }
}

/// Prunes under one value; true when that emptied a map or list that held something.
fn prune_value(v: &mut Value, last: &FieldSet, keep: Option<&FieldSet>, shape: Shape) -> bool {
    let none = FieldSet::new();
    let keep = keep.unwrap_or(&none);
    match v {
        Value::Object(m) if !shape.atomic_map() && !m.is_empty() => {
            prune_object(m, last, keep, shape, false);
            m.is_empty()
        }
        Value::Array(items) if !items.is_empty() => {
            let Some(pes) = item_elements(items, shape) else {
                return false;
            };
            let item_shape = shape.items();
            let mut i = 0;
            items.retain_mut(|item| {
                let pe = &pes[i];
                i += 1;
                if last.has_member(pe) && !keep.has_member(pe) {
                    return false;
                }
                match last.child(pe) {
                    Some(lc) if !lc.is_empty() => {
                        !prune_value(item, lc, keep.child(pe), item_shape)
                    }
                    _ => true,
                }
            });
            items.is_empty()
        }
        _ => false,
    }
}
