use std::sync::Arc;

use serde_json::json;

use super::*;

fn svc(v: serde_json::Value) -> Service {
    let mut base = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}});
    merge(&mut base, v);
    serde_json::from_value(base).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[test]
fn step_table() {
    let fin = json!({"metadata": {"finalizers": [FINALIZER]}});
    let deleting = json!({"metadata": {"finalizers": [FINALIZER],
        "deletionTimestamp": "2026-01-01T00:00:00Z"}});
    use Step::*;
    let rows = [
        (
            "a new LoadBalancer takes the finalizer first",
            svc(json!({})),
            "",
            AddFinalizer,
        ),
        ("then its balancer is ensured", svc(fin.clone()), "", Ensure),
        (
            "a ClusterIP Service is not ours",
            svc(json!({"spec": {"type": "ClusterIP"}})),
            "",
            Nothing,
        ),
        (
            "a Service changed to ClusterIP loses its balancer",
            svc(json!({"metadata": {"finalizers": [FINALIZER]}, "spec": {"type": "ClusterIP"}})),
            "",
            Delete,
        ),
        (
            "a deleted Service loses its balancer",
            svc(deleting),
            "",
            Delete,
        ),
        (
            "another provider's class",
            svc(json!({"spec": {"loadBalancerClass": "example.com/lb"}})),
            "",
            Nothing,
        ),
        (
            "this provider's class",
            svc(json!({"spec": {"loadBalancerClass": "example.com/lb"}})),
            "example.com/lb",
            AddFinalizer,
        ),
        (
            "a classless Service is not a classed provider's",
            svc(json!({})),
            "example.com/lb",
            Nothing,
        ),
    ];
    for (what, s, class, want) in rows {
        assert_eq!(step(&s, class), want, "{what}");
    }
}

#[test]
fn backends_are_ready_nodes_without_the_exclusion_label_sorted() {
    let node = |name: &str, ready: &str, labels: serde_json::Value| -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}))
            .unwrap(),
        )
    };
    let nodes = [
        node("n3", "True", json!({})),
        node("n1", "True", json!({})),
        node("n2", "False", json!({})),
        node("n4", "True", json!({EXCLUDE: ""})),
    ];
    let names: Vec<String> = backends(&nodes).into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["n1", "n3"]);
}

#[test]
fn the_provider_is_told_every_field_the_balancer_depends_on() {
    let s = svc(json!({"spec": {"loadBalancerIP": "10.200.0.9",
        "loadBalancerSourceRanges": ["192.0.2.0/24"], "externalTrafficPolicy": "Local",
        "healthCheckNodePort": 32000}, "metadata": {"annotations": {"a": "b"}}}));
    let p = to_proto(&s);
    assert_eq!(
        (p.namespace.as_str(), p.name.as_str(), p.uid.as_str()),
        ("default", "web", "u1")
    );
    assert_eq!(
        p.ports,
        vec![cp::ServicePort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 80,
            node_port: 30080
        }]
    );
    assert_eq!(p.load_balancer_ip, "10.200.0.9");
    assert_eq!(p.load_balancer_source_ranges, ["192.0.2.0/24"]);
    assert_eq!(
        (p.external_traffic_policy.as_str(), p.health_check_node_port),
        ("Local", 32000)
    );
    assert_eq!(p.annotations["a"], "b");
    assert_eq!(to_proto(&svc(json!({}))).external_traffic_policy, "Cluster");
}

#[test]
fn status_keeps_ips_and_hostnames_and_is_empty_without_ingress() {
    let st = cp::LoadBalancerStatus {
        ingress: vec![
            cp::LoadBalancerIngress {
                ip: "10.200.0.1".into(),
                hostname: String::new(),
            },
            cp::LoadBalancerIngress {
                ip: String::new(),
                hostname: "lb.example.com".into(),
            },
        ],
    };
    let s = status(&st);
    let ing = s.ingress.unwrap();
    assert_eq!(ing[0].ip.as_deref(), Some("10.200.0.1"));
    assert_eq!(ing[0].hostname, None);
    assert_eq!(ing[1].hostname.as_deref(), Some("lb.example.com"));
    assert_eq!(status(&cp::LoadBalancerStatus::default()).ingress, None);
}
