//! Service proxy benchmark: requests/s and latency to 3 `http-echo` pods through a
//! ClusterIP, for each proxy mode, against direct connections to the pod IPs measured in
//! the same run. Two workloads: keep-alive connections, and a new connection per request.
//! Runs as root (pod network, nftables). Prints the numbers.
//!
//! `cargo build --release --bin rkube && cargo build --release -p rkube-tests --bins`
//! then `target/release/proxy-bench`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use client::Api;
use k8s_openapi::api::core::v1::Pod;
use rkube_tests::component::Component;
use rkube_tests::net::{get, KeepAlive};
use rkube_tests::service_proxy::{addrs, deploy, start, wait_serving};

#[derive(Parser)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

#[derive(Clone, Copy)]
enum Workload {
    KeepAlive,
    NewConnection,
}

struct Result {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// `clients` tasks sending requests to `targets` (client i to target i mod len) for
/// `secs` seconds.
async fn measure(targets: &[SocketAddr], w: Workload, clients: usize, secs: u64) -> Result {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (stop, addr) = (stop.clone(), targets[i % targets.len()]);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut conn: Option<KeepAlive> = None;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = match w {
                    Workload::NewConnection => get(addr, "/").await.is_ok(),
                    Workload::KeepAlive => {
                        if conn.is_none() {
                            conn = KeepAlive::connect(addr).await.ok();
                        }
                        match conn.as_mut() {
                            Some(c) => c.get("/").await.is_ok(),
                            None => false,
                        }
                    }
                };
                if ok {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                    conn = None;
                }
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Result {
        rps: all.len() as f64 / elapsed,
        p50: pct(&all, 0.50),
        p99: pct(&all, 0.99),
        errors,
    }
}

fn row(label: &str, w: Workload, r: &Result) {
    let wl = match w {
        Workload::KeepAlive => "keep-alive",
        Workload::NewConnection => "new connection",
    };
    println!(
        "| {label} | {wl} | {:.0} | {:.2} | {:.2} | {} |",
        r.rps,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.errors
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let echo = std::env::current_exe()
        .unwrap()
        .with_file_name("http-echo")
        .to_string_lossy()
        .to_string();
    let s = start("none", "proxy-bench", 2, false).await;
    let svc = deploy(&s.client, &echo, 0, 3).await;
    let (cip, _) = addrs(&svc, "127.0.0.1".parse().unwrap());
    let pods = Api::<Pod>::namespaced(s.client.clone(), "default");
    let (names, direct): (Vec<String>, Vec<SocketAddr>) =
        rkube_tests::eventually(Duration::from_secs(60), "3 pods Ready", || async {
            let l = pods.list(&Default::default()).await.ok()?.items;
            let ready: Vec<(String, SocketAddr)> = l
                .iter()
                .filter(|p| rkube_tests::objects::pod_ready(p))
                .filter_map(|p| {
                    let ip = p.status.as_ref()?.pod_ip.as_ref()?;
                    Some((p.metadata.name.clone()?, format!("{ip}:8080").parse().ok()?))
                })
                .collect();
            (ready.len() == 3).then(|| ready.into_iter().unzip())
        })
        .await;
    let mut names = names;
    names.sort();
    println!(
        "{} clients, {} s per row, 3 endpoints\n",
        args.clients, args.seconds
    );
    println!("| path | workload | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|");
    for mode in ["userspace", "nftables"] {
        let mut proxy = Component::start(
            s.node.data_dir().parent().unwrap(),
            &format!("proxy-{mode}"),
            &[
                "proxy",
                "--name",
                "proxy-bench",
                "--config",
                &s.cluster.api_access(),
                "--proxy-mode",
                mode,
            ],
        );
        wait_serving(cip, &names).await;
        for w in [Workload::KeepAlive, Workload::NewConnection] {
            let d = measure(&direct, w, args.clients, args.seconds).await;
            row("direct to pod IPs", w, &d);
            let p = measure(&[cip], w, args.clients, args.seconds).await;
            row(&format!("ClusterIP, {mode}"), w, &p);
        }
        proxy.stop(Duration::from_secs(5));
    }
}
