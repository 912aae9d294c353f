//! The load balancer addresses a node holds, as its node agent keeps them: each address
//! on the machine's interface (labelled `<interface>:lb`, so the agent finds its own), a
//! balancer listening there, and gratuitous ARP to announce it once it listens. An
//! address the node no longer holds loses its balancer, then the address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rkube_proto::cloudlocal as cl;

use crate::agent::{ip, AgentError};
use crate::balancer::Spec;
use crate::listeners::Listeners;

/// The label suffix of the addresses the agent adds.
const LABEL: &str = ":lb";

/// What the node announces now.
#[derive(Default)]
pub struct Held {
    /// `--lb-interface`; else the interface of the route to each address.
    interface: Option<String>,
    listeners: Listeners,
    /// (interface, address) the agent added.
    added: BTreeSet<(String, Ipv4Addr)>,
    /// Whether addresses left by an earlier run were looked for.
    scanned: bool,
    /// Gratuitous ARP under way (it takes a second; the balancer does not wait for it).
    arps: tokio::task::JoinSet<()>,
}

impl Held {
    /// Nothing held yet; addresses go on `interface`, or else on the interface of the
    /// route to each.
    pub fn new(interface: Option<String>) -> Held {
        Held {
            interface,
            ..Default::default()
        }
    }

    /// Announces exactly `balancers`.
    pub async fn apply(&mut self, balancers: &[cl::HeldBalancer]) -> Result<(), AgentError> {
        let mut specs: BTreeMap<String, Spec> = balancers
            .iter()
            .map(|b| Ok((b.uid.clone(), spec_of(b)?)))
            .collect::<Result<_, AgentError>>()?;
        if !self.scanned {
            self.added.extend(labelled().await?);
            self.scanned = true;
        }
        let wanted: BTreeSet<Ipv4Addr> = specs.values().map(|s| s.ip).collect();
        let mut fresh = Vec::new();
        for vip in &wanted {
            if self.added.iter().any(|(_, a)| a == vip) {
                continue;
            }
            match self.add(*vip).await {
                Ok(dev) => {
                    self.added.insert((dev.clone(), *vip));
                    fresh.push((dev, *vip));
                }
                Err(e) => {
                    // Its balancer cannot listen without the address; the others go on.
                    tracing::warn!(%vip, "load balancer address: {e}");
                    specs.retain(|_, s| s.ip != *vip);
                }
            }
        }
        for e in self.listeners.sync(&specs).await {
            tracing::warn!("load balancer: {e}");
        }
        while self.arps.try_join_next().is_some() {}
        for (dev, vip) in fresh {
            self.arps.spawn(announce(dev, vip));
        }
        let gone: Vec<(String, Ipv4Addr)> = self
            .added
            .iter()
            .filter(|(_, a)| !wanted.contains(a))
            .cloned()
            .collect();
        for (dev, vip) in gone {
            ip(&["addr", "del", &format!("{vip}/32"), "dev", &dev]).await?;
            self.added.remove(&(dev, vip));
            tracing::info!(%vip, "load balancer address released");
        }
        Ok(())
    }

    /// Adds `vip` to its interface; returns the interface.
    async fn add(&self, vip: Ipv4Addr) -> Result<String, AgentError> {
        let dev = match &self.interface {
            Some(i) => i.clone(),
            None => route_dev(vip).await?,
        };
        add_address(&dev, vip).await?;
        Ok(dev)
    }

    /// Gives every address up (the agent stops).
    pub async fn release(&mut self) {
        if let Err(e) = self.apply(&[]).await {
            tracing::warn!("releasing load balancer addresses: {e}");
        }
    }
}

/// The balancer `b` describes, each field checked.
fn spec_of(b: &cl::HeldBalancer) -> Result<Spec, AgentError> {
    let invalid = |field: &'static str, value: &str, what: &'static str| AgentError::Invalid {
        field,
        value: value.to_string(),
        what,
    };
    let ip: Ipv4Addr = b.ip.parse().map_err(|_| invalid("ip", &b.ip, "address"))?;
    let (mut ports, mut udp_ports) = (Vec::new(), Vec::new());
    for p in &b.ports {
        let pair = match (u16::try_from(p.port), u16::try_from(p.node_port)) {
            (Ok(a), Ok(n)) if a != 0 && n != 0 => (a, n),
            _ => {
                let value = format!("{}:{}", p.port, p.node_port);
                return Err(invalid("ports", &value, "port"));
            }
        };
        match p.protocol.as_str() {
            "TCP" | "" => ports.push(pair),
            "UDP" => udp_ports.push(pair),
            other => return Err(invalid("ports.protocol", other, "protocol (TCP or UDP)")),
        }
    }
    let backends = b
        .backends
        .iter()
        .map(|a| {
            let ip: Ipv4Addr = a.parse().map_err(|_| invalid("backends", a, "address"))?;
            Ok(SocketAddr::new(IpAddr::V4(ip), 0))
        })
        .collect::<Result<_, AgentError>>()?;
    Ok(Spec {
        service: b.service.clone(),
        ip,
        ports,
        udp_ports,
        backends,
        source_ranges: b.source_ranges.clone(),
        health_check_port: u16::try_from(b.health_check_node_port).map_err(|_| {
            invalid(
                "health_check_node_port",
                &b.health_check_node_port.to_string(),
                "port",
            )
        })?,
        nodes: Vec::new(),
        holder: None,
    })
}

