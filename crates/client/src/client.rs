//! [`Client`]: calls to the rkube API with failover across every apiserver endpoint.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rkube_proto::api::auth_client::AuthClient;
use rkube_proto::api::cluster_client::ClusterClient;
use rkube_proto::api::discovery_client::DiscoveryClient;
use rkube_proto::api::pods_client::PodsClient;
use rkube_proto::api::resources_client::ResourcesClient;
use rkube_proto::api::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status, Streaming};

use crate::config::ClientConfig;
use crate::error::{Error, Result};

/// A handle on the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// How long one call keeps trying other endpoints.
    failover_budget: Duration,
}

struct Inner {
    endpoints: RwLock<Vec<String>>,
    channels: Mutex<HashMap<String, Channel>>,
    current: AtomicUsize,
    token: RwLock<Option<String>>,
    tls: RwLock<Option<ClientTlsConfig>>,
    /// What the client was made from, for [`Client::with_token`].
    base: ClientConfig,
    /// `impersonate-user` and `impersonate-group` metadata, ready to attach.
    impersonate: Vec<(
        &'static str,
        tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    )>,
    /// Who hears the warnings the apiserver returns with a write.
    on_warning: RwLock<WarningHandler>,
}

/// Receives each warning (Kubernetes' `Warning` header text) a write was answered with.
pub type WarningHandler = Arc<dyn Fn(&str) + Send + Sync>;

/// The text of a `299 - "text"` warning value, unescaped.
pub fn warning_text(value: &str) -> Option<String> {
    let quoted = value.strip_prefix("299 - ")?.trim();
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'u' => out.push(hex_char(&mut chars, 4)?),
            'U' => out.push(hex_char(&mut chars, 8)?),
            c => out.push(c),
        }
    }
    Some(out)
}

fn hex_char(chars: &mut std::str::Chars<'_>, digits: usize) -> Option<char> {
    let hex: String = chars.take(digits).collect();
    char::from_u32(u32::from_str_radix(&hex, 16).ok()?)
}

/// Errors that mean "this member could not serve it; another may".
fn retryable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::Cancelled | Code::Unknown
    )
}

const MAX_MESSAGE: usize = 1 << 30;

