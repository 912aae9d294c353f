//! A container's environment: `env` (value, fieldRef, resourceFieldRef, configMapKeyRef,
//! secretKeyRef) and `envFrom`, with `$(VAR)` references expanded as Kubernetes does, and
//! the Service discovery variables.

use std::collections::BTreeMap;

use client::{Api, Client};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

/// ConfigMaps and Secrets read once per container start.
pub struct Sources<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
}

impl Sources<'_> {
    async fn config_map(&self, name: &str) -> Result<Option<ConfigMap>, String> {
        Api::<ConfigMap>::namespaced(self.client.clone(), self.namespace)
            .get_opt(name)
            .await
            .map_err(|e| format!("configmap {name:?}: {e}"))
    }

    async fn secret(&self, name: &str) -> Result<Option<Secret>, String> {
        Api::<Secret>::namespaced(self.client.clone(), self.namespace)
            .get_opt(name)
            .await
            .map_err(|e| format!("secret {name:?}: {e}"))
    }
}

fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).to_string()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// The value of a `fieldRef` path of `pod`.
pub fn field_ref(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Result<String, String> {
    let m = &pod.metadata;
    let in_map = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let key_of = |p: &str, prefix: &str| {
        p.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['").or_else(|| r.strip_prefix("[\"")))
            .and_then(|r| r.strip_suffix("']").or_else(|| r.strip_suffix("\"]")))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => pod_ip.to_string(),
        "status.hostIP" => host_ip.to_string(),
        p => {
            if let Some(k) = key_of(p, "metadata.labels") {
                in_map(&m.labels, &k)
            } else if let Some(k) = key_of(p, "metadata.annotations") {
                in_map(&m.annotations, &k)
            } else {
                return Err(format!("fieldRef {p:?} is not supported"));
            }
        }
    })
}

/// Expands `$(NAME)` from `vars`; `$$(NAME)` stays `$(NAME)`; unknown names stay as they are.
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&s[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The environment of container `c`, in order: Service variables, `envFrom`, then `env`.
pub async fn resolve(
    src: &Sources<'_>,
    pod: &Pod,
    c: &Container,
    service_env: &BTreeMap<String, String>,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut vars: BTreeMap<String, String> = service_env.clone();
    let mut order: Vec<String> = vars.keys().cloned().collect();
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match src.config_map(&r.name).await? {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        set(&mut vars, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap {:?} not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match src.secret(&r.name).await? {
                Some(s) => {
                    for (k, v) in secret_data(&s) {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret {:?} not found", r.name)),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(vf) = &e.value_from {
            if let Some(f) = &vf.field_ref {
                field_ref(pod, &f.field_path, pod_ip, host_ip)?
            } else if let Some(r) = &vf.config_map_key_ref {
                let cm = src.config_map(&r.name).await?;
                match cm.as_ref().and_then(|cm| cm.data.as_ref()?.get(&r.key)) {
                    Some(v) => v.clone(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(format!(
                            "key {:?} of configmap {:?} not found",
                            r.key, r.name
                        ))
                    }
                }
            } else if let Some(r) = &vf.secret_key_ref {
                let s = src.secret(&r.name).await?;
                match s.as_ref().and_then(|s| secret_data(s).remove(&r.key)) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(format!("key {:?} of secret {:?} not found", r.key, r.name))
                    }
                }
            } else if let Some(r) = &vf.resource_field_ref {
                resource_field(c, &r.resource)
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars[&k].clone();
            (k, v)
        })
        .collect())
}

/// `limits.cpu` (whole cores, rounded up), `limits.memory` (bytes), and the requests.
fn resource_field(c: &Container, what: &str) -> String {
    let (list, name) = match what.split_once('.') {
        Some(("limits", n)) => (c.resources.as_ref().and_then(|r| r.limits.as_ref()), n),
        Some(("requests", n)) => (c.resources.as_ref().and_then(|r| r.requests.as_ref()), n),
        _ => return String::new(),
    };
    let Some(q) = list.and_then(|l| l.get(name)) else {
        return String::new();
    };
    if name == "cpu" {
        let milli = client::quantity::parse_milli(&q.0).unwrap_or(0);
        ((milli + 999) / 1000).max(1).to_string()
    } else {
        client::quantity::parse(&q.0).unwrap_or(0).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_as_kubernetes_does_it() {
        let vars = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(expand("$(A)-$(B)-$$(A)", &vars), "x-$(B)-$(A)");
        assert_eq!(expand("plain $ (A)", &vars), "plain $ (A)");
    }
}
