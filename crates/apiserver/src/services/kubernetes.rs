//! The Services every cluster has, kept by every member:
//!
//! - **`default/kubernetes`**, the API for in-cluster clients (ClusterIP: the first address
//!   of the range, port 443), whose endpoints are the live members, as kube-apiserver's
//!   lease endpoint reconciler keeps them. Every member holds a Lease `apiserver-<name>`
//!   in kube-system (label `apiserver.kubernetes.io/identity=kube-apiserver`, its API
//!   address in the annotation `rkube.io/advertise-address`) and renews it every interval;
//!   every member writes the Endpoints and EndpointSlices `kubernetes` from the leases that
//!   have not expired. A member that stops removes its lease and itself; one that dies
//!   drops out when its lease expires.
//! - **`kube-system/kube-dns`** (ClusterIP: the tenth address), without a selector and
//!   with `internalTrafficPolicy: Local`: every node agent adds its own DNS server to it,
//!   and each node's pods reach the server of their node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::Cidr;
use crate::error::{Error, Result};
use crate::handler::Api;
use crate::system_client::SystemClient;

pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
const IDENTITY: &str = "kube-apiserver";
pub const ADDRESS_ANNOTATION: &str = "rkube.io/advertise-address";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "rkube-apiserver";
const LEASE_NAMESPACE: &str = "kube-system";

/// What this member publishes.
#[derive(Clone, Debug)]
pub struct SystemServices {
    /// The member's name (its lease is `apiserver-<member>`).
    pub member: String,
    /// Where in-cluster clients reach this member's API.
    pub advertise: SocketAddr,
    pub cluster_ips: Cidr,
    /// How long a lease lives unrenewed; it is renewed every two thirds of it.
    pub lease_ttl: Duration,
}

impl SystemServices {
    fn lease_name(&self) -> String {
        format!("apiserver-{}", self.member)
    }
    fn interval(&self) -> Duration {
        (self.lease_ttl * 2 / 3).max(Duration::from_millis(200))
    }
}

