//! Two `rkube controller-manager` processes on one Lease: kill -9 the active one in the
//! middle of a rollout; the standby takes over and the rollout finishes with no extra pods.
//! And a controller-manager's secure port: /metrics only for callers the apiserver authorizes.

use std::net::SocketAddr;
use std::time::Duration;

use client::{Api, Client, ListParams, PatchParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_tests::component::Component;
use rkube_tests::fake_kubelet::FakeKubelet;
use rkube_tests::objects::{fake_node, wait_rolled_out};
use rkube_tests::{eventually, Cluster, Flavor, FAST_CM_LEASE};
use serde_json::json;

async fn pods_of(client: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_finishes_the_rollout_without_extra_pods() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let client = cluster.api_client();
    for n in ["w1", "w2", "w3"] {
        Api::<Node>::all(client.clone())
            .create(&fake_node(n, "32", "64Gi", json!({})))
            .await
            .unwrap();
    }
    let _kubelet = FakeKubelet::start(
        client.clone(),
        &["w1", "w2", "w3"],
        Duration::from_millis(500),
    );
    let endpoints = cluster.api_access();
    let _scheduler = Component::start(
        cluster.dir.path(),
        "scheduler",
        &["scheduler", "--config", &endpoints, "--leader-elect=false"],
    );
    let mut managers: Vec<Component> = ["cm0", "cm1"]
        .iter()
        .map(|id| {
            // Two managers on one host: the secure port (10257) is left to the test below.
            let mut args = vec![
                "controller-manager",
                "--config",
                &endpoints,
                "--cm-leader-elect-identity",
                id,
                "--secure-port",
                "0",
            ];
            args.extend_from_slice(FAST_CM_LEASE);
            Component::start(cluster.dir.path(), id, &args)
        })
        .collect();
    let deploys = Api::<Deployment>::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}))
    .unwrap();
    deploys.create(&d).await.unwrap();
    wait_rolled_out(&client, "web", "web:1", 10).await;
    deploys
        .patch(
            "web",
            PatchParams::Strategic,
            &json!({"spec": {"template": {"spec": {
            "containers": [{"name": "web", "image": "web:2"}]}}}}),
        )
        .await
        .unwrap();
    // Mid-rollout: some new pods exist, not all.
    eventually(Duration::from_secs(30), "the rollout under way", || async {
        let n = pods_of(&client)
            .await
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("web:2"))
            .count();
        (n >= 1).then_some(())
    })
    .await;
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-system");
    let holder = leases
        .get("kube-controller-manager")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let i = managers
        .iter()
        .position(|m| m.name == holder)
        .expect("a known holder");
    managers[i].kill();
    wait_rolled_out(&client, "web", "web:2", 10).await;
    let after = leases.get("kube-controller-manager").await.unwrap();
    assert_ne!(after.spec.unwrap().holder_identity.unwrap(), holder);
    // Never more than replicas + maxSurge pods at once is not observable afterwards, but
    // the end state is exact: 10 pods, no leftovers, two ReplicaSets.
    assert_eq!(pods_of(&client).await.len(), 10);
}

/// What the secure port answered for one caller: the HTTP status line, or why the TLS
/// handshake failed.
async fn secure_get(
    addr: SocketAddr,
    path: &str,
    server_cert: &str,
    who: Option<&pki::Issued>,
) -> String {
    let identity = who.map(|i| (i.cert_pem.as_str(), i.key_pem.as_str()));
    let tls = pki::client_config(server_cert, identity).unwrap();
    match pki::https_get(addr, path, tls).await {
        Ok(r) if r.is_empty() => "no response".into(),
        Ok(r) => r,
        Err(e) => format!("refused: {e}"),
    }
}

/// The controller-manager's /metrics is read only by callers the apiserver authorizes;
/// each attack below is turned away, and the health paths stay open.
#[tokio::test(flavor = "multi_thread")]
async fn the_secure_port_serves_metrics_only_to_authorized_callers() {
    let cluster = Cluster::start(Flavor::Apiserver, 1, &[]).await;
    let config = cluster.config_for("cm", "system:kube-controller-manager", &[]);
    let cert_dir = cluster.dir.path().join("cm-certs");
    let (_cm, addr) = rkube_tests::component::start_with_secure_port(
        cluster.dir.path(),
        "cm-secure",
        &[
            "controller-manager",
            "--config",
            config.to_str().unwrap(),
            "--cert-dir",
            cert_dir.to_str().unwrap(),
            "--cm-leader-elect=false",
        ],
    )
    .await;
    let served = std::fs::read_to_string(cert_dir.join("kube-controller-manager.crt")).unwrap();
    let pki = &cluster.pki;
    let monitor = pki.issue(
        "prometheus",
        &["system:monitoring"],
        pki::Usage::Client,
        &[],
    );
    let nobody = pki.issue("eve", &[], pki::Usage::Client, &[]);
    let foreign_dir = cluster.dir.path().join("foreign");
    let foreign = rkube_tests::pki::TestPki::new(&foreign_dir);
    let forged = foreign.issue("prometheus", &["system:masters"], pki::Usage::Client, &[]);

    // An authorized caller reads the controllers' metrics, once they have reconciled.
    let ok = secure_get(addr, "/metrics", &served, Some(&monitor)).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    eventually(
        Duration::from_secs(30),
        "the reconcile counts on /metrics",
        || async {
            let r = secure_get(addr, "/metrics", &served, Some(&monitor)).await;
            r.contains("controller_runtime_reconcile_total{")
                .then_some(())
        },
    )
    .await;
    // No certificate: the health paths answer, /metrics does not.
    let anon = secure_get(addr, "/metrics", &served, None).await;
    assert!(anon.starts_with("HTTP/1.1 401"), "{anon}");
    assert!(!anon.contains("controller_runtime"), "{anon}");
    let health = secure_get(addr, "/healthz", &served, None).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // A user the apiserver does not let read /metrics.
    let denied = secure_get(addr, "/metrics", &served, Some(&nobody)).await;
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(!denied.contains("controller_runtime"), "{denied}");
    // A certificate from another CA, naming an administrator: no connection at all.
    let forged = secure_get(addr, "/metrics", &served, Some(&forged)).await;
    assert!(!forged.contains("HTTP/1.1"), "{forged}");
    // Only GET.
    let tls = pki::client_config(&served, Some((&monitor.cert_pem, &monitor.key_pem))).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut s = tokio_rustls::TlsConnector::from(tls)
        .connect(
            rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
            tcp,
        )
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 405"));
}
