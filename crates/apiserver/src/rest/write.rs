//! POST, PUT, PATCH, DELETE and DELETE of a collection, with `dryRun`, `fieldManager`,
//! `fieldValidation` and DeleteOptions.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use rkube_proto::api::{DeleteRequest, Object, PatchRequest};
use serde_json::{json, Value};

use super::body::{self, media_type};
use super::path::Target;
use super::query::{Query, Validation};
use super::read::{json_bytes, list_request, namespace, type_ref};
use super::{read_body, Rest};
use crate::auth::UserInfo;
use crate::error::{Error, Result};
use crate::handler::WriteOptions;
use crate::object;
use crate::patch::PatchKind;
use crate::registry::{ResourceType, Schema};

fn envelope(rt: &ResourceType, ns: &str, name: &str, obj: &Value) -> Result<Object> {
    Ok(Object {
        r#type: type_ref(rt),
        namespace: ns.to_string(),
        name: name.to_string(),
        resource_version: String::new(),
        json: serde_json::to_vec(obj)
            .map_err(|e| Error::Internal(e.to_string()))?
            .into(),
    })
}

/// Reads and decodes an object body, applying `fieldValidation`.
async fn object_body(rest: &Rest, rt: &ResourceType, q: &Query, req: Request) -> Result<Value> {
    let validation = q.field_validation()?;
    let (headers, bytes) = read_body(rest, req).await?;
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
    let (obj, dups) = body::decode_any(ct, &bytes)?;
    if !obj.is_object() {
        return Err(Error::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    if validation != Validation::Ignore {
        let problems = body::field_problems(rt, &obj, dups);
        body::enforce(validation, &rt.kind, &rt.api_version(), problems)?;
    }
    Ok(obj)
}

fn object_response(code: StatusCode, o: &Object) -> Response {
    json_bytes(code, o.json.to_vec())
}

pub async fn create(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    q: &Query,
    req: Request,
) -> Result<Response> {
    if !t.name.is_empty() {
        return Err(Error::BadRequest(format!(
            "POST is not supported on a named {} (use PUT or PATCH)",
            rt.plural
        )));
    }
    let ns = namespace(rt, t, false)?;
    let opts = q.write_options()?;
    let obj = object_body(rest, rt, q, req).await?;
    let created = rest
        .api
        .create_with(user, &envelope(rt, &ns, "", &obj)?, &opts)
        .await?;
    Ok(object_response(StatusCode::CREATED, &created))
}

/// PUT of the object, or of its `status` (or `approval`) subresource.
pub async fn update(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    q: &Query,
    req: Request,
    sub: &str,
) -> Result<Response> {
    let ns = namespace(rt, t, false)?;
    let opts = q.write_options()?;
    let mut obj = object_body(rest, rt, q, req).await?;
    match object::name(&obj) {
        "" => object::set(&mut obj, "name", t.name.clone()),
        n if n != t.name => {
            return Err(Error::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                t.name
            )))
        }
        _ => {}
    }
    let updated = rest
        .api
        .update_with(user, &envelope(rt, &ns, &t.name, &obj)?, sub, &opts)
        .await?;
    Ok(object_response(StatusCode::OK, &updated))
}

fn patch_kind(rt: &ResourceType, media: &str) -> Result<PatchKind> {
    match media {
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/strategic-merge-patch+json" => match rt.schema {
            Schema::Builtin(_) => Ok(PatchKind::Strategic),
            Schema::Custom(_) => Err(Error::BadRequest(format!(
                "the body of the request was in an unknown format - strategic merge patch is not supported for custom resources ({})",
                rt.qualified()
            ))),
        },
        other => Err(Error::BadRequest(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
        ))),
    }
}

/// Unknown fields the patch would set, found by applying it to the current object.
fn patch_problems(
    rest: &Rest,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    kind: PatchKind,
    patch: &[u8],
) -> Vec<String> {
    let Some(cur) = rest.api.cache.get(&rt.key(ns, name)) else {
        return Vec::new();
    };
    let Ok(cur) = cur.value() else {
        return Vec::new();
    };
    match crate::patch::apply(kind, &cur, patch, crate::handler::schema_node(rt)) {
        Ok(patched) => {
            let dups = if kind == PatchKind::Json {
                Vec::new()
            } else {
                body::duplicates(patch)
            };
            body::field_problems(rt, &patched, dups)
        }
        Err(_) => Vec::new(),
    }
}

