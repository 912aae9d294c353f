//! The object an update asks to store: a [`Change`] laid over the current object, with the
//! fields the server owns taken back from the current one.

use serde_json::{json, Value};

use super::Change;
use crate::certificates;
use crate::error::{Error, Result};
use crate::handler::WriteOptions;
use crate::object;
use crate::patch::{self, PatchKind};
use crate::registry::ResourceType;

/// The desired object for `change` on top of `cur`, and the precondition it carries.
pub(super) fn desired(
    rt: &ResourceType,
    cur: &Value,
    change: &Change<'_>,
    opts: &WriteOptions,
) -> Result<(Value, Option<String>)> {
    let (mut new, precondition) = match change {
        Change::Apply(applied, status) => {
            let precondition = named_version(applied);
            let new = crate::handler::apply::desired(rt, cur, applied, *status, opts)?;
            (new, precondition)
        }
        Change::Replace(obj) => (replaced(rt, cur, obj), named_version(obj)),
        Change::Status(obj) => (status_updated(rt, cur, obj), named_version(obj)),
        Change::Approval(obj) => (certificates::merge_approval(cur, obj), named_version(obj)),
        Change::Patch(kind, body, status) => patched(rt, cur, *kind, body, *status)?,
        Change::Bind(node, uid) => (bound(cur, node, uid)?, None),
    };
    keep_server_owned(cur, &mut new);
    Ok((new, precondition))
}

/// The resourceVersion a client's object names, which the write must find stored.
fn named_version(obj: &Value) -> Option<String> {
    let rv = object::resource_version(obj);
    (!rv.is_empty()).then(|| rv.to_string())
}

/// A whole-object update; a status subresource keeps the stored status.
fn replaced(rt: &ResourceType, cur: &Value, obj: &Value) -> Value {
    let mut new = obj.clone();
    if rt.has_status {
        new["status"] = cur["status"].clone();
        if cur.get("status").is_none() {
            new.as_object_mut().map(|m| m.remove("status"));
        }
    }
    new
}

/// A status update: only the status of `obj` is taken.
fn status_updated(rt: &ResourceType, cur: &Value, obj: &Value) -> Value {
    if certificates::is_csr(&rt.group, &rt.kind) {
        certificates::merge_status(cur, obj)
    } else {
        let mut new = cur.clone();
        new["status"] = obj["status"].clone();
        new
    }
}

/// A patch of the object, or of its status when `status`. A resourceVersion the patch
/// changes is a precondition.
fn patched(
    rt: &ResourceType,
    cur: &Value,
    kind: PatchKind,
    body: &[u8],
    status: bool,
) -> Result<(Value, Option<String>)> {
    let patched = patch::apply(kind, cur, body, crate::handler::schema_node(rt))?;
    let rv = object::resource_version(&patched);
    let precondition = if !rv.is_empty() && rv != object::resource_version(cur) {
        Some(rv.to_string())
    } else {
        None
    };
    let new = if status && certificates::is_csr(&rt.group, &rt.kind) {
        certificates::merge_status(cur, &patched)
    } else if status {
        let mut new = cur.clone();
        new["status"] = patched["status"].clone();
        new
    } else if rt.has_status {
        let mut new = patched;
        new["status"] = cur["status"].clone();
        new
    } else {
        patched
    };
    Ok((new, precondition))
}

/// The Pod `cur` bound to `node`, if it is unassigned, not being deleted and (when `uid`
/// is set) the Pod the binding names.
fn bound(cur: &Value, node: &str, uid: &str) -> Result<Value> {
    if !uid.is_empty() && object::str_of(cur, "uid") != uid {
        return Err(Error::Precondition(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            object::str_of(cur, "uid")
        )));
    }
    let assigned = cur["spec"]["nodeName"].as_str().unwrap_or("");
    if !assigned.is_empty() {
        return Err(Error::Conflict {
            resource: "pods/binding".into(),
            name: object::name(cur).to_string(),
            reason: format!(
                "pod {} is already assigned to node {assigned:?}",
                object::name(cur)
            ),
        });
    }
    if object::is_deleting(cur) {
        return Err(Error::Conflict {
            resource: "pods/binding".into(),
            name: object::name(cur).to_string(),
            reason: "pod is being deleted, cannot be assigned to a host".into(),
        });
    }
    let mut new = cur.clone();
    new["spec"]["nodeName"] = node.into();
    let cond = json!({"type": "PodScheduled", "status": "True",
                      "lastProbeTime": null, "lastTransitionTime": object::now()});
    let conds = new["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut conds: Vec<Value> = conds
        .into_iter()
        .filter(|c| c["type"] != "PodScheduled")
        .collect();
    conds.push(cond);
    new["status"]["conditions"] = Value::Array(conds);
    Ok(new)
}

/// What the server owns comes from the stored object; a changed spec bumps the generation.
fn keep_server_owned(cur: &Value, new: &mut Value) {
    let cm = cur["metadata"].clone();
    let m = object::meta_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match cm.get(k) {
            Some(v) => m.insert(k.into(), v.clone()),
            None => m.remove(k),
        };
    }
    m.insert("resourceVersion".into(), cm["resourceVersion"].clone());
    if object::spec_differs(cur, new) {
        let g = cur["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object::set(new, "generation", g);
    }
}
