//! The endpoints controller's decisions, one table row per case Kubernetes' endpoints and
//! EndpointSlice controller tests cover: selection, readiness and
//! publishNotReadyAddresses, named target ports, subsets by port set, slices of at most
//! 100 endpoints, and the slice changes.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};

use super::*;

fn svc(extra: Value) -> Service {
    let mut spec = json!({"selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "web"}]});
    if let (Some(a), Value::Object(b)) = (spec.as_object_mut(), extra) {
        a.extend(b);
    }
    serde_json::from_value(
        json!({"metadata": {"name": "web", "namespace": "ns", "uid": "s"},
        "spec": spec}),
    )
    .unwrap()
}

/// A pod at `ip` with label app=`app`; `r` ready, `p` naming its port `web` (8080).
fn pod(name: &str, ip: &str, app: &str, flags: &str) -> Arc<Pod> {
    let ready = if flags.contains('r') { "True" } else { "False" };
    let ports = if flags.contains('p') {
        json!([{"name": "web", "containerPort": 8080}])
    } else {
        json!([])
    };
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap(),
    )
}

fn ips(addrs: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    addrs.iter().flatten().map(|a| a.ip.clone()).collect()
}

#[test]
fn selected_pods_become_ready_and_not_ready_addresses() {
    let pods = vec![
        pod("a", "10.0.0.2", "web", "rp"),
        pod("b", "10.0.0.1", "web", "p"),
        pod("other", "10.0.0.3", "db", "rp"),
        pod("no-ip", "", "web", "rp"),
    ];
    let ms = members(&svc(json!({})), &pods);
    let s = subsets(&ms);
    assert_eq!(s.len(), 1);
    assert_eq!(ips(&s[0].addresses), ["10.0.0.2"]);
    assert_eq!(ips(&s[0].not_ready_addresses), ["10.0.0.1"]);
    assert_eq!(
        s[0].ports.as_ref().unwrap()[0].port,
        8080,
        "named port resolved"
    );
    let ms = members(&svc(json!({"publishNotReadyAddresses": true})), &pods);
    assert_eq!(ips(&subsets(&ms)[0].addresses), ["10.0.0.1", "10.0.0.2"]);
}

#[test]
fn a_pod_without_the_named_port_is_left_out_of_the_subsets() {
    let pods = vec![
        pod("a", "10.0.0.2", "web", "rp"),
        pod("b", "10.0.0.1", "web", "r"),
    ];
    let s = subsets(&members(&svc(json!({})), &pods));
    assert_eq!(s.len(), 1);
    assert_eq!(ips(&s[0].addresses), ["10.0.0.2"]);
    let numeric = svc(json!({"ports": [{"port": 80, "targetPort": 9000}]}));
    let s = subsets(&members(&numeric, &pods));
    assert_eq!(
        ips(&s[0].addresses),
        ["10.0.0.1", "10.0.0.2"],
        "a numeric port needs none"
    );
}

#[test]
fn slices_hold_at_most_a_hundred_endpoints() {
    let many: Vec<Arc<Pod>> = (0..250)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.1.{}.{}", i / 200, i % 200),
                "web",
                "rp",
            )
        })
        .collect();
    type Row = (&'static str, Vec<Arc<Pod>>, Vec<usize>);
    let rows: [Row; 3] = [
        ("none selected: one empty slice", vec![], vec![0]),
        ("two pods: one slice", many[..2].to_vec(), vec![2]),
        ("250 pods: three slices", many.clone(), vec![100, 100, 50]),
    ];
    for (name, pods, sizes) in rows {
        let s = slices(&svc(json!({})), &members(&svc(json!({})), &pods));
        let got: Vec<usize> = s
            .iter()
            .map(|s| s.endpoints.as_ref().unwrap().len())
            .collect();
        assert_eq!(got, sizes, "{name}");
        assert_eq!(s[0].metadata.name.as_deref(), Some("web-0"), "{name}");
        let owner = &s[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Service", "s"));
    }
}

#[test]
fn slice_changes_create_replace_and_delete() {
    let two = vec![
        pod("a", "10.0.0.1", "web", "rp"),
        pod("b", "10.0.0.2", "web", "rp"),
    ];
    let want = slices(&svc(json!({})), &members(&svc(json!({})), &two));
    let mut same = want[0].clone();
    same.metadata.resource_version = Some("7".into());
    let mut stale = same.clone();
    stale.endpoints.as_mut().unwrap().pop();
    let mut extra = same.clone();
    extra.metadata.name = Some("web-1".into());
    let name = |s: &EndpointSlice| s.metadata.name.clone().unwrap_or_default();
    let c = slice_changes(want.clone(), &[]);
    assert_eq!(
        (c.create.len(), c.replace.len(), c.delete.len()),
        (1, 0, 0),
        "new"
    );
    let c = slice_changes(want.clone(), &[same]);
    assert_eq!(
        (c.create.len(), c.replace.len(), c.delete.len()),
        (0, 0, 0),
        "unchanged"
    );
    let c = slice_changes(want.clone(), &[stale, extra]);
    assert_eq!(c.replace.iter().map(name).collect::<Vec<_>>(), ["web-0"]);
    assert_eq!(c.replace[0].metadata.resource_version.as_deref(), Some("7"));
    assert_eq!(c.delete, ["web-1"]);
}

#[test]
fn pods_whose_subdomain_is_the_service_carry_their_hostname() {
    let named = |name: &str, ip: &str, subdomain: &str| {
        let mut p = (*pod(name, ip, "web", "rp")).clone();
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some(name.to_string());
        spec.subdomain = Some(subdomain.to_string());
        Arc::new(p)
    };
    let pods = vec![
        named("web-0", "10.0.0.1", "web"),
        named("other-0", "10.0.0.2", "other"),
        pod("plain", "10.0.0.3", "web", "rp"),
    ];
    let s = svc(json!({}));
    let ms = members(&s, &pods);
    let slice = &slices(&s, &ms)[0];
    let hosts: Vec<(String, Option<String>)> = slice
        .endpoints
        .iter()
        .flatten()
        .map(|e| (e.addresses[0].clone(), e.hostname.clone()))
        .collect();
    assert_eq!(
        hosts,
        [
            ("10.0.0.1".to_string(), Some("web-0".to_string())),
            ("10.0.0.2".to_string(), None),
            ("10.0.0.3".to_string(), None)
        ]
    );
    let addrs = subsets(&ms)[0].addresses.clone().unwrap();
    assert_eq!(addrs[0].hostname.as_deref(), Some("web-0"));
}
