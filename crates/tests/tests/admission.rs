//! Admission end to end on a three-member cluster: ResourceQuota holds under concurrent
//! creates through every member, and its controller gives back what deleted objects held.

use std::time::Duration;

use client::{Api, Client};
use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceQuota};
use rkube_tests::{eventually, Cluster, Flavor};
use serde_json::json;
use tonic::Code;

fn obj<K: for<'de> k8s_openapi::serde::Deserialize<'de>>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, cpu: Option<&str>) -> Pod {
    let resources = match cpu {
        Some(c) => json!({"requests": {"cpu": c}}),
        None => json!({}),
    };
    obj(json!({"metadata": {"name": name}, "spec": {"containers": [
        {"name": "c", "image": "busybox", "resources": resources}]}}))
}

async fn namespace(admin: &Client, name: &str) {
    Api::<Namespace>::all(admin.clone())
        .create(&obj(json!({"metadata": {"name": name}})))
        .await
        .unwrap();
}

/// Creates a quota and waits for its controller to fill in its usage.
async fn quota(admin: &Client, ns: &str, name: &str, hard: serde_json::Value) {
    let api = Api::<ResourceQuota>::namespaced(admin.clone(), ns);
    api.create(&obj(
        json!({"metadata": {"name": name}, "spec": {"hard": hard}}),
    ))
    .await
    .unwrap();
    eventually(
        Duration::from_secs(20),
        "the quota's usage is counted",
        || {
            let api = api.clone();
            async move {
                let q = api.get(name).await.ok()?;
                q.status?.used.filter(|u| !u.is_empty()).map(|_| ())
            }
        },
    )
    .await;
}

async fn used(admin: &Client, ns: &str, name: &str, resource: &str) -> Option<String> {
    let q = Api::<ResourceQuota>::namespaced(admin.clone(), ns)
        .get(name)
        .await
        .ok()?;
    Some(q.status?.used?.get(resource)?.0.clone())
}

