use serde_json::json;

use super::*;

fn node(v: serde_json::Value) -> Node {
    serde_json::from_value(v).unwrap()
}

fn uninitialized(extra_taints: serde_json::Value) -> Node {
    let mut taints = vec![json!({"key": UNINITIALIZED, "value": "true", "effect": "NoSchedule"})];
    taints.extend(extra_taints.as_array().cloned().unwrap_or_default());
    node(
        json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {"taints": taints},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}),
    )
}

fn metadata() -> cp::InstanceMetadataResponse {
    cp::InstanceMetadataResponse {
        provider_id: "local://n1".into(),
        instance_type: "m1".into(),
        zone: "z1".into(),
        region: "r1".into(),
        additional_labels: [("example.com/rack".to_string(), "7".to_string())].into(),
        ..Default::default()
    }
}

#[test]
fn initialization_sets_provider_id_labels_and_drops_only_its_taint() {
    let n = uninitialized(json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]));
    assert!(needs_init(&n));
    let out = initialized(&n, &metadata());
    assert!(!needs_init(&out));
    let spec = out.spec.as_ref().unwrap();
    assert_eq!(spec.provider_id.as_deref(), Some("local://n1"));
    let keys: Vec<&str> = spec
        .taints
        .iter()
        .flatten()
        .map(|t| t.key.as_str())
        .collect();
    assert_eq!(keys, ["dedicated"]);
    let labels = out.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[ZONE], "z1");
    assert_eq!(labels[REGION], "r1");
    assert_eq!(labels[INSTANCE_TYPE], "m1");
    assert_eq!(labels["example.com/rack"], "7");
    assert_eq!(labels["kubernetes.io/hostname"], "n1");
    // No addresses from the provider: the node keeps its own.
    let addrs = out.status.as_ref().unwrap().addresses.as_ref().unwrap();
    assert_eq!(addrs[0].address, "10.0.0.1");
}

#[test]
fn initialization_keeps_a_provider_id_and_takes_the_providers_addresses() {
    let mut n = uninitialized(json!([]));
    n.spec.as_mut().unwrap().provider_id = Some("aws:///i-1".into());
    let mut md = metadata();
    md.zone.clear();
    md.node_addresses = vec![cp::NodeAddress {
        r#type: "ExternalIP".into(),
        address: "203.0.113.5".into(),
    }];
    let out = initialized(&n, &md);
    assert_eq!(
        out.spec.as_ref().unwrap().provider_id.as_deref(),
        Some("aws:///i-1")
    );
    assert!(
        !out.metadata.labels.as_ref().unwrap().contains_key(ZONE),
        "an empty zone is not a label"
    );
    let addrs = out.status.as_ref().unwrap().addresses.as_ref().unwrap();
    assert_eq!((addrs.len(), addrs[0].type_.as_str()), (1, "ExternalIP"));
}

#[test]
fn lifecycle_table() {
    let plain = node(json!({"metadata": {"name": "n"}, "spec": {}}));
    let tainted = node(json!({"metadata": {"name": "n"},
        "spec": {"taints": [{"key": SHUTDOWN, "effect": "NoSchedule"}]}}));
    let m = |exists, shutdown| Some(Machine { exists, shutdown });
    use LifecycleStep::*;
    let rows = [
        ("ready node", &plain, None, Nothing),
        (
            "ready node with a stale shutdown taint",
            &tainted,
            None,
            Untaint,
        ),
        ("machine gone", &plain, m(false, false), Delete),
        (
            "machine gone, though tainted shut down",
            &tainted,
            m(false, true),
            Delete,
        ),
        ("machine shut down", &plain, m(true, true), TaintShutdown),
        ("still shut down", &tainted, m(true, true), Nothing),
        ("machine back", &tainted, m(true, false), Untaint),
        ("not ready, machine runs", &plain, m(true, false), Nothing),
    ];
    for (what, n, machine, want) in rows {
        assert_eq!(lifecycle(n, machine), want, "{what}");
    }
}

#[test]
fn taints_after_adds_and_removes_only_the_shutdown_taint() {
    let n = node(json!({"metadata": {"name": "n"},
        "spec": {"taints": [{"key": "a", "effect": "NoExecute"}]}}));
    let t = taints_after(&n, &LifecycleStep::TaintShutdown);
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[1].key.as_str(), t[1].effect.as_str()),
        (SHUTDOWN, "NoSchedule")
    );
    let mut n2 = n.clone();
    n2.spec.as_mut().unwrap().taints = Some(t);
    let back = taints_after(&n2, &LifecycleStep::Untaint);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].key, "a");
}

#[test]
fn a_node_reaches_the_provider_with_its_id_addresses_and_readiness() {
    let n = node(json!({"metadata": {"name": "n1", "labels": {"a": "b"}},
        "spec": {"providerID": "local://n1", "podCIDR": "10.244.1.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "conditions": [{"type": "Ready", "status": "True"}]}}));
    let p = to_proto(&n);
    assert_eq!(
        (p.name.as_str(), p.provider_id.as_str(), p.pod_cidr.as_str()),
        ("n1", "local://n1", "10.244.1.0/24")
    );
    assert_eq!(p.addresses[0].address, "10.0.0.1");
    assert!(p.ready);
    assert_eq!(p.labels["a"], "b");
}
