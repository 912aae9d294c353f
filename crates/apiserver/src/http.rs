//! The HTTP endpoints beside the gRPC API on the API port: `/healthz`, `/livez`,
//! `/readyz` (open), `/cacerts` (the public cluster CA, for joining nodes), `/metrics` and
//! the OpenAPI documents under `/openapi/` (authenticated and authorized).

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;

use crate::auth::UserInfo;
use crate::handler::Api;
use crate::server::BOOTSTRAP_NAMESPACES;
use crate::tokens::Tokens;

/// Whether an HTTP request for `get path` carries credentials the chain accepts (anonymous
/// counts only when `--anonymous-auth` allows it) of a user allowed to read it.
async fn authorized(
    api: &Api,
    req: axum::extract::Request,
    path: &str,
) -> Result<(), (axum::http::StatusCode, String)> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let cert_subject = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.peer_certs())
        .and_then(|c| pki::subject_of(&c));
    let (parts, _) = req.into_parts();
    let metadata = tonic::metadata::MetadataMap::from_headers(parts.headers);
    let creds = crate::auth::Credentials {
        metadata: &metadata,
        cert_subject,
    };
    let unauthorized = |why: &str| {
        Err((
            axum::http::StatusCode::UNAUTHORIZED,
            format!("{path} needs a client certificate or a bearer token: {why}\n"),
        ))
    };
    let user = match api.authn.authenticate(&creds).await {
        Ok(user) if user.name != UserInfo::anonymous().name || api.authn.allow_anonymous => user,
        Ok(_) => return unauthorized("anonymous requests are off"),
        Err(e) => return unauthorized(&e.to_string()),
    };
    api.authz
        .authorize_path(&user, path, "get")
        .map_err(|e| (axum::http::StatusCode::FORBIDDEN, format!("{e}\n")))
}

/// `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<api path>`, readable by every
/// authenticated user through `system:discovery`, as in Kubernetes.
fn openapi_routes(api: Arc<Api>) -> axum::Router {
    let openapi = Arc::new(crate::openapi::OpenApi::new());
    let handler = move |req: axum::extract::Request| {
        let api = api.clone();
        let openapi = openapi.clone();
        async move {
            let path = req.uri().path().to_string();
            let query = req.uri().query().map(str::to_string);
            let headers = req.headers().clone();
            authorized(&api, req, &path).await?;
            // Building the documents after the registry changed takes a while: off the
            // async workers.
            let answer = tokio::task::spawn_blocking(move || {
                let registry = &api.registry;
                match path.strip_prefix("/openapi/v3") {
                    Some("" | "/") => openapi.serve_v3_index(registry, &headers),
                    Some(gv) => openapi.serve_v3(registry, gv, query.as_deref(), &headers),
                    None => openapi.serve_v2(registry, &headers),
                }
            });
            answer.await.map_err(|e| {
                let msg = format!("building the OpenAPI document failed: {e}\n");
                (axum::http::StatusCode::INTERNAL_SERVER_ERROR, msg)
            })
        }
    };
    axum::Router::new()
        .route("/openapi/v2", get(handler.clone()))
        .route("/openapi/v3", get(handler.clone()))
        .route("/openapi/v3/{*path}", get(handler))
}

pub(crate) fn routes(api: Arc<Api>, tokens: Arc<Tokens>, ca_pem: Option<String>) -> axum::Router {
    let openapi = openapi_routes(api.clone());
    let ready_api = api.clone();
    let live_api = api.clone();
    let healthz = move || {
        let api = live_api.clone();
        async move {
            if api.store.is_running() {
                (axum::http::StatusCode::OK, "ok".to_string())
            } else {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "raft stopped on a fatal error\n".to_string(),
                )
            }
        }
    };
    // The CA is public: a joining node fetches it and checks it against its token's pin.
    let cacerts = move || {
        let ca = ca_pem.clone();
        async move {
            ca.map(|pem| ([("content-type", "application/x-pem-file")], pem))
                .ok_or((axum::http::StatusCode::NOT_FOUND, "no cluster CA\n"))
        }
    };
    axum::Router::new()
        .route("/cacerts", get(cacerts))
        .route("/healthz", get(healthz.clone()))
        .route("/livez", get(healthz))
        .route(
            "/readyz",
            get(move || {
                let api = ready_api.clone();
                let tokens = tokens.clone();
                async move { readyz(&api, &tokens).await }
            }),
        )
        .route(
            "/metrics",
            get(move |req: axum::extract::Request| {
                let api = api.clone();
                async move {
                    authorized(&api, req, "/metrics").await?;
                    let m = &api.metrics;
                    m.cached_objects.set(api.cache.len() as i64);
                    m.revision.set(api.cache.revision());
                    m.is_leader.set(api.store.is_leader() as i64);
                    m.raft_term.set(api.store.term() as i64);
                    Ok::<_, (axum::http::StatusCode, String)>((
                        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        m.encode(),
                    ))
                }
            }),
        )
        .merge(openapi)
}

/// Ready when a consistent read succeeds (a leader is known, a quorum confirms it, and
/// this member's watch cache has caught up), the bootstrap namespaces exist and the
/// service-account signing key is loaded.
/// What bootstrap RBAC object this member still lacks, until it has had them all once
/// (deleting one later does not make the member unready; the next start restores it).
fn policy_pending(api: &Api) -> Option<String> {
    use std::sync::atomic::Ordering;
    if api.rbac.is_none() || api.policy_ready.load(Ordering::Relaxed) {
        return None;
    }
    let missing = crate::rbac::policy::first_missing(&api.cache);
    if missing.is_none() {
        api.policy_ready.store(true, Ordering::Relaxed);
    }
    missing
}

async fn readyz(api: &Api, tokens: &Tokens) -> (axum::http::StatusCode, String) {
    let r = tokio::time::timeout(Duration::from_secs(2), api.cache.wait_fresh(&api.store)).await;
    match r {
        Ok(Ok(rev)) => {
            let missing: Vec<&str> = BOOTSTRAP_NAMESPACES
                .iter()
                .copied()
                .filter(|ns| {
                    api.cache
                        .get(&format!("/registry/core/namespaces/{ns}"))
                        .is_none()
                })
                .collect();
            let policy = policy_pending(api);
            if !tokens.is_ready() {
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the service-account signing key is not loaded\n".into(),
                )
            } else if let Some(what) = policy {
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: bootstrap RBAC policy not reconciled: {what}\n"),
                )
            } else if missing.is_empty() {
                (axum::http::StatusCode::OK, format!("ok (revision {rev})\n"))
            } else {
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "not ready: bootstrap namespaces missing: {}\n",
                        missing.join(", ")
                    ),
                )
            }
        }
        Ok(Err(e)) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {e}\n"),
        ),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not ready: timed out\n".into(),
        ),
    }
}
