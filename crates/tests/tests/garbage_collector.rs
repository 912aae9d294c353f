//! Cascading deletion along ownerReferences: background (the default), foreground and
//! orphan, on Deployments whose ReplicaSets own pods.

use std::time::Duration;

use client::{Api, Client, DeleteParams, ListParams};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use rkube_tests::eventually;
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::objects::wait_rolled_out;
use serde_json::json;

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "app:1"}]}}}}))
    .unwrap()
}

async fn count(client: &Client, app: &str) -> (usize, usize) {
    let lp = ListParams::default().labels(&format!("app={app}"));
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .list(&lp)
        .await
        .unwrap()
        .items
        .len();
    let pods = Api::<Pod>::namespaced(client.clone(), "default")
        .list(&lp)
        .await
        .unwrap()
        .items
        .len();
    (rs, pods)
}

async fn delete(client: &Client, name: &str, policy: &str) {
    let dp = DeleteParams {
        propagation_policy: Some(policy.into()),
        ..Default::default()
    };
    Api::<Deployment>::namespaced(client.clone(), "default")
        .delete_with(name, &dp)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn background_foreground_and_orphan_cascades() {
    let (_cluster, client, _kubelet) = cluster_with_nodes(1, &["w1"]).await;
    let deploys = Api::<Deployment>::namespaced(client.clone(), "default");
    for name in ["bg", "fg", "orphan"] {
        deploys.create(&deployment(name)).await.unwrap();
        wait_rolled_out(&client, name, "app:1", 2).await;
        assert_eq!(count(&client, name).await, (1, 2));
    }

    // An unknown policy is refused, naming the field, and deletes nothing.
    let dp = DeleteParams {
        propagation_policy: Some("Sideways".into()),
        ..Default::default()
    };
    let err = deploys.delete_with("bg", &dp).await.unwrap_err();
    assert!(err.to_string().contains("propagationPolicy"), "{err}");
    assert!(deploys
        .get("bg")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none());

    // Background: the Deployment goes at once; its ReplicaSet and pods follow.
    delete(&client, "bg", "Background").await;
    assert!(deploys.get_opt("bg").await.unwrap().is_none());
    eventually(
        Duration::from_secs(30),
        "bg's ReplicaSet and pods gone",
        || async { (count(&client, "bg").await == (0, 0)).then_some(()) },
    )
    .await;

    // Foreground: the Deployment waits, finalizer set, until its dependents are gone.
    delete(&client, "fg", "Foreground").await;
    if let Some(d) = deploys.get_opt("fg").await.unwrap() {
        assert!(d.metadata.deletion_timestamp.is_some());
        assert!(d
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string()));
    }
    eventually(
        Duration::from_secs(30),
        "fg and everything it owned gone",
        || async {
            let gone = deploys.get_opt("fg").await.ok()?.is_none();
            (gone && count(&client, "fg").await == (0, 0)).then_some(())
        },
    )
    .await;

    // Orphan: the Deployment goes; its ReplicaSet stays, owned by nobody, with its pods.
    delete(&client, "orphan", "Orphan").await;
    eventually(
        Duration::from_secs(30),
        "the orphaned ReplicaSet released",
        || async {
            let gone = deploys.get_opt("orphan").await.ok()?.is_none();
            let rss = Api::<ReplicaSet>::namespaced(client.clone(), "default")
                .list(&ListParams::default().labels("app=orphan"))
                .await
                .ok()?
                .items;
            let released = rss.len() == 1
                && rss[0]
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(|r| r.is_empty());
            (gone && released).then_some(())
        },
    )
    .await;
    // It keeps running: still two pods a while later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&client, "orphan").await, (1, 2));
}
