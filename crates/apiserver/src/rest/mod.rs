//! The Kubernetes REST API: what kubectl, client-go, the Python client and Helm speak. It
//! shares the API port with gRPC (requests with `content-type: application/grpc` go to
//! gRPC, everything else comes here) and calls the same handlers, so authentication,
//! authorization, admission, validation and storage exist once.

mod audit;
mod body;
mod discovery;
mod path;
mod query;
mod read;
mod status;
mod subresources;
mod table;
mod watch;
mod write;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::{Credentials, UserInfo};
use crate::error::{Error, Result};
use crate::handler::Api;
use crate::registry::ResourceType;
use path::{Path, Target};
use query::Query;

pub use status::{error_response, status_of};

/// What the REST API needs beside the handlers.
#[derive(Clone)]
pub struct Rest {
    pub api: Arc<Api>,
    pub bookmark_interval: Duration,
    /// Largest request body read, in bytes.
    pub max_body: usize,
    /// `pods/log`, exec and tokens go through the same service as gRPC callers'.
    pub pods: crate::grpc::PodsService,
}

/// The version this server reports at `/version`.
pub fn version() -> serde_json::Value {
    let v = env!("CARGO_PKG_VERSION");
    json!({
        "major": "1", "minor": "33",
        "gitVersion": format!("v1.33.0-rkube.{v}"),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
        "goVersion": "", "compiler": "rustc", "platform": "linux/amd64",
    })
}

/// Whether a request belongs to gRPC.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/grpc"))
}

/// The API port's router: gRPC requests go to `grpc`; the rest to `http` (health,
/// metrics, OpenAPI) and, for every other path, to the REST API.
pub fn router(grpc: axum::Router, http: axum::Router, rest: Rest) -> axum::Router {
    use tower::ServiceExt;
    let rest = Arc::new(rest);
    let http = http.fallback(move |req: Request| {
        let rest = rest.clone();
        async move { serve(rest, req).await }
    });
    let split = tower::service_fn(move |req: Request| {
        let target = if is_grpc(req.headers()) {
            grpc.clone()
        } else {
            http.clone()
        };
        target.oneshot(req)
    });
    axum::Router::new().fallback_service(split)
}

#[allow(dead_code)]
fn assert_send(rest: Arc<Rest>, req: Request) {
    fn is_send<T: Send>(_: T) {}
    is_send(serve(rest, req));
}

/// Serves one REST request.
pub async fn serve(rest: Arc<Rest>, mut req: Request) -> Response {
    let start = Instant::now();
    let caller = authenticate(&rest.api, &req).await;
    let mut audit = audit::begin(&rest, &req, &caller);
    if let Some(a) = &mut audit {
        a.hold_in(&mut req);
    }
    let body = match &mut audit {
        Some(a) if caller.user.is_ok() => a.request_body(&rest, req).await,
        _ => Ok(req),
    };
    let (resp, labels) = match (caller.user, body) {
        (Err(e), _) | (_, Err(e)) => (error_response(&e), None),
        (Ok(user), Ok(req)) => {
            let (out, warnings) = crate::admission::collect_warnings(route(&rest, user, req)).await;
            let (mut resp, labels) = out;
            add_warnings(resp.headers_mut(), &warnings);
            (resp, labels)
        }
    };
    let resp = match audit {
        Some(a) => a.finish(resp).await,
        None => resp,
    };
    observe(&rest, start, &resp, labels);
    resp
}

/// Counts a REST request in `apiserver_request_total` and its duration.
fn observe(rest: &Rest, start: Instant, resp: &Response, labels: Option<RequestLabels>) {
    if let Some(l) = labels {
        let verb = match l.verb {
            "patch" if l.apply => "APPLY",
            _ if l.connect => "CONNECT",
            "create" => "POST",
            "update" => "PUT",
            v => v,
        };
        let labels = crate::metrics::RestDurationLabels {
            verb: verb.to_uppercase(),
            dry_run: if l.dry_run {
                "All".into()
            } else {
                String::new()
            },
            group: l.group,
            version: l.version,
            resource: l.resource,
            subresource: l.subresource,
            scope: l.scope.to_string(),
            component: "apiserver".into(),
        };
        rest.api.metrics.observe_rest(
            labels,
            resp.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
    }
}

/// Who sent the request: its client certificate or bearer token (or anonymous when that
/// is on), and whom it impersonates, if it may.
fn authenticate<'a>(
    api: &'a Api,
    req: &Request,
) -> impl std::future::Future<Output = audit::Caller> + Send + 'a {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let cert_subject = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.peer_certs())
        .and_then(|c| pki::subject_of(&c));
    let metadata = tonic::metadata::MetadataMap::from_headers(req.headers().clone());
    authenticate_with(api, metadata, cert_subject)
}

