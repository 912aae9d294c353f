//! What an object counts against a ResourceQuota, as Kubernetes' quota evaluators count
//! it: object counts (`pods`, `services`, `count/deployments.apps`, …) and, for pods,
//! compute requests and limits; for claims, storage. Amounts are in the unit
//! [`quantity::is_milli`] gives (cpu in thousandths, the rest in base units).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity;

/// Resource name → amount.
pub type Usage = BTreeMap<String, i64>;

/// The compute resources a pod is charged for, with the names a quota may use for them.
const COMPUTE: &[(&str, &[&str], &[&str])] = &[
    ("cpu", &["cpu", "requests.cpu"], &["limits.cpu"]),
    ("memory", &["memory", "requests.memory"], &["limits.memory"]),
    (
        "ephemeral-storage",
        &["ephemeral-storage", "requests.ephemeral-storage"],
        &["limits.ephemeral-storage"],
    ),
];

/// Whether a pod in `phase` still holds its quota (Succeeded and Failed pods do not).
pub fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) && pod["metadata"]["deletionTimestamp"].is_null()
}

/// Everything `obj` (of resource `plural` in API group `group`) is charged for.
pub fn usage(group: &str, plural: &str, obj: &Value) -> Usage {
    let mut u = Usage::new();
    let counted = if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    };
    if group.is_empty() && plural == "pods" && !pod_counts(obj) {
        return u;
    }
    u.insert(counted, 1);
    if !group.is_empty() {
        return u;
    }
    match plural {
        "pods" => pod_usage(obj, &mut u),
        "services" => service_usage(obj, &mut u),
        "persistentvolumeclaims" => {
            u.insert(plural.into(), 1);
            let storage = obj["spec"]["resources"]["requests"]["storage"].as_str();
            let amount = storage.and_then(quantity::parse).unwrap_or(0);
            u.insert("requests.storage".into(), amount);
        }
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => {
            u.insert(plural.into(), 1);
        }
        _ => {}
    }
    u
}

fn service_usage(svc: &Value, u: &mut Usage) {
    u.insert("services".into(), 1);
    let kind = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
    let ports = svc["spec"]["ports"].as_array().map_or(0, Vec::len) as i64;
    let node_ports = match kind {
        "NodePort" | "LoadBalancer" => ports,
        _ => 0,
    };
    u.insert("services.nodeports".into(), node_ports);
    u.insert(
        "services.loadbalancers".into(),
        i64::from(kind == "LoadBalancer"),
    );
}

/// The amounts of `resource` ("cpu", …) in `field` ("requests", "limits") over the
/// containers: the sum of the app containers or the largest init container, whichever
/// is more, plus the pod's overhead.
fn pod_amount(spec: &Value, field: &str, resource: &str) -> i64 {
    let of = |c: &Value| {
        c["resources"][field][resource]
            .as_str()
            .and_then(|s| quantity::parse_for(resource, s))
            .unwrap_or(0)
    };
    let list = |k: &str| spec[k].as_array().cloned().unwrap_or_default();
    let sum: i64 = list("containers").iter().map(of).sum();
    let init = list("initContainers").iter().map(of).max().unwrap_or(0);
    let overhead = spec["overhead"][resource]
        .as_str()
        .and_then(|s| quantity::parse_for(resource, s))
        .unwrap_or(0);
    sum.max(init) + overhead
}

fn pod_usage(pod: &Value, u: &mut Usage) {
    u.insert("pods".into(), 1);
    let spec = &pod["spec"];
    for (resource, request_names, limit_names) in COMPUTE {
        let requests = pod_amount(spec, "requests", resource);
        let limits = pod_amount(spec, "limits", resource);
        for name in *request_names {
            u.insert((*name).into(), requests);
        }
        for name in *limit_names {
            u.insert((*name).into(), limits);
        }
    }
}

