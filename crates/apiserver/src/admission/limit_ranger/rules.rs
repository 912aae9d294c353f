//! The rules of LimitRanger, free of any cache: reading LimitRanges, defaulting a pod's
//! container resources from them, and the min, max and ratio checks with Kubernetes'
//! messages.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use serde_json::{Map, Value};

use crate::error::{FieldError, FieldErrorKind};
use crate::quantity::Quantity;

/// The annotation naming the resources LimitRanger set on a pod.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

pub const CONTAINER: &str = "Container";
pub const POD: &str = "Pod";
pub const CLAIM: &str = "PersistentVolumeClaim";

/// Quantities by resource name, in name order.
pub type List = BTreeMap<String, Quantity>;

/// One `spec.limits` entry, its quantities read.
#[derive(Debug, Default)]
pub struct Item {
    pub type_: String,
    pub min: List,
    pub max: List,
    pub default: List,
    pub default_request: List,
    pub ratio: List,
}

/// A LimitRange as the rules read it.
#[derive(Debug)]
pub struct Range {
    pub items: Vec<Item>,
}

fn read_api_list(
    list: &Option<BTreeMap<String, ApiQuantity>>,
    path: &str,
) -> Result<List, FieldError> {
    let mut out = List::new();
    for (name, q) in list.iter().flatten() {
        let parsed =
            q.0.trim().parse().map_err(|e| {
                FieldError::invalid(format!("{path}[{name}]"), &q.0, format!("{e}"))
            })?;
        out.insert(name.clone(), parsed);
    }
    Ok(out)
}

fn fill_missing(into: &mut List, from: &List) {
    for (k, v) in from {
        into.entry(k.clone()).or_insert(*v);
    }
}

impl Item {
    fn read(item: &LimitRangeItem, path: &str) -> Result<Item, FieldError> {
        let mut out = Item {
            type_: item.type_.clone(),
            min: read_api_list(&item.min, &format!("{path}.min"))?,
            max: read_api_list(&item.max, &format!("{path}.max"))?,
            default: read_api_list(&item.default, &format!("{path}.default"))?,
            default_request: read_api_list(
                &item.default_request,
                &format!("{path}.defaultRequest"),
            )?,
            ratio: read_api_list(
                &item.max_limit_request_ratio,
                &format!("{path}.maxLimitRequestRatio"),
            )?,
        };
        if out.type_ == CONTAINER {
            // Kubernetes' LimitRange defaulting: the default limit falls back to the max,
            // the default request to the default limit, then to the min.
            fill_missing(&mut out.default, &out.max);
            fill_missing(&mut out.default_request, &out.default);
            fill_missing(&mut out.default_request, &out.min);
        }
        Ok(out)
    }
}

impl Range {
    /// Reads a stored LimitRange; a field that does not hold a quantity is named.
    pub fn from_json(v: &Value) -> Result<Range, FieldError> {
        let lr: LimitRange = serde_json::from_value(v.clone()).map_err(|e| FieldError {
            path: String::new(),
            kind: FieldErrorKind::Type(e.to_string()),
        })?;
        let items = lr
            .spec
            .iter()
            .flat_map(|s| s.limits.iter())
            .enumerate()
            .map(|(i, item)| Item::read(item, &format!("spec.limits[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Range { items })
    }

    fn items_of<'a>(&'a self, type_: &'a str) -> impl Iterator<Item = &'a Item> + 'a {
        self.items.iter().filter(move |i| i.type_ == type_)
    }

    /// The default limits and requests of the range's Container items.
    fn container_defaults(&self) -> (List, List) {
        let (mut limits, mut requests) = (List::new(), List::new());
        for item in self.items_of(CONTAINER) {
            limits.extend(item.default.iter().map(|(k, v)| (k.clone(), *v)));
            requests.extend(item.default_request.iter().map(|(k, v)| (k.clone(), *v)));
        }
        (limits, requests)
    }
}

/// The container objects of `spec[field]`.
fn containers_mut<'a>(
    pod: &'a mut Value,
    field: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    pod.pointer_mut(&format!("/spec/{field}"))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// `m[key]` as an object, created when it is missing or null; `None` for another type.
fn object_entry<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let v = m.entry(key).or_insert(Value::Null);
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
}

/// The resource names of `resources[field]` of a container.
fn names(container: &Map<String, Value>, field: &str) -> Vec<String> {
    container
        .get("resources")
        .and_then(|r| r.get(field))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Sets `values` missing from `resources[field]`; returns the names set, in order.
fn set_missing(container: &mut Map<String, Value>, field: &str, values: &List) -> Vec<String> {
    let present = names(container, field);
    let missing: Vec<_> = values
        .iter()
        .filter(|(k, _)| !present.contains(k))
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    let Some(list) = object_entry(container, "resources").and_then(|r| object_entry(r, field))
    else {
        return Vec::new();
    };
    for (k, v) in &missing {
        list.insert((*k).clone(), Value::String(v.to_string()));
    }
    missing.into_iter().map(|(k, _)| k.clone()).collect()
}

/// Kubernetes' pod defaulting: a resource with a limit and no request requests its limit.
fn requests_from_limits(container: &mut Map<String, Value>) {
    let Some(limits) = container
        .get("resources")
        .and_then(|r| r.get("limits"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let present = names(container, "requests");
    if limits.keys().all(|k| present.contains(k)) {
        return;
    }
    if let Some(requests) =
        object_entry(container, "resources").and_then(|r| object_entry(r, "requests"))
    {
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
}

/// Sets one range's defaults on every container; returns the annotation's phrases.
fn merge_range(range: &Range, pod: &mut Value) -> Vec<String> {
    let (limits, requests) = range.container_defaults();
    let mut notes = Vec::new();
    for (field, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        for c in containers_mut(pod, field) {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let set_limits = set_missing(c, "limits", &limits);
            let set_requests = set_missing(c, "requests", &requests);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {what} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
            }
        }
    }
    notes
}

/// Applies the ranges' default limits and requests to the pod's containers and init
/// containers, and records them in the `kubernetes.io/limit-ranger` annotation, which,
/// as in Kubernetes, tells what the last range to set anything set. Returns the
/// annotation when one was set.
pub fn apply_defaults(ranges: &[Range], pod: &mut Value) -> Option<String> {
    if ranges.is_empty() {
        return None;
    }
    for field in ["containers", "initContainers"] {
        containers_mut(pod, field).for_each(requests_from_limits);
    }
    let mut annotation = None;
    for range in ranges {
        let notes = merge_range(range, pod);
        if !notes.is_empty() {
            annotation = Some(format!("LimitRanger plugin set: {}", notes.join("; ")));
        }
    }
    let text = annotation?;
    let annotations = pod
        .as_object_mut()
        .and_then(|p| object_entry(p, "metadata"))
        .and_then(|m| object_entry(m, "annotations"))?;
    annotations.insert(ANNOTATION.to_string(), Value::String(text.clone()));
    Some(text)
}

/// Kubernetes' joining of several errors: alone as is; several, deduplicated, in brackets.
pub fn aggregate(messages: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for m in messages {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    match seen.as_slice() {
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}
