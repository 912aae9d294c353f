//! The `local` provider's load balancers, for a cluster: an address from the pool, a TCP
//! balancer there forwarding to the nodes' NodePorts, UDP datagrams and their answers
//! carried both ways, source ranges enforced, balancers served again by a restarted
//! provider, and gone with their Service.

use std::path::Path;
use std::time::Duration;

use client::Api;
use k8s_openapi::api::core::v1::{Node, Service};
use rkube_tests::cloud_conformance;
use rkube_tests::fake_kubelet::FakeKubelet;
use rkube_tests::objects::fake_node;
use rkube_tests::{eventually, Cluster, Flavor, FAST_CM_LEASE, FAST_SCHEDULER_LEASE};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POOL: &str = "127.213.0.0/24";

/// A NodePort stand-in: answers every connection on 127.0.0.1:`port` with a line.
async fn backend(port: u16) -> tokio::task::JoinHandle<()> {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let _ = c.write_all(b"hello from the node port\n").await;
        }
    })
}

/// A UDP NodePort stand-in: answers every datagram on 127.0.0.1:`port` with it, prefixed.
async fn udp_backend(port: u16) -> tokio::task::JoinHandle<()> {
    let s = tokio::net::UdpSocket::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = s.recv_from(&mut buf).await {
            let answer = [b"echo: ", &buf[..n]].concat();
            let _ = s.send_to(&answer, peer).await;
        }
    })
}

/// What a UDP client at 127.0.0.1 gets back for `payload` sent to `addr`, if anything.
async fn udp_exchange(addr: &str, payload: &[u8]) -> Option<Vec<u8>> {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    s.send_to(payload, addr).await.ok()?;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_millis(500), s.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(buf[..n].to_vec())
}

/// What a client at 127.0.0.1 reads from `addr`, or why it could not.
async fn read_from(addr: &str) -> String {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await
    else {
        return "refused".into();
    };
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out
}

/// The local provider process: `rkube cloud-provider …` with `inventory` (not the manager,
/// whose arguments name it too).
fn provider_pid(inventory: &Path) -> Option<i32> {
    let inventory = inventory.to_str()?;
    cloud_conformance::find_pid(|args| {
        args.get(1).map(String::as_str) == Some("cloud-provider")
            && args.iter().any(|a| a == inventory)
    })
}

fn lb(name: &str, extra: serde_json::Value) -> Service {
    let mut v = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}});
    if let (Some(spec), Some(more)) = (v["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(more.clone());
    }
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_provider_balances_to_node_ports() {
    let cluster = Cluster::start(
        Flavor::Server,
        1,
        &[FAST_SCHEDULER_LEASE, FAST_CM_LEASE].concat(),
    )
    .await;
    let client = cluster.api_client();
    let on_loopback =
        json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}});
    Api::<Node>::all(client.clone())
        .create(&fake_node("n1", "8", "16Gi", on_loopback))
        .await
        .unwrap();
    let _kubelet = FakeKubelet::start(client.clone(), &["n1"], Duration::from_millis(200));
    let inventory = cluster.dir.path().join("inventory.json");
    std::fs::write(&inventory, r#"{"machines": [{"name": "n1"}]}"#).unwrap();
    let config = cluster.config_for("ccm", "system:cloud-controller-manager", &[]);
    let plugin = cloud_conformance::local_provider_flags(&inventory, &["--lb-pool", POOL]);
    let _ccm = cloud_conformance::start_manager(cluster.dir.path(), "ccm", &config, &plugin, &[]);
    let services = Api::<Service>::namespaced(client.clone(), "default");
    services.create(&lb("web", json!({}))).await.unwrap();
    let web = services.get("web").await.unwrap();
    let node_port = web.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap();
    let _backend = backend(node_port as u16).await;
    let ip = eventually(Duration::from_secs(30), "an address for web", || async {
        cloud_conformance::ingress_ip(&services.get("web").await.ok()?)
    })
    .await;
    assert_eq!(ip, "127.213.0.1", "the first address of the pool");
    let at = format!("{ip}:80");
    assert_eq!(read_from(&at).await, "hello from the node port\n");

    // UDP: datagrams reach the NodePort, and its answers come back from the address.
    let udp = json!({"ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}]});
    services.create(&lb("dns", udp)).await.unwrap();
    let dns = services.get("dns").await.unwrap();
    let dns_port = dns.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap();
    let _udp_backend = udp_backend(dns_port as u16).await;
    let dns_ip = eventually(Duration::from_secs(30), "an address for dns", || async {
        cloud_conformance::ingress_ip(&services.get("dns").await.ok()?)
    })
    .await;
    let dns_at = format!("{dns_ip}:5353");
    let answer = eventually(Duration::from_secs(30), "an answer through dns", || async {
        udp_exchange(&dns_at, b"who is there").await
    })
    .await;
    assert_eq!(answer, b"echo: who is there");

    // Only the source ranges given may connect.
    services
        .create(&lb(
            "private",
            json!({"loadBalancerSourceRanges": ["192.0.2.0/24"]}),
        ))
        .await
        .unwrap();
    let private = services.get("private").await.unwrap();
    let private_port = private.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap();
    let _private_backend = backend(private_port as u16).await;
    let private_ip = eventually(
        Duration::from_secs(30),
        "an address for private",
        || async { cloud_conformance::ingress_ip(&services.get("private").await.ok()?) },
    )
    .await;
    assert_ne!(private_ip, ip);
    assert_eq!(
        read_from(&format!("{private_ip}:80")).await,
        "",
        "a client outside the ranges gets nothing"
    );

    // A restarted provider serves its balancers again, before anyone asks.
    let pid = provider_pid(&inventory).expect("the provider process");
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    eventually(
        Duration::from_secs(30),
        "a new provider serving web again",
        || async {
            let again = provider_pid(&inventory).is_some_and(|p| p != pid);
            (again && read_from(&at).await == "hello from the node port\n").then_some(())
        },
    )
    .await;

    // A Service deleted: its balancer goes, and its address stops answering.
    services.delete("web", None).await.unwrap();
    eventually(Duration::from_secs(30), "web's balancer gone", || async {
        (services.get_opt("web").await.ok()?.is_none() && read_from(&at).await == "refused")
            .then_some(())
    })
    .await;
}

/// A NodePort stand-in on `ip`:`port` that names its node, and a health check stand-in on
/// `ip`:`hc_port` answering 200 or 503 as `healthy` says.
async fn local_node(
    ip: &str,
    port: u16,
    hc_port: u16,
    healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let name = format!("from {ip}\n");
    let l = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
    let serve = tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let _ = c.write_all(name.as_bytes()).await;
        }
    });
    let hc = tokio::net::TcpListener::bind((ip, hc_port)).await.unwrap();
    let check = tokio::spawn(async move {
        while let Ok((mut c, _)) = hc.accept().await {
            let mut req = [0u8; 256];
            let _ = c.read(&mut req).await;
            let status = match healthy.load(std::sync::atomic::Ordering::Relaxed) {
                true => "200 OK",
                false => "503 Service Unavailable",
            };
            let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            let _ = c.write_all(answer.as_bytes()).await;
        }
    });
    vec![serve, check]
}