/// For a quota that limits compute resources, the ones some container of `pod` does not
/// state, with the containers that miss them: Kubernetes refuses such pods, since their
/// cost would be unknown.
pub fn unstated(pod: &Value, tracked: &[&str]) -> Vec<(String, Vec<String>)> {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod["spec"][k].as_array())
        .flatten()
        .collect();
    let mut out = Vec::new();
    for name in tracked {
        let (field, resource) = match name.split_once('.') {
            Some(("requests", r)) => ("requests", r),
            Some(("limits", r)) => ("limits", r),
            _ if COMPUTE.iter().any(|(r, _, _)| r == name) => ("requests", *name),
            _ => continue,
        };
        if !COMPUTE.iter().any(|(r, _, _)| *r == resource) {
            continue;
        }
        let missing: Vec<String> = containers
            .iter()
            .filter(|c| c["resources"][field][resource].is_null())
            .map(|c| c["name"].as_str().unwrap_or("").to_string())
            .collect();
        if !missing.is_empty() {
            out.push((name.to_string(), missing));
        }
    }
    out
}

/// The API group and resource whose objects a quota's `resource` counts, e.g.
/// `requests.cpu` → pods, `count/deployments.apps` → ("apps", "deployments").
pub fn source_of(resource: &str) -> Option<(String, String)> {
    let core = |p: &str| Some((String::new(), p.to_string()));
    if let Some(counted) = resource.strip_prefix("count/") {
        return Some(match counted.split_once('.') {
            Some((plural, group)) => (group.to_string(), plural.to_string()),
            None => (String::new(), counted.to_string()),
        });
    }
    match resource {
        "pods" => core("pods"),
        "services" | "services.nodeports" | "services.loadbalancers" => core("services"),
        "persistentvolumeclaims" | "requests.storage" => core("persistentvolumeclaims"),
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => core(resource),
        r if COMPUTE
            .iter()
            .any(|(_, reqs, lims)| reqs.contains(&r) || lims.contains(&r)) =>
        {
            core("pods")
        }
        _ => None,
    }
}

/// Whether a quota with `spec` (its `scopes` and `scopeSelector`) covers `obj`.
/// Scoped quotas cover pods only.
pub fn covers(spec: &Value, group: &str, plural: &str, obj: &Value) -> bool {
    let mut scopes: Vec<(String, String, Vec<String>)> = spec["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), vec![]))
        .collect();
    for e in spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let values = e["values"].as_array().into_iter().flatten();
        scopes.push((
            e["scopeName"].as_str().unwrap_or("").to_string(),
            e["operator"].as_str().unwrap_or("").to_string(),
            values.filter_map(Value::as_str).map(String::from).collect(),
        ));
    }
    if scopes.is_empty() {
        return true;
    }
    if !(group.is_empty() && plural == "pods") {
        return false;
    }
    scopes
        .iter()
        .all(|(scope, op, values)| scope_matches(scope, op, values, obj))
}

fn scope_matches(scope: &str, op: &str, values: &[String], pod: &Value) -> bool {
    let spec = &pod["spec"];
    let terminating = !spec["activeDeadlineSeconds"].is_null();
    let best_effort = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[k].as_array())
        .flatten()
        .all(|c| {
            let r = &c["resources"];
            let empty = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
            empty(&r["requests"]) && empty(&r["limits"])
        });
    match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "PriorityClass" => {
            let class = spec["priorityClassName"].as_str().unwrap_or("");
            match op {
                "In" => values.iter().any(|v| v == class),
                "NotIn" => !values.iter().any(|v| v == class),
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                _ => false,
            }
        }
        _ => false,
    }
}

/// The resources named in `hard`, with their limits in [`quantity::parse_for`] units.
/// A value that does not parse is an error naming it.
pub fn hard_of(hard: &Value) -> Result<Usage, String> {
    let mut out = Usage::new();
    for (name, v) in hard.as_object().into_iter().flatten() {
        let amount = v
            .as_str()
            .map(str::to_string)
            .or_else(|| v.as_i64().map(|n| n.to_string()))
            .and_then(|s| quantity::parse_for(name, &s))
            .ok_or_else(|| format!("spec.hard[{name}]: Invalid value: {v}: not a quantity"))?;
        out.insert(name.clone(), amount);
    }
    Ok(out)
}

/// `usage` as a quota status writes it, for the resources in `hard`.
pub fn to_status(hard: &Usage, usage: &Usage) -> Value {
    let m: serde_json::Map<String, Value> = hard
        .keys()
        .map(|k| {
            let v = usage.get(k).copied().unwrap_or(0);
            (k.clone(), Value::String(quantity::format_for(k, v)))
        })
        .collect();
    Value::Object(m)
}

#[cfg(test)]
mod tests;
