//! The tables of `rkube ctl get`: kubectl's columns for each kind and one row per object.

use serde_json::{json, Value};

use super::age;

fn pod_row(p: &Value, wide: bool) -> Vec<String> {
    let statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = p["spec"]["containers"].as_array().map_or(0, |c| c.len());
    let ready = statuses
        .iter()
        .filter(|s| s["ready"] == json!(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|s| s["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let waiting = statuses
        .iter()
        .find_map(|s| s["state"]["waiting"]["reason"].as_str().map(String::from));
    let status = if p["metadata"]["deletionTimestamp"].is_string() {
        "Terminating".to_string()
    } else {
        waiting.unwrap_or_else(|| {
            p["status"]["phase"]
                .as_str()
                .unwrap_or("Pending")
                .to_string()
        })
    };
    let mut row = vec![
        format!("{ready}/{total}"),
        status,
        restarts.to_string(),
        age(&p["metadata"]["creationTimestamp"]),
    ];
    if wide {
        row.push(
            p["status"]["podIP"]
                .as_str()
                .unwrap_or("<none>")
                .to_string(),
        );
        row.push(
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or("<none>")
                .to_string(),
        );
    }
    row
}

/// kubectl's CONDITION of a CertificateSigningRequest: `Approved,Issued`, `Denied`,
/// `Pending`…
fn csr_condition(o: &Value) -> String {
    let mut parts: Vec<String> = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["type"].as_str().map(String::from))
        .collect();
    if o["status"]["certificate"]
        .as_str()
        .is_some_and(|c| !c.is_empty())
    {
        parts.push("Issued".into());
    }
    if parts.is_empty() {
        "Pending".into()
    } else {
        parts.join(",")
    }
}

fn columns(kind: &str, wide: bool) -> Vec<&'static str> {
    match kind {
        "Pod" if wide => vec!["READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
        "Pod" => vec!["READY", "STATUS", "RESTARTS", "AGE"],
        "Deployment" => vec!["READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "ReplicaSet" => vec!["DESIRED", "CURRENT", "READY", "AGE"],
        "Service" => vec!["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        "Node" => vec!["STATUS", "ROLES", "AGE", "VERSION"],
        "Namespace" => vec!["STATUS", "AGE"],
        "CertificateSigningRequest" => vec!["AGE", "SIGNERNAME", "REQUESTOR", "CONDITION"],
        _ => vec!["AGE"],
    }
}

/// An integer field as kubectl prints it: `0` when absent.
fn count(v: &Value) -> String {
    v.as_i64().unwrap_or(0).to_string()
}

/// A string field, or `default` when absent.
fn text(v: &Value, default: &str) -> String {
    v.as_str().unwrap_or(default).to_string()
}

/// kubectl's PORT(S) of a Service: `80/TCP`, `80:30080/TCP` with a node port, `<none>`.
fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = o["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) => format!("{}:{np}/{protocol}", p["port"]),
                None => format!("{}/{protocol}", p["port"]),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

/// kubectl's STATUS of a Node: its Ready condition, then `,SchedulingDisabled` when
/// cordoned.
fn node_status(o: &Value) -> String {
    let ready = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            if c["status"] == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    let unsched = if o["spec"]["unschedulable"] == json!(true) {
        ",SchedulingDisabled"
    } else {
        ""
    };
    format!("{ready}{unsched}")
}

/// The cells after NAME, matching `columns(kind, wide)`.
fn row(kind: &str, o: &Value, wide: bool) -> Vec<String> {
    let created = age(&o["metadata"]["creationTimestamp"]);
    match kind {
        "Pod" => pod_row(o, wide),
        "CertificateSigningRequest" => vec![
            created,
            text(&o["spec"]["signerName"], ""),
            text(&o["spec"]["username"], ""),
            csr_condition(o),
        ],
        "Deployment" => vec![
            format!(
                "{}/{}",
                count(&o["status"]["readyReplicas"]),
                count(&o["spec"]["replicas"])
            ),
            count(&o["status"]["updatedReplicas"]),
            count(&o["status"]["availableReplicas"]),
            created,
        ],
        "ReplicaSet" => vec![
            count(&o["spec"]["replicas"]),
            count(&o["status"]["replicas"]),
            count(&o["status"]["readyReplicas"]),
            created,
        ],
        "Service" => vec![
            text(&o["spec"]["type"], "ClusterIP"),
            text(&o["spec"]["clusterIP"], "<none>"),
            "<none>".to_string(),
            service_ports(o),
            created,
        ],
        "Node" => vec![
            node_status(o),
            "<none>".into(),
            created,
            text(&o["status"]["nodeInfo"]["kubeletVersion"], ""),
        ],
        "Namespace" => vec![text(&o["status"]["phase"], "Active"), created],
        _ => vec![created],
    }
}

pub fn print_table(kind: &str, items: &[Value], all_ns: bool, wide: bool, header: bool) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut head: Vec<String> = Vec::new();
    if all_ns {
        head.push("NAMESPACE".into());
    }
    head.push("NAME".into());
    head.extend(columns(kind, wide).iter().map(|s| s.to_string()));
    if header {
        rows.push(head);
    }
    for o in items {
        let mut r = Vec::new();
        if all_ns {
            r.push(
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
        r.push(o["metadata"]["name"].as_str().unwrap_or("").to_string());
        r.extend(row(kind, o, wide));
        rows.push(r);
    }
    let ncol = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncol)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_per_kind() {
        let cases = [
            (
                "Service",
                json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "ports": [
                    {"port": 80, "nodePort": 30080},
                    {"port": 53, "protocol": "UDP"}]}}),
                vec![
                    "NodePort",
                    "10.96.0.9",
                    "<none>",
                    "80:30080/TCP,53/UDP",
                    "<unknown>",
                ],
            ),
            (
                "Service",
                json!({}),
                vec!["ClusterIP", "<none>", "<none>", "<none>", "<unknown>"],
            ),
            (
                "Node",
                json!({"spec": {"unschedulable": true}, "status": {
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "nodeInfo": {"kubeletVersion": "v1.31"}}}),
                vec![
                    "NotReady,SchedulingDisabled",
                    "<none>",
                    "<unknown>",
                    "v1.31",
                ],
            ),
            (
                "Node",
                json!({}),
                vec!["Unknown", "<none>", "<unknown>", ""],
            ),
            (
                "Deployment",
                json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3}}),
                vec!["2/3", "3", "0", "<unknown>"],
            ),
            (
                "CertificateSigningRequest",
                json!({"spec": {"signerName": "kubernetes.io/kubelet-serving"}}),
                vec!["<unknown>", "kubernetes.io/kubelet-serving", "", "Pending"],
            ),
            ("Namespace", json!({}), vec!["Active", "<unknown>"]),
        ];
        for (kind, o, want) in cases {
            assert_eq!(row(kind, &o, false), want, "{kind} {o}");
        }
    }
}
