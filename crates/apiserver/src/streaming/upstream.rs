//! Where a session's process or connection lives: the pod's node agent, reached over gRPC
//! ([`NodeUpstream`]); tests put their own [`Upstream`] in its place.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use rkube_proto::api::node_agent_client::NodeAgentClient;
use rkube_proto::api::{PortForwardInput, PortForwardOutput, StreamInput, StreamOutput};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::handler::Api;
use crate::tokens::Tokens;

pub type Outputs<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// Opens sessions and forwarded connections for one pod.
#[async_trait::async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// An exec or attach session: `input` starts with its `open` message.
    async fn stream(
        &self,
        input: mpsc::Receiver<StreamInput>,
    ) -> Result<Outputs<StreamOutput>, tonic::Status>;
    /// One forwarded connection: `input` starts with its `open` message.
    async fn port_forward(
        &self,
        input: mpsc::Receiver<PortForwardInput>,
    ) -> Result<Outputs<PortForwardOutput>, tonic::Status>;
}

/// The agent of the node a pod runs on.
pub struct NodeUpstream {
    client: NodeAgentClient<Channel>,
    tokens: Arc<Tokens>,
    tls: bool,
}

impl NodeUpstream {
    /// Connects to the agent of the node pod `ns/pod` is on; see
    /// [`crate::grpc::pods::PodsService`] for how the agent is trusted.
    pub async fn connect(
        api: &Api,
        tokens: Arc<Tokens>,
        agent_client: Option<&Arc<pki::RenewingCert>>,
        ns: &str,
        pod: &str,
    ) -> crate::Result<Self> {
        let client = crate::grpc::pods::dial_node(api, agent_client, ns, pod).await?;
        Ok(NodeUpstream {
            client,
            tokens,
            tls: agent_client.is_some(),
        })
    }
}

#[async_trait::async_trait]
impl Upstream for NodeUpstream {
    async fn stream(
        &self,
        input: mpsc::Receiver<StreamInput>,
    ) -> Result<Outputs<StreamOutput>, tonic::Status> {
        let req = crate::grpc::pods::signed(&self.tokens, self.tls, ReceiverStream::new(input))?;
        let out = self.client.clone().stream(req).await?.into_inner();
        Ok(Box::pin(out))
    }

    async fn port_forward(
        &self,
        input: mpsc::Receiver<PortForwardInput>,
    ) -> Result<Outputs<PortForwardOutput>, tonic::Status> {
        let req = crate::grpc::pods::signed(&self.tokens, self.tls, ReceiverStream::new(input))?;
        let out = self.client.clone().port_forward(req).await?.into_inner();
        Ok(Box::pin(out))
    }
}
