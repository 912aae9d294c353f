//! UDP for the load balancers: datagrams from one client go to one backend node's
//! NodePort through a session of their own (a socket connected to that node), and the
//! node's answers go back to the client from the balancer's address. A session idle for
//! [`IDLE`] ends, as a conntrack entry would; one whose node refused (ICMP port
//! unreachable) ends at once, and the client's next datagram opens a session to the next
//! node.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::net::UdpSocket;
use tokio::task::{AbortHandle, JoinSet};

use crate::listeners::allowed;

/// How long a session lives without a datagram from its client.
pub const IDLE: Duration = Duration::from_secs(30);

/// One client's session: the socket to its backend, and the task relaying answers back.
struct Session {
    upstream: Arc<UdpSocket>,
    last: Instant,
    reply: AbortHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reply.abort();
    }
}

/// Serves the balancer's UDP port on `sock`, to the backends' `node_port`.
pub(crate) async fn serve(
    sock: UdpSocket,
    node_port: u16,
    backends: Arc<RwLock<Vec<SocketAddr>>>,
    ranges: Arc<Vec<(u32, u32)>>,
) {
    let sock = Arc::new(sock);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut replies = JoinSet::new();
    let mut next = 0usize;
    let mut sweep = tokio::time::interval(IDLE / 2);
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, peer)) = r else { continue };
                while replies.try_join_next().is_some() {}
                if !allowed(peer.ip(), &ranges) {
                    continue;
                }
                if sessions.get(&peer).is_some_and(|s| s.reply.is_finished()) {
                    sessions.remove(&peer);
                }
                let s = match sessions.entry(peer) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let order = rotate(&backends, &mut next);
                        let Some(s) = open(&order, node_port, &sock, peer, &mut replies).await
                        else {
                            continue;
                        };
                        e.insert(s)
                    }
                };
                s.last = Instant::now();
                let _ = s.upstream.send(&buf[..n]).await;
            }
            _ = sweep.tick() => sessions.retain(|_, s| s.last.elapsed() < IDLE),
        }
    }
}

/// The backends, starting at the next one in turn.
fn rotate(backends: &RwLock<Vec<SocketAddr>>, next: &mut usize) -> Vec<SocketAddr> {
    let b = backends.read();
    let order = (0..b.len()).map(|i| b[(*next + i) % b.len()]).collect();
    *next = next.wrapping_add(1);
    order
}

/// A session for `peer` to the first backend a socket can be connected to.
async fn open(
    order: &[SocketAddr],
    node_port: u16,
    sock: &Arc<UdpSocket>,
    peer: SocketAddr,
    replies: &mut JoinSet<()>,
) -> Option<Session> {
    for b in order {
        let to = SocketAddr::new(b.ip(), node_port);
        let Ok(up) = UdpSocket::bind(("0.0.0.0", 0)).await else {
            continue;
        };
        if up.connect(to).await.is_err() {
            continue;
        }
        let up = Arc::new(up);
        let reply = replies.spawn(relay(up.clone(), sock.clone(), peer));
        return Some(Session {
            upstream: up,
            last: Instant::now(),
            reply,
        });
    }
    None
}

/// Sends what the backend answers back to the client, until the backend refuses.
async fn relay(up: Arc<UdpSocket>, down: Arc<UdpSocket>, peer: SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = up.recv(&mut buf).await {
        if down.send_to(&buf[..n], peer).await.is_err() {
            return;
        }
    }
}
