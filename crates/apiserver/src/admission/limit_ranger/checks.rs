//! LimitRanger's checks: the min, max and limit-to-request ratio of a range's items
//! against each container, the pod as a whole and a claim's storage request, with
//! Kubernetes' messages.

use serde_json::Value;

use super::rules::{List, Range, CLAIM, CONTAINER, POD};
use crate::error::FieldError;
use crate::quantity::Quantity;

/// Resources the pod-level `spec.resources` may set.
const POD_LEVEL: &[&str] = &["cpu", "memory"];

/// What one container requests and is limited to.
#[derive(Debug, Default)]
struct Resources {
    requests: List,
    limits: List,
    /// An init container that keeps running beside the others (`restartPolicy: Always`).
    sidecar: bool,
}

/// The quantities of the object at `v`, each named by its path in errors.
fn read_list(v: &Value, path: &str) -> Result<List, FieldError> {
    let mut out = List::new();
    for (name, q) in v.as_object().into_iter().flatten() {
        let parsed = Quantity::from_json(q)
            .map_err(|e| FieldError::invalid(format!("{path}[{name}]"), q, e.to_string()))?;
        out.insert(name.clone(), parsed);
    }
    Ok(out)
}

fn read_containers(pod: &Value, field: &str) -> Result<Vec<Resources>, FieldError> {
    let list = pod["spec"][field]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let path = format!("spec.{field}[{i}].resources");
            Ok(Resources {
                requests: read_list(&c["resources"]["requests"], &format!("{path}.requests"))?,
                limits: read_list(&c["resources"]["limits"], &format!("{path}.limits"))?,
                sidecar: c["restartPolicy"] == "Always",
            })
        })
        .collect()
}

fn add_into(total: &mut List, add: &List) {
    for (k, v) in add {
        total
            .entry(k.clone())
            .and_modify(|t| *t = t.saturating_add(v))
            .or_insert(*v);
    }
}

fn max_into(total: &mut List, other: &List) {
    for (k, v) in other {
        let t = total.entry(k.clone()).or_insert(*v);
        if v > t {
            *t = *v;
        }
    }
}

/// The pod's effective requests or limits, as Kubernetes computes them: the sum over
/// its containers and sidecars, at least what any init container needs while it runs
/// beside the sidecars started before it, replaced by the pod-level value where set.
fn pod_total(
    containers: &[Resources],
    init: &[Resources],
    pick: fn(&Resources) -> &List,
    pod_level: &List,
) -> List {
    let mut total = List::new();
    containers
        .iter()
        .for_each(|c| add_into(&mut total, pick(c)));
    let (mut sidecars, mut init_max) = (List::new(), List::new());
    for c in init {
        if c.sidecar {
            add_into(&mut total, pick(c));
            add_into(&mut sidecars, pick(c));
            max_into(&mut init_max, &sidecars);
        } else {
            let mut running = pick(c).clone();
            add_into(&mut running, &sidecars);
            max_into(&mut init_max, &running);
        }
    }
    max_into(&mut total, &init_max);
    for (k, v) in pod_level {
        if POD_LEVEL.contains(&k.as_str()) {
            total.insert(k.clone(), *v);
        }
    }
    total
}

fn min_check(type_: &str, name: &str, min: &Quantity, r: &Resources) -> Option<String> {
    let Some(req) = r.requests.get(name) else {
        return Some(format!(
            "minimum {name} usage per {type_} is {min}.  No request is specified"
        ));
    };
    if min > req {
        return Some(format!(
            "minimum {name} usage per {type_} is {min}, but request is {req}"
        ));
    }
    match r.limits.get(name) {
        Some(lim) if min > lim => Some(format!(
            "minimum {name} usage per {type_} is {min}, but limit is {lim}"
        )),
        _ => None,
    }
}

fn max_check(type_: &str, name: &str, max: &Quantity, r: &Resources) -> Option<String> {
    let Some(lim) = r.limits.get(name) else {
        return Some(format!(
            "maximum {name} usage per {type_} is {max}.  No limit is specified"
        ));
    };
    if lim > max {
        return Some(format!(
            "maximum {name} usage per {type_} is {max}, but limit is {lim}"
        ));
    }
    match r.requests.get(name) {
        Some(req) if req > max => Some(format!(
            "maximum {name} usage per {type_} is {max}, but request is {req}"
        )),
        _ => None,
    }
}

