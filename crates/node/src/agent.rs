//! The node agent as one future: it binds the agent API, registers the kubelet, gets the
//! API its serving certificate, serves it, and runs the kubelet. Dropping the future
//! stops every task it started.

use std::sync::Arc;
use std::time::{Duration, Instant};

use client::Client;
use rkube_proto::api::node_agent_server::NodeAgentServer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::kubelet::{AgentTls, Kubelet, KubeletConfig};
use crate::runtime::Runtime;
use crate::server::{NodeAgentService, Verifier};
use crate::{certs, Error};

/// Runs the node agent until the kubelet's pod watch ends, or until the future is dropped.
pub async fn run(
    client: Client,
    cfg: KubeletConfig,
    runtime: Arc<dyn Runtime>,
) -> crate::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| Error::io(format!("--data-dir {}", cfg.data_dir.display()), e))?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| Error::io(format!("--listen {}", cfg.listen), e))?;
    let agent_port = listener
        .local_addr()
        .map_err(|e| Error::io("the agent API's address", e))?
        .port();
    let tls = cfg.tls.clone();
    let serving = certs::CertSpec::serving(
        &cfg.node_name,
        vec![cfg.node_ip.clone()],
        &cfg.data_dir.join("pki"),
    );
    let dns = match cfg.dns_server.clone() {
        Some(d) => Some(crate::dns::DnsServer::bind(d).await?),
        None => None,
    };
    let (node_ip, node_name) = (cfg.node_ip.clone(), cfg.node_name.clone());
    // The node first: the serving certificate is approved only for a registered node.
    let kubelet = Kubelet::register(client.clone(), cfg, runtime.clone(), agent_port).await?;
    let mut tasks = JoinSet::new();
    if let Some(d) = dns {
        let addr = advertised(d.local_addr()?, &node_ip);
        let c = client.clone();
        tasks.spawn(async move {
            announce_dns(&c, &node_name, addr).await;
            if let Err(e) = d.run(c, std::future::pending()).await {
                tracing::error!(error = %e, "cluster DNS stopped");
            }
        });
    }
    if let Some(t) = &tls {
        tasks.spawn(certs::serve(
            client.clone(),
            t.served.clone(),
            serving,
            t.ca_pem.clone(),
        ));
        wait_serving(&t.served).await;
    }
    let verifier = Verifier::new(Arc::new(client), tls.is_some());
    let service = NodeAgentService::new(runtime, verifier);
    tasks.spawn(serve(listener, service, tls.as_ref())?);
    Kubelet::run(kubelet).await
}

/// Where pods reach the DNS server at `bound`: there, or at the node's IP when it listens
/// on every address.
fn advertised(bound: std::net::SocketAddr, node_ip: &str) -> std::net::SocketAddr {
    match node_ip.parse() {
        Ok(ip) if bound.ip().is_unspecified() => std::net::SocketAddr::new(ip, bound.port()),
        _ => bound,
    }
}

/// Names the node's DNS server on its Node, where the cluster DNS endpoints come from;
/// tries again until the apiserver takes it.
async fn announce_dns(client: &Client, node: &str, addr: std::net::SocketAddr) {
    let patch = serde_json::json!({"metadata": {"annotations": {
        crate::dns::SERVER_ANNOTATION: addr.to_string()}}});
    let nodes = client::Api::<k8s_openapi::api::core::v1::Node>::all(client.clone());
    let mut wait = Duration::from_millis(200);
    while let Err(e) = nodes.patch(node, client::PatchParams::Merge, &patch).await {
        tracing::warn!(error = %e, "announcing the cluster DNS server on the Node; trying again");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
    tracing::info!(%addr, "cluster DNS announced");
}

/// The agent API's server on `listener`: over TLS, asking for a client certificate from
/// the cluster CA, when the node has a serving certificate; else plaintext.
fn serve(
    listener: TcpListener,
    service: NodeAgentService,
    tls: Option<&AgentTls>,
) -> crate::Result<impl std::future::Future<Output = ()>> {
    let server_cfg = match tls {
        Some(t) => Some(
            t.served
                .server_config(&t.ca_pem, pki::ClientAuth::Required, &[b"h2"])
                .map_err(|e| Error::invalid("the agent API's TLS", e))?,
        ),
        None => None,
    };
    Ok(async move {
        let server = tonic::transport::Server::builder().add_service(NodeAgentServer::new(service));
        let r = match server_cfg {
            Some(cfg) => {
                server
                    .serve_with_incoming(pki::tls_incoming(listener, cfg))
                    .await
            }
            None => {
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                server.serve_with_incoming(incoming).await
            }
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "the agent API stopped");
        }
    })
}

/// Waits (a little) for the agent API's first serving certificate, so that logs and exec
/// work by the time pods run.
async fn wait_serving(served: &pki::ServedCert) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !served.is_set() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !served.is_set() {
        tracing::warn!(
            "no serving certificate yet: logs and exec fail until its request is signed"
        );
    }
}
