//! Benchmark: one load generator drives a 3-member `rkube store` cluster and a 3-member
//! etcd cluster (fsync on, same machine, same run) over the etcd v3 API and prints
//! measured numbers with the rkube/etcd ratio for each row.
//!
//! `cargo build --release --bin rkube && cargo run --release -p rkube-tests --bin store-bench`
//!
//! With `--check-perf-runs N`, instead: N runs of etcd's own `etcdctl check perf` on each
//! cluster, with the elections each run caused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use rkube_proto::etcd::kv_client::KvClient;
use rkube_proto::etcd::{PutRequest, RangeRequest, StatusRequest};
use rkube_tests::{Cluster, Flavor};
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// Seconds of load per row.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Concurrent clients for the put rows.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    clients: Vec<usize>,
    /// Concurrent clients for the linearizable get row.
    #[arg(long, default_value_t = 64)]
    get_clients: usize,
    /// Leader kills for the failover row.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Send the load to the leader only, instead of spreading it over every member.
    #[arg(long)]
    leader_only: bool,
    /// Run only these flavors: `rkube` (TLS, the default), `rkube-plaintext`
    /// (`--insecure-plaintext`, to measure what TLS costs), `etcd` (plaintext).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rkube,rkube-plaintext,etcd"
    )]
    only: Vec<String>,
    /// Instead of the rows: this many runs of `etcdctl check perf` per flavor
    /// (`rkube`, `etcd`), each on the same cluster, with the elections during each.
    #[arg(long, default_value_t = 0)]
    check_perf_runs: usize,
    /// The `check perf` workload: s, m, l or xl.
    #[arg(long, default_value = "l")]
    check_perf_load: String,
}

#[derive(Clone, Debug, Default)]
struct Stats {
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn stats(mut lat: Vec<Duration>, elapsed: Duration) -> Stats {
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Stats {
        ops_per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        max_ms: lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    }
}

fn channels(c: &Cluster, n: usize, only: Option<usize>) -> Vec<KvClient<Channel>> {
    (0..n)
        .map(|i| {
            let addr = c.members[only.unwrap_or(i % c.members.len())].client;
            let tls = c.etcd_tls();
            let scheme = if tls.is_some() { "https" } else { "http" };
            let mut ep = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
                .unwrap()
                .tcp_nodelay(true);
            if let Some(t) = tls {
                ep = ep.tls_config(t).unwrap();
            }
            let ch = ep.connect_lazy();
            KvClient::new(ch)
        })
        .collect()
}

/// Runs `clients` tasks doing `op` for `dur`; returns the latencies of successful ops.
async fn load<F, Fut>(kvs: &[KvClient<Channel>], clients: usize, dur: Duration, op: F) -> Stats
where
    F: Fn(KvClient<Channel>, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let kv = kvs[i % kvs.len()].clone();
        let stop = stop.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = i as u64 * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if op(kv.clone(), n).await {
                    lat.push(t.elapsed());
                }
                n += 1;
            }
            lat
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    stats(all, start.elapsed())
}

async fn put_once(mut kv: KvClient<Channel>, n: u64) -> bool {
    let req = PutRequest {
        key: Bytes::from(format!("bench/{:06}", n % 100_000)),
        value: Bytes::from(vec![b'x'; 256]),
        ..Default::default()
    };
    kv.put(req).await.is_ok()
}

async fn get_once(mut kv: KvClient<Channel>, n: u64) -> bool {
    let req = RangeRequest {
        key: Bytes::from(format!("bench/{:06}", n % 1000)),
        ..Default::default()
    };
    kv.range(req).await.is_ok()
}

