//! A SPDY/3.1 client for the tests, built on the same framing: it upgrades, opens
//! streams and collects what comes back on them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::streaming::spdy::frame::{Frame, FLAG_FIN};
use crate::streaming::spdy::headers::{Compressor, Decompressor};

type Io = Pin<Box<dyn AsyncReadWrite>>;
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> AsyncReadWrite for T {}

pub struct Client {
    io: Io,
    buf: BytesMut,
    compressor: Compressor,
    decompressor: Decompressor,
    next_id: u32,
    replied: HashSet<u32>,
    data: HashMap<u32, Vec<u8>>,
    closed: HashSet<u32>,
}

impl Client {
    /// Upgrades a POST to `path` with `protocol`.
    pub async fn connect(addr: SocketAddr, path: &str, protocol: &str) -> Client {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            assert_eq!(
                tcp.read(&mut b).await.unwrap(),
                1,
                "the response head ends early"
            );
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(
            head.contains(&format!(
                "x-stream-protocol-version: {}",
                protocol.to_ascii_lowercase()
            )),
            "{head}"
        );
        Client::over(tcp)
    }

    pub fn over(io: impl AsyncRead + AsyncWrite + Send + 'static) -> Client {
        Client {
            io: Box::pin(io),
            buf: BytesMut::new(),
            compressor: Compressor::new(),
            decompressor: Decompressor::new(),
            next_id: 1,
            replied: HashSet::new(),
            data: HashMap::new(),
            closed: HashSet::new(),
        }
    }

    async fn write(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        f.write(&mut out);
        self.io.write_all(&out).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// Opens a stream (half-closed at once with `fin`) and waits for its SYN_REPLY.
    pub async fn open(&mut self, headers: &[(&str, &str)], fin: bool) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        let block = Bytes::from(self.compressor.compress(headers));
        let flags = if fin { FLAG_FIN } else { 0 };
        self.write(Frame::SynStream {
            stream_id: id,
            associated_id: 0,
            priority: 0,
            flags,
            headers: block,
        })
        .await;
        while !self.replied.contains(&id) {
            self.read_frame().await;
        }
        id
    }

    pub async fn send(&mut self, id: u32, data: &[u8], fin: bool) {
        let flags = if fin { FLAG_FIN } else { 0 };
        let data = Bytes::copy_from_slice(data);
        self.write(Frame::Data {
            stream_id: id,
            flags,
            data,
        })
        .await;
    }

    /// Reads until every stream in `ids` has ended; what each carried.
    pub async fn read_until_closed(&mut self, ids: &[u32]) -> HashMap<u32, Vec<u8>> {
        while !ids.iter().all(|id| self.closed.contains(id)) {
            self.read_frame().await;
        }
        ids.iter()
            .map(|id| (*id, self.data.remove(id).unwrap_or_default()))
            .collect()
    }

    async fn read_frame(&mut self) {
        loop {
            if let Some(f) = Frame::parse(&mut self.buf).unwrap() {
                match f {
                    Frame::SynReply {
                        stream_id, headers, ..
                    } => {
                        self.decompressor.decompress(&headers).unwrap();
                        self.replied.insert(stream_id);
                    }
                    Frame::Data {
                        stream_id,
                        flags,
                        data,
                    } => {
                        self.data
                            .entry(stream_id)
                            .or_default()
                            .extend_from_slice(&data);
                        if flags & FLAG_FIN != 0 {
                            self.closed.insert(stream_id);
                        }
                    }
                    Frame::RstStream { stream_id, .. } => {
                        self.closed.insert(stream_id);
                    }
                    _ => {}
                }
                return;
            }
            let n = self.io.read_buf(&mut self.buf).await.unwrap();
            assert_ne!(n, 0, "the server closed the connection");
        }
    }
}

/// A byte stream over a WebSocket's binary messages, as kubectl's tunnel makes one.
pub fn tunnel(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> tokio::io::DuplexStream {
    let (mine, theirs) = tokio::io::duplex(64 * 1024);
    let (mut rd, mut wr) = tokio::io::split(theirs);
    let (mut sink, mut source) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(Message::Binary(b))) = source.next().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
            if sink.send(msg).await.is_err() {
                return;
            }
        }
    });
    mine
}
