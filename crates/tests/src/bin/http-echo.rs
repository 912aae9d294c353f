//! A small HTTP/1.1 and UDP server for Service tests and benchmarks, run as a pod's
//! container: `GET /` answers with the name in `$POD_NAME`, `GET /env/NAME` with that
//! environment variable; a UDP datagram is answered with the name too. Keep-alive
//! connections are served.
//!
//! `http-echo ADDR [DRAIN_MS]`. On SIGTERM it answers with `Connection: close` and, as a
//! server behind a Service should, keeps accepting for DRAIN_MS (default 0) while the
//! endpoint removal reaches the proxies; then it stops accepting, lets requests in flight
//! finish, and exits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn answer(path: &str, name: &str) -> (u16, String) {
    match path.strip_prefix("/env/") {
        Some(var) => match std::env::var(var) {
            Ok(v) => (200, v),
            Err(_) => (404, format!("{var} is not set")),
        },
        None => (200, name.to_string()),
    }
}

async fn serve(mut s: TcpStream, name: Arc<String>, stopping: Arc<AtomicBool>) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let close = head.to_ascii_lowercase().contains("connection: close")
            || stopping.load(Ordering::Relaxed);
        let (code, body) = answer(&path, &name);
        let resp = format!(
            "HTTP/1.1 {code} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            if code == 200 { "OK" } else { "Not Found" },
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        if s.write_all(resp.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:8080".into());
    let drain_ms: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let name = Arc::new(std::env::var("POD_NAME").unwrap_or_else(|_| "unnamed".into()));
    let tcp = TcpListener::bind(&listen).await?;
    let udp = UdpSocket::bind(&listen).await?;
    let stopping = Arc::new(AtomicBool::new(false));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let udp_name = name.clone();
    tokio::spawn(async move {
        let mut b = [0u8; 2048];
        while let Ok((_, peer)) = udp.recv_from(&mut b).await {
            let _ = udp.send_to(udp_name.as_bytes(), peer).await;
        }
    });
    let tracker = Tracker::default();
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        let drained = async {
            match drain_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = tcp.accept() => {
                if let Ok((s, _)) = r {
                    let guard = tracker.enter();
                    let (name, stopping) = (name.clone(), stopping.clone());
                    tokio::spawn(async move {
                        serve(s, name, stopping).await;
                        drop(guard);
                    });
                }
            }
            _ = term.recv(), if drain_until.is_none() => {
                stopping.store(true, Ordering::Relaxed);
                drain_until = Some(tokio::time::Instant::now() + std::time::Duration::from_millis(drain_ms));
            }
            _ = drained => break,
        }
    }
    // Stop accepting; let requests in flight finish (keep-alive connections close after
    // their next response), for at most five seconds.
    drop(tcp);
    stopping.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tracker.idle()).await;
    Ok(())
}

/// Counts connections still being served.
#[derive(Default, Clone)]
struct Tracker(Arc<AtomicUsize>);

struct Guard(Tracker);

impl Tracker {
    fn enter(&self) -> Guard {
        self.0.fetch_add(1, Ordering::SeqCst);
        Guard(self.clone())
    }
    async fn idle(&self) {
        while self.0.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}
