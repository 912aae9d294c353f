//! Sessions end to end over real connections: a server with upgrades serving the
//! handlers, a fake upstream in place of the node agent, and WebSocket and SPDY clients.

mod fake;
mod kubectl;
mod spdy_client;
mod tls;

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use self::fake::Server;
use super::websocket;

const DEADLINE: Duration = Duration::from_secs(30);

async fn ws_connect(
    server: &Server,
    path_and_query: &str,
    protocol: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut req = format!("ws://{}{path_and_query}", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol);
    ws
}

/// Reads messages until the server closes: stdout, stderr, and the error channel.
async fn ws_collect(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(msg) = ws.next().await {
        match msg.unwrap() {
            Message::Binary(b) => match b.first() {
                Some(&websocket::STDOUT) => out.extend_from_slice(&b[1..]),
                Some(&websocket::STDERR) => err.extend_from_slice(&b[1..]),
                Some(&websocket::ERROR) => status.extend_from_slice(&b[1..]),
                other => panic!("a message on channel {other:?}"),
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    (out, err, status)
}

#[tokio::test]
async fn websocket_v5_exec_carries_stdin_output_and_the_exit_code() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let mut ws = ws_connect(
            &server,
            "/api/v1/namespaces/ns/pods/p/exec?command=cat&command=7&stdin=true&stdout=true&stderr=true",
            websocket::V5,
        )
        .await;
        ws.send(Message::Binary(Bytes::from_static(b"\x00hello "))).await.unwrap();
        ws.send(Message::Binary(Bytes::from_static(b"\x00world"))).await.unwrap();
        // v5: stdin ends.
        ws.send(Message::Binary(Bytes::from_static(b"\xff\x00"))).await.unwrap();
        let (out, err, status) = ws_collect(&mut ws).await;
        assert_eq!(out, b"hello world");
        assert_eq!(err, b"stdin closed\n");
        let s: Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(s["reason"], "NonZeroExitCode", "{s}");
        assert_eq!(s["details"]["causes"][0]["message"], "7");
    })
    .await
    .expect("the session ends within the deadline");
}

#[tokio::test]
async fn websocket_v4_tty_sessions_see_resizes_and_succeed() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let mut ws = ws_connect(
            &server,
            "/api/v1/namespaces/ns/pods/p/exec?command=sizes&stdin=true&stdout=true&tty=true",
            websocket::V4,
        )
        .await;
        ws.send(Message::Binary(Bytes::from_static(
            b"\x04{\"Width\":80,\"Height\":24}",
        )))
        .await
        .unwrap();
        ws.send(Message::Binary(Bytes::from_static(
            b"\x04{\"Width\":120,\"Height\":40}",
        )))
        .await
        .unwrap();
        ws.send(Message::Binary(Bytes::from_static(b"\x00q")))
            .await
            .unwrap();
        let (out, err, status) = ws_collect(&mut ws).await;
        assert_eq!(String::from_utf8_lossy(&out), "80x24\n120x40\n");
        assert!(err.is_empty());
        let s: Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(s["status"], "Success", "{s}");
    })
    .await
    .expect("the session ends within the deadline");
}

#[tokio::test]
async fn refused_requests_get_a_status_before_any_upgrade() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let cases = [
            (
                "missing/exec?command=ls&stdout=true",
                404,
                "pods \"missing\" not found",
            ),
            ("p/exec?stdout=true", 400, "at least one command"),
            (
                "p/exec?command=ls&stdout=true&container=nope",
                400,
                "container nope is not valid for pod p",
            ),
        ];
        for (path, code, message) in cases {
            let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
            let mut req = format!("ws://{}/api/v1/namespaces/ns/pods/{path}", server.addr)
                .into_client_request()
                .unwrap();
            req.headers_mut()
                .insert("sec-websocket-protocol", websocket::V5.parse().unwrap());
            let e = tokio_tungstenite::client_async(req, tcp).await.unwrap_err();
            let tokio_tungstenite::tungstenite::Error::Http(resp) = e else {
                panic!("{path}: {e}");
            };
            assert_eq!(resp.status().as_u16(), code, "{path}");
            let s: Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(s["kind"], "Status");
            assert!(
                s["message"].as_str().unwrap_or_default().contains(message),
                "{path}: {s}"
            );
        }
    })
    .await
    .expect("the requests are answered within the deadline");
}

