//! TCP: every accepted connection is spliced to an endpoint. A failed connect is retried
//! on the next candidate, so a pod that just went away costs no request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::balancer::Balancer;

/// How long one connect to an endpoint may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A listener on `addr`, shared (SO_REUSEPORT) with other proxies on the host.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = super::socket(addr, socket2::Type::STREAM)?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

pub async fn serve(listener: TcpListener, balancer: Arc<Balancer>) {
    loop {
        match listener.accept().await {
            Ok((conn, peer)) => {
                tokio::spawn(splice(conn, peer, balancer.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn splice(mut client: TcpStream, peer: SocketAddr, balancer: Arc<Balancer>) {
    let _ = client.set_nodelay(true);
    for ep in balancer.candidates(peer.ip()) {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ep)).await {
            Ok(Ok(mut upstream)) => {
                balancer.connected(peer.ip(), ep);
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %ep, error = %e, "endpoint refused; trying the next")
            }
            Err(_) => tracing::debug!(endpoint = %ep, "endpoint timed out; trying the next"),
        }
    }
    tracing::debug!(client = %peer, "no endpoint reachable; closing");
}
