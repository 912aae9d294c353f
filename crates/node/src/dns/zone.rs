//! The cluster's names, built from the Services and EndpointSlices the informers hold,
//! as Kubernetes' DNS specification has them:
//!
//! - `<svc>.<ns>.svc.<domain>`: A records of the ClusterIP, or of the ready endpoints of
//!   a headless Service (all of them with `publishNotReadyAddresses`); a CNAME for
//!   `type: ExternalName`;
//! - `<hostname>.<svc>.<ns>.svc.<domain>` for endpoints with a hostname (StatefulSet pods,
//!   pods with `hostname` and `subdomain`), else `<a-b-c-d>.<svc>.<ns>.svc.<domain>`,
//!   for headless Services;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV records for named ports;
//! - `<a-b-c-d>.<ns>.pod.<domain>`: the address the name spells (as CoreDNS's
//!   `pods insecure`).
//!
//! A name under the domain that is none of these is NXDOMAIN; a name that exists without
//! records of the type asked is NODATA. Everything else is for the upstream resolvers.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use hickory_server::proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Seconds a client may keep an answer, as CoreDNS's kubernetes plugin.
pub const TTL: u32 = 5;
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the zone says about a name.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Records(Vec<Record>),
    /// The name exists without records of that type.
    NoData,
    NxDomain,
    /// Not under the cluster domain.
    Elsewhere,
}

/// The cluster's names at one moment.
#[derive(Debug)]
pub struct Zone {
    domain: Name,
    records: HashMap<String, Vec<Record>>,
    /// Names with names below them (`<ns>.svc.<domain>`), which exist without records.
    parents: HashSet<String>,
}

fn key(name: &Name) -> String {
    let mut n = name.to_lowercase();
    n.set_fqdn(true);
    n.to_ascii()
}

fn dashed(ip: &str) -> String {
    ip.replace(['.', ':'], "-")
}

impl Zone {
    /// The zone of `domain` (`cluster.local`) from the informers' objects.
    pub fn build(domain: &str, services: &[&Service], slices: &[&EndpointSlice]) -> Zone {
        let mut domain = Name::from_ascii(domain).unwrap_or_else(|_| Name::root());
        domain.set_fqdn(true);
        let mut z = Zone {
            domain,
            records: HashMap::new(),
            parents: HashSet::new(),
        };
        for svc in services {
            z.add_service(svc, slices);
        }
        z
    }

    /// The SOA record that goes with NXDOMAIN and NODATA answers (for negative caching).
    pub fn soa(&self) -> Record {
        let ns = Name::from_ascii("ns.dns")
            .and_then(|n| n.append_domain(&self.domain))
            .unwrap_or_else(|_| self.domain.clone());
        let mail = Name::from_ascii("hostmaster")
            .and_then(|n| n.append_domain(&self.domain))
            .unwrap_or_else(|_| self.domain.clone());
        let soa = SOA::new(ns, mail, 1, 7200, 1800, 86400, TTL);
        Record::from_rdata(self.domain.clone(), TTL, RData::SOA(soa))
    }

    fn name(&self, labels: &[&str]) -> Option<Name> {
        Name::from_ascii(labels.join("."))
            .ok()?
            .append_domain(&self.domain)
            .ok()
    }

    fn add(&mut self, name: &Name, data: RData) {
        let mut parent = name.base_name();
        while parent.num_labels() >= self.domain.num_labels() && self.parents.insert(key(&parent)) {
            parent = parent.base_name();
        }
        let r = Record::from_rdata(name.clone(), TTL, data);
        let list = self.records.entry(key(name)).or_default();
        if !list.contains(&r) {
            list.push(r);
        }
    }

