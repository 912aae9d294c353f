//! The `local` cloud provider: a plugin process (`rkube cloud-provider local`) that gives
//! ordinary machines what a cloud gives its nodes, through the same protocol as any other
//! provider (`proto/cloudprovider.proto`).
//!
//! - **Instances** come from an [`inventory`] file an operator keeps: a machine removed
//!   from it is gone, one marked `shutdown` is shut down.
//! - **LoadBalancer** (with an address pool): a TCP [`balancer`] per Service, forwarding to
//!   the nodes' NodePorts, on the provider's machine or on a node elected to hold its
//!   address, whose [`agent`] announces it and moves it when that node goes.
//! - **Routes** (with a route state file): the [`routes`] table, which every machine's
//!   node [`agent`] installs as kernel routes, learning its part over the NodeAgent
//!   service of the provider's TCP port.
//! - **Volumes** (with a volume pool): sparse files attached as loop devices, or
//!   directories, each on one node ([`volumes`]).
//!
//! It listens on a unix socket only the owner may open (mode 0600), so who may call it is
//! decided by the filesystem; or on TCP with mutual TLS ([`serve_tcp`]), where a caller
//! needs a client certificate from the CA it is given, naming a user it allows.

pub mod agent;
pub mod announce;
pub mod balancer;
mod health;
pub mod inventory;
pub mod listeners;
mod node_agent;
mod route_services;
pub mod routes;
mod services;
mod udp;
mod volume_services;
pub mod volumes;

use std::path::Path;

use rkube_proto::cloudprovider as cp;
use tokio_stream::wrappers::UnixListenerStream;

pub use services::Local;

/// The provider's name.
pub const NAME: &str = "local";

/// Why the provider could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("TLS: {0}")]
    Tls(#[from] pki::Error),
}

/// Writes `value` as JSON to `path` whole, then renames it into place, so a restart never
/// reads half a state file.
pub(crate) fn save_state(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(value).unwrap_or_default();
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ServeError {
    move |source| ServeError::Io {
        what: what.to_string(),
        source,
    }
}

/// Serves the provider on the unix socket `socket` (a stale socket file is replaced) until
/// `stop` completes. Node agents are not served here: they reach the provider over TCP.
pub async fn serve(
    socket: &Path,
    local: Local,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir.display()))?;
    }
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(socket.display())(e)),
    }
    let listener = tokio::net::UnixListener::bind(socket).map_err(io(socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .map_err(io(socket.display()))?;
    }
    tracing::info!(socket = %socket.display(), "local cloud provider serving");
    let lb = local
        .offers_load_balancers()
        .then(|| cp::load_balancer_server::LoadBalancerServer::new(local.clone()));
    let routes = local
        .offers_routes()
        .then(|| cp::routes_server::RoutesServer::new(local.clone()));
    let volumes = local
        .offers_volumes()
        .then(|| cp::volumes_server::VolumesServer::new(local.clone()));
    tonic::transport::Server::builder()
        .add_service(cp::identity_server::IdentityServer::new(local.clone()))
        .add_service(cp::instances_server::InstancesServer::new(local))
        .add_optional_service(lb)
        .add_optional_service(routes)
        .add_optional_service(volumes)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop)
        .await?;
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// TCP with mutual TLS: the provider's serving certificate, the CA its callers'
/// certificates must come from, and the users (certificate common names) it answers.
pub struct TcpTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
    pub allowed_users: Vec<String>,
}

/// Serves the provider on `listener` over mutual TLS until `stop` completes. A caller
/// without a certificate from `tls.client_ca_pem` cannot connect; one whose certificate
/// names a user not in `tls.allowed_users` gets PERMISSION_DENIED on every call of the
/// cloud provider protocol. NodeAgent answers nodes only (`system:node:<name>` in
/// `system:nodes`), each about its own machine.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    tls: TcpTls,
    local: Local,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let served = pki::ServedCert::new();
    served.set(&tls.cert_pem, &tls.key_pem)?;
    let cfg = served.server_config(&tls.client_ca_pem, pki::ClientAuth::Required, &[b"h2"])?;
    let addr = listener.local_addr().map_err(io("the listener"))?;
    tracing::info!("local cloud provider serving on {addr}");
    let allowed = std::sync::Arc::new(tls.allowed_users);
    let check = move |req: tonic::Request<()>| -> Result<tonic::Request<()>, tonic::Status> {
        let who = req.peer_certs().and_then(|c| pki::Identity::of(&c));
        match who {
            Some(id) if allowed.contains(&id.user) => Ok(req),
            Some(id) => Err(tonic::Status::permission_denied(format!(
                "{} may not call this cloud provider",
                id.user
            ))),
            None => Err(tonic::Status::unauthenticated(
                "a client certificate is required",
            )),
        }
    };
    tonic::transport::Server::builder()
        .add_service(cp::identity_server::IdentityServer::with_interceptor(
            local.clone(),
            check.clone(),
        ))
        .add_service(cp::instances_server::InstancesServer::with_interceptor(
            local.clone(),
            check.clone(),
        ))
        .add_optional_service(local.offers_load_balancers().then(|| {
            cp::load_balancer_server::LoadBalancerServer::with_interceptor(
                local.clone(),
                check.clone(),
            )
        }))
        .add_optional_service(local.offers_routes().then(|| {
            cp::routes_server::RoutesServer::with_interceptor(local.clone(), check.clone())
        }))
        .add_optional_service(
            local
                .offers_volumes()
                .then(|| cp::volumes_server::VolumesServer::with_interceptor(local.clone(), check)),
        )
        .add_service(rkube_proto::cloudlocal::node_agent_server::NodeAgentServer::new(local))
        .serve_with_incoming_shutdown(pki::tls_incoming(listener, cfg), stop)
        .await?;
    Ok(())
}
