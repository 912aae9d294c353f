//! The HTTP/1.1 upgrade of a streaming request: which transport and subprotocol the
//! client asked for (WebSocket with `Sec-WebSocket-Protocol`, or SPDY/3.1 with
//! `X-Stream-Protocol-Version`), the `101 Switching Protocols` answer, and the upgraded
//! connection handed to the session once the answer is out.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::error::Error;

pub const SPDY: &str = "SPDY/3.1";
pub const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";

pub type Io = TokioIo<hyper::upgrade::Upgraded>;

/// The transport the client asked for, with the subprotocol chosen.
#[derive(Debug, PartialEq, Eq)]
pub enum Transport {
    WebSocket { protocol: String, accept: String },
    Spdy { protocol: String },
}

/// An upgraded connection.
pub enum Upgraded {
    WebSocket(Box<WebSocketStream<Io>>, String),
    Spdy(Io),
}

/// Every value of `name`, across repeated headers and comma-separated lists.
fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn upgrades_to(headers: &HeaderMap, to: &str) -> bool {
    let upgrade = values(headers, "upgrade")
        .iter()
        .any(|u| u.eq_ignore_ascii_case(to));
    let connection = values(headers, "connection")
        .iter()
        .any(|c| c.eq_ignore_ascii_case("upgrade"));
    upgrade && connection
}

/// The first of the client's protocols that the server speaks.
fn choose(client: &[String], server: &[&str], header: &str) -> Result<String, Error> {
    client
        .iter()
        .find(|c| server.contains(&c.as_str()))
        .cloned()
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "unable to upgrade: unable to negotiate protocol: the client asked for [{}] in {header}, the server supports [{}]",
                client.join(", "),
                server.join(", ")
            ))
        })
}

/// Which transport the request upgrades to, and with which subprotocol.
pub fn negotiate(
    headers: &HeaderMap,
    websocket: &[&str],
    spdy: &[&str],
) -> Result<Transport, Error> {
    if upgrades_to(headers, "websocket") {
        let key = headers
            .get("sec-websocket-key")
            .ok_or_else(|| Error::BadRequest("Sec-WebSocket-Key: Required value".into()))?;
        if headers
            .get("sec-websocket-version")
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(Error::BadRequest(
                "Sec-WebSocket-Version: only version 13 is supported".into(),
            ));
        }
        let protocol = choose(
            &values(headers, "sec-websocket-protocol"),
            websocket,
            "Sec-WebSocket-Protocol",
        )?;
        return Ok(Transport::WebSocket {
            protocol,
            accept: derive_accept_key(key.as_bytes()),
        });
    }
    if upgrades_to(headers, SPDY) {
        let protocol = choose(
            &values(headers, STREAM_PROTOCOL_VERSION),
            spdy,
            "X-Stream-Protocol-Version",
        )?;
        return Ok(Transport::Spdy { protocol });
    }
    Err(Error::BadRequest(
        "Upgrade request required: connect with a WebSocket or SPDY/3.1 upgrade".into(),
    ))
}

/// Answers `101 Switching Protocols` and runs `session` on the connection once upgraded.
/// The request's audit [`Hold`](crate::audit::Hold), if any, is kept until it ends.
pub fn upgrade<F, Fut>(mut req: axum::extract::Request, t: Transport, session: F) -> Response
where
    F: FnOnce(Upgraded) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(&mut req);
    // The audit record of the request completes when the session ends.
    let audit = req.extensions().get::<crate::audit::Hold>().cloned();
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let hv = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    match &t {
        Transport::WebSocket { protocol, accept } => {
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::SEC_WEBSOCKET_ACCEPT, hv(accept));
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, hv(protocol));
        }
        Transport::Spdy { protocol } => {
            h.insert(header::UPGRADE, HeaderValue::from_static(SPDY));
            h.insert(STREAM_PROTOCOL_VERSION, hv(protocol));
        }
    }
    tokio::spawn(async move {
        let io = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "the connection was not upgraded");
                return;
            }
        };
        let up = match t {
            Transport::Spdy { .. } => Upgraded::Spdy(io),
            Transport::WebSocket { protocol, .. } => Upgraded::WebSocket(
                Box::new(WebSocketStream::from_raw_socket(io, Role::Server, None).await),
                protocol,
            ),
        };
        session(up).await;
        drop(audit);
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_clients_first_supported_protocol_is_chosen() {
        let ws = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            (
                "sec-websocket-protocol",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            ),
        ]);
        assert_eq!(
            negotiate(&ws, &["v4.channel.k8s.io", "v5.channel.k8s.io"], &[]).unwrap(),
            Transport::WebSocket {
                protocol: "v5.channel.k8s.io".into(),
                // RFC 6455's example.
                accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
            }
        );
        let spdy = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
        ]);
        assert_eq!(
            negotiate(&spdy, &[], &["v4.channel.k8s.io"]).unwrap(),
            Transport::Spdy {
                protocol: "v4.channel.k8s.io".into()
            }
        );
        let e = negotiate(&spdy, &[], &["portforward.k8s.io"]).unwrap_err();
        assert!(
            e.to_string().contains("unable to negotiate protocol"),
            "{e}"
        );
        let plain = headers(&[("connection", "keep-alive")]);
        assert!(negotiate(&plain, &["x"], &["y"])
            .unwrap_err()
            .to_string()
            .contains("Upgrade request required"));
    }
}
