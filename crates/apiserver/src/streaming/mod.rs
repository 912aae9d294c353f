//! Kubernetes' streaming subresources of pods — `exec`, `attach` and `portforward` — on
//! the REST API, bridged to the node agent's `Stream` and `PortForward` calls.
//!
//! - exec and attach speak WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`;
//!   [`websocket`]) or SPDY/3.1 (`v4.channel.k8s.io`; [`spdy`]), see [`remotecommand`];
//! - portforward speaks SPDY/3.1 (`portforward.k8s.io`), directly or tunnelled in a
//!   WebSocket (`SPDY/3.1+portforward.k8s.io`), see [`portforward`].
//!
//! The handlers expect an authenticated caller already authorized for `create` on
//! `pods/exec`, `pods/attach` or `pods/portforward`. The upgrade needs a server that
//! serves HTTP/1.1 upgrades: [`serve::serve_with_upgrades`].

pub(crate) mod options;
pub(crate) mod portforward;
pub(crate) mod remotecommand;
pub mod serve;
pub(crate) mod spdy;
pub(crate) mod status;
pub mod target;
pub(crate) mod upgrade;
pub mod upstream;
pub(crate) mod websocket;

use std::sync::Arc;

use axum::response::Response;
use rkube_proto::api::{StreamKind, StreamOpen};

pub use self::serve::serve_with_upgrades;
pub use self::target::Purpose;
use self::upgrade::Upgraded;
use self::upstream::{NodeUpstream, Upstream};
use crate::error::Error;
use crate::handler::Api;
use crate::tokens::Tokens;

/// The SPDY subprotocol of exec and attach.
pub const REMOTE_COMMAND_V4: &str = "v4.channel.k8s.io";
/// The SPDY subprotocol of portforward.
pub const PORT_FORWARD: &str = "portforward.k8s.io";

/// `pods/exec` and `pods/attach` (`GET` for WebSocket, `POST` for SPDY) and
/// `pods/portforward` (`GET` for the WebSocket tunnel, `POST` for SPDY), bridged to the
/// node agent of the pod that `pods` dials.
pub async fn serve(
    pods: &crate::grpc::PodsService,
    purpose: Purpose,
    namespace: String,
    pod: String,
    query: String,
    req: axum::extract::Request,
) -> Response {
    let upstream = Node {
        api: pods.api.clone(),
        tokens: pods.tokens.clone(),
        agent_client: pods.agent_client.clone(),
    };
    match purpose {
        Purpose::PortForward => port_forward(upstream, namespace, pod, query, req).await,
        p => remote_command(upstream, p, namespace, pod, query, req).await,
    }
}

/// Where sessions go: checks the pod, then connects to what runs it.
#[async_trait::async_trait]
pub trait Sessions: Send + Sync + 'static {
    /// Checks pod `ns/pod` can serve `purpose` (for `container`, empty: its only one),
    /// and names the container.
    async fn resolve(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        purpose: Purpose,
    ) -> Result<String, Error>;
    /// Connects to the node the pod runs on.
    async fn connect(&self, ns: &str, pod: &str) -> Result<Arc<dyn Upstream>, Error>;
}

/// The real cluster: the watch cache and the pod's node agent.
struct Node {
    api: Arc<Api>,
    tokens: Arc<Tokens>,
    agent_client: Option<Arc<pki::RenewingCert>>,
}

#[async_trait::async_trait]
impl Sessions for Node {
    async fn resolve(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        purpose: Purpose,
    ) -> Result<String, Error> {
        target::resolve(&self.api, ns, pod, container, purpose).await
    }

    async fn connect(&self, ns: &str, pod: &str) -> Result<Arc<dyn Upstream>, Error> {
        let up = NodeUpstream::connect(
            &self.api,
            self.tokens.clone(),
            self.agent_client.as_ref(),
            ns,
            pod,
        )
        .await?;
        Ok(Arc::new(up))
    }
}

/// An exec or attach request: checks it, upgrades the connection and runs the session.
pub async fn remote_command(
    sessions: impl Sessions,
    purpose: Purpose,
    namespace: String,
    pod: String,
    query: String,
    req: axum::extract::Request,
) -> Response {
    // The request (its body is not Sync) stays out of what is held across awaits.
    let negotiated =
        options::StreamOptions::parse(&query, purpose == Purpose::Exec).and_then(|o| {
            let t = upgrade::negotiate(
                req.headers(),
                &[websocket::V5, websocket::V4],
                &[REMOTE_COMMAND_V4],
            )?;
            Ok((o, t))
        });
    let prepared = async {
        let (opts, transport) = negotiated?;
        let container = sessions
            .resolve(&namespace, &pod, &opts.container, purpose)
            .await?;
        let upstream = sessions.connect(&namespace, &pod).await?;
        let kind = match purpose {
            Purpose::Attach => StreamKind::Attach,
            _ => StreamKind::Exec,
        };
        let open = StreamOpen {
            kind: kind.into(),
            namespace: namespace.clone(),
            pod: pod.clone(),
            container,
            command: opts.command,
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
            tty: opts.tty,
        };
        Ok::<_, Error>((transport, upstream, open))
    };
    let (transport, upstream, open) = match prepared.await {
        Ok(p) => p,
        Err(e) => return status::error_response(&e),
    };
    upgrade::upgrade(req, transport, move |up| async move {
        match up {
            Upgraded::Spdy(io) => remotecommand::serve_spdy(io, upstream, open).await,
            Upgraded::WebSocket(ws, protocol) => {
                let v5 = protocol == websocket::V5;
                remotecommand::serve_websocket(*ws, v5, upstream, open).await
            }
        }
    })
}

/// A portforward request: checks it, upgrades the connection and forwards.
pub async fn port_forward(
    sessions: impl Sessions,
    namespace: String,
    pod: String,
    query: String,
    req: axum::extract::Request,
) -> Response {
    let negotiated = options::parse_ports(&query).and_then(|_| {
        upgrade::negotiate(
            req.headers(),
            &[websocket::PORT_FORWARD_TUNNEL],
            &[PORT_FORWARD],
        )
    });
    let prepared = async {
        let transport = negotiated?;
        sessions
            .resolve(&namespace, &pod, "", Purpose::PortForward)
            .await?;
        let upstream = sessions.connect(&namespace, &pod).await?;
        Ok::<_, Error>((transport, upstream))
    };
    let (transport, upstream) = match prepared.await {
        Ok(p) => p,
        Err(e) => return status::error_response(&e),
    };
    let target = portforward::Target { namespace, pod };
    upgrade::upgrade(req, transport, move |up| async move {
        match up {
            Upgraded::Spdy(io) => portforward::serve_spdy(io, upstream, target).await,
            Upgraded::WebSocket(ws, _) => portforward::serve_tunnel(*ws, upstream, target).await,
        }
    })
}

#[cfg(test)]
mod tests;