/// The TLS settings of a configuration: its CA and client certificate, as PEM text or files.
fn tls_config(cfg: &ClientConfig) -> Result<Option<ClientTlsConfig>> {
    let pem =
        |text: &Option<String>, file: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>> {
            match (text, file) {
                (Some(t), _) => Ok(Some(t.clone().into_bytes())),
                (None, Some(p)) => std::fs::read(p)
                    .map(Some)
                    .map_err(|e| Error::Config(format!("{}: {e}", p.display()))),
                (None, None) => Ok(None),
            }
        };
    let ca = pem(&cfg.ca_pem, &cfg.ca)?;
    let cert = pem(&cfg.cert_pem, &cfg.cert)?;
    let key = pem(&cfg.key_pem, &cfg.key)?;
    if ca.is_none() && cert.is_none() {
        return Ok(None);
    }
    let mut t = ClientTlsConfig::new();
    if let Some(ca) = ca {
        t = t.ca_certificate(Certificate::from_pem(ca));
    }
    match (cert, key) {
        (Some(c), Some(k)) => t = t.identity(Identity::from_pem(c, k)),
        (None, None) => {}
        _ => return Err(Error::Config("cert and key go together".into())),
    }
    Ok(Some(t))
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        if cfg.servers.is_empty() {
            return Err(Error::Config("no apiserver endpoints".into()));
        }
        for s in &cfg.servers {
            Endpoint::from_shared(s.clone()).map_err(|e| Error::Config(format!("{s}: {e}")))?;
        }
        let tls = tls_config(&cfg)?;
        let base = cfg.clone();
        let mut impersonate = Vec::new();
        let user = cfg.impersonate_user.iter().map(|u| ("impersonate-user", u));
        let groups = cfg
            .impersonate_groups
            .iter()
            .map(|g| ("impersonate-group", g));
        for (k, v) in user.chain(groups) {
            let v = v
                .parse()
                .map_err(|_| Error::Config(format!("{k}: {v:?} is not a valid header value")))?;
            impersonate.push((k, v));
        }
        Ok(Client {
            inner: Arc::new(Inner {
                tls: RwLock::new(tls),
                endpoints: RwLock::new(cfg.servers.clone()),
                channels: Mutex::new(HashMap::new()),
                current: AtomicUsize::new(0),
                token: RwLock::new(cfg.token),
                impersonate,
                base,
                on_warning: RwLock::new(Arc::new(|w: &str| tracing::warn!("apiserver: {w}"))),
            }),
            failover_budget: Duration::from_secs(30),
        })
    }

    /// How long one call keeps trying other endpoints (default 30 s). Zero: one attempt,
    /// so the caller sees every failure (a history recorder must know which attempt ran).
    pub fn with_failover_budget(self, budget: Duration) -> Self {
        Client {
            failover_budget: budget,
            ..self
        }
    }

    /// A client for a comma-separated list of endpoints.
    pub fn from_servers(list: &str) -> Result<Self> {
        Self::new(ClientConfig::from_servers(list))
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.read().clone()
    }

    fn channel(&self, url: &str) -> Result<Channel> {
        let mut chans = self.inner.channels.lock();
        if let Some(c) = chans.get(url) {
            return Ok(c.clone());
        }
        let mut ep = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::Config(format!("{url}: {e}")))?;
        let tls = self.inner.tls.read().clone();
        if let Some(tls) = tls.filter(|_| url.starts_with("https://")) {
            ep = ep
                .tls_config(tls)
                .map_err(|e| Error::Config(format!("{url}: {e}")))?;
        }
        let ch = ep
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        chans.insert(url.to_string(), ch.clone());
        Ok(ch)
    }

    /// Authenticates with a new client certificate from now on (a rotated one): new
    /// connections present it; calls already under way finish on their connection.
    pub fn set_identity(&self, cert_pem: &str, key_pem: &str) {
        let identity = Identity::from_pem(cert_pem, key_pem);
        let mut tls = self.inner.tls.write();
        *tls = Some(tls.take().unwrap_or_default().identity(identity));
        self.inner.channels.lock().clear();
    }

    /// Replaces the bearer token sent from now on (a renewed one).
    pub fn set_token(&self, token: String) {
        *self.inner.token.write() = Some(token);
    }

    /// A client to the same apiserver with the same trust, authenticating with `token`
    /// alone: none of this client's certificate or impersonation.
    pub fn with_token(&self, token: String) -> Result<Client> {
        let cfg = ClientConfig {
            token: Some(token),
            cert: None,
            key: None,
            cert_pem: None,
            key_pem: None,
            impersonate_user: None,
            impersonate_groups: Vec::new(),
            servers: self.endpoints(),
            ..self.inner.base.clone()
        };
        Ok(Client::new(cfg)?.with_failover_budget(self.failover_budget))
    }

    /// A request with this client's credentials.
    pub fn request<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(t) = self.inner.token.read().as_ref() {
            if let Ok(v) = format!("Bearer {t}").parse() {
                r.metadata_mut().insert("authorization", v);
            }
        }
        for (k, v) in &self.inner.impersonate {
            r.metadata_mut().append(*k, v.clone());
        }
        r
    }

    /// Sends the warnings writes are answered with to `handler` instead of the log (the
    /// CLI prints them, as kubectl does).
    pub fn on_warning(&self, handler: WarningHandler) {
        *self.inner.on_warning.write() = handler;
    }

    /// The message of `resp`, after its warnings went to the warning handler.
    fn answer<T>(&self, resp: tonic::Response<T>) -> T {
        let handler = self.inner.on_warning.read().clone();
        for v in resp.metadata().get_all("warning") {
            if let Some(text) = v.to_str().ok().and_then(warning_text) {
                handler(&text);
            }
        }
        resp.into_inner()
    }

    /// Runs `f` against the current endpoint, moving on to the next one when a member
    /// cannot serve, until the failover budget is spent.
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(20);
        loop {
            let endpoints = self.endpoints();
            let idx = self.inner.current.load(Ordering::Relaxed) % endpoints.len();
            let url = &endpoints[idx];
            match f(self.channel(url)?).await {
                Ok(v) => return Ok(v),
                Err(s) if retryable(&s) => {
                    if start.elapsed() >= self.failover_budget {
                        return Err(Error::Unreachable(format!("{url}: {}", s.message())));
                    }
                    tracing::debug!(endpoint = %url, error = %s.message(), "apiserver unavailable; trying the next one");
                    let _ = self.inner.current.compare_exchange(
                        idx,
                        (idx + 1) % endpoints.len(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    if (idx + 1).is_multiple_of(endpoints.len()) {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(500));
                    }
                }
                Err(s) => return Err(Error::from_status(&s)),
            }
        }
    }

    fn resources(ch: Channel) -> ResourcesClient<Channel> {
        ResourcesClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub async fn get(&self, req: GetRequest) -> Result<Object> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Ok(Self::resources(ch).get(r).await?.into_inner()) }
        })
        .await
    }

    pub async fn list(&self, req: ListRequest) -> Result<ListResponse> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Ok(Self::resources(ch).list(r).await?.into_inner()) }
        })
        .await
    }

    pub async fn create(&self, req: CreateRequest) -> Result<Object> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Self::resources(ch).create(r).await }
        })
        .await
        .map(|resp| self.answer(resp))
    }

    /// Update, or with `status` UpdateStatus (of `req.subresource`, `status` when empty).
    pub async fn update(&self, req: UpdateRequest, status: bool) -> Result<Object> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move {
                let mut c = Self::resources(ch);
                if status {
                    c.update_status(r).await
                } else {
                    c.update(r).await
                }
            }
        })
        .await
        .map(|resp| self.answer(resp))
    }

    pub async fn patch(&self, req: PatchRequest) -> Result<Object> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Self::resources(ch).patch(r).await }
        })
        .await
        .map(|resp| self.answer(resp))
    }

    pub async fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Self::resources(ch).delete(r).await }
        })
        .await
        .map(|resp| self.answer(resp))
    }

    pub async fn bind(&self, req: BindRequest) -> Result<Object> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Self::resources(ch).bind(r).await }
        })
        .await
        .map(|resp| self.answer(resp))
    }

    /// Opens a watch stream on a member that can serve it.
    pub async fn watch(&self, req: WatchRequest) -> Result<Streaming<WatchEvent>> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Ok(Self::resources(ch).watch(r).await?.into_inner()) }
        })
        .await
    }

    pub async fn discovery(&self) -> Result<Vec<ApiResource>> {
        self.call(|ch| {
            let r = self.request(ListResourcesRequest {});
            async move {
                Ok(DiscoveryClient::new(ch)
                    .list_resources(r)
                    .await?
                    .into_inner()
                    .resources)
            }
        })
        .await
    }

    /// A TokenRequest for ServiceAccount `req.namespace/req.name`.
    pub async fn create_token(&self, req: CreateTokenRequest) -> Result<Object> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Ok(AuthClient::new(ch).create_token(r).await?.into_inner()) }
        })
        .await
    }

    /// The public keys that verify the tokens the cluster signs.
    pub async fn public_keys(&self) -> Result<PublicKeysResponse> {
        self.call(|ch| {
            let r = self.request(PublicKeysRequest {});
            async move { Ok(AuthClient::new(ch).public_keys(r).await?.into_inner()) }
        })
        .await
    }

    /// A pod's container logs, streamed (pods/log).
    pub async fn pod_logs(&self, req: LogsRequest) -> Result<Streaming<LogChunk>> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Ok(PodsClient::new(ch).logs(r).await?.into_inner()) }
        })
        .await
    }

    /// Runs a command in a pod's container (pods/exec).
    pub async fn pod_exec(&self, req: ExecRequest) -> Result<ExecResponse> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Ok(PodsClient::new(ch).exec(r).await?.into_inner()) }
        })
        .await
    }

    /// A SelfSubjectReview: who this client is authenticated as.
    pub async fn who_am_i(&self) -> Result<Object> {
        self.call(|ch| {
            let r = self.request(WhoAmIRequest {});
            async move { Ok(AuthClient::new(ch).who_am_i(r).await?.into_inner()) }
        })
        .await
    }

    pub async fn members(&self) -> Result<MembersResponse> {
        self.call(|ch| {
            let r = self.request(MembersRequest {});
            async move { Ok(ClusterClient::new(ch).members(r).await?.into_inner()) }
        })
        .await
    }

    /// The status of the member at `endpoint` (not failing over: the member is the point).
    pub async fn member_status(&self, endpoint: &str) -> Result<StatusResponse> {
        let ch = self.channel(endpoint)?;
        ClusterClient::new(ch)
            .status(self.request(StatusRequest {}))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_status(&s))
    }

    pub async fn add_member(&self, req: AddMemberRequest) -> Result<MembersResponse> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Ok(ClusterClient::new(ch).add_member(r).await?.into_inner()) }
        })
        .await
    }

    pub async fn remove_member(&self, req: RemoveMemberRequest) -> Result<MembersResponse> {
        self.call(|ch| {
            let r = self.request(req.clone());
            async move { Ok(ClusterClient::new(ch).remove_member(r).await?.into_inner()) }
        })
        .await
    }

    /// Learns every member's endpoint from the cluster, keeping the ones already known.
    pub async fn refresh_endpoints(&self) -> Result<()> {
        let members = self.members().await?;
        let mut eps = self.inner.endpoints.write();
        for m in members.members {
            for u in m.client_urls {
                if !eps.contains(&u) {
                    eps.push(u);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::warning_text;

    #[test]
    fn warnings_are_unescaped_as_the_apiserver_escapes_them() {
        assert_eq!(
            warning_text(
                r#"299 - "would violate PodSecurity \"restricted:latest\": a\\b \u00e9 \U0001f600""#
            )
            .as_deref(),
            Some("would violate PodSecurity \"restricted:latest\": a\\b é 😀")
        );
        assert_eq!(warning_text("199 - \"other\""), None);
        assert_eq!(warning_text("299 - \"cut \\u00"), None);
    }
}
