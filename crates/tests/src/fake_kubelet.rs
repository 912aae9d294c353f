//! A stand-in kubelet for controller tests: it renews its nodes' Leases and Ready
//! condition every second; pods bound to its nodes become Running with a pod IP and
//! (after `ready_after`) Ready; pods being deleted are finished at once. No containers
//! run. A pod annotated `test.rkube.io/never-ready: "true"` runs but never becomes Ready.
//! After [`FakeKubelet::set_usage`], it publishes PodMetrics for its running pods, as a
//! kubelet reports usage.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::metrics::PodMetrics;
use client::watcher::{watcher, Event};
use client::{Api, Client, PatchParams};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use parking_lot::Mutex;
use serde_json::json;
use tokio::task::JoinHandle;

pub const NEVER_READY: &str = "test.rkube.io/never-ready";
/// A pod annotated with an exit code finishes once running: Succeeded for "0", Failed
/// otherwise.
pub const EXIT: &str = "test.rkube.io/exit";

/// Per-container usage to report: (cpu, memory) quantities.
type Usage = Arc<Mutex<Option<(String, String)>>>;

pub struct FakeKubelet {
    task: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    metrics: JoinHandle<()>,
    usage: Usage,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
        self.heartbeat.abort();
        self.metrics.abort();
    }
}

/// Every 300 ms, writes a PodMetrics for each running pod on `nodes`, every container at
/// the usage set last.
async fn publish_metrics(client: Client, nodes: HashSet<String>, usage: Usage) {
    let pods = Api::<Pod>::all(client.clone());
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some((cpu, memory)) = usage.lock().clone() else {
            continue;
        };
        let Ok(list) = pods.list(&Default::default()).await else {
            continue;
        };
        for p in list.items {
            let on_node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| nodes.contains(n));
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if !on_node || !running || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            let containers: Vec<_> = p
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .map(|c| json!({"name": c.name, "usage": {"cpu": cpu, "memory": memory}}))
                .collect();
            let m = json!({"metadata": {"name": name, "namespace": ns},
                "timestamp": now(), "window": "1s", "containers": containers});
            let api = Api::<PodMetrics>::namespaced(client.clone(), &ns);
            if api.patch(&name, PatchParams::Merge, &m).await.is_err() {
                if let Ok(pm) = serde_json::from_value::<PodMetrics>(m) {
                    let _ = api.create(&pm).await;
                }
            }
        }
    }
}

