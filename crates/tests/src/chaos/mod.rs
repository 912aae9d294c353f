//! The chaos suite: workloads that record histories while faults hit a cluster whose
//! members live in their own network namespaces, then checkers that prove nothing was
//! lost — linearizability, acknowledged writes, gap-free watches, identical members.

pub mod check;
pub mod faults;
mod scenarios;
pub mod watch;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rkube_proto::etcd::kv_client::KvClient;
use rkube_proto::etcd::PutRequest;

pub use scenarios::Scenario;

use crate::fault_proxy::ProxyCluster;
use crate::netns::{is_root, NetCluster};
use faults::Faults;
use workload::Recorder;

#[derive(Clone, Debug)]
pub struct Config {
    pub etcd_clients: usize,
    pub api_clients: usize,
    pub keys: u32,
    pub watchers: usize,
    /// Leader kills of scenario (a).
    pub kills: usize,
    pub seed: u64,
    /// How long a client waits for one operation before recording its outcome as unknown.
    pub op_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            etcd_clients: 8,
            api_clients: 4,
            keys: 4,
            watchers: 2,
            kills: 10,
            seed: 1,
            op_timeout: Duration::from_secs(3),
        }
    }
}

/// What a scenario did and what the checks found.
#[derive(Debug, Default)]
pub struct Report {
    pub scenario: String,
    pub operations: usize,
    pub acknowledged_writes: usize,
    pub watch_events: usize,
    pub faults: usize,
    /// Time from each leader kill to the next acknowledged write, in ms.
    pub failover_ms: Vec<f64>,
}

impl Report {
    pub fn failover_percentiles(&self) -> Option<(f64, f64, f64)> {
        let mut v = self.failover_ms.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
        Some((p(0.5), p(0.99), v[v.len() - 1]))
    }
}

/// The credentials of every chaos cluster this process starts: one cluster token (each
/// cluster has its own members, data and ports) and an admin certificate, in memory.
pub fn access() -> &'static crate::pki::MemoryAccess {
    static ACCESS: std::sync::OnceLock<crate::pki::MemoryAccess> = std::sync::OnceLock::new();
    ACCESS.get_or_init(crate::pki::MemoryAccess::new)
}

/// A lazily connecting TLS channel (admin certificate) to a member's API port (`host:port`).
pub fn channel(addr: impl std::fmt::Display) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .expect("a member address is host:port")
        .tls_config(access().tls.clone())
        .expect("TLS configuration")
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .connect_lazy()
}

