//! Service discovery through the environment, as the kubelet does it: for every Service
//! with a ClusterIP in the pod's namespace (unless `enableServiceLinks: false`) and for
//! `default/kubernetes`, `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`,
//! `<NAME>_SERVICE_PORT_<PORT_NAME>` and the Docker-link variables `<NAME>_PORT…`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;

fn env_name(s: &str) -> String {
    s.to_uppercase().replace('-', "_")
}

/// The variables of `services` for a pod in `namespace`.
pub fn service_env(
    services: &[Arc<Service>],
    namespace: &str,
    enable_links: bool,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for s in services {
        let ns = s.metadata.namespace.as_deref().unwrap_or("");
        let name = s.metadata.name.as_deref().unwrap_or("");
        let master = ns == "default" && name == "kubernetes";
        if (enable_links && ns == namespace) || master {
            // A Service of the pod's own namespace wins over the master Service.
            if ns == namespace || !chosen.contains_key(name) {
                chosen.insert(name.to_string(), s);
            }
        }
    }
    let mut out = BTreeMap::new();
    for (name, s) in chosen {
        let Some(spec) = &s.spec else { continue };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        else {
            continue;
        };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let n = env_name(&name);
        out.insert(format!("{n}_SERVICE_HOST"), ip.to_string());
        out.insert(format!("{n}_SERVICE_PORT"), first.port.to_string());
        for p in ports {
            if let Some(pn) = p.name.as_deref().filter(|s| !s.is_empty()) {
                out.insert(
                    format!("{n}_SERVICE_PORT_{}", env_name(pn)),
                    p.port.to_string(),
                );
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.as_deref().unwrap_or("TCP").to_string()
        };
        out.insert(
            format!("{n}_PORT"),
            format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port),
        );
        for p in ports {
            let pr = proto(p);
            let base = format!("{n}_PORT_{}_{}", p.port, pr.to_uppercase());
            out.insert(
                base.clone(),
                format!("{}://{ip}:{}", pr.to_lowercase(), p.port),
            );
            out.insert(format!("{base}_PROTO"), pr.to_lowercase());
            out.insert(format!("{base}_PORT"), p.port.to_string());
            out.insert(format!("{base}_ADDR"), ip.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": ip, "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}}))
            .unwrap(),
        )
    }

    #[test]
    fn variables_as_the_kubelet_names_them() {
        let all = vec![
            svc("web", "redis-primary", "10.96.0.11"),
            svc("web", "headless", "None"),
            svc("other", "elsewhere", "10.96.0.12"),
            svc("default", "kubernetes", "10.96.0.1"),
        ];
        let env = service_env(&all, "web", true);
        assert_eq!(env["REDIS_PRIMARY_SERVICE_HOST"], "10.96.0.11");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT"], "80");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT_DNS_UDP"], "53");
        assert_eq!(env["REDIS_PRIMARY_PORT"], "tcp://10.96.0.11:80");
        assert_eq!(env["REDIS_PRIMARY_PORT_53_UDP"], "udp://10.96.0.11:53");
        assert_eq!(env["REDIS_PRIMARY_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(env["REDIS_PRIMARY_PORT_80_TCP_ADDR"], "10.96.0.11");
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert!(!env
            .keys()
            .any(|k| k.starts_with("HEADLESS") || k.starts_with("ELSEWHERE")));
        let off = service_env(&all, "web", false);
        assert!(off.keys().all(|k| k.starts_with("KUBERNETES_")), "{off:?}");
    }
}
