//! GET and LIST: one object or a collection, as JSON or as a `meta.k8s.io/v1` Table when
//! the client asks for one (`kubectl get`).

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rkube_proto::api::{GetRequest, ListRequest, ListResponse, TypeRef};

use super::path::Target;
use super::query::Query;
use super::{header, Rest};
use crate::auth::UserInfo;
use crate::error::{Error, Result};
use crate::registry::ResourceType;

pub fn type_ref(rt: &ResourceType) -> Option<TypeRef> {
    Some(TypeRef {
        api_version: rt.api_version(),
        kind: rt.kind.clone(),
    })
}

/// The namespace a request on a namespaced kind names; cluster-scoped kinds take none.
pub fn namespace(rt: &ResourceType, t: &Target, collection: bool) -> Result<String> {
    match (rt.namespaced, t.namespace.is_empty()) {
        (true, true) if !collection => Err(Error::BadRequest(
            "the namespace of the request is required for a namespaced resource".into(),
        )),
        (false, false) => Err(Error::NotFound {
            resource: rt.qualified(),
            name: t.name.clone(),
        }),
        _ => Ok(t.namespace.clone()),
    }
}

/// Whether the Accept header asks for a Table.
pub fn wants_table(h: &HeaderMap) -> bool {
    header(h, "accept")
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

pub fn json_bytes(code: StatusCode, body: Vec<u8>) -> Response {
    (code, [("content-type", "application/json")], body).into_response()
}

pub async fn get(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    h: &HeaderMap,
) -> Result<Response> {
    let ns = namespace(rt, t, false)?;
    let obj = rest
        .api
        .get(
            user,
            &GetRequest {
                r#type: type_ref(rt),
                namespace: ns,
                name: t.name.clone(),
            },
        )
        .await?;
    if wants_table(h) {
        let v: serde_json::Value = serde_json::from_slice(&obj.json)
            .map_err(|e| Error::Internal(format!("stored object: {e}")))?;
        let rv = obj.resource_version.clone();
        return Ok(super::status::json_response(
            StatusCode::OK,
            &super::table::of(
                &rest.api,
                rt,
                vec![v],
                &rv,
                "",
                super::table::Include::Object,
            )?,
        ));
    }
    Ok(json_bytes(StatusCode::OK, obj.json.to_vec()))
}

/// A list request from the query: selectors, limit and continue.
pub fn list_request(rt: &ResourceType, t: &Target, q: &Query) -> Result<ListRequest> {
    Ok(ListRequest {
        r#type: type_ref(rt),
        namespace: namespace(rt, t, true)?,
        label_selector: q.str("labelSelector").to_string(),
        field_selector: q.str("fieldSelector").to_string(),
        limit: q.int("limit")?.unwrap_or(0).max(0),
        continue_token: q.str("continue").to_string(),
    })
}

pub async fn list(
    rest: &Rest,
    user: &UserInfo,
    rt: &ResourceType,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
) -> Result<Response> {
    let req = list_request(rt, t, q)?;
    let rv = q.str("resourceVersion");
    let list = match (q.str("resourceVersionMatch"), rv) {
        ("", _) | ("NotOlderThan", _) => rest.api.list(user, &req).await?,
        ("Exact", "" | "0") => {
            return Err(Error::BadRequest(
                "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into(),
            ))
        }
        ("Exact", v) => {
            let rv = v.parse().map_err(|_| {
                Error::BadRequest(format!(
                    "resourceVersion: Invalid value: {v:?}: must be an integer"
                ))
            })?;
            rest.api.list_exact(user, &req, rv).await?
        }
        (other, _) => {
            return Err(Error::BadRequest(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            )))
        }
    };
    if wants_table(h) {
        let include = super::table::Include::parse(q.str("includeObject"))?;
        let items: Vec<bytes::Bytes> = list.items.iter().map(|o| o.json.clone()).collect();
        let table = super::table::of_stored(
            &rest.api,
            rt,
            &items,
            &list.resource_version,
            &list.continue_token,
            include,
        )?;
        return Ok(super::status::json_response(StatusCode::OK, &table));
    }
    Ok(json_bytes(StatusCode::OK, list_json(rt, &list)))
}

/// `{"kind":"PodList",…,"items":[…]}`, written from the stored JSON without decoding it.
pub fn list_json(rt: &ResourceType, l: &ListResponse) -> Vec<u8> {
    let size: usize = l.items.iter().map(|o| o.json.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 256);
    let mut meta = serde_json::json!({"resourceVersion": l.resource_version});
    if !l.continue_token.is_empty() {
        meta["continue"] = l.continue_token.clone().into();
        if l.remaining_item_count > 0 {
            meta["remainingItemCount"] = l.remaining_item_count.into();
        }
    }
    let head =
        serde_json::json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version()});
    let head = serde_json::to_string(&head).unwrap_or_default();
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"metadata\":");
    out.extend_from_slice(&serde_json::to_vec(&meta).unwrap_or_default());
    out.extend_from_slice(b",\"items\":[");
    for (i, o) in l.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&o.json);
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_proto::api::Object;

    #[test]
    fn list_json_is_valid_and_items_never_null() {
        let reg = crate::registry::Registry::with_builtins();
        let rt = reg.get("v1", "Pod").unwrap();
        let empty = ListResponse {
            resource_version: "7".into(),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_slice(&list_json(&rt, &empty)).unwrap();
        assert_eq!(v["items"], serde_json::json!([]));
        assert_eq!(v["kind"], "PodList");
        assert_eq!(v["metadata"]["resourceVersion"], "7");
        let two = ListResponse {
            resource_version: "9".into(),
            continue_token: "abc".into(),
            remaining_item_count: 3,
            items: vec![
                Object {
                    json: br#"{"metadata":{"name":"a"}}"#.to_vec().into(),
                    ..Default::default()
                },
                Object {
                    json: br#"{"metadata":{"name":"b"}}"#.to_vec().into(),
                    ..Default::default()
                },
            ],
        };
        let v: serde_json::Value = serde_json::from_slice(&list_json(&rt, &two)).unwrap();
        assert_eq!(v["items"][1]["metadata"]["name"], "b");
        assert_eq!(v["metadata"]["continue"], "abc");
        assert_eq!(v["metadata"]["remainingItemCount"], 3);
    }
}
