//! DNS for tests: an upstream resolver the test runs (names under `example.`), and a
//! client that sends one query and reads the answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;

/// The address `outside.example.` has upstream.
pub const OUTSIDE_IP: &str = "192.0.2.77";

/// A resolver answering for `example.`: `outside.example.` is [`OUTSIDE_IP`], every
/// other name NXDOMAIN. Stops when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let origin = Name::from_ascii("example.").unwrap();
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(origin.clone(), origin.clone(), 1, 60, 60, 60, 5);
        zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
        let outside = Name::from_ascii("outside.example.").unwrap();
        let ip = OUTSIDE_IP.parse().unwrap();
        zone.upsert_mut(Record::from_rdata(outside, 60, RData::A(A(ip))), 1);
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let mut server = ServerFuture::new(catalog);
        server.register_socket(udp);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        Upstream { addr, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asks `server` (UDP) for `name`'s `rtype` records: the response code and the answers'
/// data as text.
pub async fn query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
) -> std::io::Result<(ResponseCode, Vec<String>)> {
    let mut m = Message::new();
    m.set_id(rand_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(
            Name::from_ascii(name).map_err(std::io::Error::other)?,
            rtype,
        ));
    let bytes = m.to_vec().map_err(std::io::Error::other)?;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    sock.send_to(&bytes, server).await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no answer in 3 s"))??;
    let r = Message::from_vec(&buf[..n]).map_err(std::io::Error::other)?;
    let answers = r.answers().iter().map(|a| a.data().to_string()).collect();
    Ok((r.response_code(), answers))
}

fn rand_id() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (t % 65_536) as u16
}
