//! Endpoints and EndpointSlice controller: for every Service with a selector, the pods it
//! selects — ready ones in `addresses`, the others in `notReadyAddresses` — with named
//! target ports resolved against each pod's container ports. The EndpointSlices carry the
//! same endpoints with ready/serving/terminating conditions, at most 100 per slice.

use std::collections::BTreeMap;
use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::Api;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::context::Ctx;
use crate::pods;
use crate::replicaset::owner_ref;
use client::runtime::{backoff, Action};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const MAX_ENDPOINTS_PER_SLICE: usize = 100;

fn services_of_namespace(ctx: &Ctx, c: &Change<Pod>) -> Vec<ObjectKey> {
    let ns = c.object().metadata.namespace.clone().unwrap_or_default();
    ctx.services
        .list_namespace(&ns)
        .iter()
        .map(|s| ObjectKey::of(s.as_ref()))
        .collect()
}

pub async fn run(ctx: Arc<Ctx>, workers: usize) {
    let c = ctx.clone();
    ctx.controller("endpoints", &ctx.services)
        .watches(ctx.pods.clone(), move |ch| services_of_namespace(&c, ch))
        .concurrency(workers)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

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
struct Member {
    pod: Arc<Pod>,
    ip: String,
    ready: bool,
    ports: Vec<(Option<String>, i32, String)>,
}

fn members(ctx: &Ctx, svc: &Service) -> Vec<Member> {
    let spec = svc.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let mut out: Vec<Member> = ctx
        .pods
        .list_namespace(&ns)
        .into_iter()
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
                    let port = target_port(sp, &p)?;
                    Some((
                        sp.name.clone(),
                        port,
                        sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    ))
                })
                .collect();
            Some(Member {
                ready: publish_not_ready || pods::is_ready(&p),
                ip,
                ports,
                pod: p,
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
fn subsets(ms: &[Member]) -> Vec<EndpointSubset> {
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
            node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(&m.pod)),
            ..Default::default()
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

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let eps_api = Api::<Endpoints>::namespaced(ctx.client.clone(), &key.namespace);
    let slices_api = Api::<EndpointSlice>::namespaced(ctx.client.clone(), &key.namespace);
    let svc = ctx.services.get(&key);
    let selector_set = svc
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    let Some(svc) = svc.filter(|_| selector_set) else {
        // No Service (or no selector): what this controller wrote goes.
        if ctx.services.get(&key).is_none() {
            match eps_api.delete(&key.name, None).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(Action::AwaitChange);
    };
    let ms = members(ctx, &svc);
    let labels = svc.metadata.labels.clone();
    let want = Endpoints {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            labels: labels.clone(),
            ..Default::default()
        },
        subsets: Some(subsets(&ms)),
    };
    match eps_api.get_opt(&key.name).await? {
        None => {
            eps_api.create(&want).await?;
        }
        Some(cur)
            if cur.subsets.clone().unwrap_or_default()
                != want.subsets.clone().unwrap_or_default()
                || cur.metadata.labels != labels =>
        {
            let mut next = want.clone();
            next.metadata.resource_version = cur.metadata.resource_version.clone();
            eps_api.replace(&next).await?;
        }
        Some(_) => {}
    }
    sync_slices(&slices_api, &svc, &ms).await?;
    Ok(Action::AwaitChange)
}

async fn sync_slices(
    api: &Api<EndpointSlice>,
    svc: &Service,
    ms: &[Member],
) -> Result<(), client::Error> {
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
    let endpoints: Vec<Endpoint> = ms
        .iter()
        .map(|m| Endpoint {
            addresses: vec![m.ip.clone()],
            conditions: Some(EndpointConditions {
                ready: Some(m.ready),
                serving: Some(m.ready),
                terminating: Some(false),
            }),
            node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(&m.pod)),
            ..Default::default()
        })
        .collect();
    let chunks: Vec<&[Endpoint]> = if endpoints.is_empty() {
        vec![&[]]
    } else {
        endpoints.chunks(MAX_ENDPOINTS_PER_SLICE).collect()
    };
    let owner = owner_ref("v1", "Service", &svc.metadata);
    let selector = format!("{SERVICE_NAME_LABEL}={name}");
    let existing = api
        .list(&client::ListParams::default().labels(&selector))
        .await?
        .items;
    for (i, chunk) in chunks.iter().enumerate() {
        let slice_name = format!("{name}-{i}");
        let want = EndpointSlice {
            metadata: ObjectMeta {
                name: Some(slice_name.clone()),
                namespace: svc.metadata.namespace.clone(),
                labels: Some(
                    [
                        (SERVICE_NAME_LABEL.to_string(), name.clone()),
                        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                    ]
                    .into(),
                ),
                owner_references: Some(vec![owner.clone()]),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(chunk.to_vec()),
            ports: Some(ports.clone()),
        };
        match existing
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(slice_name.as_str()))
        {
            None => {
                api.create(&want).await?;
            }
            Some(cur) if cur.endpoints != want.endpoints || cur.ports != want.ports => {
                let mut next = want.clone();
                next.metadata.resource_version = cur.metadata.resource_version.clone();
                api.replace(&next).await?;
            }
            Some(_) => {}
        }
    }
    for extra in existing.iter().filter(|s| {
        let n = s.metadata.name.clone().unwrap_or_default();
        !(0..chunks.len()).any(|i| n == format!("{name}-{i}"))
    }) {
        match api
            .delete(extra.metadata.name.as_deref().unwrap_or_default(), None)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
