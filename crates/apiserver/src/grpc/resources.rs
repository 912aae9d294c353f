//! The Resources service: authentication, then the handler, with metrics per verb, the
//! audit log, and admission warnings returned as `warning` metadata.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_proto::api::resources_server::Resources;
use rkube_proto::api::*;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

use crate::audit::event::{MicroTime, ResponseStatus};
use crate::audit::request::{self as audited, AuditTarget, AuditedResponse};
use crate::audit::{Completion, Recorder, RequestInfo};
use crate::auth::{Credentials, UserInfo};
use crate::error::Error;
use crate::handler::{Api, WatchStream};
use crate::patch::PatchKind;

/// The metadata key of admission warnings, as Kubernetes' `Warning` header.
pub const WARNING_HEADER: &str = "warning";
/// The metadata key of the audit ID, as Kubernetes' `Audit-ID` header.
pub const AUDIT_ID_HEADER: &str = "audit-id";

#[derive(Clone)]
pub struct ResourcesService {
    pub api: Arc<Api>,
    pub bookmark_interval: Duration,
}

/// A request being audited, with what its ResponseComplete needs after the request itself
/// went to the handler.
struct Audit {
    recorder: Recorder,
    verb: &'static str,
    kind: String,
    api_version: String,
}

impl ResourcesService {
    /// Serves one request: `rpc` is the gRPC method (`update_status`, `bind`, …).
    async fn run<T, R, F, Fut>(
        &self,
        rpc: &'static str,
        req: Request<T>,
        f: F,
    ) -> Result<Response<R>, Status>
    where
        T: AuditTarget,
        R: AuditedResponse,
        F: FnOnce(Arc<Api>, UserInfo, T) -> Fut,
        Fut: std::future::Future<Output = Result<R, Error>>,
    {
        let start = Instant::now();
        let received = MicroTime::now();
        let user = self.api.user(&req).await;
        let audit = self.begin_audit(rpc, &req, &user, received).await;
        let audit_id = audit.as_ref().map(|a| a.recorder.audit_id().to_string());
        let (res, warnings) = match user {
            Ok(user) => {
                let api = self.api.clone();
                crate::admission::collect_warnings(f(api, user, req.into_inner())).await
            }
            Err(e) => (Err(e), Vec::new()),
        };
        let code = res.as_ref().map_or_else(|e| e.code(), |_| tonic::Code::Ok);
        self.api
            .metrics
            .observe(rpc, code, start.elapsed().as_secs_f64());
        let res = match audit {
            Some(a) => finish_audit(a, res),
            None => res,
        };
        let mut md = MetadataMap::new();
        add_warnings(&mut md, &warnings);
        if let Some(v) = audit_id.and_then(|id| MetadataValue::try_from(id).ok()) {
            md.insert(AUDIT_ID_HEADER, v);
        }
        match res {
            Ok(r) => {
                let mut resp = Response::new(r);
                resp.metadata_mut().as_mut().extend(md.into_headers());
                Ok(resp)
            }
            Err(e) => {
                let mut status = Status::from(e);
                status.metadata_mut().as_mut().extend(md.into_headers());
                Err(status)
            }
        }
    }

