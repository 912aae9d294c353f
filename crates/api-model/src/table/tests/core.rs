//! The rows of the core kinds besides Pod.

use serde_json::{json, Value};

use super::*;

fn meta(name: &str, age: i64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(age)})
}

fn node(labels: Value, ready: &str, unschedulable: bool) -> Value {
    json!({
        "metadata": {"name": "node-1", "labels": labels, "creationTimestamp": ago(2 * 86_400 + 3 * 3600)},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": ready},
            ],
            "addresses": [
                {"type": "Hostname", "address": "node-1"},
                {"type": "InternalIP", "address": "192.168.1.10"},
            ],
            "nodeInfo": {"kubeletVersion": "v1.31.0", "kernelVersion": "6.8.0"},
        },
    })
}

#[test]
fn a_cordoned_node_is_ready_and_scheduling_disabled_with_sorted_roles() {
    let labels = json!({
        "node-role.kubernetes.io/worker": "",
        "node-role.kubernetes.io/control-plane": "",
        "node-role.kubernetes.io/": "",
        "kubernetes.io/hostname": "node-1",
    });
    let r = row("", "Node", &node(labels, "True", true));
    assert_eq!(cell(&r, "Status"), "Ready,SchedulingDisabled");
    assert_eq!(cell(&r, "Roles"), "control-plane,worker");
    assert_eq!(cell(&r, "Age"), "2d3h");
    assert_eq!(cell(&r, "Version"), "v1.31.0");
    assert_eq!(cell(&r, "Internal-IP"), "192.168.1.10");
    assert_eq!(cell(&r, "External-IP"), "<none>");
    assert_eq!(cell(&r, "OS-Image"), "<unknown>");
    assert_eq!(cell(&r, "Kernel-Version"), "6.8.0");
}

#[test]
fn node_status_follows_the_ready_condition() {
    let legacy_role = json!({"kubernetes.io/role": "edge"});
    let r = row("", "Node", &node(legacy_role, "Unknown", false));
    assert_eq!(cell(&r, "Status"), "NotReady");
    assert_eq!(cell(&r, "Roles"), "edge");
    let mut n = node(json!({}), "True", false);
    n["status"]["conditions"] = json!([]);
    let r = row("", "Node", &n);
    assert_eq!(cell(&r, "Status"), "Unknown");
    assert_eq!(cell(&r, "Roles"), "<none>");
}

fn service(spec: Value) -> Value {
    json!({"metadata": meta("web", 45), "spec": spec})
}

#[test]
fn a_node_port_service_shows_its_node_ports() {
    let s = service(json!({
        "type": "NodePort",
        "clusterIP": "10.96.12.7", "clusterIPs": ["10.96.12.7"],
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ],
        "selector": {"tier": "frontend", "app": "web"},
    }));
    let r = row("", "Service", &s);
    assert_eq!(cell(&r, "Type"), "NodePort");
    assert_eq!(cell(&r, "Cluster-IP"), "10.96.12.7");
    assert_eq!(cell(&r, "External-IP"), "<none>");
    assert_eq!(cell(&r, "Port(s)"), "80:30080/TCP,53/UDP");
    assert_eq!(cell(&r, "Age"), "45s");
    assert_eq!(cell(&r, "Selector"), "app=web,tier=frontend");
}

