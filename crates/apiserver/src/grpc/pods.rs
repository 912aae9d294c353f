//! The Pods service: `pods/log`, `pods/exec` (to completion, or streaming as
//! `Stream`, which also attaches) and `pods/portforward`. The caller is authorized here; the call
//! then goes to the agent of the pod's node (its InternalIP and agent port from the Node
//! status). On a cluster with a CA the apiserver accepts only an agent whose certificate
//! carries that IP and names that node, and presents its own client certificate; it never
//! sends a bearer token there. Only on a plaintext cluster does it send a short-lived
//! token it signs for node agents.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rkube_proto::api::node_agent_client::NodeAgentClient;
use rkube_proto::api::pods_server::Pods;
use rkube_proto::api::*;
use serde_json::Value;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::handler::Api;
use crate::tokens::Tokens;

/// The apiserver's user toward node agents (its client certificate's common name).
pub const APISERVER_USER: &str = "system:apiserver";

/// The apiserver's client certificate for node agents, from the cluster CA.
pub fn agent_client_cert(ca: Arc<pki::ClusterCa>) -> pki::Result<Arc<pki::RenewingCert>> {
    pki::RenewingCert::new(
        ca,
        pki::LeafSpec {
            common_name: APISERVER_USER.into(),
            organizations: vec![],
            sans: vec![],
            usage: pki::Usage::Client,
            validity: Duration::from_secs(24 * 3600),
        },
    )
}

#[derive(Clone)]
pub struct PodsService {
    pub api: Arc<Api>,
    pub tokens: Arc<Tokens>,
    /// The apiserver's client certificate for node agents (`system:apiserver`), from the
    /// cluster CA; `None` on a plaintext cluster.
    pub agent_client: Option<Arc<pki::RenewingCert>>,
}

impl PodsService {
    /// Authorizes `verb` on `pods/<sub>`, then connects to the pod's node agent.
    async fn node_for<T>(
        &self,
        req: &Request<T>,
        verb: &str,
        sub: &str,
        ns: &str,
        pod: &str,
    ) -> Result<NodeAgentClient<Channel>, Error> {
        let user = self.api.user(req).await?;
        let rt = self.api.registry.get("v1", "Pod")?;
        self.api.authorize(&user, verb, &rt, sub, ns, pod)?;
        dial_node(&self.api, self.agent_client.as_ref(), ns, pod).await
    }

    fn signed<T>(&self, msg: T) -> Result<Request<T>, Error> {
        signed(&self.tokens, self.agent_client.is_some(), msg)
    }
}

