//! The node agent of the `local` provider (`rkube cloud-provider local-agent`), one per
//! machine: it watches what its node must do from the provider's NodeAgent service, with
//! the node's own client certificate, and does it: the machine's kernel routes to the
//! other nodes' pod CIDRs, and the load balancer addresses the node holds
//! ([`crate::announce`]), which it gives up when it stops.
//!
//! The routes it installs carry their own routing protocol number ([`ROUTE_PROTO`]), so
//! it finds and removes its own routes, and never touches anyone else's.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use rkube_proto::cloudlocal as cl;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::announce::Held;

/// The `proto` of the routes the agent installs (`ip route … proto 82`).
pub const ROUTE_PROTO: &str = "82";

/// Where the provider is, and the node's credentials.
pub struct AgentConfig {
    /// `https://HOST:PORT` of the provider.
    pub provider: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Where load balancer addresses go; default: the interface of the route to each.
    pub lb_interface: Option<String>,
}

/// Why the agent stopped, or why a set of routes could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("provider: {0}: not https://HOST:PORT")]
    Address(String),
    #[error("the provider sent {field} {value:?}: not an IPv4 {what}")]
    Invalid {
        field: &'static str,
        value: String,
        what: &'static str,
    },
    #[error("ip {args}: {reason}")]
    Ip { args: String, reason: String },
}

/// Does what the provider says until `stop` completes; a lost connection is made again
/// with back-off, and routes and addresses stay meanwhile. Held load balancer addresses
/// are given up at the end.
pub async fn run(
    cfg: AgentConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let channel = channel(&cfg)?;
    let held = tokio::sync::Mutex::new(Held::new(cfg.lb_interface.clone()));
    let work = async {
        tokio::join!(
            keep(&cfg.provider, "routes", || follow_routes(channel.clone())),
            keep(&cfg.provider, "load balancers", || {
                follow_balancers(channel.clone(), &held)
            }),
        );
        std::future::pending::<()>().await
    };
    tokio::select! {
        () = work => {}
        () = stop => {}
    }
    held.lock().await.release().await;
    Ok(())
}

/// Runs the watch `follow` again whenever it ends, with back-off; stops for good when the
/// provider does not offer `what`.
async fn keep<F, Fut>(provider: &str, what: &str, mut follow: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        match follow().await {
            Ok(()) => tracing::warn!("the provider ended the {what} watch"),
            Err(s) if s.code() == tonic::Code::Unimplemented => {
                tracing::info!("the provider offers no {what}: {}", s.message());
                return;
            }
            Err(e) => tracing::warn!(%provider, "{what} watch: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

fn channel(cfg: &AgentConfig) -> Result<Channel, AgentError> {
    let bad = || AgentError::Address(cfg.provider.clone());
    let (host, port) = cfg
        .provider
        .strip_prefix("https://")
        .and_then(|r| r.rsplit_once(':'))
        .ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cfg.ca_pem))
        .identity(Identity::from_pem(&cfg.cert_pem, &cfg.key_pem))
        .domain_name(host.trim_matches(['[', ']']));
    Ok(Channel::from_shared(cfg.provider.clone())
        .map_err(|_| bad())?
        .tls_config(tls)
        .map_err(|_| bad())?
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy())
}

/// Follows one route watch: every table it sends is installed.
async fn follow_routes(channel: Channel) -> Result<(), tonic::Status> {
    let mut client = cl::node_agent_client::NodeAgentClient::new(channel);
    let mut stream = client
        .watch_routes(cl::WatchRoutesRequest {})
        .await?
        .into_inner();
    while let Some(table) = stream.message().await? {
        match install(&table.routes).await {
            Ok(()) => tracing::info!(routes = table.routes.len(), "routes installed"),
            Err(e) => tracing::warn!("routes: {e}"),
        }
    }
    Ok(())
}

/// Follows one balancer watch: the node announces what each message lists.
async fn follow_balancers(
    channel: Channel,
    held: &tokio::sync::Mutex<Held>,
) -> Result<(), tonic::Status> {
    let mut client = cl::node_agent_client::NodeAgentClient::new(channel);
    let mut stream = client
        .watch_balancers(cl::WatchBalancersRequest {})
        .await?
        .into_inner();
    while let Some(list) = stream.message().await? {
        match held.lock().await.apply(&list.balancers).await {
            Ok(()) => tracing::info!(balancers = list.balancers.len(), "load balancers held"),
            Err(e) => tracing::warn!("load balancers: {e}"),
        }
    }
    Ok(())
}

/// Makes the machine's routes of [`ROUTE_PROTO`] exactly `routes`.
pub async fn install(routes: &[cl::HostRoute]) -> Result<(), AgentError> {
    let wanted = wanted(routes)?;
    for dst in installed().await? {
        if !wanted.contains_key(&dst) {
            ip(&["route", "del", &dst, "proto", ROUTE_PROTO]).await?;
        }
    }
    for (dst, via) in &wanted {
        let via = via.to_string();
        ip(&["route", "replace", dst, "via", &via, "proto", ROUTE_PROTO]).await?;
    }
    Ok(())
}

/// The routes as destination → gateway, each checked to be IPv4 before it reaches `ip`.
fn wanted(routes: &[cl::HostRoute]) -> Result<BTreeMap<String, Ipv4Addr>, AgentError> {
    routes
        .iter()
        .map(|r| {
            let invalid = |field, value: &str, what| AgentError::Invalid {
                field,
                value: value.to_string(),
                what,
            };
            let (ip, bits) = r
                .destination_cidr
                .split_once('/')
                .ok_or_else(|| invalid("destination_cidr", &r.destination_cidr, "CIDR"))?;
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| invalid("destination_cidr", &r.destination_cidr, "CIDR"))?;
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= 32)
                .ok_or_else(|| invalid("destination_cidr", &r.destination_cidr, "CIDR"))?;
            let via: Ipv4Addr = r
                .gateway
                .parse()
                .map_err(|_| invalid("gateway", &r.gateway, "address"))?;
            Ok((normal(&format!("{ip}/{bits}")), via))
        })
        .collect()
}

