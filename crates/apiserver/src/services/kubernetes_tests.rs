use super::*;

fn lease(name: &str, addr: &str, renewed_secs: i64, ttl: i32) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some([(ADDRESS_ANNOTATION.to_string(), addr.to_string())].into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            renew_time: Some(MicroTime(Timestamp::from_second(renewed_secs).unwrap())),
            lease_duration_seconds: Some(ttl),
            ..Default::default()
        }),
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

#[test]
fn only_unexpired_leases_with_an_address_count() {
    let leases = vec![
        lease("apiserver-n1", "10.0.0.2:6443", 1000, 15),
        lease("apiserver-n2", "10.0.0.1:6443", 990, 15),
        lease("apiserver-n3", "10.0.0.3:6443", 980, 15),
        lease("apiserver-n4", "not an address", 1000, 15),
        Lease {
            spec: None,
            ..lease("apiserver-n5", "10.0.0.5:6443", 1000, 15)
        },
    ];
    let live: Vec<String> = live_members(&leases, at(1004))
        .iter()
        .map(|a| a.to_string())
        .collect();
    // n3 was renewed 24 s ago with a 15 s lease: expired. Sorted by address.
    assert_eq!(live, vec!["10.0.0.1:6443", "10.0.0.2:6443"]);
    assert!(live_members(&leases, at(1016)).is_empty());
}

#[test]
fn members_on_one_port_share_one_slice() {
    let members: Vec<SocketAddr> = vec![
        "10.0.0.1:6443".parse().unwrap(),
        "10.0.0.2:6443".parse().unwrap(),
    ];
    let s = slices(&members);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].metadata.name.as_deref(), Some("kubernetes"));
    let addrs: Vec<&str> = s[0]
        .endpoints
        .iter()
        .flatten()
        .map(|e| e.addresses[0].as_str())
        .collect();
    assert_eq!(addrs, vec!["10.0.0.1", "10.0.0.2"]);
    assert_eq!(s[0].ports.as_ref().unwrap()[0].port, Some(6443));
    assert_eq!(
        s[0].ports.as_ref().unwrap()[0].name.as_deref(),
        Some("https")
    );
    let labels = s[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels[SERVICE_NAME_LABEL], "kubernetes");
}

#[test]
fn members_on_different_ports_get_a_slice_and_a_subset_per_port() {
    let members: Vec<SocketAddr> = vec![
        "127.0.0.1:7001".parse().unwrap(),
        "127.0.0.1:7002".parse().unwrap(),
    ];
    let names: Vec<String> = slices(&members)
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["kubernetes-7001", "kubernetes-7002"]);
    let e = endpoints(&members);
    let ports: Vec<i32> = e
        .subsets
        .iter()
        .flatten()
        .map(|s| s.ports.as_ref().unwrap()[0].port)
        .collect();
    assert_eq!(ports, vec![7001, 7002]);
}

#[test]
fn no_live_member_means_no_subsets_and_no_slices() {
    assert!(endpoints(&[]).subsets.is_none());
    assert!(slices(&[]).is_empty());
}

#[test]
fn the_services_take_the_first_and_tenth_address() {
    let cfg = SystemServices {
        member: "n1".into(),
        advertise: "10.0.0.1:6443".parse().unwrap(),
        cluster_ips: "10.96.0.0/16".parse().unwrap(),
        lease_ttl: Duration::from_secs(15),
    };
    let k = kubernetes_service(&cfg);
    assert_eq!(
        k.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("10.96.0.1")
    );
    assert_eq!(
        k.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
        443
    );
    let d = kube_dns_service(&cfg).unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Local"));
    assert!(spec.selector.is_none());
    let ports: Vec<(String, String)> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.protocol.unwrap()))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("dns".into(), "UDP".into()),
            ("dns-tcp".into(), "TCP".into())
        ]
    );
}
