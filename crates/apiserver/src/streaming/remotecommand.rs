//! exec and attach sessions: the client's side (SPDY streams, or WebSocket channels)
//! bridged to the node agent's `Stream` call. Input from the client becomes
//! [`ClientEvent`]s, output from the process [`ServerEvent`]s; the session ends with the
//! Status written on the error channel, and the connection closes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rkube_proto::api::stream_input::Input;
use rkube_proto::api::stream_output::Output;
use rkube_proto::api::{StreamInput, StreamKind, StreamOpen, TerminalSize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::spdy::headers::get;
use super::spdy::{Connection, Stream};
use super::status;
use super::upstream::Upstream;
use super::websocket::{self, Inbound, ResizeDecoder};

/// How long a SPDY client has to open the streams it asked for (the kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the client has to close its side once the session has ended.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// kubectl 1.30–1.32 read a WebSocket before setting up the streams they read into, and
/// drop what arrives before (kubernetes#131189, fixed in 1.33). Its setup takes
/// microseconds; output held this long after the upgrade is never dropped.
const WEBSOCKET_SETUP_GRACE: Duration = Duration::from_millis(25);

pub(crate) enum ClientEvent {
    Stdin(Bytes),
    StdinClosed,
    Resize(u32, u32),
}

pub(crate) enum ServerEvent {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// Runs the session at the node: forwards `events`, passes output to `out`. Returns the
/// final Status, or `None` once the client is gone (`out` closed).
async fn bridge(
    upstream: Arc<dyn Upstream>,
    open: StreamOpen,
    mut events: mpsc::Receiver<ClientEvent>,
    out: mpsc::Sender<ServerEvent>,
) -> Option<Vec<u8>> {
    let (exec, command) = (open.kind() == StreamKind::Exec, open.command.clone());
    let (in_tx, in_rx) = mpsc::channel(16);
    let _ = in_tx
        .send(StreamInput {
            input: Some(Input::Open(open)),
        })
        .await;
    let mut outputs = match upstream.stream(in_rx).await {
        Ok(o) => o,
        Err(e) => return Some(status::failure(e.message())),
    };
    let pump = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let input = match ev {
                ClientEvent::Stdin(b) => Input::Stdin(b),
                ClientEvent::StdinClosed => Input::CloseStdin(true),
                ClientEvent::Resize(width, height) => Input::Resize(TerminalSize { width, height }),
            };
            if in_tx
                .send(StreamInput { input: Some(input) })
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let result = loop {
        let item = tokio::select! {
            item = outputs.next() => item,
            () = out.closed() => break None,
        };
        let ev = match item {
            Some(Ok(o)) => match o.output {
                Some(Output::Stdout(b)) => ServerEvent::Stdout(b),
                Some(Output::Stderr(b)) => ServerEvent::Stderr(b),
                Some(Output::Exit(e)) if !e.error.is_empty() => {
                    break Some(status::failure(&e.error))
                }
                Some(Output::Exit(e)) if e.exit_code != 0 && exec => {
                    break Some(status::exit_code(&command, e.exit_code))
                }
                Some(Output::Exit(_)) => break Some(status::success()),
                None => continue,
            },
            Some(Err(e)) => break Some(status::failure(e.message())),
            None => {
                break Some(status::failure(
                    "the node agent ended the session without an exit status",
                ))
            }
        };
        if out.send(ev).await.is_err() {
            break None;
        }
    };
    pump.abort();
    result
}

/// The SPDY stream types of exec and attach.
const ERROR: &str = "error";
const STDIN: &str = "stdin";
const STDOUT: &str = "stdout";
const STDERR: &str = "stderr";
const RESIZE: &str = "resize";

/// The streams of one exec or attach session, by type.
struct Streams {
    error: Stream,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

/// Waits for the streams `open` asks for (the error stream always); streams of other
/// types, or repeated ones, are refused by dropping them.
async fn accept_streams(conn: &mut Connection, open: &StreamOpen) -> Option<Streams> {
    let mut wanted = vec![ERROR];
    for (on, t) in [
        (open.stdin, STDIN),
        (open.stdout, STDOUT),
        (open.stderr && !open.tty, STDERR),
        (open.tty, RESIZE),
    ] {
        if on {
            wanted.push(t);
        }
    }
    let mut streams: Vec<(String, Stream)> = Vec::new();
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while streams.len() < wanted.len() {
        let s = match tokio::time::timeout_at(deadline, conn.streams.recv()).await {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(_) => {
                tracing::debug!("exec: the client did not open its streams in time");
                return None;
            }
        };
        let t = get(&s.headers, "streamtype")
            .unwrap_or_default()
            .to_string();
        if wanted.contains(&t.as_str()) && !streams.iter().any(|(have, _)| *have == t) {
            streams.push((t, s));
        }
    }
    let mut take = |t: &str| {
        let i = streams.iter().position(|(have, _)| have == t)?;
        Some(streams.swap_remove(i).1)
    };
    Some(Streams {
        error: take(ERROR)?,
        stdin: take(STDIN),
        stdout: take(STDOUT),
        stderr: take(STDERR),
        resize: take(RESIZE),
    })
}

/// The client's stdin and resize streams as events.
fn client_events(stdin: Option<Stream>, resize: Option<Stream>) -> mpsc::Receiver<ClientEvent> {
    let (ev_tx, ev_rx) = mpsc::channel(16);
    if let Some(mut s) = stdin {
        let tx = ev_tx.clone();
        tokio::spawn(async move {
            while let Some(b) = s.data.recv().await {
                if tx.send(ClientEvent::Stdin(b)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(ClientEvent::StdinClosed).await;
        });
    }
    if let Some(mut s) = resize {
        tokio::spawn(async move {
            let mut d = ResizeDecoder::default();
            while let Some(b) = s.data.recv().await {
                for (w, h) in d.push(&b) {
                    if ev_tx.send(ClientEvent::Resize(w, h)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    ev_rx
}

/// Serves a session over SPDY (`v4.channel.k8s.io`): waits for the client's streams, then
/// bridges them.
pub(crate) async fn serve_spdy<IO>(io: IO, upstream: Arc<dyn Upstream>, open: StreamOpen)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut conn = Connection::serve(io);
    let Some(streams) = accept_streams(&mut conn, &open).await else {
        return;
    };
    let ev_rx = client_events(streams.stdin, streams.resize);
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let stdout = streams.stdout.map(|s| s.writer);
    let stderr = streams.stderr.map(|s| s.writer);
    let write = async {
        while let Some(ev) = out_rx.recv().await {
            let (w, b) = match ev {
                ServerEvent::Stdout(b) => (&stdout, b),
                ServerEvent::Stderr(b) => (&stderr, b),
            };
            if let Some(w) = w {
                if w.send(b).await.is_err() {
                    return;
                }
            }
        }
    };
    // Extra streams are refused by dropping them; the end of `streams` is the client gone.
    let gone = async { while conn.streams.recv().await.is_some() {} };
    let session = async { tokio::join!(bridge(upstream, open, ev_rx, out_tx), write).0 };
    let result = tokio::select! {
        r = session => r,
        () = gone => None,
    };
    let Some(result) = result else { return };
    for w in [&stdout, &stderr].into_iter().flatten() {
        let _ = w.finish().await;
    }
    let error = streams.error.writer;
    let _ = error.send(Bytes::from(result)).await;
    let _ = error.finish().await;
    conn.close(CLOSE_GRACE).await;
}

/// Serves a session over a WebSocket with `v4.channel.k8s.io` or `v5.channel.k8s.io`.
pub(crate) async fn serve_websocket<IO>(
    ws: WebSocketStream<IO>,
    v5: bool,
    upstream: Arc<dyn Upstream>,
    open: StreamOpen,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (ev_tx, ev_rx) = mpsc::channel(16);
    let stdin = open.stdin;
    let mut reader = tokio::spawn(async move {
        let mut resize = ResizeDecoder::default();
        while let Some(Ok(msg)) = source.next().await {
            let Message::Binary(b) = msg else {
                if matches!(msg, Message::Close(_)) {
                    return;
                }
                continue;
            };
            let evs = match websocket::decode(&b, v5) {
                Inbound::Stdin(d) if stdin => vec![ClientEvent::Stdin(d)],
                Inbound::Resize(d) => resize
                    .push(&d)
                    .into_iter()
                    .map(|(w, h)| ClientEvent::Resize(w, h))
                    .collect(),
                Inbound::Close(websocket::STDIN) => vec![ClientEvent::StdinClosed],
                _ => vec![],
            };
            for ev in evs {
                // The session is over; keep reading until the client closes.
                let _ = ev_tx.send(ev).await;
            }
        }
    });
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let setup = tokio::time::Instant::now() + WEBSOCKET_SETUP_GRACE;
    let write = async {
        while let Some(ev) = out_rx.recv().await {
            tokio::time::sleep_until(setup).await;
            let msg = match ev {
                ServerEvent::Stdout(b) => websocket::encode(websocket::STDOUT, &b),
                ServerEvent::Stderr(b) => websocket::encode(websocket::STDERR, &b),
            };
            if sink.send(Message::Binary(msg.into())).await.is_err() {
                return;
            }
        }
    };
    let result = {
        let session = async { tokio::join!(bridge(upstream, open, ev_rx, out_tx), write).0 };
        tokio::select! {
            r = session => r,
            _ = &mut reader => None,
        }
    };
    if let Some(result) = result {
        tokio::time::sleep_until(setup).await;
        let _ = sink
            .send(Message::Binary(
                websocket::encode(websocket::ERROR, &result).into(),
            ))
            .await;
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        // Read on until the client answers the close, so nothing it sent is left unread.
        let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader).await;
    }
    reader.abort();
}
