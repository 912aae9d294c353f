//! A container's environment: `env` (value, fieldRef, resourceFieldRef, configMapKeyRef,
//! secretKeyRef) and `envFrom`, with `$(VAR)` references expanded as Kubernetes does, and
//! the Service discovery variables.

use std::collections::BTreeMap;

use client::{Api, Client};
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvFromSource, EnvVarSource, Pod, Secret};

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

/// Variables in the order they were first set; a later value replaces an earlier one.
#[derive(Default)]
struct Env {
    vars: BTreeMap<String, String>,
    order: Vec<String>,
}

impl Env {
    fn set(&mut self, k: String, v: String) {
        if !self.vars.contains_key(&k) {
            self.order.push(k.clone());
        }
        self.vars.insert(k, v);
    }
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
    let mut env = Env {
        vars: service_env.clone(),
        order: service_env.keys().cloned().collect(),
    };
    for from in c.env_from.iter().flatten() {
        env_from(src, from, &mut env).await?;
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => expand(v, &env.vars),
            (None, Some(vf)) => match value_from(src, pod, c, vf, pod_ip, host_ip).await? {
                Some(v) => v,
                None => continue,
            },
            (None, None) => String::new(),
        };
        env.set(e.name.clone(), value);
    }
    let Env { mut vars, order } = env;
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect())
}

/// The variables of one `envFrom` source: every key of a ConfigMap or Secret.
async fn env_from(src: &Sources<'_>, from: &EnvFromSource, env: &mut Env) -> Result<(), String> {
    let prefix = from.prefix.clone().unwrap_or_default();
    if let Some(r) = &from.config_map_ref {
        match src.config_map(&r.name).await? {
            Some(cm) => {
                for (k, v) in cm.data.iter().flatten() {
                    env.set(format!("{prefix}{k}"), v.clone());
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
                    env.set(format!("{prefix}{k}"), v);
                }
            }
            None if r.optional == Some(true) => {}
            None => return Err(format!("secret {:?} not found", r.name)),
        }
    }
    Ok(())
}

/// The value of a `valueFrom`; `None` when an optional key is missing (the variable is
/// not set).
async fn value_from(
    src: &Sources<'_>,
    pod: &Pod,
    c: &Container,
    vf: &EnvVarSource,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Option<String>, String> {
    if let Some(f) = &vf.field_ref {
        return field_ref(pod, &f.field_path, pod_ip, host_ip).map(Some);
    }
    if let Some(r) = &vf.config_map_key_ref {
        let cm = src.config_map(&r.name).await?;
        return match cm.as_ref().and_then(|cm| cm.data.as_ref()?.get(&r.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if r.optional == Some(true) => Ok(None),
            None => Err(format!(
                "key {:?} of configmap {:?} not found",
                r.key, r.name
            )),
        };
    }
    if let Some(r) = &vf.secret_key_ref {
        let s = src.secret(&r.name).await?;
        return match s.as_ref().and_then(|s| secret_data(s).remove(&r.key)) {
            Some(v) => Ok(Some(v)),
            None if r.optional == Some(true) => Ok(None),
            None => Err(format!("key {:?} of secret {:?} not found", r.key, r.name)),
        };
    }
    Ok(Some(match &vf.resource_field_ref {
        Some(r) => resource_field(c, &r.resource),
        None => String::new(),
    }))
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
