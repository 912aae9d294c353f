//! Volume benchmark: on an `rkube up` cluster (one member, one node; as root), the time
//! from creating a claim and a pod that mounts it to the pod Ready, for the default
//! StorageClass (the `local` cloud provider: provision, attach a loop device, mkfs,
//! mount), the built-in `rkube.io/local-path` provisioner (a directory), and, as the
//! floor, a pod with an emptyDir and no claim. One pod at a time; prints p50, p90 and max
//! per kind.
//!
//! `cargo build --bin rkube && cargo run -p rkube-tests --bin volume-bench`.

use std::time::{Duration, Instant};

use clap::Parser;
use client::{Api, Client};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use rkube_tests::up::UpCluster;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// Pods per kind.
    #[arg(long, default_value_t = 10)]
    pods: usize,
}

fn pod(name: &str, volume: Value) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c",
            "image": "busybox", "command": ["/bin/busybox", "sleep", "3600"],
            "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
            "volumes": [volume]}}))?)
}

/// Creates the claim (of `class`, or the default one) and the pod; the time until the pod
/// is Ready.
async fn one(client: &Client, name: &str, class: Option<&str>) -> anyhow::Result<Duration> {
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let start = Instant::now();
    let volume = match class {
        Some("emptyDir") => json!({"name": "v", "emptyDir": {}}),
        _ => {
            let mut spec = json!({"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "20Mi"}}});
            if let Some(c) = class {
                spec["storageClassName"] = json!(c);
            }
            let claim: PersistentVolumeClaim =
                serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))?;
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), "default")
                .create(&claim)
                .await?;
            json!({"name": "v", "persistentVolumeClaim": {"claimName": name}})
        }
    };
    pods.create(&pod(name, volume)?).await?;
    loop {
        let p = pods.get(name).await?;
        if rkube_tests::objects::pod_ready(&p) {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "pod {name} not Ready in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        rkube_tests::netns::is_root(),
        "pods mount volumes only as root"
    );
    let up = UpCluster::start(&["--members", "1", "--nodes", "1"].map(String::from));
    let client = up.client();
    let local_path: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "local-path"}, "provisioner": "rkube.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete",
        "parameters": {"path": up.cluster_dir().join("local-path")}}))?;
    Api::<StorageClass>::all(client.clone())
        .create(&local_path)
        .await?;
    println!("| volume | pods | p50 ms | p90 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (kind, class) in [
        ("default class (local provider: loop device, mkfs)", None),
        ("rkube.io/local-path (a directory)", Some("local-path")),
        ("emptyDir, no claim", Some("emptyDir")),
    ] {
        let mut times = Vec::new();
        for i in 0..args.pods {
            let name = format!("{}-{i}", class.unwrap_or("default").to_lowercase());
            times.push(one(&client, &name, class).await?);
        }
        times.sort();
        println!(
            "| {kind} | {} | {:.0} | {:.0} | {:.0} |",
            times.len(),
            pct(&times, 0.5),
            pct(&times, 0.9),
            pct(&times, 1.0)
        );
    }
    Ok(())
}
