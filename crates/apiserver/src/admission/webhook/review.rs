//! AdmissionReview (admission.k8s.io/v1): the request a webhook is sent, the checks its
//! response must pass, and what an answer means — a denial as Kubernetes words it, or a
//! JSONPatch applied to the object.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::operation_name;
use crate::admission::{AdmissionRequest, Operation};
use crate::error::Error;

const API_VERSION: &str = "admission.k8s.io/v1";
const KIND: &str = "AdmissionReview";
const JSON_PATCH: &str = "JSONPatch";

/// The AdmissionReview sent for `req`; `obj` is the object as admitted so far (none for
/// deletes).
pub(crate) fn request(req: &AdmissionRequest<'_>, obj: Option<&Value>, uid: &str) -> Value {
    let rt = req.rt;
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let resource = json!({"group": rt.group, "version": rt.version, "resource": rt.plural});
    // Kubernetes names a namespace's own requests by that namespace.
    let namespace = if rt.group.is_empty() && rt.plural == "namespaces" {
        req.name
    } else {
        req.namespace
    };
    let options = match req.op {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
    };
    let mut r = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": req.name,
        "operation": operation_name(req.op),
        "userInfo": {
            "username": req.user.name,
            "uid": req.user.uid,
            "groups": req.user.groups,
        },
        "object": obj.cloned().unwrap_or(Value::Null),
        "oldObject": req.old.cloned().unwrap_or(Value::Null),
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options},
    });
    if !req.subresource.is_empty() {
        r["subResource"] = req.subresource.into();
        r["requestSubResource"] = req.subresource.into();
    }
    if !namespace.is_empty() {
        r["namespace"] = namespace.into();
    }
    json!({"apiVersion": API_VERSION, "kind": KIND, "request": r})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    response: Option<Response>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    allowed: bool,
    status: Option<Status>,
    /// Base64 of the JSONPatch, as Kubernetes encodes `[]byte`.
    patch: Option<String>,
    patch_type: Option<String>,
    warnings: Option<Vec<String>>,
}

/// The part of a `metav1.Status` a denial uses.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub(crate) struct Status {
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: String,
}

/// A webhook's answer, after the checks Kubernetes makes.
#[derive(Debug, PartialEq)]
pub(crate) struct Verdict {
    pub allowed: bool,
    pub status: Status,
    /// A JSONPatch, from mutating webhooks only.
    pub patch: Option<Vec<u8>>,
    pub warnings: Vec<String>,
}

/// Reads a response body; the error says why it is not a valid answer to request `uid`.
pub(crate) fn verdict(body: &[u8], uid: &str, mutating: bool) -> Result<Verdict, String> {
    let review: Review = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(format!(
            "expected webhook response of {API_VERSION}, Kind={KIND}, got {}, Kind={}",
            review.api_version, review.kind
        ));
    }
    let r = review
        .response
        .ok_or_else(|| "webhook response was absent".to_string())?;
    if r.uid != uid {
        return Err(format!("expected response.uid={uid:?}, got {:?}", r.uid));
    }
    let patch = match r.patch.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| format!("response.patch: {e}"))?,
        ),
    };
    let patch_type = r.patch_type.unwrap_or_default();
    match (mutating, &patch) {
        (true, Some(_)) if patch_type.is_empty() => {
            return Err("webhook returned response.patch but not response.patchType".into())
        }
        (true, Some(_)) if patch_type != JSON_PATCH => {
            return Err(format!(
                "webhook returned invalid response.patchType of {patch_type:?}"
            ))
        }
        (false, Some(_)) => return Err("validating webhook may not return response.patch".into()),
        (false, None) if !patch_type.is_empty() => {
            return Err("validating webhook may not return response.patchType".into())
        }
        _ => {}
    }
    Ok(Verdict {
        allowed: r.allowed,
        status: r.status.unwrap_or_default(),
        patch,
        warnings: r.warnings.unwrap_or_default(),
    })
}

/// The error for a request webhook `name` denied, with the status code it gave (at least
/// 400, as Kubernetes enforces) and Kubernetes' wording.
pub(crate) fn denial(name: &str, status: &Status) -> Error {
    let denied = format!("admission webhook {name:?} denied the request");
    let message = if !status.message.is_empty() {
        format!("{denied}: {}", status.message)
    } else if !status.reason.is_empty() {
        format!("{denied}: {}", status.reason)
    } else {
        format!("{denied} without explanation")
    };
    match status.code {
        401 | 403 => Error::Forbidden(message),
        409 | 412 => Error::Precondition(message),
        413 => Error::TooLarge(message),
        429 | 503 | 504 => Error::Unavailable(message),
        500 => Error::Internal(message),
        _ => Error::BadRequest(message),
    }
}

/// Applies webhook `name`'s JSONPatch to `obj`. The patch may not change what the object
/// is: its apiVersion, kind, name or namespace.
pub(crate) fn apply_patch(name: &str, obj: &mut Value, patch: &[u8]) -> Result<(), Error> {
    let bad = |reason: String| {
        Error::Internal(format!(
            "admission webhook {name:?} returned an unusable patch: {reason}"
        ))
    };
    let ops: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| bad(e.to_string()))?;
    if ops.0.is_empty() {
        return Ok(());
    }
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &ops).map_err(|e| bad(e.to_string()))?;
    if !patched.is_object() {
        return Err(bad("the patched object is not a JSON object".into()));
    }
    for field in [
        "/apiVersion",
        "/kind",
        "/metadata/name",
        "/metadata/namespace",
    ] {
        if obj.pointer(field) != patched.pointer(field) {
            return Err(Error::BadRequest(format!(
                "admission webhook {name:?} may not change {}",
                field[1..].replace('/', ".")
            )));
        }
    }
    *obj = patched;
    Ok(())
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;
