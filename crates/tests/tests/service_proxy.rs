//! Services end to end on a real node agent, in both proxy modes: the same scenario
//! (src/service_proxy.rs) through the userspace proxy and through nftables.

use rkube_tests::net::host_ip;
use rkube_tests::netns::is_root;
use rkube_tests::service_proxy::{run, start};

const ECHO: &str = env!("CARGO_BIN_EXE_http-echo");

#[tokio::test(flavor = "multi_thread")]
async fn services_through_the_userspace_proxy() {
    assert!(
        is_root(),
        "pod networks and ClusterIPs on a dummy interface need root"
    );
    let s = start("userspace", "proxy-us", 0).await;
    // The proxy retries a refused connect on another endpoint, so even pods that stop
    // accepting at SIGTERM lose no request.
    run(&s, ECHO, "127.0.0.1".parse().unwrap(), 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn services_through_nftables() {
    assert!(is_root(), "nftables needs root");
    let s = start("nftables", "proxy-nft", 1).await;
    // nftables NodePorts are not served on 127.0.0.0/8 (as kube-proxy's nftables mode).
    // The kernel cannot retry a refused connection: as Kubernetes advises, the pods keep
    // accepting for a moment after SIGTERM, while their removal reaches the rules.
    run(&s, ECHO, host_ip(), 1000).await;
}
