//! Node failure detection with shortened timeouts: a node whose kubelet stops renewing
//! its Lease becomes Ready=Unknown and tainted unreachable, its pods are evicted once their
//! tolerationSeconds run out and come back on the other node; when the kubelet returns, the
//! taints go. Every node gets its own pod CIDR.

use std::collections::HashSet;
use std::time::Duration;

use client::{Api, Client, ListParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_tests::fake_kubelet::FakeKubelet;
use rkube_tests::objects::{fake_node, node_name, wait_rolled_out};
use rkube_tests::{eventually, Cluster, Flavor, FAST_CM_LEASE, FAST_SCHEDULER_LEASE};
use serde_json::json;

async fn pods_on(client: &Client, node: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| node_name(p) == Some(node) && p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn unreachable_taints(n: &Node) -> usize {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map_or(0, |t| {
            t.iter()
                .filter(|t| t.key == "node.kubernetes.io/unreachable")
                .count()
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_node_loses_its_pods_and_gets_them_back_elsewhere() {
    let mut args = [FAST_SCHEDULER_LEASE, FAST_CM_LEASE].concat();
    args.extend_from_slice(&[
        "--node-monitor-grace-period-ms",
        "2000",
        "--node-monitor-period-ms",
        "300",
    ]);
    let cluster = Cluster::start(Flavor::Server, 1, &args).await;
    let client = cluster.api_client();
    let nodes = Api::<Node>::all(client.clone());
    for n in ["w1", "w2"] {
        nodes
            .create(&fake_node(n, "8", "16Gi", json!({})))
            .await
            .unwrap();
    }
    let _k2 = FakeKubelet::start(client.clone(), &["w2"], Duration::from_millis(100));
    let k1 = FakeKubelet::start(client.clone(), &["w1"], Duration::from_millis(100));

    // Node IPAM: distinct /24s from 10.244.0.0/16.
    let cidrs = eventually(
        Duration::from_secs(20),
        "pod CIDRs on both nodes",
        || async {
            let mut out = HashSet::new();
            for n in ["w1", "w2"] {
                out.insert(nodes.get(n).await.ok()?.spec?.pod_cidr?);
            }
            (out.len() == 2).then_some(out)
        },
    )
    .await;
    assert!(
        cidrs
            .iter()
            .all(|c| c.starts_with("10.244.") && c.ends_with("/24")),
        "{cidrs:?}"
    );

    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "web", "image": "web:1"}],
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}],
                "tolerations": [
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]}}}}))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&d)
        .await
        .unwrap();
    wait_rolled_out(&client, "web", "web:1", 4).await;
    let before = pods_on(&client, "w1").await.len();
    assert!(before >= 1, "the spread put no pod on w1");

    // The kubelet of w1 dies: no Lease renewals, no pod updates.
    drop(k1);
    eventually(
        Duration::from_secs(20),
        "w1 Ready=Unknown and tainted unreachable",
        || async {
            let n = nodes.get("w1").await.ok()?;
            let ready = rkube_tests::objects::node_ready(&n)?;
            (ready == "Unknown" && unreachable_taints(&n) == 2).then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "4 ready replicas, all on w2",
        || async {
            let on_w2 = pods_on(&client, "w2").await;
            let ready = on_w2.iter().filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            (ready.count() == 4 && pods_on(&client, "w1").await.is_empty()).then_some(())
        },
    )
    .await;

    // The kubelet comes back: the taints go.
    let _k1 = FakeKubelet::start(client.clone(), &["w1"], Duration::from_millis(100));
    eventually(Duration::from_secs(20), "w1 untainted", || async {
        let n = nodes.get("w1").await.ok()?;
        (unreachable_taints(&n) == 0).then_some(())
    })
    .await;
}