async fn authenticate_with(
    api: &Api,
    metadata: tonic::metadata::MetadataMap,
    cert_subject: Option<(String, Vec<String>)>,
) -> audit::Caller {
    let requester = api
        .authn
        .authenticate(&Credentials {
            metadata: &metadata,
            cert_subject,
        })
        .await
        .and_then(|user| {
            if user.name == UserInfo::anonymous().name && !api.authn.allow_anonymous {
                return Err(Error::Unauthorized(
                    "anonymous requests are off: send a client certificate or a bearer token"
                        .into(),
                ));
            }
            Ok(user)
        });
    let impersonating = metadata.contains_key(crate::rbac::impersonation::USER);
    audit::Caller {
        requester: requester.as_ref().ok().cloned(),
        user: requester
            .and_then(|user| crate::rbac::impersonation::apply(&api.authz, user, &metadata)),
        impersonating,
    }
}

/// The labels of `apiserver_request_total` known once the path is parsed.
pub struct RequestLabels {
    pub verb: &'static str,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: &'static str,
    pub dry_run: bool,
    /// A server-side apply (PATCH with application/apply-patch+yaml).
    pub apply: bool,
    /// exec, attach, portforward, proxy.
    pub connect: bool,
}

type Routed = (Response, Option<RequestLabels>);

async fn route(rest: &Rest, user: UserInfo, req: Request) -> Routed {
    let uri_path = req.uri().path().to_string();
    if uri_path == "/version" || uri_path == "/version/" {
        return (non_resource(rest, &user, &uri_path, || Ok(version())), None);
    }
    let Some(parsed) = path::parse(&uri_path) else {
        return (not_found(&uri_path), None);
    };
    let api = &rest.api;
    let accept = header(req.headers(), "accept");
    match parsed {
        Path::Target(t) => resource(rest, user, t, req).await,
        p => {
            if let Err(e) = api.cache.wait_fresh(&api.store).await {
                return (error_response(&e), None);
            }
            let reg = &api.registry;
            let agg = discovery::aggregated(&accept);
            let resp = match (p, agg) {
                (Path::LegacyVersions, Some(a)) => aggregated(rest, &user, &uri_path, true, a),
                (Path::Groups, Some(a)) => aggregated(rest, &user, &uri_path, false, a),
                (Path::LegacyVersions, None) => non_resource(rest, &user, &uri_path, || {
                    Ok(discovery::legacy_versions(&host(req.headers())))
                }),
                (Path::Groups, None) => {
                    non_resource(rest, &user, &uri_path, || Ok(discovery::group_list(reg)))
                }
                (Path::Group(g), _) => non_resource(rest, &user, &uri_path, || {
                    discovery::group(reg, &g).ok_or_else(|| not_served(&uri_path))
                }),
                (Path::Resources { group, version }, _) => {
                    non_resource(rest, &user, &uri_path, || {
                        discovery::resource_list(reg, &group, &version)
                            .ok_or_else(|| not_served(&uri_path))
                    })
                }
                // Targets were routed above.
                (Path::Target(_), _) => not_found(&uri_path),
            };
            (resp, None)
        }
    }
}

fn not_found(path: &str) -> Response {
    status::failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("the server could not find the requested resource ({path})"),
    )
}

fn not_served(path: &str) -> Error {
    Error::NotFound {
        resource: path.trim_start_matches('/').to_string(),
        name: String::new(),
    }
}

fn aggregated(
    rest: &Rest,
    user: &UserInfo,
    path: &str,
    legacy: bool,
    a: discovery::Aggregated,
) -> Response {
    if let Err(e) = rest.api.authz.authorize_path(user, path, "get") {
        return error_response(&e);
    }
    let doc = discovery::aggregated_list(&rest.api.registry, legacy, a);
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    (
        StatusCode::OK,
        [
            ("content-type", a.content_type()),
            ("vary", "Accept".to_string()),
        ],
        body,
    )
        .into_response()
}

