//! Reading fields of an object for printing, and the notations Kubernetes' printers share:
//! label maps (`app=web,tier=db`), label selectors (`app=web,env in (a,b)`), container
//! names and images, access modes (`RWO,RWX`), quantities, and lists cut at three
//! (`a,b,c + 2 more...`).

use std::fmt::Write;

use serde_json::{Map, Value};

use crate::quantity::Quantity;

/// The string at `v`, or `""`.
pub(crate) fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The integer at `v`, or 0.
pub(crate) fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or(0)
}

/// The list at `v`, or an empty one.
pub(crate) fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// How many entries the map or list at `v` has.
pub(crate) fn len(v: &Value) -> i64 {
    let n = match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    n as i64
}

/// The object's name, as a cell.
pub(crate) fn name(obj: &Value) -> Value {
    text(&obj["metadata"]["name"]).into()
}

/// The object's age at `now`, as a cell.
pub(crate) fn age(obj: &Value, now: i64) -> Value {
    super::time::since(&obj["metadata"]["creationTimestamp"], now).into()
}

/// `s`, or `<none>` when it is empty.
pub(crate) fn or_none(s: &str) -> Value {
    if s.is_empty() { "<none>" } else { s }.into()
}

/// A string map as `k=v,k2=v2`, keys sorted; `<none>` when empty (`labels.FormatLabels`).
pub(crate) fn labels(map: &Value) -> String {
    let Some(m) = map.as_object().filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<(&String, &str)> = m.iter().map(|(k, v)| (k, text(v))).collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}={v}");
    }
    out
}

/// A LabelSelector in selector notation, requirements sorted by key
/// (`metav1.LabelSelectorAsSelector(…).String()`): `""` for no selector or one that
/// selects everything; `None` when an expression is malformed.
pub(crate) fn selector(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(&str, String)> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        for (k, v) in m {
            reqs.push((k, format!("{k}={}", text(v))));
        }
    }
    for e in items(&sel["matchExpressions"]) {
        let key = e["key"].as_str()?;
        let mut values: Vec<&str> = items(&e["values"]).iter().map(text).collect();
        values.sort_unstable();
        values.dedup();
        let req = match (text(&e["operator"]), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key, req));
    }
    reqs.sort_by(|a, b| a.0.cmp(b.0));
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// A LabelSelector as `metav1.FormatLabelSelector` prints it: `<none>` for an empty one,
/// `<error>` for a malformed one.
pub(crate) fn format_selector(sel: &Value) -> String {
    match selector(sel) {
        None => "<error>".to_string(),
        Some(s) if s.is_empty() => "<none>".to_string(),
        Some(s) => s,
    }
}

/// The names and the images of a pod spec's containers, each joined with `,`.
pub(crate) fn containers(pod_spec: &Value) -> (Value, Value) {
    let mut names = String::new();
    let mut images = String::new();
    for (i, c) in items(&pod_spec["containers"]).iter().enumerate() {
        if i > 0 {
            names.push(',');
            images.push(',');
        }
        names.push_str(text(&c["name"]));
        images.push_str(text(&c["image"]));
    }
    (names.into(), images.into())
}

/// Access modes as their abbreviations, each once, in Kubernetes' order.
pub(crate) fn access_modes(modes: &Value) -> String {
    let modes = items(modes);
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// A quantity in Kubernetes' canonical form (`1024Mi` → `1Gi`); an unset one is `0`, and
/// one that does not parse is printed as written.
pub(crate) fn quantity(v: &Value) -> String {
    if v.is_null() {
        return "0".to_string();
    }
    match Quantity::from_json(v) {
        Ok(q) => q.to_string(),
        Err(_) => match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    }
}

/// The storage quantity in a resource list (`capacity`, `requests`).
pub(crate) fn storage(resources: &Value) -> String {
    quantity(&resources["storage"])
}

/// An optional boolean as `True`, `False` or `<unset>`.
pub(crate) fn bool_ptr(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// An IntOrString (`3`, `25%`).
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `list` joined with `,`, followed by `+ N more...` when it was cut at `max` of `count`;
/// `<unset>` when empty.
pub(crate) fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let joined = list.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

/// The first condition of type `ty` in `conditions`.
pub(crate) fn condition<'a>(conditions: &'a Value, ty: &str) -> Option<&'a Map<String, Value>> {
    items(conditions)
        .iter()
        .filter_map(Value::as_object)
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

/// Whether the first condition of type `ty` is `True`.
pub(crate) fn condition_true(conditions: &Value, ty: &str) -> bool {
    condition(conditions, ty)
        .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// The controller in an object's ownerReferences.
pub(crate) fn controller_ref(obj: &Value) -> Option<&Value> {
    items(&obj["metadata"]["ownerReferences"])
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
}