/// Connects to the agent of the node pod `ns/pod` is scheduled to. The caller has
/// authorized the request.
pub(crate) async fn dial_node(
    api: &Api,
    agent_client: Option<&Arc<pki::RenewingCert>>,
    ns: &str,
    pod: &str,
) -> Result<NodeAgentClient<Channel>, Error> {
    api.cache.wait_fresh(&api.store).await?;
    let p = api
        .cache
        .get(&format!("/registry/core/pods/{ns}/{pod}"))
        .ok_or_else(|| Error::NotFound {
            resource: "pods".into(),
            name: pod.into(),
        })?
        .value()?;
    let node = p["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(Error::BadRequest(format!(
            "pod {pod:?} is not scheduled to a node yet"
        )));
    }
    let n: Value = api
        .cache
        .get(&format!("/registry/core/nodes/{node}"))
        .ok_or_else(|| Error::NotFound {
            resource: "nodes".into(),
            name: node.clone(),
        })?
        .value()?;
    let ip = n["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .unwrap_or_default()
        .to_string();
    let port = n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_i64()
        .unwrap_or(0);
    if ip.is_empty() || port == 0 {
        return Err(Error::Unavailable(format!(
            "node {node:?} has no agent endpoint"
        )));
    }
    let unavailable =
        |e: String| Error::Unavailable(format!("node {node:?} agent at {ip}:{port}: {e}"));
    let ch = match agent_client {
        Some(cert) => {
            let addr = std::net::SocketAddr::new(
                ip.parse()
                    .map_err(|_| unavailable("the InternalIP is not an IP address".into()))?,
                port as u16,
            );
            let issued = cert.issued();
            let expected = pki::Expected {
                ca_pem: cert.ca().cert_pem(),
                identity: (&issued.cert_pem, &issued.key_pem),
                common_name: &format!("system:node:{node}"),
            };
            pki::dial_verified(addr, expected, Duration::from_secs(3))
                .await
                .map_err(|e| unavailable(e.to_string()))?
        }
        None => tonic::transport::Endpoint::from_shared(format!("http://{ip}:{port}"))
            .map_err(|e| Error::Internal(e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await
            .map_err(|e| unavailable(e.to_string()))?,
    };
    Ok(NodeAgentClient::new(ch))
}

/// A request to a node agent: on a plaintext cluster (`tls` false) it carries a token the
/// apiserver signed; over TLS the client certificate speaks for it.
pub(crate) fn signed<T>(tokens: &Tokens, tls: bool, msg: T) -> Result<Request<T>, Error> {
    let mut r = Request::new(msg);
    if tls {
        return Ok(r);
    }
    let t = tokens.node_token()?;
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {t}")
            .parse()
            .map_err(|_| Error::Internal("token header".into()))?,
    );
    Ok(r)
}

type LogStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Pods for PodsService {
    type LogsStream = LogStream;

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<LogStream>, Status> {
        let (ns, pod) = (req.get_ref().namespace.clone(), req.get_ref().pod.clone());
        let mut node = self.node_for(&req, "get", "log", &ns, &pod).await?;
        let upstream = node
            .logs(self.signed(req.into_inner())?)
            .await?
            .into_inner();
        Ok(Response::new(Box::pin(upstream)))
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        let (ns, pod) = (req.get_ref().namespace.clone(), req.get_ref().pod.clone());
        let mut node = self.node_for(&req, "create", "exec", &ns, &pod).await?;
        node.exec(self.signed(req.into_inner())?).await
    }

    type StreamStream = OutputStream<StreamOutput>;

    async fn stream(
        &self,
        req: Request<Streaming<StreamInput>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let user = self.api.user(&req).await?;
        let mut inbound = req.into_inner();
        let first = inbound.message().await?;
        let Some(StreamInput {
            input: Some(stream_input::Input::Open(open)),
        }) = &first
        else {
            return Err(Status::invalid_argument(
                "the first message of a stream must be `open`",
            ));
        };
        let sub = match open.kind() {
            StreamKind::Exec => "exec",
            StreamKind::Attach => "attach",
        };
        let (ns, pod) = (open.namespace.clone(), open.pod.clone());
        let rt = self.api.registry.get("v1", "Pod")?;
        self.api.authorize(&user, "create", &rt, sub, &ns, &pod)?;
        let mut node = dial_node(&self.api, self.agent_client.as_ref(), &ns, &pod).await?;
        let requests = futures::stream::iter(first).chain(ok_until_error(inbound));
        let out = node.stream(self.signed(requests)?).await?.into_inner();
        Ok(Response::new(Box::pin(out)))
    }

    type PortForwardStream = OutputStream<PortForwardOutput>;

    async fn port_forward(
        &self,
        req: Request<Streaming<PortForwardInput>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        let user = self.api.user(&req).await?;
        let mut inbound = req.into_inner();
        let first = inbound.message().await?;
        let Some(PortForwardInput {
            input: Some(port_forward_input::Input::Open(open)),
        }) = &first
        else {
            return Err(Status::invalid_argument(
                "the first message of a port-forward must be `open`",
            ));
        };
        let (ns, pod) = (open.namespace.clone(), open.pod.clone());
        let rt = self.api.registry.get("v1", "Pod")?;
        self.api
            .authorize(&user, "create", &rt, "portforward", &ns, &pod)?;
        let mut node = dial_node(&self.api, self.agent_client.as_ref(), &ns, &pod).await?;
        let requests = futures::stream::iter(first).chain(ok_until_error(inbound));
        let out = node
            .port_forward(self.signed(requests)?)
            .await?
            .into_inner();
        Ok(Response::new(Box::pin(out)))
    }
}

type OutputStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The caller's messages until its stream ends or fails.
fn ok_until_error<T: Send + 'static>(s: Streaming<T>) -> impl Stream<Item = T> + Send + 'static {
    s.take_while(|r| std::future::ready(r.is_ok()))
        .filter_map(|r| std::future::ready(r.ok()))
}
