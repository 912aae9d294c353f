//! The connection to a cloud provider plugin: a unix socket, or TCP with mutual TLS. Every
//! call has a deadline and is retried, with back-off, while the plugin is unreachable or
//! slow (a plugin that died and is being restarted); the protocol's calls are idempotent,
//! so a retry never acts twice.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rkube_proto::cloudprovider as cp;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Uri};
use tonic::{Code, Status};

/// Where a plugin listens.
#[derive(Clone, Debug)]
pub enum Address {
    /// `unix:///run/rkube/provider.sock`
    Unix(PathBuf),
    /// `https://host:port`, with the client certificate and CA of `tls`.
    Tcp { url: String, tls: ClientTlsConfig },
}

impl Address {
    /// `https://HOST:PORT`, dialed with mutual TLS: the plugin's certificate is checked
    /// against `ca_pem` for HOST, and `cert_pem`/`key_pem` is the caller's. `None` when
    /// `url` is not of that form.
    pub fn tcp(url: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Option<Address> {
        let (host, port) = url.strip_prefix("https://")?.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
            .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem))
            .domain_name(host.trim_matches(['[', ']']));
        Some(Address::Tcp {
            url: url.to_string(),
            tls,
        })
    }

    /// Parses `unix://PATH` (or a bare path); `https://` needs TLS settings, so it is
    /// built with [`Address::Tcp`].
    pub fn parse_unix(s: &str) -> Option<Address> {
        let path = s.strip_prefix("unix://").unwrap_or(s);
        path.starts_with('/').then(|| Address::Unix(path.into()))
    }
}

/// Why the plugin could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cloud provider plugin at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cloud provider plugin: {what}: {status}")]
    Call { what: String, status: Status },
    #[error("cloud provider plugin {name:?} speaks protocol {version:?}; rkube speaks 1")]
    Version { name: String, version: i32 },
    #[error("cloud provider plugin {name:?} does not offer {what}")]
    Unsupported { name: String, what: &'static str },
}

impl PluginError {
    /// The call reached the plugin, which said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PluginError::Call { status, .. } if status.code() == Code::NotFound)
    }
}

/// Deadlines and retries of plugin calls.
#[derive(Clone, Copy, Debug)]
pub struct CallPolicy {
    /// Each attempt's deadline.
    pub timeout: Duration,
    /// Attempts in all, on codes that say the plugin was not there or too slow.
    pub attempts: u32,
    /// The first pause between attempts; it doubles.
    pub backoff: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            timeout: Duration::from_secs(30),
            attempts: 5,
            backoff: Duration::from_millis(200),
        }
    }
}

/// A connected plugin and what it said it is.
#[derive(Clone)]
pub struct Plugin {
    channel: Channel,
    policy: CallPolicy,
    pub info: cp::GetPluginInfoResponse,
}

impl Plugin {
    /// Connects (lazily: a plugin that is restarted is reached again) and asks who it is.
    pub async fn connect(addr: &Address, policy: CallPolicy) -> Result<Plugin, PluginError> {
        let channel = channel(addr)?;
        let mut p = Plugin {
            channel,
            policy,
            info: Default::default(),
        };
        p.info = p
            .call(
                "GetPluginInfo",
                cp::GetPluginInfoRequest {},
                |ch, r| async move {
                    cp::identity_client::IdentityClient::new(ch)
                        .get_plugin_info(r)
                        .await
                },
            )
            .await?;
        if p.info.protocol_version != cp::ProtocolVersion::ProtocolVersion1 as i32 {
            return Err(PluginError::Version {
                name: p.info.name.clone(),
                version: p.info.protocol_version,
            });
        }
        Ok(p)
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Whether the plugin offers `c`.
    pub fn offers(&self, c: cp::Capability) -> bool {
        self.info.capabilities.contains(&(c as i32))
    }

    /// `Err(Unsupported)` unless the plugin offers `c`.
    pub fn require(&self, c: cp::Capability, what: &'static str) -> Result<(), PluginError> {
        match self.offers(c) {
            true => Ok(()),
            false => Err(PluginError::Unsupported {
                name: self.info.name.clone(),
                what,
            }),
        }
    }

    /// One call `what`, with the policy's deadline and retries: `f` makes the call on a
    /// channel with the request.
    pub async fn call<Q, A, F, Fut>(&self, what: &str, req: Q, f: F) -> Result<A, PluginError>
    where
        Q: Clone,
        F: Fn(Channel, tonic::Request<Q>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<A>, Status>>,
    {
        let mut pause = self.policy.backoff;
        let mut attempt = 1;
        loop {
            let mut r = tonic::Request::new(req.clone());
            r.set_timeout(self.policy.timeout);
            let status =
                match tokio::time::timeout(self.policy.timeout, f(self.channel.clone(), r)).await {
                    Ok(Ok(a)) => return Ok(a.into_inner()),
                    Ok(Err(s)) => s,
                    Err(_) => {
                        Status::deadline_exceeded(format!("no answer in {:?}", self.policy.timeout))
                    }
                };
            let retry = matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Unknown
            );
            if !retry || attempt >= self.policy.attempts {
                return Err(PluginError::Call {
                    what: what.to_string(),
                    status,
                });
            }
            tracing::debug!(what, attempt, error = %status, "a cloud provider call failed; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

fn channel(addr: &Address) -> Result<Channel, PluginError> {
    let connect_err = |source| PluginError::Connect {
        addr: format!("{addr:?}"),
        source,
    };
    match addr {
        Address::Unix(path) => {
            let path = path.clone();
            let ep = Endpoint::try_from("http://plugin").map_err(connect_err)?;
            Ok(ep
                .connect_timeout(Duration::from_secs(5))
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let p = path.clone();
                    async move { tokio::net::UnixStream::connect(p).await.map(TokioIo::new) }
                })))
        }
        Address::Tcp { url, tls } => {
            let ep = Endpoint::try_from(url.clone())
                .and_then(|e| e.tls_config(tls.clone()))
                .map_err(connect_err)?;
            Ok(ep.connect_timeout(Duration::from_secs(5)).connect_lazy())
        }
    }
}