/// Renews `kube-node-lease/<node>` and the node's Ready condition, as a kubelet does.
async fn heartbeat(client: Client, nodes: Vec<String>) {
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-node-lease");
    let node_api = Api::<Node>::all(client);
    loop {
        for n in &nodes {
            let t = now_micro();
            let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": n, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": n, "leaseDurationSeconds": 40, "renewTime": t}});
            if leases.patch(n, PatchParams::Merge, &lease).await.is_err() {
                if let Ok(l) = serde_json::from_value::<Lease>(lease) {
                    let _ = leases.create(&l).await;
                }
            }
            let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
                "reason": "KubeletReady", "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}});
            let _ = node_api
                .patch_status(n, PatchParams::Strategic, &patch)
                .await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn now_micro() -> String {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    k8s_openapi::jiff::Timestamp::from_microsecond(us)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn now() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    k8s_openapi::jiff::Timestamp::from_second(s)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl FakeKubelet {
    /// From now on, report every container of every running pod as using `cpu` and
    /// `memory`.
    pub fn set_usage(&self, cpu: &str, memory: &str) {
        *self.usage.lock() = Some((cpu.to_string(), memory.to_string()));
    }

    pub fn start(client: Client, nodes: &[&str], ready_after: Duration) -> FakeKubelet {
        let usage: Usage = Arc::default();
        let metrics = tokio::spawn(publish_metrics(
            client.clone(),
            nodes.iter().map(|n| n.to_string()).collect(),
            usage.clone(),
        ));
        let heartbeat = tokio::spawn(heartbeat(
            client.clone(),
            nodes.iter().map(|n| n.to_string()).collect(),
        ));
        let nodes: HashSet<String> = nodes.iter().map(|n| n.to_string()).collect();
        let next_ip = Arc::new(AtomicU32::new(1));
        let task = tokio::spawn(async move {
            let all = Api::<Pod>::all(client.clone());
            let mut s = watcher(all, Default::default()).boxed();
            let mut readying: HashSet<String> = HashSet::new();
            while let Some(ev) = s.next().await {
                let (Event::Apply(p) | Event::InitApply(p)) = ev else {
                    continue;
                };
                let node = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                if !nodes.contains(&node) {
                    continue;
                }
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                let api = Api::<Pod>::namespaced(client.clone(), &ns);
                if p.metadata.deletion_timestamp.is_some() {
                    let _ = api.delete(&name, Some(0)).await;
                    continue;
                }
                let st = p.status.clone().unwrap_or_default();
                if matches!(st.phase.as_deref(), Some("Succeeded" | "Failed")) {
                    continue;
                }
                let never_ready = p
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(NEVER_READY))
                    .is_some_and(|v| v == "true");
                let ready = st
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if st.phase.as_deref() != Some("Running") {
                    let n = next_ip.fetch_add(1, Ordering::Relaxed);
                    let ip = format!("10.244.{}.{}", n / 250, n % 250 + 2);
                    let patch = json!({"status": {"phase": "Running", "podIP": ip,
                        "podIPs": [{"ip": ip}], "hostIP": "192.0.2.1", "startTime": now()}});
                    let _ = api.patch_status(&name, PatchParams::Merge, &patch).await;
                    continue;
                }
                let exit = p
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(EXIT))
                    .cloned();
                if let Some(code) = exit {
                    let phase = if code == "0" { "Succeeded" } else { "Failed" };
                    let patch = json!({"status": {"phase": phase}});
                    let _ = api.patch_status(&name, PatchParams::Merge, &patch).await;
                    continue;
                }
                let uid = p.metadata.uid.clone().unwrap_or_default();
                if !ready && !never_ready && readying.insert(uid) {
                    let (api, name) = (api.clone(), name.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(ready_after).await;
                        let t = now();
                        let patch = json!({"status": {"conditions": [
                            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                            {"type": "ContainersReady", "status": "True", "lastTransitionTime": t},
                            {"type": "Ready", "status": "True", "lastTransitionTime": t}]}});
                        let _ = api
                            .patch_status(&name, PatchParams::Strategic, &patch)
                            .await;
                    });
                }
            }
        });
        FakeKubelet {
            task,
            heartbeat,
            metrics,
            usage,
        }
    }
}

/// A `rkube server` cluster of `members` (scheduler and controller-manager inside, fast
/// leases) with fake nodes `nodes` and a fake kubelet for them.
pub async fn cluster_with_nodes(
    members: usize,
    nodes: &[&str],
) -> (crate::Cluster, Client, FakeKubelet) {
    cluster_with_nodes_and(members, nodes, &[]).await
}

/// [`cluster_with_nodes`] with more `rkube server` flags.
pub async fn cluster_with_nodes_and(
    members: usize,
    nodes: &[&str],
    extra: &[&str],
) -> (crate::Cluster, Client, FakeKubelet) {
    let args = [crate::FAST_SCHEDULER_LEASE, crate::FAST_CM_LEASE, extra].concat();
    let cluster = crate::Cluster::start(crate::Flavor::Server, members, &args).await;
    let client = cluster.api_client();
    let api = Api::<Node>::all(client.clone());
    for n in nodes {
        api.create(&crate::objects::fake_node(n, "16", "64Gi", json!({})))
            .await
            .expect("create a fake node");
    }
    let kubelet = FakeKubelet::start(client.clone(), nodes, Duration::from_millis(300));
    (cluster, client, kubelet)
}
