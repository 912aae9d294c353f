//! The node agent's own API, for the apiserver alone: pod logs (with follow, previous and
//! tail), exec, and the streaming calls of [`crate::streaming`] (interactive exec,
//! attach, port-forward). Over TLS (the default) a caller must present a client certificate from
//! the cluster CA naming the apiserver or an administrator; on a plaintext cluster every
//! call must carry a token the apiserver signed for node agents, checked against the
//! cluster's public key.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use k8s_openapi::jiff;
use parking_lot::Mutex;
use rkube_proto::api::node_agent_server::NodeAgent;
use rkube_proto::api::*;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::kubelet::Shared;
use crate::runtime::{ContainerStatus, State};

pub const NODE_AUDIENCE: &str = "rkube-node";
pub const APISERVER_USER: &str = "system:apiserver";

/// Checks the apiserver's tokens with the cluster's public keys (re-fetched, at most every
/// 10 s, when a token does not verify).
pub struct Verifier {
    shared: Arc<Shared>,
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
    pub fn new(shared: Arc<Shared>, tls: bool) -> Self {
        Verifier {
            shared,
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
        match self.shared.client.public_keys().await {
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

pub struct NodeAgentService {
    pub shared: Arc<Shared>,
    pub verifier: Arc<Verifier>,
}

impl NodeAgentService {
    /// The container `name` of pod `ns/pod` (the only one when `name` is empty): its
    /// current container, or the one before with `previous`.
    pub(crate) async fn container(
        &self,
        ns: &str,
        pod: &str,
        name: &str,
        previous: bool,
    ) -> Result<(ContainerStatus, PathBuf), Status> {
        let rt = &self.shared.runtime;
        let sb = rt
            .list_pod_sandboxes()
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .find(|s| s.config.namespace == ns && s.config.name == pod)
            .ok_or_else(|| {
                Status::not_found(format!("pod {ns}/{pod} is not running on this node"))
            })?;
        let mut cs = rt
            .list_containers(&sb.id)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut names: Vec<String> = cs.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        let name = match (name, names.as_slice()) {
            ("", [only]) => only.clone(),
            ("", _) => {
                return Err(Status::invalid_argument(format!(
                    "a container name must be specified for pod {pod}, choose one of: [{}]",
                    names.join(" ")
                )))
            }
            (n, _) => n.to_string(),
        };
        cs.retain(|c| c.name == name);
        cs.sort_by_key(|c| c.attempt);
        let cur = cs
            .last()
            .cloned()
            .ok_or_else(|| Status::not_found(format!("container {name:?} is not in pod {pod}")))?;
        if !previous {
            let path = cur.log_path.clone();
            return Ok((cur, path));
        }
        if cur.attempt == 0 {
            return Err(Status::invalid_argument(format!(
                "previous terminated container {name:?} in pod {pod:?} not found"
            )));
        }
        let path = sb
            .config
            .log_dir
            .join(&name)
            .join(format!("{}.log", cur.attempt - 1));
        let mut prev = cur;
        prev.state = State::Exited;
        Ok((prev, path))
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
        crate::streaming::session::open(self, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn port_forward(
        &self,
        req: Request<tonic::Streaming<PortForwardInput>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        self.verifier.verify(&req).await?;
        crate::streaming::port_forward::open(self, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<LogStream>, Status> {
        self.verifier.verify(&req).await?;
        let r = req.into_inner();
        let (c, path) = self
            .container(&r.namespace, &r.pod, &r.container, r.previous)
            .await?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Status::not_found(format!("logs of {}: {e}", c.name)))?;
        let since = (r.since_seconds > 0)
            .then(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                jiff::Timestamp::from_second(now - r.since_seconds).ok()
            })
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
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let _ = tx
            .send(Ok(LogChunk {
                data: lines.concat().into_bytes().into(),
            }))
            .await;
        let follow = r.follow && !r.previous;
        let (rt, id) = (self.shared.runtime.clone(), c.id.clone());
        let mut offset = text.len() as u64;
        tokio::spawn(async move {
            let mut partial = String::new();
            let mut quiet_after_exit = 0;
            if !follow {
                return;
            }
            loop {
                // Only an exit ends a follow: a status read that fails, or a container
                // not started yet, does not.
                let exited_now = rt
                    .container_status(&id)
                    .await
                    .is_ok_and(|s| s.state == State::Exited);
                let mut buf = String::new();
                if file.seek(SeekFrom::Start(offset)).await.is_ok() {
                    let _ = file.read_to_string(&mut buf).await;
                }
                offset += buf.len() as u64;
                partial.push_str(&buf);
                let complete = partial.rfind('\n').map_or(0, |i| i + 1);
                let out: String = partial[..complete]
                    .lines()
                    .filter_map(|l| render(l, r.timestamps, since))
                    .collect();
                partial.drain(..complete);
                if !out.is_empty()
                    && tx
                        .send(Ok(LogChunk {
                            data: out.into_bytes().into(),
                        }))
                        .await
                        .is_err()
                {
                    return;
                }
                if tx.is_closed() {
                    return;
                }
                // The container's last lines can reach its log file just after it exits:
                // stop once two reads in a row after its exit found nothing more.
                quiet_after_exit = if exited_now && buf.is_empty() {
                    quiet_after_exit + 1
                } else {
                    0
                };
                if quiet_after_exit >= 2 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        self.verifier.verify(&req).await?;
        let r = req.into_inner();
        let (c, _) = self
            .container(&r.namespace, &r.pod, &r.container, false)
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
            .shared
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
