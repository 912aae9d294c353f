//! The node's cluster DNS flags: the server it runs and what its pods are told.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{ArgAction, Args};
use node::dns::{DnsConfig, IpNet};

/// Sources the DNS server answers besides loopback and the node itself: the private
/// ranges, where pods and nodes live, so it is never an open resolver.
const PRIVATE: &str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7";

#[derive(Args, Clone)]
pub struct DnsFlags {
    /// The resolver address pods get (default: the kube-dns Service's ClusterIP).
    #[arg(long)]
    pub cluster_dns: Option<String>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Run the node's DNS server, which the kube-dns Service sends this node's pods to.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub dns_server: bool,
    /// Where the DNS server listens, UDP and TCP (default: the node IP, a free port).
    #[arg(long)]
    pub dns_listen: Option<SocketAddr>,
    /// Resolvers for names outside the cluster, `IP:PORT,…` (default: /etc/resolv.conf's).
    #[arg(long, value_delimiter = ',')]
    pub dns_upstream: Vec<SocketAddr>,
    /// Sources the DNS server answers, besides loopback and the node's IP, as CIDRs;
    /// others get REFUSED.
    #[arg(long, value_delimiter = ',', default_value = PRIVATE)]
    pub dns_allow: Vec<IpNet>,
}

impl DnsFlags {
    /// The server's configuration, if it runs.
    pub fn server(&self, node_ip: &str) -> anyhow::Result<Option<DnsConfig>> {
        if !self.dns_server {
            return Ok(None);
        }
        let ip: std::net::IpAddr = node_ip
            .parse()
            .with_context(|| format!("--node-ip {node_ip:?}: not an IP address"))?;
        let mut allow: Vec<IpNet> =
            vec!["127.0.0.0/8".parse()?, "::1/128".parse()?, IpNet::from(ip)];
        allow.extend(self.dns_allow.iter().copied());
        Ok(Some(DnsConfig {
            domain: self.cluster_domain.clone(),
            listen: self.dns_listen.unwrap_or(SocketAddr::new(ip, 0)),
            upstreams: self.dns_upstream.clone(),
            allow,
        }))
    }
}
