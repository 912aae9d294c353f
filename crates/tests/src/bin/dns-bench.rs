//! Cluster DNS benchmark: queries/s and latency from inside a pod (own network, process
//! runtime) to the node's DNS server — through the kube-dns ClusterIP (userspace proxy)
//! and directly — and to the host's resolver (the first nameserver of /etc/resolv.conf,
//! reached through the node's egress rule), all in one run. Each load runs as this
//! program inside the pod (`dns-bench load …`). Runs as root. Prints the numbers.
//!
//! `cargo build --release --bin rkube && cargo build --release -p rkube-tests --bins`
//! then `target/release/dns-bench`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use client::Api;
use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use rkube_tests::cluster_dns::{create, in_pod_output, start, NS};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    load: Option<Cmd>,
    /// Concurrent clients (each with its own socket and one query in flight), one
    /// measurement per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    clients: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Sends queries for `name` to `server` (what runs in the pod).
    Load {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long)]
        name: String,
        #[arg(long)]
        clients: usize,
        #[arg(long)]
        seconds: u64,
    },
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// One client: queries one at a time until `stop`; the latencies of those answered and
/// the count of those that got no answer within a second.
async fn client(server: SocketAddr, name: Name, stop: Arc<AtomicBool>) -> (Vec<Duration>, usize) {
    let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
    sock.connect(server).await.unwrap();
    let (mut lat, mut lost, mut id) = (Vec::new(), 0usize, 0u16);
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        id = id.wrapping_add(1);
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(name.clone(), RecordType::A));
        let t = Instant::now();
        if sock.send(&m.to_vec().unwrap()).await.is_err() {
            lost += 1;
            continue;
        }
        let answered = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                let n = sock.recv(&mut buf).await.ok()?;
                match Message::from_vec(&buf[..n]) {
                    Ok(r) if r.id() == id => return Some(()),
                    _ => continue,
                }
            }
        })
        .await;
        match answered {
            Ok(Some(())) => lat.push(t.elapsed()),
            _ => lost += 1,
        }
    }
    (lat, lost)
}

async fn load(server: SocketAddr, name: &str, clients: usize, secs: u64) {
    let name = Name::from_ascii(name).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(server, name.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut lost) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        lost += e;
    }
    lat.sort();
    println!(
        "RESULT qps={:.0} p50_us={} p99_us={} lost={lost}",
        lat.len() as f64 / secs as f64,
        pct(&lat, 0.50).as_micros(),
        pct(&lat, 0.99).as_micros()
    );
}

/// The host's first resolver.
fn host_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    let ip = text
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))?
        .trim()
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, 53))
}

/// The pod and what it can reach: the node's DNS server at the pod bridge's address.
async fn prepare(s: &rkube_tests::cluster_dns::Setup) -> SocketAddr {
    let client = &s.client;
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({"metadata": {
        "name": NS, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}))
    .unwrap();
    Api::all(client.clone()).create(&ns).await.unwrap();
    create::<Service>(
        client,
        NS,
        json!({"metadata": {"name": "db"}, "spec": {"ports": [{"name": "pg", "port": 5432}]}}),
    )
    .await;
    // Privileged: the pod runs this program, from a directory unprivileged pods of the
    // process runtime do not see.
    let bench = json!({"spec": {"containers": [{"name": "c", "image": "busybox",
        "command": ["/bin/busybox", "sleep", "3600"], "securityContext": {"privileged": true}}]}});
    create::<Pod>(client, NS, s.sleeper("bench", bench)).await;
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    rkube_tests::eventually(Duration::from_secs(60), "the bench pod Ready", || async {
        pods.get("bench")
            .await
            .ok()
            .filter(rkube_tests::objects::pod_ready)
    })
    .await;
    let node = Api::<Node>::all(client.clone())
        .get(s.runtime.node)
        .await
        .unwrap();
    let port: u16 = node.metadata.annotations.unwrap()["dns.rkube.io/server"]
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cidr = node.spec.unwrap().pod_cidr.unwrap();
    let net: std::net::Ipv4Addr = cidr.split('/').next().unwrap().parse().unwrap();
    let gateway = std::net::Ipv4Addr::from(u32::from(net) + 1);
    SocketAddr::from((gateway, port))
}

async fn orchestrate(a: &Args) {
    let s = start().await;
    let direct = prepare(&s).await;
    let exe = std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let cluster_name = "db.shop.svc.cluster.local.";
    let mut rows: Vec<(&str, SocketAddr, &str)> = vec![
        (
            "cluster DNS via kube-dns ClusterIP (userspace proxy)",
            format!("{}:53", s.runtime.service_ip(10)).parse().unwrap(),
            cluster_name,
        ),
        (
            "cluster DNS, the node's server directly",
            direct,
            cluster_name,
        ),
        (
            "cluster DNS forwarding to an upstream on the host",
            direct,
            "outside.example.",
        ),
    ];
    if let Some(host) = host_resolver() {
        rows.push((
            "host resolver (NXDOMAIN answers)",
            host,
            "rkube-bench.invalid.",
        ));
    }
    println!("DNS from a pod, {} s per measurement", a.seconds);
    println!(
        "{:<55} {:>7} {:>9} {:>9} {:>9} {:>6}",
        "target", "clients", "qps", "p50 us", "p99 us", "lost"
    );
    for row in &rows {
        for clients in &a.clients {
            measure_row(&s, &exe, *row, *clients, a.seconds);
        }
    }
}

/// One measurement, run in the bench pod, printed as a row.
fn measure_row(
    s: &rkube_tests::cluster_dns::Setup,
    exe: &str,
    (what, server, name): (&str, SocketAddr, &str),
    clients: usize,
    seconds: u64,
) {
    let (c, secs, srv) = (clients.to_string(), seconds.to_string(), server.to_string());
    let cmd = [
        exe,
        "load",
        "--server",
        &srv,
        "--name",
        name,
        "--clients",
        &c,
        "--seconds",
        &secs,
    ];
    let out = tokio::task::block_in_place(|| in_pod_output(&s.cluster.api_access(), "bench", &cmd));
    let Some(line) = out.lines().find(|l| l.starts_with("RESULT ")) else {
        println!("{what:<55} failed: {out}");
        return;
    };
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap_or("?")
            .to_string()
    };
    println!(
        "{what:<55} {clients:>7} {:>9} {:>9} {:>9} {:>6}",
        field("qps"),
        field("p50_us"),
        field("p99_us"),
        field("lost")
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = Args::parse();
    match &a.load {
        Some(Cmd::Load {
            server,
            name,
            clients,
            seconds,
        }) => load(*server, name, *clients, *seconds).await,
        None => orchestrate(&a).await,
    }
}
