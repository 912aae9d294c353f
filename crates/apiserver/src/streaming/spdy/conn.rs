//! The server side of a SPDY/3.1 connection as Kubernetes' clients use it: the client
//! opens every stream; each is answered at once with SYN_REPLY and handed out with its
//! headers, its incoming data as a channel and a writer. PINGs are answered; consumed
//! data is given back as WINDOW_UPDATEs. Like the kubelet's SPDY server, this side does
//! not hold its own writes to the peer's window.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::frame::{Frame, FLAG_FIN, RST_PROTOCOL_ERROR};
use super::headers::{Compressor, Decompressor, Headers};

/// The largest DATA frame this side writes.
const MAX_DATA: usize = 32 * 1024;

/// A stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    /// The client's data; ends with its FIN or RST_STREAM.
    pub data: mpsc::Receiver<Bytes>,
    pub writer: StreamWriter,
}

/// Writes to one stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
}

/// The connection is gone.
#[derive(Debug, thiserror::Error)]
#[error("the SPDY connection is closed")]
pub struct Closed;

impl StreamWriter {
    pub async fn send(&self, mut data: Bytes) -> Result<(), Closed> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_DATA));
            self.frame(0, chunk).await?;
        }
        Ok(())
    }

    /// Ends this side of the stream (FIN).
    pub async fn finish(&self) -> Result<(), Closed> {
        self.frame(FLAG_FIN, Bytes::new()).await
    }

    async fn frame(&self, flags: u8, data: Bytes) -> Result<(), Closed> {
        self.out
            .send(Frame::Data {
                stream_id: self.id,
                flags,
                data,
            })
            .await
            .map_err(|_| Closed)
    }
}

/// A served connection: the streams the client opens. Dropping it closes the connection
/// once what was written is sent.
pub struct Connection {
    pub streams: mpsc::Receiver<Stream>,
    reader: JoinHandle<()>,
    shutdown: Option<oneshot::Sender<()>>,
    writer: Option<JoinHandle<()>>,
}

impl Connection {
    /// Serves SPDY/3.1 on `io`, which has just been upgraded.
    pub fn serve<IO>(io: IO) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (streams_tx, streams_rx) = mpsc::channel(16);
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let writer = tokio::spawn(write_frames(wr, out_rx, shutdown_rx));
        let reader = tokio::spawn(read_frames(rd, out_tx, streams_tx));
        Connection {
            streams: streams_rx,
            reader,
            shutdown: Some(shutdown_tx),
            writer: Some(writer),
        }
    }

    /// Sends what was written and closes this side, then reads on for up to `grace` until
    /// the client closes too, so nothing it sent is left unread (which would reset the
    /// connection under data it has not read yet).
    pub async fn close(mut self, grace: std::time::Duration) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(w) = self.writer.take() {
            let _ = w.await;
        }
        let _ = tokio::time::timeout(grace, &mut self.reader).await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        self.reader.abort();
    }
}

async fn write_frames<W: AsyncWrite>(
    wr: W,
    mut frames: mpsc::Receiver<Frame>,
    mut shutdown: oneshot::Receiver<()>,
) {
    tokio::pin!(wr);
    let mut buf = BytesMut::new();
    loop {
        let frame = tokio::select! {
            biased;
            f = frames.recv() => f,
            _ = &mut shutdown => None,
        };
        let Some(frame) = frame else { break };
        frame.write(&mut buf);
        // Write what is queued together, then flush once.
        while buf.len() < 64 * 1024 {
            match frames.try_recv() {
                Ok(f) => f.write(&mut buf),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
    let _ = wr.shutdown().await;
}

/// Per-connection reading state: open streams' senders and the header decompressor.
struct Reader {
    out: mpsc::Sender<Frame>,
    streams_tx: mpsc::Sender<Stream>,
    open: HashMap<u32, mpsc::Sender<Bytes>>,
    decompressor: Decompressor,
    reply: Compressor,
}

async fn read_frames<R: AsyncRead>(
    rd: R,
    out: mpsc::Sender<Frame>,
    streams_tx: mpsc::Sender<Stream>,
) {
    tokio::pin!(rd);
    let mut r = Reader {
        out,
        streams_tx,
        open: HashMap::new(),
        decompressor: Decompressor::new(),
        reply: Compressor::new(),
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        loop {
            match Frame::parse(&mut buf) {
                Ok(Some(f)) => {
                    if !r.handle(f).await {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY: closing the connection");
                    return;
                }
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

impl Reader {
    /// Handles one frame; false when the connection must end.
    async fn handle(&mut self, f: Frame) -> bool {
        match f {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => self.open_stream(stream_id, flags, &headers).await,
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let len = data.len() as u32;
                if len > 0 {
                    if let Some(tx) = self.open.get(&stream_id) {
                        // A reader that went away no longer wants the data.
                        if tx.send(data).await.is_err() {
                            self.open.remove(&stream_id);
                        }
                    }
                    for id in [0, stream_id] {
                        let wu = Frame::WindowUpdate {
                            stream_id: id,
                            delta: len,
                        };
                        if self.out.send(wu).await.is_err() {
                            return false;
                        }
                    }
                }
                if flags & FLAG_FIN != 0 {
                    self.open.remove(&stream_id);
                }
                true
            }
            Frame::RstStream { stream_id, .. } => {
                self.open.remove(&stream_id);
                true
            }
            Frame::Ping { id } => self.out.send(Frame::Ping { id }).await.is_ok(),
            Frame::GoAway { .. } => false,
            Frame::SynReply { .. }
            | Frame::Settings { .. }
            | Frame::Headers { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => true,
        }
    }

    async fn open_stream(&mut self, id: u32, flags: u8, block: &[u8]) -> bool {
        // Every block goes through the one decompression context, even a refused one's.
        let headers = match self.decompressor.decompress(block) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(error = %e, "SPDY: bad header block");
                let _ = self
                    .out
                    .send(Frame::RstStream {
                        stream_id: id,
                        status: RST_PROTOCOL_ERROR,
                    })
                    .await;
                return false;
            }
        };
        let reply = Frame::SynReply {
            stream_id: id,
            flags: 0,
            headers: Bytes::from(self.reply.compress(&[])),
        };
        if self.out.send(reply).await.is_err() {
            return false;
        }
        let (tx, rx) = mpsc::channel(16);
        if flags & FLAG_FIN == 0 {
            self.open.insert(id, tx);
        }
        let stream = Stream {
            id,
            headers,
            data: rx,
            writer: StreamWriter {
                id,
                out: self.out.clone(),
            },
        };
        self.streams_tx.send(stream).await.is_ok()
    }
}
