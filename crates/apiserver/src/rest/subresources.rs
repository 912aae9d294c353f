//! Subresources: `status`, `approval`, `scale` (as autoscaling/v1 Scale), `pods/log`,
//! `pods/binding`, `pods/eviction`, `serviceaccounts/token`, and SelfSubjectReview.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rkube_proto::api::pods_server::Pods;
use rkube_proto::api::{DeleteRequest, LogsRequest, PatchRequest};
use serde_json::{json, Value};

use super::path::Target;
use super::query::Query;
use super::read::{json_bytes, namespace, type_ref};
use super::status::json_response;
use super::{read_body, write, Rest};
use crate::auth::UserInfo;
use crate::error::{Error, Result};
use crate::handler::WriteOptions;
use crate::patch::PatchKind;
use crate::registry::ResourceType;

/// An apiserver error from the status of a gRPC call made inside this server.
pub fn from_grpc(s: tonic::Status) -> Error {
    let msg = s.message().to_string();
    let missing_pod = msg
        .strip_prefix("pods \"")
        .and_then(|m| m.strip_suffix("\" not found"));
    match s.code() {
        tonic::Code::NotFound => match missing_pod {
            Some(name) => Error::NotFound {
                resource: "pods".into(),
                name: name.to_string(),
            },
            // A container that is not there (yet): Kubernetes answers 400.
            None => Error::BadRequest(msg),
        },
        tonic::Code::PermissionDenied => Error::Forbidden(msg),
        tonic::Code::Unauthenticated => Error::Unauthorized(msg),
        tonic::Code::InvalidArgument => Error::BadRequest(msg),
        tonic::Code::Unavailable => Error::Unavailable(msg),
        _ => Error::Internal(msg),
    }
}

/// `POST /apis/authentication.k8s.io/<v1|v1beta1>/selfsubjectreviews`: who the caller is.
pub fn self_subject_review(user: &UserInfo, t: &Target) -> Response {
    let v = json!({
        "apiVersion": t.api_version(),
        "kind": "SelfSubjectReview",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {"username": user.name, "uid": user.uid, "groups": user.groups}},
    });
    json_response(StatusCode::CREATED, &v)
}

pub async fn serve(
    rest: &Rest,
    user: UserInfo,
    rt: &ResourceType,
    t: &Target,
    q: Query,
    verb: &str,
    req: Request,
) -> Result<Response> {
    let pods = rt.group.is_empty() && rt.plural == "pods";
    match (t.subresource.as_str(), verb) {
        ("status" | "approval", "get") => {
            super::read::get(rest, &user, rt, t, &Default::default()).await
        }
        ("status" | "approval", "update") => {
            write::update(rest, &user, rt, t, &q, req, &t.subresource).await
        }
        ("status", "patch") => write::patch(rest, &user, rt, t, &q, req, true).await,
        ("scale", "get" | "update" | "patch") if scalable(rt) => {
            scale(rest, &user, rt, t, &q, verb, req).await
        }
        ("log", "get") if pods => logs(rest, t, &q, req).await,
        ("binding", "create") if pods => binding(rest, &user, t, req).await,
        ("eviction", "create") if pods => eviction(rest, &user, rt, t, req).await,
        ("exec" | "attach" | "portforward", "get" | "create") if pods => {
            connect(rest, &user, rt, t, req).await
        }
        ("token", "create") if rt.group.is_empty() && rt.plural == "serviceaccounts" => {
            token(rest, &user, rt, t, req).await
        }
        (sub, verb) => Err(Error::NotFound {
            resource: format!("{}/{sub}", rt.qualified()),
            name: format!("{} ({verb})", t.name),
        }),
    }
}

/// `pods/exec`, `pods/attach`, `pods/portforward`: authorized as `create` (whether the
/// client upgrades with GET for WebSocket or POST for SPDY), then upgraded and bridged to
/// the node agent.
async fn connect(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    req: Request,
) -> Result<Response> {
    let sub = t.subresource.as_str();
    rest.api
        .authorize(user, "create", rt, sub, &t.namespace, &t.name)?;
    let query = req.uri().query().unwrap_or_default().to_string();
    let purpose = match sub {
        "exec" => crate::streaming::Purpose::Exec,
        "attach" => crate::streaming::Purpose::Attach,
        _ => crate::streaming::Purpose::PortForward,
    };
    let (ns, pod) = (t.namespace.clone(), t.name.clone());
    Ok(crate::streaming::serve(&rest.pods, purpose, ns, pod, query, req).await)
}

fn scalable(rt: &ResourceType) -> bool {
    matches!(
        (rt.group.as_str(), rt.plural.as_str()),
        ("apps", "deployments" | "replicasets" | "statefulsets") | ("", "replicationcontrollers")
    )
}

/// A label selector as its string form (`app=web,tier in (a,b)`).
fn selector_string(sel: &Value) -> String {
    if sel.get("matchLabels").is_none() && sel.get("matchExpressions").is_none() {
        // ReplicationControllers select with a plain map.
        if let Some(m) = sel.as_object() {
            return m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",");
        }
    }
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let vals: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"],
                     "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
                   "selector": selector_string(&obj["spec"]["selector"])},
    })
}

