//! The server with upgrades as the API port runs it: TLS with ALPN `h2` and `http/1.1`,
//! gRPC over HTTP/2 beside upgraded HTTP/1.1 on one listener, and each request carrying
//! its connection's TLS info (the client certificate authentication reads).

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rkube_proto::api::pods_client::PodsClient;
use rkube_proto::api::pods_server::{Pods, PodsServer};
use rkube_proto::api::*;
use tonic::{Request, Response, Status, Streaming};

use super::fake::Server;
use super::kubectl::{kubectl, run, transport};

const DEADLINE: Duration = Duration::from_secs(60);

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Answers `exec` with the number of client certificates the request saw.
struct CertCounter;

#[tonic::async_trait]
impl Pods for CertCounter {
    type LogsStream = Out<LogChunk>;
    type StreamStream = Out<StreamOutput>;
    type PortForwardStream = Out<PortForwardOutput>;

    async fn logs(&self, _: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        Err(Status::unimplemented("logs"))
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        let certs = req.peer_certs().map_or(0, |c| c.len());
        Ok(Response::new(ExecResponse {
            exit_code: certs as i32,
            ..Default::default()
        }))
    }

    async fn stream(
        &self,
        _: Request<Streaming<StreamInput>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        Err(Status::unimplemented("stream"))
    }

    async fn port_forward(
        &self,
        _: Request<Streaming<PortForwardInput>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        Err(Status::unimplemented("port_forward"))
    }
}

struct Pki {
    ca: Arc<pki::ClusterCa>,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let token = pki::ClusterToken::generate().unwrap();
        Pki {
            ca: Arc::new(pki::ClusterCa::from_token(&token).unwrap()),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn leaf(&self, cn: &str, usage: pki::Usage, sans: &[&str]) -> pki::LeafSpec {
        pki::LeafSpec {
            common_name: cn.into(),
            organizations: vec!["system:masters".into()],
            sans: sans.iter().map(|s| s.to_string()).collect(),
            usage,
            validity: Duration::from_secs(3600),
        }
    }

    fn server_config(&self) -> Arc<pki::rustls::ServerConfig> {
        let spec = self.leaf("apiserver", pki::Usage::Server, &["127.0.0.1", "localhost"]);
        let cert = pki::RenewingCert::new(self.ca.clone(), spec).unwrap();
        cert.server_config(pki::ClientAuth::Optional, &[b"h2", b"http/1.1"])
            .unwrap()
    }

    /// The admin's kubeconfig for `server`.
    fn kubeconfig(&self, server: &Server) -> std::path::PathBuf {
        let admin = self
            .ca
            .issue(&self.leaf("admin", pki::Usage::Client, &[]))
            .unwrap();
        let file = |name: &str, text: &str| {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let (ca, cert, key) = (
            file("ca.crt", self.ca.cert_pem()),
            file("admin.crt", &admin.cert_pem),
            file("admin.key", &admin.key_pem),
        );
        let cfg = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    \
             certificate-authority: {ca}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    \
             namespace: ns\ncurrent-context: c\nusers:\n- name: u\n  user:\n    client-certificate: {cert}\n    \
             client-key: {key}\n",
            server.addr
        );
        Path::new(&file("kubeconfig", &cfg)).to_path_buf()
    }
}

async fn start(pki: &Pki) -> Server {
    let grpc = tonic::service::Routes::new(PodsServer::new(CertCounter)).into_axum_router();
    Server::start_tls(pki.server_config(), grpc).await
}

#[tokio::test]
async fn grpc_over_http2_sees_the_client_certificate() {
    tokio::time::timeout(DEADLINE, async {
        let pki = Pki::new();
        let server = start(&pki).await;
        let admin = pki
            .ca
            .issue(&pki.leaf("admin", pki::Usage::Client, &[]))
            .unwrap();
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pki.ca.cert_pem()))
            .identity(tonic::transport::Identity::from_pem(
                admin.cert_pem,
                admin.key_pem,
            ));
        let ch = tonic::transport::Channel::from_shared(format!("https://{}", server.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let r = PodsClient::new(ch)
            .exec(ExecRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.exit_code, 1, "one client certificate reached the service");
    })
    .await
    .expect("the call ends within the deadline");
}

#[tokio::test]
async fn kubectl_streams_over_tls_beside_grpc() {
    tokio::time::timeout(DEADLINE, async {
        let pki = Pki::new();
        let server = start(&pki).await;
        let cfg = pki.kubeconfig(&server);
        for v in ["1.27", "1.33"] {
            let bin = kubectl(v);
            let (code, out, err) = run(&bin, &cfg, &["exec", "p", "--", "hello", "4"], b"").await;
            assert_eq!(
                (code, out.as_str()),
                (4, "hello from c\n"),
                "kubectl {v}: {err}"
            );
            assert_eq!(server.last_upgrade(), transport(v, 30), "kubectl {v}");
            let (code, out, err) = run(
                &bin,
                &cfg,
                &["exec", "-i", "p", "--", "cat", "0"],
                b"over tls",
            )
            .await;
            assert_eq!((code, out.as_str()), (0, "over tls"), "kubectl {v}: {err}");
        }
    })
    .await
    .expect("kubectl finishes within the deadline");
}
