//! Walking objects with their schemas to find fields: the set of fields an object sets, and
//! what changed between two versions of an object. List-map items are identified by their
//! keys, set items by value; atomic lists and maps are one field each.

use serde_json::Value;

use super::fields::{FieldSet, PathElement};
use super::{ListType, Shape};

/// The element of a list item: by its keys in a list-map (missing keys take their declared
/// defaults), by its value in a set. `None` when a key is missing with no default.
pub(crate) fn item_element(item: &Value, lt: ListType, item_shape: Shape) -> Option<PathElement> {
    match lt {
        ListType::Atomic => None,
        ListType::Set => Some(PathElement::value(item)),
        ListType::Map(keys) => {
            let mut pairs = Vec::with_capacity(keys.len());
            for k in keys {
                let k = k.as_str()?;
                let v = item.get(k).or_else(|| item_shape.default_of(k))?;
                pairs.push((k, v));
            }
            Some(PathElement::key(pairs))
        }
    }
}

/// The elements of every item of a granular list, or `None` when the list must be treated as
/// one value (it is atomic, or an item lacks its keys).
pub(crate) fn item_elements(items: &[Value], shape: Shape) -> Option<Vec<PathElement>> {
    elements(items, shape.list_type(), shape.items())
}

fn elements(items: &[Value], lt: ListType, item_shape: Shape) -> Option<Vec<PathElement>> {
    if lt == ListType::Atomic {
        return None;
    }
    items
        .iter()
        .map(|i| item_element(i, lt, item_shape))
        .collect()
}

/// Adds to `out` (the set at the position of `v`) every field `v` sets; returns whether `v`
/// itself is one field (a scalar, null, or an atomic list or map).
pub(crate) fn collect(v: &Value, shape: Shape, out: &mut FieldSet) -> bool {
    match v {
        Value::Object(m) => {
            if shape.atomic_map() {
                return true;
            }
            for (k, cv) in m {
                let (cs, named) = shape.field(k);
                let mut child = FieldSet::new();
                let leaf = collect(cv, cs, &mut child);
                let member = leaf || is_empty_object(cv) || !named;
                if member || !child.is_empty() {
                    out.insert_child(PathElement::field(k), member, child);
                }
            }
            false
        }
        Value::Array(items) => {
            let lt = shape.list_type();
            if items.is_empty() {
                return lt == ListType::Atomic;
            }
            let item_shape = shape.items();
            let Some(pes) = elements(items, lt, item_shape) else {
                return true;
            };
            let set_items = lt == ListType::Set;
            for (item, pe) in items.iter().zip(pes) {
                let mut child = FieldSet::new();
                if !set_items {
                    collect(item, item_shape, &mut child);
                }
                out.insert_child(pe, true, child);
            }
            false
        }
        _ => true,
    }
}

/// Adds to `out` every path under `v`, each as a member: what appears or disappears with a
/// value that was added or removed whole.
fn collect_all(v: &Value, shape: Shape, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !shape.atomic_map() => {
            for (k, cv) in m {
                let mut child = FieldSet::new();
                collect_all(cv, shape.child(k), &mut child);
                out.insert_child(PathElement::field(k), true, child);
            }
        }
        Value::Array(items) => {
            let Some(pes) = item_elements(items, shape) else {
                return;
            };
            let (item_shape, set_items) = (shape.items(), shape.list_type() == ListType::Set);
            for (item, pe) in items.iter().zip(pes) {
                let mut child = FieldSet::new();
                if !set_items {
                    collect_all(item, item_shape, &mut child);
                }
                out.insert_child(pe, true, child);
            }
        }
        _ => {}
    }
}

/// The fields an object sets, with its schema.
pub(crate) fn field_set(v: &Value, shape: Shape) -> FieldSet {
    let mut out = FieldSet::new();
    collect(v, shape, &mut out);
    out
}

fn is_empty_object(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty())
}

/// What changed from one version of an object to the next.
#[derive(Default, Debug)]
pub(crate) struct Diff {
    /// Fields set in the new version that were unset or different in the old one.
    pub(crate) changed: FieldSet,
    /// Fields of the old version the new one no longer has (with everything under them).
    /// Both sets hold every path of a value added or removed whole, as members.
    pub(crate) removed: FieldSet,
}

/// Compares `old` and `new` at one position; fills `diff` (rooted at that position) with what
/// changed under it and returns whether the value itself changed as one field.
pub(crate) fn compare(old: &Value, new: &Value, shape: Shape, diff: &mut Diff) -> bool {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) if !shape.atomic_map() => {
            for (k, ov) in o {
                let cs = shape.child(k);
                match n.get(k) {
                    Some(nv) if ov == nv => {}
                    Some(nv) => descend(ov, nv, cs, || PathElement::field(k), diff),
                    None => removed(ov, cs, PathElement::field(k), diff),
                }
            }
            for (k, nv) in n {
                if !o.contains_key(k) {
                    let mut child = FieldSet::new();
                    collect_all(nv, shape.child(k), &mut child);
                    diff.changed
                        .insert_child(PathElement::field(k), true, child);
                }
            }
            false
        }
        (Value::Array(o), Value::Array(n)) if !(o.is_empty() && n.is_empty()) => {
            let (lt, item_shape) = (shape.list_type(), shape.items());
            let (Some(ope), Some(npe)) = (elements(o, lt, item_shape), elements(n, lt, item_shape))
            else {
                return o != n;
            };
            let set_items = lt == ListType::Set;
            for (ov, pe) in o.iter().zip(&ope) {
                match npe.iter().position(|p| p == pe) {
                    Some(j) if !set_items && *ov != n[j] => {
                        descend(ov, &n[j], item_shape, || pe.clone(), diff)
                    }
                    Some(_) => {}
                    None => removed(ov, item_shape, pe.clone(), diff),
                }
            }
            for (nv, pe) in n.iter().zip(npe) {
                if !ope.contains(&pe) {
                    let mut child = FieldSet::new();
                    if !set_items {
                        collect_all(nv, item_shape, &mut child);
                    }
                    diff.changed.insert_child(pe, true, child);
                }
            }
            false
        }
        _ => old != new,
    }
}

/// Compares a field or item present in both versions.
fn descend(ov: &Value, nv: &Value, shape: Shape, pe: impl Fn() -> PathElement, diff: &mut Diff) {
    let mut sub = Diff::default();
    let changed = compare(ov, nv, shape, &mut sub);
    if changed || !sub.changed.is_empty() {
        diff.changed.insert_child(pe(), changed, sub.changed);
    }
    if !sub.removed.is_empty() {
        diff.removed.insert_child(pe(), false, sub.removed);
    }
}

/// Records a field or item the new version dropped, with everything under it.
fn removed(ov: &Value, shape: Shape, pe: PathElement, diff: &mut Diff) {
    let mut child = FieldSet::new();
    collect_all(ov, shape, &mut child);
    diff.removed.insert_child(pe, true, child);
}
