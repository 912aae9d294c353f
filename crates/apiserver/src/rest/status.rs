//! Errors as Kubernetes `Status` objects with the HTTP code of their reason, and the
//! success Status some verbs answer with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::{Error, FieldError, FieldErrorKind};

/// The HTTP code Kubernetes answers `e` with.
pub fn http_code(e: &Error) -> StatusCode {
    match e {
        Error::NotFound { .. } | Error::UnknownKind { .. } => StatusCode::NOT_FOUND,
        Error::AlreadyExists { .. }
        | Error::Conflict { .. }
        | Error::FieldConflicts { .. }
        | Error::Precondition(_) => StatusCode::CONFLICT,
        Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Expired { .. } => StatusCode::GONE,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn cause_reason(k: &FieldErrorKind) -> &'static str {
    match k {
        FieldErrorKind::Required => "FieldValueRequired",
        FieldErrorKind::Invalid { .. } => "FieldValueInvalid",
        FieldErrorKind::Forbidden(_) => "FieldValueForbidden",
        FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
        FieldErrorKind::NotSupported { .. } => "FieldValueNotSupported",
        FieldErrorKind::Type(_) => "FieldValueTypeInvalid",
        FieldErrorKind::TooLong(_) => "FieldValueTooLong",
    }
}

fn cause(f: &FieldError) -> Value {
    let full = f.to_string();
    let body = full
        .split_once(": ")
        .map(|(_, b)| b.to_string())
        .unwrap_or(full.clone());
    json!({"reason": cause_reason(&f.kind), "message": body, "field": f.path})
}

/// `pods` → ("", "pods"); `deployments.apps` → ("apps", "deployments").
fn split_resource(r: &str) -> (&str, &str) {
    match r.split_once('.') {
        Some((plural, group)) => (group, plural),
        None => ("", r),
    }
}

/// The Status object of `e`.
pub fn status_of(e: &Error) -> Value {
    let code = http_code(e).as_u16();
    let details = match e {
        Error::NotFound { resource, name } | Error::AlreadyExists { resource, name } => {
            let (group, kind) = split_resource(resource);
            json!({"name": name, "group": group, "kind": kind})
        }
        Error::Conflict { resource, name, .. } => {
            let (group, kind) = split_resource(resource);
            json!({"name": name, "group": group, "kind": kind})
        }
        Error::FieldConflicts { causes, .. } => json!({
            "causes": causes.iter().map(|(field, message)| json!({
                "reason": "FieldManagerConflict", "message": message, "field": field,
            })).collect::<Vec<_>>(),
        }),
        Error::Invalid { kind, name, causes } => json!({
            "name": name,
            "kind": kind,
            "causes": causes.iter().map(cause).collect::<Vec<_>>(),
        }),
        _ => Value::Null,
    };
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": e.to_string(),
        "reason": e.reason(),
        "code": code,
    });
    if !details.is_null() {
        s["details"] = details;
    }
    if let Error::NotFound { .. } | Error::UnknownKind { .. } = e {
        if matches!(e, Error::UnknownKind { .. }) {
            s["message"] = "the server could not find the requested resource".into();
        }
    }
    s
}

/// The response for an error.
pub fn error_response(e: &Error) -> Response {
    failure_response(http_code(e), &status_of(e))
}

/// The reason and message of a failed response, for the audit log.
#[derive(Clone, Debug)]
pub struct Failure {
    pub reason: String,
    pub message: String,
}

fn failure_response(code: StatusCode, status: &Value) -> Response {
    let mut r = json_response(code, status);
    let text = |k: &str| status[k].as_str().unwrap_or_default().to_string();
    r.extensions_mut().insert(Failure {
        reason: text("reason"),
        message: text("message"),
    });
    r
}

/// A Status with a given code, reason and message (for errors the handlers do not make).
pub fn failure(code: StatusCode, reason: &str, message: &str) -> Response {
    let s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    failure_response(code, &s)
}

/// The Status Kubernetes answers a finished delete or deletecollection with.
pub fn success(details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "details": details})
}

pub fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (code, [("content-type", "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_carries_field_causes_and_422() {
        let e = Error::invalid(
            "Pod",
            "p",
            vec![FieldError::required("spec.containers[0].image")],
        );
        let s = status_of(&e);
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(
            s["details"]["causes"][0]["field"],
            "spec.containers[0].image"
        );
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueRequired");
        assert_eq!(s["details"]["causes"][0]["message"], "Required value");
    }

    #[test]
    fn codes() {
        let nf = Error::NotFound {
            resource: "deployments.apps".into(),
            name: "d".into(),
        };
        assert_eq!(status_of(&nf)["code"], 404);
        assert_eq!(status_of(&nf)["details"]["group"], "apps");
        assert_eq!(status_of(&nf)["details"]["kind"], "deployments");
        assert_eq!(
            http_code(&Error::conflict("pods", "p")),
            StatusCode::CONFLICT
        );
        let gone = Error::Expired {
            requested: 1,
            oldest: 5,
        };
        assert_eq!(status_of(&gone)["code"], 410);
        assert_eq!(status_of(&gone)["reason"], "Expired");
    }
}
