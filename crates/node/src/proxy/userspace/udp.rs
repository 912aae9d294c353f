//! UDP: a session per client address, with its own socket towards the endpoint chosen
//! for it; replies go back through the listening socket. A session ends after it has
//! been idle for [`IDLE`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::UdpSocket;

use super::balancer::Balancer;

const IDLE: Duration = Duration::from_secs(30);

type Sessions = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = super::socket(addr, socket2::Type::DGRAM)?;
    UdpSocket::from_std(s.into())
}

pub async fn serve(sock: UdpSocket, balancer: Arc<Balancer>) {
    let sock = Arc::new(sock);
    let sessions: Sessions = Default::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "proxy recv failed");
                continue;
            }
        };
        let existing = sessions.lock().get(&peer).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => match open(&sock, &sessions, peer, &balancer).await {
                Some(u) => u,
                None => continue,
            },
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

/// A session for `peer`: a socket connected to the first endpoint that takes it.
async fn open(
    sock: &Arc<UdpSocket>,
    sessions: &Sessions,
    peer: SocketAddr,
    balancer: &Arc<Balancer>,
) -> Option<Arc<UdpSocket>> {
    for ep in balancer.candidates(peer.ip()) {
        let Ok(u) = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0))).await else {
            return None;
        };
        if u.connect(ep).await.is_err() {
            continue;
        }
        balancer.connected(peer.ip(), ep);
        let u = Arc::new(u);
        sessions.lock().insert(peer, u.clone());
        let (sock, sessions, up) = (sock.clone(), sessions.clone(), u.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(Ok(n)) = tokio::time::timeout(IDLE, up.recv(&mut buf)).await {
                let _ = sock.send_to(&buf[..n], peer).await;
            }
            sessions.lock().remove(&peer);
        });
        return Some(u);
    }
    None
}
