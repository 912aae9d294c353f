//! The Kubernetes REST API against rkube's own gRPC API, side by side on one 3-member
//! cluster: pod creates/s and latency at 64 clients (rows alternate between the two), and
//! `kubectl get pods -A` on 10,000 pods (a Table) against a gRPC LIST of the same pods.
//! Prints measured numbers.
//!
//! `cargo build --release --bin rkube && cargo run --release -p rkube-tests --bin rest-bench`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use client::Client;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rkube_proto::api::{CreateRequest, ListRequest, TypeRef};
use rkube_tests::{api_object, Cluster, Flavor};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Seconds of load per create row.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Rows per API (they alternate).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 10_000)]
    list_pods: usize,
    /// The kubectl to time (`kubectl` on the PATH by default).
    #[arg(long, default_value = "kubectl")]
    kubectl: String,
}

fn pod_json(ns: &str, name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}})
}

fn pct(lat: &mut [Duration], q: f64) -> f64 {
    lat.sort();
    lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// One HTTP/2 connection to `addr` with the admin's certificate (as client-go keeps one).
async fn h2(cluster: &Cluster, addr: std::net::SocketAddr) -> SendRequest<Full<Bytes>> {
    let p = &cluster.pki;
    let ca = std::fs::read_to_string(&p.ca_file).expect("CA");
    let cert = std::fs::read_to_string(&p.admin.cert).expect("admin cert");
    let key = std::fs::read_to_string(&p.admin.key).expect("admin key");
    let mut tls = (*pki::client_config(&ca, Some((&cert, &key))).expect("TLS")).clone();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    send
}

enum Api {
    Grpc(Vec<Client>),
    Rest(Vec<SendRequest<Full<Bytes>>>),
}

async fn create_one(api: &Api, w: usize, ns: &str, name: &str) -> bool {
    match api {
        Api::Grpc(cs) => {
            let r = cs[w % cs.len()]
                .create(CreateRequest {
                    object: Some(api_object("v1", "Pod", ns, pod_json(ns, name))),
                })
                .await;
            if let Err(e) = &r {
                eprintln!("create {ns}/{name}: {e}");
            }
            r.is_ok()
        }
        Api::Rest(conns) => {
            let mut s = conns[w % conns.len()].clone();
            let body = serde_json::to_vec(&pod_json(ns, name)).unwrap_or_default();
            let req = hyper::Request::post(format!("/api/v1/namespaces/{ns}/pods"))
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("request");
            match s.send_request(req).await {
                Ok(r) => {
                    let ok = r.status() == hyper::StatusCode::CREATED;
                    let _ = r.into_body().collect().await;
                    ok
                }
                Err(_) => false,
            }
        }
    }
}

/// `n` workers creating pods for `dur` (or until `total` are made).
async fn load(
    api: Arc<Api>,
    ns: &str,
    prefix: &str,
    n: usize,
    dur: Duration,
    total: Option<usize>,
) -> (usize, Duration, Vec<Duration>) {
    let start = Instant::now();
    let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..n {
        let (api, made, ns, prefix) = (
            api.clone(),
            made.clone(),
            ns.to_string(),
            prefix.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            while start.elapsed() < dur || total.is_some() {
                if let Some(t) = total {
                    if made.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= t {
                        break;
                    }
                }
                let t0 = Instant::now();
                if create_one(&api, w, &ns, &format!("{prefix}-{w}-{i}")).await {
                    lat.push(t0.elapsed());
                }
                i += 1;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    (lat.len(), start.elapsed(), lat)
}

async fn grpc_list(c: &Client, ns: &str) -> (usize, Duration) {
    let t = Instant::now();
    let r = c
        .list(ListRequest {
            r#type: Some(TypeRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
            }),
            namespace: ns.into(),
            ..Default::default()
        })
        .await
        .expect("list");
    (r.items.len(), t.elapsed())
}

fn kubectl_get_all(
    kubectl: &str,
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
) -> (usize, Duration) {
    let t = Instant::now();
    let out = std::process::Command::new(kubectl)
        .args(["get", "pods", "-A", "--no-headers"])
        .arg("--cache-dir")
        .arg(cache)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run kubectl");
    let el = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        el,
    )
}

/// One REST LIST of every pod, read to the end: `(bytes, time)`.
async fn rest_list(conn: &SendRequest<Full<Bytes>>, accept: &str) -> (usize, Duration) {
    let t = Instant::now();
    let req = hyper::Request::get("/api/v1/pods")
        .header("accept", accept)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = conn.clone().send_request(req).await.expect("list");
    assert!(resp.status().is_success(), "{}", resp.status());
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (body.len(), t.elapsed())
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

/// The `bench` and `list` namespaces, and one HTTP/2 connection per member.
async fn set_up(cluster: &Cluster, grpc: &[Client]) -> Vec<SendRequest<Full<Bytes>>> {
    for ns in ["bench", "list"] {
        let v = json!({"metadata": {"name": ns}});
        grpc[0]
            .create(CreateRequest {
                object: Some(api_object("v1", "Namespace", "", v)),
            })
            .await
            .expect("namespace");
    }
    let mut conns = Vec::new();
    for m in &cluster.members {
        conns.push(h2(cluster, m.client).await);
    }
    conns
}

/// Five runs of each way to list every pod: object counts, body sizes and durations.
#[derive(Default)]
struct ListRuns {
    grpc: (usize, Vec<Duration>),
    kubectl: (usize, Vec<Duration>),
    rest_json: (usize, Vec<Duration>),
    rest_table: (usize, Vec<Duration>),
}

/// Lists every pod five times by REST (JSON and Table), gRPC and kubectl, after one
/// kubectl run to fill its discovery cache.
async fn list_runs(
    args: &Args,
    cs: &[Client],
    conns: &[SendRequest<Full<Bytes>>],
    kc: &std::path::Path,
    cache: &std::path::Path,
) -> ListRuns {
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    kubectl_get_all(&args.kubectl, kc, cache);
    let mut runs = ListRuns::default();
    for _ in 0..5 {
        let (b, d) = rest_list(&conns[0], "application/json").await;
        runs.rest_json.0 = b;
        runs.rest_json.1.push(d);
        let (b, d) = rest_list(&conns[0], table).await;
        runs.rest_table.0 = b;
        runs.rest_table.1.push(d);
        let (c, d) = grpc_list(&cs[0], "").await;
        runs.grpc.0 = c;
        runs.grpc.1.push(d);
        let (c, d) = kubectl_get_all(&args.kubectl, kc, cache);
        runs.kubectl.0 = c;
        runs.kubectl.1.push(d);
    }
    runs
}

/// The LIST table: object counts, body sizes, and the median of each way.
fn print_list_runs(runs: ListRuns) {
    let (gn, kn) = (runs.grpc.0, runs.kubectl.0);
    println!("\n| what | objects | median ms (5 runs) |\n|---|---|---|");
    println!(
        "| gRPC LIST of every pod | {gn} | {:.0} |",
        median(runs.grpc.1)
    );
    println!(
        "| REST LIST, JSON ({} MB) | {gn} | {:.0} |",
        runs.rest_json.0 / 1_000_000,
        median(runs.rest_json.1)
    );
    println!(
        "| REST LIST, Table ({} MB) | {gn} | {:.0} |",
        runs.rest_table.0 / 1_000_000,
        median(runs.rest_table.1)
    );
    println!(
        "| `kubectl get pods -A` (Table, wall time) | {kn} | {:.0} |",
        median(runs.kubectl.1)
    );
}

/// Rows of pod creates/s and latency, alternating between gRPC and REST.
async fn create_rows(args: &Args, grpc: &Arc<Api>, rest: &Arc<Api>, dur: Duration) {
    let n = args.clients;
    println!(
        "pod creates, {n} clients spread over 3 members, {}s per row, rows alternating\n",
        args.duration_secs
    );
    println!("| API | creates/s | p50 ms | p99 ms |\n|---|---|---|---|");
    for round in 0..args.rounds {
        for (name, api) in [("gRPC", grpc), ("REST", rest)] {
            let (count, el, mut lat) = load(
                api.clone(),
                "bench",
                &format!("{}{round}", name.to_lowercase()),
                n,
                dur,
                None,
            )
            .await;
            println!(
                "| {name} | {:.0} | {:.2} | {:.2} |",
                count as f64 / el.as_secs_f64(),
                pct(&mut lat, 0.5),
                pct(&mut lat, 0.99)
            );
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let grpc: Vec<Client> = (0..3).map(|i| cluster.api_client_of(i)).collect();
    let conns = set_up(&cluster, &grpc).await;
    let grpc = Arc::new(Api::Grpc(grpc));
    let rest = Arc::new(Api::Rest(conns));
    let dur = Duration::from_secs(args.duration_secs);
    let t = Instant::now();
    let (made, _, _) = load(grpc.clone(), "list", "fill", 64, dur, Some(args.list_pods)).await;
    eprintln!("filled {made} pods in {:.1}s", t.elapsed().as_secs_f64());
    let Api::Grpc(cs) = &*grpc else { return };
    let Api::Rest(conns) = &*rest else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let kc = rkube_tests::kubectl::admin_kubeconfig(&cluster, dir.path());
    let cache = dir.path().join("cache");
    print_list_runs(list_runs(&args, cs, conns, &kc, &cache).await);
    create_rows(&args, &grpc, &rest, dur).await;
}
