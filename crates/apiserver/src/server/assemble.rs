//! Putting an apiserver together from its configuration: the authenticators, the admission
//! chains, the [`Api`] every request goes through, and the routes of the API port.

use std::sync::Arc;

use raft_store::etcd::EtcdService;
use raft_store::Store;
use rkube_proto::api::discovery_server::DiscoveryServer;
use rkube_proto::api::pods_server::PodsServer;
use rkube_proto::api::resources_server::ResourcesServer;
use rkube_proto::api::{auth_server::AuthServer, cluster_server::ClusterServer};
use tokio::task::JoinHandle;

use super::{ApiServerConfig, ServingTls, StartError};
use crate::admission::{
    Admission, Defaults, LimitRanger, NamespaceLifecycle, Priority, ServiceAccount,
    ValidatingAdmission,
};
use crate::auth::{Authenticator, AuthnChain, AuthzChain, ClientCertificates, StaticTokens};
use crate::cache::WatchCache;
use crate::certificates::{BootstrapTokens, CertificateSigning};
use crate::grpc::{AuthService, ClusterService, DiscoveryService, PodsService, ResourcesService};
use crate::handler::Api;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::tokens::{verify::ServiceAccountTokens, Tokens};

/// The authenticators that need nothing from the store: client certificates, when the API
/// port asks for them, then the static token file.
pub(super) fn static_authenticators(
    cfg: &ApiServerConfig,
) -> Result<Vec<Box<dyn Authenticator>>, StartError> {
    let mut authenticators: Vec<Box<dyn Authenticator>> = Vec::new();
    let client_certs = match &cfg.tls {
        Some(ServingTls::Cluster(_)) => true,
        Some(ServingTls::Files(f)) => f.client_ca.is_some(),
        None => false,
    };
    if client_certs {
        authenticators.push(Box::new(ClientCertificates));
    }
    if let Some(f) = &cfg.token_file {
        authenticators.push(Box::new(StaticTokens::load(f)?));
    }
    Ok(authenticators)
}

