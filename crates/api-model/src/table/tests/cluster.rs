//! The rows of autoscaling, policy, coordination, discovery, RBAC, certificates, admission
//! and scheduling kinds; the default table; the Table document.

use serde_json::{json, Value};

use super::*;

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(30)})
}

#[test]
fn an_hpa_shows_current_against_target_for_its_first_two_metrics() {
    let hpa = json!({"metadata": meta("web"), "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 2, "maxReplicas": 10,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}},
            {"type": "Pods", "pods": {"metric": {"name": "rps"},
                "target": {"type": "AverageValue", "averageValue": "1k"}}},
            {"type": "External", "external": {"metric": {"name": "queue"},
                "target": {"type": "Value", "value": "30"}}},
        ]},
        "status": {"currentReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 42}}},
        ]},
    });
    let r = row("autoscaling", "HorizontalPodAutoscaler", &hpa);
    assert_eq!(cell(&r, "Reference"), "Deployment/web");
    assert_eq!(
        cell(&r, "Targets"),
        "cpu: 42%/80%, <unknown>/1k + 1 more..."
    );
    assert_eq!(cell(&r, "MinPods"), "2");
    assert_eq!(cell(&r, "MaxPods"), 10);
    assert_eq!(cell(&r, "Replicas"), 3);

    let bare = json!({"metadata": meta("x"), "spec": {"scaleTargetRef":
        {"kind": "StatefulSet", "name": "db"}, "maxReplicas": 3}});
    let r = row("autoscaling", "HorizontalPodAutoscaler", &bare);
    assert_eq!(cell(&r, "Targets"), "<none>");
    assert_eq!(cell(&r, "MinPods"), "<unset>");
}

#[test]
fn a_pdb_shows_its_bounds_and_allowed_disruptions() {
    let pdb = json!({"metadata": meta("web"), "spec": {"minAvailable": "50%"},
        "status": {"disruptionsAllowed": 1}});
    let r = row("policy", "PodDisruptionBudget", &pdb);
    assert_eq!(cell(&r, "Min Available"), "50%");
    assert_eq!(cell(&r, "Max Unavailable"), "N/A");
    assert_eq!(cell(&r, "Allowed Disruptions"), 1);
}

#[test]
fn leases_and_endpoint_slices() {
    let lease = json!({"metadata": meta("rkube-scheduler"),
        "spec": {"holderIdentity": "cp-1_3f2a", "leaseDurationSeconds": 15}});
    assert_eq!(
        cell(&row("coordination.k8s.io", "Lease", &lease), "Holder"),
        "cp-1_3f2a"
    );
    let slice = json!({"metadata": meta("web-abc12"), "addressType": "IPv4",
    "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}, {"port": 9090}],
    "endpoints": [
        {"addresses": ["10.244.0.5"]}, {"addresses": ["10.244.1.6", "10.244.1.7"]},
    ]});
    let r = row("discovery.k8s.io", "EndpointSlice", &slice);
    assert_eq!(cell(&r, "AddressType"), "IPv4");
    assert_eq!(cell(&r, "Ports"), "80,metrics,* + 1 more...");
    assert_eq!(cell(&r, "Endpoints"), "10.244.0.5,10.244.1.6,10.244.1.7");
    let empty = json!({"metadata": meta("e"), "addressType": "IPv6"});
    let r = row("discovery.k8s.io", "EndpointSlice", &empty);
    assert_eq!(
        (cell(&r, "Ports"), cell(&r, "Endpoints")),
        (&json!("<unset>"), &json!("<unset>"))
    );
}

#[test]
fn a_role_binding_shows_its_role_and_its_subjects_by_kind() {
    let rb = json!({"metadata": meta("read-pods"),
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
    "subjects": [
        {"kind": "User", "name": "jane"}, {"kind": "Group", "name": "dev"},
        {"kind": "User", "name": "joe"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
    ]});
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        let r = row("rbac.authorization.k8s.io", kind, &rb);
        assert_eq!(cell(&r, "Role"), "ClusterRole/view");
        assert_eq!(cell(&r, "Users"), "jane, joe");
        assert_eq!(cell(&r, "Groups"), "dev");
        assert_eq!(cell(&r, "ServiceAccounts"), "build/ci");
    }
}

#[test]
fn a_csr_shows_signer_requestor_duration_and_condition() {
    let mut csr = json!({"metadata": meta("node-csr-1"), "spec": {
        "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
        "username": "system:node:node-1", "expirationSeconds": 86_400, "request": "LS0t"},
        "status": {}});
    let r = row("certificates.k8s.io", "CertificateSigningRequest", &csr);
    assert_eq!(cell(&r, "Requestor"), "system:node:node-1");
    assert_eq!(cell(&r, "RequestedDuration"), "24h");
    assert_eq!(cell(&r, "Condition"), "Pending");
    csr["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}],
        "certificate": "LS0tLS1CRUdJTi"});
    let r = row("certificates.k8s.io", "CertificateSigningRequest", &csr);
    assert_eq!(cell(&r, "Condition"), "Approved,Issued");
    csr["status"] =
        json!({"conditions": [{"type": "Approved"}, {"type": "Denied"}, {"type": "Failed"}]});
    let r = row("certificates.k8s.io", "CertificateSigningRequest", &csr);
    assert_eq!(cell(&r, "Condition"), "Denied,Failed");
}

