//! DaemonSets: one pod per eligible node, on nodes added later too, none on nodes with a
//! taint the pods do not tolerate; pods of removed nodes go; a new template replaces the
//! pods one at a time.

use std::time::Duration;

use client::{Api, ListParams, PatchParams};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_tests::eventually;
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::objects::{fake_node, node_name};
use serde_json::json;

async fn agents(api: &Api<Pod>) -> Vec<Pod> {
    api.list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn nodes_of(pods: &[Pod]) -> Vec<String> {
    let mut v: Vec<String> = pods
        .iter()
        .filter_map(|p| node_name(p).map(String::from))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn one_pod_per_eligible_node() {
    let (_cluster, client, _kubelet) = cluster_with_nodes(1, &["w1", "w2"]).await;
    let nodes = Api::<Node>::all(client.clone());
    nodes
        .create(&fake_node(
            "tainted",
            "16",
            "64Gi",
            json!({"spec": {"taints": [
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
        ))
        .await
        .unwrap();
    let ds: DaemonSet =
        serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}}))
        .unwrap();
    let dss = Api::<DaemonSet>::namespaced(client.clone(), "default");
    dss.create(&ds).await.unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    eventually(
        Duration::from_secs(30),
        "agents on w1 and w2, ready",
        || async {
            let d = dss.get("agent").await.ok()?;
            let st = d.status?;
            let on = nodes_of(&agents(&pods).await);
            (on == ["w1", "w2"] && st.desired_number_scheduled == 2 && st.number_ready == 2)
                .then_some(())
        },
    )
    .await;

    // A node added later gets one; a node that goes loses it.
    nodes
        .create(&fake_node("w3", "16", "64Gi", json!({})))
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "an agent bound to w3", || async {
        (nodes_of(&agents(&pods).await) == ["w1", "w2", "w3"]).then_some(())
    })
    .await;
    nodes.delete("w3", None).await.unwrap();
    eventually(Duration::from_secs(30), "the agent of w3 gone", || async {
        (nodes_of(&agents(&pods).await) == ["w1", "w2"]).then_some(())
    })
    .await;

    // A new template: every agent replaced, one at a time.
    dss.patch(
        "agent",
        PatchParams::Strategic,
        &json!({"spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "agent:2"}]}}}}),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(60), "agents on agent:2", || async {
        let a = agents(&pods).await;
        let all_new = a.len() == 2
            && a.iter().all(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("agent:2")
            });
        let st = dss.get("agent").await.ok()?.status?;
        (all_new && st.updated_number_scheduled == Some(2) && st.number_ready == 2).then_some(())
    })
    .await;
}
