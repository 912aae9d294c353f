//! A scheduler_perf-style benchmark: N fake nodes (Node objects only) and M pending pods
//! on a real 3-member cluster, then `rkube scheduler` is started and binds them all; every
//! bind is a compare-and-swap committed through Raft. Prints pods/s per scenario.
//!
//! `cargo build --release --bin rkube && cargo run --release -p rkube-tests --bin sched-bench`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use client::watcher::{watcher, Event};
use client::{Api, Client};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use parking_lot::Mutex;
use rkube_tests::component::Component;
use rkube_tests::objects::{fake_node, node_name, pod};
use rkube_tests::{Cluster, Flavor};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Scenarios as nodes/pods[/anti]: `anti` gives every pod a required anti-affinity
    /// (by hostname) to the other pods of its group of 10.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "500/1000,5000/10000,5000/10000/anti"
    )]
    scenarios: Vec<String>,
    /// Concurrent creates while setting up.
    #[arg(long, default_value_t = 64)]
    create_concurrency: usize,
    /// Also record a Scheduled event per pod (the scheduler's default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    scheduled_events: bool,
}

struct Scenario {
    nodes: usize,
    pods: usize,
    anti: bool,
}

fn parse(s: &str) -> Scenario {
    let parts: Vec<&str> = s.split('/').collect();
    Scenario {
        nodes: parts[0].parse().expect("node count"),
        pods: parts[1].parse().expect("pod count"),
        anti: parts.get(2) == Some(&"anti"),
    }
}

async fn create_all<T, F>(n: usize, concurrency: usize, f: F)
where
    F: Fn(usize) -> T,
    T: std::future::Future<Output = ()>,
{
    futures::stream::iter(0..n)
        .map(f)
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
}

fn bench_pod(i: usize, anti: bool) -> Pod {
    let group = format!("g{}", i / 10);
    let mut extra = json!({"metadata": {"labels": {"app": "bench", "group": group}}});
    if anti {
        extra["spec"] = json!({"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"group": group}},
                "topologyKey": "kubernetes.io/hostname"}]}}});
    }
    pod(&format!("pod-{i}"), "100m", "128Mi", extra)
}

/// Creates the scenario's nodes and pods, spread over the members' clients.
async fn set_up(s: &Scenario, args: &Args, clients: &[Client]) {
    let t = Instant::now();
    create_all(s.nodes, args.create_concurrency, |i| {
        let api = Api::<Node>::all(clients[i % 3].clone());
        async move {
            let n = fake_node(&format!("node-{i}"), "32", "256Gi", json!({}));
            api.create(&n).await.expect("create node");
        }
    })
    .await;
    create_all(s.pods, args.create_concurrency, |i| {
        let api = Api::<Pod>::namespaced(clients[i % 3].clone(), "default");
        let anti = s.anti;
        async move {
            api.create(&bench_pod(i, anti)).await.expect("create pod");
        }
    })
    .await;
    eprintln!(
        "  set up {} nodes and {} pods in {:.1} s",
        s.nodes,
        s.pods,
        t.elapsed().as_secs_f64()
    );
}

/// Binds as a watch of every pod reports them: how many, and when each was seen.
struct Binds {
    bound: Arc<AtomicUsize>,
    times: Arc<Mutex<Vec<Instant>>>,
    watch: tokio::task::JoinHandle<()>,
}

impl Binds {
    /// Starts the watch and waits for its initial list.
    async fn watch(cluster: &Cluster) -> anyhow::Result<Binds> {
        let bound = Arc::new(AtomicUsize::new(0));
        let times: Arc<Mutex<Vec<Instant>>> = Default::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let watch = {
            let (bound, times) = (bound.clone(), times.clone());
            let api = Api::<Pod>::all(cluster.api_client());
            tokio::spawn(async move {
                let mut stream = watcher(api, Default::default()).boxed();
                let mut ready = Some(ready_tx);
                let mut seen = std::collections::HashSet::new();
                while let Some(ev) = stream.next().await {
                    match ev {
                        Event::InitDone => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                        }
                        Event::Apply(p) | Event::InitApply(p)
                            if node_name(&p).is_some()
                                && seen.insert(p.metadata.name.clone().unwrap_or_default()) =>
                        {
                            times.lock().push(Instant::now());
                            bound.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            })
        };
        ready_rx.await?;
        Ok(Binds {
            bound,
            times,
            watch,
        })
    }

    /// Polls until `pods` pods are bound, for at most 600 s after `start`.
    async fn wait_for(&self, pods: usize, start: Instant) -> anyhow::Result<()> {
        let deadline = start + Duration::from_secs(600);
        while self.bound.load(Ordering::Relaxed) < pods {
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {} pods bound after 600 s",
                self.bound.load(Ordering::Relaxed),
                pods
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops the watch; the bind times it saw.
    fn stop(&self) -> Vec<Instant> {
        self.watch.abort();
        self.times.lock().clone()
    }
}

/// The table row of a scenario whose scheduler started at `start` and bound pods at
/// `times`.
fn report(s: &Scenario, times: &[Instant], start: Instant) -> String {
    let first = times.iter().min().copied().unwrap_or(start);
    let last = times.iter().max().copied().unwrap_or(start);
    let steady = (s.pods - 1) as f64 / (last - first).as_secs_f64().max(1e-9);
    let whole = s.pods as f64 / (last - start).as_secs_f64();
    // Per-second throughput samples, as scheduler_perf reports them.
    let mut per_sec = vec![0usize; (last - first).as_secs() as usize + 1];
    for t in times {
        per_sec[(*t - first).as_secs() as usize] += 1;
    }
    let full: Vec<usize> = if per_sec.len() > 2 {
        per_sec[..per_sec.len() - 1].to_vec()
    } else {
        per_sec.clone()
    };
    let mut sorted = full.clone();
    sorted.sort_unstable();
    // Fewer than two whole seconds give no meaningful samples.
    let sample = |v: Option<&usize>| match v {
        Some(v) if per_sec.len() > 2 => v.to_string(),
        _ => "n/a".to_string(),
    };
    format!(
        "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {:.2} |",
        s.nodes,
        s.pods,
        if s.anti { "anti-affinity" } else { "basic" },
        steady,
        whole,
        sample(sorted.get(sorted.len() / 2)),
        sample(sorted.first()),
        (last - start).as_secs_f64(),
    )
}

async fn run(s: &Scenario, args: &Args) -> anyhow::Result<()> {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.api_client_of(i)).collect();
    set_up(s, args, &clients).await;

    let binds = Binds::watch(&cluster).await?;
    let events = if args.scheduled_events {
        "true"
    } else {
        "false"
    };
    let start = Instant::now();
    let _scheduler = Component::start(
        cluster.dir.path(),
        "scheduler",
        &[
            "scheduler",
            "--config",
            &cluster.api_access(),
            "--scheduled-events",
            events,
        ],
    );
    binds.wait_for(s.pods, start).await?;
    let times = binds.stop();
    println!("{}", report(s, &times, start));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("| nodes | pods | pods' spec | pods/s (first→last bind) | pods/s (scheduler start→last bind) | median 1-s sample | min 1-s sample | seconds |");
    println!("|---|---|---|---|---|---|---|---|");
    for s in &args.scenarios {
        run(&parse(s), &args).await?;
    }
    Ok(())
}
