//! The `local` provider's load balancers: each Service gets an address from the pool
//! (`--lb-pool`) and a balancer there on the Service's ports to the nodes' NodePorts
//! ([`crate::listeners`]). The allocations and what each balancer forwards are kept in a
//! state file, so a restarted provider serves them again before anyone asks.
//!
//! Who announces an address ([`Announce`]):
//! - **provider**: the provider's own machine listens on every address. Addresses outside
//!   127.0.0.0/8 must be local to it (for example added with `ip addr add`).
//! - **nodes**: one node holds each address, elected among the Service's backend nodes
//!   (the holder keeps it while it stays a backend). Its node agent adds the address to
//!   its interface, announces it with gratuitous ARP and runs the balancer; when the
//!   holder is no longer a backend (not Ready, or gone), another node takes over.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::listeners::Listeners;

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
    /// (port, node port), UDP.
    #[serde(default)]
    pub udp_ports: Vec<(u16, u16)>,
    pub backends: Vec<SocketAddr>,
    /// CIDRs the clients must come from; empty: any.
    pub source_ranges: Vec<String>,
    /// With `externalTrafficPolicy: Local`: the port where a node answers 200 while it
    /// has a local endpoint; only such nodes get traffic. 0: every backend does.
    #[serde(default)]
    pub health_check_port: u16,
    /// The backend nodes' names.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// The node that announces the address (with [`Announce::Nodes`]).
    #[serde(default)]
    pub holder: Option<String>,
}

/// Who announces the balancers' addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    Provider,
    Nodes,
}

impl std::str::FromStr for Announce {
    type Err = String;
    fn from_str(s: &str) -> Result<Announce, String> {
        match s {
            "provider" => Ok(Announce::Provider),
            "nodes" => Ok(Announce::Nodes),
            _ => Err(format!("{s:?}: supported values: \"provider\", \"nodes\"")),
        }
    }
}

/// Every balancer, by Service uid.
pub struct Balancers {
    pool: Pool,
    state: PathBuf,
    announce: Announce,
    specs: watch::Sender<BTreeMap<String, Spec>>,
    /// The balancers this process listens for (with [`Announce::Provider`]); its lock
    /// also orders changes.
    listeners: tokio::sync::Mutex<Listeners>,
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
    /// The balancers of the state file `state` (listening again, if this process
    /// announces them), handing out `pool`.
    pub async fn restore(
        pool: Pool,
        state: PathBuf,
        announce: Announce,
    ) -> Result<Balancers, BalancerError> {
        let saved: BTreeMap<String, Spec> = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut listeners = Listeners::default();
        if announce == Announce::Provider {
            if let Some(e) = listeners.sync(&saved).await.into_iter().next() {
                return Err(e);
            }
        }
        Ok(Balancers {
            pool,
            state,
            announce,
            specs: watch::channel(saved).0,
            listeners: tokio::sync::Mutex::new(listeners),
        })
    }

    pub fn announce(&self) -> Announce {
        self.announce
    }

    /// The address of the balancer of `uid`, if it has one.
    pub fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.specs.borrow().get(uid).map(|s| s.ip)
    }

    /// A receiver that sees every balancer now and after every change.
    pub fn subscribe(&self) -> watch::Receiver<BTreeMap<String, Spec>> {
        self.specs.subscribe()
    }

    /// Makes or updates the balancer of `uid`; `wanted` is the address asked for. Returns
    /// its address.
    pub async fn ensure(
        &self,
        uid: &str,
        wanted: Option<Ipv4Addr>,
        mut spec: Spec,
    ) -> Result<Ipv4Addr, BalancerError> {
        let mut listeners = self.listeners.lock().await;
        let mut specs = self.specs.borrow().clone();
        spec.ip = self.address(&specs, uid, wanted)?;
        let old = specs.get(uid).cloned();
        if self.announce == Announce::Nodes {
            spec.holder = elect(old.as_ref().and_then(|s| s.holder.as_deref()), &spec.nodes);
        }
        if old.as_ref() == Some(&spec) {
            return Ok(spec.ip);
        }
        if self.announce == Announce::Provider {
            listeners.set(uid, &spec).await?;
        }
        specs.insert(uid.to_string(), spec.clone());
        self.commit(specs)?;
        Ok(spec.ip)
    }

    /// Stops the balancer of `uid` and frees its address; nothing to do is not an error.
    pub async fn delete(&self, uid: &str) -> Result<(), BalancerError> {
        let mut listeners = self.listeners.lock().await;
        listeners.remove(uid);
        let mut specs = self.specs.borrow().clone();
        if specs.remove(uid).is_some() {
            self.commit(specs)?;
        }
        Ok(())
    }

    fn address(
        &self,
        specs: &BTreeMap<String, Spec>,
        uid: &str,
        wanted: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, BalancerError> {
        let taken = |ip: Ipv4Addr| specs.iter().any(|(u, s)| u != uid && s.ip == ip);
        if let Some(ip) = wanted {
            return match self.pool.contains(ip) && !taken(ip) {
                true => Ok(ip),
                false => Err(BalancerError::Unavailable(ip)),
            };
        }
        if let Some(s) = specs.get(uid) {
            return Ok(s.ip);
        }
        self.pool
            .addresses()
            .find(|ip| !taken(*ip))
            .ok_or(BalancerError::Exhausted)
    }

    /// Saves `specs`, then publishes them.
    fn commit(&self, specs: BTreeMap<String, Spec>) -> Result<(), BalancerError> {
        let io = |source| BalancerError::Io {
            what: self.state.display().to_string(),
            source,
        };
        crate::save_state(&self.state, &specs).map_err(io)?;
        self.specs.send_replace(specs);
        Ok(())
    }
}

/// The node that announces an address: the current holder while it is still one of
/// `nodes`, else the first of them by name (none without nodes).
pub fn elect(current: Option<&str>, nodes: &[String]) -> Option<String> {
    match current {
        Some(c) if nodes.iter().any(|n| n == c) => Some(c.to_string()),
        _ => nodes.iter().min().cloned(),
    }
}

/// The balancers node `node` holds.
pub fn held_by(specs: &BTreeMap<String, Spec>, node: &str) -> BTreeMap<String, Spec> {
    specs
        .iter()
        .filter(|(_, s)| s.holder.as_deref() == Some(node))
        .map(|(u, s)| (u.clone(), s.clone()))
        .collect()
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
    fn a_holder_keeps_its_address_while_it_is_a_backend() {
        let nodes = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(elect(None, &nodes(&["m2", "m1"])).as_deref(), Some("m1"));
        assert_eq!(
            elect(Some("m2"), &nodes(&["m1", "m2"])).as_deref(),
            Some("m2")
        );
        assert_eq!(
            elect(Some("m2"), &nodes(&["m3", "m1"])).as_deref(),
            Some("m1")
        );
        assert_eq!(elect(Some("m2"), &[]), None);
    }
}
