//! The service proxy (kube-proxy): it watches Services and EndpointSlices and makes every
//! ClusterIP:port and NodePort of this node reach a ready endpoint.
//!
//! Two modes:
//! - [`userspace`] (the default): the proxy accepts the connections itself. Needs no root
//!   when ClusterIPs come from 127.0.0.0/8; as root, other ClusterIPs are put on a dummy
//!   interface.
//! - [`nftables`] (root): DNAT rules in the kernel, kept in sync incrementally.
//!
//! Either way the proxy rebuilds its [`table`] from the informers' state after every
//! change (changes that arrive together are applied together), and hands it to the mode
//! and to the [`health`] check servers of Local LoadBalancers.

pub mod addrs;
pub mod health;
pub mod nftables;
pub mod table;
pub mod userspace;

use std::collections::BTreeMap;
use std::future::Future;

use client::informer::Informer;
use client::{Api, Client};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::broadcast::error::TryRecvError;

use self::table::ServicePort;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Userspace,
    Nftables,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "userspace" => Ok(Mode::Userspace),
            "nftables" => Ok(Mode::Nftables),
            _ => Err(Error::invalid(
                format!("{s:?}"),
                "supported values: \"nftables\", \"userspace\"",
            )),
        }
    }
}

/// FNV-1a: short stable names for interfaces, tables and chains.
pub fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

enum Backend {
    Userspace(userspace::Userspace),
    Nftables(nftables::Nftables),
}

impl Backend {
    async fn sync(&mut self, t: &BTreeMap<String, ServicePort>) {
        match self {
            Backend::Userspace(u) => u.sync(t).await,
            Backend::Nftables(n) => n.sync(t).await,
        }
    }
    async fn shutdown(&mut self) {
        match self {
            Backend::Userspace(u) => u.shutdown().await,
            Backend::Nftables(n) => n.shutdown().await,
        }
    }
}

/// Runs the proxy of `node` until `stop` completes, then removes what it set up
/// (listeners, ClusterIP addresses, the nftables table).
pub async fn run(
    client: Client,
    node: &str,
    mode: Mode,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let mut backend = match mode {
        Mode::Userspace => Backend::Userspace(userspace::Userspace::new(node).await),
        Mode::Nftables => Backend::Nftables(nftables::Nftables::new(node).await?),
    };
    let services = Informer::start(Api::<Service>::all(client.clone()), Default::default());
    let slices = Informer::start(Api::<EndpointSlice>::all(client), Default::default());
    let mut svc_rx = services.subscribe();
    let mut eps_rx = slices.subscribe();
    tokio::pin!(stop);
    tokio::select! {
        _ = async { services.wait_ready().await; slices.wait_ready().await } => {}
        _ = &mut stop => return Ok(()),
    }
    tracing::info!(node, ?mode, "service proxy running");
    let mut last: Option<BTreeMap<String, ServicePort>> = None;
    let mut health = health::HealthChecks::default();
    loop {
        let svcs = services.list();
        let eps = slices.list();
        let t = table::build(
            &svcs.iter().map(|s| s.as_ref()).collect::<Vec<_>>(),
            &eps.iter().map(|s| s.as_ref()).collect::<Vec<_>>(),
            node,
        );
        if last.as_ref() != Some(&t) {
            let started = std::time::Instant::now();
            backend.sync(&t).await;
            health.sync(&t).await;
            let endpoints: usize = t.values().map(|s| s.endpoints.len()).sum();
            tracing::debug!(ports = t.len(), endpoints, took = ?started.elapsed(), "proxy synced");
            last = Some(t);
        }
        tokio::select! {
            _ = svc_rx.recv() => {}
            _ = eps_rx.recv() => {}
            _ = &mut stop => break,
        }
        // Whatever else has arrived goes into the same sync.
        while !matches!(
            svc_rx.try_recv(),
            Err(TryRecvError::Empty | TryRecvError::Closed)
        ) {}
        while !matches!(
            eps_rx.try_recv(),
            Err(TryRecvError::Empty | TryRecvError::Closed)
        ) {}
    }
    backend.shutdown().await;
    tracing::info!(node, "service proxy stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_others_are_refused() {
        assert_eq!("nftables".parse::<Mode>().unwrap(), Mode::Nftables);
        assert_eq!("userspace".parse::<Mode>().unwrap(), Mode::Userspace);
        let e = "iptables".parse::<Mode>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#""iptables": supported values: "nftables", "userspace""#
        );
    }
}