#[test]
fn external_ips_depend_on_the_service_type() {
    let lb = |ingress: Value, external: Value| {
        let mut s = service(json!({"type": "LoadBalancer", "clusterIP": "10.96.0.9",
            "ports": [{"port": 443}], "externalIPs": external}));
        s["status"] = json!({"loadBalancer": {"ingress": ingress}});
        row("", "Service", &s)
    };
    assert_eq!(cell(&lb(json!([]), json!([])), "External-IP"), "<pending>");
    let r = lb(
        json!([{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]),
        json!(["198.51.100.1"]),
    );
    assert_eq!(
        cell(&r, "External-IP"),
        "203.0.113.9,lb.example.com,198.51.100.1"
    );
    assert_eq!(cell(&r, "Port(s)"), "443/TCP");

    let name = row(
        "",
        "Service",
        &service(json!({"type": "ExternalName", "externalName": "db.example.com"})),
    );
    assert_eq!(cell(&name, "External-IP"), "db.example.com");
    assert_eq!(cell(&name, "Cluster-IP"), "<none>");
    assert_eq!(cell(&name, "Port(s)"), "<none>");
    assert_eq!(cell(&name, "Selector"), "<none>");

    let headless = row("", "Service", &service(json!({"clusterIP": "None"})));
    assert_eq!(cell(&headless, "Type"), "ClusterIP");
    assert_eq!(cell(&headless, "Cluster-IP"), "None");
}

#[test]
fn endpoints_list_three_addresses_then_how_many_more() {
    let addrs: Vec<Value> = (1..=5)
        .map(|i| json!({"ip": format!("10.244.0.{i}")}))
        .collect();
    let ep = json!({"metadata": meta("web", 60), "subsets": [
        {"addresses": addrs, "ports": [{"port": 8080}]},
    ]});
    let r = row("", "Endpoints", &ep);
    assert_eq!(
        cell(&r, "Endpoints"),
        "10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 2 more..."
    );
    let v6 = json!({"metadata": meta("web", 60), "subsets": [
        {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]},
        {"addresses": [{"ip": "10.0.0.1"}]},
    ]});
    assert_eq!(
        cell(&row("", "Endpoints", &v6), "Endpoints"),
        "[fd00::1]:80,10.0.0.1"
    );
    let empty = json!({"metadata": meta("web", 60)});
    assert_eq!(cell(&row("", "Endpoints", &empty), "Endpoints"), "<none>");
}

#[test]
fn config_maps_secrets_and_service_accounts_count_their_entries() {
    let cm = json!({"metadata": meta("cfg", 7200), "data": {"a": "1", "b": "2"},
        "binaryData": {"c": "AA=="}});
    let r = row("", "ConfigMap", &cm);
    assert_eq!(cell(&r, "Data"), 3);
    assert_eq!(cell(&r, "Age"), "120m");
    let secret = json!({"metadata": meta("tls", 10), "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""}});
    let r = row("", "Secret", &secret);
    assert_eq!(cell(&r, "Type"), "kubernetes.io/tls");
    assert_eq!(cell(&r, "Data"), 2);
    let opaque = json!({"metadata": meta("s", 10)});
    assert_eq!(cell(&row("", "Secret", &opaque), "Type"), "Opaque");
    let sa = json!({"metadata": meta("default", 10), "secrets": [{"name": "t"}]});
    assert_eq!(cell(&row("", "ServiceAccount", &sa), "Secrets"), 1);
}

#[test]
fn namespaces_and_replication_controllers() {
    let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(30)},
        "status": {"phase": "Active"}});
    assert_eq!(cell(&row("", "Namespace", &ns), "Status"), "Active");
    let rc = json!({"metadata": meta("rc", 10),
        "spec": {"replicas": 3, "selector": {"app": "rc"},
            "template": {"spec": {"containers": [{"name": "a", "image": "img:1"}]}}},
        "status": {"replicas": 3, "readyReplicas": 1}});
    let r = row("", "ReplicationController", &rc);
    assert_eq!(
        [cell(&r, "Desired"), cell(&r, "Current"), cell(&r, "Ready")],
        [3, 3, 1]
    );
    assert_eq!(cell(&r, "Images"), "img:1");
    assert_eq!(cell(&r, "Selector"), "app=rc");
}

#[test]
fn a_quota_splits_requests_from_limits_in_canonical_quantities() {
    let q = json!({"metadata": meta("compute", 10), "status": {
        "hard": {"limits.cpu": "4", "requests.memory": "2048Mi", "pods": "10", "requests.cpu": "2"},
        "used": {"limits.cpu": "1500m", "requests.memory": "512Mi", "pods": "3"},
    }});
    let r = row("", "ResourceQuota", &q);
    assert_eq!(
        cell(&r, "Request"),
        "pods: 3/10, requests.cpu: 0/2, requests.memory: 512Mi/2Gi"
    );
    assert_eq!(cell(&r, "Limit"), "limits.cpu: 1500m/4");
}

