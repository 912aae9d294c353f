//! Deleting a namespace: it turns Terminating, refuses new objects, has everything in it
//! deleted (pods stopped by their kubelet), and then goes itself.

use std::time::Duration;

use client::{Api, ListParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use rkube_tests::eventually;
use rkube_tests::fake_kubelet::cluster_with_nodes;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_namespace_empties_then_goes() {
    let (_cluster, client, _kubelet) = cluster_with_nodes(1, &["w1"]).await;
    let nss = Api::<Namespace>::all(client.clone());
    nss.create(
        &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "doomed"}}))
        .unwrap(),
    )
    .await
    .unwrap();
    let ns = nss.get("doomed").await.unwrap();
    assert_eq!(
        ns.spec.unwrap().finalizers.unwrap(),
        vec!["kubernetes".to_string()]
    );
    let deploys = Api::<Deployment>::namespaced(client.clone(), "doomed");
    deploys
        .create(
            &serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "web:1"}]}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "doomed");
    cms.create(
        &serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings"}, "data": {"a": "1"}}))
        .unwrap(),
    )
    .await
    .unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), "doomed");
    eventually(
        Duration::from_secs(30),
        "two running pods in doomed",
        || async {
            let n = pods.list(&ListParams::default()).await.ok()?.items.len();
            (n == 2).then_some(())
        },
    )
    .await;

    nss.delete("doomed", None).await.unwrap();
    let terminating = nss.get("doomed").await;
    if let Ok(ns) = terminating {
        assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
        let err = cms
            .create(
                &serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "late"}}))
                .unwrap(),
            )
            .await;
        assert!(err.is_err(), "a terminating namespace took a new object");
    }
    eventually(
        Duration::from_secs(60),
        "the namespace and everything in it gone",
        || async {
            let gone = nss.get_opt("doomed").await.ok()?.is_none();
            let left = pods.list(&ListParams::default()).await.ok()?.items.len()
                + cms.list(&ListParams::default()).await.ok()?.items.len()
                + deploys.list(&ListParams::default()).await.ok()?.items.len();
            (gone && left == 0).then_some(())
        },
    )
    .await;
}
