//! A pod's resolv.conf, by its `dnsPolicy` and `dnsConfig` as Kubernetes defines them:
//!
//! - `ClusterFirst` (the default): the cluster DNS server, the search path
//!   `<ns>.svc.<domain> svc.<domain> <domain>` (then the host's), `ndots:5`; a pod on the
//!   host network gets `Default` instead;
//! - `ClusterFirstWithHostNet`: `ClusterFirst`, on the host network too;
//! - `Default`: the host's resolv.conf;
//! - `None`: only what `dnsConfig` says.
//!
//! `dnsConfig` adds nameservers and searches and sets options (one of the same name
//! replaces it). At most 3 nameservers and 32 search domains are kept, as the resolver
//! reads no more. Without a known cluster DNS address, `ClusterFirst` is `Default`.

use k8s_openapi::api::core::v1::Pod;

/// What a pod's resolver is told.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DnsSettings {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

/// The cluster's side: its DNS Service's address, if known, and its domain.
#[derive(Clone, Debug)]
pub struct ClusterDns {
    pub server: Option<String>,
    pub domain: String,
}

impl DnsSettings {
    /// The settings of a resolv.conf text (`nameserver`, `search`, `options` lines).
    pub fn parse(text: &str) -> DnsSettings {
        let mut s = DnsSettings::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => s.servers.extend(words.next().map(String::from)),
                Some("search" | "domain") => {
                    s.searches = words.map(String::from).collect();
                }
                Some("options") => s.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        s
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for n in &self.servers {
            out.push_str(&format!("nameserver {n}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

fn push_unique(to: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for i in items {
        if !to.contains(&i) {
            to.push(i);
        }
    }
}

fn option_name(o: &str) -> &str {
    o.split(':').next().unwrap_or(o)
}

/// The settings of `pod`, given the cluster's DNS and the host's resolv.conf.
pub fn for_pod(pod: &Pod, cluster: &ClusterDns, host: &DnsSettings) -> DnsSettings {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut s = match (policy, cluster_first, &cluster.server) {
        ("None", _, _) => DnsSettings::default(),
        (_, true, Some(server)) => {
            let d = &cluster.domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            push_unique(&mut searches, host.searches.iter().cloned());
            DnsSettings {
                servers: vec![server.clone()],
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => host.clone(),
    };
    if let Some(c) = &spec.dns_config {
        push_unique(&mut s.servers, c.nameservers.iter().flatten().cloned());
        push_unique(&mut s.searches, c.searches.iter().flatten().cloned());
        for o in c.options.iter().flatten() {
            let Some(name) = o.name.as_deref() else {
                continue;
            };
            let o = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            };
            s.options.retain(|x| option_name(x) != name);
            s.options.push(o);
        }
    }
    s.servers.truncate(3);
    s.searches.truncate(32);
    s
}

#[cfg(test)]
#[path = "resolv_conf_tests.rs"]
mod tests;
