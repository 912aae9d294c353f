//! The node agent on the CRI runtime, driving a real containerd 1.6 (started by the test
//! with its own root, state and socket): the same pod lifecycle scenario as the process
//! runtime, pods on CNI bridge networking with their own IPs, and a clear error for a
//! socket where no runtime answers.

use rkube_tests::containerd::{Containerd, IMAGE};
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::netns::is_root;
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::pod_lifecycle::{create, running, status, wait_pod};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_pod_lifecycle_on_containerd() {
    assert!(is_root(), "containerd needs root");
    let ctd = Containerd::start();
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let eps = cluster.api_access();
    let sock = ctd.socket().to_string_lossy().to_string();
    let node = NodeAgent::start(
        &cluster.node_access("w1"),
        "w1",
        &["--runtime", "cri", "--cri-socket", &sock],
    );
    let n = node.wait_ready(&client).await;
    let info = n.status.unwrap().node_info.unwrap();
    assert!(
        info.container_runtime_version.starts_with("containerd://"),
        "{info:?}"
    );

    // Pods get their own IP from the CNI bridge.
    create(
        &client,
        json!({"metadata": {"name": "net"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": IMAGE,
            "command": ["/bin/sh", "-c", "sleep 3600"]}]}}),
    )
    .await;
    let p = wait_pod(&client, "net", "net running", |p| running(p, "c")).await;
    let ip = status(&p)["podIP"].as_str().unwrap_or_default().to_string();
    assert!(ip.starts_with("10.89."), "pod IP {ip}");
    client::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), "default")
        .delete("net", Some(0))
        .await
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let flags = tmp.path().join("flags");
    std::fs::create_dir_all(&flags).unwrap();
    rkube_tests::pod_lifecycle::run(&client, &eps, "w1", IMAGE, "/mnt", &flags).await;
    drop(node);
    drop(ctd);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_runtime_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nothing.sock");
    let out = std::process::Command::new(rkube_tests::rkube_bin())
        .args([
            "node",
            "--name",
            "w1",
            "--server",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--runtime", "cri", "--cri-socket"])
        .arg(&sock)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("--cri-socket {}: no such socket", sock.display())),
        "{err}"
    );
}
