//! Two `rkube controller-manager` processes on one Lease: kill -9 the active one in the
//! middle of a rollout; the standby takes over and the rollout finishes with no extra pods.

use std::time::Duration;

use client::{Api, Client, ListParams, PatchParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_tests::component::Component;
use rkube_tests::fake_kubelet::FakeKubelet;
use rkube_tests::objects::{fake_node, wait_rolled_out};
use rkube_tests::{eventually, Cluster, Flavor, FAST_CM_LEASE};
use serde_json::json;

async fn pods_of(client: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_finishes_the_rollout_without_extra_pods() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let client = cluster.api_client();
    for n in ["w1", "w2", "w3"] {
        Api::<Node>::all(client.clone())
            .create(&fake_node(n, "32", "64Gi", json!({})))
            .await
            .unwrap();
    }
    let _kubelet = FakeKubelet::start(
        client.clone(),
        &["w1", "w2", "w3"],
        Duration::from_millis(500),
    );
    let endpoints = cluster.api_access();
    let _scheduler = Component::start(
        cluster.dir.path(),
        "scheduler",
        &["scheduler", "--config", &endpoints, "--leader-elect=false"],
    );
    let mut managers: Vec<Component> = ["cm0", "cm1"]
        .iter()
        .map(|id| {
            let mut args = vec![
                "controller-manager",
                "--config",
                &endpoints,
                "--cm-leader-elect-identity",
                id,
            ];
            args.extend_from_slice(FAST_CM_LEASE);
            Component::start(cluster.dir.path(), id, &args)
        })
        .collect();
    let deploys = Api::<Deployment>::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}))
    .unwrap();
    deploys.create(&d).await.unwrap();
    wait_rolled_out(&client, "web", "web:1", 10).await;
    deploys
        .patch(
            "web",
            PatchParams::Strategic,
            &json!({"spec": {"template": {"spec": {
            "containers": [{"name": "web", "image": "web:2"}]}}}}),
        )
        .await
        .unwrap();
    // Mid-rollout: some new pods exist, not all.
    eventually(Duration::from_secs(30), "the rollout under way", || async {
        let n = pods_of(&client)
            .await
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("web:2"))
            .count();
        (n >= 1).then_some(())
    })
    .await;
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-system");
    let holder = leases
        .get("kube-controller-manager")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let i = managers
        .iter()
        .position(|m| m.name == holder)
        .expect("a known holder");
    managers[i].kill();
    wait_rolled_out(&client, "web", "web:2", 10).await;
    let after = leases.get("kube-controller-manager").await.unwrap();
    assert_ne!(after.spec.unwrap().holder_identity.unwrap(), holder);
    // Never more than replicas + maxSurge pods at once is not observable afterwards, but
    // the end state is exact: 10 pods, no leftovers, two ReplicaSets.
    assert_eq!(pods_of(&client).await.len(), 10);
}
