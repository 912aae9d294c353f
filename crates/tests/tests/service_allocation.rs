//! Service ClusterIPs and NodePorts: allocated atomically through the store from the
//! configured ranges, never twice, released on delete and on a type change, a requested
//! value honoured, and a conflict or an out-of-range value refused with the field named
//! and nothing written.

use std::collections::BTreeSet;
use std::time::Duration;

use client::{Api, Client, PatchParams};
use k8s_openapi::api::core::v1::Service;
use rkube_tests::{Cluster, Flavor};
use serde_json::{json, Value};

fn service(name: &str, spec: Value) -> Service {
    let mut v = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}});
    json_patch::merge(&mut v["spec"], &spec);
    serde_json::from_value(v).unwrap()
}

fn cluster_ip(s: &Service) -> String {
    s.spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .clone()
        .unwrap_or_default()
}

fn node_port(s: &Service) -> Option<i32> {
    s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port
}

async fn create_err(api: &Api<Service>, s: Service) -> String {
    let name = s.metadata.name.clone().unwrap();
    let err = api.create(&s).await.expect_err("the create must fail");
    assert!(
        api.get_opt(&name).await.unwrap().is_none(),
        "a refused Service was written: {name}"
    );
    err.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_ips_and_node_ports_are_allocated_once_and_released() {
    // 6 usable addresses (10.100.0.1 to .6; the first is the `kubernetes` Service's) and
    // 5 node ports.
    let args = [
        "--service-cluster-ip-range",
        "10.100.0.0/29",
        "--service-node-port-range",
        "30000-30004",
    ];
    let cluster = Cluster::start(Flavor::Apiserver, 3, &args).await;
    let members: Vec<Client> = (0..3).map(|i| cluster.api_client_of(i)).collect();
    let api: Api<Service> = Api::namespaced(members[0].clone(), "default");

    // Five Services created at once through all three members fill the range, each with
    // an address of its own; none takes the first, which only the `kubernetes` Service
    // gets.
    let mut tasks = Vec::new();
    for i in 0..5 {
        let api: Api<Service> = Api::namespaced(members[i % 3].clone(), "default");
        tasks.push(tokio::spawn(async move {
            api.create(&service(&format!("s{i}"), json!({}))).await
        }));
    }
    let mut ips = BTreeSet::new();
    for t in tasks {
        let s = t.await.unwrap().expect("create within the range");
        let ip = cluster_ip(&s);
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ips.as_deref(), Some(&[ip.clone()][..]));
        assert_eq!(spec.ip_families.as_deref(), Some(&["IPv4".to_string()][..]));
        ips.insert(ip);
    }
    let want: BTreeSet<String> = (2..=6).map(|i| format!("10.100.0.{i}")).collect();
    assert_eq!(ips, want, "each usable address but the first exactly once");
    let kubernetes =
        rkube_tests::eventually(Duration::from_secs(20), "the kubernetes Service", || {
            let api = api.clone();
            async move { api.get_opt("kubernetes").await.ok().flatten() }
        })
        .await;
    assert_eq!(cluster_ip(&kubernetes), "10.100.0.1");

    let full = create_err(&api, service("s6", json!({}))).await;
    assert!(
        full.contains("spec.clusterIPs") && full.contains("range 10.100.0.0/29 is full"),
        "{full}"
    );
    // Deleting releases the address; a Service may ask for it by value.
    let gone = api.get("s2").await.unwrap();
    api.delete("s2", None).await.unwrap();
    let again = api
        .create(&service("s6", json!({"clusterIP": cluster_ip(&gone)})))
        .await
        .expect("the released address is free");
    assert_eq!(cluster_ip(&again), cluster_ip(&gone));
    api.delete("s6", None).await.unwrap();

    // An address another Service holds.
    let held = cluster_ip(&api.get("s0").await.unwrap());
    let taken = create_err(&api, service("s7", json!({"clusterIP": held}))).await;
    assert!(
        taken.contains(&format!(
            "spec.clusterIPs: Invalid value: \"{held}\": failed to allocate IP {held}: provided IP is already allocated"
        )),
        "{taken}"
    );
    let outside = create_err(&api, service("s7", json!({"clusterIP": "10.200.0.1"}))).await;
    assert!(
        outside.contains("is not in the valid range. The range of valid IPs is 10.100.0.0/29"),
        "{outside}"
    );

    // Headless and ExternalName Services hold no address, so they fit in a full range.
    let headless = api
        .create(&service("headless", json!({"clusterIP": "None"})))
        .await
        .unwrap();
    assert_eq!(cluster_ip(&headless), "None");
    let external = api
        .create(&service(
            "external",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ))
        .await
        .unwrap();
    assert_eq!(cluster_ip(&external), "");

    // NodePorts.
    api.delete("s3", None).await.unwrap();
    api.delete("s4", None).await.unwrap();
    let np = api
        .create(&service(
            "np1",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}),
        ))
        .await
        .unwrap();
    assert_eq!(node_port(&np), Some(30001));
    let auto = api
        .create(&service("np2", json!({"type": "NodePort"})))
        .await
        .unwrap();
    let auto_port = node_port(&auto).expect("a NodePort Service gets a port");
    assert!((30000..=30004).contains(&auto_port) && auto_port != 30001);
    let dup = create_err(
        &api,
        service(
            "np3",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}),
        ),
    )
    .await;
    assert!(
        dup.contains(
            "spec.ports[0].nodePort: Invalid value: \"30001\": provided port is already allocated"
        ),
        "{dup}"
    );
    let far = create_err(
        &api,
        service(
            "np3",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}),
        ),
    )
    .await;
    assert!(
        far.contains("The range of valid ports is 30000-30004"),
        "{far}"
    );
    let wrong_type = create_err(
        &api,
        service("np3", json!({"ports": [{"port": 80, "nodePort": 30002}]})),
    )
    .await;
    assert!(
        wrong_type.contains(
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        ),
        "{wrong_type}"
    );

    // A replace that leaves the allocated values out keeps them.
    let mut replaced = service("np1", json!({"type": "NodePort"}));
    replaced.metadata.resource_version = np.metadata.resource_version.clone();
    let replaced = api.replace(&replaced).await.unwrap();
    assert_eq!(cluster_ip(&replaced), cluster_ip(&np));
    assert_eq!(node_port(&replaced), Some(30001));

    // Turning it into a ClusterIP Service releases the port for another Service.
    api.patch(
        "np1",
        PatchParams::Merge,
        &json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}),
    )
    .await
    .unwrap();
    let reused = api
        .create(&service(
            "np3",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}),
        ))
        .await
        .expect("the port released by the type change is free");
    assert_eq!(node_port(&reused), Some(30001));
}

