//! Where a webhook is: its `clientConfig.url`, or its `clientConfig.service` resolved to a
//! ready endpoint of that Service (from Endpoints, else EndpointSlices, in the watch
//! cache), with the TLS server name Kubernetes verifies for each.

use std::net::{IpAddr, SocketAddr};

use hyper::Uri;
use k8s_openapi::api::admissionregistration::v1::{ServiceReference, WebhookClientConfig};
use serde_json::Value;

use crate::cache::WatchCache;

const DEFAULT_SERVICE_PORT: i32 = 443;
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How to reach a host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Dial {
    /// A host name (resolved when dialled) or IP literal, and a port.
    Host(String, u16),
    Addr(SocketAddr),
}

/// One webhook's address, resolved for one call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Target {
    /// The URL as messages show it.
    pub url: String,
    /// The name the server's certificate must carry.
    pub server_name: String,
    pub dial: Dial,
    /// The `Host` header.
    pub authority: String,
    pub path_and_query: String,
}

/// The target of `cfg` for a call with `timeout_secs`; `pick` chooses among a Service's
/// ready endpoints. The error says what is missing.
pub(crate) fn target(
    cache: &WatchCache,
    cfg: &WebhookClientConfig,
    timeout_secs: u64,
    pick: usize,
) -> Result<Target, String> {
    let query = format!("timeout={timeout_secs}s");
    match (&cfg.url, &cfg.service) {
        (Some(url), None) => url_target(url, &query),
        (None, Some(svc)) => {
            let service = cache
                .get(&format!(
                    "/registry/core/services/{}/{}",
                    svc.namespace, svc.name
                ))
                .ok_or_else(|| format!("services {:?} not found", svc.name))?
                .value()
                .map_err(|e| e.to_string())?;
            let endpoints = cache
                .get(&format!(
                    "/registry/core/endpoints/{}/{}",
                    svc.namespace, svc.name
                ))
                .and_then(|c| c.value().ok());
            let prefix = format!(
                "/registry/discovery.k8s.io/endpointslices/{}/",
                svc.namespace
            );
            let slices: Vec<Value> = cache
                .list(&prefix, None)
                .1
                .into_iter()
                .filter(|c| c.labels.get(SERVICE_NAME_LABEL) == Some(&svc.name))
                .filter_map(|c| c.value().ok())
                .collect();
            let addr = service_endpoint(svc, &service, endpoints.as_ref(), &slices, pick)?;
            Ok(service_target(svc, addr, &query))
        }
        _ => Err("exactly one of clientConfig.url and clientConfig.service must be set".into()),
    }
}

fn url_target(url: &str, query: &str) -> Result<Target, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("clientConfig.url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "clientConfig.url {url:?}: the scheme must be \"https\""
        ));
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("clientConfig.url {url:?}: no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let path = uri.path();
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}&{query}"),
        None => format!("{path}?{query}"),
    };
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    Ok(Target {
        url: format!("https://{authority}{path_and_query}"),
        server_name: host.clone(),
        dial: Dial::Host(host, port),
        authority,
        path_and_query,
    })
}

fn service_target(svc: &ServiceReference, addr: SocketAddr, query: &str) -> Target {
    let server_name = format!("{}.{}.svc", svc.name, svc.namespace);
    let port = svc.port.unwrap_or(DEFAULT_SERVICE_PORT);
    let path = svc.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let authority = format!("{server_name}:{port}");
    let path_and_query = format!("{path}?{query}");
    Target {
        url: format!("https://{authority}{path_and_query}"),
        server_name,
        dial: Dial::Addr(addr),
        authority,
        path_and_query,
    }
}

