//! End to end, on a cluster started by `rkube up` (three members, two worker nodes with the
//! process runtime, pod networking and the userspace proxy), driven with `rkube ctl` and
//! the examples in `examples/`:
//! - the web example serves through its Service from every replica, and through a
//!   LoadBalancer address of the built-in cloud provider; the other examples
//!   (Job, CronJob, ConfigMap/Secret pod, HPA, affinity) apply unchanged and work;
//! - a rollout completes while the apiserver leader is kill -9'd twice, failing no request
//!   beyond those in flight on terminated pods;
//! - a worker killed with its pods goes NotReady, its pods are evicted and replaced on the
//!   other node, and traffic recovers;
//! - every member killed at once: workloads keep serving, and the cluster comes back with
//!   every object.

use std::time::Duration;

use client::{Api, Client, ListParams, PatchParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use rkube_tests::net::{get, Traffic};
use rkube_tests::netns::is_root;
use rkube_tests::service_proxy::{ready_names, wait_serving};
use rkube_tests::up::{node_args, server_args, UpCluster};
use rkube_tests::{eventually, objects};
use serde_json::json;

/// Client tasks sending requests through the Service.
const CLIENTS: usize = 4;

fn example(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn leader(client: &Client) -> String {
    eventually(Duration::from_secs(30), "a leader", || async {
        let r = client.members().await.ok()?;
        r.members
            .iter()
            .find(|m| m.id == r.leader_id && r.leader_id != 0)
            .map(|m| m.name.clone())
    })
    .await
}

/// Waits until every member answers with the same leader.
async fn all_members_up(up: &UpCluster, client: &Client) {
    let state = up.state();
    let apis: Vec<String> = state["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["api"].as_str().unwrap().to_string())
        .collect();
    eventually(Duration::from_secs(60), "every member serving", || async {
        for a in &apis {
            let s = client.member_status(&format!("https://{a}")).await.ok()?;
            (s.leader_id != 0).then_some(())?;
        }
        Some(())
    })
    .await;
}

/// The keys of the objects in the store (through the etcd API of member n1), except kinds
/// that controllers and kubelets add and remove on their own: events, pods, leases,
/// endpoints, jobs (the CronJob prunes its history), pod metrics.
async fn stored_objects(up: &UpCluster) -> std::collections::BTreeSet<String> {
    let api = up.state()["members"][0]["api"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let cfg = client::ClientConfig::load(&up.config()).unwrap();
    let read = |p: Option<std::path::PathBuf>| std::fs::read(p.unwrap()).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(cfg.ca)))
        .identity(tonic::transport::Identity::from_pem(
            read(cfg.cert),
            read(cfg.key),
        ));
    let mut kv = rkube_tests::cluster::Clients::connect(api, Some(tls)).kv;
    let resp = kv
        .range(rkube_proto::etcd::RangeRequest {
            key: "/registry/".into(),
            range_end: rkube_tests::prefix_end("/registry/"),
            keys_only: true,
            ..Default::default()
        })
        .await
        .expect("range /registry/")
        .into_inner();
    let skip = [
        "/events/",
        "/pods/",
        "/leases/",
        "/endpoints/",
        "/endpointslices/",
        "/jobs/",
    ];
    let keys: std::collections::BTreeSet<String> = resp
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).to_string())
        .filter(|k| !skip.iter().any(|s| k.contains(s)))
        .collect();
    assert!(
        keys.len() > 20,
        "the store holds the cluster's objects: {keys:?}"
    );
    keys
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

async fn web_pods(client: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The cloud provider `rkube up` runs: the nodes were initialized by the
/// cloud-controller-manager, and a LoadBalancer Service over the web pods gets a loopback
/// address that reaches every one of them from the host, until it is deleted.
async fn load_balancer(up: &UpCluster, client: &Client, pods: &[String]) {
    let nodes = Api::<Node>::all(client.clone());
    for w in ["w1", "w2"] {
        let spec = nodes.get(w).await.unwrap().spec.unwrap_or_default();
        assert_eq!(spec.provider_id, Some(format!("local://{w}")));
    }
    let services = Api::<Service>::namespaced(client.clone(), "default");
    up.ctl(&["apply", "-f", &example("web-lb.yaml")]);
    let ip = eventually(Duration::from_secs(60), "an address for web-lb", || async {
        rkube_tests::cloud_conformance::ingress_ip(&services.get("web-lb").await.ok()?)
    })
    .await;
    let addr: std::net::SocketAddr = format!("{ip}:8080").parse().unwrap();
    assert!(addr.ip().is_loopback(), "{addr}");
    wait_serving(addr, pods).await;
    services.delete("web-lb", None).await.unwrap();
    eventually(
        Duration::from_secs(60),
        "web-lb and its balancer gone",
        || async {
            let gone = services.get_opt("web-lb").await.ok()?.is_none();
            (gone && get(addr, "/").await.is_err()).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_from_rkube_up_runs_the_examples_and_survives_failures() {
    assert!(is_root(), "pod networks and ClusterIPs need root");
    let n = std::process::id() % 20;
    let mut extra: Vec<String> = vec![
        "--cluster-cidr".into(),
        format!("10.{}.0.0/16", 60 + n),
        "--service-cidr".into(),
        format!("10.{}.0.0/24", 90 + n),
    ];
    extra.extend(server_args(rkube_tests::FAST_SCHEDULER_LEASE));
    extra.extend(server_args(rkube_tests::FAST_CM_LEASE));
    extra.extend(server_args(&[
        "--node-monitor-grace-period-ms=3000",
        "--node-monitor-period-ms=500",
        "--default-not-ready-toleration-seconds=2",
        "--default-unreachable-toleration-seconds=2",
        "--horizontal-pod-autoscaler-sync-period-ms=1000",
        // The test compares stored keys through the etcd API (admin certificate).
        "--etcd-on-api-port",
    ]));
    // The test-speed node flags; `rkube up` picks the agents' listen addresses.
    let fast_node: Vec<String> = rkube_tests::node_agent::FAST_NODE
        .chunks(2)
        .filter(|kv| kv[0] != "--listen")
        .map(|kv| format!("{}={}", kv[0], kv[1]))
        .collect();
    extra.extend(node_args(&fast_node));
    extra.extend(node_args(&["--eviction-hard="]));
    // The test kills members and a worker and starts them itself.
    extra.extend(["--restart".to_string(), "never".to_string()]);
    let mut up = UpCluster::start(&extra);
    assert!(up
        .output
        .iter()
        .any(|l| l.starts_with("cluster formed, leader n")));
    assert!(up.output.iter().any(|l| l == "node w2 Ready"));
    let client = up.client();
    assert!(up.ctl(&["get", "nodes"]).contains("w1"));
    // The nodes joined by TLS bootstrap: a bootstrapper asked for each one's certificate.
    let csrs = up.ctl(&["get", "csr"]);
    for w in ["w1", "w2"] {
        let line = csrs
            .lines()
            .find(|l| l.starts_with(&format!("node-client-{w}-")))
            .unwrap_or_else(|| panic!("no client certificate request of {w}: {csrs}"));
        assert!(line.contains("system:bootstrap:"), "{line}");
    }

    // The web example: three Ready replicas, all reached through the ClusterIP.
    up.ctl(&["apply", "-f", &example("web.yaml")]);
    let pods = eventually(Duration::from_secs(60), "3 web pods Ready", || async {
        let n = ready_names(&client).await;
        (n.len() == 3).then_some(n)
    })
    .await;
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let (cip, _) = rkube_tests::service_proxy::addrs(&svc, "127.0.0.1".parse().unwrap());
    wait_serving(cip, &pods).await;
    load_balancer(&up, &client, &pods).await;

    // The other examples apply unchanged and work.
    for f in [
        "job.yaml",
        "cronjob.yaml",
        "config-pod.yaml",
        "hpa.yaml",
        "affinity.yaml",
    ] {
        up.ctl(&["apply", "-f", &example(f)]);
    }
    let jobs = Api::<Job>::namespaced(client.clone(), "default");
    eventually(Duration::from_secs(60), "Job count complete", || async {
        let j = jobs.get("count").await.ok()?;
        (j.status?.succeeded? == 3).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "config-reader's output",
        || async {
            let p = Api::<Pod>::namespaced(client.clone(), "default")
                .get("config-reader")
                .await
                .ok()?;
            (p.status?.phase? == "Succeeded").then_some(())
        },
    )
    .await;
    let logs = up.ctl(&["logs", "config-reader"]);
    assert!(
        logs.contains("greeting=hello password=s3cr3t color=blue secret-file=s3cr3t"),
        "{logs}"
    );
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), "default");
    eventually(
        Duration::from_secs(60),
        "the HPA scaling burner up",
        || async {
            let h = hpas.get("burner").await.ok()?;
            let st = h.status?;
            (st.desired_replicas > 1 && st.current_metrics.is_some_and(|m| !m.is_empty()))
                .then_some(())
        },
    )
    .await;
    // The burner takes CPU the rest of the test needs.
    up.ctl(&["delete", "-f", &example("hpa.yaml")]);
    let spread = eventually(Duration::from_secs(60), "spread on both nodes", || async {
        let l = Api::<Pod>::namespaced(client.clone(), "default")
            .list(&ListParams::default().labels("app=spread"))
            .await
            .ok()?
            .items;
        let mut nodes: Vec<String> = l
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .map(node_of)
            .collect();
        nodes.sort();
        (nodes.len() == 2).then_some(nodes)
    })
    .await;
    assert_eq!(
        spread,
        vec!["w1".to_string(), "w2".to_string()],
        "anti-affinity"
    );

    // A rollout while the apiserver leader is killed twice.
    let traffic = Traffic::start(cip, CLIENTS);
    Api::<Deployment>::namespaced(client.clone(), "default")
        .patch(
            "web",
            PatchParams::Merge,
            &json!({"spec": {"template": {"metadata": {"annotations": {"rollout": "2"}}}}}),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let l = leader(&client).await;
        eprintln!("killing leader {l}");
        up.kill(&l);
        tokio::time::sleep(Duration::from_secs(1)).await;
        up.restart_member(&l);
        all_members_up(&up, &client).await;
    }
    let deploys = Api::<Deployment>::namespaced(client.clone(), "default");
    eventually(Duration::from_secs(120), "the rollout complete", || async {
        let d = deploys.get("web").await.ok()?;
        let st = d.status?;
        (d.metadata.generation == st.observed_generation
            && st.updated_replicas == Some(3)
            && st.available_replicas == Some(3)
            && st.replicas == Some(3))
        .then_some(())
    })
    .await;
    let rolled = eventually(Duration::from_secs(60), "3 new pods serving", || async {
        let n = ready_names(&client).await;
        (n.len() == 3 && n.iter().all(|p| !pods.contains(p))).then_some(n)
    })
    .await;
    wait_serving(cip, &rolled).await;
    let (ok, failed) = traffic.stop().await;
    eprintln!("rollout under leader kills: {ok} requests served, {failed} failed");
    assert!(ok > 100, "traffic flowed: {ok}");
    assert!(
        failed <= CLIENTS * 3,
        "{failed} requests failed; at most those in flight on the 3 terminated pods may"
    );

    // A worker dies with its pods: NotReady, evicted, replaced on the other node.
    let web = web_pods(&client).await;
    let victim_node = if web.iter().any(|p| node_of(p) == "w2") {
        "w2"
    } else {
        "w1"
    };
    let survivor = if victim_node == "w2" { "w1" } else { "w2" };
    up.kill_node_and_pods(victim_node);
    let nodes = Api::<Node>::all(client.clone());
    eventually(
        Duration::from_secs(60),
        "the dead node NotReady",
        || async {
            let nd = nodes.get(victim_node).await.ok()?;
            (objects::node_ready(&nd)? != "True").then_some(())
        },
    )
    .await;
    let moved = eventually(
        Duration::from_secs(90),
        "3 web pods Ready on the survivor",
        || async {
            let l = web_pods(&client).await;
            let ready: Vec<String> = l
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && objects::pod_ready(p))
                .filter(|p| node_of(p) == survivor)
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            (ready.len() == 3 && ready_names(&client).await.len() == 3).then_some(ready)
        },
    )
    .await;
    let evicted = web_pods(&client)
        .await
        .into_iter()
        .filter(|p| node_of(p) == victim_node)
        .all(|p| p.metadata.deletion_timestamp.is_some());
    assert!(evicted, "every pod of {victim_node} is being deleted");
    let mut moved = moved;
    moved.sort();
    wait_serving(cip, &moved).await;

    // Every member at once: the workloads keep serving, and everything comes back.
    let objects_before = stored_objects(&up).await;
    let before = up.node_containers(survivor);
    for m in ["n1", "n2", "n3"] {
        up.kill(m);
    }
    for _ in 0..10 {
        let who = get(cip, "/")
            .await
            .expect("serving with the control plane down");
        assert!(moved.contains(&who), "{who} in {moved:?}");
    }
    for m in ["n1", "n2", "n3"] {
        up.restart_member(m);
    }
    all_members_up(&up, &client).await;
    eventually(
        Duration::from_secs(60),
        "the survivor Ready again",
        || async {
            let nd = nodes.get(survivor).await.ok()?;
            (objects::node_ready(&nd)? == "True").then_some(())
        },
    )
    .await;
    assert_eq!(
        ready_names(&client).await,
        moved,
        "the same pods, still Ready"
    );
    assert_eq!(
        up.node_containers(survivor),
        before,
        "no container restarted"
    );
    let objects_after = stored_objects(&up).await;
    let lost: Vec<&String> = objects_before.difference(&objects_after).collect();
    assert!(lost.is_empty(), "objects lost in the restart: {lost:?}");
    let svc2 = Api::<Service>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    assert_eq!(svc2.spec.unwrap().cluster_ip, svc.spec.unwrap().cluster_ip);
    assert!(Api::<ConfigMap>::namespaced(client.clone(), "default")
        .get_opt("app-config")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        jobs.get("count").await.unwrap().status.unwrap().succeeded,
        Some(3)
    );
    wait_serving(cip, &moved).await;

    // The CronJob has run by now (every minute).
    eventually(Duration::from_secs(90), "a Job of the CronJob", || async {
        let l = jobs.list(&ListParams::default()).await.ok()?.items;
        l.iter()
            .any(|j| {
                j.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("tick-"))
            })
            .then_some(())
    })
    .await;
}
