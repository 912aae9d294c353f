//! The endpoints of the cluster DNS Service (`kube-system/kube-dns`): every node runs a
//! DNS server and names it on its Node (`dns.rkube.io/server: IP:PORT`); this controller
//! writes those addresses as the Service's EndpointSlices, each with its node's name and
//! ready while the node is Ready. The Service's `internalTrafficPolicy: Local` then sends
//! each node's pods to their own node's server.
//!
//! [`plan`] decides; `reconcile` makes the calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::Api;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::context::Ctx;
use crate::endpoints::{plan::slice_changes, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};

/// The annotation a node names its DNS server with.
pub const SERVER_ANNOTATION: &str = "dns.rkube.io/server";
const NAMESPACE: &str = "kube-system";
const SERVICE: &str = "kube-dns";
const MANAGED_BY: &str = "cluster-dns.rkube.io";

fn dns_key() -> ObjectKey {
    ObjectKey {
        namespace: NAMESPACE.into(),
        name: SERVICE.into(),
    }
}

pub(crate) async fn run(ctx: Arc<Ctx>) {
    ctx.controller("cluster-dns-endpoints", &ctx.services)
        .watches(ctx.nodes.clone(), |_| vec![dns_key()])
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    if key != dns_key() || ctx.services.get(&key).is_none() {
        return Ok(Action::AwaitChange);
    }
    let api = Api::<EndpointSlice>::namespaced(ctx.client.clone(), NAMESPACE);
    let selector = format!("{SERVICE_NAME_LABEL}={SERVICE},{MANAGED_BY_LABEL}={MANAGED_BY}");
    let existing = api
        .list(&client::ListParams::default().labels(&selector))
        .await?
        .items;
    let nodes = ctx.nodes.list();
    let want = plan(&nodes.iter().map(|n| n.as_ref()).collect::<Vec<_>>());
    slice_changes(want, &existing).apply(&api).await?;
    Ok(Action::AwaitChange)
}

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The kube-dns EndpointSlices for `nodes`: one per DNS port (`kube-dns` when all
/// servers share one), each endpoint carrying its node's name and readiness.
pub(crate) fn plan(nodes: &[&Node]) -> Vec<EndpointSlice> {
    let mut by_port: BTreeMap<u16, Vec<Endpoint>> = BTreeMap::new();
    let mut sorted: Vec<&&Node> = nodes.iter().collect();
    sorted.sort_by_key(|n| n.metadata.name.clone());
    for n in sorted {
        let Some(addr) = n
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SERVER_ANNOTATION))
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .filter(SocketAddr::is_ipv4)
        else {
            continue;
        };
        let r = ready(n);
        by_port.entry(addr.port()).or_default().push(Endpoint {
            addresses: vec![addr.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(r),
                serving: Some(r),
                terminating: Some(false),
            }),
            node_name: n.metadata.name.clone(),
            ..Default::default()
        });
    }
    let single = by_port.len() <= 1;
    by_port
        .into_iter()
        .map(|(port, endpoints)| {
            let port_of = |name: &str, protocol: &str| EndpointPort {
                name: Some(name.into()),
                port: Some(i32::from(port)),
                protocol: Some(protocol.into()),
                ..Default::default()
            };
            EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(if single {
                        SERVICE.into()
                    } else {
                        format!("{SERVICE}-{port}")
                    }),
                    namespace: Some(NAMESPACE.into()),
                    labels: Some(
                        [
                            (SERVICE_NAME_LABEL.to_string(), SERVICE.to_string()),
                            (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                        ]
                        .into(),
                    ),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: Some(endpoints),
                ports: Some(vec![port_of("dns", "UDP"), port_of("dns-tcp", "TCP")]),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, server: Option<&str>, ready: &str) -> Node {
        let mut v = json!({"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}});
        if let Some(s) = server {
            v["metadata"]["annotations"] = json!({SERVER_ANNOTATION: s});
        }
        serde_json::from_value(v).unwrap()
    }

    fn endpoints(s: &EndpointSlice) -> Vec<(String, String, bool)> {
        s.endpoints
            .iter()
            .flatten()
            .map(|e| {
                (
                    e.node_name.clone().unwrap(),
                    e.addresses[0].clone(),
                    e.conditions.as_ref().unwrap().ready.unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn every_announcing_node_is_an_endpoint_ready_as_its_node() {
        let nodes = [
            node("w2", Some("10.0.0.2:53"), "False"),
            node("w1", Some("10.0.0.1:53"), "True"),
            node("w3", None, "True"),
            node("w4", Some("not an address"), "True"),
        ];
        let s = plan(&nodes.iter().collect::<Vec<_>>());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].metadata.name.as_deref(), Some("kube-dns"));
        assert_eq!(
            endpoints(&s[0]),
            [
                ("w1".into(), "10.0.0.1".into(), true),
                ("w2".into(), "10.0.0.2".into(), false)
            ]
        );
        let ports: Vec<(Option<String>, Option<i32>, Option<String>)> = s[0]
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("dns".into()), Some(53), Some("UDP".into())),
                (Some("dns-tcp".into()), Some(53), Some("TCP".into()))
            ]
        );
    }

    #[test]
    fn servers_on_other_ports_get_a_slice_each() {
        let nodes = [
            node("w1", Some("127.0.0.1:40001"), "True"),
            node("w2", Some("127.0.0.1:40002"), "True"),
        ];
        let names: Vec<String> = plan(&nodes.iter().collect::<Vec<_>>())
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["kube-dns-40001", "kube-dns-40002"]);
        assert!(plan(&[]).is_empty());
    }
}