/// A destination as `ip -j route` shows it: a host route without `/32`.
fn normal(dst: &str) -> String {
    dst.strip_suffix("/32").unwrap_or(dst).to_string()
}

/// The destinations of the routes of [`ROUTE_PROTO`] the machine has.
async fn installed() -> Result<Vec<String>, AgentError> {
    let out = ip(&["-j", "route", "show", "proto", ROUTE_PROTO]).await?;
    let routes: Vec<serde_json::Value> =
        serde_json::from_str(out.trim()).map_err(|e| AgentError::Ip {
            args: "-j route show".into(),
            reason: format!("unreadable output: {e}"),
        })?;
    Ok(routes
        .iter()
        .filter_map(|r| r.get("dst")?.as_str().map(normal))
        .collect())
}

pub(crate) async fn ip(args: &[&str]) -> Result<String, AgentError> {
    let fail = |reason: String| AgentError::Ip {
        args: args.join(" "),
        reason,
    };
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, via: &str) -> cl::HostRoute {
        cl::HostRoute {
            destination_cidr: dst.into(),
            gateway: via.into(),
            target_node: "n".into(),
        }
    }

    #[test]
    fn only_ipv4_routes_reach_the_ip_command() {
        let ok = wanted(&[
            route("10.244.1.0/24", "192.168.1.2"),
            route("10.9.9.9/32", "1.1.1.1"),
        ])
        .unwrap();
        assert_eq!(
            ok.get("10.244.1.0/24"),
            Some(&Ipv4Addr::new(192, 168, 1, 2))
        );
        assert!(ok.contains_key("10.9.9.9"));
        for (dst, via) in [
            ("10.244.1.0/33", "1.1.1.1"),
            ("-net/8", "1.1.1.1"),
            ("10.244.1.0", "1.1.1.1"),
            ("10.244.1.0/24", "dev eth0"),
            ("10.244.1.0/24", ""),
        ] {
            let e = wanted(&[route(dst, via)]).unwrap_err();
            assert!(
                matches!(e, AgentError::Invalid { .. }),
                "{dst} via {via}: {e}"
            );
        }
    }
}
