//! What the endpoints controller decides for one Service, as pure functions of it and
//! the pods of its namespace: the selected pods with their resolved ports, the Endpoints
//! subsets, the EndpointSlices (at most 100 endpoints each), and which slices to create,
//! replace and delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use crate::pods;
use crate::replicaset::owner_ref;

const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The port a service port reaches on one pod; `None` when a named port is missing.
fn target_port(svc_port: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<i32> {
    match svc_port.target_port.clone() {
        None => Some(svc_port.port),
        Some(IntOrString::Int(p)) => Some(p),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// One selected pod: its address, readiness and the resolved ports.
pub(crate) struct Member {
    pod: Arc<Pod>,
    ip: String,
    ready: bool,
    ports: Vec<(Option<String>, i32, String)>,
    /// The pod's `hostname`, when its `subdomain` is this Service: its DNS name under it.
    hostname: Option<String>,
}

/// The pods of `pods` (the Service's namespace) that the Service selects, by address.
pub(crate) fn members(svc: &Service, pods: &[Arc<Pod>]) -> Vec<Member> {
    let spec = svc.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let svc_name = svc.metadata.name.as_deref();
    let mut out: Vec<Member> = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                && pods::is_active(p)
                && !pods::is_deleting(p)
        })
        .filter_map(|p| {
            let ip = p
                .status
                .as_ref()?
                .pod_ip
                .clone()
                .filter(|i| !i.is_empty())?;
            let ports = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|sp| {
                    let port = target_port(sp, p)?;
                    Some((
                        sp.name.clone(),
                        port,
                        sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    ))
                })
                .collect();
            let pod_spec = p.spec.as_ref();
            let hostname = pod_spec
                .filter(|s| s.subdomain.is_some() && s.subdomain.as_deref() == svc_name)
                .and_then(|s| s.hostname.clone());
            Some(Member {
                hostname,
                ready: publish_not_ready || pods::is_ready(p),
                ip,
                ports,
                pod: p.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.ip.cmp(&b.ip));
    out
}

fn target_ref(p: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: p.metadata.namespace.clone(),
        name: p.metadata.name.clone(),
        uid: p.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Endpoints subsets: one per distinct set of resolved ports.
pub(crate) fn subsets(ms: &[Member]) -> Vec<EndpointSubset> {
    let mut by_ports: BTreeMap<Vec<(Option<String>, i32, String)>, EndpointSubset> =
        BTreeMap::new();
    for m in ms.iter().filter(|m| !m.ports.is_empty()) {
        let s = by_ports
            .entry(m.ports.clone())
            .or_insert_with(|| EndpointSubset {
                ports: Some(
                    m.ports
                        .iter()
                        .map(|(name, port, proto)| EndpointPort {
                            name: name.clone(),
                            port: *port,
                            protocol: Some(proto.clone()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            });
        let addr = EndpointAddress {
            ip: m.ip.clone(),
            hostname: m.hostname.clone(),
            node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(&m.pod)),
        };
        let list = if m.ready {
            s.addresses.get_or_insert_with(Vec::new)
        } else {
            s.not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(addr);
    }
    by_ports.into_values().collect()
}

/// The EndpointSlices of `svc`: `<service>-<i>`, at most 100 endpoints each, one empty
/// slice when nothing is selected.
pub(crate) fn slices(svc: &Service, ms: &[Member]) -> Vec<EndpointSlice> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let ports: Vec<SlicePort> = ms
        .first()
        .map(|m| {
            m.ports
                .iter()
                .map(|(n, p, proto)| SlicePort {
                    name: n.clone(),
                    port: Some(*p),
                    protocol: Some(proto.clone()),
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default();
    let endpoints: Vec<Endpoint> = ms.iter().map(endpoint).collect();
    let chunks: Vec<&[Endpoint]> = if endpoints.is_empty() {
        vec![&[]]
    } else {
        endpoints.chunks(MAX_ENDPOINTS_PER_SLICE).collect()
    };
    let owner = owner_ref("v1", "Service", &svc.metadata);
    let labels = [
        (SERVICE_NAME_LABEL.to_string(), name.clone()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ];
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{name}-{i}")),
                namespace: svc.metadata.namespace.clone(),
                labels: Some(labels.clone().into()),
                owner_references: Some(vec![owner.clone()]),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(chunk.to_vec()),
            ports: Some(ports.clone()),
        })
        .collect()
}

fn endpoint(m: &Member) -> Endpoint {
    Endpoint {
        addresses: vec![m.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(m.ready),
            serving: Some(m.ready),
            terminating: Some(false),
        }),
        node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(target_ref(&m.pod)),
        hostname: m.hostname.clone(),
        ..Default::default()
    }
}

/// How the slices that exist become the slices wanted.
#[derive(Debug, Default)]
pub(crate) struct SliceChanges {
    pub create: Vec<EndpointSlice>,
    /// Wanted slices carrying the resourceVersion of the one they replace.
    pub replace: Vec<EndpointSlice>,
    pub delete: Vec<String>,
}

pub(crate) fn slice_changes(want: Vec<EndpointSlice>, existing: &[EndpointSlice]) -> SliceChanges {
    let mut c = SliceChanges::default();
    let name = |s: &EndpointSlice| s.metadata.name.clone().unwrap_or_default();
    for w in &want {
        match existing.iter().find(|e| name(e) == name(w)) {
            None => c.create.push(w.clone()),
            Some(cur) if cur.endpoints != w.endpoints || cur.ports != w.ports => {
                let mut next = w.clone();
                next.metadata.resource_version = cur.metadata.resource_version.clone();
                c.replace.push(next);
            }
            Some(_) => {}
        }
    }
    c.delete = existing
        .iter()
        .map(name)
        .filter(|n| !want.iter().any(|w| name(w) == *n))
        .collect();
    c
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
