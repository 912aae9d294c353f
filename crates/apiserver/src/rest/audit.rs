//! The audit log of REST requests, as kube-apiserver keeps it: RequestReceived once the
//! caller is authenticated, the request body at level Request, the response body at
//! RequestResponse, and for long-running requests (watches, logs, exec, attach,
//! port-forward) ResponseStarted when the answer begins and ResponseComplete when it ends.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;

use super::path::{self, Path};
use super::query::Query;
use super::status::Failure;
use super::{header, Rest};
use crate::audit::event::{MicroTime, ResponseStatus};
use crate::audit::request as audited;
use crate::audit::{Hold, ObjectRef, Recorder, RequestInfo};
use crate::auth::UserInfo;
use crate::error::Result;
use crate::grpc::resources::AUDIT_ID_HEADER;

/// Who sent a request, and whom it acts as.
pub(super) struct Caller {
    /// Who sent it, before impersonation; None when authentication failed.
    pub requester: Option<UserInfo>,
    /// Whom it acts as: the requester, or whom it impersonates.
    pub user: Result<UserInfo>,
    pub impersonating: bool,
}

/// A REST request being audited.
pub(super) struct Audit {
    recorder: Recorder,
    long_running: bool,
    hold: Hold,
    verb: String,
}

/// The audit record of `req`, its RequestReceived stage recorded; None when auditing is
/// off or the policy's level for it is None.
pub(super) fn begin(rest: &Rest, req: &Request, caller: &Caller) -> Option<Audit> {
    let auditor = rest.api.audit.as_ref()?;
    let received = MicroTime::now();
    let q = Query::parse(req.uri().query());
    let (verb, object_ref, long_running) = match path::parse(req.uri().path()) {
        Some(Path::Target(t)) => {
            let verb = super::verb_of(req.method(), &t, &q).to_string();
            let long_running = verb == "watch"
                || matches!(
                    t.subresource.as_str(),
                    "log" | "exec" | "attach" | "portforward" | "proxy"
                );
            let o = ObjectRef {
                resource: t.resource,
                namespace: t.namespace,
                name: t.name,
                api_group: t.group,
                api_version: t.version,
                subresource: t.subresource,
            };
            (verb, Some(o), long_running)
        }
        _ => (non_resource_verb(req.method()), None, false),
    };
    let info = RequestInfo {
        audit_id: audited::audit_id(Some(&header(req.headers(), AUDIT_ID_HEADER))),
        request_uri: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_string(), |p| p.to_string()),
        verb: verb.clone(),
        user: caller.requester.clone(),
        impersonated: caller
            .impersonating
            .then(|| caller.user.as_ref().ok().cloned())
            .flatten(),
        source_ips: audited::source_ips(Some(&header(req.headers(), "x-forwarded-for")), peer(req)),
        user_agent: header(req.headers(), "user-agent"),
        object_ref,
        received,
    };
    let mut recorder = auditor.begin(info)?;
    recorder.received();
    let hold = Hold::default();
    Some(Audit {
        recorder,
        long_running,
        hold,
        verb,
    })
}

/// Kubernetes' verb of a request outside the resource paths.
fn non_resource_verb(m: &Method) -> String {
    match *m {
        Method::HEAD => "head".into(),
        ref m => m.as_str().to_lowercase(),
    }
}

/// The peer's address, from the connection info the server put on the request.
fn peer(req: &Request) -> Option<std::net::IpAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let ext = req.extensions();
    let addr = ext
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.get_ref().remote_addr())
        .or_else(|| ext.get::<TcpConnectInfo>().and_then(|i| i.remote_addr()));
    addr.map(|a| a.ip())
}

impl Audit {
    /// Records the body of a write when the level carries it: reads it (up to the
    /// server's limit) and gives back a request with the same body.
    pub async fn request_body(&mut self, rest: &Rest, req: Request) -> Result<Request> {
        let writes = matches!(self.verb.as_str(), "create" | "update" | "patch");
        if !writes || !self.recorder.wants_request_object() || self.long_running {
            return Ok(req);
        }
        let (parts, bytes) = super::read_body_parts(rest, req).await?;
        let ct = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let object = super::body::decode_any(ct, &bytes).ok().map(|(v, _)| v);
        self.recorder.set_request_object(|| object);
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }

    /// Lets an upgraded session keep the record open until it ends.
    pub fn hold_in(&self, req: &mut Request) {
        if self.long_running {
            req.extensions_mut().insert(self.hold.clone());
        }
    }

    /// Records how `resp` answered (ResponseComplete now, or ResponseStarted now and
    /// ResponseComplete when a long-running response ends) and names the audit ID on it.
    pub async fn finish(self, resp: Response) -> Response {
        let Audit {
            recorder,
            long_running,
            hold,
            ..
        } = self;
        let mut resp = resp;
        if let Ok(v) = HeaderValue::from_str(recorder.audit_id()) {
            resp.headers_mut().insert(AUDIT_ID_HEADER, v);
        }
        let status = response_status(&resp);
        if long_running && status.status.is_none() {
            hold.keep(recorder.started(status));
            if resp.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
                // The upgraded session holds the record; the answer has no body.
                return resp;
            }
            let (parts, body) = resp.into_parts();
            // The body keeps the record open until it is done or dropped.
            let stream = body.into_data_stream().map(move |chunk| {
                let _ = &hold;
                chunk
            });
            return Response::from_parts(parts, Body::from_stream(stream));
        }
        if !recorder.wants_response_object() || status.status.is_some() {
            recorder.complete(status, || None);
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            recorder.complete(status, || None);
            return Response::from_parts(parts, Body::empty());
        };
        recorder.complete(status, || serde_json::from_slice::<Value>(&bytes).ok());
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// The outcome of `resp` as a Status: a failure carries the reason and message the REST
/// API answered with.
fn response_status(resp: &Response) -> ResponseStatus {
    let code = resp.status().as_u16();
    if code < 400 {
        return ResponseStatus::success(code);
    }
    match resp.extensions().get::<Failure>() {
        Some(f) => ResponseStatus::failed(code, f.reason.clone(), f.message.clone()),
        None => ResponseStatus::failed(code, String::new(), String::new()),
    }
}
