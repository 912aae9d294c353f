//! Serving a router with HTTP/1.1 upgrades: tonic's server hands connections to hyper
//! without upgrade support, so an upgraded exec or port-forward would never get its
//! connection. This serves the same router (gRPC and REST, HTTP/1.1 and HTTP/2 by
//! preface) on hyper-util's automatic builder with upgrades, and gives each request its
//! connection's info (`TcpConnectInfo`, or `TlsConnectInfo` with the peer's
//! certificates) as tonic does, so authentication reads it the same way.

use std::convert::Infallible;

use futures::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::server::Connected;
use tower::ServiceExt;

/// Serves `router` on every connection `incoming` yields, until it ends.
pub async fn serve_with_upgrades<I, IO, E>(incoming: I, router: axum::Router)
where
    I: Stream<Item = Result<IO, E>>,
    E: std::fmt::Display,
    IO: Connected + AsyncRead + AsyncWrite + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    futures::pin_mut!(incoming);
    while let Some(io) = incoming.next().await {
        let io = match io {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a connection failed");
                continue;
            }
        };
        let info = io.connect_info();
        let router = router.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(info.clone());
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(axum::body::Body::new)).await;
                Ok::<_, Infallible>(resp.unwrap_or_else(|e| match e {}))
            }
        });
        let builder = builder.clone();
        tokio::spawn(async move {
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(io), svc)
                .await
            {
                tracing::debug!(error = %e, "serving a connection ended");
            }
        });
    }
}
