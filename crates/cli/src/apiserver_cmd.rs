//! `rkube apiserver` and `rkube server`: a control-plane member — the store and the API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use apiserver::server::ServingTls;
use apiserver::tls::TlsFiles;
use apiserver::{ApiServer, ApiServerConfig};
use clap::{ArgAction, Args};
use client::runtime::CancellationToken;

use crate::security::{CredentialFiles, MemberPki};
use crate::store_cmd::StoreArgs;

#[derive(Args, Clone)]
pub struct ApiServerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The API port (TLS): the rkube API, /healthz, /readyz and /metrics. The etcd v3 API
    /// is served on --client-listen.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Serving certificate (PEM); with --tls-private-key-file turns TLS on.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA (PEM) whose client certificates authenticate users (CN = user, O = groups).
    #[arg(long, requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
    /// Serve requests without credentials as system:anonymous.
    #[arg(long, action = ArgAction::Set, default_value_t = false)]
    pub anonymous_auth: bool,
    /// Authorizers in order: `Node`, `RBAC`, `AlwaysAllow` (comma-separated).
    /// `system:masters` is always allowed.
    #[arg(long, value_delimiter = ',', default_value = "Node,RBAC")]
    pub authorization_mode: Vec<String>,
    /// The Pod Security Standard enforced in namespaces without a
    /// `pod-security.kubernetes.io/enforce` label (kube-system, kube-public and
    /// kube-node-lease are privileged unless labelled): privileged, baseline or restricted.
    #[arg(long, default_value = "baseline")]
    pub pod_security_default: apiserver::admission::Level,
    /// Also serve the etcd v3 API on the API port (still for administrators and members
    /// only).
    #[arg(long)]
    pub etcd_on_api_port: bool,
    /// Largest object accepted, in bytes of JSON.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_object_bytes: usize,
    /// Recent changes the watch cache keeps for watches that resume from a resourceVersion;
    /// an older version gets 410 Expired (Kubernetes' watch cache size).
    #[arg(long, default_value_t = 100_000)]
    pub watch_cache_events: usize,
    /// Interval of BOOKMARK events on watches that ask for them, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub bookmark_interval_ms: u64,
    /// Where Service ClusterIPs come from. Every member must be given the same range. A
    /// range inside 127.0.0.0/8 lets the userspace proxy serve ClusterIPs without root.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// The cluster's DNS domain, for the names in the serving certificate.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Where in-cluster clients reach this member's API, IP:PORT: the endpoint it gives
    /// the `kubernetes` Service (default: the listen address, or the host's address when
    /// listening on all).
    #[arg(long)]
    pub advertise_address: Option<std::net::SocketAddr>,
    /// How long the `kubernetes` Service keeps a member that stopped renewing its lease.
    #[arg(long, default_value_t = 15)]
    pub endpoint_lease_ttl_seconds: u64,
    /// Where Service NodePorts come from, FIRST-LAST.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// The tolerationSeconds of the not-ready toleration added to every pod without one.
    #[arg(long, default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// The tolerationSeconds of the unreachable toleration added to every pod without one.
    #[arg(long, default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
    /// How often the leader checks Service allocations against the Services, in
    /// milliseconds.
    #[arg(long, default_value_t = 180_000)]
    pub service_allocation_repair_interval_ms: u64,
    /// An EncryptionConfiguration (apiserver.config.k8s.io/v1) file: Secrets are stored
    /// encrypted with its first provider's first key; every key is tried for reads, and
    /// values under older keys are rewritten at start.
    #[arg(long)]
    pub encryption_provider_config: Option<PathBuf>,
    /// Boxed: the flags of every command share one enum.
    #[command(flatten)]
    pub audit: Box<AuditArgs>,
    /// Also write the client configuration (endpoints) here; it is always written to
    /// <data-dir>/client.yaml.
    #[arg(long)]
    pub write_client_config: Option<PathBuf>,
}

/// The audit log flags, as kube-apiserver's.
#[derive(Args, Clone)]
pub struct AuditArgs {
    /// Write audit events (audit.k8s.io/v1, one JSON line each) to this file; `-` is
    /// standard output. Needs --audit-policy-file.
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// An audit Policy (audit.k8s.io/v1, YAML or JSON): which requests are recorded, at
    /// which level.
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,
    /// Megabytes an audit log file reaches before it is rotated to <path>.1 (0: never).
    #[arg(long, default_value_t = 100)]
    pub audit_log_maxsize: u64,
    /// Rotated audit log files kept (0: all).
    #[arg(long, default_value_t = 10)]
    pub audit_log_maxbackup: usize,
}

