//! The Service scenario both proxy modes must pass, end to end with real processes: a
//! 3-replica Deployment of `http-echo` on a node agent with pod networking, and a
//! NodePort Service (TCP and UDP) in front of it.
//!
//! Traffic through the ClusterIP and the NodePort reaches all three pods; UDP works; the
//! pods see the Service variables; session affinity holds; a pod deleted while traffic
//! flows fails no request beyond those in flight on it, and established connections
//! survive the endpoint change; scaled to zero, the Service refuses connections.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use client::{Api, Client, PatchParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::json;

use crate::eventually;
use crate::net::{get, udp_query, KeepAlive};
use crate::node_agent::NodeAgent;

/// Client tasks sending requests while a pod is deleted.
const CLIENTS: usize = 4;

/// A cluster with one node agent running the service proxy in `mode`.
pub struct Setup {
    pub cluster: crate::Cluster,
    pub client: Client,
    pub node: NodeAgent,
    _fake: crate::fake_kubelet::FakeKubelet,
}

/// `n` picks this test's own pod and Service ranges, NodePorts and bridge; `loopback` puts
/// the ClusterIPs in 127.0.0.0/8. Their own NodePorts keep tests running side by side
/// from listening on each other's ports on this one host.
pub async fn start(mode: &str, node: &str, n: u32, loopback: bool) -> Setup {
    let pod_cidr = format!("10.{}.0.0/16", 100 + n);
    let node_ports = format!("{}-{}", 30000 + 200 * n, 30199 + 200 * n);
    let svc_cidr = if loopback {
        format!("127.{}.0.0/24", 180 + n)
    } else {
        format!("10.{}.0.0/24", 180 + n)
    };
    let bridge = format!("rks{n}x{}", std::process::id() % 10_000);
    let (cluster, client, fake) = crate::fake_kubelet::cluster_with_nodes_and(
        1,
        &[],
        &[
            "--cluster-cidr",
            &pod_cidr,
            "--service-cluster-ip-range",
            &svc_cidr,
            "--service-node-port-range",
            &node_ports,
        ],
    )
    .await;
    let node = NodeAgent::start(
        &cluster.node_access(node),
        node,
        &[
            "--pod-network",
            "cni",
            "--cni-bridge",
            &bridge,
            "--proxy-mode",
            mode,
        ],
    );
    node.wait_ready(&client).await;
    Setup {
        cluster,
        client,
        node,
        _fake: fake,
    }
}

/// The Service and Deployment: `replicas` pods of `echo` answering with their names.
pub async fn deploy(client: &Client, echo: &str, drain_ms: u64, replicas: i32) -> Service {
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "dns", "port": 80, "targetPort": 8080, "protocol": "UDP"}]}}))
    .unwrap();
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .create(&svc)
        .await
        .expect("create the Service");
    let dep: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 10, "containers": [{"name": "echo", "image": "busybox",
                    "command": [echo, "0.0.0.0:8080", drain_ms.to_string()],
                    "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}]}}}}))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&dep)
        .await
        .expect("create the Deployment");
    svc
}

pub fn addrs(svc: &Service, node_ip: IpAddr) -> (SocketAddr, SocketAddr) {
    let spec = svc.spec.as_ref().unwrap();
    let ip: IpAddr = spec.cluster_ip.as_ref().unwrap().parse().unwrap();
    let np = spec.ports.as_ref().unwrap()[0].node_port.unwrap() as u16;
    (SocketAddr::new(ip, 80), SocketAddr::new(node_ip, np))
}

/// The names of the Ready, not deleted pods labelled app=web, sorted.
pub async fn ready_names(client: &Client) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let mut out: Vec<String> = pods
        .list(&client::ListParams::default().labels("app=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && crate::objects::pod_ready(p))
        .filter_map(|p| p.metadata.name)
        .collect();
    out.sort();
    out
}

/// Waits until requests through `addr` have reached exactly the `want` pods.
pub async fn wait_serving(addr: SocketAddr, want: &[String]) {
    eventually(
        Duration::from_secs(60),
        &format!("{addr} reaching {want:?}"),
        || async {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..(want.len() * 8) {
                seen.insert(get(addr, "/").await.ok()?);
            }
            (seen.iter().eq(want.iter())).then_some(())
        },
    )
    .await
}

/// Requests per pod out of `n` sent to `addr`, each on a new connection.
async fn spread(addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let who = get(addr, "/").await.expect("a request through the Service");
        *counts.entry(who).or_insert(0) += 1;
    }
    counts
}

fn assert_spread(what: &str, counts: &BTreeMap<String, usize>, pods: &[String]) {
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        pods.iter().collect::<Vec<_>>(),
        "{what}: {counts:?}"
    );
    // 90 requests: a fair spread gives each pod about 30.
    assert!(
        counts.values().all(|c| *c >= 10),
        "{what}: uneven {counts:?}"
    );
}

