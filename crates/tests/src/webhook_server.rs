//! An HTTPS admission webhook server for tests and benchmarks: a CA of its own (its PEM
//! goes in a configuration's caBundle), a serving certificate for 127.0.0.1 and
//! `webhook.hooks.svc`, and HTTP/1.1 keep-alive, just enough for AdmissionReview POSTs.
//! Each review is answered by the function it was started with.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Answers one AdmissionReview: the request path and body in, the review out.
pub type Review = Arc<dyn Fn(&str, &[u8]) -> Value + Send + Sync>;

/// The webhook server: answers until dropped, counting the reviews it answered.
pub struct WebhookServer {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub calls: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which ends every connection.
        self.task.abort();
    }
}

/// A CA, and a serving certificate from it for the URL host and the Service name.
fn certificates() -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let names = vec!["127.0.0.1".to_string(), "webhook.hooks.svc".to_string()];
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), server)
}

/// Starts a server that answers with `review` until dropped.
pub async fn start(review: Review) -> WebhookServer {
    let (ca_pem, tls) = certificates();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, calls, review) = (acceptor.clone(), counted.clone(), review.clone());
            conns.spawn(async move {
                // Replies go out at once, not after the client's delayed ACK.
                let _ = tcp.set_nodelay(true);
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = serve(tls, &calls, &review).await;
                }
            });
        }
    });
    WebhookServer {
        addr,
        ca_pem,
        calls,
        task,
    }
}

/// HTTP/1.1 with keep-alive, just enough for AdmissionReview POSTs.
async fn serve<S>(mut s: S, calls: &AtomicUsize, review: &Review) -> std::io::Result<()>
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if s.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            if s.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
        calls.fetch_add(1, Ordering::SeqCst);
        let answer = serde_json::to_vec(&review(&path, &body)).unwrap_or_default();
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        let mut out = reply.into_bytes();
        out.extend_from_slice(&answer);
        s.write_all(&out).await?;
        s.flush().await?;
    }
}
