//! Interactive exec on a CRI runtime: CRI `Exec` names a URL on the runtime's streaming
//! server, which speaks Kubernetes' WebSocket channel protocol — `v5.channel.k8s.io`
//! where offered, else `v4.channel.k8s.io`, which cannot signal the end of stdin (only a
//! terminal's input, or a command that stops reading, ends there).

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use k8s_cri::v1 as cri;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::interactive::{Interactive, Terminal};
use super::{Error, Result};

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

fn io(what: &str) -> impl FnOnce(tokio_tungstenite::tungstenite::Error) -> Error + '_ {
    move |e| Error::Io(format!("{what}: {e}"))
}

/// Connects to the exec session at `url` (from CRI `Exec`).
pub(super) async fn connect(url: &str, stdin: bool, tty: bool) -> Result<Interactive> {
    let (ws, v5) = open(url).await?;
    let (sink, source) = ws.split();
    let (msg_tx, msg_rx) = mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(send_all(sink, msg_rx));
    let stdin = stdin.then(|| forward_stdin(msg_tx.clone(), v5));
    let (out_w, out_r) = tokio::io::duplex(64 * 1024);
    let (err_w, err_r) = tokio::io::duplex(64 * 1024);
    let (exit_tx, exit_rx) = oneshot::channel();
    let reader = tokio::spawn(demultiplex(source, out_w, err_w, exit_tx));
    let terminal = tty.then(|| resize_channel(msg_tx.clone()));
    drop(msg_tx);
    let guard = AbortOnDrop([reader.abort_handle(), writer.abort_handle()]);
    Ok(Interactive {
        stdin,
        stdout: Some(Box::pin(out_r)),
        stderr: (!tty).then(|| Box::pin(err_r) as super::interactive::Reader),
        terminal,
        exit: Box::pin(async move {
            // The caller gone (this future dropped) closes the connection, and with it
            // the session at the runtime.
            let _guard = guard;
            exit_rx.await.unwrap_or_else(|_| {
                Err(Error::Io(
                    "CRI streaming: the session ended without a status".into(),
                ))
            })
        }),
    })
}

type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The WebSocket of the session at `url`, and whether it speaks v5.
async fn open(url: &str) -> Result<(WebSocket, bool)> {
    let ws_url = match url.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => {
            return Err(Error::Io(format!(
                "CRI streaming: bad streaming URL {url:?}"
            )))
        }
    };
    let mut req = ws_url
        .into_client_request()
        .map_err(io("CRI streaming: the streaming URL"))?;
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(io("CRI streaming: connecting to the streaming server"))?;
    let protocol = resp
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if protocol != V5 && protocol != V4 {
        return Err(Error::Unsupported(format!(
            "CRI streaming: the streaming server speaks {protocol:?}, not {V5} or {V4}"
        )));
    }
    Ok((ws, protocol == V5))
}

/// Sends every message of `msg_rx` to the server.
async fn send_all(mut sink: SplitSink<WebSocket, Message>, mut msg_rx: mpsc::Receiver<Vec<u8>>) {
    // Nothing more to send is no reason to close: the session ends from the server.
    while let Some(m) = msg_rx.recv().await {
        if sink.send(Message::Binary(m.into())).await.is_err() {
            return;
        }
    }
}

/// Copies the server's stdout and stderr channels into `out_w` and `err_w`; when the
/// session ends, sends the exit code its error channel gave.
async fn demultiplex(
    mut source: SplitStream<WebSocket>,
    out_w: DuplexStream,
    err_w: DuplexStream,
    exit_tx: oneshot::Sender<Result<i32>>,
) {
    let (mut out_w, mut err_w, mut status) = (Some(out_w), Some(err_w), Vec::new());
    while let Some(Ok(msg)) = source.next().await {
        let Message::Binary(b) = msg else { continue };
        let to = match b.first() {
            Some(&STDOUT) => &mut out_w,
            Some(&STDERR) => &mut err_w,
            Some(&ERROR) => {
                status.extend_from_slice(&b[1..]);
                continue;
            }
            _ => continue,
        };
        // A reader that went away no longer wants that stream.
        if let Some(w) = to {
            if w.write_all(&b[1..]).await.is_err() {
                *to = None;
            }
        }
    }
    drop((out_w, err_w));
    let _ = exit_tx.send(exit_of(&status));
}

/// The terminal of the session: a resize goes out on the resize channel.
fn resize_channel(tx: mpsc::Sender<Vec<u8>>) -> Terminal {
    Terminal::new(move |width, height| {
        let size = format!("{{\"Width\":{width},\"Height\":{height}}}");
        let msg = [&[RESIZE], size.as_bytes()].concat();
        tx.try_send(msg)
            .map_err(|e| std::io::Error::other(format!("resize: {e}")))
    })
}

struct AbortOnDrop([tokio::task::AbortHandle; 2]);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// A writer whose bytes go out on the stdin channel; its end is v5's close signal.
fn forward_stdin(tx: mpsc::Sender<Vec<u8>>, v5: bool) -> super::interactive::Writer {
    let (w, mut r): (DuplexStream, DuplexStream) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send([&[STDIN], &buf[..n]].concat()).await.is_err() {
                        return;
                    }
                }
            }
        }
        if v5 {
            let _ = tx.send(vec![CLOSE, STDIN]).await;
        }
    });
    Box::pin(w)
}

#[derive(serde::Deserialize, Default)]
struct Status {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    details: Option<Details>,
}

#[derive(serde::Deserialize, Default)]
struct Details {
    #[serde(default)]
    causes: Vec<Cause>,
}

#[derive(serde::Deserialize, Default)]
struct Cause {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// The exit code in the error channel's Status (none written: success).
fn exit_of(status: &[u8]) -> Result<i32> {
    if status.is_empty() {
        return Ok(0);
    }
    let s: Status = serde_json::from_slice(status).map_err(|e| {
        Error::Io(format!(
            "CRI streaming: the status {:?}: {e}",
            String::from_utf8_lossy(status)
        ))
    })?;
    if s.status == "Success" {
        return Ok(0);
    }
    if s.reason == "NonZeroExitCode" {
        let code = s
            .details
            .unwrap_or_default()
            .causes
            .iter()
            .find(|c| c.reason == "ExitCode")
            .and_then(|c| c.message.parse().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(Error::Io(format!("CRI streaming: {}", s.message)))
}

/// What a CRI `Exec` asks for.
pub(super) fn exec_request(id: &str, cmd: &[String], stdin: bool, tty: bool) -> cri::ExecRequest {
    cri::ExecRequest {
        container_id: id.into(),
        cmd: cmd.to_vec(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_exit_codes() {
        let ok = br#"{"metadata":{},"status":"Success"}"#;
        assert_eq!(exit_of(ok).unwrap(), 0);
        assert_eq!(exit_of(b"").unwrap(), 0);
        let three = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_of(three).unwrap(), 3);
        let failed = br#"{"status":"Failure","message":"no such file","reason":"InternalError"}"#;
        let e = exit_of(failed).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
        assert!(exit_of(b"not json").is_err());
    }
}
