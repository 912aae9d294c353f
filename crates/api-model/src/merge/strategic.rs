//! Strategic merge patch, with Kubernetes' semantics: objects merge key by key, `null`
//! deletes, lists whose patch strategy is `merge` merge by their merge key (lists of scalars
//! as sets) and other lists are replaced, and the directives `$patch` (`replace`, `delete`,
//! `merge`), `$setElementOrder/<list>`, `$retainKeys` and `$deleteFromPrimitiveList/<list>`.
//! Merged lists keep the patch's order for the items it names and put the other items back
//! where they were relative to them, as the Kubernetes apiserver does.

use std::fmt;

use serde_json::{Map, Value};

use super::Shape;
use crate::schema::Node;

mod directives;

use directives::{delete_from_list, retain_keys, set_element_order};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// A patch that cannot be applied: where, and why, in Kubernetes' words. Not retryable: the
/// same patch fails the same way against the same object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct MergeError {
    /// The field the error is about, like `spec.containers[1]`; empty for the whole object.
    pub path: String,
    pub message: String,
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

type Result<T, E = MergeError> = std::result::Result<T, E>;

/// Where the merge is, as a chain on the stack; rendered only for errors.
#[derive(Clone, Copy)]
enum At<'a> {
    Root,
    Field(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    fn render(&self, out: &mut String) {
        match self {
            At::Root => {}
            At::Field(p, name) => {
                p.render(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            At::Index(p, i) => {
                p.render(out);
                out.push_str(&format!("[{i}]"));
            }
        }
    }

    fn err(&self, message: impl Into<String>) -> MergeError {
        let mut path = String::new();
        self.render(&mut path);
        MergeError {
            path,
            message: message.into(),
        }
    }
}

/// Applies a strategic merge `patch` to `original`, whose schema is `schema`, and returns
/// the patched object. `original` that is not an object is patched as an empty one.
pub fn strategic_merge(original: &Value, patch: &Value, schema: Node) -> Result<Value> {
    let Value::Object(p) = patch else {
        return Err(At::Root.err("a strategic merge patch must be a JSON object"));
    };
    let mut out = match original {
        Value::Object(_) => original.clone(),
        _ => Value::Object(Map::new()),
    };
    if !merge_object(&mut out, p, Shape(Some(schema)), &At::Root)? {
        return Ok(Value::Object(Map::new()));
    }
    Ok(out)
}

/// Merges `patch` into `target`; false when a `$patch: delete` asks for `target` to go.
fn merge_object(
    target: &mut Value,
    patch: &Map<String, Value>,
    shape: Shape,
    at: &At,
) -> Result<bool> {
    match patch.get(PATCH) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "delete" => return Ok(false),
        Some(Value::String(d)) if d == "replace" => {
            let mut fresh = Value::Object(Map::new());
            let literal: Map<String, Value> = patch
                .iter()
                .filter(|(k, _)| k.as_str() != PATCH)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            merge_object(&mut fresh, &literal, shape, at)?;
            *target = fresh;
            return Ok(true);
        }
        Some(d) => {
            return Err(at.err(format!(
                "unknown patch type: {} in map: {}",
                plain(d),
                Value::Object(patch.clone())
            )))
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(true);
    };
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        retain_keys(t, patch, keys, at)?;
    }
    let mut ordered: Vec<&str> = Vec::new();
    for (k, order) in patch {
        if let Some(name) = k.strip_prefix(SET_ORDER) {
            set_element_order(t, patch, name, order, shape.child(name), at)?;
            ordered.push(name);
        }
    }
    for (k, pv) in patch {
        if k == PATCH || k == RETAIN_KEYS || k.starts_with(SET_ORDER) || k.starts_with(DELETE_FROM)
        {
            continue;
        }
        if ordered.contains(&k.as_str()) {
            continue;
        }
        merge_field(t, k, pv, shape.child(k), &At::Field(at, k))?;
    }
    for (k, pv) in patch {
        if let Some(name) = k.strip_prefix(DELETE_FROM) {
            delete_from_list(t, name, pv, &At::Field(at, name))?;
        }
    }
    Ok(true)
}

fn merge_field(
    t: &mut Map<String, Value>,
    k: &str,
    pv: &Value,
    shape: Shape,
    at: &At,
) -> Result<()> {
    match pv {
        Value::Null => {
            t.remove(k);
        }
        Value::Object(pm) => {
            let cur = t.entry(k.to_string()).or_insert(Value::Null);
            if shape.has_strategy("replace") {
                *cur = Value::Null;
            }
            if !merge_object(cur, pm, shape, at)? {
                t.remove(k);
            }
        }
        Value::Array(items) => {
            let cur = match t.remove(k) {
                Some(Value::Array(cur)) => cur,
                _ => Vec::new(),
            };
            t.insert(
                k.to_string(),
                Value::Array(merge_list(cur, items, shape, at)?),
            );
        }
        scalar => {
            t.insert(k.to_string(), scalar.clone());
        }
    }
    Ok(())
}

/// The value of a patch item that lands where nothing was: its directives applied to an
/// empty value, its nulls dropped. `None` when the item is only a directive.
fn fresh(item: &Value, shape: Shape, at: &At) -> Result<Option<Value>> {
    Ok(match item {
        Value::Object(m) => {
            let mut v = Value::Object(Map::new());
            merge_object(&mut v, m, shape, at)?.then_some(v)
        }
        Value::Array(items) => Some(Value::Array(merge_list(Vec::new(), items, shape, at)?)),
        other => Some(other.clone()),
    })
}

fn is_directive(item: &Value) -> bool {
    item.get(PATCH).is_some()
}

/// Merges the patch list `patch` into `cur`, the list at a field whose schema is `shape`.
fn merge_list(cur: Vec<Value>, patch: &[Value], shape: Shape, at: &At) -> Result<Vec<Value>> {
    let item_shape = shape.items();
    if !shape.has_strategy("merge") {
        let mut out = Vec::with_capacity(patch.len());
        for (i, item) in patch.iter().enumerate() {
            if !is_directive(item) {
                out.extend(fresh(item, item_shape, &At::Index(at, i))?);
            }
        }
        return Ok(out);
    }
    let kind = element_kind(
        cur.iter().chain(patch.iter().filter(|p| !is_directive(p))),
        at,
    )?;
    match kind {
        Kind::Empty => Ok(Vec::new()),
        Kind::Scalar if patch.iter().any(is_replace) => Ok(patch_scalars(patch).cloned().collect()),
        Kind::Scalar => Ok(merge_scalars(cur, patch)),
        Kind::Object => {
            let Some(key) = shape.merge_key() else {
                return Err(at.err(format!(
                    "cannot merge lists without merge key for {}",
                    describe(at)
                )));
            };
            merge_keyed(cur, patch, key, item_shape, at)
        }
    }
}

fn is_replace(v: &Value) -> bool {
    v.get(PATCH).and_then(|d| d.as_str()) == Some("replace")
}

fn patch_scalars(patch: &[Value]) -> impl Iterator<Item = &Value> {
    patch.iter().filter(|p| !is_directive(p))
}

fn describe(at: &At) -> String {
    let mut s = String::new();
    at.render(&mut s);
    s
}

enum Kind {
    Empty,
    Scalar,
    Object,
}

fn element_kind<'v>(items: impl Iterator<Item = &'v Value>, at: &At) -> Result<Kind> {
    let mut kind = Kind::Empty;
    for v in items {
        let k = match v {
            Value::Array(_) => return Err(at.err("lists of lists are not supported")),
            Value::Object(_) => Kind::Object,
            _ => Kind::Scalar,
        };
        match (&kind, &k) {
            (Kind::Empty, _) => kind = k,
            (Kind::Scalar, Kind::Scalar) | (Kind::Object, Kind::Object) => {}
            _ => return Err(at.err("list element types are not identical")),
        }
    }
    Ok(kind)
}

