//! csrapproving: approves the requests nodes make for their own certificates, after
//! checking that each asks for exactly what its requester may have.
//!
//! - A client certificate (`kube-apiserver-client-kubelet`) for `system:node:<n>` in
//!   `system:nodes`, with no alternative names and client usages, requested by a
//!   bootstrapper (a new node) or by `system:node:<n>` itself (a renewal).
//! - A serving certificate (`kubelet-serving`) requested by `system:node:<n>` for itself,
//!   naming only addresses its Node reports.
//!
//! A request from a bootstrapper or a node that asks for anything else is denied with the
//! reason; requests from anyone else are left for an administrator.

use std::net::IpAddr;
use std::sync::Arc;

use client::reflector::ObjectKey;
use client::Api;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Node;
use pki::RequestInfo;

use super::*;
use crate::context::Ctx;
use client::runtime::{backoff, Action};

/// What to do with a pending request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Approve(&'static str),
    Deny(String),
    /// Not ours to decide.
    Leave,
    /// Not yet: the Node it names is not known.
    Wait,
}

const CLIENT_USAGES: &[&str] = &["digital signature", "key encipherment", "client auth"];
const SERVING_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];

fn usages_ok(csr: &CertificateSigningRequest, allowed: &[&str], required: &str) -> bool {
    let u = csr.spec.usages.as_deref().unwrap_or_default();
    u.iter().any(|x| x == required) && u.iter().all(|x| allowed.contains(&x.as_str()))
}

/// The node a request's subject names, when it is a node's subject.
fn node_of(info: &RequestInfo) -> Result<&str, String> {
    let name = info
        .common_name
        .strip_prefix(NODE_USER_PREFIX)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            format!(
                "the subject's common name {:?} is not system:node:<name>",
                info.common_name
            )
        })?;
    if info.organizations != [NODES_GROUP] {
        return Err(format!(
            "the subject's organizations {:?} must be exactly [\"{NODES_GROUP}\"]",
            info.organizations
        ));
    }
    Ok(name)
}

/// Decides on a pending request, given what it asks for and the Node it names.
pub(crate) fn decide(
    csr: &CertificateSigningRequest,
    info: &Result<RequestInfo, String>,
    node: impl Fn(&str) -> Option<Arc<Node>>,
) -> Verdict {
    if condition(csr, "Approved") || condition(csr, "Denied") || has_certificate(csr) {
        return Verdict::Leave;
    }
    let user = csr.spec.username.as_deref().unwrap_or_default();
    let groups = csr.spec.groups.as_deref().unwrap_or_default();
    let bootstrapper = groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP);
    let is_node = groups.iter().any(|g| g == NODES_GROUP);
    if !bootstrapper && !is_node {
        return Verdict::Leave;
    }
    let info = match info {
        Ok(i) => i,
        Err(e) => return Verdict::Deny(format!("the request does not parse: {e}")),
    };
    let name = match node_of(info) {
        Ok(n) => n,
        Err(e) => return Verdict::Deny(e),
    };
    match csr.spec.signer_name.as_str() {
        KUBELET_CLIENT_SIGNER => {
            if info.dns_names.len() + info.ip_addresses.len() + info.other_names > 0 {
                return Verdict::Deny("a node client certificate names no addresses".into());
            }
            if !usages_ok(csr, CLIENT_USAGES, "client auth") {
                return Verdict::Deny(format!(
                    "usages must include client auth, within {CLIENT_USAGES:?}"
                ));
            }
            if bootstrapper || user == info.common_name {
                Verdict::Approve("AutoApproved")
            } else {
                Verdict::Deny(format!("{user} may not request a certificate for {name}"))
            }
        }
        KUBELET_SERVING_SIGNER => {
            if user != info.common_name {
                return Verdict::Deny(format!(
                    "{user:?} may not request a serving certificate for {name}"
                ));
            }
            if !usages_ok(csr, SERVING_USAGES, "server auth") {
                return Verdict::Deny(format!(
                    "usages must include server auth, within {SERVING_USAGES:?}"
                ));
            }
            if info.other_names > 0 || info.dns_names.len() + info.ip_addresses.len() == 0 {
                return Verdict::Deny(
                    "a serving certificate names DNS names or IP addresses only, at least one"
                        .into(),
                );
            }
            let Some(node) = node(name) else {
                return Verdict::Wait;
            };
            match foreign_name(info, &node, name) {
                Some(n) => Verdict::Deny(format!("{n} is not an address of node {name}")),
                None => Verdict::Approve("AutoApproved"),
            }
        }
        _ => Verdict::Leave,
    }
}