fn members(cluster: &Cluster) -> Vec<Client> {
    (0..3).map(|i| cluster.api_client_of(i)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_quota_holds_under_concurrent_creates_through_every_member() {
    let cluster = Cluster::start_with_controllers(3).await;
    let admin = cluster.api_client();
    namespace(&admin, "q").await;
    quota(&admin, "q", "ten-pods", json!({"pods": "10"})).await;

    let clients = members(&cluster);
    let creates = (0..20).map(|i| {
        let api = Api::<Pod>::namespaced(clients[i % 3].clone(), "q");
        async move { api.create(&pod(&format!("p{i}"), None)).await }
    });
    let results = futures::future::join_all(creates).await;
    let mut refused = 0;
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.code(), Code::PermissionDenied, "{e}");
            let msg = e.to_string();
            assert!(msg.contains("exceeded quota: ten-pods"), "{msg}");
            assert!(msg.contains("limited: pods=10"), "{msg}");
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "exactly ten creates are refused");
    let pods = Api::<Pod>::namespaced(admin.clone(), "q");
    assert_eq!(
        pods.list(&Default::default()).await.unwrap().items.len(),
        10
    );
    assert_eq!(
        used(&admin, "q", "ten-pods", "pods").await.as_deref(),
        Some("10")
    );

    // Deleted pods give their share back, through the controller.
    for p in pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .take(3)
    {
        pods.delete(p.metadata.name.as_deref().unwrap(), Some(0))
            .await
            .unwrap();
    }
    eventually(Duration::from_secs(20), "the quota counts 7 pods", || {
        let admin = admin.clone();
        async move { (used(&admin, "q", "ten-pods", "pods").await? == "7").then_some(()) }
    })
    .await;
    for i in 20..23 {
        pods.create(&pod(&format!("p{i}"), None)).await.unwrap();
    }
    let err = pods.create(&pod("p23", None)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compute_quota_needs_requests_and_counts_them() {
    let cluster = Cluster::start_with_controllers(1).await;
    let admin = cluster.api_client();
    namespace(&admin, "c").await;
    quota(
        &admin,
        "c",
        "cpu",
        json!({"requests.cpu": "1", "count/configmaps": "1"}),
    )
    .await;
    let err = Api::<ResourceQuota>::namespaced(admin.clone(), "c")
        .create(&obj(
            json!({"metadata": {"name": "bad"}, "spec": {"hard": {"pods": "ten"}}}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.to_string().contains("spec.hard[pods]"), "{err}");
    let pods = Api::<Pod>::namespaced(admin.clone(), "c");

    let err = pods.create(&pod("none", None)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("failed quota: cpu: must specify requests.cpu for: c"),
        "{err}"
    );
    pods.create(&pod("a", Some("600m"))).await.unwrap();
    let err = pods.create(&pod("b", Some("600m"))).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(
            "requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"
        ),
        "{msg}"
    );
    assert!(pods.get("b").await.unwrap_err().is_not_found());
    pods.create(&pod("c", Some("400m"))).await.unwrap();
    assert_eq!(
        used(&admin, "c", "cpu", "requests.cpu").await.as_deref(),
        Some("1")
    );

    // Object counts: the second ConfigMap is refused.
    let cms = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(admin.clone(), "c");
    cms.create(&obj(json!({"metadata": {"name": "one"}})))
        .await
        .unwrap();
    let err = cms
        .create(&obj(json!({"metadata": {"name": "two"}})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("count/configmaps=1"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_ranges_default_and_bound_containers_and_pod_security_refuses_by_level() {
    use k8s_openapi::api::core::v1::LimitRange;
    let cluster = Cluster::start(Flavor::Apiserver, 1, &[]).await;
    let admin = cluster.api_client();
    namespace(&admin, "lr").await;
    Api::<LimitRange>::namespaced(admin.clone(), "lr")
        .create(&obj(
            json!({"metadata": {"name": "defaults"}, "spec": {"limits": [{
            "type": "Container",
            "default": {"cpu": "500m", "memory": "128Mi"},
            "defaultRequest": {"cpu": "100m"},
            "max": {"cpu": "1"}}]}}),
        ))
        .await
        .unwrap();
    let pods = Api::<Pod>::namespaced(admin.clone(), "lr");
    let made = pods.create(&pod("defaulted", None)).await.unwrap();
    let r = made.spec.unwrap().containers[0].resources.clone().unwrap();
    let q = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
             k: &str| { m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    assert_eq!(q(&r.limits, "cpu").as_deref(), Some("500m"));
    assert_eq!(q(&r.limits, "memory").as_deref(), Some("128Mi"));
    assert_eq!(q(&r.requests, "cpu").as_deref(), Some("100m"));
    let note = made.metadata.annotations.unwrap_or_default();
    assert!(
        note["kubernetes.io/limit-ranger"].contains("LimitRanger plugin set"),
        "{note:?}"
    );
    let mut big = pod("big", None);
    big.spec.as_mut().unwrap().containers[0].resources = Some(obj(json!({"limits": {"cpu": "2"}})));
    let err = pods.create(&big).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("maximum cpu usage per Container is 1, but limit is 2"),
        "{err}"
    );

    // PodSecurity: restricted refuses what it forbids, with Kubernetes' reasons.
    let ns = Api::<Namespace>::all(admin.clone());
    ns.create(&obj(json!({"metadata": {"name": "strict",
        "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})))
        .await
        .unwrap();
    let strict = Api::<Pod>::namespaced(admin.clone(), "strict");
    let shapes = [
        (
            json!({"securityContext": {"privileged": true}}),
            json!({}),
            "privileged",
        ),
        (
            json!({}),
            json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
            "restricted volume types",
        ),
        (
            json!({"securityContext": {"runAsUser": 0}}),
            json!({}),
            "runAsUser=0",
        ),
    ];
    for (i, (container, spec, reason)) in shapes.into_iter().enumerate() {
        let mut c = json!({"name": "c", "image": "busybox"});
        c.as_object_mut()
            .unwrap()
            .extend(container.as_object().unwrap().clone());
        let mut s = json!({"containers": [c]});
        s.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        let p: Pod = obj(json!({"metadata": {"name": format!("p{i}")}, "spec": s}));
        let err = strict.create(&p).await.unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.code(), Code::PermissionDenied, "{msg}");
        assert!(
            msg.contains("violates PodSecurity \"restricted:latest\""),
            "{msg}"
        );
        assert!(msg.contains(reason), "{reason} not in {msg}");
        assert!(strict
            .get(&format!("p{i}"))
            .await
            .unwrap_err()
            .is_not_found());
    }
    // warn=restricted: a pod restricted would refuse is admitted, with the warning.
    ns.create(&obj(json!({"metadata": {"name": "warned",
        "labels": {"pod-security.kubernetes.io/warn": "restricted"}}})))
        .await
        .unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let warned_client = cluster.api_client();
    let h = heard.clone();
    warned_client.on_warning(std::sync::Arc::new(move |w: &str| {
        h.lock().unwrap().push(w.to_string())
    }));
    Api::<Pod>::namespaced(warned_client, "warned")
        .create(&pod("loose", None))
        .await
        .unwrap();
    let heard = heard.lock().unwrap().clone();
    assert!(
        heard.iter().any(
            |w| w.contains("would violate PodSecurity \"restricted:latest\"")
                && w.contains("runAsNonRoot")
        ),
        "{heard:?}"
    );

    // The default level, baseline, admits a plain pod and refuses a privileged one.
    pods.create(&pod("plain", None)).await.unwrap();
    let mut privileged = pod("root", None);
    privileged.spec.as_mut().unwrap().containers[0].security_context =
        Some(obj(json!({"privileged": true})));
    let err = pods.create(&privileged).await.unwrap_err();
    assert!(err.to_string().contains("\"baseline:latest\""), "{err}");
}