fn timestamp_now() -> Timestamp {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn now() -> MicroTime {
    MicroTime(timestamp_now())
}

/// Keeps the Services, the member's lease and the `kubernetes` endpoints until the
/// task is aborted.
pub async fn run(api: Arc<Api>, cfg: SystemServices) {
    let client = SystemClient::new(api);
    let mut ok = false;
    loop {
        match reconcile(&client, &cfg).await {
            Ok(()) if !ok => {
                tracing::info!(advertise = %cfg.advertise, "kubernetes Service endpoint reconciled");
                ok = true;
            }
            Ok(()) => {}
            Err(e) => tracing::debug!(error = %e, "system Services not reconciled yet"),
        }
        // Until the first pass succeeds, try again soon: the store may still be forming.
        let wait = if ok {
            cfg.interval()
        } else {
            Duration::from_millis(500)
        };
        tokio::time::sleep(wait).await;
    }
}

/// On a clean stop: the member's lease goes, and the endpoints without it are written.
pub async fn remove_self(api: Arc<Api>, cfg: &SystemServices) -> Result<()> {
    let client = SystemClient::new(api);
    client
        .delete::<Lease>(LEASE_NAMESPACE, &cfg.lease_name())
        .await?;
    sync_endpoints(&client).await
}

async fn reconcile(client: &SystemClient, cfg: &SystemServices) -> Result<()> {
    renew_lease(client, cfg).await?;
    let services = std::iter::once(kubernetes_service(cfg)).chain(kube_dns_service(cfg));
    for svc in services {
        let (ns, name) = (namespace_of(&svc.metadata), name_of(&svc.metadata));
        if client.get::<Service>(&ns, &name).await?.is_none() {
            match client.create(&svc).await {
                Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    sync_endpoints(client).await
}

fn namespace_of(m: &ObjectMeta) -> String {
    m.namespace.clone().unwrap_or_default()
}

fn name_of(m: &ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

async fn renew_lease(client: &SystemClient, cfg: &SystemServices) -> Result<()> {
    let name = cfg.lease_name();
    let want_spec = LeaseSpec {
        holder_identity: Some(cfg.member.clone()),
        lease_duration_seconds: Some(cfg.lease_ttl.as_secs().max(1) as i32),
        renew_time: Some(now()),
        ..Default::default()
    };
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(LEASE_NAMESPACE.into()),
        labels: Some([(IDENTITY_LABEL.to_string(), IDENTITY.to_string())].into()),
        annotations: Some([(ADDRESS_ANNOTATION.to_string(), cfg.advertise.to_string())].into()),
        ..Default::default()
    };
    match client.get::<Lease>(LEASE_NAMESPACE, &name).await? {
        None => {
            let lease = Lease {
                metadata: meta,
                spec: Some(want_spec),
            };
            client.create(&lease).await?;
        }
        Some(mut cur) => {
            cur.metadata.labels = meta.labels;
            cur.metadata.annotations = meta.annotations;
            cur.spec = Some(want_spec);
            client.replace(&cur).await?;
        }
    }
    Ok(())
}

/// Writes the `kubernetes` Endpoints and EndpointSlices from the live leases, where they
/// differ.
async fn sync_endpoints(client: &SystemClient) -> Result<()> {
    let selector = format!("{IDENTITY_LABEL}={IDENTITY}");
    let leases = client.list::<Lease>(LEASE_NAMESPACE, &selector).await?;
    let members = live_members(&leases, timestamp_now());
    let want = endpoints(&members);
    match client.get::<Endpoints>("default", "kubernetes").await? {
        None => {
            client.create(&want).await?;
        }
        Some(cur) if cur.subsets != want.subsets => {
            let mut next = want;
            next.metadata.resource_version = cur.metadata.resource_version;
            client.replace(&next).await?;
        }
        Some(_) => {}
    }
    let selector = format!("{SERVICE_NAME_LABEL}=kubernetes,{MANAGED_BY_LABEL}={MANAGED_BY}");
    let existing = client.list::<EndpointSlice>("default", &selector).await?;
    let want = slices(&members);
    for w in &want {
        match existing.iter().find(|e| e.metadata.name == w.metadata.name) {
            None => {
                client.create(w).await?;
            }
            Some(cur) if cur.endpoints != w.endpoints || cur.ports != w.ports => {
                let mut next = w.clone();
                next.metadata.resource_version = cur.metadata.resource_version.clone();
                client.replace(&next).await?;
            }
            Some(_) => {}
        }
    }
    for e in &existing {
        if !want.iter().any(|w| w.metadata.name == e.metadata.name) {
            client
                .delete::<EndpointSlice>("default", &name_of(&e.metadata))
                .await?;
        }
    }
    Ok(())
}

/// The API addresses of the members whose leases have not expired at `now`, sorted.
pub fn live_members(leases: &[Lease], now: Timestamp) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = leases
        .iter()
        .filter(|l| {
            let Some(spec) = &l.spec else { return false };
            let (Some(renewed), Some(ttl)) = (&spec.renew_time, spec.lease_duration_seconds) else {
                return false;
            };
            renewed.0.as_second() + i64::from(ttl) >= now.as_second()
        })
        .filter_map(|l| {
            l.metadata
                .annotations
                .as_ref()?
                .get(ADDRESS_ANNOTATION)?
                .parse()
                .ok()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The members by API port: an EndpointSlice's port holds for all its endpoints.
fn by_port(members: &[SocketAddr]) -> BTreeMap<u16, Vec<String>> {
    let mut m: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for a in members {
        m.entry(a.port()).or_default().push(a.ip().to_string());
    }
    m
}

/// The `kubernetes` Endpoints: one subset per API port.
pub fn endpoints(members: &[SocketAddr]) -> Endpoints {
    let subsets: Vec<EndpointSubset> = by_port(members)
        .into_iter()
        .map(|(port, ips)| EndpointSubset {
            addresses: Some(
                ips.into_iter()
                    .map(|ip| EndpointAddress {
                        ip,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![EndpointPort {
                name: Some("https".into()),
                port: i32::from(port),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        })
        .collect();
    Endpoints {
        metadata: ObjectMeta {
            name: Some("kubernetes".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// The `kubernetes` EndpointSlices: `kubernetes` when every member serves on one port,
/// else `kubernetes-<port>` for each port.
pub fn slices(members: &[SocketAddr]) -> Vec<EndpointSlice> {
    let groups = by_port(members);
    let single = groups.len() <= 1;
    groups
        .into_iter()
        .map(|(port, ips)| EndpointSlice {
            metadata: ObjectMeta {
                name: Some(if single {
                    "kubernetes".into()
                } else {
                    format!("kubernetes-{port}")
                }),
                namespace: Some("default".into()),
                labels: Some(
                    [
                        (SERVICE_NAME_LABEL.to_string(), "kubernetes".to_string()),
                        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(
                ips.into_iter()
                    .map(|ip| Endpoint {
                        addresses: vec![ip],
                        conditions: Some(EndpointConditions {
                            ready: Some(true),
                            serving: Some(true),
                            terminating: Some(false),
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![SlicePort {
                name: Some("https".into()),
                port: Some(i32::from(port)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        })
        .collect()
}

fn kubernetes_service(cfg: &SystemServices) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("kubernetes".into()),
            namespace: Some("default".into()),
            labels: Some(
                [
                    ("component".to_string(), "apiserver".to_string()),
                    ("provider".to_string(), "kubernetes".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cfg.cluster_ips.nth_usable(0).to_string()),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(i32::from(cfg.advertise.port()))),
                ..Default::default()
            }]),
            session_affinity: Some("None".into()),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// The cluster DNS Service, when the range has its address (the tenth).
fn kube_dns_service(cfg: &SystemServices) -> Option<Service> {
    let ip = cfg.cluster_ips.dns_ip()?;
    let port = |name: &str, protocol: &str| ServicePort {
        name: Some(name.into()),
        port: 53,
        protocol: Some(protocol.into()),
        target_port: Some(IntOrString::Int(53)),
        ..Default::default()
    };
    Some(Service {
        metadata: ObjectMeta {
            name: Some("kube-dns".into()),
            namespace: Some("kube-system".into()),
            labels: Some([("k8s-app".to_string(), "kube-dns".to_string())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip.to_string()),
            ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
            internal_traffic_policy: Some("Local".into()),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        status: None,
    })
}

#[cfg(test)]
#[path = "kubernetes_tests.rs"]
mod tests;
