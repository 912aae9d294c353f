//! The proxy's view of the cluster: one entry per Service port, with the ready endpoints
//! the EndpointSlices of that Service list for it. Both proxy modes are driven by it.
//!
//! Traffic policies as Kubernetes has them: with `internalTrafficPolicy: Local`, ClusterIP
//! traffic goes only to endpoints on this node; with `externalTrafficPolicy: Local`,
//! NodePort traffic does (and is not masqueraded).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
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
    /// Ready endpoints for ClusterIP traffic, sorted.
    pub endpoints: Vec<SocketAddr>,
    /// Ready endpoints for NodePort traffic: the local ones alone with
    /// `externalTrafficPolicy: Local` (`local_external`), else all of them.
    pub external_endpoints: Vec<SocketAddr>,
    pub local_external: bool,
    /// The Service's `healthCheckNodePort` (a Local LoadBalancer's).
    pub health_check_node_port: Option<u16>,
}

/// The table of node `node` for `services` and `slices`, keyed by [`ServicePort::name`].
/// ExternalName and headless Services, and ports of protocols the proxy does not carry,
/// are left out.
pub fn build(
    services: &[&Service],
    slices: &[&EndpointSlice],
    node: &str,
) -> BTreeMap<String, ServicePort> {
    let by_service = slices_by_service(slices);
    let mut out = BTreeMap::new();
    for svc in services {
        for sp in service_ports(svc, &by_service, node) {
            out.insert(sp.name.clone(), sp);
        }
    }
    out
}

/// EndpointSlices by the (namespace, name) of their Service.
type SlicesByService<'a> = BTreeMap<(String, String), Vec<&'a EndpointSlice>>;

/// The IPv4 slices among `slices` that name their Service.
fn slices_by_service<'a>(slices: &[&'a EndpointSlice]) -> SlicesByService<'a> {
    let mut by_service = SlicesByService::new();
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
    by_service
}

/// The entries of `svc` for node `node`, in the order of its ports.
fn service_ports(svc: &Service, by_service: &SlicesByService, node: &str) -> Vec<ServicePort> {
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let Some(spec) = &svc.spec else {
        return vec![];
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return vec![];
    }
    let cluster_ip = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
    let affinity = session_affinity(spec);
    let own = by_service.get(&(ns.clone(), name.clone()));
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let local_external = node_port_type(spec.type_.as_deref())
        && spec.external_traffic_policy.as_deref() == Some("Local");
    let health_check_node_port = spec
        .health_check_node_port
        .filter(|_| local_external)
        .and_then(|p| u16::try_from(p).ok());
    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else {
            continue;
        };
        let node_port = p.node_port.and_then(|n| u16::try_from(n).ok());
        if cluster_ip.is_none() && node_port.is_none() {
            continue;
        }
        let port_name = p.name.clone().unwrap_or_default();
        let all: Vec<(SocketAddr, bool)> = own
            .into_iter()
            .flatten()
            .flat_map(|s| endpoints_of(s, &port_name, protocol, node))
            .collect();
        out.push(ServicePort {
            name: format!("{ns}/{name}:{port_name}"),
            cluster_ip,
            port: u16::try_from(p.port).unwrap_or(0),
            node_port,
            protocol,
            affinity,
            endpoints: pick(&all, internal_local),
            external_endpoints: pick(&all, local_external),
            local_external,
            health_check_node_port,
        });
    }
    out
}

/// The timeout of `sessionAffinity: ClientIP`, if the Service has it.
fn session_affinity(spec: &ServiceSpec) -> Option<Duration> {
    (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let secs = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(10800);
        Duration::from_secs(secs.max(1) as u64)
    })
}

/// The addresses of `all` (each with whether it is on this node), sorted and without
/// repeats; the local ones alone if `local_only`.
fn pick(all: &[(SocketAddr, bool)], local_only: bool) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = all
        .iter()
        .filter(|(_, local)| *local || !local_only)
        .map(|(a, _)| *a)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn node_port_type(t: Option<&str>) -> bool {
    matches!(t, Some("NodePort" | "LoadBalancer"))
}

/// The ready addresses of `slice` on its port named `port_name` with `protocol`, each with
/// whether it is on node `node`.
fn endpoints_of(
    slice: &EndpointSlice,
    port_name: &str,
    protocol: Protocol,
    node: &str,
) -> Vec<(SocketAddr, bool)> {
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
        .flat_map(|e| {
            let local = e.node_name.as_deref() == Some(node);
            e.addresses.iter().map(move |a| (a, local))
        })
        .filter_map(|(a, local)| Some((a.parse::<Ipv4Addr>().ok()?, local)))
        .map(|(ip, local)| (SocketAddr::V4(SocketAddrV4::new(ip, port)), local))
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
        let t = build(&[&svc, &headless], &[&slice], "n1");
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

    #[test]
    fn local_traffic_policies_keep_to_this_node() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "type": "NodePort",
                "internalTrafficPolicy": "Local", "externalTrafficPolicy": "Local",
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}}))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.2"], "nodeName": "n1"},
                {"addresses": ["10.244.1.2"], "nodeName": "n2"}]}))
        .unwrap();
        let here: Vec<SocketAddr> = vec!["10.244.0.2:8080".parse().unwrap()];
        let t = build(&[&svc], &[&slice], "n1");
        let sp = &t["default/web:"];
        assert_eq!(sp.endpoints, here);
        assert_eq!(sp.external_endpoints, here);
        assert!(sp.local_external);
        // A node without endpoints of its own has none to offer.
        let t = build(&[&svc], &[&slice], "n3");
        assert!(t["default/web:"].endpoints.is_empty());
        assert!(t["default/web:"].external_endpoints.is_empty());
        // Cluster policies: everything.
        let mut svc = svc;
        let spec = svc.spec.as_mut().unwrap();
        spec.internal_traffic_policy = Some("Cluster".into());
        spec.external_traffic_policy = Some("Cluster".into());
        let t = build(&[&svc], &[&slice], "n3");
        assert_eq!(t["default/web:"].endpoints.len(), 2);
        assert_eq!(t["default/web:"].external_endpoints.len(), 2);
        assert!(!t["default/web:"].local_external);
    }
}