/// A discovery or version document, for users allowed to read `path`.
fn non_resource(
    rest: &Rest,
    user: &UserInfo,
    path: &str,
    doc: impl FnOnce() -> Result<serde_json::Value>,
) -> Response {
    match rest
        .api
        .authz
        .authorize_path(user, path, "get")
        .and_then(|_| doc())
    {
        Ok(v) => status::json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

pub(crate) fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn host(h: &HeaderMap) -> String {
    let host = header(h, "host");
    if host.is_empty() {
        "127.0.0.1:6443".into()
    } else {
        host
    }
}

/// The served kind a target names, with its version checked.
async fn resolve(api: &Api, t: &Target) -> Result<Arc<ResourceType>> {
    let find = || {
        api.registry
            .by_resource(&t.group, &t.resource)
            .filter(|rt| rt.version == t.version)
    };
    if let Some(rt) = find() {
        return Ok(rt);
    }
    api.cache.wait_fresh(&api.store).await?;
    find().ok_or_else(|| Error::NotFound {
        resource: if t.group.is_empty() {
            t.resource.clone()
        } else {
            format!("{}.{}", t.resource, t.group)
        },
        name: t.name.clone(),
    })
}

async fn resource(rest: &Rest, user: UserInfo, t: Target, req: Request) -> Routed {
    let q = Query::parse(req.uri().query());
    let verb = verb_of(req.method(), &t, &q);
    let labels = RequestLabels {
        verb,
        group: t.group.clone(),
        version: t.version.clone(),
        resource: t.resource.clone(),
        subresource: t.subresource.clone(),
        scope: if !t.name.is_empty() {
            "resource"
        } else if !t.namespace.is_empty() {
            "namespace"
        } else {
            "cluster"
        },
        dry_run: q.str("dryRun") == "All",
        apply: header(req.headers(), "content-type").starts_with("application/apply-patch"),
        connect: matches!(
            t.subresource.as_str(),
            "exec" | "attach" | "portforward" | "proxy"
        ),
    };
    let resp = match dispatch(rest, user, &t, q, verb, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    (resp, Some(labels))
}

/// Kubernetes' verb of a request (as RBAC and the metrics name it).
fn verb_of(m: &Method, t: &Target, q: &Query) -> &'static str {
    let watch = q.flag("watch").unwrap_or(false);
    match *m {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if !t.name.is_empty() => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if t.name.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

async fn dispatch(
    rest: &Rest,
    user: UserInfo,
    t: &Target,
    q: Query,
    verb: &'static str,
    req: Request,
) -> Result<Response> {
    if t.group == "authentication.k8s.io" && t.resource == "selfsubjectreviews" {
        if verb != "create" {
            return Err(Error::BadRequest(format!(
                "selfsubjectreviews support only create, not {verb}"
            )));
        }
        return Ok(subresources::self_subject_review(&user, t));
    }
    let rt = resolve(&rest.api, t).await?;
    if !t.subresource.is_empty() {
        return subresources::serve(rest, user, &rt, t, q, verb, req).await;
    }
    match verb {
        "get" => read::get(rest, &user, &rt, t, req.headers()).await,
        "list" => read::list(rest, &user, &rt, t, &q, req.headers()).await,
        "watch" => watch::watch(rest, user, rt, t, &q, req.headers()).await,
        "create" => write::create(rest, &user, &rt, t, &q, req).await,
        "update" => write::update(rest, &user, &rt, t, &q, req, "").await,
        "patch" => write::patch(rest, &user, &rt, t, &q, req, false).await,
        "delete" => write::delete(rest, &user, &rt, t, &q, req).await,
        "deletecollection" => write::delete_collection(rest, &user, &rt, t, &q).await,
        _ => Err(Error::BadRequest(format!(
            "the method {} is not supported here",
            req.method()
        ))),
    }
}

/// Reads a request body, up to the limit.
async fn read_body(rest: &Rest, req: Request) -> Result<(HeaderMap, bytes::Bytes)> {
    let (parts, bytes) = read_body_parts(rest, req).await?;
    Ok((parts.headers, bytes))
}

async fn read_body_parts(
    rest: &Rest,
    req: Request,
) -> Result<(axum::http::request::Parts, bytes::Bytes)> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, rest.max_body)
        .await
        .map_err(|e| {
            Error::TooLarge(format!(
                "the request body is over {} bytes or could not be read: {e}",
                rest.max_body
            ))
        })?;
    Ok((parts, bytes))
}

fn add_warnings(h: &mut HeaderMap, warnings: &[String]) {
    let mut seen: Vec<&str> = Vec::new();
    for w in warnings {
        if seen.contains(&w.as_str()) {
            continue;
        }
        seen.push(w);
        let v = crate::grpc::resources::warning_value(w);
        if let Ok(v) = axum::http::HeaderValue::try_from(v) {
            h.append("warning", v);
        }
    }
}
