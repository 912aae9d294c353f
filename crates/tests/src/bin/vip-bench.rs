//! Load balancer address failover benchmark, as root: three machines (network namespaces
//! on a bridge), one `rkube server` member whose cloud-controller-manager uses the built-in
//! `local` provider with `--lb-announce nodes`, a node agent per machine, and a
//! LoadBalancer Service whose NodePort every machine serves. Each round takes the
//! machine holding the address off the network and stops its node's heartbeats, then
//! times how long until the node is NotReady and until a request from the host through
//! the address succeeds again; then the machine comes back. Prints the percentiles.
//!
//! `cargo build --release --bin rkube && cargo build --release -p rkube-tests --bin vip-bench`

use std::time::{Duration, Instant};

use clap::Parser;
use client::Api;
use k8s_openapi::api::core::v1::{Node, Service};
use rkube_tests::fake_kubelet::FakeKubelet;
use rkube_tests::local_cloud::LocalCloud;
use rkube_tests::machines::Machines;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// The controller-manager's --node-monitor-grace-period-ms: how long a node may miss
    /// heartbeats before it is NotReady.
    #[arg(long, default_value_t = 2000)]
    grace_ms: u64,
}

/// Whether an HTTP request to `addr` gets a 200.
async fn ok(addr: &str) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut buf = vec![0u8; 12];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf.ends_with(b"200"))
    };
    tokio::time::timeout(Duration::from_millis(500), attempt)
        .await
        .ok()
        .flatten()
        == Some(true)
}

async fn ready(nodes: &Api<Node>, name: &str) -> Option<bool> {
    let n = nodes.get(name).await.ok()?;
    let c = n.status?.conditions?;
    Some(c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn until<F: std::future::Future<Output = bool>>(
    deadline: Duration,
    mut f: impl FnMut() -> F,
) -> anyhow::Result<()> {
    let end = Instant::now() + deadline;
    while !f().await {
        anyhow::ensure!(Instant::now() < end, "not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The LoadBalancer Service `web`, with a NodePort stand-in on every machine. Returns its
/// address once it has one.
async fn web_service(
    services: &Api<Service>,
    machines: &mut Machines,
    dir: &std::path::Path,
) -> anyhow::Result<String> {
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}}))?;
    let created = services.create(&svc).await?;
    let node_port = created
        .spec
        .and_then(|s| s.ports?.first()?.node_port)
        .unwrap_or(0)
        .to_string();
    let py = std::path::PathBuf::from("python3");
    for i in 0..machines.machines.len() {
        let netns = machines.machines[i].netns.clone();
        let args = ["-m", "http.server", &node_port];
        machines.spawn(&netns, dir, &format!("nodeport-{i}"), &py, &args);
    }
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = services.get("web").await.ok();
        if let Some(ip) = s
            .as_ref()
            .and_then(rkube_tests::cloud_conformance::ingress_ip)
        {
            return Ok(ip);
        }
        anyhow::ensure!(Instant::now() < end, "no address for web within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut machines = Machines::new(3);
    let grace = args.grace_ms.to_string();
    let member = ["--node-monitor-grace-period-ms", &grace];
    let cloud = LocalCloud::with_node_balancers(&mut machines, &member).await;
    let client = cloud.cluster.api_client();
    let dir = cloud.cluster.dir.path().to_path_buf();
    let names = ["m1", "m2", "m3"];
    let beat = |n: &str| FakeKubelet::start(client.clone(), &[n], Duration::from_millis(100));
    let mut kubelets: Vec<Option<FakeKubelet>> = names.iter().map(|n| Some(beat(n))).collect();
    let services = Api::<Service>::namespaced(client.clone(), "default");
    let vip = web_service(&services, &mut machines, &dir).await?;
    let addr = format!("{vip}:80");
    until(Duration::from_secs(30), || ok(&addr)).await?;
    let nodes = Api::<Node>::all(client.clone());
    let (mut not_ready, mut resumed) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        // The machine back from the last round gives the address up once its agent is
        // connected again: then one machine holds it.
        until(Duration::from_secs(60), || async {
            machines.holding(&vip).len() == 1
        })
        .await?;
        let h = machines.holding(&vip)[0];
        let netns = machines.machines[h].netns.clone();
        let start = Instant::now();
        Machines::exec(&netns, &["ip", "link", "set", "eth0", "down"])
            .map_err(anyhow::Error::msg)?;
        kubelets[h] = None;
        until(Duration::from_secs(60), || async {
            ready(&nodes, names[h]).await == Some(false)
        })
        .await?;
        let nr = start.elapsed();
        until(Duration::from_secs(60), || ok(&addr)).await?;
        let back = start.elapsed();
        println!(
            "round {round}: {} NotReady after {nr:?}, requests resumed after {back:?}",
            names[h]
        );
        not_ready.push(nr);
        resumed.push(back);
        Machines::exec(&netns, &["ip", "link", "set", "eth0", "up"]).map_err(anyhow::Error::msg)?;
        kubelets[h] = Some(beat(names[h]));
        until(Duration::from_secs(60), || async {
            ready(&nodes, names[h]).await == Some(true)
        })
        .await?;
    }
    println!(
        "grace {} ms, {} rounds: NotReady p50 {:?} max {:?}; requests resumed p50 {:?} max {:?}",
        args.grace_ms,
        args.rounds,
        pct(&mut not_ready, 0.5),
        pct(&mut not_ready, 1.0),
        pct(&mut resumed, 0.5),
        pct(&mut resumed, 1.0)
    );
    Ok(())
}
