//! A stand-in for the cluster: pod `ns/p` (container `c`) whose commands are played by a
//! fake upstream, and whose ports are this host's. Also what kubectl reads before it
//! streams: discovery and the pod.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Request};
use axum::routing::{any, get, MethodRouter};
use bytes::Bytes;
use rkube_proto::api::port_forward_input::Input as PfInput;
use rkube_proto::api::stream_input::Input;
use rkube_proto::api::stream_output::Output;
use rkube_proto::api::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::Error;
use crate::streaming::upstream::{Outputs, Upstream};
use crate::streaming::{Purpose, Sessions};

pub struct Server {
    pub addr: SocketAddr,
    /// The `Upgrade` header of every streaming request, lowercase, in order.
    pub upgrades: Upgrades,
    task: tokio::task::JoinHandle<()>,
}

pub type Upgrades = Arc<parking_lot::Mutex<Vec<String>>>;

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct FakeSessions;

#[async_trait::async_trait]
impl Sessions for FakeSessions {
    async fn resolve(&self, _: &str, pod: &str, c: &str, _: Purpose) -> Result<String, Error> {
        if pod != "p" {
            return Err(Error::NotFound {
                resource: "pods".into(),
                name: pod.into(),
            });
        }
        match c {
            "" | "c" => Ok("c".into()),
            other => Err(Error::BadRequest(format!(
                "container {other} is not valid for pod {pod}"
            ))),
        }
    }

    async fn connect(&self, _: &str, _: &str) -> Result<Arc<dyn Upstream>, Error> {
        Ok(Arc::new(FakeUpstream))
    }
}

fn query(req: &Request) -> String {
    req.uri().query().unwrap_or_default().to_string()
}

impl Server {
    /// Serves [`router`] in plaintext.
    pub async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let upgrades = Upgrades::default();
        let router = router(upgrades.clone());
        let task = tokio::spawn(crate::streaming::serve_with_upgrades(incoming, router));
        Server {
            addr,
            upgrades,
            task,
        }
    }

    /// Serves [`router`] and `more` over TLS with `tls`.
    pub async fn start_tls(tls: Arc<pki::rustls::ServerConfig>, more: axum::Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = pki::tls_incoming(listener, tls);
        let upgrades = Upgrades::default();
        let router = more.merge(router(upgrades.clone()));
        let task = tokio::spawn(crate::streaming::serve_with_upgrades(incoming, router));
        Server {
            addr,
            upgrades,
            task,
        }
    }

    /// The transport of the last streaming request: `websocket` or `spdy/3.1`.
    pub fn last_upgrade(&self) -> String {
        self.upgrades.lock().last().cloned().unwrap_or_default()
    }
}

/// A streaming subresource: records the upgrade asked for, then serves `purpose`
/// (port-forward when `None`).
fn streaming(upgrades: Upgrades, purpose: Option<Purpose>) -> MethodRouter {
    any(
        move |Path((ns, pod)): Path<(String, String)>, req: Request| async move {
            let upgrade = req
                .headers()
                .get("upgrade")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            upgrades.lock().push(upgrade);
            let q = query(&req);
            match purpose {
                Some(p) => crate::streaming::remote_command(FakeSessions, p, ns, pod, q, req).await,
                None => crate::streaming::port_forward(FakeSessions, ns, pod, q, req).await,
            }
        },
    )
}

/// The streaming subresources of the fake's pods, and what kubectl reads before it
/// streams: discovery and the pod.
pub fn router(upgrades: Upgrades) -> axum::Router {
    let pods = "/api/v1/namespaces/{ns}/pods/{pod}";
    let up = || upgrades.clone();
    axum::Router::new()
        .route(
            &format!("{pods}/exec"),
            streaming(up(), Some(Purpose::Exec)),
        )
        .route(
            &format!("{pods}/attach"),
            streaming(up(), Some(Purpose::Attach)),
        )
        .route(&format!("{pods}/portforward"), streaming(up(), None))
        .route(
            pods,
            get(|Path((ns, pod)): Path<(String, String)>| async move {
                json_response(pod_json(&ns, &pod))
            }),
        )
        .route("/api", get(|| async { json_response(api_versions()) }))
        .route("/api/v1", get(|| async { json_response(core_resources()) }))
        .route(
            "/apis",
            get(|| async {
                json_response(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
            }),
        )
}

fn json_response(v: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::to_vec(&v).unwrap_or_default();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn pod_json(ns: &str, name: &str) -> serde_json::Value {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "uid": "0b5e3a8c-0000-4000-8000-000000000001"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "c", "ready": true, "restartCount": 0, "image": "busybox", "imageID": "",
             "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}
        ]}
    })
}

fn api_versions() -> serde_json::Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

fn core_resources() -> serde_json::Value {
    let verbs = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": verbs, "shortNames": ["po"]},
        {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
        {"name": "pods/portforward", "singularName": "", "namespaced": true, "kind": "PodPortForwardOptions", "verbs": ["create", "get"]}
    ]})
}

struct FakeUpstream;

fn out(o: Output) -> Result<StreamOutput, tonic::Status> {
    Ok(StreamOutput { output: Some(o) })
}

