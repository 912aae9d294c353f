//! The etcd v3 gRPC API over a [`Store`]: KV, Watch, Lease, Cluster and Maintenance, so
//! etcdctl and etcd client libraries work against rkube's store.

mod cluster;
mod kv;
mod lease;
mod watch;

use rkube_proto::etcd::cluster_server::ClusterServer;
use rkube_proto::etcd::kv_server::KvServer;
use rkube_proto::etcd::lease_server::LeaseServer;
use rkube_proto::etcd::maintenance_server::MaintenanceServer;
use rkube_proto::etcd::watch_server::WatchServer;
use rkube_proto::etcd::ResponseHeader;
use tokio::net::TcpListener;

use crate::Store;

/// The etcd services of one member.
#[derive(Clone)]
pub struct EtcdService {
    store: Store,
}

impl EtcdService {
    pub fn new(store: Store) -> Self {
        EtcdService { store }
    }

    /// A response header stamped with this member's cluster and member ids.
    fn header(&self, h: Option<ResponseHeader>) -> Option<ResponseHeader> {
        let mut h = h.unwrap_or_default();
        h.cluster_id = self.store.cluster_id();
        h.member_id = self.store.id();
        if h.raft_term == 0 {
            h.raft_term = self.store.term();
        }
        Some(h)
    }

    /// Adds every etcd service to a set of routes shared with other services.
    pub fn add_routes(self, routes: tonic::service::Routes) -> tonic::service::Routes {
        let max = 2 * self.store.limits().max_request_bytes + 512 * 1024;
        routes
            .add_service(KvServer::new(self.clone()).max_decoding_message_size(max))
            .add_service(WatchServer::new(self.clone()))
            .add_service(LeaseServer::new(self.clone()))
            .add_service(ClusterServer::new(self.clone()))
            .add_service(MaintenanceServer::new(self))
    }

    /// Adds every etcd service to a tonic router.
    pub fn add_to(self, b: &mut tonic::transport::Server) -> tonic::transport::server::Router {
        // Room above the limit, so an oversized request reaches validation and gets an
        // error that names the field, instead of a transport-level decoding error.
        let max = 2 * self.store.limits().max_request_bytes + 512 * 1024;
        b.add_service(KvServer::new(self.clone()).max_decoding_message_size(max))
            .add_service(WatchServer::new(self.clone()))
            .add_service(LeaseServer::new(self.clone()))
            .add_service(ClusterServer::new(self.clone()))
            .add_service(MaintenanceServer::new(self))
    }
}

/// Serves the etcd v3 API of `store` on `listener` until the task is dropped.
pub async fn serve(store: Store, listener: TcpListener) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut b = tonic::transport::Server::builder().tcp_nodelay(true);
    EtcdService::new(store)
        .add_to(&mut b)
        .serve_with_incoming(incoming)
        .await
}
