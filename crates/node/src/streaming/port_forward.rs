//! One forwarded connection (`kubectl port-forward`): a TCP connection to a port on the
//! pod's loopback, made inside the pod's network namespace when it has one (the process
//! runtime's pods), on the node's loopback for host-network pods, and otherwise to the
//! pod's IP; then the bytes each way until both sides are done.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use rkube_proto::api::port_forward_input::Input;
use rkube_proto::api::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::status;
use crate::runtime::Sandbox;

pub(crate) type OutputStream = ReceiverStream<Result<PortForwardOutput, Status>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn open(
    rt: &std::sync::Arc<dyn crate::runtime::Runtime>,
    mut inbound: Streaming<PortForwardInput>,
) -> Result<OutputStream, Status> {
    let open = match inbound.message().await? {
        Some(PortForwardInput {
            input: Some(Input::Open(o)),
        }) => o,
        _ => {
            return Err(Status::invalid_argument(
                "the first message of a port-forward must be `open`",
            ))
        }
    };
    let port = u16::try_from(open.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "port {}: must be between 1 and 65535, inclusive",
                open.port
            ))
        })?;
    let sb = rt
        .list_pod_sandboxes()
        .await
        .map_err(status)?
        .into_iter()
        .find(|s| s.config.namespace == open.namespace && s.config.name == open.pod)
        .ok_or_else(|| {
            Status::not_found(format!(
                "pod {}/{} is not running on this node",
                open.namespace, open.pod
            ))
        })?;
    let tcp = dial(&sb, port).await.map_err(|e| {
        Status::unavailable(format!(
            "error forwarding port {port} to pod {}/{}: {e}",
            open.namespace, open.pod
        ))
    })?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(copy(tcp, inbound, tx));
    Ok(ReceiverStream::new(rx))
}

async fn dial(sb: &Sandbox, port: u16) -> std::io::Result<TcpStream> {
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    if let Some(ns) = &sb.netns {
        return dial_in_netns(crate::runtime::cni::netns_path(ns), loopback).await;
    }
    let addr = match sb.ip.parse::<IpAddr>() {
        Ok(ip) if !sb.config.host_network => SocketAddr::new(ip, port),
        _ => loopback,
    };
    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other(format!("connecting to {addr} timed out")))?
}

/// Connects from inside the network namespace at `netns`. A socket stays in the namespace
/// it was made in, so a thread of its own joins the namespace, connects and ends; no
/// pooled thread is ever moved.
async fn dial_in_netns(netns: PathBuf, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let r = (|| -> std::io::Result<std::net::TcpStream> {
            let f = std::fs::File::open(&netns)?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| std::io::Error::other(format!("joining {}: {e}", netns.display())))?;
            let s = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "connecting to {addr} inside network namespace {}: {e}",
                        netns.display()
                    ),
                )
            })?;
            s.set_nonblocking(true)?;
            Ok(s)
        })();
        let _ = tx.send(r);
    });
    let s = rx
        .await
        .map_err(|_| std::io::Error::other("the dialling thread ended"))??;
    TcpStream::from_std(s)
}

/// Caller's bytes to the connection (its end half-closes it), the connection's bytes
/// back; the response ends when the pod's side closes.
async fn copy(
    tcp: TcpStream,
    mut inbound: Streaming<PortForwardInput>,
    tx: mpsc::Sender<Result<PortForwardOutput, Status>>,
) {
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.into_split();
    let upstream = tokio::spawn(async move {
        while let Ok(Some(msg)) = inbound.message().await {
            if let Some(Input::Data(d)) = msg.input {
                if wr.write_all(&d).await.is_err() {
                    return;
                }
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => r,
            () = tx.closed() => break,
        };
        match n {
            Ok(0) => break,
            Ok(n) => {
                let msg = PortForwardOutput {
                    data: bytes::Bytes::copy_from_slice(&buf[..n]),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(Status::aborted(e.to_string()))).await;
                break;
            }
        }
    }
    drop(tx);
    // The caller may still be sending; its end (or its going away) ends the upstream.
    let _ = upstream.await;
}
