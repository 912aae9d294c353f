//! Rows of the core kinds other than Pod, Event and the volumes: Node (`Ready,
//! SchedulingDisabled`, roles from labels), Namespace, Service (`80:30080/TCP`),
//! Endpoints, ConfigMap, Secret, ServiceAccount, ReplicationController, ResourceQuota.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::Value;

use super::format::{
    age, condition, containers, int, items, labels, len, name, or_none, quantity, text,
};
use super::ColumnType::{Integer as I, String as S};
use super::{col, wide, Doc, Printer, AGE, CONTAINERS, IMAGES, NAME};

const NODE_INFO: &str = "io.k8s.api.core.v1.NodeSystemInfo";
const NODE_STATUS: &str = "io.k8s.api.core.v1.NodeStatus";

pub(super) static NODE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", S, Doc::Text("The status of the node")),
        col("Roles", S, Doc::Text("The roles of the node")),
        AGE,
        col("Version", S, Doc::Field(NODE_INFO, "kubeletVersion")),
        wide("Internal-IP", S, Doc::Field(NODE_STATUS, "addresses")),
        wide("External-IP", S, Doc::Field(NODE_STATUS, "addresses")),
        wide("OS-Image", S, Doc::Field(NODE_INFO, "osImage")),
        wide("Kernel-Version", S, Doc::Field(NODE_INFO, "kernelVersion")),
        wide(
            "Container-Runtime",
            S,
            Doc::Field(NODE_INFO, "containerRuntimeVersion"),
        ),
    ],
    cells: node_cells,
    conditions: None,
};

/// The label prefix that gives a node a role (`node-role.kubernetes.io/control-plane`).
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// The older label whose value is the node's role.
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

fn node_cells(node: &Value, now: i64) -> Vec<Value> {
    let status = &node["status"];
    let mut state = match condition(&status["conditions"], "Ready") {
        None => "Unknown".to_string(),
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
    };
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        state.push_str(",SchedulingDisabled");
    }
    let info = &status["nodeInfo"];
    let or_unknown = |v: &Value| -> Value {
        match text(v) {
            "" => "<unknown>",
            s => s,
        }
        .into()
    };
    vec![
        name(node),
        state.into(),
        node_roles(node).into(),
        age(node, now),
        text(&info["kubeletVersion"]).into(),
        node_address(node, "InternalIP"),
        node_address(node, "ExternalIP"),
        or_unknown(&info["osImage"]),
        or_unknown(&info["kernelVersion"]),
        or_unknown(&info["containerRuntimeVersion"]),
    ]
}

/// The node's roles, sorted, joined with `,`; `<none>` without any.
fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = node["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix(NODE_ROLE_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if k == NODE_ROLE_LABEL && !text(v).is_empty() {
                roles.insert(text(v));
            }
        }
    }
    if roles.is_empty() {
        return "<none>".to_string();
    }
    roles.into_iter().collect::<Vec<_>>().join(",")
}

/// The node's first address of type `ty`, or `<none>`.
fn node_address(node: &Value, ty: &str) -> Value {
    items(&node["status"]["addresses"])
        .iter()
        .find(|a| text(&a["type"]) == ty)
        .map_or("<none>", |a| text(&a["address"]))
        .into()
}

pub(super) static NAMESPACE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", S, Doc::Text("The status of the namespace")),
        AGE,
    ],
    cells: |ns, now| vec![name(ns), text(&ns["status"]["phase"]).into(), age(ns, now)],
    conditions: None,
};

const SERVICE_SPEC: &str = "io.k8s.api.core.v1.ServiceSpec";

pub(super) static SERVICE: Printer = Printer {
    columns: &[
        NAME,
        col("Type", S, Doc::Field(SERVICE_SPEC, "type")),
        col("Cluster-IP", S, Doc::Field(SERVICE_SPEC, "clusterIP")),
        col("External-IP", S, Doc::Field(SERVICE_SPEC, "externalIPs")),
        col("Port(s)", S, Doc::Field(SERVICE_SPEC, "ports")),
        AGE,
        wide("Selector", S, Doc::Field(SERVICE_SPEC, "selector")),
    ],
    cells: service_cells,
    conditions: None,
};

fn service_cells(svc: &Value, now: i64) -> Vec<Value> {
    let spec = &svc["spec"];
    // The type defaults to ClusterIP.
    let ty = match text(&spec["type"]) {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = items(&spec["clusterIPs"])
        .first()
        .map_or_else(|| text(&spec["clusterIP"]), text);
    let ports = service_ports(spec);
    vec![
        name(svc),
        ty.into(),
        or_none(cluster_ip),
        service_external_ip(svc, ty).into(),
        or_none(&ports),
        age(svc, now),
        labels(&spec["selector"]).into(),
    ]
}

/// `port/PROTO`, or `port:nodePort/PROTO` for a port open on the nodes, joined with `,`.
fn service_ports(spec: &Value) -> String {
    let mut out = String::new();
    for (i, p) in items(&spec["ports"]).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let protocol = match text(&p["protocol"]) {
            "" => "TCP",
            proto => proto,
        };
        let port = int(&p["port"]);
        let _ = match int(&p["nodePort"]) {
            n if n > 0 => write!(out, "{port}:{n}/{protocol}"),
            _ => write!(out, "{port}/{protocol}"),
        };
    }
    out
}

