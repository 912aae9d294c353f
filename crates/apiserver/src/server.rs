//! Starting an apiserver: the embedded store member, the watch cache, the gRPC API on one
//! TLS port (with the etcd v3 API only when asked), `/healthz`, `/readyz` and an
//! authenticated `/metrics` on the same port, and the bootstrap namespaces.

mod assemble;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft_store::StoreConfig;
use rkube_proto::api::{Object, TypeRef};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::UserInfo;
use crate::error::Error;
use crate::handler::Api;
use crate::tls::TlsFiles;

/// Namespaces every cluster has from the start.
pub const BOOTSTRAP_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Clone, Debug)]
pub struct ApiServerConfig {
    pub store: StoreConfig,
    /// The API port: rkube API, etcd v3 API, and the HTTP health and metrics endpoints.
    pub listen: SocketAddr,
    /// `--token-auth-file`: static bearer tokens.
    pub token_file: Option<PathBuf>,
    /// How the API port speaks TLS; `None` is plaintext (only under an `--insecure-` flag).
    pub tls: Option<ServingTls>,
    /// Requests without credentials are served as `system:anonymous` (Kubernetes'
    /// `--anonymous-auth`).
    pub anonymous_auth: bool,
    /// Also serve the etcd v3 API on the API port (for administrators and members only,
    /// as on its own port).
    pub etcd_on_api_port: bool,
    pub max_object_bytes: usize,
    /// Recent events kept in the watch cache for watches that resume.
    pub watch_cache_events: usize,
    pub bookmark_interval: Duration,
    /// `--service-cluster-ip-range` and `--service-node-port-range`.
    pub service_ranges: crate::services::ServiceRanges,
    /// How long pods tolerate a not-ready or unreachable node by default.
    pub default_not_ready_toleration_seconds: i64,
    pub default_unreachable_toleration_seconds: i64,
    /// How often the leader checks the Service allocation keys against the Services.
    pub service_allocation_repair_interval: Duration,
    /// The key that encrypts the service-account signing key in the store (derived from
    /// the cluster token, so every member has it and the etcd API hands out ciphertext).
    pub signing_key_wrap: Option<[u8; 32]>,
    /// `--encryption-provider-config`: an EncryptionConfiguration file.
    pub encryption_provider_config: Option<PathBuf>,
    /// `--authorization-mode`: `Node`, `RBAC`, `AlwaysAllow`, in order.
    pub authorization_mode: Vec<String>,
    /// `--pod-security-default`: the level enforced where a namespace names none.
    pub pod_security_default: crate::admission::Level,
    /// `--audit-log-path`, `--audit-policy-file`, `--audit-log-maxsize`,
    /// `--audit-log-maxbackup`.
    pub audit: crate::audit::AuditConfig,
    /// `--advertise-address`: where in-cluster clients reach this member's API (the
    /// `kubernetes` Service's endpoint); default: the listen address, or the host's
    /// address when listening on all.
    pub advertise_address: Option<SocketAddr>,
    /// `--endpoint-lease-ttl-seconds`: how long a stopped member stays an endpoint of the
    /// `kubernetes` Service.
    pub endpoint_lease_ttl: Duration,
}

impl ApiServerConfig {
    pub fn new(store: StoreConfig, listen: SocketAddr) -> Self {
        ApiServerConfig {
            store,
            listen,
            token_file: None,
            tls: None,
            anonymous_auth: false,
            etcd_on_api_port: false,
            max_object_bytes: 1024 * 1024,
            watch_cache_events: 100_000,
            bookmark_interval: Duration::from_secs(5),
            service_ranges: Default::default(),
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
            service_allocation_repair_interval: Duration::from_secs(180),
            signing_key_wrap: None,
            encryption_provider_config: None,
            authorization_mode: vec!["Node".into(), "RBAC".into()],
            pod_security_default: crate::admission::Level::Baseline,
            audit: Default::default(),
            advertise_address: None,
            endpoint_lease_ttl: Duration::from_secs(15),
        }
    }
}

