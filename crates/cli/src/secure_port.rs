//! A component's secure port, as kube-controller-manager's `--secure-port`: `/metrics`
//! and the health paths over HTTPS.
//!
//! - The serving certificate is the one given (`--tls-cert-file`), else a self-signed one,
//!   written to `--cert-dir` when set so that clients can trust it.
//! - Callers authenticate with a client certificate from the cluster CA. A connection
//!   without one is accepted, but only the health paths answer it.
//! - What a caller may read is decided by the apiserver: one SubjectAccessReview per user,
//!   groups and path, remembered for ten seconds, as Kubernetes' delegated authorizer does.
//! - `/healthz`, `/livez` and `/readyz` are open to anyone, as Kubernetes leaves them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use client::Client;
use futures::StreamExt;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use rkube_proto::api::{CreateRequest, Object, TypeRef};
use serde_json::json;
use tokio::task::JoinSet;

/// Paths anyone may read.
const OPEN_PATHS: &[&str] = &["/healthz", "/livez", "/readyz"];
/// How long an authorization answer is reused.
const DECISION_TTL: Duration = Duration::from_secs(10);

#[derive(clap::Args, Clone, Debug)]
pub struct SecurePortArgs {
    /// The HTTPS port of /metrics and the health paths (default: 10257 for the
    /// controller-manager, 10258 for the cloud-controller-manager); 0 turns it off.
    #[arg(long)]
    pub secure_port: Option<u16>,
    /// The address the secure port listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// The serving certificate (PEM); without it, a self-signed one is made.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Where a self-signed serving certificate is written (`<name>.crt`).
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
}

/// The port, bound, with what it serves.
pub struct SecurePort {
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    access: Arc<Access>,
}

impl SecurePort {
    /// Binds the port for component `name`; `None` when it is turned off. `ca_pem` is the
    /// cluster CA that client certificates must come from.
    pub async fn bind(
        args: &SecurePortArgs,
        port: u16,
        name: &str,
        ca_pem: &str,
        client: Client,
        registry: Registry,
    ) -> anyhow::Result<Option<SecurePort>> {
        if port == 0 {
            return Ok(None);
        }
        let addr = SocketAddr::new(args.bind_address, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--secure-port {port}"))?;
        let (cert, key) = serving_cert(args, name)?;
        let served = pki::ServedCert::new();
        served.set(&cert, &key).context("the serving certificate")?;
        let tls = served.server_config(ca_pem, pki::ClientAuth::Optional, &[b"http/1.1"])?;
        let access = Arc::new(Access {
            client,
            registry,
            decisions: Mutex::new(HashMap::new()),
        });
        Ok(Some(SecurePort {
            listener,
            tls,
            access,
        }))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers requests until the future is dropped, which ends every connection.
    pub async fn serve(self) {
        let mut incoming = pki::tls_incoming(self.listener, self.tls);
        let mut connections = JoinSet::new();
        while let Some(accepted) = incoming.next().await {
            while connections.try_join_next().is_some() {}
            let Ok(tls) = accepted else { continue };
            let who = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(pki::Identity::of);
            let access = self.access.clone();
            connections.spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let (access, who) = (access.clone(), who.clone());
                    async move { Ok::<_, std::convert::Infallible>(access.answer(req, who).await) }
                });
                let io = hyper_util::rt::TokioIo::new(tls);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await
                {
                    tracing::debug!(error = %e, "a secure-port connection failed");
                }
            });
        }
    }
}

/// The serving certificate and key, as PEM: the files given, else a new self-signed pair.
fn serving_cert(args: &SecurePortArgs, name: &str) -> anyhow::Result<(String, String)> {
    if let (Some(c), Some(k)) = (&args.tls_cert_file, &args.tls_private_key_file) {
        let cert = std::fs::read_to_string(c)
            .with_context(|| format!("--tls-cert-file {}", c.display()))?;
        let key = std::fs::read_to_string(k)
            .with_context(|| format!("--tls-private-key-file {}", k.display()))?;
        return Ok((cert, key));
    }
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !args.bind_address.is_unspecified() {
        names.push(args.bind_address.to_string());
    }
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .to_string();
    names.push(host);
    let made = rcgen::generate_simple_self_signed(names).context("a self-signed certificate")?;
    let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
    if let Some(dir) = &args.cert_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("--cert-dir {}", dir.display()))?;
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, &cert).with_context(|| format!("{}", path.display()))?;
    }
    Ok((cert, key))
}

