//! The scheduler against a real cluster (`rkube server`: the scheduler runs in every
//! member, and the one holding the Lease acts). Nodes are objects with different
//! capacities, labels and taints; pods land where Kubernetes would put them, and pods that
//! fit nowhere carry the reasons.

use std::time::Duration;

use client::{Api, ListParams};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use rkube_tests::objects::{fake_node, node_name, pod};
use rkube_tests::{eventually, Cluster, Flavor, FAST_SCHEDULER_LEASE};
use serde_json::json;

async fn bound_to(pods: &Api<Pod>, name: &str) -> String {
    eventually(
        Duration::from_secs(20),
        &format!("pod {name} bound"),
        || async {
            let p = pods.get(name).await.ok()?;
            node_name(&p).map(str::to_string)
        },
    )
    .await
}

/// The PodScheduled=False message once the scheduler has given one.
async fn unschedulable_message(pods: &Api<Pod>, name: &str) -> String {
    eventually(
        Duration::from_secs(20),
        &format!("pod {name} marked unschedulable"),
        || async {
            let p = pods.get(name).await.ok()?;
            assert!(node_name(&p).is_none(), "{name} was bound");
            let c = p
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
            assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
            c.message
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_land_where_kubernetes_would_put_them() {
    let cluster = Cluster::start(Flavor::Server, 3, FAST_SCHEDULER_LEASE).await;
    let client = cluster.api_client();
    let nodes = Api::<Node>::all(client.clone());
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let zone = |z: &str, disk: &str| json!({"metadata": {"labels": {"zone": z, "disk": disk}}});
    for n in [
        fake_node("n-small", "1", "2Gi", zone("a", "hdd")),
        fake_node("n-mid", "4", "8Gi", zone("a", "hdd")),
        fake_node("n-big", "8", "16Gi", zone("b", "ssd")),
        fake_node(
            "n-tainted",
            "8",
            "16Gi",
            json!({"metadata": {"labels": {"zone": "b"}},
                   "spec": {"taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]}}),
        ),
        fake_node(
            "n-cordoned",
            "8",
            "16Gi",
            json!({"spec": {"unschedulable": true}}),
        ),
    ] {
        nodes.create(&n).await.expect("create node");
    }

    // Resources: zone a offers n-small and n-mid; LeastAllocated and BalancedAllocation
    // both prefer the roomier n-mid.
    let p = pod(
        "roomy",
        "500m",
        "256Mi",
        json!({"spec": {"nodeSelector": {"zone": "a"}}}),
    );
    pods.create(&p).await.unwrap();
    assert_eq!(bound_to(&pods, "roomy").await, "n-mid");

    // nodeSelector.
    pods.create(&pod(
        "ssd",
        "100m",
        "64Mi",
        json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
    ))
    .await
    .unwrap();
    assert_eq!(bound_to(&pods, "ssd").await, "n-big");

    // A toleration opens the tainted node; required node affinity picks it.
    let gpu_affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n-tainted"]}]}]}}});
    pods.create(&pod("gpu", "1", "1Gi", json!({"spec": {"affinity": gpu_affinity,
        "tolerations": [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]}})))
        .await
        .unwrap();
    assert_eq!(bound_to(&pods, "gpu").await, "n-tainted");

    // Without the toleration nothing fits, and the message counts the reasons per node.
    pods.create(&pod(
        "gpu-untolerated",
        "1",
        "1Gi",
        json!({"spec": {"affinity": gpu_affinity}}),
    ))
    .await
    .unwrap();
    assert_eq!(
        unschedulable_message(&pods, "gpu-untolerated").await,
        "0/5 nodes are available: 1 node(s) had untolerated taint {gpu: true}, \
         1 node(s) were unschedulable, 3 node(s) didn't match Pod's node affinity/selector."
    );
    pods.create(&pod("huge", "16", "1Gi", json!({})))
        .await
        .unwrap();
    assert_eq!(
        unschedulable_message(&pods, "huge").await,
        "0/5 nodes are available: 1 node(s) had untolerated taint {gpu: true}, \
         1 node(s) were unschedulable, 3 Insufficient cpu."
    );
    let events = Api::<Event>::namespaced(client.clone(), "default");
    eventually(
        Duration::from_secs(10),
        "a FailedScheduling event for huge",
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.involved_object.name.as_deref() == Some("huge")
                    && e.reason.as_deref() == Some("FailedScheduling")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains("3 Insufficient cpu"))
            })
        },
    )
    .await;

    // Required anti-affinity by zone: two replicas end up in different zones.
    let web = |name: &str| {
        pod(
            name,
            "100m",
            "64Mi",
            json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}}}),
        )
    };
    pods.create(&web("web-1")).await.unwrap();
    let first = bound_to(&pods, "web-1").await;
    pods.create(&web("web-2")).await.unwrap();
    let second = bound_to(&pods, "web-2").await;
    let zone_of = |n: &str| {
        if n == "n-small" || n == "n-mid" {
            "a"
        } else {
            "b"
        }
    };
    assert_ne!(
        zone_of(&first),
        zone_of(&second),
        "{first} and {second} share a zone"
    );
    // A third has no zone left.
    pods.create(&web("web-3")).await.unwrap();
    let msg = unschedulable_message(&pods, "web-3").await;
    // web-1 and web-2 repel it (their terms select it) in every zone.
    assert!(
        msg.contains("3 node(s) didn't satisfy existing pods anti-affinity rules"),
        "{msg}"
    );

    // Data locality: a claim bound to a local volume on n-small pins the pod there.
    let pvs = Api::<PersistentVolume>::all(client.clone());
    pvs.create(
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "local-small"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "local": {"path": "/mnt/disk"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n-small"]}]}]}}}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(client.clone(), "default");
    pvcs.create(
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "local-small",
                     "resources": {"requests": {"storage": "1Gi"}}}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    pods.create(&pod(
        "with-data",
        "100m",
        "64Mi",
        json!({"spec": {"volumes": [
        {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}),
    ))
    .await
    .unwrap();
    assert_eq!(bound_to(&pods, "with-data").await, "n-small");

    // A pending pod's activeDeadlineSeconds: Failed, DeadlineExceeded, never bound.
    pods.create(&pod(
        "late",
        "100m",
        "64Mi",
        json!({"spec": {"activeDeadlineSeconds": 1,
        "nodeSelector": {"role": "none"}}}),
    ))
    .await
    .unwrap();
    eventually(
        Duration::from_secs(20),
        "pod late failed with DeadlineExceeded",
        || async {
            let p = pods.get("late").await.ok()?;
            let st = p.status?;
            (st.phase.as_deref() == Some("Failed")
                && st.reason.as_deref() == Some("DeadlineExceeded"))
            .then_some(())
        },
    )
    .await;

    // An unschedulable pod comes back when a node that fits is added.
    pods.create(&pod(
        "waits",
        "100m",
        "64Mi",
        json!({"spec": {"nodeSelector": {"role": "late"}}}),
    ))
    .await
    .unwrap();
    unschedulable_message(&pods, "waits").await;
    nodes
        .create(&fake_node(
            "n-late",
            "2",
            "4Gi",
            json!({"metadata": {"labels": {"role": "late"}}}),
        ))
        .await
        .unwrap();
    assert_eq!(bound_to(&pods, "waits").await, "n-late");
    let late = pods.get("late").await.unwrap();
    assert!(
        node_name(&late).is_none(),
        "a pod past its deadline was bound"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn preemption_evicts_the_least_important_victims() {
    let cluster = Cluster::start(Flavor::Server, 1, FAST_SCHEDULER_LEASE).await;
    let client = cluster.api_client();
    let nodes = Api::<Node>::all(client.clone());
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    for n in ["n1", "n2"] {
        nodes
            .create(&fake_node(n, "2", "4Gi", json!({})))
            .await
            .unwrap();
    }
    let pcs = Api::<k8s_openapi::api::scheduling::v1::PriorityClass>::all(client.clone());
    for (name, value) in [("low", 10), ("mid", 500), ("critical", 1000)] {
        pcs.create(
            &serde_json::from_value(json!({"apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass", "metadata": {"name": name}, "value": value}))
            .unwrap(),
        )
        .await
        .unwrap();
    }
    // Priority admission: the class gives spec.priority; an unknown class is refused.
    let err = pods
        .create(&pod(
            "nope",
            "1",
            "1Gi",
            json!({"spec": {"priorityClassName": "nope"}}),
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no PriorityClass with name nope was found"),
        "{err}"
    );
    // Both nodes full: n1 holds a priority-10 and a priority-500 pod, n2 two of 500.
    for (name, node, class) in [
        ("low", "n1", "low"),
        ("mid-1", "n1", "mid"),
        ("mid-2", "n2", "mid"),
        ("mid-3", "n2", "mid"),
    ] {
        let p = pods
            .create(&pod(
                name,
                "1",
                "1Gi",
                json!({"spec": {"nodeName": node, "priorityClassName": class}}),
            ))
            .await
            .unwrap();
        let want = if class == "low" { 10 } else { 500 };
        assert_eq!(p.spec.unwrap().priority, Some(want));
    }
    pods.create(&pod(
        "urgent",
        "1",
        "1Gi",
        json!({"spec": {"priorityClassName": "critical"}}),
    ))
    .await
    .unwrap();
    // The victim is the priority-10 pod: it is deleted gracefully (it has a node).
    eventually(
        Duration::from_secs(20),
        "the low-priority pod to be evicted",
        || async {
            let p = pods.get("low").await.ok()?;
            p.metadata.deletion_timestamp.map(|_| ())
        },
    )
    .await;
    let urgent = eventually(
        Duration::from_secs(10),
        "urgent nominated to n1",
        || async {
            let p = pods.get("urgent").await.ok()?;
            let n = p.status?.nominated_node_name?;
            Some(n)
        },
    )
    .await;
    assert_eq!(urgent, "n1");
    for name in ["mid-1", "mid-2", "mid-3"] {
        let p = pods.get(name).await.unwrap();
        assert!(
            p.metadata.deletion_timestamp.is_none(),
            "{name} was evicted"
        );
    }
    // Stand in for the kubelet: the victim's containers stop, the pod object goes.
    pods.delete("low", Some(0)).await.unwrap();
    assert_eq!(bound_to(&pods, "urgent").await, "n1");
}