/// The max of a kind that has requests only (claims).
fn max_request_check(type_: &str, name: &str, max: &Quantity, requests: &List) -> Option<String> {
    match requests.get(name) {
        None => Some(format!(
            "maximum {name} usage per {type_} is {max}.  No request is specified"
        )),
        Some(req) if req > max => Some(format!(
            "maximum {name} usage per {type_} is {max}, but request is {req}"
        )),
        Some(_) => None,
    }
}

/// Whether `limit` is more than `ratio` times `request`, comparing magnitudes.
fn exceeds(limit: &Quantity, request: &Quantity, ratio: &Quantity) -> bool {
    let (lim, req) = (limit.milli().abs(), request.milli().abs());
    match (lim.checked_mul(1000), req.checked_mul(ratio.milli())) {
        (Some(l), Some(r)) => l > r,
        _ => lim as f64 * 1000.0 > req as f64 * ratio.milli() as f64,
    }
}

fn ratio_check(type_: &str, name: &str, ratio: &Quantity, r: &Resources) -> Option<String> {
    let prefix = format!("{name} max limit to request ratio per {type_} is {ratio}");
    let req = match r.requests.get(name) {
        Some(q) if !q.is_zero() => q,
        _ => {
            return Some(format!(
                "{prefix}, but no request is specified or request is 0"
            ))
        }
    };
    let lim = match r.limits.get(name) {
        Some(q) if !q.is_zero() => q,
        _ => return Some(format!("{prefix}, but no limit is specified or limit is 0")),
    };
    if !exceeds(lim, req, ratio) {
        return None;
    }
    let provided = lim.milli().abs() as f64 / req.milli().abs() as f64;
    Some(format!("{prefix}, but provided ratio is {provided:.6}"))
}

/// Every min, max and ratio violation of one item against one set of resources.
fn item_violations(type_: &str, item: &super::rules::Item, r: &Resources, out: &mut Vec<String>) {
    out.extend(
        item.min
            .iter()
            .filter_map(|(k, v)| min_check(type_, k, v, r)),
    );
    out.extend(
        item.max
            .iter()
            .filter_map(|(k, v)| max_check(type_, k, v, r)),
    );
    out.extend(
        item.ratio
            .iter()
            .filter_map(|(k, v)| ratio_check(type_, k, v, r)),
    );
}

/// Every violation of the range by the pod: its Container items checked against each
/// container and init container, its Pod items against the pod's totals. A quantity the
/// pod holds that is not one is an error naming its field.
pub fn pod_violations(range: &Range, pod: &Value) -> Result<Vec<String>, FieldError> {
    let containers = read_containers(pod, "containers")?;
    let init = read_containers(pod, "initContainers")?;
    let mut out = Vec::new();
    for item in &range.items {
        match item.type_.as_str() {
            CONTAINER => {
                for c in containers.iter().chain(&init) {
                    item_violations(CONTAINER, item, c, &mut out);
                }
            }
            POD => {
                let level = &pod["spec"]["resources"];
                let level_req = read_list(&level["requests"], "spec.resources.requests")?;
                let level_lim = read_list(&level["limits"], "spec.resources.limits")?;
                let total = Resources {
                    requests: pod_total(&containers, &init, |r| &r.requests, &level_req),
                    limits: pod_total(&containers, &init, |r| &r.limits, &level_lim),
                    sidecar: false,
                };
                item_violations(POD, item, &total, &mut out);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Every violation of the range's PersistentVolumeClaim items by the claim's
/// `spec.resources.requests`. On update (`old` set), a request the stored claim already
/// holds is not checked again.
pub fn claim_violations(
    range: &Range,
    claim: &Value,
    old: Option<&Value>,
) -> Result<Vec<String>, FieldError> {
    const PATH: &str = "spec.resources.requests";
    let requests = read_list(&claim["spec"]["resources"]["requests"], PATH)?;
    let old_requests = match old {
        // A stored claim that cannot be read is checked in full.
        Some(o) => read_list(&o["spec"]["resources"]["requests"], PATH).unwrap_or_default(),
        None => List::new(),
    };
    let unchanged =
        |k: &str| matches!((requests.get(k), old_requests.get(k)), (Some(a), Some(b)) if a == b);
    let r = Resources {
        requests: requests.clone(),
        ..Resources::default()
    };
    let mut out = Vec::new();
    for item in range.items.iter().filter(|i| i.type_ == CLAIM) {
        for (k, v) in item.min.iter().filter(|(k, _)| !unchanged(k)) {
            out.extend(min_check(CLAIM, k, v, &r));
        }
        for (k, v) in item.max.iter().filter(|(k, _)| !unchanged(k)) {
            out.extend(max_request_check(CLAIM, k, v, &requests));
        }
    }
    Ok(out)
}
