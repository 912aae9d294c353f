//! The node agent's own API, for the apiserver alone: pod logs (with follow, previous and
//! tail), exec, and the streaming calls of [`crate::streaming`] (interactive exec,
//! attach, port-forward). Over TLS (the default) a caller must present a client certificate from
//! the cluster CA naming the apiserver or an administrator; on a plaintext cluster every
//! call must carry a token the apiserver signed for node agents, checked against the
//! cluster's public key.

use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use k8s_openapi::jiff;
use parking_lot::Mutex;
use rkube_proto::api::node_agent_server::NodeAgent;
use rkube_proto::api::*;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::{Request, Response, Status};

use crate::runtime::{Runtime, State};

pub const NODE_AUDIENCE: &str = "rkube-node";
pub const APISERVER_USER: &str = "system:apiserver";

/// Where the agent API gets the cluster's token-signing public keys: the control plane.
#[tonic::async_trait]
pub trait KeySource: Send + Sync + 'static {
    async fn public_keys(&self) -> client::Result<PublicKeysResponse>;
}

#[tonic::async_trait]
impl KeySource for client::Client {
    async fn public_keys(&self) -> client::Result<PublicKeysResponse> {
        client::Client::public_keys(self).await
    }
}

/// Checks the apiserver's tokens with the cluster's public keys (re-fetched, at most every
/// 10 s, when a token does not verify).
pub struct Verifier {
    source: Arc<dyn KeySource>,
    /// The agent API speaks TLS: callers are known by their client certificate.
    tls: bool,
    keys: Mutex<(Vec<DecodingKey>, String, Option<Instant>)>,
}

#[derive(serde::Deserialize)]
struct NodeClaims {
    #[allow(dead_code)]
    sub: String,
}

impl Verifier {
    pub fn new(source: Arc<dyn KeySource>, tls: bool) -> Self {
        Verifier {
            source,
            tls,
            keys: Mutex::new((Vec::new(), String::new(), None)),
        }
    }

    async fn refresh(&self) {
        let recent = self
            .keys
            .lock()
            .2
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10));
        if recent {
            return;
        }
        match self.source.public_keys().await {
            Ok(r) => {
                let keys = r
                    .pem
                    .iter()
                    .filter_map(|p| DecodingKey::from_ec_pem(p.as_bytes()).ok())
                    .collect();
                *self.keys.lock() = (keys, r.issuer, Some(Instant::now()));
            }
            Err(e) => tracing::warn!(error = %e, "fetching the cluster's public keys failed"),
        }
    }

    fn check(&self, token: &str) -> bool {
        let g = self.keys.lock();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[NODE_AUDIENCE]);
        v.set_issuer(&[g.1.as_str()]);
        v.sub = Some(APISERVER_USER.into());
        g.0.iter()
            .any(|k| jsonwebtoken::decode::<NodeClaims>(token, k, &v).is_ok())
    }

    pub async fn verify<T>(&self, req: &Request<T>) -> Result<(), Status> {
        if self.tls {
            return Self::verify_certificate(req);
        }
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("a bearer token is required"))?;
        if self.check(token) {
            return Ok(());
        }
        self.refresh().await;
        if self.check(token) {
            Ok(())
        } else {
            Err(Status::unauthenticated("the token is not the apiserver's"))
        }
    }
}

impl Verifier {
    /// The TLS layer verified the chain against the cluster CA; only the apiserver (or an
    /// administrator) may call.
    fn verify_certificate<T>(req: &Request<T>) -> Result<(), Status> {
        let id = req
            .peer_certs()
            .and_then(|c| pki::Identity::of(&c))
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        if id.user == APISERVER_USER || id.in_group(pki::MASTERS_GROUP) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{} may not call the node agent",
                id.user
            )))
        }
    }
}

/// The agent API: it needs only the container runtime, and a verifier for its callers.
pub struct NodeAgentService {
    pub(crate) runtime: Arc<dyn Runtime>,
    verifier: Verifier,
}

impl NodeAgentService {
    pub fn new(runtime: Arc<dyn Runtime>, verifier: Verifier) -> Self {
        NodeAgentService { runtime, verifier }
    }
}

/// A CRI log line as the user reads it: the text, with its time in front if asked.
/// The text of one CRI log line, if it was written at or after `since`.
fn render(line: &str, timestamps: bool, since: Option<jiff::Timestamp>) -> Option<String> {
    let mut f = line.splitn(4, ' ');
    let (ts, _stream, tag, text) = (f.next()?, f.next()?, f.next()?, f.next().unwrap_or(""));
    if let Some(since) = since {
        if ts.parse::<jiff::Timestamp>().is_ok_and(|t| t < since) {
            return None;
        }
    }
    let nl = if tag == "F" { "\n" } else { "" };
    Some(if timestamps {
        format!("{ts} {text}{nl}")
    } else {
        format!("{text}{nl}")
    })
}

type LogStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;

/// A followed log: what the container writes after the first read, until it exits. The
/// stream reads the file only while the caller reads the stream, so a caller that goes
/// away leaves nothing running.
struct Follow {
    runtime: Arc<dyn Runtime>,
    id: String,
    file: tokio::fs::File,
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: String,
    quiet_after_exit: u32,
    timestamps: bool,
    since: Option<jiff::Timestamp>,
}

impl Follow {
    /// The next complete lines, or `None` once the container exited and its log is read.
    async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            // Only an exit ends a follow: a status read that fails, or a container not
            // started yet, does not.
            let exited_now = self
                .runtime
                .container_status(&self.id)
                .await
                .is_ok_and(|s| s.state == State::Exited);
            let mut buf = String::new();
            if self.file.seek(SeekFrom::Start(self.offset)).await.is_ok() {
                let _ = self.file.read_to_string(&mut buf).await;
            }
            self.offset += buf.len() as u64;
            self.partial.push_str(&buf);
            let complete = self.partial.rfind('\n').map_or(0, |i| i + 1);
            let out: String = self.partial[..complete]
                .lines()
                .filter_map(|l| render(l, self.timestamps, self.since))
                .collect();
            self.partial.drain(..complete);
            // The container's last lines can reach its log file just after it exits: stop
            // once two reads in a row after its exit found nothing more.
            self.quiet_after_exit = match exited_now && buf.is_empty() {
                true => self.quiet_after_exit + 1,
                false => 0,
            };
            if !out.is_empty() {
                return Some(out.into_bytes());
            }
            if self.quiet_after_exit >= 2 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tonic::async_trait]
impl NodeAgent for NodeAgentService {
    type LogsStream = LogStream;
    type StreamStream = crate::streaming::session::OutputStream;
    type PortForwardStream = crate::streaming::port_forward::OutputStream;

    async fn stream(
        &self,
        req: Request<tonic::Streaming<StreamInput>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        self.verifier.verify(&req).await?;
        crate::streaming::session::open(&self.runtime, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn port_forward(
        &self,
        req: Request<tonic::Streaming<PortForwardInput>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        self.verifier.verify(&req).await?;
        crate::streaming::port_forward::open(&self.runtime, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<LogStream>, Status> {
        self.verifier.verify(&req).await?;
        let r = req.into_inner();
        let (c, path) = crate::streaming::container(
            self.runtime.as_ref(),
            &r.namespace,
            &r.pod,
            &r.container,
            r.previous,
        )
        .await?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Status::not_found(format!("logs of {}: {e}", c.name)))?;
        let since = (r.since_seconds > 0)
            .then(|| jiff::Timestamp::from_second(crate::host::now_secs() - r.since_seconds).ok())
            .flatten();
        let mut text = String::new();
        file.read_to_string(&mut text)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut lines: Vec<String> = text
            .lines()
            .filter_map(|l| render(l, r.timestamps, since))
            .collect();
        if r.tail_lines > 0 && lines.len() > r.tail_lines as usize {
            lines.drain(..lines.len() - r.tail_lines as usize);
        }
        let first = futures::stream::once(std::future::ready(Ok(LogChunk {
            data: lines.concat().into_bytes().into(),
        })));
        if !r.follow || r.previous {
            return Ok(Response::new(Box::pin(first)));
        }
        let follow = Follow {
            runtime: self.runtime.clone(),
            id: c.id.clone(),
            file,
            offset: text.len() as u64,
            partial: String::new(),
            quiet_after_exit: 0,
            timestamps: r.timestamps,
            since,
        };
        let rest = futures::stream::unfold(follow, |mut f| async move {
            let data = f.next().await?;
            Some((Ok(LogChunk { data: data.into() }), f))
        });
        Ok(Response::new(Box::pin(first.chain(rest))))
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        self.verifier.verify(&req).await?;
        let r = req.into_inner();
        let (c, _) = crate::streaming::container(
            self.runtime.as_ref(),
            &r.namespace,
            &r.pod,
            &r.container,
            false,
        )
        .await?;
        if c.state != State::Running {
            return Err(Status::failed_precondition(format!(
                "container {:?} is not running",
                c.name
            )));
        }
        if r.command.is_empty() {
            return Err(Status::invalid_argument("command: Required value"));
        }
        let timeout = Duration::from_secs(if r.timeout_seconds > 0 {
            r.timeout_seconds as u64
        } else {
            60
        });
        let out = self
            .runtime
            .exec_sync(&c.id, &r.command, timeout)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ExecResponse {
            exit_code: out.exit_code,
            stdout: out.stdout.into(),
            stderr: out.stderr.into(),
        }))
    }
}