/// A set of scalars: the union, the patch's items in the patch's order.
fn merge_scalars(cur: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    let mut patch_items: Vec<Value> = Vec::with_capacity(patch.len());
    for p in patch_scalars(patch) {
        if !patch_items.contains(p) {
            patch_items.push(p.clone());
        }
    }
    let mut server_only: Vec<Value> = Vec::with_capacity(cur.len());
    for c in &cur {
        if !patch_items.contains(c) && !server_only.contains(c) {
            server_only.push(c.clone());
        }
    }
    interleave(server_only, patch_items, &cur, Value::clone)
}

/// Lists of objects merged by `key`: deletions first, then each patch item merged into the
/// item with the same key or added.
fn merge_keyed(
    mut cur: Vec<Value>,
    patch: &[Value],
    key: &str,
    item: Shape,
    at: &At,
) -> Result<Vec<Value>> {
    let mut replace = false;
    for (i, p) in patch.iter().enumerate() {
        let Some(d) = p.get(PATCH) else { continue };
        let at = At::Index(at, i);
        match d.as_str() {
            Some("delete") => {
                let Some(id) = p.get(key) else {
                    return Err(at.err(no_merge_key(p, key)));
                };
                cur.retain(|c| c.get(key) != Some(id));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(at.err("merging lists cannot yet be specified in the patch"))
            }
            _ => return Err(at.err(format!("unknown patch type: {} in map: {p}", plain(d)))),
        }
    }
    let items: Vec<(usize, &Value)> = patch
        .iter()
        .enumerate()
        .filter(|(_, p)| !is_directive(p))
        .collect();
    if replace {
        let mut out = Vec::with_capacity(items.len());
        for (i, p) in items {
            out.extend(fresh(p, item, &At::Index(at, i))?);
        }
        return Ok(out);
    }
    let server_order: Vec<Value> = cur
        .iter()
        .map(|c| c.get(key).cloned().unwrap_or(Value::Null))
        .collect();
    let mut patch_items: Vec<Value> = Vec::with_capacity(items.len());
    for (i, p) in items {
        let at = At::Index(at, i);
        let Some(id) = p.get(key) else {
            return Err(at.err(no_merge_key(p, key)));
        };
        let Value::Object(pm) = p else { continue };
        let merged = match cur.iter().position(|c| c.get(key) == Some(id)) {
            Some(pos) => {
                let mut v = cur.remove(pos);
                merge_object(&mut v, pm, item, &at)?.then_some(v)
            }
            None => match patch_items.iter().position(|c| c.get(key) == Some(id)) {
                Some(pos) => {
                    let mut v = patch_items.remove(pos);
                    merge_object(&mut v, pm, item, &at)?.then_some(v)
                }
                None => fresh(p, item, &at)?,
            },
        };
        patch_items.extend(merged);
    }
    Ok(interleave(cur, patch_items, &server_order, |v| {
        v.get(key).cloned().unwrap_or(Value::Null)
    }))
}

