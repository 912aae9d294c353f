use serde_json::json;

use super::*;

fn svc(ns: &str, name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .unwrap()
}

fn slice(
    ns: &str,
    svc: &str,
    endpoints: serde_json::Value,
    ports: serde_json::Value,
) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": format!("{svc}-0"),
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": ports}))
    .unwrap()
}

fn zone() -> Zone {
    let services = [
        svc(
            "shop",
            "db",
            json!({"clusterIP": "10.96.0.20",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}, {"port": 9, "protocol": "UDP"}]}),
        ),
        svc(
            "shop",
            "web",
            json!({"clusterIP": "None",
            "ports": [{"name": "http", "port": 80}]}),
        ),
        svc(
            "shop",
            "ext",
            json!({"type": "ExternalName", "externalName": "example.org"}),
        ),
        svc(
            "shop",
            "early",
            json!({"clusterIP": "None", "publishNotReadyAddresses": true}),
        ),
    ];
    let slices = [
        slice(
            "shop",
            "web",
            json!([
                {"addresses": ["10.244.1.5"], "hostname": "web-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.2.6"], "conditions": {"ready": true}},
                {"addresses": ["10.244.2.7"], "hostname": "web-2", "conditions": {"ready": false}}
            ]),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        ),
        slice(
            "shop",
            "early",
            json!([
                {"addresses": ["10.244.3.3"], "conditions": {"ready": false}}
            ]),
            json!([]),
        ),
        // Another namespace's slice of the same name is not the Service's.
        slice(
            "other",
            "web",
            json!([{"addresses": ["10.9.9.9"], "conditions": {"ready": true}}]),
            json!([]),
        ),
    ];
    Zone::build(
        "cluster.local",
        &services.iter().collect::<Vec<_>>(),
        &slices.iter().collect::<Vec<_>>(),
    )
}

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The answer as strings: record data, sorted; or the kind of answer.
fn ask(z: &Zone, name: &str, t: RecordType) -> Vec<String> {
    match z.answer(&n(name), t) {
        Answer::Records(rs) => {
            let mut v: Vec<String> = rs.iter().map(|r| r.data().to_string()).collect();
            v.sort();
            v
        }
        other => vec![format!("{other:?}")],
    }
}

#[test]
fn cluster_ip_services_answer_their_address_and_named_ports() {
    let z = zone();
    assert_eq!(
        ask(&z, "db.shop.svc.cluster.local.", RecordType::A),
        ["10.96.0.20"]
    );
    // Case does not matter; a name without the final dot is the same name.
    assert_eq!(
        ask(&z, "DB.Shop.svc.cluster.local", RecordType::A),
        ["10.96.0.20"]
    );
    assert_eq!(
        ask(&z, "_pg._tcp.db.shop.svc.cluster.local.", RecordType::SRV),
        ["0 100 5432 db.shop.svc.cluster.local."]
    );
    // An unnamed port has no SRV record.
    assert_eq!(
        ask(&z, "_._udp.db.shop.svc.cluster.local.", RecordType::SRV),
        ["NxDomain"]
    );
    assert_eq!(
        ask(&z, "db.shop.svc.cluster.local.", RecordType::AAAA),
        ["NoData"]
    );
}

#[test]
fn headless_services_answer_their_ready_endpoints_by_name() {
    let z = zone();
    assert_eq!(
        ask(&z, "web.shop.svc.cluster.local.", RecordType::A),
        ["10.244.1.5", "10.244.2.6"]
    );
    assert_eq!(
        ask(&z, "web-0.web.shop.svc.cluster.local.", RecordType::A),
        ["10.244.1.5"]
    );
    // Without a hostname, the address spelled with dashes.
    assert_eq!(
        ask(&z, "10-244-2-6.web.shop.svc.cluster.local.", RecordType::A),
        ["10.244.2.6"]
    );
    // Not ready: not published.
    assert_eq!(
        ask(&z, "web-2.web.shop.svc.cluster.local.", RecordType::A),
        ["NxDomain"]
    );
    assert_eq!(
        ask(
            &z,
            "_http._tcp.web.shop.svc.cluster.local.",
            RecordType::SRV
        ),
        [
            "0 100 8080 10-244-2-6.web.shop.svc.cluster.local.",
            "0 100 8080 web-0.web.shop.svc.cluster.local."
        ]
    );
    assert_eq!(
        ask(&z, "early.shop.svc.cluster.local.", RecordType::A),
        ["10.244.3.3"]
    );
}

#[test]
fn external_names_are_cnames() {
    let z = zone();
    assert_eq!(
        ask(&z, "ext.shop.svc.cluster.local.", RecordType::A),
        ["example.org."]
    );
}

#[test]
fn pod_names_spell_their_address() {
    let z = zone();
    assert_eq!(
        ask(&z, "10-244-1-5.shop.pod.cluster.local.", RecordType::A),
        ["10.244.1.5"]
    );
    assert_eq!(
        ask(&z, "10-244-1-5.shop.pod.cluster.local.", RecordType::AAAA),
        ["NoData"]
    );
    assert_eq!(
        ask(&z, "10-244-1-500.shop.pod.cluster.local.", RecordType::A),
        ["NxDomain"]
    );
}

#[test]
fn missing_names_are_nxdomain_and_parents_exist_without_records() {
    let z = zone();
    assert_eq!(
        ask(&z, "gone.shop.svc.cluster.local.", RecordType::A),
        ["NxDomain"]
    );
    // What a search path makes of a name that was already whole.
    assert_eq!(
        ask(
            &z,
            "db.shop.svc.cluster.local.shop.svc.cluster.local.",
            RecordType::A
        ),
        ["NxDomain"]
    );
    assert_eq!(
        ask(&z, "shop.svc.cluster.local.", RecordType::A),
        ["NoData"]
    );
    assert_eq!(ask(&z, "cluster.local.", RecordType::A), ["NoData"]);
    assert_eq!(ask(&z, "example.org.", RecordType::A), ["Elsewhere"]);
    assert_eq!(ask(&z, "local.", RecordType::A), ["Elsewhere"]);
}