impl ApiServerArgs {
    pub fn config(&self) -> anyhow::Result<ApiServerConfig> {
        let mut cfg = ApiServerConfig::new(self.store.config()?, self.listen);
        cfg.token_file = self.token_auth_file.clone();
        cfg.tls = match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => Some(ServingTls::Files(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.client_ca_file.clone(),
            })),
            _ => None,
        };
        cfg.anonymous_auth = self.anonymous_auth;
        cfg.authorization_mode = self.authorization_mode.clone();
        cfg.pod_security_default = self.pod_security_default;
        cfg.etcd_on_api_port = self.etcd_on_api_port;
        cfg.encryption_provider_config = self.encryption_provider_config.clone();
        cfg.audit = apiserver::audit::AuditConfig {
            log_path: self.audit.audit_log_path.clone(),
            policy_file: self.audit.audit_policy_file.clone(),
            log_max_size_mb: self.audit.audit_log_maxsize,
            log_max_backups: self.audit.audit_log_maxbackup,
        };
        cfg.max_object_bytes = self.max_object_bytes;
        cfg.watch_cache_events = self.watch_cache_events.max(1);
        cfg.bookmark_interval = Duration::from_millis(self.bookmark_interval_ms.max(100));
        cfg.default_not_ready_toleration_seconds = self.default_not_ready_toleration_seconds;
        cfg.default_unreachable_toleration_seconds = self.default_unreachable_toleration_seconds;
        cfg.advertise_address = self.advertise_address;
        cfg.endpoint_lease_ttl = Duration::from_secs(self.endpoint_lease_ttl_seconds.max(1));
        cfg.service_allocation_repair_interval =
            Duration::from_millis(self.service_allocation_repair_interval_ms.max(100));
        cfg.service_ranges = apiserver::services::ServiceRanges {
            cluster_ips: self
                .service_cluster_ip_range
                .parse()
                .map_err(|e| anyhow::anyhow!("--service-cluster-ip-range {e}"))?,
            node_ports: apiserver::services::parse_port_range(&self.service_node_port_range)
                .map_err(|e| anyhow::anyhow!("--service-node-port-range {e}"))?,
        };
        Ok(cfg)
    }
}

/// The client configuration `rkube server` writes: every member's endpoint and, on a
/// secured cluster, the CA and the admin client certificate.
fn client_config_text(server: &ApiServer, tls: bool, creds: Option<&CredentialFiles>) -> String {
    let mut servers = vec![crate::security::url_of(server.local_addr, tls)];
    for u in server.member_client_urls() {
        if !servers.contains(&u) {
            servers.push(u);
        }
    }
    client::ClientConfig {
        servers,
        ca: creds.map(|c| absolute(&c.ca)),
        cert: creds.map(|c| absolute(&c.cert)),
        key: creds.map(|c| absolute(&c.key)),
        ..Default::default()
    }
    .to_text()
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `rkube server`: an apiserver member plus the control-plane components, which reach the
/// API through the client crate as any other client would.
#[derive(Args, Clone)]
pub struct ServerArgs {
    #[command(flatten)]
    pub apiserver: ApiServerArgs,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    pub disable_scheduler: bool,
    /// Do not run the controller-manager in this process.
    #[arg(long)]
    pub disable_controller_manager: bool,
    /// Client configuration the in-process components use (default: this member's own
    /// address, with the serving certificate as the CA when TLS is on).
    #[arg(long)]
    pub components_config: Option<PathBuf>,
    #[command(flatten)]
    pub scheduler: crate::scheduler_cmd::SchedulerOptions,
    #[command(flatten)]
    pub controller_manager: crate::controller_manager_cmd::ControllerManagerOptions,
    /// With a provider plugin, the cloud-controller-manager runs in this process too (on
    /// the controller-manager's Lease timings, cluster CIDR and node monitor period).
    #[command(flatten)]
    pub cloud: crate::cloud_cmd::PluginArgs,
}

/// The control-plane components `rkube server` runs beside its apiserver.
pub struct Components {
    pub config: Option<PathBuf>,
    /// The controller-manager options (csrsigning signs with the member's CA).
    pub cm_options: crate::controller_manager_cmd::ControllerManagerOptions,
    pub scheduler: Option<controllers::scheduler::SchedulerConfig>,
    pub controller_manager: Option<controllers::manager::ManagerConfig>,
    /// The cloud provider plugin of an in-process cloud-controller-manager.
    pub cloud: Option<crate::cloud_cmd::PluginArgs>,
}

pub async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let components = Components {
        config: args.components_config.clone(),
        cm_options: args.controller_manager.clone(),
        scheduler: (!args.disable_scheduler).then(|| args.scheduler.config()),
        controller_manager: (!args.disable_controller_manager)
            .then(|| args.controller_manager.config()),
        cloud: args.cloud.is_set().then(|| args.cloud.clone()),
    };
    run(args.apiserver, Some(components)).await
}

