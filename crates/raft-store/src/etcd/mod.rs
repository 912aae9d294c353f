//! The etcd v3 gRPC API over a [`Store`]: KV, Watch, Lease, Cluster and Maintenance, so
//! etcdctl and etcd client libraries work against rkube's store.
//!
//! It hands out every key and writes around every check of the resource API, so it is
//! for administrators and members only: on TLS it requires a client certificate from the
//! cluster CA in the `system:masters` or members' group (etcd's `--client-cert-auth`).

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
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

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

    /// Adds every etcd service to a set of routes shared with other services. With
    /// `guard`, every call needs an administrator's or a member's client certificate.
    pub fn add_routes(
        self,
        routes: tonic::service::Routes,
        guard: Guard,
    ) -> tonic::service::Routes {
        // Room above the limit, so an oversized request reaches validation and gets an
        // error that names the field, instead of a transport-level decoding error.
        let max = 2 * self.store.limits().max_request_bytes + 512 * 1024;
        let g = move |r| guard.check(r);
        routes
            .add_service(InterceptedService::new(
                KvServer::new(self.clone()).max_decoding_message_size(max),
                g,
            ))
            .add_service(InterceptedService::new(WatchServer::new(self.clone()), g))
            .add_service(InterceptedService::new(LeaseServer::new(self.clone()), g))
            .add_service(InterceptedService::new(ClusterServer::new(self.clone()), g))
            .add_service(InterceptedService::new(MaintenanceServer::new(self), g))
    }
}

/// Who may call the etcd API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Callers with a verified certificate of `system:masters` or of the members' group.
    AdminsAndMembers,
    /// Anyone: a plaintext listener under an `--insecure-` flag.
    Insecure,
}

impl Guard {
    #[allow(clippy::result_large_err)]
    fn check(self, req: Request<()>) -> Result<Request<()>, Status> {
        if self == Guard::Insecure {
            return Ok(req);
        }
        let certs = req.peer_certs().ok_or_else(|| {
            Status::unauthenticated(
                "the etcd API requires a client certificate from the cluster CA (--cert/--key)",
            )
        })?;
        match pki::Identity::of(&certs) {
            Some(id) if id.in_group(pki::MASTERS_GROUP) || id.in_group(pki::MEMBERS_GROUP) => {
                Ok(req)
            }
            Some(id) => Err(Status::permission_denied(format!(
                "user {:?} may not use the etcd API: it is for members and system:masters only",
                id.user
            ))),
            None => Err(Status::unauthenticated("unreadable client certificate")),
        }
    }
}

/// Serves the etcd v3 API of `store` on `listener` until the task is dropped: mutual TLS
/// with `tls`, or plaintext for anyone without it.
pub async fn serve(
    store: Store,
    listener: TcpListener,
    tls: Option<std::sync::Arc<pki::RenewingCert>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let guard = if tls.is_some() {
        Guard::AdminsAndMembers
    } else {
        tracing::warn!("the etcd API is plaintext and open to anyone (--insecure-plaintext)");
        Guard::Insecure
    };
    let routes = EtcdService::new(store).add_routes(tonic::service::Routes::default(), guard);
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_routes(routes);
    match tls {
        Some(t) => {
            let cfg = t.server_config(pki::ClientAuth::Required, &[b"h2"])?;
            let incoming = pki::tls_incoming(listener, cfg);
            Ok(server.serve_with_incoming(incoming).await?)
        }
        None => {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            Ok(server.serve_with_incoming(incoming).await?)
        }
    }
}