/// The API port's certificate.
#[derive(Clone, Debug)]
pub enum ServingTls {
    /// Issued by the cluster CA and renewed before it expires; client certificates from
    /// the cluster CA authenticate.
    Cluster(Arc<pki::RenewingCert>),
    /// Files the operator provides (`--tls-cert-file`), with an optional client CA.
    Files(TlsFiles),
}

/// A running apiserver.
pub struct ApiServer {
    api: Arc<Api>,
    pub local_addr: SocketAddr,
    system: crate::services::kubernetes::SystemServices,
    tasks: Vec<JoinHandle<()>>,
}

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

impl ApiServer {
    pub async fn start(mut cfg: ApiServerConfig) -> Result<ApiServer, StartError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", cfg.listen))?;
        let local_addr = listener.local_addr()?;
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        if cfg.store.client_urls.is_empty() {
            cfg.store.client_urls = vec![format!("{scheme}://{local_addr}")];
        }
        // Kubernetes' order: client certificates, then bearer tokens, then anonymous.
        let authenticators = assemble::static_authenticators(&cfg)?;
        let mut tasks = Vec::new();
        let (api, tokens) = assemble::api(&cfg, authenticators, &mut tasks).await?;

        let agent_client = match &cfg.tls {
            Some(ServingTls::Cluster(c)) => {
                let cert = crate::grpc::pods::agent_client_cert(c.ca().clone())?;
                tasks.push(cert.spawn_renewal());
                Some(cert)
            }
            _ => None,
        };
        let router = assemble::router(&cfg, &api, &tokens, agent_client);
        tasks.push(serve_api(listener, cfg.tls.as_ref(), router)?);
        tasks.push(tokio::spawn(bootstrap(api.clone())));
        let system = crate::services::kubernetes::SystemServices {
            member: api.store.name().to_string(),
            advertise: advertise_address(cfg.advertise_address, local_addr),
            cluster_ips: cfg.service_ranges.cluster_ips,
            lease_ttl: cfg.endpoint_lease_ttl,
        };
        tasks.push(tokio::spawn(crate::services::kubernetes::run(
            api.clone(),
            system.clone(),
        )));
        if api.rbac.is_some() {
            tasks.push(tokio::spawn(crate::rbac::policy::reconcile(api.clone())));
        }
        let services_prefix = api.registry.get("v1", "Service")?.prefix(None);
        tasks.push(tokio::spawn(crate::services::repair::run_with(
            api.store.clone(),
            services_prefix,
            cfg.service_allocation_repair_interval,
            api.encryption.clone(),
        )));
        if api.encryption.is_some() {
            tasks.push(tokio::spawn(rewrite_stale(api.clone())));
        }
        let t = tokens.clone();
        tasks.push(tokio::spawn(async move { t.load_key().await }));
        tracing::info!(member = %api.store.name(), %local_addr, "apiserver listening");
        Ok(ApiServer {
            api,
            local_addr,
            system,
            tasks,
        })
    }

    /// The client URLs every member of the cluster advertises.
    pub fn member_client_urls(&self) -> Vec<String> {
        let members = self.api.store.members();
        members.into_iter().flat_map(|m| m.client_ur_ls).collect()
    }

    /// Serves the etcd v3 API of the embedded store on `listener` (`tls`: members and
    /// admins only) until the returned task is aborted.
    pub fn serve_etcd(
        &self,
        listener: TcpListener,
        tls: Option<Arc<pki::RenewingCert>>,
    ) -> JoinHandle<()> {
        let store = self.api.store.clone();
        tokio::spawn(async move {
            if let Err(e) = raft_store::etcd::serve(store, listener, tls).await {
                tracing::error!(error = %e, "etcd API listener stopped");
            }
        })
    }

    /// Adds the metrics of a component running in this process (the controller-manager)
    /// to the member's `/metrics`.
    pub fn register_metrics(
        &self,
        register: impl FnOnce(&mut prometheus_client::registry::Registry),
    ) {
        self.api.metrics.register_component(register);
    }

    /// Resolves when the embedded store stopped on a fatal error, with its text.
    pub async fn fatal(&self) -> String {
        self.api.store.fatal().await
    }

    pub async fn shutdown(self) {
        // In-cluster clients stop being sent here before the API goes.
        let leave = crate::services::kubernetes::remove_self(self.api.clone(), &self.system);
        match tokio::time::timeout(Duration::from_secs(2), leave).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leaving the kubernetes Service's endpoints"),
            Err(_) => tracing::warn!("leaving the kubernetes Service's endpoints: timed out"),
        }
        for t in &self.tasks {
            t.abort();
        }
        self.api.store.shutdown().await;
    }
}