/// A client for an in-process component: its own client certificate on a secured
/// cluster (never `system:masters`), or the member's own address when plaintext.
fn components_client(
    server: &ApiServer,
    pki: Option<&MemberPki>,
    config: Option<&std::path::Path>,
    user: &str,
) -> anyhow::Result<client::Client> {
    let cfg = match (config, pki) {
        (Some(p), _) => client::ClientConfig::load(p)?,
        (None, Some(pki)) => {
            let file = user.rsplit(':').next().unwrap_or(user);
            let creds = pki.client_files(file, user, &[], Duration::from_secs(365 * 24 * 3600))?;
            let mut cfg = client::ClientConfig::from_servers(&crate::security::url_of(
                server.local_addr,
                true,
            ));
            cfg.ca = Some(creds.ca);
            cfg.cert = Some(creds.cert);
            cfg.key = Some(creds.key);
            cfg
        }
        (None, None) => {
            client::ClientConfig::from_servers(&crate::security::url_of(server.local_addr, false))
        }
    };
    Ok(client::Client::new(cfg)?)
}

/// The CA, client certificate and key (PEM) the in-process cloud-controller-manager
/// dials an `https://` plugin with: `user`'s, signed by the member's CA.
fn plugin_client_tls(
    pki: Option<&MemberPki>,
    user: &str,
) -> anyhow::Result<Option<(String, String, String)>> {
    let Some(pki) = pki else {
        return Ok(None);
    };
    let file = user.rsplit(':').next().unwrap_or(user);
    let creds = pki.client_files(file, user, &[], Duration::from_secs(365 * 24 * 3600))?;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))
    };
    Ok(Some((
        read(&creds.ca)?,
        read(&creds.cert)?,
        read(&creds.key)?,
    )))
}

/// The in-process cloud-controller-manager until `shutdown`: a plugin that cannot be
/// reached (not started yet, or down) is tried again with back-off, as a standalone
/// manager would be restarted.
async fn run_cloud(
    client: client::Client,
    cfg: controllers::cloud::CloudConfig,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match controllers::cloud::run(client.clone(), cfg.clone(), shutdown.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, "the cloud-controller-manager stopped; trying again in {backoff:?}")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// How long an in-process controller-manager may take to finish its reconciles on
/// shutdown.
const CONTROLLER_MANAGER_STOP: Duration = Duration::from_secs(10);

pub async fn run(args: ApiServerArgs, components: Option<Components>) -> anyhow::Result<()> {
    let (cfg, pki) = member_config(&args)?;
    let tls = cfg.tls.is_some();
    let server = ApiServer::start(cfg)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("starting the apiserver")?;
    write_client_configs(&args, &server, tls, pki.as_ref())?;
    let etcd = match args.store.client_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--client-listen {addr}"))?;
            let tls = pki.as_ref().map(|p| p.member.clone());
            Some(server.serve_etcd(l, tls))
        }
        None => None,
    };
    let mut running = Running {
        scheduler: tokio::task::JoinSet::new(),
        controller_manager: tokio::task::JoinSet::new(),
        cm_shutdown: CancellationToken::new(),
    };
    if let Some(c) = components {
        running.start(&server, pki.as_ref(), c)?;
    }
    tokio::select! {
        _ = crate::proxy_cmd::stop_signal() => tracing::info!("interrupted; stopping"),
        e = server.fatal() => crate::exit_on_fatal(&e),
    }
    running.stop().await;
    if let Some(e) = etcd {
        e.abort();
    }
    server.shutdown().await;
    Ok(())
}