    /// The audit record of `req`, its RequestReceived stage recorded; None when auditing
    /// is off or the policy's level for it is None.
    async fn begin_audit<T: AuditTarget>(
        &self,
        rpc: &'static str,
        req: &Request<T>,
        user: &crate::Result<UserInfo>,
        received: MicroTime,
    ) -> Option<Audit> {
        let auditor = self.api.audit.as_ref()?;
        // As in Kubernetes, the policy sees (and `user` records) who sent the request;
        // whom it impersonates goes to `impersonatedUser`.
        let impersonating = req
            .metadata()
            .contains_key(crate::rbac::impersonation::USER);
        let (requester, impersonated) = if impersonating {
            (self.requester(req).await, user.as_ref().ok().cloned())
        } else {
            (user.as_ref().ok().cloned(), None)
        };
        let target = req.get_ref().target(rpc);
        let verb = audited::verb(rpc);
        let object_ref = audited::object_ref(&self.api.registry, &target);
        let info = RequestInfo {
            audit_id: audited::audit_id(header(req.metadata(), AUDIT_ID_HEADER).as_deref()),
            request_uri: audited::request_uri(&object_ref, verb, &target.query),
            verb: verb.to_string(),
            user: requester,
            impersonated,
            source_ips: audited::source_ips(
                header(req.metadata(), "x-forwarded-for").as_deref(),
                req.remote_addr().map(|a| a.ip()),
            ),
            user_agent: header(req.metadata(), "user-agent").unwrap_or_default(),
            object_ref: Some(object_ref),
            received,
        };
        let mut recorder = auditor.begin(info)?;
        recorder.set_request_object(|| req.get_ref().request_object());
        recorder.received();
        Some(Audit {
            recorder,
            verb,
            kind: target.kind.to_string(),
            api_version: target.api_version.to_string(),
        })
    }

    /// Who sent `req`, before any impersonation.
    async fn requester<T>(&self, req: &Request<T>) -> Option<UserInfo> {
        let certs = req.peer_certs();
        let creds = Credentials {
            metadata: req.metadata(),
            cert_subject: certs.and_then(|c| pki::subject_of(&c)),
        };
        self.api.authn.authenticate(&creds).await.ok()
    }
}

/// Records ResponseComplete of `a` (for a watch, ResponseStarted now and ResponseComplete
/// when its stream ends).
fn finish_audit<R: AuditedResponse>(a: Audit, res: Result<R, Error>) -> Result<R, Error> {
    match res {
        Ok(r) => {
            let status = ResponseStatus::success(r.success_code(a.verb));
            if r.long_running() {
                return Ok(r.hold(a.recorder.started(status)));
            }
            a.recorder
                .complete(status, || r.response_object(&a.kind, &a.api_version));
            Ok(r)
        }
        Err(e) => {
            a.recorder.complete(ResponseStatus::failure(&e), || None);
            Err(e)
        }
    }
}