#[tokio::test(flavor = "multi_thread")]
async fn allocations_left_wrong_by_writes_around_the_apiserver_are_repaired() {
    use rkube_proto::etcd::{DeleteRangeRequest, PutRequest};
    let args = ["--service-allocation-repair-interval-ms", "300"];
    let cluster = Cluster::start(Flavor::Apiserver, 1, &args).await;
    let api: Api<Service> = Api::namespaced(cluster.api_client(), "default");
    let mut etcd = cluster.clients(0);
    let reader = etcd.clone();
    let get = |key: String| {
        let mut c = reader.clone();
        async move {
            c.value(&key)
                .await
                .map(|v| String::from_utf8_lossy(&v).to_string())
        }
    };
    let svc = api
        .create(&service("a", json!({"type": "NodePort"})))
        .await
        .unwrap();
    let ip_key = format!("/rkube/ranges/serviceips/{}", cluster_ip(&svc));
    let port_key = format!(
        "/rkube/ranges/servicenodeports/{}",
        node_port(&svc).unwrap()
    );
    assert_eq!(get(ip_key.clone()).await.as_deref(), Some("default/a"));

    // A stray allocation, and a Service's key removed behind the apiserver's back.
    let stray = "/rkube/ranges/serviceips/10.96.0.77".to_string();
    etcd.kv
        .put(PutRequest {
            key: stray.clone().into_bytes().into(),
            value: "default/ghost".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    etcd.kv
        .delete_range(DeleteRangeRequest {
            key: port_key.clone().into_bytes().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    rkube_tests::eventually(
        std::time::Duration::from_secs(20),
        "the stray key released and the Service's key restored",
        || {
            let (stray, port_key) = (stray.clone(), port_key.clone());
            let get = &get;
            async move {
                let gone = get(stray).await.is_none();
                let back = get(port_key).await.as_deref() == Some("default/a");
                (gone && back).then_some(())
            }
        },
    )
    .await;
    assert_eq!(get(ip_key).await.as_deref(), Some("default/a"), "untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_load_balancers_get_a_health_check_port_of_their_own() {
    let cluster = Cluster::start(Flavor::Apiserver, 1, &[]).await;
    let api: Api<Service> = Api::namespaced(cluster.api_client(), "default");
    let hc = |s: &Service| s.spec.as_ref().unwrap().health_check_node_port;
    let local = json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local"});
    let lb = api.create(&service("lb", local.clone())).await.unwrap();
    let port = hc(&lb).expect("a health check port");
    assert!((30000..=32767).contains(&port), "{port}");
    assert_ne!(Some(port), node_port(&lb));

    // Another Service may not take it, as a NodePort or as its own health check port.
    let taken = json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]});
    let err = create_err(&api, service("np", taken.clone())).await;
    assert!(err.contains("provided port is already allocated"), "{err}");
    let mut same = local.clone();
    same["healthCheckNodePort"] = port.into();
    let err = create_err(&api, service("lb2", same)).await;
    assert!(
        err.contains("spec.healthCheckNodePort: Invalid value")
            && err.contains("already allocated"),
        "{err}"
    );
    // Not a Local LoadBalancer: no health check port.
    let err = create_err(
        &api,
        service(
            "np",
            json!({"type": "NodePort", "healthCheckNodePort": 31999}),
        ),
    )
    .await;
    assert!(
        err.contains("spec.healthCheckNodePort: Invalid value")
            && err.contains("may only be set when"),
        "{err}"
    );

    // Back to Cluster: the port is given back, and free for another Service.
    let lb = api
        .patch(
            "lb",
            PatchParams::Merge,
            &json!({"spec": {"externalTrafficPolicy": "Cluster"}}),
        )
        .await
        .unwrap();
    assert_eq!(hc(&lb), None);
    let np = api
        .create(&service("np", taken))
        .await
        .expect("the released port is free");
    assert_eq!(node_port(&np), Some(port));
}
