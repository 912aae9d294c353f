//! The strategic merge patch directives that work beside a field rather than inside it:
//! `$retainKeys`, `$deleteFromPrimitiveList/<list>` and `$setElementOrder/<list>`.

use serde_json::{Map, Value};

use super::{interleave, is_directive, merge_list, no_merge_key, At, Result};
use crate::merge::Shape;

/// `$retainKeys`: clears the keys of `t` the list leaves out; every key the patch sets must
/// be in the list.
pub(super) fn retain_keys(
    t: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    keys: &Value,
    at: &At,
) -> Result<()> {
    let Value::Array(keys) = keys else {
        return Err(at.err("invalid patch format of retainKeys"));
    };
    let listed = |k: &str| keys.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch {
        if v.is_null() || k.starts_with('$') {
            continue;
        }
        if !listed(k) {
            return Err(at.err(format!(
                "invalid patch format of retainKeys: {k:?} is not in the $retainKeys list"
            )));
        }
    }
    t.retain(|k, _| listed(k));
    Ok(())
}

/// `$deleteFromPrimitiveList/<name>`: removes every listed value from the list `name`.
pub(super) fn delete_from_list(
    t: &mut Map<String, Value>,
    name: &str,
    pv: &Value,
    at: &At,
) -> Result<()> {
    let Value::Array(gone) = pv else {
        return Err(at.err("invalid patch format of primitive list"));
    };
    if gone.iter().any(|g| g.is_object() || g.is_array()) {
        return Err(at.err("invalid patch format of primitive list"));
    }
    if let Some(Value::Array(cur)) = t.get_mut(name) {
        cur.retain(|c| !gone.contains(c));
    }
    Ok(())
}

/// `$setElementOrder/<name>`: merges the list as usual, then orders the items the directive
/// names as it lists them, with the other items where they were relative to them.
pub(super) fn set_element_order(
    t: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    name: &str,
    order: &Value,
    shape: Shape,
    parent: &At,
) -> Result<()> {
    let at = At::Field(parent, name);
    let Value::Array(order) = order else {
        return Err(at.err("invalid patch format of setElementOrder list"));
    };
    let key = shape.merge_key();
    let id = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let order_ids: Vec<Value> = order.iter().map(id).collect();
    if let Some(k) = key {
        if let Some(o) = order.iter().find(|o| o.get(k).is_none()) {
            return Err(at.err(no_merge_key(o, k)));
        }
    }
    let patch_list = match patch.get(name) {
        Some(Value::Array(p)) => Some(p.as_slice()),
        Some(Value::Null) | None => None,
        Some(_) => return Err(at.err("invalid patch format of setElementOrder list")),
    };
    if let Some(p) = patch_list {
        check_order(p, &order_ids, &id, order, &at)?;
    }
    let original = match t.remove(name) {
        Some(Value::Array(cur)) => Some(cur),
        _ => None,
    };
    let mut server_ids: Vec<Value> = original.iter().flatten().map(id).collect();
    let merged = match (original, patch_list) {
        (None, None) => return Ok(()),
        (Some(cur), None) => cur,
        (cur, Some(p)) => merge_list(cur.unwrap_or_default(), p, shape, &at)?,
    };
    if let (Some(p), Some(k)) = (patch_list, key) {
        // Items the patch adds take the places of the items it deletes, as in Kubernetes.
        let len = server_ids.len();
        let deleted: Vec<&Value> = p
            .iter()
            .filter(|i| i.get("$patch").and_then(|d| d.as_str()) == Some("delete"))
            .filter_map(|i| i.get(k))
            .collect();
        server_ids.retain(|s| !deleted.contains(&s));
        let added: Vec<Value> = merged
            .iter()
            .map(id)
            .filter(|m| !server_ids.contains(m))
            .collect();
        server_ids.extend(added);
        server_ids.truncate(len);
    }
    let (named, others): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| order_ids.contains(&id(v)));
    let mut named = named;
    named.sort_by_key(|v| order_ids.iter().position(|o| *o == id(v)));
    let out = interleave(others, named, &server_ids, id);
    t.insert(name.to_string(), Value::Array(out));
    Ok(())
}

/// The items of the patch list must appear in the `$setElementOrder` list, in its order.
fn check_order(
    patch: &[Value],
    order_ids: &[Value],
    id: &impl Fn(&Value) -> Value,
    order: &[Value],
    at: &At,
) -> Result<()> {
    let mut pos = 0;
    for p in patch.iter().filter(|p| !is_directive(p)) {
        let want = id(p);
        match order_ids[pos..].iter().position(|o| *o == want) {
            Some(i) => pos += i + 1,
            None => {
                return Err(at.err(format!(
                    "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
                    Value::Array(patch.to_vec()),
                    Value::Array(order.to_vec())
                )))
            }
        }
    }
    Ok(())
}
