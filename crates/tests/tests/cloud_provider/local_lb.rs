//! The `local` provider's load balancers, for a cluster: an address from the pool, a TCP
//! balancer there forwarding to the nodes' NodePorts, source ranges enforced, balancers
//! served again by a restarted provider, and gone with their Service.

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
