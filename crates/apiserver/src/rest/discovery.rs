//! Discovery: `/api`, `/apis`, `/apis/<group>`, the resource lists of each group-version,
//! and aggregated discovery (`apidiscovery.k8s.io` v2 and v2beta1), which gives a client
//! every group in one request.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::registry::{Registry, ResourceType};

/// The media type of aggregated discovery a client asked for, if any.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Aggregated {
    V2,
    V2Beta1,
}

impl Aggregated {
    pub fn version(self) -> &'static str {
        match self {
            Aggregated::V2 => "v2",
            Aggregated::V2Beta1 => "v2beta1",
        }
    }

    pub fn content_type(self) -> String {
        format!(
            "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
            self.version()
        )
    }
}

/// Reads the Accept header: the first aggregated media type it lists, in its order.
pub fn aggregated(accept: &str) -> Option<Aggregated> {
    for mt in accept.split(',') {
        let mut g = false;
        let mut v = None;
        let mut list = false;
        for p in mt.split(';').skip(1) {
            match p.trim().split_once('=') {
                Some(("g", "apidiscovery.k8s.io")) => g = true,
                Some(("v", "v2")) => v = Some(Aggregated::V2),
                Some(("v", "v2beta1")) => v = Some(Aggregated::V2Beta1),
                Some(("as", "APIGroupDiscoveryList")) => list = true,
                _ => {}
            }
        }
        if g && list && v.is_some() {
            return v;
        }
    }
    None
}

/// A subresource as discovery lists it: name, (group, version, kind) of what it answers
/// with, and verbs.
struct Sub {
    name: &'static str,
    gvk: Option<(&'static str, &'static str, &'static str)>,
    verbs: &'static [&'static str],
}

const GPU: &[&str] = &["get", "patch", "update"];

fn subresources(t: &ResourceType) -> Vec<Sub> {
    let mut out = Vec::new();
    if t.has_status {
        out.push(Sub {
            name: "status",
            gvk: None,
            verbs: GPU,
        });
    }
    let scale = Sub {
        name: "scale",
        gvk: Some(("autoscaling", "v1", "Scale")),
        verbs: GPU,
    };
    match (t.group.as_str(), t.plural.as_str()) {
        ("apps", "deployments" | "replicasets" | "statefulsets") => out.push(scale),
        ("", "replicationcontrollers") => out.push(scale),
        ("", "pods") => {
            out.push(Sub {
                name: "log",
                gvk: Some(("", "v1", "Pod")),
                verbs: &["get"],
            });
            for (name, kind) in [
                ("exec", "PodExecOptions"),
                ("attach", "PodAttachOptions"),
                ("portforward", "PodPortForwardOptions"),
            ] {
                out.push(Sub {
                    name,
                    gvk: Some(("", "v1", kind)),
                    verbs: &["create", "get"],
                });
            }
            out.push(Sub {
                name: "binding",
                gvk: Some(("", "v1", "Binding")),
                verbs: &["create"],
            });
            out.push(Sub {
                name: "eviction",
                gvk: Some(("policy", "v1", "Eviction")),
                verbs: &["create"],
            });
        }
        ("", "serviceaccounts") => out.push(Sub {
            name: "token",
            gvk: Some(("authentication.k8s.io", "v1", "TokenRequest")),
            verbs: &["create"],
        }),
        ("", "namespaces") => out.push(Sub {
            name: "finalize",
            gvk: None,
            verbs: &["update"],
        }),
        _ => {}
    }
    if crate::certificates::is_csr(&t.group, &t.kind) {
        out.push(Sub {
            name: "approval",
            gvk: None,
            verbs: GPU,
        });
    }
    out
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn verbs(t: &ResourceType) -> &'static [&'static str] {
    if crate::rbac::review::is_review(t) {
        &["create"]
    } else {
        VERBS
    }
}

/// Kinds served outside the registry: answered by the REST layer itself.
struct Extra {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
}

const EXTRAS: &[Extra] = &[
    Extra {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        kind: "SelfSubjectReview",
    },
    Extra {
        group: "authentication.k8s.io",
        version: "v1beta1",
        plural: "selfsubjectreviews",
        kind: "SelfSubjectReview",
    },
];

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first.
fn version_rank(v: &str) -> (u8, i64, i64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major: i64 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (level, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (level, major, minor)
}

/// Every group with its versions, most preferred first; the core group is "".
fn groups(reg: &Registry) -> BTreeMap<String, Vec<String>> {
    let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let pairs = reg
        .all()
        .iter()
        .map(|t| (t.group.clone(), t.version.clone()))
        .chain(
            EXTRAS
                .iter()
                .map(|e| (e.group.to_string(), e.version.to_string())),
        )
        .collect::<Vec<_>>();
    for (group, version) in pairs {
        let vs = g.entry(group).or_default();
        if !vs.contains(&version) {
            vs.push(version);
        }
    }
    for vs in g.values_mut() {
        vs.sort_by_key(|v| std::cmp::Reverse(version_rank(v)));
    }
    g
}

fn types_of(reg: &Registry, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
    let mut ts: Vec<_> = reg
        .all()
        .into_iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    ts.sort_by(|a, b| a.plural.cmp(&b.plural));
    ts
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `/api`.
pub fn legacy_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]})
}