/// The addresses a Service is reached at from outside, by type: its external IPs, the
/// load balancer's ingress points (`<pending>` until it has one), the external name.
fn service_external_ip(svc: &Value, ty: &str) -> String {
    let external: Vec<&str> = items(&svc["spec"]["externalIPs"])
        .iter()
        .map(text)
        .collect();
    match ty {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = items(&svc["status"]["loadBalancer"]["ingress"])
                .iter()
                .filter_map(|i| match (text(&i["ip"]), text(&i["hostname"])) {
                    ("", "") => None,
                    ("", host) => Some(host),
                    (ip, _) => Some(ip),
                })
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external).collect();
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(&svc["spec"]["externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

pub(super) static ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Endpoints",
            S,
            Doc::Field("io.k8s.api.core.v1.Endpoints", "subsets"),
        ),
        AGE,
    ],
    cells: |ep, now| vec![name(ep), endpoints(ep).into(), age(ep, now)],
    conditions: None,
};

/// Up to three `ip:port` endpoints (bare IPs for a subset without ports), then how many
/// more; `<none>` without subsets.
fn endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = items(&ep["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::with_capacity(MAX);
    let mut count = 0;
    for ss in subsets {
        let addresses = items(&ss["addresses"]);
        let ports = items(&ss["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses.iter().take(MAX - list.len()) {
                list.push(text(&a["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses.iter().take(MAX - list.len()) {
                list.push(host_port(text(&a["ip"]), int(&p["port"])));
            }
        }
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

/// `ip:port`, with an IPv6 address in brackets.
fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

pub(super) static CONFIG_MAP: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Data",
            I,
            Doc::Field("io.k8s.api.core.v1.ConfigMap", "data"),
        ),
        AGE,
    ],
    cells: |cm, now| {
        let n = len(&cm["data"]) + len(&cm["binaryData"]);
        vec![name(cm), n.into(), age(cm, now)]
    },
    conditions: None,
};

pub(super) static SECRET: Printer = Printer {
    columns: &[
        NAME,
        col("Type", S, Doc::Field("io.k8s.api.core.v1.Secret", "type")),
        col("Data", I, Doc::Field("io.k8s.api.core.v1.Secret", "data")),
        AGE,
    ],
    cells: |s, now| {
        // The type defaults to Opaque.
        let ty = match text(&s["type"]) {
            "" => "Opaque",
            t => t,
        };
        vec![name(s), ty.into(), len(&s["data"]).into(), age(s, now)]
    },
    conditions: None,
};

pub(super) static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Secrets",
            I,
            Doc::Field("io.k8s.api.core.v1.ServiceAccount", "secrets"),
        ),
        AGE,
    ],
    cells: |sa, now| vec![name(sa), len(&sa["secrets"]).into(), age(sa, now)],
    conditions: None,
};

const RC_SPEC: &str = "io.k8s.api.core.v1.ReplicationControllerSpec";
const RC_STATUS: &str = "io.k8s.api.core.v1.ReplicationControllerStatus";

pub(super) static REPLICATION_CONTROLLER: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", I, Doc::Field(RC_SPEC, "replicas")),
        col("Current", I, Doc::Field(RC_STATUS, "replicas")),
        col("Ready", I, Doc::Field(RC_STATUS, "readyReplicas")),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", S, Doc::Field(RC_SPEC, "selector")),
    ],
    cells: |rc, now| {
        let (names, images) = containers(&rc["spec"]["template"]["spec"]);
        vec![
            name(rc),
            rc["spec"]["replicas"].as_i64().unwrap_or(1).into(),
            int(&rc["status"]["replicas"]).into(),
            int(&rc["status"]["readyReplicas"]).into(),
            age(rc, now),
            names,
            images,
            labels(&rc["spec"]["selector"]).into(),
        ]
    },
    conditions: None,
};

pub(super) static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Request",
            S,
            Doc::Text(
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
        ),
        col(
            "Limit",
            S,
            Doc::Text(
                "Limits control the maximum amount of cpu/memory that a container may use \
                 independent of contention on the node.",
            ),
        ),
        AGE,
    ],
    cells: quota_cells,
    conditions: None,
};

/// `resource: used/hard` for every hard limit, sorted by resource; `limits.*` in the Limit
/// column, the rest in Request.
fn quota_cells(q: &Value, now: i64) -> Vec<Value> {
    let status = &q["status"];
    let mut hard: Vec<(&String, &Value)> = status["hard"]
        .as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    hard.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut request = String::new();
    let mut limit = String::new();
    for (resource, amount) in hard {
        let column = if resource.starts_with("limits.") {
            &mut limit
        } else {
            &mut request
        };
        if !column.is_empty() {
            column.push_str(", ");
        }
        let used = quantity(&status["used"][resource.as_str()]);
        let _ = write!(column, "{resource}: {used}/{}", quantity(amount));
    }
    vec![name(q), request.into(), limit.into(), age(q, now)]
}