/// A put of a sentinel key through any member: the final revision of the run.
async fn final_revision(members: &[String]) -> Result<i64, String> {
    for _ in 0..100 {
        for m in members {
            let ch = channel(m);
            let put = PutRequest {
                key: Bytes::from_static(b"/chaos/end"),
                value: Bytes::from_static(b"end"),
                ..Default::default()
            };
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(2), KvClient::new(ch).put(put)).await
            {
                return Ok(r.into_inner().header.map_or(0, |h| h.revision));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("no member accepted the final write".into())
}

/// Runs one scenario on a fresh 3-member cluster and checks the outcome: members in
/// network namespaces when root, else on loopback behind TCP fault proxies (or when
/// `RKUBE_CHAOS_NET=proxy`). On a violation the data directories and logs are kept and
/// named in the error.
pub async fn run(scenario: Scenario, cfg: &Config) -> Result<Report, String> {
    if is_root() && std::env::var("RKUBE_CHAOS_NET").as_deref() != Ok("proxy") {
        run_in(NetCluster::start(3, &[]).await, scenario, cfg).await
    } else {
        run_with_proxies(scenario, cfg).await
    }
}

/// [`run`] on loopback behind TCP fault proxies, whoever runs it.
pub async fn run_with_proxies(scenario: Scenario, cfg: &Config) -> Result<Report, String> {
    run_in(ProxyCluster::start(3).await, scenario, cfg).await
}

async fn run_in<C: Faults + Sync>(
    mut cluster: C,
    scenario: Scenario,
    cfg: &Config,
) -> Result<Report, String> {
    let result = run_on(&mut cluster, scenario, cfg).await;
    if result.is_err() {
        cluster.keep();
    }
    result.map_err(|e| {
        format!(
            "scenario {scenario:?}: {e}\ndata and logs kept in {}",
            cluster.dir().display()
        )
    })
}

async fn run_on<C: Faults + Sync>(
    cluster: &mut C,
    scenario: Scenario,
    cfg: &Config,
) -> Result<Report, String> {
    let members: Vec<String> = (0..3).map(|i| cluster.api_addr(i).to_string()).collect();
    let start = final_revision(&members).await? + 1;
    let rec = Recorder::new();
    let mut clients = Vec::new();
    for id in 0..cfg.etcd_clients {
        clients.push(tokio::spawn(workload::etcd_client(
            rec.clone(),
            id + cfg.seed as usize * 1000,
            members.clone(),
            cfg.keys,
            cfg.op_timeout,
        )));
    }
    for id in 0..cfg.api_clients {
        clients.push(tokio::spawn(workload::api_client(
            rec.clone(),
            id + cfg.seed as usize * 1000,
            members.clone(),
            cfg.keys,
            cfg.op_timeout,
        )));
    }
    let until = Arc::new(Mutex::new(0i64));
    let mut watchers = Vec::new();
    for w in 0..cfg.watchers {
        let seen = Arc::new(Mutex::new(Vec::new()));
        watchers.push((
            seen.clone(),
            tokio::spawn(watch::watcher(
                rec.clone(),
                members.clone(),
                start,
                until.clone(),
                seen,
                w,
            )),
        ));
    }

    let mut report = Report {
        scenario: format!("{scenario:?}"),
        ..Default::default()
    };
    let kill_times = scenarios::inject(scenario, cluster, &rec, cfg, &mut report).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rec.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    eprintln!("{scenario:?}: faults done; stopping the workload");
    for c in clients {
        let _ = c.await;
    }
    eprintln!("{scenario:?}: workload stopped; healing");

    // Everyone back, every fault healed, then the final revision.
    cluster.heal();
    for i in 0..3 {
        cluster.resume(i);
        if !cluster.is_running(i) {
            cluster.spawn(i, "new");
        }
    }
    cluster.wait_leader(Duration::from_secs(30)).await;
    let end = final_revision(&members).await?;
    *until.lock() = end;
    eprintln!("{scenario:?}: final revision {end}; draining watchers");
    let mut seen_all = Vec::new();
    for (seen, task) in watchers {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .map_err(|_| "a watcher did not reach the final revision in 60 s".to_string())?
            .map_err(|e| e.to_string())?;
        seen_all.push(seen.lock().clone());
    }
    // A write whose client gave up may still commit after the end marker (a follower
    // forwarding it to a new leader): the reference history reaches as far as any watcher.
    let end = seen_all
        .iter()
        .filter_map(|s| s.last().map(|e| e.0))
        .fold(end, i64::max);
    // The committed history, replayed from one member's store.
    let history = Arc::new(Mutex::new(Vec::new()));
    let replay_rec = Recorder::new();
    replay_rec
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let replay_until = Arc::new(Mutex::new(end));
    tokio::time::timeout(
        Duration::from_secs(60),
        watch::watcher(
            replay_rec,
            members.clone(),
            start,
            replay_until,
            history.clone(),
            0,
        ),
    )
    .await
    .map_err(|_| "replaying the committed history took over 60 s".to_string())?;
    let history = history.lock().clone();
    eprintln!("{scenario:?}: checking {} operations", rec.ops.lock().len());

    let ops = rec.ops.lock().clone();
    let acked = rec.acked.lock().clone();
    report.operations = ops.len();
    report.acknowledged_writes = acked.len();
    report.watch_events = history.len();
    let mut ack_times = rec.ack_times.lock().clone();
    ack_times.sort();
    for t in kill_times {
        if let Some(a) = ack_times.iter().find(|a| **a > t) {
            report.failover_ms.push((a - t) as f64 / 1e6);
        }
    }

    check::linearizable(&check::resolve_unknown_writes(ops, &history))?;
    check::nothing_lost(&acked, &history)?;
    for (i, seen) in seen_all.iter().enumerate() {
        if let Err(e) = check::watch_complete(&format!("watcher {i}"), seen, &history) {
            let same = check::identical_state(&members, end).await;
            // Replay again from each member, to tell a store gap from a watch gap.
            let mut again = String::new();
            for member in &members {
                let h = Arc::new(Mutex::new(Vec::new()));
                let r = Recorder::new();
                r.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let u = Arc::new(Mutex::new(end));
                let _ = tokio::time::timeout(
                    Duration::from_secs(60),
                    watch::watcher(r, vec![member.clone()], start, u, h.clone(), 0),
                )
                .await;
                let n = h.lock().iter().filter(|x| x.0 <= end).count();
                again.push_str(&format!(" {member}: {n} events;"));
            }
            return Err(format!("{e}\nmembers identical at the end: {same:?}\nthe first replay had {} events; replayed again:{again}", history.len()));
        }
    }
    check::identical_state(&members, end).await?;
    if acked.is_empty() {
        return Err("no write was acknowledged: the workload did not run".into());
    }
    Ok(report)
}