/// Adds `vip` to `dev`.
async fn add_address(dev: &str, vip: Ipv4Addr) -> Result<(), AgentError> {
    let addr = format!("{vip}/32");
    let label = format!("{dev}{LABEL}");
    let mut args = vec!["addr", "replace", &addr, "dev", dev];
    // Linux limits labels to 15 bytes.
    if label.len() <= 15 {
        args.extend(["label", &label]);
    }
    ip(&args).await?;
    tracing::info!(%vip, %dev, "load balancer address held");
    Ok(())
}

/// Tells the neighbours on `dev` that `vip` is here now, with gratuitous ARP.
async fn announce(dev: String, vip: Ipv4Addr) {
    let vip = vip.to_string();
    let arp = tokio::process::Command::new("arping")
        .args(["-U", "-c", "2", "-I", &dev, &vip])
        .kill_on_drop(true)
        .output()
        .await;
    match arp {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            tracing::warn!(%vip, "gratuitous ARP: {}", String::from_utf8_lossy(&o.stderr).trim())
        }
        Err(e) => tracing::warn!(%vip, "gratuitous ARP (arping, from iputils-arping): {e}"),
    }
}

/// The interface of the route to `vip`.
async fn route_dev(vip: Ipv4Addr) -> Result<String, AgentError> {
    let out = ip(&["-j", "route", "get", &vip.to_string()]).await?;
    let routes: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap_or_default();
    routes
        .first()
        .and_then(|r| r.get("dev")?.as_str())
        .map(str::to_string)
        .ok_or_else(|| AgentError::Ip {
            args: format!("route get {vip}"),
            reason: "no interface routes it (set --lb-interface)".into(),
        })
}

/// The addresses the agent added before (by their label), on any interface.
async fn labelled() -> Result<Vec<(String, Ipv4Addr)>, AgentError> {
    let out = ip(&["-j", "-4", "addr", "show"]).await?;
    let links: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap_or_default();
    let mut found = Vec::new();
    for link in &links {
        let Some(dev) = link.get("ifname").and_then(|d| d.as_str()) else {
            continue;
        };
        let label = format!("{dev}{LABEL}");
        for a in link
            .get("addr_info")
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            let local = a
                .get("local")
                .and_then(|l| l.as_str())
                .and_then(|l| l.parse().ok());
            if let (Some(ip), Some(l)) = (local, a.get("label").and_then(|l| l.as_str())) {
                if l == label {
                    found.push((dev.to_string(), ip));
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(ip: &str, port: u32, backend: &str) -> cl::HeldBalancer {
        cl::HeldBalancer {
            uid: "u".into(),
            service: "default/web".into(),
            ip: ip.into(),
            ports: vec![cl::BalancerPort {
                port,
                node_port: 30080,
                protocol: "TCP".into(),
            }],
            backends: vec![backend.into()],
            source_ranges: vec![],
            health_check_node_port: 0,
        }
    }

    #[test]
    fn only_checked_balancers_reach_the_interface() {
        let s = spec_of(&balancer("10.0.0.200", 80, "10.0.0.2")).unwrap();
        assert_eq!(
            (s.ip, s.ports.clone()),
            (Ipv4Addr::new(10, 0, 0, 200), vec![(80, 30080)])
        );
        for (ip, port, backend) in [
            ("dev eth0", 80, "10.0.0.2"),
            ("10.0.0.200", 70_000, "10.0.0.2"),
            ("10.0.0.200", 0, "10.0.0.2"),
            ("10.0.0.200", 80, "-x"),
        ] {
            let e = spec_of(&balancer(ip, port, backend)).unwrap_err();
            assert!(matches!(e, AgentError::Invalid { .. }), "{e}");
        }
    }
}
