//! WATCH over HTTP: newline-delimited `{"type":…,"object":…}` events, each sent as it
//! happens, until `timeoutSeconds`. A version too old for the watch cache is an ERROR
//! event holding a 410 Status, as client-go expects, so it lists again.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rkube_proto::api::{WatchEvent, WatchEventType, WatchRequest};
use serde_json::{json, Value};

use super::path::Target;
use super::query::Query;
use super::read::{namespace, type_ref, wants_table};
use super::status::status_of;
use super::Rest;
use crate::auth::UserInfo;
use crate::error::{Error, Result};
use crate::registry::ResourceType;

/// How long a watch without `timeoutSeconds` stays open.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

fn line(v: &Value) -> bytes::Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

fn error_event(e: &Error) -> bytes::Bytes {
    line(&json!({"type": "ERROR", "object": status_of(e)}))
}

/// The error a failed watch stream carries, as an apiserver error.
fn from_status(s: &tonic::Status) -> Error {
    match s.code() {
        tonic::Code::OutOfRange => Error::Expired {
            requested: 0,
            oldest: 0,
        },
        tonic::Code::Unavailable => Error::Unavailable(s.message().to_string()),
        _ => Error::Internal(s.message().to_string()),
    }
}

fn event_line(
    rest: &Rest,
    rt: &ResourceType,
    table: bool,
    ev: std::result::Result<WatchEvent, tonic::Status>,
) -> (bytes::Bytes, bool) {
    let ev = match ev {
        Ok(ev) => ev,
        Err(s) => {
            let mut st = status_of(&from_status(&s));
            st["message"] = s.message().into();
            return (line(&json!({"type": "ERROR", "object": st})), true);
        }
    };
    let (kind, ty) = (ev.r#type(), type_name(ev.r#type()));
    let json = ev.object.map(|o| o.json).unwrap_or_default();
    if table && kind != WatchEventType::Bookmark {
        let obj: Value = serde_json::from_slice(&json).unwrap_or_default();
        let rv = crate::object::resource_version(&obj).to_string();
        let t = super::table::of(
            &rest.api,
            rt,
            vec![obj],
            &rv,
            "",
            super::table::Include::Object,
        );
        return match t {
            Ok(t) => (line(&json!({"type": ty, "object": t})), false),
            Err(e) => (error_event(&e), true),
        };
    }
    // The stored JSON goes out as it is, without decoding it.
    let mut b = Vec::with_capacity(json.len() + 40);
    b.extend_from_slice(b"{\"type\":");
    b.extend_from_slice(&serde_json::to_vec(ty).unwrap_or_default());
    b.extend_from_slice(b",\"object\":");
    b.extend_from_slice(&json);
    b.extend_from_slice(b"}\n");
    (b.into(), false)
}

pub async fn watch(
    rest: &Rest,
    user: UserInfo,
    rt: Arc<ResourceType>,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
) -> Result<Response> {
    let req = WatchRequest {
        r#type: type_ref(&rt),
        namespace: namespace(&rt, t, true)?,
        label_selector: q.str("labelSelector").to_string(),
        field_selector: q.str("fieldSelector").to_string(),
        resource_version: q.str("resourceVersion").to_string(),
        allow_bookmarks: q.flag("allowWatchBookmarks")?,
    };
    let timeout = match q.int("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => DEFAULT_TIMEOUT,
    };
    let table = wants_table(h);
    let content_type = "application/json";
    let stream = match rest.api.watch(&user, &req, rest.bookmark_interval).await {
        Ok(s) => s,
        Err(e @ Error::Expired { .. }) => {
            return Ok((
                StatusCode::OK,
                [("content-type", content_type)],
                error_event(&e),
            )
                .into_response())
        }
        Err(e) => return Err(e),
    };
    let rest = rest.clone();
    let deadline = tokio::time::sleep(timeout);
    let lines = stream.take_until(deadline).scan(false, move |done, ev| {
        if *done {
            return futures::future::ready(None);
        }
        let (b, last) = event_line(&rest, &rt, table, ev);
        *done = last;
        futures::future::ready(Some(Ok::<_, std::convert::Infallible>(b)))
    });
    let body = axum::body::Body::from_stream(lines);
    Ok((
        StatusCode::OK,
        [
            ("content-type", content_type),
            ("cache-control", "no-cache, private"),
        ],
        body,
    )
        .into_response())
}

/// Kubernetes' name of a watch event type.
fn type_name(t: WatchEventType) -> &'static str {
    match t {
        WatchEventType::Added => "ADDED",
        WatchEventType::Modified => "MODIFIED",
        WatchEventType::Deleted => "DELETED",
        WatchEventType::Bookmark => "BOOKMARK",
        WatchEventType::Unspecified => "ERROR",
    }
}
