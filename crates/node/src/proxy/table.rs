//! The proxy's view of the cluster: one entry per Service port, with the ready endpoints
//! the EndpointSlices of that Service list for it. Both proxy modes are driven by it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One port of one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// `namespace/service:port-name`.
    pub name: String,
    pub cluster_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    pub protocol: Protocol,
    /// `sessionAffinity: ClientIP` and its timeout.
    pub affinity: Option<Duration>,
    /// Ready endpoints, sorted.
    pub endpoints: Vec<SocketAddr>,
}

/// The table for `services` and `slices`, keyed by [`ServicePort::name`]. ExternalName
/// and headless Services, and ports of protocols the proxy does not carry, are left out.
pub fn build(services: &[&Service], slices: &[&EndpointSlice]) -> BTreeMap<String, ServicePort> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if s.address_type != "IPv4" {
            continue;
        }
        let Some(svc) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        by_service.entry((ns, svc.clone())).or_default().push(s);
    }
    let mut out = BTreeMap::new();
    for svc in services {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ip = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            let secs = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(10800);
            Duration::from_secs(secs.max(1) as u64)
        });
        let own = by_service.get(&(ns.clone(), name.clone()));
        for p in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else {
                continue;
            };
            let node_port = p.node_port.and_then(|n| u16::try_from(n).ok());
            if cluster_ip.is_none() && node_port.is_none() {
                continue;
            }
            let port_name = p.name.clone().unwrap_or_default();
            let mut endpoints: Vec<SocketAddr> = own
                .into_iter()
                .flatten()
                .flat_map(|s| endpoints_of(s, &port_name, protocol))
                .collect();
            endpoints.sort();
            endpoints.dedup();
            let key = format!("{ns}/{name}:{port_name}");
            out.insert(
                key.clone(),
                ServicePort {
                    name: key,
                    cluster_ip,
                    port: u16::try_from(p.port).unwrap_or(0),
                    node_port,
                    protocol,
                    affinity,
                    endpoints,
                },
            );
        }
    }
    out
}

/// The ready addresses of `slice` on its port named `port_name` with `protocol`.
fn endpoints_of(slice: &EndpointSlice, port_name: &str, protocol: Protocol) -> Vec<SocketAddr> {
    let Some(port) = slice.ports.iter().flatten().find(|p| {
        p.name.as_deref().unwrap_or("") == port_name
            && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
    }) else {
        return vec![];
    };
    let Some(port) = port.port.and_then(|p| u16::try_from(p).ok()) else {
        return vec![];
    };
    slice
        .endpoints
        .iter()
        .flatten()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .flat_map(|e| e.addresses.iter())
        .filter_map(|a| a.parse::<Ipv4Addr>().ok())
        .map(|ip| SocketAddr::V4(SocketAddrV4::new(ip, port)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ready_endpoints_per_named_port() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "type": "NodePort", "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                          {"name": "dns", "port": 53, "protocol": "UDP"}]}}))
        .unwrap();
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.244.0.3"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.2"], "conditions": {}},
                {"addresses": ["10.244.0.4"], "conditions": {"ready": false}}]}))
        .unwrap();
        let t = build(&[&svc, &headless], &[&slice]);
        assert_eq!(t.len(), 2, "the headless Service is left out: {t:?}");
        let http = &t["default/web:http"];
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.affinity, Some(Duration::from_secs(60)));
        let want: Vec<SocketAddr> = vec![
            "10.244.0.2:8080".parse().unwrap(),
            "10.244.0.3:8080".parse().unwrap(),
        ];
        assert_eq!(http.endpoints, want);
        let dns = &t["default/web:dns"];
        assert_eq!(dns.protocol, Protocol::Udp);
        assert_eq!(dns.endpoints.len(), 2);
        assert_eq!(dns.endpoints[0].port(), 5353);
    }
}
