//! HorizontalPodAutoscaler: the fake kubelet reports pod usage as a kubelet would; the
//! HPA scales the Deployment up (bounded by maxReplicas and the scale-up policies) and back
//! down (after its stabilization window, bounded by minReplicas), with status and events.

use std::time::Duration;

use client::{Api, ListParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event;
use rkube_tests::eventually;
use rkube_tests::fake_kubelet::cluster_with_nodes_and;
use rkube_tests::objects::wait_rolled_out;
use serde_json::json;

fn condition(h: &HorizontalPodAutoscaler, t: &str) -> Option<(String, String)> {
    h.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread")]
async fn scales_up_on_cpu_and_back_down() {
    let (_cluster, client, kubelet) = cluster_with_nodes_and(
        1,
        &["w1", "w2"],
        &["--horizontal-pod-autoscaler-sync-period-ms", "500"],
    )
    .await;
    let deploys = Api::<Deployment>::namespaced(client.clone(), "default");
    deploys
        .create(
            &serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "web:1",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    wait_rolled_out(&client, "web", "web:1", 2).await;

    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), "default");
    hpas.create(
        &serde_json::from_value(json!({"apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 3}}}}))
        .unwrap(),
    )
    .await
    .unwrap();

    // No metrics yet: the HPA says so and leaves the Deployment alone.
    eventually(Duration::from_secs(30), "ScalingActive=False", || async {
        let h = hpas.get("web").await.ok()?;
        (condition(&h, "ScalingActive")? == ("False".into(), "FailedGetResourceMetric".into()))
            .then_some(())
    })
    .await;
    assert_eq!(deploys.get("web").await.unwrap().spec.replicas, Some(2));

    // 150m of a 100m request against a 50% target asks for 6 pods; maxReplicas caps at 5.
    kubelet.set_usage("150m", "10Mi");
    eventually(Duration::from_secs(60), "scaled up to 5", || async {
        let d = deploys.get("web").await.ok()?;
        (d.spec.replicas == Some(5)).then_some(())
    })
    .await;
    let h = eventually(
        Duration::from_secs(30),
        "HPA status after scale-up",
        || async {
            let h = hpas.get("web").await.ok()?;
            let st = h.status.clone()?;
            let util = st
                .current_metrics
                .as_ref()?
                .first()?
                .resource
                .as_ref()?
                .current
                .average_utilization;
            (st.desired_replicas == 5 && util == Some(150) && st.last_scale_time.is_some())
                .then_some(h)
        },
    )
    .await;
    assert_eq!(
        condition(&h, "ScalingLimited"),
        Some(("True".into(), "TooManyReplicas".into()))
    );
    assert_eq!(
        condition(&h, "ScalingActive"),
        Some(("True".into(), "ValidMetricFound".into()))
    );
    let events = Api::<Event>::namespaced(client.clone(), "default");
    eventually(Duration::from_secs(10), "a SuccessfulRescale event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("SuccessfulRescale")
                    && e.message.as_deref()
                        == Some("New size: 5; reason: cpu resource utilization (percentage of request) above target")
            })
            .then_some(())
    })
    .await;
    wait_rolled_out(&client, "web", "web:1", 5).await;

    // Idle: 10% of the request asks for one pod; after the 3 s window it scales down to
    // minReplicas.
    kubelet.set_usage("10m", "10Mi");
    eventually(Duration::from_secs(60), "scaled down to 1", || async {
        let d = deploys.get("web").await.ok()?;
        (d.spec.replicas == Some(1)).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "HPA status after scale-down",
        || async {
            let h = hpas.get("web").await.ok()?;
            let st = h.status.clone()?;
            (st.desired_replicas == 1 && st.current_replicas == Some(1)).then_some(())
        },
    )
    .await;
    wait_rolled_out(&client, "web", "web:1", 1).await;
    let h = hpas.get("web").await.unwrap();
    assert_eq!(
        condition(&h, "AbleToScale").map(|c| c.0),
        Some("True".to_string())
    );
}
