//! StatefulSet benchmark: the time from creating a StatefulSet of N pods (10 by default)
//! to all N Ready, with podManagementPolicy OrderedReady (each pod created once the one
//! before it is Ready) and Parallel, on one node agent with the process runtime. Prints,
//! per policy, when the first and the last pod became Ready and the mean step between
//! successive ones. Runs as root (the node agent).
//!
//! `cargo build --bin rkube && cargo run -p rkube-tests --bin statefulset-bench`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use client::watcher::{watcher, Event};
use client::{Api, Client, ListParams};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::{Cluster, Flavor};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Pods per StatefulSet.
    #[arg(long, default_value_t = 10)]
    replicas: usize,
    /// Runs per policy.
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn set(name: &str, policy: &str, n: usize) -> anyhow::Result<StatefulSet> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"replicas": n, "serviceName": name, "podManagementPolicy": policy,
            "selector": {"matchLabels": {"bench": name}},
            "template": {"metadata": {"labels": {"bench": name}},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c",
                    "image": "busybox", "command": ["/bin/sleep", "3600"]}]}}}
    }))?)
}

/// Creates set `name` of `n` pods; returns, per pod, when it was first seen Ready after
/// the create call, in the order they became Ready.
async fn until_ready(
    client: &Client,
    name: &str,
    policy: &str,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let cfg = client::watcher::Config::default().labels(&format!("bench={name}"));
    let mut events = watcher(pods, cfg).boxed();
    // The watch is established once its initial list is through.
    while let Some(ev) = events.next().await {
        if matches!(ev, Event::InitDone) {
            break;
        }
    }
    let sets = Api::<StatefulSet>::namespaced(client.clone(), "default");
    let start = Instant::now();
    sets.create(&set(name, policy, n)?).await?;
    let mut at: HashMap<String, Duration> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while at.len() < n {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| anyhow::anyhow!("only {} of {n} pods Ready after 300 s", at.len()))?;
        if let Some(Event::Apply(p)) = ev {
            if ready(&p) {
                let pod = p.metadata.name.clone().unwrap_or_default();
                at.entry(pod).or_insert_with(|| start.elapsed());
            }
        }
    }
    let mut times: Vec<Duration> = at.into_values().collect();
    times.sort();
    Ok(times)
}

/// Deletes set `name` and waits until its pods are gone.
async fn delete(client: &Client, name: &str) -> anyhow::Result<()> {
    let sets = Api::<StatefulSet>::namespaced(client.clone(), "default");
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    sets.delete(name, None).await?;
    let lp = ListParams::default().labels(&format!("bench={name}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pods.list(&lp).await?.items.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "pods of {name} not gone after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(
        rkube_tests::netns::is_root(),
        "the node agent runs containers and needs root"
    );
    let args = [
        rkube_tests::FAST_SCHEDULER_LEASE,
        rkube_tests::FAST_CM_LEASE,
    ]
    .concat();
    let cluster = Cluster::start(Flavor::Server, 1, &args).await;
    let client = cluster.api_client();
    let node = NodeAgent::start(&cluster.node_access("w1"), "w1", &[]);
    node.wait_ready(&client).await;
    let n = a.replicas;
    for run in 0..a.runs {
        for policy in ["OrderedReady", "Parallel"] {
            let name = format!("{}-{run}", policy.to_lowercase());
            let t = until_ready(&client, &name, policy, n).await?;
            let (first, last) = (t[0], t[t.len() - 1]);
            let step = (last - first) / (n.max(2) as u32 - 1);
            println!(
                "{policy}: {n} pods all Ready {:.2} s after the create (first Ready at {:.2} s, then one every {:.0} ms on average)",
                last.as_secs_f64(),
                first.as_secs_f64(),
                step.as_secs_f64() * 1e3
            );
            delete(&client, &name).await?;
        }
    }
    Ok(())
}