/// PATCH of the object or of its `status` subresource.
pub async fn patch(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    q: &Query,
    req: Request,
    status: bool,
) -> Result<Response> {
    let ns = namespace(rt, t, false)?;
    let opts = q.write_options()?;
    let validation = q.field_validation()?;
    let (headers, bytes) = read_body(rest, req).await?;
    let media = media_type(headers.get("content-type").and_then(|v| v.to_str().ok())).to_string();
    if media == "application/apply-patch+yaml" {
        return apply(rest, user, rt, t, &opts, validation, &bytes, status).await;
    }
    let kind = patch_kind(rt, &media)?;
    if validation != Validation::Ignore {
        let problems = patch_problems(rest, rt, &ns, &t.name, kind, &bytes);
        body::enforce(validation, &rt.kind, &rt.api_version(), problems)?;
    }
    let r = PatchRequest {
        r#type: type_ref(rt),
        namespace: ns,
        name: t.name.clone(),
        patch_type: 0,
        patch: bytes,
        status,
    };
    let patched = rest.api.patch_with(user, &r, kind, &opts).await?;
    Ok(object_response(StatusCode::OK, &patched))
}

/// `application/apply-patch+yaml`: server-side apply of the configuration in the body.
#[allow(clippy::too_many_arguments)]
async fn apply(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    opts: &WriteOptions,
    validation: Validation,
    body: &[u8],
    status: bool,
) -> Result<Response> {
    let ns = namespace(rt, t, false)?;
    let (mut obj, _) = body::decode(Some("application/yaml"), body)?;
    if !obj.is_object() {
        return Err(Error::BadRequest(
            "the applied configuration must be an object".into(),
        ));
    }
    match object::name(&obj) {
        "" => object::set(&mut obj, "name", t.name.clone()),
        n if n != t.name => {
            return Err(Error::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                t.name
            )))
        }
        _ => {}
    }
    if validation != Validation::Ignore {
        let problems = body::field_problems(rt, &obj, Vec::new());
        body::enforce(validation, &rt.kind, &rt.api_version(), problems)?;
    }
    let out = rest
        .api
        .apply_with(user, &envelope(rt, &ns, &t.name, &obj)?, status, opts)
        .await?;
    Ok(object_response(StatusCode::OK, &out))
}

/// DeleteOptions from the body and the query (the query wins, as in Kubernetes).
fn delete_request(
    rt: &ResourceType,
    ns: &str,
    name: &str,
    q: &Query,
    body: &[u8],
) -> Result<(DeleteRequest, bool)> {
    let o: Value = if body.iter().all(|b| b.is_ascii_whitespace()) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| {
            Error::BadRequest(format!("the DeleteOptions body is not valid JSON: {e}"))
        })?
    };
    let grace = match q.int("gracePeriodSeconds")? {
        Some(g) => Some(g),
        None => o["gracePeriodSeconds"].as_i64(),
    };
    let mut policy = match q.str("propagationPolicy") {
        "" => o["propagationPolicy"].as_str().unwrap_or("").to_string(),
        p => p.to_string(),
    };
    if policy.is_empty() && o["orphanDependents"] == Value::Bool(true) {
        policy = "Orphan".into();
    }
    let dry = o["dryRun"]
        .as_array()
        .is_some_and(|d| d.iter().any(|x| x == "All"));
    Ok((
        DeleteRequest {
            r#type: type_ref(rt),
            namespace: ns.to_string(),
            name: name.to_string(),
            grace_period_seconds: grace,
            precondition_resource_version: o["preconditions"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            precondition_uid: o["preconditions"]["uid"].as_str().unwrap_or("").to_string(),
            propagation_policy: policy,
        },
        dry,
    ))
}

pub async fn delete(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    q: &Query,
    req: Request,
) -> Result<Response> {
    let ns = namespace(rt, t, false)?;
    let mut opts = q.write_options()?;
    let (_, bytes) = read_body(rest, req).await?;
    let (dr, dry) = delete_request(rt, &ns, &t.name, q, &bytes)?;
    opts.dry_run |= dry;
    let resp = rest.api.delete_with(user, &dr, &opts).await?;
    let obj = resp.object.unwrap_or_default();
    if resp.deleted {
        let v: Value = serde_json::from_slice(&obj.json).unwrap_or_default();
        let details = json!({"name": t.name, "group": rt.group, "kind": rt.plural,
                             "uid": object::str_of(&v, "uid")});
        return Ok(super::status::json_response(
            StatusCode::OK,
            &super::status::success(details),
        ));
    }
    let code = if opts.dry_run {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(object_response(code, &obj))
}

pub async fn delete_collection(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    q: &Query,
) -> Result<Response> {
    let lr = list_request(rt, t, q)?;
    rest.api
        .authorize(user, "deletecollection", rt, "", &lr.namespace, "")?;
    let opts: WriteOptions = q.write_options()?;
    let list = rest.api.list(user, &lr).await?;
    let mut deleted = Vec::new();
    for item in &list.items {
        let (dr, _) = delete_request(rt, &item.namespace, &item.name, q, b"")?;
        match rest.api.delete_with(user, &dr, &opts).await {
            Ok(r) => deleted.extend(r.object),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let out = rkube_proto::api::ListResponse {
        resource_version: list.resource_version,
        items: deleted,
        ..Default::default()
    };
    Ok(json_bytes(StatusCode::OK, super::read::list_json(rt, &out)))
}
