//! Load balancer benchmark: `rkube cloud-controller-manager` with the built-in `local`
//! provider (`--lb-pool`), one `rkube server` member and a fake node at 127.0.0.1 whose
//! NodePorts are served by this program. For each of N `type: LoadBalancer` Services, one
//! after another: the time from the create call to the first connection through the
//! Service's ingress address that reaches the NodePort. Prints the percentiles.
//!
//! `cargo build --release --bin rkube && cargo build --release -p rkube-tests --bin lb-bench`

use std::time::{Duration, Instant};

use clap::Parser;
use client::Api;
use k8s_openapi::api::core::v1::{Node, Service};
use rkube_tests::fake_kubelet::FakeKubelet;
use rkube_tests::objects::fake_node;
use rkube_tests::{Cluster, Flavor, FAST_CM_LEASE, FAST_SCHEDULER_LEASE};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
struct Args {
    /// Services created, one after another.
    #[arg(long, default_value_t = 20)]
    services: usize,
}

/// Serves a line on 127.0.0.1:`port` (the NodePort's stand-in).
async fn backend(port: u16) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    Ok(tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let _ = c.write_all(b"ok\n").await;
        }
    }))
}

/// Whether a connection to `addr` reads the backend's line.
async fn reaches(addr: &str) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    else {
        return false;
    };
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_millis(500), s.read_to_string(&mut out)).await;
    out == "ok\n"
}

/// One Service: from its create call to the first request through its address.
async fn one(services: &Api<Service>, name: &str) -> anyhow::Result<Duration> {
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}}))?;
    let start = Instant::now();
    let created = services.create(&svc).await?;
    let port = created
        .spec
        .and_then(|s| s.ports)
        .and_then(|p| p.first().and_then(|p| p.node_port))
        .ok_or_else(|| anyhow::anyhow!("{name}: no node port"))?;
    let _backend = backend(port as u16).await?;
    let deadline = start + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(ip) = rkube_tests::cloud_conformance::ingress_ip(&services.get(name).await?) {
            if reaches(&format!("{ip}:80")).await {
                return Ok(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("{name}: not reachable within 60 s")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = Cluster::start(
        Flavor::Server,
        1,
        &[FAST_SCHEDULER_LEASE, FAST_CM_LEASE].concat(),
    )
    .await;
    let client = cluster.api_client();
    let node = fake_node(
        "n1",
        "8",
        "16Gi",
        json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}),
    );
    Api::<Node>::all(client.clone()).create(&node).await?;
    let _kubelet = FakeKubelet::start(client.clone(), &["n1"], Duration::from_millis(200));
    let inventory = cluster.dir.path().join("inventory.json");
    std::fs::write(&inventory, r#"{"machines": [{"name": "n1"}]}"#)?;
    let config = cluster.config_for("ccm", "system:cloud-controller-manager", &[]);
    let plugin = rkube_tests::cloud_conformance::local_provider_flags(
        &inventory,
        &["--lb-pool", "127.216.0.0/24"],
    );
    let _ccm = rkube_tests::cloud_conformance::start_manager(
        cluster.dir.path(),
        "ccm",
        &config,
        &plugin,
        &[],
    );
    let services = Api::<Service>::namespaced(client.clone(), "default");
    // Not timed: the manager's start (caches, the plugin) is not what is measured.
    one(&services, "warm-up").await?;
    let mut times = Vec::new();
    for i in 0..args.services {
        times.push(one(&services, &format!("lb-{i}")).await?);
    }
    times.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!("| Service create → first request through its ingress address ({} Services) | p50 {} | p90 {} | max {} |",
        times.len(), ms(percentile(&times, 0.5)), ms(percentile(&times, 0.9)), ms(percentile(&times, 1.0)));
    Ok(())
}