#[tokio::test(flavor = "multi_thread")]
async fn local_traffic_goes_only_to_nodes_that_pass_the_health_check() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let cluster = Cluster::start(
        Flavor::Server,
        1,
        &[FAST_SCHEDULER_LEASE, FAST_CM_LEASE].concat(),
    )
    .await;
    let client = cluster.api_client();
    let nodes = [("n1", "127.0.0.2"), ("n2", "127.0.0.3")];
    for (name, ip) in nodes {
        let at = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
        Api::<Node>::all(client.clone())
            .create(&fake_node(name, "8", "16Gi", at))
            .await
            .unwrap();
    }
    let _kubelet = FakeKubelet::start(client.clone(), &["n1", "n2"], Duration::from_millis(200));
    let inventory = cluster.dir.path().join("inventory.json");
    std::fs::write(
        &inventory,
        r#"{"machines": [{"name": "n1"}, {"name": "n2"}]}"#,
    )
    .unwrap();
    let config = cluster.config_for("ccm", "system:cloud-controller-manager", &[]);
    let plugin =
        cloud_conformance::local_provider_flags(&inventory, &["--lb-pool", "127.215.0.0/24"]);
    let _ccm = cloud_conformance::start_manager(cluster.dir.path(), "ccm", &config, &plugin, &[]);
    let services = Api::<Service>::namespaced(client.clone(), "default");
    let svc = services
        .create(&lb("local", json!({"externalTrafficPolicy": "Local"})))
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap() as u16;
    let hc_port = spec.health_check_node_port.expect("a health check port") as u16;
    let up = [
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(false)),
    ];
    let mut stand_ins = Vec::new();
    for ((_, ip), healthy) in nodes.iter().zip(&up) {
        stand_ins.extend(local_node(ip, node_port, hc_port, healthy.clone()).await);
    }
    let ip = eventually(Duration::from_secs(30), "an address for local", || async {
        cloud_conformance::ingress_ip(&services.get("local").await.ok()?)
    })
    .await;
    let at = format!("{ip}:80");
    // Ten connections in a row all reach the node that passes the check.
    let only = |want: &'static str| {
        let at = at.clone();
        async move {
            for _ in 0..10 {
                if read_from(&at).await != want {
                    return None;
                }
            }
            Some(())
        }
    };
    eventually(Duration::from_secs(30), "traffic only to n1", || {
        only("from 127.0.0.2\n")
    })
    .await;
    // The endpoint moves to n2: so does the traffic.
    up[0].store(false, Ordering::Relaxed);
    up[1].store(true, Ordering::Relaxed);
    eventually(Duration::from_secs(30), "traffic only to n2", || {
        only("from 127.0.0.3\n")
    })
    .await;
    for t in stand_ins {
        t.abort();
    }
}