/// The apiserver's configuration from the flags, with the member's certificates when the
/// cluster has a token.
fn member_config(args: &ApiServerArgs) -> anyhow::Result<(ApiServerConfig, Option<MemberPki>)> {
    let mut cfg = args.config()?;
    let mut addrs = vec![args.listen, cfg.store.peer_listen];
    addrs.extend(args.store.client_listen);
    // In-cluster clients reach the API as https://kubernetes.default.svc or at the
    // Service's ClusterIP.
    let mut names: Vec<String> = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]
        .into_iter()
        .map(String::from)
        .collect();
    names.push(format!("kubernetes.default.svc.{}", args.cluster_domain));
    names.push(cfg.service_ranges.cluster_ips.first_usable().to_string());
    names.extend(cfg.advertise_address.map(|a| a.ip().to_string()));
    let pki = args
        .store
        .security
        .member(&args.store.name, &args.store.data_dir, &addrs, &names)?;
    if let Some(p) = &pki {
        cfg.store.tls = Some(p.member.clone());
        cfg.signing_key_wrap = Some(p.signing_key_wrap());
        if cfg.tls.is_none() {
            cfg.tls = Some(ServingTls::Cluster(p.member.clone()));
        }
    }
    Ok((cfg, pki))
}

/// Writes the client configuration (with the admin credentials, on a secured cluster) to
/// the data directory and to every `--write-client-config`.
fn write_client_configs(
    args: &ApiServerArgs,
    server: &ApiServer,
    tls: bool,
    pki: Option<&MemberPki>,
) -> anyhow::Result<()> {
    let admin = pki.map(crate::store_cmd::write_admin_files).transpose()?;
    let text = client_config_text(server, tls, admin.as_ref());
    let mut paths = vec![args.store.data_dir.join("client.yaml")];
    paths.extend(args.write_client_config.iter().cloned());
    for p in paths {
        pki::write_private(&p, text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// The components running inside the member; dropping it aborts them.
struct Running {
    scheduler: tokio::task::JoinSet<()>,
    controller_manager: tokio::task::JoinSet<()>,
    /// Cancelled to stop the controller-manager gracefully.
    cm_shutdown: CancellationToken,
}

impl Running {
    fn start(
        &mut self,
        server: &ApiServer,
        pki: Option<&MemberPki>,
        c: Components,
    ) -> anyhow::Result<()> {
        let config = c.config.as_deref();
        if let Some(sched) = c.scheduler {
            let client = components_client(server, pki, config, "system:kube-scheduler")?;
            self.scheduler
                .spawn(crate::scheduler_cmd::run_with(client, sched));
        }
        if let Some(mut cm) = c.controller_manager {
            cm.signer = pki.map(|p| c.cm_options.signer(p.ca.clone()));
            cm.root_ca = pki.map(|p| p.ca.cert_pem().to_string());
            server.register_metrics(|r| cm.metrics.register(r));
            let user = "system:kube-controller-manager";
            let client = components_client(server, pki, config, user)?;
            let shutdown = self.cm_shutdown.clone();
            self.controller_manager
                .spawn(controllers::manager::run(client, cm, shutdown));
        }
        if let Some(plugin) = c.cloud {
            let user = "system:cloud-controller-manager";
            let mut provider = plugin.provider(plugin_client_tls(pki, user)?)?;
            let cfg = crate::cloud_cmd::in_process_config(&c.cm_options, &provider)?;
            let client = components_client(server, pki, config, user)?;
            let shutdown = self.cm_shutdown.clone();
            // Stopped with the controller-manager; the plugin goes with the task.
            self.controller_manager.spawn(async move {
                tokio::select! {
                    () = run_cloud(client, cfg, shutdown) => {}
                    () = provider.supervise() => {}
                }
            });
        }
        Ok(())
    }

    /// The controllers finish the reconciles under way while the apiserver still serves
    /// them; then everything stops.
    async fn stop(mut self) {
        self.cm_shutdown.cancel();
        let cm = &mut self.controller_manager;
        let stopped = async { while cm.join_next().await.is_some() {} };
        if tokio::time::timeout(CONTROLLER_MANAGER_STOP, stopped)
            .await
            .is_err()
        {
            tracing::warn!("the controller-manager did not stop in time; stopping it at once");
            self.controller_manager.shutdown().await;
        }
        self.scheduler.shutdown().await;
    }
}