/// The first name in the request that is not one of the node's addresses.
fn foreign_name(info: &RequestInfo, node: &Node, name: &str) -> Option<String> {
    let addrs: Vec<(&str, &str)> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|a| {
            a.iter()
                .map(|a| (a.type_.as_str(), a.address.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let has_ip = |ip: &IpAddr| {
        addrs
            .iter()
            .any(|(t, a)| t.ends_with("IP") && a.parse::<IpAddr>().ok().as_ref() == Some(ip))
    };
    let has_dns = |d: &str| d == name || addrs.iter().any(|(t, a)| !t.ends_with("IP") && *a == d);
    info.ip_addresses
        .iter()
        .find(|ip| !has_ip(ip))
        .map(ToString::to_string)
        .or_else(|| info.dns_names.iter().find(|d| !has_dns(d)).cloned())
}

pub(crate) async fn run(ctx: Arc<Ctx>) {
    ctx.controller("csrapproving", &ctx.csrs)
        .concurrency(2)
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(csr) = ctx.csrs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let info = pki::parse_request(&request_pem(&csr)).map_err(|e| e.to_string());
    let node = |n: &str| {
        ctx.nodes.get(&ObjectKey {
            namespace: String::new(),
            name: n.to_string(),
        })
    };
    let api = Api::<CertificateSigningRequest>::all(ctx.client.clone());
    match decide(&csr, &info, node) {
        Verdict::Approve(reason) => {
            let msg = "Auto approving a node certificate for its own node.";
            api.replace_approval(&with_condition(&csr, "Approved", reason, msg))
                .await?;
            tracing::info!(csr = %key.name, "certificate request approved");
            Ok(Action::AwaitChange)
        }
        Verdict::Deny(why) => {
            tracing::warn!(csr = %key.name, reason = %why, "certificate request denied");
            api.replace_approval(&with_condition(&csr, "Denied", "AutoDenied", &why))
                .await?;
            Ok(Action::AwaitChange)
        }
        Verdict::Leave => Ok(Action::AwaitChange),
        Verdict::Wait => Ok(Action::Requeue(std::time::Duration::from_secs(1))),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};
    use k8s_openapi::ByteString;

    use super::*;

    fn csr(
        signer: &str,
        user: &str,
        groups: &[&str],
        usages: &[&str],
    ) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                signer_name: signer.into(),
                username: Some(user.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                request: ByteString(vec![]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn info(cn: &str, orgs: &[&str], ips: &[&str]) -> Result<RequestInfo, String> {
        Ok(RequestInfo {
            common_name: cn.into(),
            organizations: orgs.iter().map(|o| o.to_string()).collect(),
            ip_addresses: ips.iter().map(|i| i.parse().unwrap()).collect(),
            ..Default::default()
        })
    }

    fn w1() -> Option<Arc<Node>> {
        Some(Arc::new(Node {
            status: Some(NodeStatus {
                addresses: Some(vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: "10.0.0.1".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    const CLIENT: &[&str] = &["digital signature", "client auth"];
    const SERVING: &[&str] = &["digital signature", "server auth"];
    const BOOT: &[&str] = &["system:bootstrappers", "system:authenticated"];
    const NODE: &[&str] = &["system:nodes", "system:authenticated"];
    const N1: &str = "system:node:w1";

    #[test]
    fn node_requests_are_approved_only_for_what_their_requester_may_have() {
        let approve = Verdict::Approve("AutoApproved");
        let denied = |v: &Verdict| matches!(v, Verdict::Deny(_));
        let cases: Vec<(
            &str,
            CertificateSigningRequest,
            Result<RequestInfo, String>,
            bool,
        )> = vec![
            (
                "bootstrapper, new node",
                csr(
                    KUBELET_CLIENT_SIGNER,
                    "system:bootstrap:abcdef",
                    BOOT,
                    CLIENT,
                ),
                info(N1, &[NODES_GROUP], &[]),
                true,
            ),
            (
                "node renews its own",
                csr(KUBELET_CLIENT_SIGNER, N1, NODE, CLIENT),
                info(N1, &[NODES_GROUP], &[]),
                true,
            ),
            (
                "node asks for another node",
                csr(KUBELET_CLIENT_SIGNER, "system:node:w2", NODE, CLIENT),
                info(N1, &[NODES_GROUP], &[]),
                false,
            ),
            (
                "bootstrapper asks for system:masters",
                csr(
                    KUBELET_CLIENT_SIGNER,
                    "system:bootstrap:abcdef",
                    BOOT,
                    CLIENT,
                ),
                info(N1, &["system:masters"], &[]),
                false,
            ),
            (
                "bootstrapper asks for an admin name",
                csr(
                    KUBELET_CLIENT_SIGNER,
                    "system:bootstrap:abcdef",
                    BOOT,
                    CLIENT,
                ),
                info("rkube-admin", &[NODES_GROUP], &[]),
                false,
            ),
            (
                "client cert with server usage",
                csr(KUBELET_CLIENT_SIGNER, N1, NODE, SERVING),
                info(N1, &[NODES_GROUP], &[]),
                false,
            ),
            (
                "client cert with addresses",
                csr(KUBELET_CLIENT_SIGNER, N1, NODE, CLIENT),
                info(N1, &[NODES_GROUP], &["10.0.0.1"]),
                false,
            ),
            (
                "serving for its own address",
                csr(KUBELET_SERVING_SIGNER, N1, NODE, SERVING),
                info(N1, &[NODES_GROUP], &["10.0.0.1"]),
                true,
            ),
            (
                "serving for a foreign address",
                csr(KUBELET_SERVING_SIGNER, N1, NODE, SERVING),
                info(N1, &[NODES_GROUP], &["10.0.0.9"]),
                false,
            ),
            (
                "serving from a bootstrapper",
                csr(
                    KUBELET_SERVING_SIGNER,
                    "system:bootstrap:abcdef",
                    BOOT,
                    SERVING,
                ),
                info(N1, &[NODES_GROUP], &["10.0.0.1"]),
                false,
            ),
            (
                "unparsable request",
                csr(KUBELET_CLIENT_SIGNER, N1, NODE, CLIENT),
                Err("bad".into()),
                false,
            ),
        ];
        for (name, c, i, ok) in cases {
            let v = decide(&c, &i, |_| w1());
            if ok {
                assert_eq!(v, approve, "{name}");
            } else {
                assert!(denied(&v), "{name}: {v:?}");
            }
        }
    }

    #[test]
    fn requests_of_others_and_decided_ones_are_left_alone() {
        let admin = csr(
            KUBELET_CLIENT_SIGNER,
            "alice",
            &["system:authenticated"],
            CLIENT,
        );
        assert_eq!(
            decide(&admin, &info(N1, &[NODES_GROUP], &[]), |_| w1()),
            Verdict::Leave
        );
        let other = csr("example.com/x", N1, NODE, CLIENT);
        assert_eq!(
            decide(&other, &info(N1, &[NODES_GROUP], &[]), |_| w1()),
            Verdict::Leave
        );
        let done = with_condition(
            &csr(KUBELET_CLIENT_SIGNER, N1, NODE, CLIENT),
            "Denied",
            "r",
            "m",
        );
        assert_eq!(
            decide(&done, &info(N1, &[NODES_GROUP], &[]), |_| w1()),
            Verdict::Leave
        );
        let serving = csr(KUBELET_SERVING_SIGNER, N1, NODE, SERVING);
        assert_eq!(
            decide(&serving, &info(N1, &[NODES_GROUP], &["10.0.0.1"]), |_| None),
            Verdict::Wait
        );
    }
}