#[test]
fn volumes_and_claims_show_capacity_modes_and_class() {
    let pv = json!({"metadata": meta("pv-1", 10), "spec": {
        "capacity": {"storage": "10Gi"},
        "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "claimRef": {"namespace": "db", "name": "data-0"},
        "storageClassName": "fast",
    }, "status": {"phase": "Bound"}});
    let r = row("", "PersistentVolume", &pv);
    assert_eq!(cell(&r, "Capacity"), "10Gi");
    assert_eq!(cell(&r, "Access Modes"), "RWO,RWX");
    assert_eq!(cell(&r, "Status"), "Bound");
    assert_eq!(cell(&r, "Claim"), "db/data-0");
    assert_eq!(cell(&r, "StorageClass"), "fast");
    assert_eq!(cell(&r, "VolumeAttributesClass"), "<unset>");
    assert_eq!(cell(&r, "VolumeMode"), "<unset>");

    let mut pvc = json!({"metadata": meta("data-0", 10), "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
        "volumeMode": "Filesystem",
    }, "status": {"phase": "Pending"}});
    let r = row("", "PersistentVolumeClaim", &pvc);
    assert_eq!(cell(&r, "Capacity"), "");
    assert_eq!(cell(&r, "Access Modes"), "");
    assert_eq!(cell(&r, "VolumeMode"), "Filesystem");
    pvc["spec"]["volumeName"] = "pv-1".into();
    pvc["status"] = json!({"phase": "Bound", "capacity": {"storage": "1024Mi"},
        "accessModes": ["ReadWriteOnce"]});
    pvc["metadata"]["deletionTimestamp"] = ago(1).into();
    pvc["metadata"]["annotations"] = json!({"volume.beta.kubernetes.io/storage-class": "legacy"});
    let r = row("", "PersistentVolumeClaim", &pvc);
    assert_eq!(cell(&r, "Status"), "Terminating");
    assert_eq!(cell(&r, "Volume"), "pv-1");
    assert_eq!(cell(&r, "Capacity"), "1Gi");
    assert_eq!(cell(&r, "Access Modes"), "RWO");
    assert_eq!(cell(&r, "StorageClass"), "legacy");
}

#[test]
fn an_event_shows_when_what_and_where_from() {
    let e = json!({
        "metadata": meta("web-1.17c3", 600),
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
        "reason": "BackOff", "type": "Warning",
        "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(125), "count": 7,
    });
    let r = row("", "Event", &e);
    let cells: Vec<&Value> = r.iter().map(|(_, v)| v).collect();
    assert_eq!(
        cells,
        [
            &json!("2m5s"),
            &json!("Warning"),
            &json!("BackOff"),
            &json!("pod/web-1"),
            &json!("spec.containers{web}"),
            &json!("kubelet, node-1"),
            &json!("Back-off restarting failed container"),
            &json!("10m"),
            &json!(7),
            &json!("web-1.17c3"),
        ]
    );
    let name = columns("", "Event").pop().expect("the Name column");
    assert_eq!((name.name.as_str(), name.priority), ("Name", 1));
}

#[test]
fn events_of_the_newer_api_use_event_time_series_and_reporting_controller() {
    let e = json!({
        "metadata": meta("e", 60),
        "involvedObject": {"kind": "Node"},
        "eventTime": "2024-05-01T11:59:00.123456Z",
        "series": {"count": 4, "lastObservedTime": "2024-05-01T11:59:50.000000Z"},
        "reportingController": "rkube-scheduler",
        "reason": "Scheduled", "type": "Normal", "message": "  assigned  ",
    });
    let r = row("", "Event", &e);
    assert_eq!(cell(&r, "Last Seen"), "10s");
    assert_eq!(cell(&r, "First Seen"), "59s");
    assert_eq!(cell(&r, "Count"), 4);
    assert_eq!(cell(&r, "Object"), "node");
    assert_eq!(cell(&r, "Source"), "rkube-scheduler");
    assert_eq!(cell(&r, "Message"), "assigned");

    let v1 = json!({
        "metadata": meta("e2", 60),
        "regarding": {"kind": "Deployment", "name": "web"},
        "eventTime": ago(30), "note": "Scaled up", "reason": "ScalingReplicaSet",
        "type": "Normal", "reportingController": "deployment-controller",
        "reportingInstance": "cm-1",
    });
    let r = row("events.k8s.io", "Event", &v1);
    assert_eq!(cell(&r, "Last Seen"), "30s");
    assert_eq!(cell(&r, "Object"), "deployment/web");
    assert_eq!(cell(&r, "Message"), "Scaled up");
    assert_eq!(cell(&r, "Source"), "deployment-controller, cm-1");
    assert_eq!(cell(&r, "Count"), 1);
}
