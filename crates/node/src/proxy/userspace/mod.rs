//! The userspace proxy: the proxy itself accepts connections on every ClusterIP:port and
//! NodePort and carries the bytes to an endpoint. No packet filter, so it runs without
//! root when ClusterIPs come from 127.0.0.0/8.
//!
//! A listener exists while its Service port has ready endpoints; without any, nothing
//! listens and clients get "connection refused". Endpoint changes swap the balancer's
//! list in place, so established connections are never dropped by a sync.

mod balancer;
mod tcp;
mod udp;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::task::JoinHandle;

use self::balancer::Balancer;
use super::addrs::Addrs;
use super::table::{Protocol, ServicePort};

/// Where a listener listens: a ClusterIP, or every address for a NodePort.
type ListenKey = (Ipv4Addr, u16, Protocol);

struct Listener {
    balancer: Arc<Balancer>,
    task: JoinHandle<()>,
}

pub struct Userspace {
    addrs: Addrs,
    listeners: HashMap<ListenKey, Listener>,
    /// Listeners that could not be opened, reported once.
    failed: HashSet<ListenKey>,
}

/// A socket on `addr` with SO_REUSEADDR and SO_REUSEPORT, so the proxies of several node
/// agents on one host can share an address.
fn socket(addr: SocketAddr, ty: socket2::Type) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, ty, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

impl Userspace {
    pub async fn new(node: &str) -> Self {
        let mut addrs = Addrs::new(node);
        addrs.clear().await;
        Userspace {
            addrs,
            listeners: HashMap::new(),
            failed: HashSet::new(),
        }
    }

    pub async fn sync(&mut self, table: &BTreeMap<String, ServicePort>) {
        let ips: BTreeSet<Ipv4Addr> = table.values().filter_map(|s| s.cluster_ip).collect();
        if let Err(errs) = self.addrs.sync(&ips).await {
            let error = errs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!(%error, "proxy: ClusterIPs not all local");
        }
        // Each listener with the endpoints it spreads over: ClusterIP traffic over
        // `endpoints`, NodePort traffic over `external_endpoints`.
        let mut want: HashMap<ListenKey, (&ServicePort, &Vec<SocketAddr>)> = HashMap::new();
        for sp in table.values() {
            if let Some(ip) = sp.cluster_ip.filter(|_| !sp.endpoints.is_empty()) {
                want.insert((ip, sp.port, sp.protocol), (sp, &sp.endpoints));
            }
            if let Some(np) = sp.node_port.filter(|_| !sp.external_endpoints.is_empty()) {
                let key = (Ipv4Addr::UNSPECIFIED, np, sp.protocol);
                want.insert(key, (sp, &sp.external_endpoints));
            }
        }
        self.listeners.retain(|k, l| {
            let keep = want.contains_key(k);
            if !keep {
                l.task.abort();
            }
            keep
        });
        self.failed.retain(|k| want.contains_key(k));
        for (key, (sp, endpoints)) in want {
            if let Some(l) = self.listeners.get(&key) {
                l.balancer.update(endpoints.clone(), sp.affinity);
                continue;
            }
            let balancer = Arc::new(Balancer::new(endpoints.clone(), sp.affinity));
            match open(key, balancer.clone()) {
                Ok(task) => {
                    self.failed.remove(&key);
                    self.listeners.insert(key, Listener { balancer, task });
                }
                Err(e) => {
                    if self.failed.insert(key) {
                        tracing::warn!(service = %sp.name, addr = %key.0, port = key.1, error = %e, "proxy: cannot listen");
                    }
                }
            }
        }
    }

    /// Stops listening and gives the ClusterIPs back.
    pub async fn shutdown(&mut self) {
        for (_, l) in self.listeners.drain() {
            l.task.abort();
        }
        self.addrs.clear().await;
    }
}

fn open(key: ListenKey, balancer: Arc<Balancer>) -> std::io::Result<JoinHandle<()>> {
    let addr = SocketAddr::from((key.0, key.1));
    Ok(match key.2 {
        Protocol::Tcp => tokio::spawn(tcp::serve(tcp::listen(addr)?, balancer)),
        Protocol::Udp => tokio::spawn(udp::serve(udp::bind(addr)?, balancer)),
    })
}