#[test]
fn webhook_configurations_count_webhooks_and_priority_classes_show_their_value() {
    let w = json!({"metadata": meta("policy"), "webhooks": [{"name": "a.example.com"}, {"name": "b.example.com"}]});
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        assert_eq!(
            cell(&row("admissionregistration.k8s.io", kind, &w), "Webhooks"),
            2
        );
    }
    let pc = json!({"metadata": meta("high"), "value": 1_000_000, "globalDefault": true,
        "preemptionPolicy": "Never"});
    let r = row("scheduling.k8s.io", "PriorityClass", &pc);
    assert_eq!(cell(&r, "Value"), 1_000_000);
    assert_eq!(cell(&r, "Global-Default"), true);
    assert_eq!(cell(&r, "PreemptionPolicy"), "Never");
}

#[test]
fn kinds_without_a_printer_get_name_and_created_at() {
    let obj =
        json!({"metadata": {"name": "pod-reader", "creationTimestamp": "2024-04-30T09:15:00Z"}});
    for (group, kind) in [
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("", "LimitRange"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("example.com", "Unheard"),
    ] {
        let cols = columns(group, kind);
        let names: Vec<(&str, ColumnType)> =
            cols.iter().map(|c| (c.name.as_str(), c.type_)).collect();
        assert_eq!(
            names,
            [
                ("Name", ColumnType::String),
                ("Created At", ColumnType::Date)
            ],
            "{kind}"
        );
        assert_eq!(
            cells(group, kind, &obj, NOW),
            [json!("pod-reader"), json!("2024-04-30T09:15:00Z")]
        );
    }
    let offset =
        json!({"metadata": {"name": "r", "creationTimestamp": "2024-04-30T11:15:00+02:00"}});
    assert_eq!(
        cells("", "LimitRange", &offset, NOW)[1],
        "2024-04-30T09:15:00Z"
    );
    let unset = json!({"metadata": {"name": "r"}});
    assert_eq!(
        cells("", "LimitRange", &unset, NOW)[1],
        "0001-01-01T00:00:00Z"
    );
}

#[test]
fn every_column_of_every_printer_is_described() {
    let kinds = [
        ("", "Pod"),
        ("", "Node"),
        ("", "Namespace"),
        ("", "Service"),
        ("", "Endpoints"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "Event"),
        ("", "ReplicationController"),
        ("", "PersistentVolume"),
        ("", "PersistentVolumeClaim"),
        ("", "LimitRange"),
        ("", "ResourceQuota"),
        ("apps", "ReplicaSet"),
        ("apps", "Deployment"),
        ("apps", "DaemonSet"),
        ("apps", "StatefulSet"),
        ("apps", "ControllerRevision"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("coordination.k8s.io", "Lease"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("policy", "PodDisruptionBudget"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
        ),
        ("scheduling.k8s.io", "PriorityClass"),
    ];
    for (group, kind) in kinds {
        for c in columns(group, kind) {
            assert!(
                !c.description.is_empty(),
                "{kind} column {} has no description",
                c.name
            );
        }
        // Even an empty object prints a full row.
        assert_eq!(
            cells(group, kind, &json!({}), NOW).len(),
            columns(group, kind).len(),
            "{kind}"
        );
    }
}

#[test]
fn a_table_carries_columns_rows_and_list_metadata() {
    let cols = columns("", "Namespace");
    let ns = json!({"metadata": {"name": "default", "creationTimestamp": ago(86_400 * 400)},
        "status": {"phase": "Active"}});
    let printer = Printer::for_kind("", "Namespace");
    let rows = vec![
        printer.row(&ns, json!({"kind": "PartialObjectMetadata"}), NOW),
        TableRow::new(vec![json!("bare")], Value::Null),
    ];
    let t = table(&cols, rows, "4711", "");
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({"resourceVersion": "4711"}));
    assert_eq!(
        t["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name",
            "description": cols[0].description, "priority": 0})
    );
    assert_eq!(t["columnDefinitions"][2]["name"], "Age");
    assert_eq!(
        t["rows"][0],
        json!({"cells": ["default", "Active", "400d"], "object": {"kind": "PartialObjectMetadata"}})
    );
    assert_eq!(t["rows"][1], json!({"cells": ["bare"]}));
    let paged = table(&[], Vec::new(), "", "eyJydiI6NX0");
    assert_eq!(paged["metadata"], json!({"continue": "eyJydiI6NX0"}));
    assert_eq!(paged["rows"], json!([]));
}