#[tokio::test]
async fn spdy_exec_carries_stdin_output_and_the_exit_code() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let mut c = spdy_client::Client::connect(
            server.addr,
            "/api/v1/namespaces/ns/pods/p/exec?command=cat&command=3&stdin=true&stdout=true&stderr=true",
            super::REMOTE_COMMAND_V4,
        )
        .await;
        let error = c.open(&[("streamType", "error")], true).await;
        let stdin = c.open(&[("streamType", "stdin")], false).await;
        let stdout = c.open(&[("streamType", "stdout")], true).await;
        let stderr = c.open(&[("streamType", "stderr")], true).await;
        c.send(stdin, b"via spdy", true).await;
        let got = c.read_until_closed(&[error, stdout, stderr]).await;
        assert_eq!(got[&stdout], b"via spdy");
        assert_eq!(got[&stderr], b"stdin closed\n");
        let s: Value = serde_json::from_slice(&got[&error]).unwrap();
        assert_eq!(s["details"]["causes"][0]["message"], "3", "{s}");
    })
    .await
    .expect("the session ends within the deadline");
}

#[tokio::test]
async fn spdy_port_forward_pairs_streams_and_reports_failures() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let echo = fake::echo_server().await;
        let mut c = spdy_client::Client::connect(
            server.addr,
            "/api/v1/namespaces/ns/pods/p/portforward",
            super::PORT_FORWARD,
        )
        .await;
        let port = echo.to_string();
        let error = c
            .open(
                &[("streamType", "error"), ("port", &port), ("requestID", "0")],
                true,
            )
            .await;
        let data = c
            .open(
                &[("streamType", "data"), ("port", &port), ("requestID", "0")],
                false,
            )
            .await;
        c.send(data, b"ping", true).await;
        // A port nothing listens on: the error stream says so.
        let closed = fake::closed_port().to_string();
        let error2 = c
            .open(
                &[
                    ("streamType", "error"),
                    ("port", &closed),
                    ("requestID", "1"),
                ],
                true,
            )
            .await;
        let data2 = c
            .open(
                &[
                    ("streamType", "data"),
                    ("port", &closed),
                    ("requestID", "1"),
                ],
                false,
            )
            .await;
        let got = c.read_until_closed(&[error, data, error2, data2]).await;
        assert_eq!(got[&data], b"echo: ping");
        assert!(got[&error].is_empty());
        let why = String::from_utf8_lossy(&got[&error2]).into_owned();
        assert!(
            why.starts_with(&format!("error forwarding port {closed} to pod ns/p:")),
            "{why}"
        );
    })
    .await
    .expect("the forwards end within the deadline");
}

#[tokio::test]
async fn the_websocket_tunnel_carries_spdy_port_forwarding() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let echo = fake::echo_server().await;
        let ws = ws_connect(
            &server,
            "/api/v1/namespaces/ns/pods/p/portforward",
            websocket::PORT_FORWARD_TUNNEL,
        )
        .await;
        let mut c = spdy_client::Client::over(spdy_client::tunnel(ws));
        let port = echo.to_string();
        let error = c
            .open(
                &[("streamType", "error"), ("port", &port), ("requestID", "0")],
                true,
            )
            .await;
        let data = c
            .open(
                &[("streamType", "data"), ("port", &port), ("requestID", "0")],
                false,
            )
            .await;
        c.send(data, b"tunnelled", true).await;
        let got = c.read_until_closed(&[error, data]).await;
        assert_eq!(got[&data], b"echo: tunnelled");
    })
    .await
    .expect("the forward ends within the deadline");
}
