//! Service addresses: ClusterIPs from `--service-cluster-ip-range` and NodePorts from
//! `--service-node-port-range`.
//!
//! Every allocated value is a key in the store (`/rkube/ranges/serviceips/<ip>`,
//! `/rkube/ranges/servicenodeports/<port>`) written in the same transaction as the
//! Service itself, so two Services never hold the same value, and the transaction that
//! removes a Service (or changes its type) releases what it held. Headless Services
//! (`clusterIP: None`) and `type: ExternalName` hold nothing. [`repair`] fixes keys that
//! writes around the apiserver left wrong.

mod allocate;
pub mod kubernetes;
pub mod repair;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use bytes::Bytes;
use raft_store::Store;
use serde_json::{json, Value};

use crate::error::{Error, FieldError, Result};
use crate::storage::Side;

pub const IP_PREFIX: &str = "/rkube/ranges/serviceips/";
pub const PORT_PREFIX: &str = "/rkube/ranges/servicenodeports/";

/// An IPv4 network, `10.96.0.0/12`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    bits: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (ip, bits) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: not a CIDR (want e.g. 10.96.0.0/12)"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| (8..=30).contains(b))
            .ok_or_else(|| format!("{s:?}: the prefix length must be 8 to 30"))?;
        let mask = u32::MAX << (32 - bits);
        Ok(Cidr {
            base: u32::from(ip) & mask,
            bits,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.bits)
    }
}

impl Cidr {
    fn size(&self) -> u32 {
        1u32 << (32 - self.bits)
    }
    /// Whether `ip` may be handed out: inside, and neither the network nor the broadcast
    /// address.
    pub fn usable(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        n > self.base && n < self.base + self.size() - 1
    }
    /// The first address of the range: the `kubernetes` Service's.
    pub fn first_usable(&self) -> Ipv4Addr {
        self.nth_usable(0)
    }
    /// The tenth address, the cluster DNS Service's, when the range has one.
    pub fn dns_ip(&self) -> Option<Ipv4Addr> {
        (self.size() - 2 >= 10).then(|| self.nth_usable(9))
    }
    /// Addresses a Service gets only by asking for them: those of the `kubernetes` and
    /// `kube-dns` Services, which their reconciler asks for by value.
    fn reserved(&self, ip: Ipv4Addr) -> bool {
        ip == self.first_usable() || Some(ip) == self.dns_ip()
    }
    pub(crate) fn nth_usable(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1 + i % (self.size() - 2))
    }
}

/// The ranges Services draw from.
#[derive(Clone, Debug)]
pub struct ServiceRanges {
    pub cluster_ips: Cidr,
    pub node_ports: RangeInclusive<u16>,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ips: "10.96.0.0/12".parse().expect("a valid CIDR"),
            node_ports: 30000..=32767,
        }
    }
}

/// Parses `--service-node-port-range` (`30000-32767`).
pub fn parse_port_range(s: &str) -> std::result::Result<RangeInclusive<u16>, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: want FIRST-LAST, e.g. 30000-32767"))?;
    let (a, b): (u16, u16) = match (a.trim().parse(), b.trim().parse()) {
        (Ok(a), Ok(b)) if a > 0 && a <= b => (a, b),
        _ => {
            return Err(format!(
                "{s:?}: want FIRST-LAST with 0 < FIRST <= LAST <= 65535"
            ))
        }
    };
    Ok(a..=b)
}

fn ip_key(ip: Ipv4Addr) -> String {
    format!("{IP_PREFIX}{ip}")
}

fn port_key(p: u16) -> String {
    format!("{PORT_PREFIX}{p}")
}

