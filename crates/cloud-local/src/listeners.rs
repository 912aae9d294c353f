//! The listening side of the `local` provider's load balancers: for each balancer, a TCP
//! listener per Service port on its address, forwarding each connection to a backend
//! node's NodePort (the next node when one does not answer within 2 s), and a UDP socket
//! per UDP port ([`crate::udp`]), with `loadBalancerSourceRanges` enforced on the peer's
//! address. The provider runs them on
//! its own machine, or a node agent on the machine that holds the address.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::balancer::{BalancerError, Spec};

/// A running balancer: its listeners, the backends it has, and those they use (the ones
/// that pass the health check, with one).
struct Running {
    spec: Spec,
    all: Arc<RwLock<Vec<SocketAddr>>>,
    backends: Arc<RwLock<Vec<SocketAddr>>>,
    _listeners: JoinSet<()>,
}

/// The balancers listening in this process, by Service uid.
#[derive(Default)]
pub struct Listeners(BTreeMap<String, Running>);

impl Listeners {
    /// Makes the balancer of `uid` listen as `spec` says: new backends are taken at once;
    /// another address or other ports mean new listeners.
    pub async fn set(&mut self, uid: &str, spec: &Spec) -> Result<(), BalancerError> {
        if let Some(r) = self.0.get_mut(uid) {
            let same = r.spec.ports == spec.ports
                && r.spec.udp_ports == spec.udp_ports
                && r.spec.ip == spec.ip
                && r.spec.health_check_port == spec.health_check_port;
            if same {
                *r.all.write() = spec.backends.clone();
                if spec.health_check_port == 0 {
                    *r.backends.write() = spec.backends.clone();
                }
                r.spec = spec.clone();
                return Ok(());
            }
        }
        // The old listeners go first, so the new ones can bind the same ports.
        self.0.remove(uid);
        let r = start(spec.clone()).await?;
        self.0.insert(uid.to_string(), r);
        Ok(())
    }

    /// Stops the balancer of `uid`, if it listens.
    pub fn remove(&mut self, uid: &str) {
        self.0.remove(uid);
    }

    /// Listens for exactly the balancers of `specs`; returns what could not listen.
    pub async fn sync(&mut self, specs: &BTreeMap<String, Spec>) -> Vec<BalancerError> {
        self.0.retain(|uid, _| specs.contains_key(uid));
        let mut errors = Vec::new();
        for (uid, spec) in specs {
            if let Err(e) = self.set(uid, spec).await {
                errors.push(e);
            }
        }
        errors
    }
}

/// Binds the balancer's ports and starts forwarding.
async fn start(spec: Spec) -> Result<Running, BalancerError> {
    let all = Arc::new(RwLock::new(spec.backends.clone()));
    let backends = Arc::new(RwLock::new(spec.backends.clone()));
    let ranges: Arc<Vec<(u32, u32)>> =
        Arc::new(spec.source_ranges.iter().filter_map(|c| cidr(c)).collect());
    let mut listeners = JoinSet::new();
    for (port, node_port) in spec.ports.iter().copied() {
        let addr = SocketAddr::new(IpAddr::V4(spec.ip), port);
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| BalancerError::Io {
                what: format!("balancer of {} on {addr}", spec.service),
                source,
            })?;
        listeners.spawn(serve(l, node_port, backends.clone(), ranges.clone()));
    }
    for (port, node_port) in spec.udp_ports.iter().copied() {
        let addr = SocketAddr::new(IpAddr::V4(spec.ip), port);
        let sock = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| BalancerError::Io {
                what: format!("balancer of {} on {addr}/udp", spec.service),
                source,
            })?;
        listeners.spawn(crate::udp::serve(
            sock,
            node_port,
            backends.clone(),
            ranges.clone(),
        ));
    }
    if spec.health_check_port != 0 {
        let port = spec.health_check_port;
        listeners.spawn(crate::health::check(all.clone(), backends.clone(), port));
    }
    tracing::info!(service = %spec.service, ip = %spec.ip, "load balancer serving");
    Ok(Running {
        spec,
        all,
        backends,
        _listeners: listeners,
    })
}

/// `a.b.c.d/n` as (network, mask).
pub(crate) fn cidr(s: &str) -> Option<(u32, u32)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX.checked_shl(32 - bits.min(32))?
    };
    Some((u32::from(ip) & mask, mask))
}

/// Whether `peer` may connect: any peer when there are no ranges.
pub fn allowed(peer: IpAddr, ranges: &[(u32, u32)]) -> bool {
    match peer {
        _ if ranges.is_empty() => true,
        IpAddr::V4(ip) => ranges
            .iter()
            .any(|(net, mask)| u32::from(ip) & mask == *net),
        IpAddr::V6(_) => false,
    }
}

async fn serve(
    l: TcpListener,
    node_port: u16,
    backends: Arc<RwLock<Vec<SocketAddr>>>,
    ranges: Arc<Vec<(u32, u32)>>,
) {
    let mut connections = JoinSet::new();
    let mut next = 0usize;
    loop {
        let Ok((client, peer)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        if !allowed(peer.ip(), &ranges) {
            tracing::debug!(%peer, "refused by loadBalancerSourceRanges");
            continue;
        }
        let order: Vec<SocketAddr> = {
            let b = backends.read();
            (0..b.len()).map(|i| b[(next + i) % b.len()]).collect()
        };
        next = next.wrapping_add(1);
        connections.spawn(forward(client, order, node_port));
    }
}

/// Connects `client` to the first backend (at `node_port`) that answers.
async fn forward(mut client: TcpStream, order: Vec<SocketAddr>, node_port: u16) {
    for b in order {
        let to = SocketAddr::new(b.ip(), node_port);
        let Ok(Ok(mut upstream)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(to)).await
        else {
            continue;
        };
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ranges() {
        let r = vec![cidr("192.0.2.0/24").unwrap()];
        assert!(allowed("192.0.2.9".parse().unwrap(), &r));
        assert!(!allowed("198.51.100.1".parse().unwrap(), &r));
        assert!(allowed("198.51.100.1".parse().unwrap(), &[]));
        assert!(allowed(
            "1.2.3.4".parse().unwrap(),
            &[cidr("0.0.0.0/0").unwrap()]
        ));
    }
}
