//! The `kubernetes` Service lists the live members: a member that stops leaves it at once
//! (its lease goes with it), one that is killed leaves when its lease expires, and one
//! that comes back is listed again. `kube-dns` is there for the nodes' DNS servers. Only
//! the apiserver may write the members' leases.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use client::{Api, Client, ClientConfig};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_tests::{eventually, Cluster, Flavor};
use serde_json::json;

/// The member addresses the `kubernetes` EndpointSlices list.
async fn listed(slices: &Api<EndpointSlice>) -> Option<BTreeSet<SocketAddr>> {
    let list = slices
        .list(&client::ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await
        .ok()?;
    let mut out = BTreeSet::new();
    for s in list.items {
        let port = s.ports.as_ref()?.first()?.port?;
        for e in s.endpoints.iter().flatten() {
            for a in &e.addresses {
                out.insert(format!("{a}:{port}").parse().ok()?);
            }
        }
    }
    Some(out)
}

async fn wait_listed(slices: &Api<EndpointSlice>, want: &BTreeSet<SocketAddr>, what: &str) {
    eventually(Duration::from_secs(30), what, || async {
        listed(slices).await.filter(|got| got == want)
    })
    .await;
}

fn stop(cluster: &Cluster, i: usize) {
    let pid = cluster.pid(i).expect("the member runs");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kubernetes_service_lists_the_live_members() {
    let mut cluster =
        Cluster::start(Flavor::Apiserver, 3, &["--endpoint-lease-ttl-seconds", "3"]).await;
    let client = cluster.api_client();
    let services = Api::<Service>::namespaced(client.clone(), "default");
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default");
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-system");

    let svc = eventually(
        Duration::from_secs(30),
        "the kubernetes Service",
        || async { services.get_opt("kubernetes").await.ok().flatten() },
    )
    .await;
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 443);
    assert!(spec.selector.is_none());
    let dns = Api::<Service>::namespaced(client.clone(), "kube-system")
        .get("kube-dns")
        .await
        .expect("kube-dns");
    let dns = dns.spec.unwrap();
    assert_eq!(dns.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(dns.internal_traffic_policy.as_deref(), Some("Local"));

    let all: BTreeSet<SocketAddr> = cluster.members.iter().map(|m| m.client).collect();
    wait_listed(&slices, &all, "all three members listed").await;
    let eps = Api::<Endpoints>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap();
    let ips: usize = eps
        .subsets
        .iter()
        .flatten()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    assert_eq!(ips, 3, "{eps:?}");

    // A member that stops removes its lease and itself.
    let third = (cluster.members[2].name.clone(), cluster.members[2].client);
    stop(&cluster, 2);
    cluster
        .wait_exit(2, Duration::from_secs(20))
        .await
        .expect("member 3 stops");
    let two: BTreeSet<SocketAddr> = all.iter().copied().filter(|a| *a != third.1).collect();
    wait_listed(&slices, &two, "the stopped member gone").await;
    let lease = format!("apiserver-{}", third.0);
    assert!(
        leases.get_opt(&lease).await.unwrap().is_none(),
        "its lease is removed"
    );

    // Back again: listed again.
    cluster.spawn(2, "existing");
    wait_listed(&slices, &all, "the member back").await;

    // A killed member stays until its lease expires, and its lease stays behind.
    let first = (cluster.members[0].name.clone(), cluster.members[0].client);
    cluster.kill(0);
    let client = cluster.api_client_of(1);
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default");
    let rest: BTreeSet<SocketAddr> = all.iter().copied().filter(|a| *a != first.1).collect();
    wait_listed(&slices, &rest, "the killed member gone").await;
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-system");
    assert!(
        leases
            .get_opt(&format!("apiserver-{}", first.0))
            .await
            .unwrap()
            .is_some(),
        "a killed member's lease expires, nobody deletes it"
    );
    attacks(&cluster, &client).await;
}

/// A user who may edit the default namespace can neither forge a member's lease in
/// kube-system nor rewrite the endpoints of the `kubernetes` Service through it.
async fn attacks(cluster: &Cluster, admin: &Client) {
    let bindings =
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), "default");
    let binding = serde_json::from_value(json!({
        "metadata": {"name": "mallory-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]
    }))
    .unwrap();
    bindings.create(&binding).await.unwrap();
    let cfg = ClientConfig::load(&cluster.config_for("mallory", "mallory", &[])).unwrap();
    let mallory = Client::new(cfg).unwrap();
    let forged: Lease = serde_json::from_value(json!({
        "metadata": {"name": "apiserver-evil", "labels": {"apiserver.kubernetes.io/identity": "kube-apiserver"},
                     "annotations": {"rkube.io/advertise-address": "203.0.113.7:443"}},
        "spec": {"holderIdentity": "evil", "leaseDurationSeconds": 3600,
                 "renewTime": "2030-01-01T00:00:00.000000Z"}
    }))
    .unwrap();
    let e = Api::<Lease>::namespaced(mallory.clone(), "kube-system")
        .create(&forged)
        .await
        .unwrap_err();
    assert!(e.is_forbidden(), "{e}");
    let slices = Api::<EndpointSlice>::namespaced(mallory, "default");
    let e = slices.delete("kubernetes", None).await.unwrap_err();
    assert!(e.is_forbidden() || e.is_not_found(), "{e}");
    let admin_slices = Api::<EndpointSlice>::namespaced(admin.clone(), "default");
    let got = listed(&admin_slices).await.unwrap_or_default();
    assert!(
        !got.iter().any(|a| a.to_string() == "203.0.113.7:443"),
        "{got:?}"
    );
}
