//! Controller-manager benchmark against a 3-member cluster with fake nodes (Node objects
//! only, no kubelet): the time for a Deployment of N replicas to have all its pods created
//! and bound (with `rkube scheduler` and `rkube controller-manager` as separate processes),
//! and the controller-manager's RSS once the cluster holds M pods. Prints the numbers.
//!
//! `cargo build --release --bin rkube && cargo build --release -p rkube-tests --bin cm-bench`

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clap::Parser;
use client::watcher::{watcher, Event};
use client::Api;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_tests::component::Component;
use rkube_tests::objects::{fake_node, node_name};
use rkube_tests::{Cluster, Flavor};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Replicas of the timed Deployment.
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Pods in the cluster when the controller-manager's RSS is read.
    #[arg(long, default_value_t = 10_000)]
    total_pods: usize,
}

fn deployment(name: &str, replicas: usize) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "app:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}))
    .expect("deployment")
}

/// Waits until `n` pods with `app=<app>` are bound; returns when the last was seen bound.
async fn wait_bound(
    api: Api<Pod>,
    app: String,
    n: usize,
    limit: Duration,
) -> anyhow::Result<Instant> {
    let cfg = client::watcher::Config::default().labels(&format!("app={app}"));
    let mut s = watcher(api, cfg).boxed();
    let mut bound = HashSet::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ev = tokio::time::timeout_at(deadline, s.next())
            .await
            .map_err(|_| anyhow::anyhow!("only {} of {n} pods bound in {limit:?}", bound.len()))?;
        if let Some(Event::Apply(p) | Event::InitApply(p)) = ev {
            if node_name(&p).is_some() {
                bound.insert(p.metadata.name.clone().unwrap_or_default());
                if bound.len() >= n {
                    return Ok(Instant::now());
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let client = cluster.api_client();
    let nodes = Api::<Node>::all(client.clone());
    futures::stream::iter(0..args.nodes)
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                nodes
                    .create(&fake_node(&format!("node-{i}"), "64", "256Gi", json!({})))
                    .await
                    .expect("node");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let endpoints = cluster.api_access();
    let dir = cluster.dir.path();
    let _sched = Component::start(dir, "scheduler", &["scheduler", "--config", &endpoints]);
    let cm = Component::start(
        dir,
        "controller-manager",
        &[
            "controller-manager",
            "--config",
            &endpoints,
            "--secure-port",
            "0",
        ],
    );
    // Both hold their Lease before the clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deploys = Api::<Deployment>::namespaced(client.clone(), "default");
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let start = Instant::now();
    let waiter = tokio::spawn(wait_bound(
        pods.clone(),
        "big".into(),
        args.replicas,
        Duration::from_secs(600),
    ));
    deploys.create(&deployment("big", args.replicas)).await?;
    let done = waiter.await??;
    let secs = (done - start).as_secs_f64();
    println!(
        "| Deployment of {} replicas: all pods created and bound | {secs:.2} s | {:.0} pods/s |",
        args.replicas,
        args.replicas as f64 / secs
    );
    let idle = cm.rss_bytes().unwrap_or(0);
    // Fill the cluster to total_pods with more Deployments of the same size.
    let extra = args.total_pods.saturating_sub(args.replicas);
    let mut i = 0;
    let mut left = extra;
    while left > 0 {
        let n = left.min(args.replicas);
        let name = format!("fill-{i}");
        let waiter = tokio::spawn(wait_bound(
            pods.clone(),
            name.clone(),
            n,
            Duration::from_secs(600),
        ));
        deploys.create(&deployment(&name, n)).await?;
        waiter.await??;
        left -= n;
        i += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = cm.rss_bytes().unwrap_or(0);
    println!(
        "| controller-manager RSS with {} pods | {} MB (after the first Deployment: {} MB) |",
        args.total_pods,
        rss / 1_000_000,
        idle / 1_000_000
    );
    Ok(())
}
