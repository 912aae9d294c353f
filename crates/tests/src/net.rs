//! Clients for Service traffic: one-shot HTTP GETs, a keep-alive connection, a UDP query,
//! and the host's own address.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn other(e: impl ToString) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The body of `GET path` on a new connection, without surrounding whitespace; anything
/// but 200 is an error.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let r = tokio::time::timeout(REQUEST_TIMEOUT, crate::http_get(addr, path))
        .await
        .map_err(|_| other(format!("GET {addr}{path}: timed out")))??;
    let (head, body) = r
        .split_once("\r\n\r\n")
        .ok_or_else(|| other(format!("GET {addr}{path}: no response ({r:?})")))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(other(format!("GET {addr}{path}: {head}")));
    }
    Ok(body.trim().to_string())
}

/// One HTTP/1.1 connection used for many requests.
pub struct KeepAlive {
    conn: BufReader<TcpStream>,
}

impl KeepAlive {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<KeepAlive> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(KeepAlive {
            conn: BufReader::new(s),
        })
    }

    /// The body of `GET path`.
    pub async fn get(&mut self, path: &str) -> std::io::Result<String> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.get_inner(path))
            .await
            .map_err(|_| other(format!("GET {path}: timed out")))?
    }

    async fn get_inner(&mut self, path: &str) -> std::io::Result<String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: service\r\n\r\n");
        self.conn.get_mut().write_all(req.as_bytes()).await?;
        let mut len = None;
        let mut status = String::new();
        loop {
            let mut line = String::new();
            if self.conn.read_line(&mut line).await? == 0 {
                return Err(other("connection closed"));
            }
            if status.is_empty() {
                status = line.trim().to_string();
            }
            let l = line.trim();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
        }
        let mut body = vec![0u8; len.ok_or_else(|| other("no Content-Length"))?];
        self.conn.read_exact(&mut body).await?;
        if !status.starts_with("HTTP/1.1 200") {
            return Err(other(status));
        }
        String::from_utf8(body).map_err(other)
    }
}

/// The answer to one datagram sent to `addr`.
pub async fn udp_query(addr: SocketAddr) -> std::io::Result<String> {
    let s = UdpSocket::bind("0.0.0.0:0").await?;
    s.send_to(b"who", addr).await?;
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(2), s.recv(&mut buf))
        .await
        .map_err(|_| other(format!("UDP {addr}: no answer")))??;
    Ok(String::from_utf8_lossy(&buf[..n]).to_string())
}

/// The address the host uses towards its default route (no packet is sent).
pub fn host_ip() -> IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    s.connect("203.0.113.1:9")
        .expect("a route for the host address");
    s.local_addr().expect("local address").ip()
}

/// Requests (`GET /`, a new connection each) to `addr` from several tasks until
/// [`Traffic::stop`], counted.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    pub fn start(addr: SocketAddr, clients: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match get(addr, "/").await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                eprintln!("request failed: {e}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// Requests served and failed.
    pub async fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
