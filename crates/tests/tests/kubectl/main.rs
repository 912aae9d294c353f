//! Stock kubectl (1.27, which speaks SPDY and wants OpenAPI v2, and 1.33, which speaks
//! WebSocket, aggregated discovery and protobuf bodies) and the Python `kubernetes` client
//! against a cluster from `rkube up`, through the kubeconfig context `rkube up` writes.
//! Each command's output is checked; bad input gets a Status and writes nothing.

mod bad_input;
mod crd;
mod python;
mod workloads;

use rkube_tests::kubectl::Kubectl;
use rkube_tests::up::{server_args, UpCluster};

#[test]
fn kubectl_and_clients_against_rkube_up() {
    let mut args = vec!["--nodes".to_string(), "1".to_string()];
    // A small watch cache, so a watch from an early version gets 410 Expired.
    args.extend(server_args(&["--watch-cache-events=100"]));
    let up = UpCluster::start(&args);
    let kubeconfig = up.kubeconfig();
    for minor in ["1.27", "1.33"] {
        let k = Kubectl::new(minor, &kubeconfig);
        let ns = format!("k{}", minor.replace('.', ""));
        k.ok(&["create", "namespace", &ns]);
        workloads::check(&k, &ns);
        crd::check(&k, &ns);
    }
    python::check(&kubeconfig);
    bad_input::check(&kubeconfig);
}
