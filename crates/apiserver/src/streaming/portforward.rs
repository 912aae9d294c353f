//! Port forwarding (`portforward.k8s.io` over SPDY, and the same SPDY carried in
//! WebSocket binary messages, `SPDY/3.1+portforward.k8s.io`): for every local connection
//! the client opens an error stream and a data stream sharing a `requestID` and a `port`;
//! each pair becomes one `PortForward` call to the node agent. A failure is written on the
//! error stream; both streams end when the pod's side closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rkube_proto::api::port_forward_input::Input;
use rkube_proto::api::{PortForwardInput, PortForwardOpen};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::spdy::headers::get;
use super::spdy::{Connection, Stream};
use super::upstream::Upstream;

const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The pod a session forwards to.
#[derive(Clone)]
pub(crate) struct Target {
    pub namespace: String,
    pub pod: String,
}

/// A stream's role and pairing key, from its headers; without a `requestID` (old
/// clients) the kubelet pairs an error stream with the data stream opened right after it.
fn pairing(s: &Stream) -> Option<(bool, String, u16)> {
    let data = match get(&s.headers, "streamtype")? {
        "data" => true,
        "error" => false,
        _ => return None,
    };
    let port = get(&s.headers, "port")?.parse().ok().filter(|p| *p > 0)?;
    let id = match get(&s.headers, "requestid") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ if data => s.id.saturating_sub(2).to_string(),
        _ => s.id.to_string(),
    };
    Some((data, id, port))
}

/// Serves port forwarding over SPDY on `io` until the client closes it.
pub(crate) async fn serve_spdy<IO>(io: IO, upstream: Arc<dyn Upstream>, target: Target)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut conn = Connection::serve(io);
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    let mut forwards = JoinSet::new();
    while let Some(s) = conn.streams.recv().await {
        let Some((data, id, port)) = pairing(&s) else {
            tracing::debug!(stream = s.id, "port-forward: a stream without type or port");
            continue;
        };
        let slot = pending.entry(id.clone()).or_default();
        if data {
            slot.1 = Some(s);
        } else {
            slot.0 = Some(s);
        }
        if let (Some(_), Some(_)) = slot {
            if let Some((Some(e), Some(d))) = pending.remove(&id) {
                forwards.spawn(forward(upstream.clone(), target.clone(), port, e, d));
            }
        }
        while forwards.try_join_next().is_some() {}
    }
    drop(forwards);
    conn.close(CLOSE_GRACE).await;
}

/// One forwarded connection.
async fn forward(
    upstream: Arc<dyn Upstream>,
    target: Target,
    port: u16,
    error: Stream,
    data: Stream,
) {
    let fail = |why: &str| {
        Bytes::from(format!(
            "error forwarding port {port} to pod {}/{}: {why}",
            target.namespace, target.pod
        ))
    };
    let (in_tx, in_rx) = mpsc::channel(16);
    let open = PortForwardOpen {
        namespace: target.namespace.clone(),
        pod: target.pod.clone(),
        port: i32::from(port),
    };
    let _ = in_tx
        .send(PortForwardInput {
            input: Some(Input::Open(open)),
        })
        .await;
    let Stream {
        data: mut from_client,
        writer: to_client,
        ..
    } = data;
    match upstream.port_forward(in_rx).await {
        Err(e) => {
            let _ = error.writer.send(fail(e.message())).await;
        }
        Ok(mut outputs) => {
            let up = tokio::spawn(async move {
                while let Some(b) = from_client.recv().await {
                    let msg = PortForwardInput {
                        input: Some(Input::Data(b)),
                    };
                    if in_tx.send(msg).await.is_err() {
                        return;
                    }
                }
            });
            while let Some(item) = outputs.next().await {
                match item {
                    Ok(o) => {
                        if to_client.send(o.data).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = error.writer.send(fail(e.message())).await;
                        break;
                    }
                }
            }
            up.abort();
        }
    }
    let _ = to_client.finish().await;
    let _ = error.writer.finish().await;
}

/// Serves port forwarding tunnelled in a WebSocket: the binary messages in each direction
/// are a byte stream carrying the SPDY connection.
pub(crate) async fn serve_tunnel<IO>(
    ws: WebSocketStream<IO>,
    upstream: Arc<dyn Upstream>,
    target: Target,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (spdy_side, tunnel_side) = tokio::io::duplex(64 * 1024);
    let (mut tunnel_rd, mut tunnel_wr) = tokio::io::split(tunnel_side);
    let (mut sink, mut source) = ws.split();
    let inbound = async move {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(b) if tunnel_wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = tunnel_wr.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match tunnel_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    let inbound = tokio::spawn(inbound);
    tokio::join!(serve_spdy(spdy_side, upstream, target), outbound);
    inbound.abort();
}
