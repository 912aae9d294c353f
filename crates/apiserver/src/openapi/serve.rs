//! Answering the OpenAPI endpoints as kube-apiserver does: the v2 format chosen by `Accept`,
//! an ETag on every document (`If-None-Match` answers 304), and for v3 documents the `hash`
//! of their URL: a current hash makes the answer cacheable for good, a stale one redirects to
//! the current URL.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Encoded, OpenApi};
use crate::registry::Registry;

/// The v2 protobuf media type as answered. Clients ask with `@v1.0`, which Go's MIME
/// parser rejects in a Content-Type, so the answer spells it with a dot.
pub(super) const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
const V2_PROTOBUF_ASKED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const JSON: &str = "application/json";
/// A year: what "never changes" means to an HTTP cache.
const IMMUTABLE: &str = "public, immutable, max-age=31536000";

/// A format an `Accept` header may choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Protobuf,
}

/// The first format `accept` ranks highest among `offered`, or `None` when it names none
/// of them. No `Accept` at all takes the first one offered.
pub(super) fn negotiate(accept: Option<&str>, offered: &[Format]) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return offered.first().copied();
    };
    let mut clauses: Vec<(f32, Format)> = Vec::new();
    for clause in accept.split(',') {
        let mut parts = clause.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let format = match media.as_str() {
            V2_PROTOBUF | V2_PROTOBUF_ASKED => Format::Protobuf,
            JSON | "application/*" | "*/*" => Format::Json,
            _ => continue,
        };
        if q > 0.0 && offered.contains(&format) {
            clauses.push((q, format));
        }
    }
    // Stable: among equal weights the one listed first wins.
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0));
    clauses.first().map(|c| c.1)
}

fn not_acceptable(what: &str) -> Response {
    let msg = format!("{what} is served as {JSON} only\n");
    (StatusCode::NOT_ACCEPTABLE, msg).into_response()
}

/// A document, or 304 when the client holds this version of it.
fn answer(headers: &HeaderMap, doc: &Encoded, content_type: &str, vary: bool) -> Response {
    let etag = format!("\"{}\"", doc.hash);
    let held = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut response = if held {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        doc.body.clone().into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if vary {
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    response
}

fn accept(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
}

impl OpenApi {
    /// `GET /openapi/v2`: protobuf when asked for, JSON otherwise.
    pub fn serve_v2(&self, registry: &Registry, headers: &HeaderMap) -> Response {
        let snapshot = self.snapshot(registry);
        let v2 = snapshot.v2();
        let offered = [Format::Json, Format::Protobuf];
        match negotiate(accept(headers), &offered) {
            Some(Format::Protobuf) => answer(headers, &v2.protobuf, V2_PROTOBUF, true),
            _ => answer(headers, &v2.json, JSON, true),
        }
    }

    /// `GET /openapi/v3`.
    pub fn serve_v3_index(&self, registry: &Registry, headers: &HeaderMap) -> Response {
        if negotiate(accept(headers), &[Format::Json]).is_none() {
            return not_acceptable("/openapi/v3");
        }
        answer(headers, &self.snapshot(registry).v3().index, JSON, false)
    }

    /// `GET /openapi/v3/<path>?hash=<hash>`.
    pub fn serve_v3(
        &self,
        registry: &Registry,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        let path = path.trim_matches('/');
        let snapshot = self.snapshot(registry);
        let Some(doc) = snapshot.v3().documents.get(path) else {
            let msg = format!("no OpenAPI v3 document at /openapi/v3/{path}\n");
            return (StatusCode::NOT_FOUND, msg).into_response();
        };
        if negotiate(accept(headers), &[Format::Json]).is_none() {
            return not_acceptable(&format!("/openapi/v3/{path}"));
        }
        let asked = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("hash="));
        match asked {
            Some(hash) if hash != doc.hash => {
                let current = format!("/openapi/v3/{path}?hash={}", doc.hash);
                let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
                if let Ok(v) = HeaderValue::from_str(&current) {
                    response.headers_mut().insert(header::LOCATION, v);
                }
                response
            }
            Some(_) => {
                let mut response = answer(headers, doc, JSON, true);
                let h = response.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
                response
            }
            None => answer(headers, doc, JSON, true),
        }
    }
}
