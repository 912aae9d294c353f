//! The cloud-controller-manager with the built-in `local` provider as its plugin process:
//! nodes registered with `--cloud-provider=external` take no pods until it initializes
//! them; a node whose machine leaves the inventory is deleted and its pods are replaced on
//! another node. And the provider conformance suite, run on the `local` provider and
//! (in `python.rs`) on the example provider written in Python, which also serves a cluster's
//! load balancers and routes. `volumes.rs`: the volume loop with the `local` provider's
//! loop-device volumes on a real node agent.

mod local_lb;
mod python;
mod routes;
mod vip;
mod volumes;

use std::path::Path;
use std::time::Duration;

use client::{Api, ListParams, PatchParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_proto::cloudprovider as cp;
use rkube_tests::cloud_conformance::{self, write, write_inventory, InstancesFixture};
use rkube_tests::component::Component;
use rkube_tests::fake_kubelet::FakeKubelet;
use rkube_tests::objects::fake_node;
use rkube_tests::{eventually, Cluster, Flavor, FAST_CM_LEASE, FAST_SCHEDULER_LEASE};
use serde_json::json;

const UNINITIALIZED: &str = "node.cloudprovider.kubernetes.io/uninitialized";

fn uninitialized_node(name: &str) -> Node {
    fake_node(
        name,
        "8",
        "16Gi",
        json!({"spec": {"taints": [{"key": UNINITIALIZED, "value": "true", "effect": "NoSchedule"}]}}),
    )
}

async fn pods_of(client: &client::Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
}

fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn unschedulable(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_wait_for_the_cloud_and_go_with_their_machines() {
    let cluster = Cluster::start(
        Flavor::Server,
        1,
        &[FAST_SCHEDULER_LEASE, FAST_CM_LEASE].concat(),
    )
    .await;
    let client = cluster.api_client();
    let nodes = Api::<Node>::all(client.clone());
    for n in ["n1", "n2"] {
        nodes.create(&uninitialized_node(n)).await.unwrap();
    }
    let _k1 = FakeKubelet::start(client.clone(), &["n1"], Duration::from_millis(200));
    let k2 = FakeKubelet::start(client.clone(), &["n2"], Duration::from_millis(200));
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&d)
        .await
        .unwrap();
    // Uninitialized nodes take no pods.
    eventually(
        Duration::from_secs(30),
        "the pods found unschedulable",
        || async {
            let pods = pods_of(&client).await;
            (pods.len() == 2
                && pods
                    .iter()
                    .all(|p| unschedulable(p) && node_of(p).is_empty()))
            .then_some(())
        },
    )
    .await;

    let inventory = cluster.dir.path().join("inventory.json");
    write_inventory(
        &inventory,
        &[("n1", "rack-1", "running"), ("n2", "rack-2", "running")],
    );
    let config = cluster.config_for("ccm", "system:cloud-controller-manager", &[]);
    let _ccm = cloud_conformance::start_manager(
        cluster.dir.path(),
        "ccm",
        &config,
        &cloud_conformance::local_provider_flags(&inventory, &[]),
        &["--node-monitor-period-ms", "300"],
    );
    eventually(
        Duration::from_secs(30),
        "both nodes initialized",
        || async {
            let all = nodes.list(&ListParams::default()).await.ok()?.items;
            let done = all.iter().filter(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                let spec = n.spec.clone().unwrap_or_default();
                let labels = n.metadata.labels.clone().unwrap_or_default();
                spec.provider_id.as_deref() == Some(format!("local://{name}").as_str())
                    && labels
                        .get("topology.kubernetes.io/region")
                        .map(String::as_str)
                        == Some("home")
                    && labels
                        .get("topology.kubernetes.io/zone")
                        .is_some_and(|z| z.starts_with("rack-"))
                    && labels
                        .get("node.kubernetes.io/instance-type")
                        .map(String::as_str)
                        == Some("local")
                    && !spec.taints.iter().flatten().any(|t| t.key == UNINITIALIZED)
            });
            (done.count() == 2).then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the pods scheduled once the nodes are",
        || async {
            let pods = pods_of(&client).await;
            (pods.len() == 2 && pods.iter().all(|p| !node_of(p).is_empty())).then_some(())
        },
    )
    .await;

    // n2's machine is removed, and n2 stops reporting: it is deleted, and the pods that
    // ran there are replaced on n1.
    write_inventory(&inventory, &[("n1", "rack-1", "running")]);
    drop(k2);
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False",
        "reason": "KubeletStopped", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}});
    nodes
        .patch_status("n2", PatchParams::Strategic, &not_ready)
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "n2 deleted", || async {
        nodes.get_opt("n2").await.ok()?.is_none().then_some(())
    })
    .await;
    let n1 = nodes.get("n1").await.unwrap();
    assert!(
        n1.metadata.deletion_timestamp.is_none(),
        "n1's machine is still there"
    );
    eventually(
        Duration::from_secs(30),
        "two web pods running on n1",
        || async {
            let pods = pods_of(&client).await;
            let running = pods.iter().filter(|p| {
                node_of(p) == "n1"
                    && p.metadata.deletion_timestamp.is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            });
            (running.count() == 2 && pods.iter().all(|p| node_of(p) != "n2")).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_provider_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.yaml");
    write_inventory(
        &inventory,
        &[("m1", "a", "running"), ("m2", "b", "shutdown")],
    );
    let socket = dir.path().join("provider.sock");
    let mut provider = Component::start(
        dir.path(),
        "local-provider",
        &[
            "cloud-provider",
            "local",
            "--socket",
            socket.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
            "--lb-pool",
            "127.214.0.0/24",
            "--route-state",
            dir.path().join("routes.json").to_str().unwrap(),
            "--volume-pool",
            dir.path().join("volumes").to_str().unwrap(),
        ],
    );
    eventually(Duration::from_secs(30), "the provider's socket", || async {
        socket.exists().then_some(())
    })
    .await;
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(
        mode & 0o077,
        0,
        "only its owner may open the socket: {mode:o}"
    );
    let p = cloud_conformance::identity(
        &socket,
        &[
            cp::Capability::Instances,
            cp::Capability::LoadBalancer,
            cp::Capability::Routes,
            cp::Capability::Volumes,
        ],
    )
    .await;
    assert_eq!(p.name(), "local");
    cloud_conformance::instances(
        &p,
        &InstancesFixture {
            running: "m1",
            shutdown: "m2",
            gone: "m3",
        },
    )
    .await;
    cloud_conformance::load_balancer(&p).await;
    cloud_conformance::routes_suite(&p).await;
    cloud_conformance::volumes_suite(
        &p,
        &cloud_conformance::VolumesFixture {
            node: "m1",
            provider_id: "local://m1",
            parameters: &[("type", "directory")],
        },
    )
    .await;
    provider.stop(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_runs_the_cloud_controller_manager_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.json");
    write_inventory(&inventory, &[("n1", "rack-1", "running")]);
    let plugin = cloud_conformance::local_provider_flags(&inventory, &[]);
    let plugin: Vec<&str> = plugin.iter().map(String::as_str).collect();
    let args = [FAST_SCHEDULER_LEASE, FAST_CM_LEASE, &plugin[..]].concat();
    let cluster = Cluster::start(Flavor::Server, 1, &args).await;
    let nodes = Api::<Node>::all(cluster.api_client());
    nodes.create(&uninitialized_node("n1")).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "n1 initialized in-process",
        || async {
            let n = nodes.get("n1").await.ok()?;
            let spec = n.spec.unwrap_or_default();
            let tainted = spec.taints.iter().flatten().any(|t| t.key == UNINITIALIZED);
            (spec.provider_id.as_deref() == Some("local://n1") && !tainted).then_some(())
        },
    )
    .await;
}

/// The address a provider started with `--listen 127.0.0.1:0` logged.
async fn logged_address(log: &Path) -> String {
    eventually(
        Duration::from_secs(30),
        "the provider's address in its log",
        || async {
            let text = std::fs::read_to_string(log).ok()?;
            let at = text.find("local cloud provider serving on ")?;
            let rest = &text[at + "local cloud provider serving on ".len()..];
            Some(rest.split_whitespace().next()?.to_string())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tcp_the_local_provider_answers_only_the_cloud_controller_manager() {
    use controllers::cloud::plugin::{Address, CallPolicy, Plugin, PluginError};
    let cluster = Cluster::start(
        Flavor::Server,
        1,
        &[FAST_SCHEDULER_LEASE, FAST_CM_LEASE].concat(),
    )
    .await;
    let dir = cluster.dir.path();
    let pki = &cluster.pki;
    let inventory = dir.join("inventory.json");
    write_inventory(
        &inventory,
        &[("n1", "rack-1", "running"), ("n2", "rack-2", "shutdown")],
    );
    let serving = pki.issue("local-provider", &[], pki::Usage::Server, &["127.0.0.1"]);
    let cert = write(dir, "provider.crt", &serving.cert_pem);
    let key = write(dir, "provider.key", &serving.key_pem);
    let _provider = Component::start(
        dir,
        "provider",
        &[
            "cloud-provider",
            "local",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-private-key-file",
            key.to_str().unwrap(),
            "--client-ca-file",
            pki.ca_file.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
        ],
    );
    let url = format!(
        "https://{}",
        logged_address(&dir.join("provider.log")).await
    );
    let ca = pki.ca.cert_pem().to_string();
    let once = CallPolicy {
        attempts: 1,
        ..Default::default()
    };
    let code = |r: Result<Plugin, PluginError>| match r {
        Ok(_) => "answered".to_string(),
        Err(PluginError::Call { status, .. }) => format!("{:?}", status.code()),
        Err(e) => e.to_string(),
    };
    // Another user of the cluster CA: connected, and refused.
    let eve = pki.issue("eve", &["system:masters"], pki::Usage::Client, &[]);
    let as_eve = Address::tcp(&url, &ca, &eve.cert_pem, &eve.key_pem).unwrap();
    assert_eq!(
        code(Plugin::connect(&as_eve, once).await),
        "PermissionDenied"
    );
    // The manager's name on a certificate of another CA: no connection.
    let foreign = rkube_tests::pki::TestPki::new(&dir.join("foreign"));
    let forged = foreign.issue(
        "system:cloud-controller-manager",
        &[],
        pki::Usage::Client,
        &[],
    );
    let as_forger = Address::tcp(&url, &ca, &forged.cert_pem, &forged.key_pem).unwrap();
    assert_ne!(code(Plugin::connect(&as_forger, once).await), "answered");
    // No certificate at all: no connection.
    let anonymous = Address::Tcp {
        url: url.clone(),
        tls: tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
            .domain_name("127.0.0.1"),
    };
    assert_ne!(code(Plugin::connect(&anonymous, once).await), "answered");
    // The cloud-controller-manager: the suite passes, and it initializes a node over TCP.
    let ccm = pki.issue(
        "system:cloud-controller-manager",
        &[],
        pki::Usage::Client,
        &[],
    );
    let as_ccm = Address::tcp(&url, &ca, &ccm.cert_pem, &ccm.key_pem).unwrap();
    let p = cloud_conformance::identity_at(&as_ccm, &[cp::Capability::Instances]).await;
    let fixture = InstancesFixture {
        running: "n1",
        shutdown: "n2",
        gone: "n3",
    };
    cloud_conformance::instances(&p, &fixture).await;
    let config = cluster.config_for("ccm", "system:cloud-controller-manager", &[]);
    let cert_dir = dir.join("ccm-certs");
    let (_ccm, metrics_at) = rkube_tests::component::start_with_secure_port(
        dir,
        "ccm",
        &[
            "cloud-controller-manager",
            "--config",
            config.to_str().unwrap(),
            "--cloud-plugin",
            &url,
            "--leader-elect=false",
            "--cert-dir",
            cert_dir.to_str().unwrap(),
        ],
    )
    .await;
    let nodes = Api::<Node>::all(cluster.api_client());
    nodes.create(&uninitialized_node("n1")).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "n1 initialized over TCP",
        || async {
            let spec = nodes.get("n1").await.ok()?.spec.unwrap_or_default();
            (spec.provider_id.as_deref() == Some("local://n1")).then_some(())
        },
    )
    .await;
    // Its secure port: the cloud loops' metrics for a monitoring caller, 403 for another.
    let served = std::fs::read_to_string(cert_dir.join("cloud-controller-manager.crt")).unwrap();
    let monitor = pki.issue(
        "prometheus",
        &["system:monitoring"],
        pki::Usage::Client,
        &[],
    );
    let get = |who: pki::Issued| {
        let served = served.clone();
        async move {
            let tls = pki::client_config(&served, Some((&who.cert_pem, &who.key_pem))).unwrap();
            pki::https_get(metrics_at, "/metrics", tls)
                .await
                .unwrap_or_default()
        }
    };
    let m = get(monitor).await;
    assert!(
        m.starts_with("HTTP/1.1 200") && m.contains("controller=\"cloud-node\""),
        "{m}"
    );
    let denied = get(pki.issue("eve", &[], pki::Usage::Client, &[])).await;
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
}