    fn add_service(&mut self, svc: &Service, slices: &[&EndpointSlice]) {
        let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) else {
            return;
        };
        let Some(spec) = &svc.spec else { return };
        let Some(fqdn) = self.name(&[name, ns, "svc"]) else {
            return;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            let target = spec.external_name.as_deref().and_then(|t| {
                let mut n = Name::from_ascii(t).ok()?;
                n.set_fqdn(true);
                Some(n)
            });
            if let Some(t) = target {
                self.add(&fqdn, RData::CNAME(CNAME(t)));
            }
            return;
        }
        let headless = spec.cluster_ip.as_deref() == Some("None");
        if !headless {
            let Some(ip) = spec.cluster_ip.as_deref().and_then(|i| i.parse().ok()) else {
                return;
            };
            self.add(&fqdn, RData::A(A(ip)));
            for p in spec.ports.iter().flatten() {
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                    self.add_srv(&fqdn, port_name, proto, p.port, &fqdn);
                }
            }
            return;
        }
        let publish_all = spec.publish_not_ready_addresses == Some(true);
        for s in slices.iter().filter(|s| {
            s.metadata.namespace.as_deref() == Some(ns)
                && s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    == Some(name)
                && s.address_type == "IPv4"
        }) {
            self.add_headless_slice(&fqdn, s, publish_all);
        }
    }

    fn add_headless_slice(&mut self, fqdn: &Name, s: &EndpointSlice, publish_all: bool) {
        for e in s.endpoints.iter().flatten() {
            let ready = e.conditions.as_ref().and_then(|c| c.ready) != Some(false);
            if !(ready || publish_all) {
                continue;
            }
            for addr in &e.addresses {
                let Ok(ip) = addr.parse::<Ipv4Addr>() else {
                    continue;
                };
                let host = e.hostname.clone().unwrap_or_else(|| dashed(addr));
                let Some(own) = Name::from_ascii(&host)
                    .ok()
                    .and_then(|h| h.append_domain(fqdn).ok())
                else {
                    continue;
                };
                self.add(fqdn, RData::A(A(ip)));
                self.add(&own, RData::A(A(ip)));
                for p in s.ports.iter().flatten() {
                    let (Some(port_name), Some(port)) = (p.name.as_deref(), p.port) else {
                        continue;
                    };
                    if port_name.is_empty() {
                        continue;
                    }
                    let proto = p.protocol.as_deref().unwrap_or("TCP");
                    self.add_srv(fqdn, port_name, proto, port, &own);
                }
            }
        }
    }

    fn add_srv(&mut self, fqdn: &Name, port_name: &str, proto: &str, port: i32, target: &Name) {
        let Ok(port) = u16::try_from(port) else {
            return;
        };
        let label = format!("_{port_name}._{}", proto.to_ascii_lowercase());
        let Some(srv) = Name::from_ascii(&label)
            .ok()
            .and_then(|l| l.append_domain(fqdn).ok())
        else {
            return;
        };
        self.add(&srv, RData::SRV(SRV::new(0, 100, port, target.clone())));
    }

    /// The answer for `name` and `qtype`.
    pub fn answer(&self, name: &Name, qtype: RecordType) -> Answer {
        if !self.domain.zone_of(name) {
            return Answer::Elsewhere;
        }
        if let Some(records) = self.records.get(&key(name)) {
            let of_type: Vec<Record> = records
                .iter()
                .filter(|r| {
                    r.record_type() == qtype
                        || r.record_type() == RecordType::CNAME
                        || qtype == RecordType::ANY
                })
                .cloned()
                .collect();
            return if of_type.is_empty() {
                Answer::NoData
            } else {
                Answer::Records(of_type)
            };
        }
        match self.pod_address(name) {
            Some(ip) if qtype == RecordType::A => {
                Answer::Records(vec![Record::from_rdata(name.clone(), TTL, RData::A(A(ip)))])
            }
            Some(_) => Answer::NoData,
            None if self.has_below(name) => Answer::NoData,
            None => Answer::NxDomain,
        }
    }

    /// `<a-b-c-d>.<ns>.pod.<domain>`: the address it spells.
    fn pod_address(&self, name: &Name) -> Option<Ipv4Addr> {
        let own = name.num_labels().checked_sub(self.domain.num_labels())?;
        if own != 3 {
            return None;
        }
        let labels: Vec<String> = name
            .iter()
            .take(3)
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect();
        if labels[2] != "pod" || labels[1].is_empty() {
            return None;
        }
        labels[0].replace('-', ".").parse().ok()
    }

    /// Whether some name of the zone lies below `name` (an empty non-terminal, such as
    /// `<ns>.svc.<domain>`), or `name` is the domain itself.
    fn has_below(&self, name: &Name) -> bool {
        key(name) == key(&self.domain) || self.parents.contains(&key(name))
    }
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