/// `drain_ms`: how long the pods keep accepting after SIGTERM.
pub async fn run(s: &Setup, echo: &str, node_ip: IpAddr, drain_ms: u64) {
    let client = &s.client;
    let svc = deploy(client, echo, drain_ms, 3).await;
    let (cip, nodeport) = addrs(&svc, node_ip);
    let pods = eventually(Duration::from_secs(60), "3 web pods Ready", || async {
        let n = ready_names(client).await;
        (n.len() == 3).then_some(n)
    })
    .await;
    wait_serving(cip, &pods).await;
    assert_spread("ClusterIP", &spread(cip, 90).await, &pods);
    wait_serving(nodeport, &pods).await;
    assert_spread("NodePort", &spread(nodeport, 90).await, &pods);

    // UDP through the ClusterIP, from several client sockets.
    for _ in 0..6 {
        let who = udp_query(cip)
            .await
            .expect("a UDP answer through the ClusterIP");
        assert!(pods.contains(&who), "{who} in {pods:?}");
    }

    // Service discovery variables, as a pod sees them.
    let ip = cip.ip().to_string();
    assert_eq!(get(cip, "/env/WEB_SERVICE_HOST").await.unwrap(), ip);
    assert_eq!(get(cip, "/env/WEB_SERVICE_PORT").await.unwrap(), "80");
    assert_eq!(get(cip, "/env/WEB_SERVICE_PORT_HTTP").await.unwrap(), "80");
    assert_eq!(
        get(cip, "/env/WEB_PORT_80_UDP").await.unwrap(),
        format!("udp://{ip}:80")
    );

    // Session affinity: once the proxy has it, every request from this host lands on the
    // same pod.
    let svcs = Api::<Service>::namespaced(client.clone(), "default");
    let affinity =
        |on: bool| json!({"spec": {"sessionAffinity": if on { "ClientIP" } else { "None" }}});
    svcs.patch("web", PatchParams::Merge, &affinity(true))
        .await
        .unwrap();
    let sticky = eventually(Duration::from_secs(30), "affinity in effect", || async {
        let c = spread(cip, 10).await;
        (c.len() == 1).then(|| c.into_keys().next().unwrap())
    })
    .await;
    let c = spread(cip, 40).await;
    assert_eq!(
        c.keys().collect::<Vec<_>>(),
        vec![&sticky],
        "affinity broke: {c:?}"
    );
    svcs.patch("web", PatchParams::Merge, &affinity(false))
        .await
        .unwrap();
    wait_serving(cip, &pods).await;

    // A pod deleted under traffic. An established connection to another pod outlives the
    // endpoint change.
    let mut kept = KeepAlive::connect(cip).await.unwrap();
    let kept_pod = kept.get("/").await.unwrap();
    let victim = pods.iter().find(|p| **p != kept_pod).unwrap().clone();
    let traffic = crate::net::Traffic::start(cip, CLIENTS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Api::<Pod>::namespaced(client.clone(), "default")
        .delete(&victim, None)
        .await
        .unwrap();
    let now = eventually(
        Duration::from_secs(60),
        "a replacement pod Ready",
        || async {
            let n = ready_names(client).await;
            (n.len() == 3 && !n.contains(&victim)).then_some(n)
        },
    )
    .await;
    wait_serving(cip, &now).await;
    let (ok, failed) = traffic.stop().await;
    eprintln!("while {victim} went: {ok} requests served, {failed} failed");
    assert!(ok > 50, "traffic flowed: {ok}");
    assert!(
        failed <= CLIENTS,
        "{failed} requests failed; at most the {CLIENTS} in flight on the deleted pod may"
    );
    assert_eq!(
        kept.get("/").await.unwrap(),
        kept_pod,
        "the established connection survives"
    );
    drop(kept);

    let hc = local_load_balancer(&svcs, node_ip).await;

    // Scaled to zero: connections are refused, through the ClusterIP and the NodePort,
    // and the health check fails.
    Api::<Deployment>::namespaced(client.clone(), "default")
        .patch("web", PatchParams::Merge, &json!({"spec": {"replicas": 0}}))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "a failing health check",
        || async { health_check(hc).await.filter(|(status, _)| *status == 503) },
    )
    .await;
    for addr in [cip, nodeport] {
        eventually(
            Duration::from_secs(60),
            &format!("{addr} refusing"),
            || async {
                match tokio::net::TcpStream::connect(addr).await {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
                    _ => None,
                }
            },
        )
        .await;
    }
}

/// Makes `web` a Local LoadBalancer: the node answers its health check port with its
/// three endpoints. Returns the health check port's address.
async fn local_load_balancer(svcs: &Api<Service>, node_ip: IpAddr) -> SocketAddr {
    let local = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}});
    let lb = svcs.patch("web", PatchParams::Merge, &local).await.unwrap();
    let hc_port = lb
        .spec
        .and_then(|s| s.health_check_node_port)
        .expect("a health check port");
    let hc = SocketAddr::new(node_ip, u16::try_from(hc_port).unwrap());
    let healthy = eventually(
        Duration::from_secs(30),
        "a passing health check",
        || async { health_check(hc).await.filter(|(status, _)| *status == 200) },
    )
    .await;
    assert!(healthy.1.contains(r#""localEndpoints":3"#), "{healthy:?}");
    hc
}

/// `GET /healthz` on a health check node port: the status and the body.
async fn health_check(addr: SocketAddr) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}
