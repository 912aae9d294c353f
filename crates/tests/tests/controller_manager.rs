//! The controller-manager against a real cluster (`rkube server`: scheduler and
//! controllers in every member, one of each acting). A fake kubelet makes pods on fake
//! nodes Running and Ready; no containers run.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use client::watcher::{watcher, Event};
use client::{Api, Client, ListParams, PatchParams};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    Endpoints, Namespace, Pod, ReplicationController, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::Mutex;
use rkube_tests::fake_kubelet::{cluster_with_nodes, NEVER_READY};
use rkube_tests::objects::wait_rolled_out;
use rkube_tests::{eventually, Cluster, Flavor, FAST_CM_LEASE, FAST_SCHEDULER_LEASE};
use serde_json::json;

fn fast() -> Vec<&'static str> {
    [FAST_SCHEDULER_LEASE, FAST_CM_LEASE].concat()
}

/// Pods of `ns` with `app=<app>` that are not being deleted.
async fn live_pods(client: &Client, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn web_template(image: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image,
            "ports": [{"name": "http", "containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
}

#[tokio::test(flavor = "multi_thread")]
async fn replicasets_scale_adopt_and_report_status() {
    let (cluster, client, _kubelet) = cluster_with_nodes(3, &["w1", "w2"]).await;
    let rss = Api::<ReplicaSet>::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "rs"}},
            "template": {"metadata": {"labels": {"app": "rs"}},
                "spec": {"containers": [{"name": "c", "image": "app:1"}]}}}}))
    .unwrap();
    rss.create(&rs).await.unwrap();
    let wait_ready = |n: i32| {
        let rss = rss.clone();
        async move {
            eventually(
                Duration::from_secs(30),
                &format!("{n} ready replicas"),
                || async {
                    let rs = rss.get("rs").await.ok()?;
                    let st = rs.status?;
                    (st.replicas == n && st.ready_replicas == Some(n)).then_some(())
                },
            )
            .await
        }
    };
    wait_ready(3).await;
    let pods = live_pods(&client, "rs").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("ReplicaSet", "rs", Some(true))
        );
    }
    rss.patch("rs", PatchParams::Merge, &json!({"spec": {"replicas": 5}}))
        .await
        .unwrap();
    wait_ready(5).await;
    rss.patch("rs", PatchParams::Merge, &json!({"spec": {"replicas": 1}}))
        .await
        .unwrap();
    wait_ready(1).await;
    eventually(Duration::from_secs(20), "4 pods gone", || async {
        (Api::<Pod>::namespaced(client.clone(), "default")
            .list(&ListParams::default().labels("app=rs"))
            .await
            .ok()?
            .items
            .len()
            == 1)
            .then_some(())
    })
    .await;
    // An orphan the selector matches is adopted, and then one pod too many goes.
    let orphan: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "rs"}},
        "spec": {"containers": [{"name": "c", "image": "app:1"}]}}))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&orphan)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "one pod left, owned by the ReplicaSet",
        || async {
            let pods = live_pods(&client, "rs").await;
            (pods.len() == 1
                && pods.iter().all(|p| {
                    p.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.name == "rs")
                }))
            .then_some(())
        },
    )
    .await;
    // The leading member counts the ReplicaSet controller's reconciles on its /metrics.
    let series = r#"controller_runtime_reconcile_total{controller="ReplicaSet",result="success"}"#;
    let counted = |text: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .any(|n| n > 0.0)
    };
    let admin = cluster.pki.rustls(Some(&cluster.pki.admin));
    let mut texts = Vec::new();
    for m in &cluster.members {
        texts.push(
            pki::https_get(m.client, "/metrics", admin.clone())
                .await
                .unwrap(),
        );
    }
    assert!(
        texts.iter().any(|t| counted(t)),
        "no member counts ReplicaSet reconciles"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_update_keeps_every_replica_ready_and_rolls_back() {
    let (cluster, client, _kubelet) = cluster_with_nodes(3, &["w1", "w2"]).await;
    let deploys = Api::<Deployment>::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": web_template("web:1")}}))
    .unwrap();
    deploys.create(&d).await.unwrap();
    wait_rolled_out(&client, "web", "web:1", 3).await;

    // Count Ready pods from the watch for the whole rollout: never fewer than 3.
    let ready: Arc<Mutex<BTreeMap<String, bool>>> = Default::default();
    let min_ready = Arc::new(Mutex::new(usize::MAX));
    let watch = {
        let (ready, min_ready) = (ready.clone(), min_ready.clone());
        let api = Api::<Pod>::namespaced(client.clone(), "default");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut s = watcher(api, client::watcher::Config::default().labels("app=web")).boxed();
            while let Some(ev) = s.next().await {
                let mut r = ready.lock();
                match ev {
                    Event::Apply(p) | Event::InitApply(p) => {
                        let ok = is_ready(&p) && p.metadata.deletion_timestamp.is_none();
                        r.insert(p.metadata.name.clone().unwrap_or_default(), ok);
                    }
                    Event::Delete(p) => {
                        r.remove(p.metadata.name.as_deref().unwrap_or_default());
                    }
                    Event::InitDone => {
                        if let Some(t) = tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Event::Init => {}
                }
                let n = r.values().filter(|v| **v).count();
                if tx.is_none() {
                    let mut m = min_ready.lock();
                    *m = (*m).min(n);
                }
            }
        });
        rx.await.unwrap();
        task
    };
    deploys
        .patch(
            "web",
            PatchParams::Strategic,
            &json!({"spec": {"template": {"spec": {
            "containers": [{"name": "web", "image": "web:2"}]}}}}),
        )
        .await
        .unwrap();
    wait_rolled_out(&client, "web", "web:2", 3).await;
    watch.abort();
    let min = *min_ready.lock();
    assert!(
        min >= 3,
        "only {min} Ready pods at one point of the rollout"
    );

    // Two revisions; `rollout undo` goes back to web:1 as revision 3.
    let ctl = |args: &[&str]| {
        let out = rkube_tests::pod_lifecycle::ctl(&cluster.api_access(), args);
        rkube_tests::pod_lifecycle::ctl_ok(args, out)
    };
    let hist = ctl(&["rollout", "history", "deployment/web"]);
    assert!(hist.contains("\n1 ") && hist.contains("\n2 "), "{hist}");
    let undo = ctl(&["rollout", "undo", "deployment/web"]);
    assert!(undo.contains("rolled back"), "{undo}");
    wait_rolled_out(&client, "web", "web:1", 3).await;
    let status = ctl(&["rollout", "status", "deployment/web", "--timeout", "30"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let rss = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rss.len(), 2, "the old ReplicaSet is reused, not copied");
    let revisions: HashSet<String> = rss
        .iter()
        .map(|rs| {
            rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"].clone()
        })
        .collect();
    assert_eq!(revisions, HashSet::from(["2".to_string(), "3".to_string()]));

    // Scale through ctl.
    ctl(&["scale", "deployment/web", "--replicas", "5"]);
    eventually(Duration::from_secs(30), "5 ready replicas", || async {
        let d = deploys.get("web").await.ok()?;
        (d.status?.ready_replicas == Some(5)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_list_ready_and_not_ready_pods_with_named_ports() {
    let (_cluster, client, _kubelet) = cluster_with_nodes(3, &["w1", "w2"]).await;
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    for (name, never_ready) in [("a", false), ("b", false), ("c", true)] {
        let mut t = web_template("web:1");
        t["metadata"]["name"] = name.into();
        if never_ready {
            t["metadata"]["annotations"] = json!({NEVER_READY: "true"});
        }
        t["apiVersion"] = "v1".into();
        t["kind"] = "Pod".into();
        pods.create(&serde_json::from_value(t).unwrap())
            .await
            .unwrap();
    }
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&svc)
        .await
        .unwrap();
    let eps = Api::<Endpoints>::namespaced(client.clone(), "default");
    let subset = eventually(
        Duration::from_secs(30),
        "2 ready and 1 not-ready address",
        || async {
            let e = eps.get("web").await.ok()?;
            let s = e.subsets?.into_iter().next()?;
            (s.addresses.as_ref().map_or(0, Vec::len) == 2
                && s.not_ready_addresses.as_ref().map_or(0, Vec::len) == 1)
                .then_some(s)
        },
    )
    .await;
    assert_eq!(
        subset.ports.unwrap()[0].port,
        8080,
        "the named target port is resolved"
    );
    let names: HashSet<String> = subset
        .addresses
        .unwrap()
        .iter()
        .map(|a| a.target_ref.as_ref().unwrap().name.clone().unwrap())
        .collect();
    assert_eq!(names, HashSet::from(["a".to_string(), "b".to_string()]));
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default");
    // The slice catches up with the same pods: 3 endpoints, 2 of them ready.
    eventually(
        Duration::from_secs(20),
        "an EndpointSlice with 3 endpoints, 2 ready",
        || async {
            let slice = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .ok()?
                .items
                .into_iter()
                .next()?;
            let endpoints = slice.endpoints.unwrap_or_default();
            let ready = endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().is_some_and(|c| c.ready == Some(true)))
                .count();
            (endpoints.len() == 3 && ready == 2).then_some(())
        },
    )
    .await;
    // A deleted pod leaves.
    pods.delete("a", Some(0)).await.unwrap();
    eventually(
        Duration::from_secs(20),
        "pod a gone from the endpoints",
        || async {
            let s = eps.get("web").await.ok()?.subsets?.into_iter().next()?;
            (s.addresses.as_ref().map_or(0, Vec::len) == 1).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_namespace_gets_a_default_service_account() {
    let cluster = Cluster::start(Flavor::Server, 1, &fast()).await;
    let client = cluster.api_client();
    let ns: Namespace = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-a"}}))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&ns)
        .await
        .unwrap();
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), "team-a");
    eventually(Duration::from_secs(20), "team-a/default", || async {
        sas.get_opt("default").await.ok()?
    })
    .await;
    let first = sas.get("default").await.unwrap().metadata.uid;
    sas.delete("default", None).await.unwrap();
    let again = eventually(Duration::from_secs(20), "team-a/default again", || async {
        sas.get_opt("default")
            .await
            .ok()?
            .filter(|s| s.metadata.uid != first)
    })
    .await;
    assert!(again.metadata.uid.is_some());
    // The bootstrap namespaces have one too.
    for ns in ["default", "kube-system"] {
        let api = Api::<ServiceAccount>::namespaced(client.clone(), ns);
        eventually(
            Duration::from_secs(20),
            &format!("{ns}/default"),
            || async { api.get_opt("default").await.ok()? },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_controllers_keep_their_count() {
    let (_cluster, client, _kubelet) = cluster_with_nodes(1, &["w1"]).await;
    let rcs = Api::<ReplicationController>::namespaced(client.clone(), "default");
    // No selector: it selects its template's labels.
    let rc: ReplicationController = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "rc"}},
            "spec": {"containers": [{"name": "c", "image": "app:1"}]}}}}))
    .unwrap();
    rcs.create(&rc).await.unwrap();
    for n in [2, 3] {
        if n == 3 {
            rcs.patch("rc", PatchParams::Merge, &json!({"spec": {"replicas": 3}}))
                .await
                .unwrap();
        }
        eventually(
            Duration::from_secs(30),
            &format!("{n} ready replicas of rc"),
            || async {
                let st = rcs.get("rc").await.ok()?.status?;
                let pods = live_pods(&client, "rc").await;
                (st.ready_replicas == Some(n) && pods.len() == n as usize).then_some(())
            },
        )
        .await;
    }
}
