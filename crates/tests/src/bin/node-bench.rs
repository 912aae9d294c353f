//! Node agent benchmark: pod startup latency — from the create call to the pod seen Running
//! by a watch — for N pods bound to one node, with the process runtime and with containerd
//! (CRI), and the kubelet's RSS with the N pods running. Runs as root (pod networks,
//! containerd). Prints the numbers.
//!
//! `cargo build --release --bin rkube && cargo build --release -p rkube-tests --bin node-bench`
//! then `target/release/node-bench`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use client::watcher::{watcher, Event};
use client::{Api, Client, ListParams};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use rkube_tests::containerd::{Containerd, IMAGE};
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::{Cluster, Flavor};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// `process`, `cri` or `both`.
    #[arg(long, default_value = "both")]
    runtime: String,
    /// Pod networking of the process runtime: `cni` or `host`.
    #[arg(long, default_value = "cni")]
    pod_network: String,
    /// The control plane with `--insecure-plaintext` instead of TLS (to measure what TLS
    /// costs).
    #[arg(long)]
    plaintext: bool,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Creates `n` pods on node `w1`; returns each one's create→Running latency and the time
/// until the last was Running.
async fn startup(
    client: &Client,
    run: &str,
    n: usize,
    image: &str,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let api = Api::<Pod>::namespaced(client.clone(), "default");
    let cfg = client::watcher::Config::default().labels(&format!("bench={run}"));
    let mut events = watcher(api.clone(), cfg).boxed();
    // The watch is established once its initial list is through.
    while let Some(ev) = events.next().await {
        if matches!(ev, Event::InitDone) {
            break;
        }
    }
    let start = Instant::now();
    let mut created: HashMap<String, Instant> = HashMap::new();
    for i in 0..n {
        let name = format!("{run}-{i}");
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"bench": run}},
            "spec": {"nodeName": "w1", "terminationGracePeriodSeconds": 0, "containers": [{"name": "c",
                "image": image, "command": ["/bin/sleep", "3600"]}]}}),
        )?;
        created.insert(name, Instant::now());
        api.create(&pod).await?;
    }
    let mut latencies = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while latencies.len() < n {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| {
                anyhow::anyhow!("only {} of {n} pods Running after 300 s", latencies.len())
            })?;
        if let Some(Event::Apply(p)) = ev {
            let name = p.metadata.name.clone().unwrap_or_default();
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if running && !latencies.contains_key(&name) {
                if let Some(t) = created.get(&name) {
                    latencies.insert(name, t.elapsed());
                }
            }
        }
    }
    let total = start.elapsed();
    let mut l: Vec<Duration> = latencies.into_values().collect();
    l.sort();
    Ok((l, total))
}

async fn delete_all(client: &Client, run: &str) -> anyhow::Result<()> {
    let api = Api::<Pod>::namespaced(client.clone(), "default");
    let lp = ListParams::default().labels(&format!("bench={run}"));
    for p in api.list(&lp).await?.items {
        let _ = api
            .delete(p.metadata.name.as_deref().unwrap_or_default(), Some(0))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while !api.list(&lp).await?.items.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "pods of {run} not gone after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn bench(
    label: &str,
    n: usize,
    extra: &[&str],
    image: &str,
    plaintext: bool,
) -> anyhow::Result<()> {
    let n16 = 200 + std::process::id() % 50;
    let cidr = format!("10.{n16}.0.0/16");
    let mut args = rkube_tests::FAST_CM_LEASE.to_vec();
    args.extend(["--cluster-cidr", &cidr]);
    let cluster = if plaintext {
        Cluster::start_plaintext(Flavor::Server, 1, &args).await
    } else {
        Cluster::start(Flavor::Server, 1, &args).await
    };
    let client = cluster.api_client();
    let node = NodeAgent::start(&cluster.node_access("w1"), "w1", extra);
    node.wait_ready(&client).await;
    let (lat, total) = startup(&client, label, n, image).await?;
    let rss = node.rss_bytes().unwrap_or(0);
    let shims = node.shims_pss_bytes();
    println!(
        "{label}: {n} pods on 1 node, create→Running p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; all Running after {:.2} s",
        pct(&lat, 0.50).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        total.as_secs_f64()
    );
    println!(
        "{label}: kubelet RSS with {n} pods: {:.1} MiB{}",
        rss as f64 / 1048576.0,
        if shims > 0 {
            format!(
                " (the {n} shims: {:.1} MiB PSS in all)",
                shims as f64 / 1048576.0
            )
        } else {
            String::new()
        }
    );
    delete_all(&client, label).await?;
    if !plaintext {
        join_times(&cluster, &client, label).await?;
    }
    Ok(())
}

/// How long a node takes from its start to Ready: with a client configuration made where
/// the cluster token is, and joining with a join token (TLS bootstrap: the CA fetched and
/// pinned, a CertificateSigningRequest approved and signed, then the serving certificate).
async fn join_times(cluster: &Cluster, client: &client::Client, label: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new(rkube_tests::rkube_bin())
        .args(["token", "create", "--config", &cluster.api_access()])
        .output()?;
    anyhow::ensure!(out.status.success(), "rkube token create failed");
    let join = String::from_utf8(out.stdout)?.trim().to_string();
    for (name, how) in [("j1", "configuration"), ("j2", "join token")] {
        let started = Instant::now();
        let node = if how == "configuration" {
            NodeAgent::start(&cluster.node_access(name), name, &["--pod-network", "host"])
        } else {
            NodeAgent::start(
                &cluster.endpoints(),
                name,
                &["--pod-network", "host", "--token", &join],
            )
        };
        node.wait_ready(client).await;
        println!(
            "{label}: node start → Ready with a {how}: {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    println!(
        "control plane over {}",
        if a.plaintext { "plaintext" } else { "TLS" }
    );
    anyhow::ensure!(
        rkube_tests::netns::is_root(),
        "node-bench runs containers and needs root"
    );
    if a.runtime == "process" || a.runtime == "both" {
        let bridge = format!("rkb{}", std::process::id() % 100_000);
        bench(
            "process",
            a.pods,
            &["--pod-network", &a.pod_network, "--cni-bridge", &bridge],
            "busybox",
            a.plaintext,
        )
        .await?;
    }
    if a.runtime == "cri" || a.runtime == "both" {
        let ctd = Containerd::start();
        let sock = ctd.socket().to_string_lossy().to_string();
        bench(
            "cri",
            a.pods,
            &["--runtime", "cri", "--cri-socket", &sock],
            IMAGE,
            a.plaintext,
        )
        .await?;
        drop(ctd);
    }
    Ok(())
}