/// A caller and a path: (user, groups, path).
type Question = (String, Vec<String>, String);

/// Who may read what, and the metrics they read.
struct Access {
    client: Client,
    registry: Registry,
    /// The answers, and when they were given.
    decisions: Mutex<HashMap<Question, (bool, Instant)>>,
}

type Body = Full<Bytes>;

fn reply(code: StatusCode, content_type: &str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

impl Access {
    async fn answer(
        &self,
        req: Request<hyper::body::Incoming>,
        who: Option<pki::Identity>,
    ) -> Response<Body> {
        let path = req.uri().path().to_string();
        if req.method() != hyper::Method::GET {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "only GET\n".into(),
            );
        }
        if !OPEN_PATHS.contains(&path.as_str()) {
            let Some(who) = who else {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    "text/plain",
                    "Unauthorized\n".into(),
                );
            };
            match self.allowed(&who, &path).await {
                Ok(true) => {}
                Ok(false) => {
                    let msg = format!("forbidden: User {:?} cannot get path {path:?}\n", who.user);
                    return reply(StatusCode::FORBIDDEN, "text/plain", msg);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "asking the apiserver whether a caller may read failed");
                    let msg = format!("authorization failed: {e}\n");
                    return reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", msg);
                }
            }
        }
        match path.as_str() {
            "/metrics" => {
                let mut out = String::new();
                match prometheus_client::encoding::text::encode(&mut out, &self.registry) {
                    Ok(()) => reply(
                        StatusCode::OK,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        out,
                    ),
                    Err(e) => reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        e.to_string(),
                    ),
                }
            }
            p if OPEN_PATHS.contains(&p) => reply(StatusCode::OK, "text/plain", "ok".into()),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "404 page not found\n".into(),
            ),
        }
    }

    /// Whether `who` may GET `path`: the apiserver's answer, reused for a while.
    async fn allowed(&self, who: &pki::Identity, path: &str) -> anyhow::Result<bool> {
        let key = (who.user.clone(), who.groups.clone(), path.to_string());
        if let Some((ok, at)) = self.decisions.lock().get(&key) {
            if at.elapsed() < DECISION_TTL {
                return Ok(*ok);
            }
        }
        let ok = subject_access_review(&self.client, who, path).await?;
        let mut decisions = self.decisions.lock();
        decisions.retain(|_, (_, at)| at.elapsed() < DECISION_TTL);
        decisions.insert(key, (ok, Instant::now()));
        Ok(ok)
    }
}

/// Asks the apiserver whether `who` may GET the non-resource `path`.
async fn subject_access_review(
    client: &Client,
    who: &pki::Identity,
    path: &str,
) -> anyhow::Result<bool> {
    let review = json!({
        "metadata": {},
        "spec": {
            "user": who.user,
            "groups": who.groups,
            "nonResourceAttributes": {"verb": "get", "path": path},
        },
    });
    let o = client
        .create(CreateRequest {
            object: Some(Object {
                r#type: Some(TypeRef {
                    api_version: "authorization.k8s.io/v1".into(),
                    kind: "SubjectAccessReview".into(),
                }),
                json: serde_json::to_vec(&review)?.into(),
                ..Default::default()
            }),
        })
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&o.json)?;
    Ok(v["status"]["allowed"].as_bool().unwrap_or(false))
}

/// The secure port of component `name` with its controllers' `metrics`, on `--secure-port`
/// or `default_port`; `None` when turned off, or when the client configuration names no
/// cluster CA to check callers against.
pub async fn start(
    args: &SecurePortArgs,
    default_port: u16,
    name: &str,
    client_args: &crate::connect::ClientArgs,
    client: &Client,
    metrics: &client::runtime::Metrics,
) -> anyhow::Result<Option<SecurePort>> {
    let port = args.secure_port.unwrap_or(default_port);
    let Some(ca_pem) = client_args.ca_pem()? else {
        if port != 0 {
            tracing::warn!("no cluster CA in the client configuration: --secure-port is off");
        }
        return Ok(None);
    };
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let bound = SecurePort::bind(args, port, name, &ca_pem, client.clone(), registry).await?;
    if let Some(p) = &bound {
        tracing::info!("secure port listening on {}", p.local_addr()?);
    }
    Ok(bound)
}
