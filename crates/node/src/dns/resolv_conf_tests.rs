use serde_json::json;

use super::*;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"namespace": "shop", "name": "p"}, "spec": spec}))
        .unwrap()
}

fn cluster() -> ClusterDns {
    ClusterDns {
        server: Some("10.96.0.10".into()),
        domain: "cluster.local".into(),
    }
}

fn host() -> DnsSettings {
    DnsSettings::parse("# comment\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")
}

#[test]
fn cluster_first_is_the_default() {
    let s = for_pod(&pod(json!({})), &cluster(), &host());
    assert_eq!(
        s.render(),
        "nameserver 10.96.0.10\n\
         search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
         options ndots:5\n"
    );
}

#[test]
fn host_network_pods_get_the_hosts_unless_they_ask_for_the_cluster() {
    let s = for_pod(&pod(json!({"hostNetwork": true})), &cluster(), &host());
    assert_eq!(s, host());
    let s = for_pod(
        &pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})),
        &cluster(),
        &host(),
    );
    assert_eq!(s.servers, ["10.96.0.10"]);
}

#[test]
fn default_is_the_hosts_and_without_a_cluster_server_so_is_cluster_first() {
    assert_eq!(
        for_pod(&pod(json!({"dnsPolicy": "Default"})), &cluster(), &host()),
        host()
    );
    let none = ClusterDns {
        server: None,
        ..cluster()
    };
    assert_eq!(for_pod(&pod(json!({})), &none, &host()), host());
}

#[test]
fn none_takes_only_dns_config_and_options_replace_by_name() {
    let s = for_pod(
        &pod(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"],
            "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}})),
        &cluster(),
        &host(),
    );
    assert_eq!(
        s.servers,
        ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        "at most 3"
    );
    assert_eq!(s.searches, ["a.example"]);
    assert_eq!(s.options, ["ndots:2", "edns0"]);
    let s = for_pod(
        &pod(
            json!({"dnsConfig": {"options": [{"name": "ndots", "value": "1"}],
                                  "searches": ["svc.cluster.local", "b.example"]}}),
        ),
        &cluster(),
        &host(),
    );
    assert_eq!(s.options, ["ndots:1"]);
    assert_eq!(
        s.searches,
        [
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "corp.example",
            "b.example"
        ]
    );
}