fn service_type(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

fn wants_node_ports(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

/// A LoadBalancer that sends outside traffic only to nodes with a local endpoint needs a
/// port where the nodes answer its health checks.
fn wants_health_check_port(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer" && svc["spec"]["externalTrafficPolicy"] == "Local"
}

/// What `svc` holds: its ClusterIP, and its NodePorts with the health check port.
fn held(svc: &Value) -> (Option<Ipv4Addr>, BTreeSet<u16>) {
    let ip = svc["spec"]["clusterIP"]
        .as_str()
        .and_then(|s| s.parse().ok());
    let ports = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_u64())
        .chain(svc["spec"]["healthCheckNodePort"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    (ip, ports)
}

/// The keys `svc` holds, to release when it goes.
pub fn release_all(svc: &Value) -> Side {
    let (ip, ports) = held(svc);
    Side {
        claim: vec![],
        release: ip
            .map(ip_key)
            .into_iter()
            .chain(ports.into_iter().map(port_key))
            .collect(),
        ..Default::default()
    }
}

/// An update that leaves out the ClusterIP or a NodePort keeps the one it had, as
/// Kubernetes does for `kubectl apply` and replace.
fn carry_over(old: &Value, new: &mut Value) {
    let ty = service_type(new).to_string();
    let old_ip = &old["spec"]["clusterIP"];
    let new_ip = new["spec"]["clusterIP"].as_str().unwrap_or("");
    if new_ip.is_empty() && ty != "ExternalName" && old_ip.is_string() && old_ip != "" {
        new["spec"]["clusterIP"] = old_ip.clone();
        new["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
    }
    let old_hc = &old["spec"]["healthCheckNodePort"];
    if wants_health_check_port(new) {
        if new["spec"]["healthCheckNodePort"].is_null() && old_hc.is_u64() {
            new["spec"]["healthCheckNodePort"] = old_hc.clone();
        }
    } else if old_hc.is_u64() && new["spec"]["healthCheckNodePort"] == *old_hc {
        // No longer needed: given back, as Kubernetes does.
        if let Some(spec) = new["spec"].as_object_mut() {
            spec.remove("healthCheckNodePort");
        }
    }
    if !wants_node_ports(new) {
        return;
    }
    let olds = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if let Some(ports) = new["spec"]["ports"].as_array_mut() {
        for p in ports.iter_mut().filter(|p| p["nodePort"].is_null()) {
            let same = olds.iter().find(|o| {
                o["port"] == p["port"] && o["protocol"] == p["protocol"] && o["nodePort"].is_u64()
            });
            if let Some(o) = same {
                p["nodePort"] = o["nodePort"].clone();
            }
        }
    }
}

impl ServiceRanges {
    /// Fills in the ClusterIP and NodePorts `new` needs, keeping what `old` (the stored
    /// version, on update) held. Returns the keys to claim and release with the write;
    /// the caller retries with a fresh assignment when the transaction loses a claim.
    pub async fn assign(
        &self,
        store: &Store,
        owner: &str,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<Side> {
        if let Some(old) = old {
            carry_over(old, new);
        }
        let (old_ip, old_ports) = old.map(held).unwrap_or_default();
        let name = new["metadata"]["name"].as_str().unwrap_or("").to_string();
        let mut errs = Vec::new();
        self.assign_ip(store, old_ip, new, &mut errs).await?;
        self.assign_node_ports(store, &old_ports, new, &mut errs)
            .await?;
        self.assign_health_check_port(store, &old_ports, new, &mut errs)
            .await?;
        if !errs.is_empty() {
            return Err(Error::invalid("Service", &name, errs));
        }
        let (ip, ports) = held(new);
        let value = Bytes::from(owner.to_string());
        let mut side = Side::default();
        if let Some(ip) = ip.filter(|ip| Some(*ip) != old_ip) {
            side.claim.push((ip_key(ip), value.clone()));
        }
        if let Some(ip) = old_ip.filter(|o| Some(*o) != ip) {
            side.release.push(ip_key(ip));
        }
        for p in ports.difference(&old_ports) {
            side.claim.push((port_key(*p), value.clone()));
        }
        for p in old_ports.difference(&ports) {
            side.release.push(port_key(*p));
        }
        Ok(side)
    }

    async fn assign_ip(
        &self,
        store: &Store,
        old_ip: Option<Ipv4Addr>,
        svc: &mut Value,
        errs: &mut Vec<FieldError>,
    ) -> Result<()> {
        let ty = service_type(svc).to_string();
        let requested = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
        let spec = &mut svc["spec"];
        if ty == "ExternalName" {
            if !requested.is_empty() {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    &requested,
                    "may not be set for ExternalName services",
                ));
            }
            if let Some(m) = spec.as_object_mut() {
                m.remove("clusterIP");
                m.remove("clusterIPs");
            }
            return Ok(());
        }
        if requested == "None" {
            if ty != "ClusterIP" {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    "\"None\"",
                    format!("may not be set to 'None' for {ty} services"),
                ));
            }
            spec["clusterIPs"] = json!(["None"]);
            return Ok(());
        }
        let ip = if requested.is_empty() {
            self.pick_ip(store).await?
        } else {
            self.requested_ip(store, &requested, old_ip).await?
        };
        let ip = match ip {
            Ok(ip) => ip,
            Err(e) => {
                errs.push(e);
                return Ok(());
            }
        };
        spec["clusterIP"] = ip.to_string().into();
        spec["clusterIPs"] = json!([ip.to_string()]);
        Ok(())
    }

    async fn assign_node_ports(
        &self,
        store: &Store,
        old_ports: &BTreeSet<u16>,
        svc: &mut Value,
        errs: &mut Vec<FieldError>,
    ) -> Result<()> {
        let ty = service_type(svc).to_string();
        let wanted = wants_node_ports(svc);
        let Some(ports) = svc["spec"]["ports"].as_array_mut() else {
            return Ok(());
        };
        let mut used: Option<BTreeSet<String>> = None;
        let mut taken: Vec<(u16, String)> = Vec::new();
        for (i, p) in ports.iter_mut().enumerate() {
            let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
            let path = format!("spec.ports[{i}].nodePort");
            let requested = p["nodePort"].as_i64();
            if !wanted {
                if requested.is_some() {
                    errs.push(FieldError::forbidden(
                        path,
                        format!("may not be used when `type` is '{ty}'"),
                    ));
                }
                continue;
            }
            let port = match requested {
                Some(n) => {
                    self.requested_node_port(store, n, &path, &proto, old_ports, &taken)
                        .await?
                }
                None => self.pick_node_port(store, &mut used, &taken, &path).await?,
            };
            let port = match port {
                Ok(port) => port,
                Err(e) => {
                    errs.push(e);
                    continue;
                }
            };
            p["nodePort"] = port.into();
            taken.push((port, proto));
        }
        Ok(())
    }

    /// `spec.healthCheckNodePort`: a NodePort of its own when the Service wants one, kept
    /// while it does; refused when it does not.
    async fn assign_health_check_port(
        &self,
        store: &Store,
        old_ports: &BTreeSet<u16>,
        svc: &mut Value,
        errs: &mut Vec<FieldError>,
    ) -> Result<()> {
        let path = "spec.healthCheckNodePort";
        let requested = svc["spec"]["healthCheckNodePort"].as_i64();
        if !wants_health_check_port(svc) {
            if let Some(n) = requested {
                errs.push(FieldError::invalid(
                    path,
                    n,
                    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
                ));
            }
            return Ok(());
        }
        let taken: Vec<(u16, String)> = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((u16::try_from(p["nodePort"].as_u64()?).ok()?, "TCP".into())))
            .collect();
        let port = match requested {
            Some(n) if taken.iter().any(|(q, _)| i64::from(*q) == n) => {
                Err(FieldError::duplicate(path, n.to_string()))
            }
            Some(n) => {
                self.requested_node_port(store, n, path, "TCP", old_ports, &[])
                    .await?
            }
            None => self.pick_node_port(store, &mut None, &taken, path).await?,
        };
        match port {
            Ok(p) => svc["spec"]["healthCheckNodePort"] = p.into(),
            Err(e) => errs.push(e),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_bounds() {
        let c: Cidr = "10.96.1.7/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.96.1.0/24");
        assert!(!c.usable("10.96.1.0".parse().unwrap()));
        assert!(c.usable("10.96.1.1".parse().unwrap()));
        assert!(c.usable("10.96.1.254".parse().unwrap()));
        assert!(!c.usable("10.96.1.255".parse().unwrap()));
        assert!(!c.usable("10.96.2.1".parse().unwrap()));
        assert_eq!(c.nth_usable(0), "10.96.1.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(c.nth_usable(254), "10.96.1.1".parse::<Ipv4Addr>().unwrap());
        assert!("10.96.0.0".parse::<Cidr>().is_err());
        assert!("10.96.0.0/31".parse::<Cidr>().is_err());
    }

    #[test]
    fn port_range_parses() {
        assert_eq!(parse_port_range("30000-32767").unwrap(), 30000..=32767);
        assert!(parse_port_range("32767-30000").is_err());
        assert!(parse_port_range("0-10").is_err());
    }

    #[test]
    fn updates_keep_what_the_old_version_held() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.9",
            "clusterIPs": ["10.96.0.9"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}});
        carry_over(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.9");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert!(new["spec"]["ports"][1]["nodePort"].is_null());
        // A health check port is kept while the Service is a Local LoadBalancer, and
        // given back when it no longer is.
        let old_lb = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 31000, "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut kept = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80}]}});
        carry_over(&old_lb, &mut kept);
        assert_eq!(kept["spec"]["healthCheckNodePort"], 31000);
        let mut cluster = old_lb.clone();
        cluster["spec"]["externalTrafficPolicy"] = "Cluster".into();
        carry_over(&old_lb, &mut cluster);
        assert!(cluster["spec"]["healthCheckNodePort"].is_null());
        assert_eq!(held(&old_lb).1, BTreeSet::from([30080, 31000]));
        let side = release_all(&old);
        assert_eq!(
            side.release,
            vec![
                "/rkube/ranges/serviceips/10.96.0.9".to_string(),
                "/rkube/ranges/servicenodeports/30080".to_string()
            ]
        );
    }
}