/// Puts the server-only items `left` back among the patch's items `right`: an item of `left`
/// goes before the next item of `right` when it came before it in `server` (the identities
/// of the original items, in their order).
fn interleave(
    left: Vec<Value>,
    right: Vec<Value>,
    server: &[Value],
    id: impl Fn(&Value) -> Value,
) -> Vec<Value> {
    let pos = |v: &Value| {
        let v = id(v);
        server.iter().position(|o| *o == v)
    };
    let li: Vec<Option<usize>> = left.iter().map(pos).collect();
    let ri: Vec<Option<usize>> = right.iter().map(pos).collect();
    merge_sorted(
        left,
        right,
        |i, j| matches!((li[i], ri[j]), (Some(l), Some(r)) if l < r),
    )
}

/// Merges two sequences, taking from `left` while `left_first(i, j)` says its next item goes
/// before the next one of `right`.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    left_first: impl Fn(usize, usize) -> bool,
) -> Vec<Value> {
    let (ln, rn) = (left.len(), right.len());
    let mut out = Vec::with_capacity(ln + rn);
    let (mut l, mut r) = (
        left.into_iter().enumerate().peekable(),
        right.into_iter().enumerate().peekable(),
    );
    loop {
        let take_left = match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((i, _)), Some((j, _))) => left_first(*i, *j),
        };
        let next = if take_left { l.next() } else { r.next() };
        out.extend(next.map(|(_, v)| v));
    }
    out
}

fn no_merge_key(item: &Value, key: &str) -> String {
    format!("map: {item} does not contain declared merge key: {key}")
}

/// A JSON value as Go's `%v` would print a string: without quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