fn header(md: &MetadataMap, key: &str) -> Option<String> {
    md.get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Adds each distinct warning as a `warning` value.
fn add_warnings(md: &mut MetadataMap, warnings: &[String]) {
    let mut seen: Vec<&str> = Vec::new();
    for w in warnings {
        if seen.contains(&w.as_str()) {
            continue;
        }
        seen.push(w);
        if let Ok(v) = MetadataValue::try_from(warning_value(w)) {
            md.append(WARNING_HEADER, v);
        }
    }
}

/// `299 - "<text>"`, Kubernetes' Warning header value, with quotes and backslashes
/// escaped and everything outside printable ASCII written as `\uXXXX` (`\UXXXXXXXX`
/// beyond the Basic Multilingual Plane), so it is a valid metadata value.
pub fn warning_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str("299 - \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[tonic::async_trait]
impl Resources for ResourcesService {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<Object>, Status> {
        self.run("get", req, |api, u, r| async move { api.get(&u, &r).await })
            .await
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        self.run(
            "list",
            req,
            |api, u, r| async move { api.list(&u, &r).await },
        )
        .await
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let every = self.bookmark_interval;
        let metrics = self.api.metrics.clone();
        let resp = self
            .run("watch", req, |api, u, r| async move {
                api.watch(&u, &r, every).await
            })
            .await?;
        metrics.watches.inc();
        let stream = resp.into_inner();
        Ok(Response::new(Box::pin(Counted {
            inner: stream,
            metrics,
        })))
    }

    async fn create(&self, req: Request<CreateRequest>) -> Result<Response<Object>, Status> {
        self.run("create", req, |api, u, r| async move {
            let obj = r
                .object
                .ok_or_else(|| Error::BadRequest("object: Required value".into()))?;
            api.create(&u, &obj).await
        })
        .await
    }

    async fn update(&self, req: Request<UpdateRequest>) -> Result<Response<Object>, Status> {
        self.run("update", req, |api, u, r| async move {
            let obj = r
                .object
                .ok_or_else(|| Error::BadRequest("object: Required value".into()))?;
            api.update(&u, &obj, "").await
        })
        .await
    }

    async fn update_status(&self, req: Request<UpdateRequest>) -> Result<Response<Object>, Status> {
        self.run("update_status", req, |api, u, r| async move {
            let obj = r
                .object
                .ok_or_else(|| Error::BadRequest("object: Required value".into()))?;
            let sub = match r.subresource.as_str() {
                "" => "status",
                s => s,
            };
            api.update(&u, &obj, sub).await
        })
        .await
    }

    async fn patch(&self, req: Request<PatchRequest>) -> Result<Response<Object>, Status> {
        self.run("patch", req, |api, u, r| async move {
            let kind = match PatchType::try_from(r.patch_type) {
                Ok(PatchType::Merge) => PatchKind::Merge,
                Ok(PatchType::Strategic) => PatchKind::Strategic,
                Ok(PatchType::Json) => PatchKind::Json,
                _ => {
                    return Err(Error::BadRequest(
                        "patch_type: Required value: MERGE, STRATEGIC or JSON".into(),
                    ))
                }
            };
            api.patch(&u, &r, kind).await
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        self.run("delete", req, |api, u, r| async move {
            api.delete(&u, &r).await
        })
        .await
    }

    async fn bind(&self, req: Request<BindRequest>) -> Result<Response<Object>, Status> {
        self.run("bind", req, |api, u, r| async move {
            api.bind(&u, &r.namespace, &r.name, &r.node_name, &r.uid)
                .await
        })
        .await
    }
}

impl AuditedResponse for WatchStream {
    fn long_running(&self) -> bool {
        true
    }
    fn hold(self, done: Completion) -> Self {
        Box::pin(Held {
            inner: self,
            _done: done,
        })
    }
}

/// A watch stream that records the watch's ResponseComplete when it ends.
struct Held {
    inner: WatchStream,
    _done: Completion,
}

impl futures::Stream for Held {
    type Item = Result<WatchEvent, Status>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// A watch stream that keeps the open-watches gauge right.
struct Counted {
    inner: WatchStream,
    metrics: crate::metrics::Metrics,
}

impl futures::Stream for Counted {
    type Item = Result<WatchEvent, Status>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.watches.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_http_warning_values() {
        assert_eq!(
            warning_value(r#"spec.x is "deprecated" \ gone"#),
            r#"299 - "spec.x is \"deprecated\" \\ gone""#
        );
        assert_eq!(
            warning_value("café ☃\n😀"),
            r#"299 - "caf\u00e9 \u2603\u000a\U0001f600""#
        );
        let mut md = MetadataMap::new();
        let warnings = ["a".to_string(), "naïve".into(), "a".into()];
        add_warnings(&mut md, &warnings);
        let got: Vec<&str> = md
            .get_all(WARNING_HEADER)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(got, vec![r#"299 - "a""#, r#"299 - "na\u00efve""#]);
    }

    #[test]
    fn audit_ids_and_source_ips() {
        let audit_id = |md: &MetadataMap| audited::audit_id(header(md, AUDIT_ID_HEADER).as_deref());
        let source_ips = |req: &Request<()>| {
            let fwd = header(req.metadata(), "x-forwarded-for");
            audited::source_ips(fwd.as_deref(), req.remote_addr().map(|a| a.ip()))
        };
        let mut req = Request::new(());
        assert_eq!(audit_id(req.metadata()).len(), 36, "a UUID");
        req.metadata_mut()
            .insert(AUDIT_ID_HEADER, MetadataValue::from_static("abc"));
        req.metadata_mut().insert(
            "x-forwarded-for",
            MetadataValue::from_static("10.0.0.1, not-an-ip, 10.0.0.2"),
        );
        assert_eq!(audit_id(req.metadata()), "abc");
        assert_eq!(source_ips(&req), vec!["10.0.0.1", "10.0.0.2"]);
    }
}