/// A ready address of `svc` on its port `svc.port`: the Service's port is mapped, by name,
/// to the endpoints' port, as Kubernetes' endpoint routing does.
pub(crate) fn service_endpoint(
    svc: &ServiceReference,
    service: &Value,
    endpoints: Option<&Value>,
    slices: &[Value],
    pick: usize,
) -> Result<SocketAddr, String> {
    let port = svc.port.unwrap_or(DEFAULT_SERVICE_PORT);
    let svc_port = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_i64() == Some(port.into()))
        .ok_or_else(|| format!("no service port {port} found for service {:?}", svc.name))?;
    let port_name = svc_port["name"].as_str().unwrap_or("");
    let named = |p: &&Value| p["name"].as_str().unwrap_or("") == port_name;
    let port_of = |ports: &Value| {
        ports
            .as_array()
            .into_iter()
            .flatten()
            .find(named)
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
    };
    let mut ready: Vec<SocketAddr> = Vec::new();
    for subset in endpoints
        .and_then(|e| e["subsets"].as_array())
        .into_iter()
        .flatten()
    {
        let Some(p) = port_of(&subset["ports"]) else {
            continue;
        };
        let ips = subset["addresses"].as_array().into_iter().flatten();
        ready.extend(
            ips.filter_map(|a| ip(&a["ip"]))
                .map(|ip| SocketAddr::new(ip, p)),
        );
    }
    if ready.is_empty() {
        for slice in slices {
            let Some(p) = port_of(&slice["ports"]) else {
                continue;
            };
            let eps = slice["endpoints"].as_array().into_iter().flatten();
            for ep in eps.filter(|e| e["conditions"]["ready"] != Value::Bool(false)) {
                let ips = ep["addresses"].as_array().into_iter().flatten();
                ready.extend(ips.filter_map(ip).map(|ip| SocketAddr::new(ip, p)));
            }
        }
    }
    if ready.is_empty() {
        return Err(format!("no endpoints available for service {:?}", svc.name));
    }
    Ok(ready[pick % ready.len()])
}

fn ip(v: &Value) -> Option<IpAddr> {
    v.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn svc(port: Option<i32>) -> ServiceReference {
        ServiceReference {
            name: "hooks".into(),
            namespace: "sys".into(),
            path: Some("/validate".into()),
            port,
        }
    }

    fn service() -> Value {
        json!({"spec": {"ports": [
            {"name": "https", "port": 443, "targetPort": 8443},
            {"name": "metrics", "port": 9090}]}})
    }

    #[test]
    fn service_ports_map_by_name_to_ready_endpoints() {
        let eps = json!({"subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
            "notReadyAddresses": [{"ip": "10.0.0.9"}],
            "ports": [{"name": "metrics", "port": 9090}, {"name": "https", "port": 8443}]}]});
        let got: Vec<_> = (0..3)
            .map(|i| service_endpoint(&svc(None), &service(), Some(&eps), &[], i).unwrap())
            .collect();
        let want: Vec<SocketAddr> = ["10.0.0.1:8443", "10.0.0.2:8443", "10.0.0.1:8443"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        let e = service_endpoint(&svc(Some(8080)), &service(), Some(&eps), &[], 0).unwrap_err();
        assert_eq!(e, "no service port 8080 found for service \"hooks\"");
    }

    #[test]
    fn endpoint_slices_are_used_without_endpoints_and_skip_unready() {
        let slice = json!({
            "ports": [{"name": "https", "port": 8443}],
            "endpoints": [
                {"addresses": ["10.0.1.1"], "conditions": {"ready": false}},
                {"addresses": ["10.0.1.2"], "conditions": {"ready": true}}]});
        let got = service_endpoint(
            &svc(None),
            &service(),
            None,
            std::slice::from_ref(&slice),
            0,
        )
        .unwrap();
        assert_eq!(got, "10.0.1.2:8443".parse().unwrap());
        let unready = json!({"ports": slice["ports"], "endpoints": [slice["endpoints"][0]]});
        let e = service_endpoint(&svc(None), &service(), None, &[unready], 0).unwrap_err();
        assert_eq!(e, "no endpoints available for service \"hooks\"");
    }

    #[test]
    fn targets_name_the_server_as_kubernetes_verifies_it() {
        let t = service_target(&svc(None), "10.0.0.1:8443".parse().unwrap(), "timeout=10s");
        assert_eq!(t.server_name, "hooks.sys.svc");
        assert_eq!(t.url, "https://hooks.sys.svc:443/validate?timeout=10s");
        assert_eq!(t.dial, Dial::Addr("10.0.0.1:8443".parse().unwrap()));

        let u = url_target("https://hook.example.com:8443/v?x=1", "timeout=5s").unwrap();
        assert_eq!(u.server_name, "hook.example.com");
        assert_eq!(u.dial, Dial::Host("hook.example.com".into(), 8443));
        assert_eq!(u.path_and_query, "/v?x=1&timeout=5s");
        let ip6 = url_target("https://[::1]/", "timeout=5s").unwrap();
        assert_eq!(ip6.dial, Dial::Host("::1".into(), 443));
        let e = url_target("http://hook.example.com/", "timeout=5s").unwrap_err();
        assert!(e.contains("must be \"https\""), "{e}");
    }
}