/// Opens the store and builds the [`Api`] on it, after `authenticators` the token kinds
/// the store holds. The watch cache and the authorization indexes it feeds run as `tasks`.
pub(super) async fn api(
    cfg: &ApiServerConfig,
    mut authenticators: Vec<Box<dyn Authenticator>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<(Arc<Api>, Arc<Tokens>), StartError> {
    let encryption = crate::encryption::from_file(cfg.encryption_provider_config.as_deref())
        .map_err(|e| format!("--encryption-provider-config: {e}"))?;
    let audit =
        crate::audit::Auditor::from_config(&cfg.audit).map_err(|e| format!("{}: {e}", e.flag()))?;
    let store = Store::open(cfg.store.clone()).await?;
    let registry = Arc::new(Registry::with_builtins());
    let cache = WatchCache::new(registry.clone(), cfg.watch_cache_events);
    if let Some(t) = &encryption {
        cache.set_encryption(t.clone());
    }
    tasks.push(tokio::spawn(cache.clone().run(store.clone())));
    let authz = crate::rbac::Authorization::new(&cfg.authorization_mode)?;
    if let Some(ix) = &authz.index {
        tasks.push(tokio::spawn(ix.clone().run(cache.clone())));
    }
    if let Some(g) = &authz.graph {
        tasks.push(tokio::spawn(g.clone().run(cache.clone())));
    }
    if let Some(ix) = &authz.attachments {
        tasks.push(tokio::spawn(ix.clone().run(cache.clone())));
    }
    let tokens = Tokens::new(cache.clone(), store.clone(), cfg.signing_key_wrap);
    authenticators.push(Box::new(BootstrapTokens {
        cache: cache.clone(),
        store: store.clone(),
    }));
    authenticators.push(Box::new(ServiceAccountTokens(tokens.clone())));
    let api = Arc::new(Api {
        store: store.clone(),
        registry,
        cache: cache.clone(),
        authn: AuthnChain {
            authenticators,
            allow_anonymous: cfg.anonymous_auth,
        },
        authz: AuthzChain(authz.chain),
        admission: admission(cfg, &cache, &store, authz.admission),
        max_object_bytes: cfg.max_object_bytes,
        metrics: Metrics::default(),
        service_ranges: cfg.service_ranges.clone(),
        encryption,
        rbac: authz.index,
        audit,
        quota: crate::admission::ResourceQuota::new(cache.clone()),
        policy_ready: Default::default(),
    });
    Ok((api, tokens))
}

/// The admission chains, with the authorization mode's own validating plugins before the
/// webhooks.
fn admission(
    cfg: &ApiServerConfig,
    cache: &Arc<WatchCache>,
    store: &Store,
    authz: Vec<Box<dyn ValidatingAdmission>>,
) -> Admission {
    Admission {
        mutating: vec![
            Box::new(Defaults {
                not_ready_seconds: cfg.default_not_ready_toleration_seconds,
                unreachable_seconds: cfg.default_unreachable_toleration_seconds,
            }),
            Box::new(LimitRanger {
                cache: cache.clone(),
            }),
            Box::new(ServiceAccount {
                cache: cache.clone(),
            }),
            Box::new(Priority {
                cache: cache.clone(),
                store: store.clone(),
            }),
            Box::new(crate::admission::DefaultStorageClass {
                cache: cache.clone(),
            }),
            Box::new(CertificateSigning),
            Box::new(crate::admission::MutatingWebhooks::new(cache.clone())),
        ],
        validating: [
            Box::new(NamespaceLifecycle {
                cache: cache.clone(),
                store: store.clone(),
            }) as Box<dyn ValidatingAdmission>,
            Box::new(LimitRanger {
                cache: cache.clone(),
            }),
            Box::new(crate::admission::PodSecurity {
                cache: cache.clone(),
                store: store.clone(),
                default_level: cfg.pod_security_default,
            }),
            Box::new(CertificateSigning),
        ]
        .into_iter()
        .chain(authz)
        .chain([
            Box::new(crate::admission::ValidatingWebhooks::new(cache.clone()))
                as Box<dyn ValidatingAdmission>,
        ])
        .collect(),
    }
}

/// Every route of the API port: the gRPC services (and the etcd v3 API when asked), the
/// REST API and the HTTP endpoints.
pub(super) fn router(
    cfg: &ApiServerConfig,
    api: &Arc<Api>,
    tokens: &Arc<Tokens>,
    agent_client: Option<Arc<pki::RenewingCert>>,
) -> axum::Router {
    // Room above the object limit, so an oversized object reaches validation and gets
    // an error that names the limit, instead of a transport error.
    let max_msg = 4 * cfg.max_object_bytes + (1 << 20);
    let resources = ResourcesServer::new(ResourcesService {
        api: api.clone(),
        bookmark_interval: cfg.bookmark_interval,
    })
    .max_decoding_message_size(max_msg)
    .max_encoding_message_size(usize::MAX);
    let routes = tonic::service::Routes::new(resources)
        .add_service(DiscoveryServer::new(DiscoveryService { api: api.clone() }))
        .add_service(ClusterServer::new(ClusterService { api: api.clone() }))
        .add_service(AuthServer::new(AuthService {
            api: api.clone(),
            tokens: tokens.clone(),
        }))
        .add_service(PodsServer::new(PodsService {
            api: api.clone(),
            tokens: tokens.clone(),
            agent_client: agent_client.clone(),
        }));
    let routes = if cfg.etcd_on_api_port {
        let guard = match cfg.tls {
            Some(_) => raft_store::etcd::Guard::AdminsAndMembers,
            None => raft_store::etcd::Guard::Insecure,
        };
        EtcdService::new(api.store.clone()).add_routes(routes, guard)
    } else {
        routes
    };
    let ca_pem = match &cfg.tls {
        Some(ServingTls::Cluster(c)) => Some(c.ca().cert_pem().to_string()),
        _ => None,
    };
    let rest = crate::rest::Rest {
        api: api.clone(),
        bookmark_interval: cfg.bookmark_interval,
        max_body: max_msg,
        pods: PodsService {
            api: api.clone(),
            tokens: tokens.clone(),
            agent_client,
        },
    };
    let http = crate::http::routes(api.clone(), tokens.clone(), ca_pem);
    crate::rest::router(routes.into_axum_router(), http, rest)
}