fn api_group(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(name, v), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`.
pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = groups(reg)
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| api_group(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, if it is served.
pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let all = groups(reg);
    let vs = all.get(name).filter(|_| !name.is_empty())?;
    let mut g = api_group(name, vs);
    g["kind"] = "APIGroup".into();
    g["apiVersion"] = "v1".into();
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>`, if it is served.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for t in types_of(reg, group, version) {
        let mut r = json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
            "kind": t.kind, "verbs": verbs(&t),
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        for s in subresources(&t) {
            let mut r = json!({
                "name": format!("{}/{}", t.plural, s.name), "singularName": "",
                "namespaced": t.namespaced, "kind": t.kind, "verbs": s.verbs,
            });
            if let Some((g, v, k)) = s.gvk {
                r["group"] = g.into();
                r["version"] = v.into();
                r["kind"] = k.into();
            }
            resources.push(r);
        }
    }
    for e in EXTRAS
        .iter()
        .filter(|e| e.group == group && e.version == version)
    {
        resources.push(
            json!({"name": e.plural, "singularName": "", "namespaced": false,
                              "kind": e.kind, "verbs": ["create"]}),
        );
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": group_version(group, version), "resources": resources}))
}

fn aggregated_resource(t: &ResourceType) -> Value {
    let subs: Vec<Value> = subresources(t)
        .iter()
        .map(|s| {
            let (g, v, k) = s.gvk.unwrap_or(("", "", ""));
            let kind = if k.is_empty() { t.kind.as_str() } else { k };
            json!({"subresource": s.name,
                   "responseKind": {"group": g, "version": v, "kind": kind},
                   "verbs": s.verbs})
        })
        .collect();
    let mut r = json!({
        "resource": t.plural,
        "responseKind": {"group": "", "version": "", "kind": t.kind},
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": verbs(t),
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    if !subs.is_empty() {
        r["subresources"] = Value::Array(subs);
    }
    r
}

/// Aggregated discovery of the core group (`legacy`) or of every other group.
pub fn aggregated_list(reg: &Registry, legacy: bool, version: Aggregated) -> Value {
    let mut items = Vec::new();
    for (g, vs) in groups(reg) {
        if g.is_empty() != legacy {
            continue;
        }
        let versions: Vec<Value> = vs
            .iter()
            .map(|v| {
                let mut resources: Vec<Value> = types_of(reg, &g, v)
                    .iter()
                    .map(|t| aggregated_resource(t))
                    .collect();
                for e in EXTRAS.iter().filter(|e| e.group == g && e.version == v) {
                    resources.push(json!({
                        "resource": e.plural,
                        "responseKind": {"group": "", "version": "", "kind": e.kind},
                        "scope": "Cluster", "singularResource": "", "verbs": ["create"],
                    }));
                }
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": g}, "versions": versions}));
    }
    json!({"kind": "APIGroupDiscoveryList",
           "apiVersion": format!("apidiscovery.k8s.io/{}", version.version()),
           "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_aggregated_discovery() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated(kubectl), Some(Aggregated::V2));
        let old = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated(old), Some(Aggregated::V2Beta1));
        assert_eq!(aggregated("application/json, */*"), None);
    }

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut vs = vec!["v1beta1", "v2", "v1", "v1alpha1", "v2beta2"];
        vs.sort_by_key(|v| std::cmp::Reverse(version_rank(v)));
        assert_eq!(vs, ["v2", "v1", "v2beta2", "v1beta1", "v1alpha1"]);
    }

    #[test]
    fn deployments_list_scale_and_short_names() {
        let reg = Registry::with_builtins();
        let apps = resource_list(&reg, "apps", "v1").unwrap();
        let rs = apps["resources"].as_array().unwrap();
        let d = rs.iter().find(|r| r["name"] == "deployments").unwrap();
        assert_eq!(d["shortNames"], json!(["deploy"]));
        assert_eq!(d["categories"], json!(["all"]));
        let scale = rs
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        let core = resource_list(&reg, "", "v1").unwrap();
        assert!(core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/log"));
        let agg = aggregated_list(&reg, false, Aggregated::V2);
        assert!(agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["metadata"]["name"] == "authentication.k8s.io"));
        assert!(group(&reg, "apps").is_some());
        assert!(group(&reg, "nope.example.com").is_none());
    }
}
