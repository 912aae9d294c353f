//! Cluster DNS, served by every node agent (as CoreDNS is in Kubernetes, but without a pod
//! of its own): the [`zone`] of the cluster's names, rebuilt from the Service and
//! EndpointSlice informers after every change, so answering needs no API call; every
//! other name is asked of the upstream resolvers (the host's, by default).
//!
//! It answers on UDP and TCP at one address. Pods reach it through the `kube-dns` Service,
//! whose endpoints are the nodes' DNS servers (from the `dns.rkube.io/server` annotation
//! each node puts on its Node); with `internalTrafficPolicy: Local`, a node's pods ask
//! their own node. Only the sources it allows (loopback, the node's address and pod
//! range by default) get answers; the rest get REFUSED, so it is never an open resolver.
//! Zone transfers are refused.

mod handler;
pub mod resolv_conf;
pub mod zone;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use client::informer::Informer;
use client::{Api, Client};
use hickory_server::ServerFuture;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::RwLock;
use tokio::net::{TcpListener, UdpSocket};

use self::zone::Zone;
use crate::{Error, Result};

pub use ipnet::IpNet;

/// The annotation on a Node naming its DNS server, `IP:PORT`.
pub const SERVER_ANNOTATION: &str = "dns.rkube.io/server";

/// How the node's DNS server runs.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// The cluster domain, `cluster.local`.
    pub domain: String,
    /// Where it listens, UDP and TCP; port 0 picks one free for both.
    pub listen: SocketAddr,
    /// Where other names are asked; empty: the host's resolvers (/etc/resolv.conf).
    pub upstreams: Vec<SocketAddr>,
    /// The sources it answers.
    pub allow: Vec<IpNet>,
}

/// A bound DNS server, not yet answering.
pub struct DnsServer {
    cfg: DnsConfig,
    udp: UdpSocket,
    tcp: TcpListener,
}

impl DnsServer {
    /// Binds UDP and TCP on the same port.
    pub async fn bind(cfg: DnsConfig) -> Result<DnsServer> {
        let what = || format!("--dns-listen {}", cfg.listen);
        let mut last = None;
        // With port 0, UDP picks the port; TCP may find it taken, then try again.
        for _ in 0..8 {
            let udp = UdpSocket::bind(cfg.listen)
                .await
                .map_err(|e| Error::io(what(), e))?;
            let addr = udp.local_addr().map_err(|e| Error::io(what(), e))?;
            match TcpListener::bind(addr).await {
                Ok(tcp) => return Ok(DnsServer { cfg, udp, tcp }),
                Err(e) if cfg.listen.port() == 0 => last = Some(e),
                Err(e) => return Err(Error::io(what(), e)),
            }
        }
        Err(Error::io(
            what(),
            last.unwrap_or_else(|| std::io::Error::other("no free port")),
        ))
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.udp
            .local_addr()
            .map_err(|e| Error::io("the DNS server's address", e))
    }

    /// Answers until `stop` completes.
    pub async fn run(self, client: Client, stop: impl Future<Output = ()>) -> Result<()> {
        let services = Informer::start(Api::<Service>::all(client.clone()), Default::default());
        let slices = Informer::start(Api::<EndpointSlice>::all(client), Default::default());
        let zone = Arc::new(RwLock::new(Arc::new(Zone::build(
            &self.cfg.domain,
            &[],
            &[],
        ))));
        let upstream = handler::upstream(&self.cfg.upstreams)?;
        let h = handler::Handler::new(zone.clone(), upstream);
        let mut server = ServerFuture::with_access(h, &[], &self.cfg.allow);
        let addr = self.local_addr()?;
        server.register_socket(self.udp);
        server.register_listener(self.tcp, Duration::from_secs(5));
        tracing::info!(%addr, domain = %self.cfg.domain, "cluster DNS serving");
        tokio::pin!(stop);
        let keep = keep_zone(&self.cfg.domain, &services, &slices, &zone);
        tokio::select! {
            _ = keep => {}
            _ = &mut stop => {}
            r = server.block_until_done() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "cluster DNS stopped");
                }
            }
        }
        let _ = server.shutdown_gracefully().await;
        Ok(())
    }
}

/// Rebuilds the zone after every change the informers see (changes that arrive together
/// go into one build).
async fn keep_zone(
    domain: &str,
    services: &Informer<Service>,
    slices: &Informer<EndpointSlice>,
    zone: &RwLock<Arc<Zone>>,
) {
    let mut svc_rx = services.subscribe();
    let mut eps_rx = slices.subscribe();
    services.wait_ready().await;
    slices.wait_ready().await;
    loop {
        let svcs = services.list();
        let eps = slices.list();
        let z = Zone::build(
            domain,
            &svcs.iter().map(|s| s.as_ref()).collect::<Vec<_>>(),
            &eps.iter().map(|s| s.as_ref()).collect::<Vec<_>>(),
        );
        *zone.write() = Arc::new(z);
        tokio::select! {
            r = svc_rx.recv() => if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) { return },
            r = eps_rx.recv() => if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) { return },
        }
        while svc_rx.try_recv().is_ok() || eps_rx.try_recv().is_ok() {}
    }
}
