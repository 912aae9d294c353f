//! Two `rkube scheduler` processes on one Lease: kill -9 the one that acts, and the other
//! takes over; no pod is ever bound twice or moved from its node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use client::watcher::{watcher, Event};
use client::Api;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use parking_lot::Mutex;
use rkube_tests::component::Component;
use rkube_tests::objects::{fake_node, node_name, pod};
use rkube_tests::{eventually, Cluster, Flavor, FAST_SCHEDULER_LEASE};
use serde_json::json;

/// Every node a pod has been seen on, in order (a correct scheduler gives each pod one).
type Placements = Arc<Mutex<HashMap<String, Vec<String>>>>;

fn record(placements: &Placements, p: &Pod) {
    let Some(n) = node_name(p) else {
        return;
    };
    let name = p.metadata.name.clone().unwrap_or_default();
    let mut m = placements.lock();
    let seen = m.entry(name).or_default();
    if seen.last().map(String::as_str) != Some(n) {
        seen.push(n.to_string());
    }
}

async fn create_pods(pods: &Api<Pod>, prefix: &str, n: usize) {
    let mut futs = futures::stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            let name = format!("{prefix}-{i}");
            async move { pods.create(&pod(&name, "100m", "128Mi", json!({}))).await }
        })
        .buffer_unordered(32);
    while let Some(r) = futs.next().await {
        r.expect("create pod");
    }
}

async fn all_bound(placements: &Placements, n: usize, what: &str) {
    eventually(Duration::from_secs(60), what, || async {
        (placements.lock().len() >= n).then_some(())
    })
    .await;
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get("kube-scheduler")
        .await
        .ok()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_active_scheduler_hands_over_without_double_binding() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let client = cluster.api_client();
    let nodes = Api::<Node>::all(client.clone());
    for i in 0..20 {
        nodes
            .create(&fake_node(&format!("n{i}"), "8", "32Gi", json!({})))
            .await
            .unwrap();
    }
    let placements: Placements = Default::default();
    let watch = {
        let placements = placements.clone();
        let api = Api::<Pod>::all(client.clone());
        tokio::spawn(async move {
            let mut s = watcher(api, Default::default()).boxed();
            while let Some(ev) = s.next().await {
                if let Event::Apply(p) | Event::InitApply(p) = ev {
                    record(&placements, &p);
                }
            }
        })
    };
    let endpoints = cluster.api_access();
    let mut schedulers: Vec<Component> = ["s0", "s1"]
        .iter()
        .map(|id| {
            Component::start(
                cluster.dir.path(),
                id,
                &[
                    &[
                        "scheduler",
                        "--config",
                        &endpoints,
                        "--leader-elect-identity",
                        id,
                    ][..],
                    FAST_SCHEDULER_LEASE,
                ]
                .concat(),
            )
        })
        .collect();
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    create_pods(&pods, "before", 200).await;
    all_bound(&placements, 200, "200 pods bound by the first leader").await;

    let leases = Api::<Lease>::namespaced(client.clone(), "kube-system");
    let first = holder(&leases).await.expect("a Lease holder");
    let idx = schedulers
        .iter()
        .position(|s| s.name == first)
        .expect("the holder is one of ours");
    // Pods created while the leader dies: the survivor must bind them.
    let create = {
        let pods = pods.clone();
        tokio::spawn(async move { create_pods(&pods, "during", 200).await })
    };
    schedulers[idx].kill();
    create.await.unwrap();
    all_bound(
        &placements,
        400,
        "400 pods bound after the leader was killed",
    )
    .await;
    let second = holder(&leases).await.expect("a Lease holder");
    assert_ne!(first, second, "the Lease moved to the surviving scheduler");

    // Every pod has exactly one node, and it never changed.
    let list = pods.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 400);
    for p in &list.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let seen = placements.lock().get(&name).cloned().unwrap_or_default();
        assert_eq!(seen.len(), 1, "pod {name} was placed on {seen:?}");
        assert_eq!(node_name(p), Some(seen[0].as_str()), "pod {name}");
    }
    watch.abort();
}
