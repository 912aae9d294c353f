//! Services end to end on a real node agent, in both proxy modes: the same scenario
//! (src/service_proxy.rs) through the userspace proxy (ClusterIPs made local on an
//! interface, and ClusterIPs from 127.0.0.0/8) and through nftables. A proxy stopped with
//! SIGTERM leaves nothing behind.

use rkube_tests::net::host_ip;
use rkube_tests::netns::is_root;
use rkube_tests::service_proxy::{run, start};

const ECHO: &str = env!("CARGO_BIN_EXE_http-echo");

/// The addresses on `lo` under the label of `node`'s proxy.
fn lo_addrs(node: &str) -> usize {
    let label = format!("lo:{}", node::proxy::addrs::interface_name(node));
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", "lo", "label", &label])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn link_exists(name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", name])
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn services_through_the_userspace_proxy() {
    assert!(
        is_root(),
        "pod networks and ClusterIPs on an interface need root"
    );
    let mut s = start("userspace", "proxy-us", 0, false).await;
    // The proxy retries a refused connect on another endpoint, so even pods that stop
    // accepting at SIGTERM lose no request.
    run(&s, ECHO, "127.0.0.1".parse().unwrap(), 0).await;
    let link = node::proxy::addrs::interface_name("proxy-us");
    // The ClusterIPs of web, kubernetes and kube-dns.
    assert!(
        lo_addrs("proxy-us") == 3 || link_exists(&link),
        "the ClusterIPs are on an interface of the proxy's own"
    );
    s.node.stop();
    assert_eq!(lo_addrs("proxy-us"), 0, "ClusterIPs left on lo");
    assert!(!link_exists(&link), "{link} left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn services_through_the_userspace_proxy_on_loopback_cluster_ips() {
    assert!(is_root(), "pod networks need root");
    let s = start("userspace", "proxy-lo", 2, true).await;
    run(&s, ECHO, "127.0.0.1".parse().unwrap(), 0).await;
    assert_eq!(lo_addrs("proxy-lo"), 0, "127.0.0.0/8 needs no address");
}

#[tokio::test(flavor = "multi_thread")]
async fn services_through_nftables() {
    assert!(is_root(), "nftables needs root");
    let mut s = start("nftables", "proxy-nft", 1, false).await;
    // The kernel cannot retry a refused connection: as Kubernetes advises, the pods keep
    // accepting for a moment after SIGTERM, while their removal reaches the rules.
    // NodePorts are not served on 127.0.0.0/8 (as kube-proxy's nftables mode).
    run(&s, ECHO, host_ip(), 1000).await;
    let table = node::proxy::nftables::table_name("proxy-nft");
    let listed = |t: &str| {
        std::process::Command::new("nft")
            .args(["list", "table", "ip", t])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(listed(&table), "the proxy's table {table}");
    s.node.stop();
    assert!(!listed(&table), "{table} left behind");
}
