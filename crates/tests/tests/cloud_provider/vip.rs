//! Load balancer addresses held by nodes (`--lb-announce nodes`), across three machines
//! (network namespaces on a bridge): a LoadBalancer Service's address is held by one
//! machine, whose node agent adds it to its interface and balances to the nodes'
//! NodePorts; when that machine leaves the network and its node stops reporting, another
//! machine takes the address over, announces it with gratuitous ARP, and requests from
//! the host reach the Service again. Deleting the Service releases the address.

use std::time::{Duration, Instant};

use client::Api;
use k8s_openapi::api::core::v1::Service;
use rkube_tests::fake_kubelet::FakeKubelet;
use rkube_tests::machines::Machines;
use rkube_tests::{cloud_conformance, eventually};
use serde_json::json;

use rkube_tests::local_cloud::LocalCloud;

/// An HTTP GET from the host: the status code, or why it failed.
async fn get(url: &str) -> Option<u16> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let script = format!(
            "import urllib.request; print(urllib.request.urlopen('{url}', timeout=1).status)"
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_balancer_address_moves_to_another_machine_when_its_machine_dies() {
    let mut machines = Machines::new(3);
    let grace = ["--node-monitor-grace-period-ms", "2000"];
    let cloud = LocalCloud::with_node_balancers(&mut machines, &grace).await;
    let client = cloud.cluster.api_client();
    let dir = cloud.cluster.dir.path().to_path_buf();
    let mut kubelets: Vec<Option<FakeKubelet>> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| {
            Some(FakeKubelet::start(
                client.clone(),
                &[n],
                Duration::from_millis(200),
            ))
        })
        .collect();

    let services = Api::<Service>::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}}))
    .unwrap();
    services.create(&svc).await.unwrap();
    let vip = eventually(Duration::from_secs(30), "an address for web", || async {
        cloud_conformance::ingress_ip(&services.get("web").await.ok()?)
    })
    .await;
    // A NodePort stand-in on every machine.
    let web = services.get("web").await.unwrap();
    let node_port = web.spec.unwrap().ports.unwrap()[0]
        .node_port
        .unwrap()
        .to_string();
    let python = std::path::PathBuf::from("python3");
    for i in 0..3 {
        let (netns, name) = (
            machines.machines[i].netns.clone(),
            format!("nodeport-m{}", i + 1),
        );
        let args = ["-m", "http.server", &node_port, "--bind", "0.0.0.0"];
        machines.spawn(&netns, &dir, &name, &python, &args);
    }
    let url = format!("http://{vip}/");
    eventually(
        Duration::from_secs(30),
        "the host reaching web at its address",
        || async { (get(&url).await == Some(200)).then_some(()) },
    )
    .await;
    let held = machines.holding(&vip);
    assert_eq!(held.len(), 1, "one machine holds the address: {held:?}");
    let first = held[0];

    // The holder's machine leaves the network, and its node stops reporting.
    let killed = Instant::now();
    Machines::exec(
        &machines.machines[first].netns,
        &["ip", "link", "set", "eth0", "down"],
    )
    .unwrap();
    kubelets[first] = None;
    eventually(
        Duration::from_secs(60),
        "web reachable again through another machine",
        || async { (get(&url).await == Some(200)).then_some(()) },
    )
    .await;
    eprintln!(
        "load balancer address moved; requests resumed {:?} after the machine left",
        killed.elapsed()
    );
    // The machine that left still has the address, cut off as it is; one other has it.
    let others: Vec<usize> = machines
        .holding(&vip)
        .into_iter()
        .filter(|h| *h != first)
        .collect();
    assert_eq!(others.len(), 1, "one other machine holds {vip}: {others:?}");

    // Deleting the Service releases the address.
    services.delete("web", None).await.unwrap();
    eventually(Duration::from_secs(30), "the address released", || async {
        machines
            .holding(&vip)
            .iter()
            .all(|h| *h == first)
            .then_some(())
    })
    .await;
}
