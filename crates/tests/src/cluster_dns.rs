//! A cluster for cluster DNS tests and benchmarks: three members, one node agent
//! (process runtime, own pod network, userspace proxy) whose DNS server forwards to a
//! resolver the test runs and answers only the pod network; and ways to run commands in
//! its pods.

use std::time::{Duration, Instant};

use client::{Api, Client};
use serde_json::json;

use crate::dns::Upstream;
use crate::node_agent::NodeAgent;
use crate::pod_lifecycle::ctl;
use crate::Cluster;

/// The namespace of the pods.
pub const NS: &str = "shop";
/// The Service range: `kubernetes` is .1, `kube-dns` .10.
pub const SVC_CIDR: &str = "10.187.0.0/24";

/// Creates the object `v` in `ns`.
pub async fn create<K>(client: &Client, ns: &str, v: serde_json::Value) -> K
where
    K: client::ApiObject<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let obj: K = serde_json::from_value(v).unwrap();
    Api::<K>::namespaced(client.clone(), ns)
        .create(&obj)
        .await
        .expect("create")
}

/// A pod on the node that sleeps, labelled app=web, with `extra` merged in.
pub fn sleeper(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "dns-w1", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox",
                "command": ["/bin/busybox", "sleep", "3600"]}]}});
    crate::objects::merge(&mut v, extra);
    v
}

/// Waits until `nslookup ARGS` in the client pod prints every one of `want`.
pub async fn resolves(cluster: &Cluster, args: &[&str], want: &[&str]) -> String {
    let mut cmd = vec!["/bin/busybox", "nslookup"];
    cmd.extend_from_slice(args);
    shows(&cluster.api_access(), "client", &cmd, want).await
}

/// Waits until `cmd` in the client pod prints every one of `want`.
pub async fn shows(access: &str, pod: &str, cmd: &[&str], want: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = tokio::task::block_in_place(|| in_pod_output(access, pod, cmd));
        if want.iter().all(|w| out.contains(w)) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} never showed {want:?}; last: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `cmd` run in `pod`: what it printed, whether it failed or not.
pub fn in_pod_output(access: &str, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", "-n", NS, pod, "--"];
    args.extend_from_slice(cmd);
    let out = ctl(access, &args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub struct Setup {
    pub cluster: Cluster,
    pub client: Client,
    pub node: NodeAgent,
    _fake: crate::fake_kubelet::FakeKubelet,
    pub upstream: Upstream,
}

/// Starts the cluster and its node.
pub async fn start() -> Setup {
    let upstream = Upstream::start().await;
    let (cluster, client, fake) = crate::fake_kubelet::cluster_with_nodes_and(
        3,
        &[],
        &[
            "--cluster-cidr",
            "10.117.0.0/16",
            "--service-cluster-ip-range",
            SVC_CIDR,
            "--service-node-port-range",
            "31800-31999",
            "--endpoint-lease-ttl-seconds",
            "3",
        ],
    )
    .await;
    let bridge = format!("rkd{}", std::process::id() % 100_000);
    let up = upstream.addr.to_string();
    let node = NodeAgent::start(
        &cluster.node_access("dns-w1"),
        "dns-w1",
        &[
            "--pod-network",
            "cni",
            "--cni-bridge",
            &bridge,
            "--proxy-mode",
            "userspace",
            "--dns-listen",
            "0.0.0.0:0",
            "--dns-upstream",
            &up,
            "--dns-allow",
            "10.117.0.0/16",
            "--cluster-cidr",
            "10.117.0.0/16",
        ],
    );
    node.wait_ready(&client).await;
    Setup {
        cluster,
        client,
        node,
        _fake: fake,
        upstream,
    }
}
