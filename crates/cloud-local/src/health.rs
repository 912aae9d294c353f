//! Health checks of `externalTrafficPolicy: Local` balancers: every second each backend
//! node is asked `GET /healthz` on the Service's health check node port, where a node
//! answers 200 while it has a ready endpoint of the Service; only those nodes get
//! traffic. When none answers 200, every backend does, as cloud balancers fail open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// How often, and how long each check may take.
const PERIOD: Duration = Duration::from_secs(1);

/// Keeps `backends` to those of `all` that pass the check on `port`.
pub(crate) async fn check(
    all: Arc<RwLock<Vec<SocketAddr>>>,
    backends: Arc<RwLock<Vec<SocketAddr>>>,
    port: u16,
) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        let candidates = all.read().clone();
        let mut probes = JoinSet::new();
        for b in candidates.iter().copied() {
            probes.spawn(async move { (b, healthy(SocketAddr::new(b.ip(), port)).await) });
        }
        let mut passed = Vec::new();
        while let Some(r) = probes.join_next().await {
            if let Ok((b, true)) = r {
                passed.push(b);
            }
        }
        // The order of `all`, so connections still rotate over the same sequence.
        let healthy: Vec<SocketAddr> = candidates
            .iter()
            .filter(|b| passed.contains(b))
            .copied()
            .collect();
        *backends.write() = if healthy.is_empty() {
            candidates
        } else {
            healthy
        };
    }
}

/// Whether `addr` answers `GET /healthz` with 200 within [`PERIOD`].
async fn healthy(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.") && head.ends_with(b" 200"))
    };
    tokio::time::timeout(PERIOD, probe).await.ok().flatten() == Some(true)
}
