//! etcd v3 API clients of one member: plaintext for etcd, TLS with a client certificate
//! for rkube members.

use std::net::SocketAddr;
use std::time::Duration;

use rkube_proto::etcd::cluster_client::ClusterClient;
use rkube_proto::etcd::kv_client::KvClient;
use rkube_proto::etcd::lease_client::LeaseClient;
use rkube_proto::etcd::maintenance_client::MaintenanceClient;
use rkube_proto::etcd::watch_client::WatchClient;
use rkube_proto::etcd::RangeRequest;
use tonic::transport::Channel;

/// etcd v3 API clients of one member.
#[derive(Clone)]
pub struct Clients {
    pub kv: KvClient<Channel>,
    pub watch: WatchClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub cluster: ClusterClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
}

impl Clients {
    /// The member's current revision, from a range's response header.
    pub async fn revision(&mut self) -> i64 {
        let req = RangeRequest {
            key: "any".into(),
            ..Default::default()
        };
        self.kv
            .range(req)
            .await
            .expect("range")
            .into_inner()
            .header
            .expect("header")
            .revision
    }

    /// The value stored under `key`, if any (a linearizable range).
    pub async fn value(&mut self, key: &str) -> Option<Vec<u8>> {
        let r = self
            .kv
            .range(RangeRequest {
                key: key.to_string().into_bytes().into(),
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
        r.kvs.first().map(|kv| kv.value.to_vec())
    }

    /// Plaintext clients (etcd itself, or a member under `--insecure-plaintext`).
    pub fn connect_lazy(addr: SocketAddr) -> Clients {
        Self::connect(addr, None)
    }

    /// Clients over TLS with `tls` (the admin certificate, for an rkube member), or
    /// plaintext without.
    pub fn connect(addr: SocketAddr, tls: Option<tonic::transport::ClientTlsConfig>) -> Clients {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut ep = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
            .expect("endpoint");
        if let Some(t) = tls {
            ep = ep.tls_config(t).expect("TLS config");
        }
        let ch = ep
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .connect_lazy();
        Clients {
            kv: KvClient::new(ch.clone()),
            watch: WatchClient::new(ch.clone()),
            lease: LeaseClient::new(ch.clone()),
            cluster: ClusterClient::new(ch.clone()),
            maintenance: MaintenanceClient::new(ch),
        }
    }
}
