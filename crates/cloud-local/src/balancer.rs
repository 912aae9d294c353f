//! The `local` provider's load balancers, on the machine the provider runs on: each
//! Service gets an address from the pool (`--lb-pool`), and a TCP balancer listening there
//! on the Service's ports forwards each connection to a backend node's NodePort, the next
//! node when one does not answer. `loadBalancerSourceRanges` are enforced on the peer's
//! address. The allocations and what each balancer forwards are kept in a state file, so
//! a restarted provider serves them again before anyone asks.
//!
//! Addresses outside 127.0.0.0/8 must be local to the machine (for example added with
//! `ip addr add`); the provider does not change the host's interfaces.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// An IPv4 range addresses are handed out from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    base: u32,
    bits: u8,
}

impl std::str::FromStr for Pool {
    type Err = String;
    fn from_str(s: &str) -> Result<Pool, String> {
        let bad = || format!("{s:?}: not an IPv4 CIDR (e.g. 127.200.0.0/24)");
        let (ip, bits) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let bits: u8 = bits.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&bits) {
            return Err(format!("{s:?}: the prefix must be between /8 and /30"));
        }
        let mask = u32::MAX << (32 - bits);
        Ok(Pool {
            base: u32::from(ip) & mask,
            bits,
        })
    }
}

impl Pool {
    /// The usable addresses: not the network's nor the broadcast address.
    fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let size = 1u32 << (32 - self.bits);
        (1..size - 1).map(move |i| Ipv4Addr::from(self.base + i))
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.bits);
        u32::from(ip) & mask == self.base
    }
}

/// What one balancer does; kept in the state file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub service: String,
    pub ip: Ipv4Addr,
    /// (port, node port), TCP.
    pub ports: Vec<(u16, u16)>,
    pub backends: Vec<SocketAddr>,
    /// CIDRs the clients must come from; empty: any.
    pub source_ranges: Vec<String>,
}

/// A running balancer: its listeners, and the backends they share.
struct Running {
    spec: Spec,
    backends: Arc<RwLock<Vec<SocketAddr>>>,
    _listeners: JoinSet<()>,
}

/// Every balancer, by Service uid.
pub struct Balancers {
    pool: Pool,
    state: PathBuf,
    running: Mutex<BTreeMap<String, Running>>,
}

/// Why a balancer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    #[error("loadBalancerIP {0}: not in the pool, or taken")]
    Unavailable(Ipv4Addr),
    #[error("the address pool is used up")]
    Exhausted,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Balancers {
    /// The balancers of the state file `state` (started again), handing out `pool`.
    pub async fn restore(pool: Pool, state: PathBuf) -> Result<Balancers, BalancerError> {
        let saved: BTreeMap<String, Spec> = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let b = Balancers {
            pool,
            state,
            running: Mutex::new(BTreeMap::new()),
        };
        for (uid, spec) in saved {
            let r = start(spec).await?;
            b.running.lock().insert(uid, r);
        }
        Ok(b)
    }

    /// The address of the balancer of `uid`, if it has one.
    pub fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.running.lock().get(uid).map(|r| r.spec.ip)
    }

    /// Makes or updates the balancer of `uid`; `wanted` is the address asked for. Returns
    /// its address.
    pub async fn ensure(
        &self,
        uid: &str,
        wanted: Option<Ipv4Addr>,
        mut spec: Spec,
    ) -> Result<Ipv4Addr, BalancerError> {
        spec.ip = self.address(uid, wanted)?;
        let unchanged_listeners = {
            let mut running = self.running.lock();
            match running.get_mut(uid) {
                Some(r) if r.spec.ports == spec.ports && r.spec.ip == spec.ip => {
                    *r.backends.write() = spec.backends.clone();
                    r.spec = spec.clone();
                    true
                }
                _ => false,
            }
        };
        if !unchanged_listeners {
            // The old listeners go first, so the new ones can bind the same ports.
            self.running.lock().remove(uid);
            let r = start(spec.clone()).await?;
            self.running.lock().insert(uid.to_string(), r);
        }
        self.save()?;
        Ok(spec.ip)
    }

    /// Stops the balancer of `uid` and frees its address; nothing to do is not an error.
    pub fn delete(&self, uid: &str) -> Result<(), BalancerError> {
        if self.running.lock().remove(uid).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn address(&self, uid: &str, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr, BalancerError> {
        let running = self.running.lock();
        let taken = |ip: Ipv4Addr| running.iter().any(|(u, r)| u != uid && r.spec.ip == ip);
        if let Some(ip) = wanted {
            return match self.pool.contains(ip) && !taken(ip) {
                true => Ok(ip),
                false => Err(BalancerError::Unavailable(ip)),
            };
        }
        if let Some(r) = running.get(uid) {
            return Ok(r.spec.ip);
        }
        self.pool
            .addresses()
            .find(|ip| !taken(*ip))
            .ok_or(BalancerError::Exhausted)
    }

    fn save(&self) -> Result<(), BalancerError> {
        let specs: BTreeMap<String, Spec> = self
            .running
            .lock()
            .iter()
            .map(|(u, r)| (u.clone(), r.spec.clone()))
            .collect();
        let io = |source| BalancerError::Io {
            what: self.state.display().to_string(),
            source,
        };
        let tmp = self.state.with_extension("tmp");
        let text = serde_json::to_vec_pretty(&specs).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &self.state).map_err(io)
    }
}

/// Binds the balancer's ports and starts forwarding.
async fn start(spec: Spec) -> Result<Running, BalancerError> {
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
    tracing::info!(service = %spec.service, ip = %spec.ip, "load balancer serving");
    Ok(Running {
        spec,
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
    fn pools_hand_out_host_addresses_only() {
        let p: Pool = "127.200.0.0/30".parse().unwrap();
        let all: Vec<Ipv4Addr> = p.addresses().collect();
        assert_eq!(
            all,
            [Ipv4Addr::new(127, 200, 0, 1), Ipv4Addr::new(127, 200, 0, 2)]
        );
        assert!(p.contains(Ipv4Addr::new(127, 200, 0, 3)));
        assert!(!p.contains(Ipv4Addr::new(127, 200, 1, 1)));
        assert!("10.0.0.0/31".parse::<Pool>().unwrap_err().contains("/30"));
        assert!("nonsense"
            .parse::<Pool>()
            .unwrap_err()
            .contains("not an IPv4 CIDR"));
    }

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