/// Where in-cluster clients reach this member: `configured`, else the listen address, or
/// (listening on all addresses) the address the host sends from by default.
fn advertise_address(configured: Option<SocketAddr>, local: SocketAddr) -> SocketAddr {
    if let Some(a) = configured {
        return a;
    }
    if !local.ip().is_unspecified() {
        return local;
    }
    let outward = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr());
    match outward {
        Ok(a) => SocketAddr::new(a.ip(), local.port()),
        Err(_) => SocketAddr::from(([127, 0, 0, 1], local.port())),
    }
}

/// After a key rotation, rewrites every value not written under the current key, once the
/// store answers.
async fn rewrite_stale(api: Arc<Api>) {
    loop {
        match crate::encryption::rewrite_stale(&api).await {
            Ok(n) => {
                tracing::info!(
                    rewritten = n,
                    "encryption at rest: values under old keys rewritten"
                );
                return;
            }
            Err(Error::Unavailable(e)) => {
                tracing::debug!(error = %e, "encryption rewrite waits for the store");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "encryption at rest: rewrite failed");
                return;
            }
        }
    }
}

/// Serves `router` on the API port: TLS with the cluster's or the operator's certificate,
/// or plaintext with a warning. hyper serves HTTP/1.1 (with upgrades, which exec and
/// port-forward need) and HTTP/2 (gRPC and REST) on every connection.
fn serve_api(
    listener: TcpListener,
    tls: Option<&ServingTls>,
    router: axum::Router,
) -> Result<JoinHandle<()>, StartError> {
    let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
    let config = match tls {
        Some(ServingTls::Cluster(cert)) => cert.server_config(pki::ClientAuth::Optional, alpn)?,
        Some(ServingTls::Files(files)) => files.rustls_config(alpn)?,
        None => {
            tracing::warn!("the API port is plaintext (--insecure-plaintext)");
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            return Ok(tokio::spawn(crate::streaming::serve_with_upgrades(
                incoming, router,
            )));
        }
    };
    let incoming = pki::tls_incoming(listener, config);
    Ok(tokio::spawn(crate::streaming::serve_with_upgrades(
        incoming, router,
    )))
}

/// Creates the bootstrap namespaces once the cluster has a leader. Every member does this;
/// the first create wins and the others see AlreadyExists, so restarts are idempotent.
async fn bootstrap(api: Arc<Api>) {
    let user = UserInfo {
        name: "system:apiserver".into(),
        uid: String::new(),
        groups: vec!["system:masters".into()],
    };
    for ns in BOOTSTRAP_NAMESPACES {
        loop {
            let env = Object {
                r#type: Some(TypeRef {
                    api_version: "v1".into(),
                    kind: "Namespace".into(),
                }),
                name: ns.to_string(),
                json: serde_json::to_vec(&json!({"metadata": {"name": ns}}))
                    .unwrap_or_default()
                    .into(),
                ..Default::default()
            };
            if api
                .cache
                .get(&format!("/registry/core/namespaces/{ns}"))
                .is_some()
            {
                break;
            }
            match api.create(&user, &env).await {
                Ok(_) | Err(Error::AlreadyExists { .. }) => break,
                Err(e) => {
                    tracing::debug!(namespace = ns, error = %e, "bootstrap namespace not created yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    tracing::info!("bootstrap namespaces present");
}