fn exit(code: i32) -> Output {
    Output::Exit(StreamExit {
        exit_code: code,
        error: String::new(),
    })
}

/// Attach says what it attached to. The fake's commands: `cat CODE` copies stdin to stdout until stdin ends, then exits
/// with CODE; `sizes` prints each terminal size until it reads `q`; `hello` prints a
/// line and exits 0; `tty` echoes lines until `exit`, then says whether it has a
/// terminal and its first size.
async fn play(
    open: StreamOpen,
    mut input: mpsc::Receiver<StreamInput>,
    tx: mpsc::Sender<Result<StreamOutput, tonic::Status>>,
) {
    let arg = |i: usize| open.command.get(i).cloned().unwrap_or_default();
    if open.kind() == StreamKind::Attach {
        let what = format!("attached to {} (stdin={})\n", open.container, open.stdin);
        let _ = tx.send(out(Output::Stdout(what.into()))).await;
        let _ = tx.send(out(exit(0))).await;
        return;
    }
    let code = match arg(0).as_str() {
        "cat" => {
            while let Some(m) = input.recv().await {
                match m.input {
                    Some(Input::Stdin(b)) => {
                        let _ = tx.send(out(Output::Stdout(b))).await;
                    }
                    Some(Input::CloseStdin(_)) => break,
                    _ => {}
                }
            }
            let _ = tx
                .send(out(Output::Stderr(Bytes::from_static(b"stdin closed\n"))))
                .await;
            arg(1).parse().unwrap_or(0)
        }
        "sizes" => {
            while let Some(m) = input.recv().await {
                match m.input {
                    Some(Input::Resize(s)) => {
                        let line = format!("{}x{}\n", s.width, s.height);
                        let _ = tx.send(out(Output::Stdout(line.into()))).await;
                    }
                    Some(Input::Stdin(b)) if b.contains(&b'q') => break,
                    _ => {}
                }
            }
            0
        }
        "hello" => {
            let _ = tx
                .send(out(Output::Stdout(Bytes::from_static(b"hello from c\n"))))
                .await;
            arg(1).parse().unwrap_or(0)
        }
        "tty" => tty(&open, &mut input, &tx).await,
        other => {
            let error = format!("no such command {other:?}");
            let _ = tx
                .send(out(Output::Exit(StreamExit {
                    exit_code: 0,
                    error,
                })))
                .await;
            return;
        }
    };
    let _ = tx.send(out(exit(code))).await;
}

async fn tty(
    open: &StreamOpen,
    input: &mut mpsc::Receiver<StreamInput>,
    tx: &mpsc::Sender<Result<StreamOutput, tonic::Status>>,
) -> i32 {
    let mut line = Vec::new();
    let mut size = None;
    let mut exiting = false;
    // Input and resizes travel apart (separate SPDY streams): on `exit`, wait for the
    // terminal's size if it has not come yet.
    while let Some(m) = input.recv().await {
        match m.input {
            Some(Input::Resize(s)) if size.is_none() => size = Some((s.width, s.height)),
            Some(Input::Stdin(b)) => {
                for c in b {
                    if c != b'\r' && c != b'\n' {
                        line.push(c);
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    exiting |= text == "exit";
                    if !exiting {
                        let msg = format!("echo:{text}\r\n");
                        let _ = tx.send(out(Output::Stdout(msg.into()))).await;
                    }
                }
            }
            _ => {}
        }
        if let (true, Some((w, h))) = (exiting, size) {
            let msg = format!("tty={} size={w}x{h}\r\n", open.tty);
            let _ = tx.send(out(Output::Stdout(msg.into()))).await;
            return 0;
        }
    }
    1
}

#[async_trait::async_trait]
impl Upstream for FakeUpstream {
    async fn stream(
        &self,
        mut input: mpsc::Receiver<StreamInput>,
    ) -> Result<Outputs<StreamOutput>, tonic::Status> {
        let Some(StreamInput {
            input: Some(Input::Open(open)),
        }) = input.recv().await
        else {
            return Err(tonic::Status::invalid_argument("no open message"));
        };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(play(open, input, tx));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn port_forward(
        &self,
        mut input: mpsc::Receiver<PortForwardInput>,
    ) -> Result<Outputs<PortForwardOutput>, tonic::Status> {
        let Some(PortForwardInput {
            input: Some(PfInput::Open(open)),
        }) = input.recv().await
        else {
            return Err(tonic::Status::invalid_argument("no open message"));
        };
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", open.port as u16))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let (mut rd, mut wr) = tcp.into_split();
        tokio::spawn(async move {
            while let Some(PortForwardInput {
                input: Some(PfInput::Data(d)),
            }) = input.recv().await
            {
                if wr.write_all(&d).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n @ 1..) = rd.read(&mut buf).await {
                let data = Bytes::copy_from_slice(&buf[..n]);
                if tx.send(Ok(PortForwardOutput { data })).await.is_err() {
                    return;
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

/// A server answering each connection with `echo: ` and what it read until end-of-file.
pub async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                let _ = s.write_all(&[b"echo: ".as_slice(), &got].concat()).await;
            });
        }
    });
    port
}

/// An HTTP server answering every request with `hello from the pod`.
pub async fn http_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "hello from the pod";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

/// A port nothing listens on (just released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
