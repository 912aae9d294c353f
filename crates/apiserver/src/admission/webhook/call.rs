//! The HTTPS client of webhooks: one TLS client per (caBundle, server name), reused across
//! requests together with its kept-alive HTTP/1.1 connections, and one POST of an
//! AdmissionReview under the webhook's deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use pki::rustls::pki_types::pem::PemObject;
use pki::rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::config::Hook;
use super::resolve::{self, Dial, Target};
use crate::cache::WatchCache;

/// Kubernetes reads at most this much of a webhook's answer.
const MAX_RESPONSE_BYTES: usize = 3 << 20;
/// TLS clients kept; past this the cache starts over.
const MAX_CLIENTS: usize = 128;
/// Kept-alive connections per webhook address: enough for a busy member's concurrent
/// calls, so that each call does not pay a TLS handshake.
const MAX_IDLE_PER_SERVER: usize = 64;

/// Why a webhook gave no answer. The webhook's failurePolicy decides whether the request
/// is refused; retrying may succeed once the webhook is reachable and well-behaved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The webhook's address or trust could not be set up.
    #[error("could not get REST client: {0}")]
    Client(String),
    /// The AdmissionReview cannot be built for this webhook.
    #[error("could not create admission objects: {0}")]
    Review(String),
    /// The POST failed or timed out.
    #[error("failed to call webhook: Post {url:?}: {reason}")]
    Post { url: String, reason: String },
    /// The answer is not a valid AdmissionReview response to this request.
    #[error("received invalid webhook response: {0}")]
    Response(String),
}

type Sender = SendRequest<Full<Bytes>>;

/// A TLS client for one caBundle and server name, and its idle connections by address.
struct Client {
    tls: TlsConnector,
    server_name: ServerName<'static>,
    idle: Mutex<HashMap<Dial, Vec<Sender>>>,
}

/// A TLS client's key: the caBundle it trusts and the server name it verifies.
type ClientKey = (Vec<u8>, String);

/// The clients of all webhooks.
#[derive(Default)]
pub(crate) struct Caller {
    clients: Mutex<HashMap<ClientKey, Arc<Client>>>,
    /// Spreads calls over a Service's endpoints.
    next: AtomicUsize,
}

impl Caller {
    /// POSTs `body` to `hook` and returns the answer's body.
    pub async fn post(
        &self,
        cache: &WatchCache,
        hook: &Hook,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        let pick = self.next.fetch_add(1, Ordering::Relaxed);
        let target = resolve::target(cache, &hook.client, hook.timeout.as_secs(), pick)
            .map_err(CallError::Client)?;
        let ca = hook.client.ca_bundle.as_ref().map(|b| b.0.as_slice());
        let client = self.client(ca.unwrap_or_default(), &target.server_name)?;
        let post = |reason: String| CallError::Post {
            url: target.url.clone(),
            reason,
        };
        match tokio::time::timeout(hook.timeout, client.post(&target, Bytes::from(body))).await {
            Ok(r) => r.map_err(post),
            Err(_) => Err(post("context deadline exceeded".into())),
        }
    }

    fn client(&self, ca_bundle: &[u8], server_name: &str) -> Result<Arc<Client>, CallError> {
        let key = (ca_bundle.to_vec(), server_name.to_string());
        if let Some(c) = self.clients.lock().get(&key) {
            return Ok(c.clone());
        }
        let fail = |m: String| CallError::Client(m);
        if ca_bundle.is_empty() {
            return Err(fail(
                "clientConfig.caBundle is empty, and this apiserver has no system trust roots: \
                 set caBundle to the PEM of the CA that signed the webhook's certificate"
                    .into(),
            ));
        }
        let pem = std::str::from_utf8(ca_bundle)
            .map_err(|_| fail("clientConfig.caBundle: not PEM text".into()))?;
        if !CertificateDer::pem_slice_iter(ca_bundle).any(|c| c.is_ok()) {
            return Err(fail("clientConfig.caBundle: no PEM certificate".into()));
        }
        let tls = pki::client_config(pem, None)
            .map_err(|e| fail(format!("clientConfig.caBundle: {e}")))?;
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| fail(format!("server name {server_name:?}: {e}")))?;
        let client = Arc::new(Client {
            tls: TlsConnector::from(tls),
            server_name: name,
            idle: Mutex::default(),
        });
        let mut clients = self.clients.lock();
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }
}

impl Client {
    async fn post(&self, t: &Target, body: Bytes) -> Result<Vec<u8>, String> {
        if let Some(sender) = self.take_idle(&t.dial).await {
            match self.send(t, sender, body.clone()).await {
                Ok(answer) => return Ok(answer),
                // The server may have closed a kept-alive connection before reading it.
                Err(Failure::Connection(e)) => tracing::debug!("webhook connection reused: {e}"),
                Err(Failure::Other(e)) => return Err(e),
            }
        }
        let sender = self.connect(&t.dial).await?;
        self.send(t, sender, body).await.map_err(|f| match f {
            Failure::Connection(e) | Failure::Other(e) => e,
        })
    }

    async fn send(&self, t: &Target, mut sender: Sender, body: Bytes) -> Result<Vec<u8>, Failure> {
        let req = hyper::Request::post(t.path_and_query.as_str())
            .header(HOST, t.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| Failure::Other(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| {
            if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
                Failure::Connection(e.to_string())
            } else {
                Failure::Other(e.to_string())
            }
        })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| Failure::Other(format!("reading the response: {e}")))?
            .to_bytes();
        self.put_idle(t.dial.clone(), sender);
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned();
            return Err(Failure::Other(format!(
                "the server responded with status {status}: {text}"
            )));
        }
        Ok(body.to_vec())
    }

    async fn take_idle(&self, dial: &Dial) -> Option<Sender> {
        loop {
            let mut sender = self.idle.lock().get_mut(dial)?.pop()?;
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put_idle(&self, dial: Dial, sender: Sender) {
        let mut idle = self.idle.lock();
        let list = idle.entry(dial).or_default();
        if list.len() < MAX_IDLE_PER_SERVER && !sender.is_closed() {
            list.push(sender);
        }
    }

    async fn connect(&self, dial: &Dial) -> Result<Sender, String> {
        let tcp = match dial {
            Dial::Host(host, port) => TcpStream::connect((host.as_str(), *port)).await,
            Dial::Addr(addr) => TcpStream::connect(addr).await,
        }
        .map_err(|e| format!("dial tcp: {e}"))?;
        // Small requests and answers: send them without waiting for Nagle.
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        // The connection's driver ends when its last sender is dropped or the peer closes.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("webhook connection ended: {e}");
            }
        });
        Ok(sender)
    }
}

/// How a send failed: on a connection that was already closed (worth one retry on a new
/// connection), or otherwise.
enum Failure {
    Connection(String),
    Other(String),
}