/// Kills the leader `kills` times; each time measures until the next acknowledged put.
async fn failover(c: &mut Cluster, kills: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for k in 0..kills {
        let leader = c.wait_leader(Duration::from_secs(30)).await;
        let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let kvs: Vec<KvClient<Channel>> = survivors.iter().map(|i| c.clients(*i).kv).collect();
        // Connections are established before the kill, as a running client's are.
        for kv in &kvs {
            let _ = put_once(kv.clone(), k as u64).await;
        }
        c.kill(leader);
        let t0 = Instant::now();
        if std::env::var_os("BENCH_TRACE_FAILOVER").is_some() {
            let mut m = c.clients(survivors[0]).maintenance;
            let old = m
                .status(rkube_proto::etcd::StatusRequest {})
                .await
                .map(|r| r.into_inner().leader)
                .unwrap_or(0);
            loop {
                if let Ok(r) = m.status(rkube_proto::etcd::StatusRequest {}).await {
                    let l = r.into_inner().leader;
                    if l != old && l != 0 {
                        eprintln!("new leader seen after {:?}", t0.elapsed());
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        'acked: loop {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no put acknowledged within 30 s of killing the leader"
            );
            for kv in &kvs {
                // Short attempts, so the measurement does not wait out a request parked on a
                // member that has no leader.
                let attempt = tokio::time::timeout(
                    Duration::from_millis(200),
                    put_once(kv.clone(), k as u64),
                )
                .await;
                if matches!(attempt, Ok(true)) {
                    break 'acked;
                }
            }
        }
        out.push(t0.elapsed());
        c.spawn(leader, "new");
        // The next kill hits a healthy cluster: every member has applied the same index.
        c.wait_leader(Duration::from_secs(30)).await;
        rkube_tests::eventually(
            Duration::from_secs(60),
            "the restarted member to catch up",
            || async {
                let mut applied = Vec::new();
                for i in 0..3 {
                    let st = c
                        .clients(i)
                        .maintenance
                        .status(StatusRequest {})
                        .await
                        .ok()?
                        .into_inner();
                    applied.push(st.raft_applied_index);
                }
                (applied.iter().min() == applied.iter().max()).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    out
}

struct Row {
    name: String,
    rkube: Option<Stats>,
    plaintext: Option<Stats>,
    etcd: Option<Stats>,
}

async fn run_flavor(flavor: Flavor, plaintext: bool, args: &Args, rows: &mut Vec<Row>) {
    let mut c = if plaintext {
        Cluster::start_plaintext(flavor, 3, &[]).await
    } else {
        Cluster::start(flavor, 3, &[]).await
    };
    let dur = Duration::from_secs(args.duration_secs);
    let only = if args.leader_only {
        Some(c.wait_leader(Duration::from_secs(10)).await)
    } else {
        None
    };
    let mut push = |name: String, s: Stats| {
        eprintln!("{flavor:?} {name}: {s:?}");
        let row = match rows.iter_mut().find(|r| r.name == name) {
            Some(r) => r,
            None => {
                rows.push(Row {
                    name,
                    rkube: None,
                    plaintext: None,
                    etcd: None,
                });
                rows.last_mut().unwrap()
            }
        };
        match flavor {
            Flavor::Etcd => row.etcd = Some(s),
            _ if plaintext => row.plaintext = Some(s),
            _ => row.rkube = Some(s),
        }
    };
    for &n in &args.clients {
        let kvs = channels(&c, n.min(64), only);
        push(
            format!("put, {n} clients"),
            load(&kvs, n, dur, put_once).await,
        );
    }
    let kvs = channels(&c, args.get_clients.min(64), only);
    push(
        format!("linearizable get, {} clients", args.get_clients),
        load(&kvs, args.get_clients, dur, get_once).await,
    );
    if args.kills > 0 {
        let times = failover(&mut c, args.kills).await;
        push(
            format!(
                "failover, {} leader kills (ms to next acked put)",
                args.kills
            ),
            stats(times, Duration::from_secs(1)),
        );
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// `etcdctl check perf` runs, back to back on one cluster per flavor, a line each.
async fn check_perf(args: &Args) {
    println!("| store | run | verdict | writes/s | slowest ms | stddev ms | elections | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    for (flavor, name) in [(Flavor::Rkube, "rkube"), (Flavor::Etcd, "etcd")] {
        if !args.only.iter().any(|f| f == name) {
            continue;
        }
        let c = Cluster::start(flavor, 3, &[]).await;
        c.wait_leader(Duration::from_secs(30)).await;
        for i in 1..=args.check_perf_runs {
            let r = rkube_tests::check_perf::run(&c, &args.check_perf_load).await;
            let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
            println!(
                "| {name} | {i} | {} | {} | {} | {} | {} | {} |",
                if r.passed { "PASS" } else { "FAIL" },
                num(r.writes_per_sec),
                num(r.slowest_ms),
                num(r.stddev_ms),
                r.elections,
                r.errors.join("; "),
            );
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.check_perf_runs > 0 {
        check_perf(&args).await;
        return;
    }
    let mut rows = Vec::new();
    if args.only.iter().any(|f| f == "rkube") {
        run_flavor(Flavor::Rkube, false, &args, &mut rows).await;
    }
    if args.only.iter().any(|f| f == "rkube-plaintext") {
        run_flavor(Flavor::Rkube, true, &args, &mut rows).await;
    }
    if args.only.iter().any(|f| f == "etcd") {
        run_flavor(Flavor::Etcd, false, &args, &mut rows).await;
    }
    print_table(rows);
}

/// One row per load: rkube over TLS against etcd, and what TLS costs rkube (its
/// plaintext throughput and p99 beside).
fn print_table(rows: Vec<Row>) {
    println!(
        "| row | rkube ops/s | etcd ops/s | ratio | rkube p50 / p99 / max ms | etcd p50 / p99 / max ms | p99 ratio | rkube plaintext ops/s | plaintext p50 / p99 ms | TLS / plaintext ops |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let num = |failover: bool, v: f64| {
        if failover {
            "-".to_string()
        } else {
            format!("{v:.0}")
        }
    };
    for r in rows {
        let (a, b, p) = (
            r.rkube.clone().unwrap_or_default(),
            r.etcd.clone().unwrap_or_default(),
            r.plaintext.clone().unwrap_or_default(),
        );
        let f = r.name.starts_with("failover");
        println!(
            "| {} | {} | {} | {} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {} | {} | {:.1} / {:.1} | {} |",
            r.name,
            num(f, a.ops_per_sec),
            num(f, b.ops_per_sec),
            if f { "-".into() } else { ratio(a.ops_per_sec, b.ops_per_sec) },
            a.p50_ms,
            a.p99_ms,
            a.max_ms,
            b.p50_ms,
            b.p99_ms,
            b.max_ms,
            ratio(a.p99_ms, b.p99_ms),
            num(f, p.ops_per_sec),
            p.p50_ms,
            p.p99_ms,
            if f { ratio(a.p99_ms, p.p99_ms) } else { ratio(a.ops_per_sec, p.ops_per_sec) },
        );
    }
}