async fn scale(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    q: &Query,
    verb: &str,
    req: Request,
) -> Result<Response> {
    let ns = namespace(rt, t, false)?;
    rest.api.authorize(user, verb, rt, "scale", &ns, &t.name)?;
    let get = rkube_proto::api::GetRequest {
        r#type: type_ref(rt),
        namespace: ns.clone(),
        name: t.name.clone(),
    };
    let cur: Value = serde_json::from_slice(&rest.api.get(user, &get).await?.json)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let cur_scale = scale_of(&cur);
    if verb == "get" {
        return Ok(json_response(StatusCode::OK, &cur_scale));
    }
    let opts = q.write_options()?;
    let (headers, bytes) = read_body(rest, req).await?;
    let new_scale: Value = if verb == "update" {
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadRequest(format!("the Scale is not valid JSON: {e}")))?
    } else {
        let ct = super::body::media_type(headers.get("content-type").and_then(|v| v.to_str().ok()));
        let kind = match ct {
            "application/json-patch+json" => PatchKind::Json,
            _ => PatchKind::Merge,
        };
        crate::patch::apply(kind, &cur_scale, &bytes, None)?
    };
    let Some(replicas) = new_scale["spec"]["replicas"].as_i64() else {
        return Err(Error::invalid(
            "Scale",
            &t.name,
            vec![crate::error::FieldError::required("spec.replicas")],
        ));
    };
    if replicas < 0 {
        return Err(Error::invalid(
            "Scale",
            &t.name,
            vec![crate::error::FieldError::invalid(
                "spec.replicas",
                replicas,
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut p = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = new_scale["metadata"]["resourceVersion"].as_str() {
        if verb == "update" && !rv.is_empty() {
            p["metadata"] = json!({"resourceVersion": rv});
        }
    }
    let r = PatchRequest {
        r#type: type_ref(rt),
        namespace: ns,
        name: t.name.clone(),
        patch_type: 0,
        patch: serde_json::to_vec(&p).unwrap_or_default().into(),
        status: false,
    };
    let out = rest
        .api
        .patch_with(user, &r, PatchKind::Merge, &opts)
        .await?;
    let obj: Value =
        serde_json::from_slice(&out.json).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, &scale_of(&obj)))
}

/// `pods/log`: chunked text, streamed from the pod's node agent.
async fn logs(rest: &Rest, t: &Target, q: &Query, req: Request) -> Result<Response> {
    let msg = LogsRequest {
        namespace: t.namespace.clone(),
        pod: t.name.clone(),
        container: q.str("container").to_string(),
        follow: q.flag("follow")?,
        previous: q.flag("previous")?,
        tail_lines: q.int("tailLines")?.unwrap_or(0).max(0),
        timestamps: q.flag("timestamps")?,
        since_seconds: q.int("sinceSeconds")?.unwrap_or(0).max(0),
    };
    let (parts, _) = req.into_parts();
    let md = tonic::metadata::MetadataMap::from_headers(parts.headers);
    let treq = tonic::Request::from_parts(md, parts.extensions, msg);
    let stream = Pods::logs(&rest.pods, treq)
        .await
        .map_err(from_grpc)?
        .into_inner();
    let body = stream.map(|c| match c {
        Ok(c) => Ok(c.data),
        Err(s) => Err(std::io::Error::other(s.message().to_string())),
    });
    Ok((
        StatusCode::OK,
        [("content-type", "text/plain")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// A request body of any accepted type.
async fn any_body(rest: &Rest, req: Request) -> Result<Value> {
    let (headers, bytes) = read_body(rest, req).await?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
    Ok(super::body::decode_any(ct, &bytes)?.0)
}

async fn binding(rest: &Rest, user: &UserInfo, t: &Target, req: Request) -> Result<Response> {
    let b = any_body(rest, req).await?;
    let node = b["target"]["name"].as_str().unwrap_or("");
    let uid = b["metadata"]["uid"].as_str().unwrap_or("");
    rest.api
        .bind(user, &t.namespace, &t.name, node, uid)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &super::status::success(Value::Null),
    ))
}

async fn eviction(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    req: Request,
) -> Result<Response> {
    let ns = namespace(rt, t, false)?;
    rest.api
        .authorize(user, "create", rt, "eviction", &ns, &t.name)?;
    let ev = any_body(rest, req).await?;
    let o = &ev["deleteOptions"];
    let dr = DeleteRequest {
        r#type: type_ref(rt),
        namespace: ns,
        name: t.name.clone(),
        grace_period_seconds: o["gracePeriodSeconds"].as_i64(),
        precondition_resource_version: String::new(),
        precondition_uid: o["preconditions"]["uid"].as_str().unwrap_or("").to_string(),
        propagation_policy: String::new(),
    };
    rest.api
        .delete_with(user, &dr, &WriteOptions::default())
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &super::status::success(Value::Null),
    ))
}

async fn token(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    req: Request,
) -> Result<Response> {
    let ns = namespace(rt, t, false)?;
    rest.api
        .authorize(user, "create", rt, "token", &ns, &t.name)?;
    let body = any_body(rest, req).await?;
    let json = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).map_err(|e| Error::Internal(e.to_string()))?
    };
    let mut v = rest.pods.tokens.request(&ns, &t.name, &json, "").await?;
    v["apiVersion"] = "authentication.k8s.io/v1".into();
    v["kind"] = "TokenRequest".into();
    Ok(json_bytes(
        StatusCode::CREATED,
        serde_json::to_vec(&v).unwrap_or_default(),
    ))
}
