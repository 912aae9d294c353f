//! The nftables proxy: DNAT in the kernel, shaped like kube-proxy's nftables mode.
//!
//! One table per node agent (`ip rkube-proxy-<hash of the node name>`):
//! - the verdict maps `service-ips` (ClusterIP . protocol . port) and `service-nodeports`
//!   (protocol . port, for local destination addresses) send a new connection to the
//!   chain of its Service port;
//! - `svc-<id>` picks an endpoint at random (`numgen`), after the affinity sets when the
//!   Service has `sessionAffinity: ClientIP`;
//! - `ep-<id>` DNATs to the endpoint, and marks hairpin traffic for masquerading;
//! - `ext-<id>` marks NodePort traffic for masquerading, then goes to `svc-<id>`;
//! - Service ports without endpoints are in `no-endpoint-*` sets and rejected, so clients
//!   get "connection refused".
//!
//! Syncs are incremental: each is one `nft -f` transaction that adds, rewrites or deletes
//! only the chains, sets and map elements that changed. The table goes on exit. As with
//! kube-proxy's nftables mode, NodePorts are not served on 127.0.0.0/8.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;

use super::table::ServicePort;
use crate::{Error, Result};

/// What the table holds besides its fixed skeleton.
#[derive(Default, Debug, PartialEq)]
struct Desired {
    /// Chain name → its rules.
    chains: BTreeMap<String, Vec<String>>,
    /// Set name → its definition.
    sets: BTreeMap<String, String>,
    /// Map or set name → its elements.
    elements: BTreeMap<&'static str, BTreeSet<String>>,
}

const MAPS_AND_SETS: [&str; 4] = [
    "service-ips",
    "service-nodeports",
    "no-endpoint-services",
    "no-endpoint-nodeports",
];

fn skeleton(t: &str) -> String {
    format!(
        "table ip {t} {{
  map service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}
  map service-nodeports {{ type inet_proto . inet_service : verdict ; }}
  set no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service ; }}
  set no-endpoint-nodeports {{ type inet_proto . inet_service ; }}
  chain mark-for-masquerade {{ meta mark set meta mark | 0x4000 ; }}
  chain services {{
    ip daddr . meta l4proto . th dport vmap @service-ips ;
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports ;
  }}
  chain nat-prerouting {{ type nat hook prerouting priority dstnat ; policy accept ; jump services ; }}
  chain nat-output {{ type nat hook output priority -100 ; policy accept ; jump services ; }}
  chain nat-postrouting {{
    type nat hook postrouting priority srcnat ; policy accept ;
    meta mark & 0x4000 == 0 return ;
    meta mark set meta mark ^ 0x4000 ;
    masquerade fully-random ;
  }}
  chain endpoints-check {{
    ip daddr . meta l4proto . th dport @no-endpoint-services reject ;
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @no-endpoint-nodeports reject ;
  }}
  chain filter-input {{ type filter hook input priority -110 ; policy accept ; ct state new jump endpoints-check ; }}
  chain filter-forward {{ type filter hook forward priority -110 ; policy accept ; ct state new jump endpoints-check ; }}
  chain filter-output {{ type filter hook output priority -110 ; policy accept ; ct state new jump endpoints-check ; }}
}}
"
    )
}

fn id(s: &str) -> String {
    format!("{:016x}", super::hash(s))
}

impl Desired {
    fn element(&mut self, set: &'static str, e: String) {
        self.elements.entry(set).or_default().insert(e);
    }

    /// The chain of endpoint `ep` of `sp` (and its affinity set), added once.
    fn endpoint_chain(&mut self, sp: &ServicePort, ep: &SocketAddr) -> (String, Option<String>) {
        let affinity = sp.affinity.map(|t| t.as_secs());
        let epid = id(&format!("{}|{ep}|{affinity:?}", sp.name));
        let chain = format!("ep-{epid}");
        let set = affinity.map(|_| format!("aff-{epid}"));
        if !self.chains.contains_key(&chain) {
            let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", ep.ip())];
            if let (Some(secs), Some(set)) = (affinity, &set) {
                self.sets.insert(
                    set.clone(),
                    format!("type ipv4_addr ; flags dynamic,timeout ; timeout {secs}s ;"),
                );
                rules.push(format!("update @{set} {{ ip saddr }}"));
            }
            rules.push(format!(
                "meta l4proto {} dnat to {ep}",
                sp.protocol.as_str()
            ));
            self.chains.insert(chain.clone(), rules);
        }
        (chain, set)
    }

    /// Rules that pick one of `eps` (the sticky one first, with affinity), after `first`.
    fn pick_chain(
        &mut self,
        name: String,
        sp: &ServicePort,
        eps: &[SocketAddr],
        first: Vec<String>,
    ) {
        let mut rules = first;
        let mut picks = Vec::new();
        for (i, ep) in eps.iter().enumerate() {
            let (chain, set) = self.endpoint_chain(sp, ep);
            if let Some(set) = set {
                rules.push(format!("ip saddr @{set} goto {chain}"));
            }
            picks.push(format!("{i} : goto {chain}"));
        }
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            picks.len(),
            picks.join(", ")
        ));
        self.chains.insert(name, rules);
    }
}

fn desired(table: &BTreeMap<String, ServicePort>) -> Desired {
    let mut d = Desired::default();
    for k in MAPS_AND_SETS {
        d.elements.insert(k, BTreeSet::new());
    }
    for sp in table.values() {
        let proto = sp.protocol.as_str();
        let svc = format!("svc-{}", id(&sp.name));
        if let Some(ip) = sp.cluster_ip {
            if sp.endpoints.is_empty() {
                d.element(
                    "no-endpoint-services",
                    format!("{ip} . {proto} . {}", sp.port),
                );
            } else {
                d.pick_chain(svc.clone(), sp, &sp.endpoints, vec![]);
                d.element(
                    "service-ips",
                    format!("{ip} . {proto} . {} : goto {svc}", sp.port),
                );
            }
        }
        let Some(np) = sp.node_port else { continue };
        if sp.external_endpoints.is_empty() {
            d.element("no-endpoint-nodeports", format!("{proto} . {np}"));
            continue;
        }
        let ext = format!("ext-{}", id(&sp.name));
        // externalTrafficPolicy: Local keeps the client's address: no masquerading.
        let masq: Vec<String> = if sp.local_external {
            vec![]
        } else {
            vec!["jump mark-for-masquerade".into()]
        };
        if sp.external_endpoints == sp.endpoints && sp.cluster_ip.is_some() {
            let mut rules = masq;
            rules.push(format!("goto {svc}"));
            d.chains.insert(ext.clone(), rules);
        } else {
            d.pick_chain(ext.clone(), sp, &sp.external_endpoints, masq);
        }
        d.element("service-nodeports", format!("{proto} . {np} : goto {ext}"));
    }
    d
}

/// The `nft -f` script that turns `old` (None: whatever is there) into `new`.
fn script(t: &str, old: Option<&Desired>, new: &Desired) -> String {
    let mut s = String::new();
    let empty = Desired::default();
    let old = match old {
        Some(o) => o,
        None => {
            // Start from nothing: a table left by an earlier run goes.
            let _ = writeln!(s, "add table ip {t}\ndelete table ip {t}");
            s.push_str(&skeleton(t));
            &empty
        }
    };
    for (name, def) in &new.sets {
        if !old.sets.contains_key(name) {
            let _ = writeln!(s, "add set ip {t} {name} {{ {def} }}");
        }
    }
    for name in new.chains.keys() {
        if !old.chains.contains_key(name) {
            let _ = writeln!(s, "add chain ip {t} {name}");
        }
    }
    for (name, rules) in &new.chains {
        if old.chains.get(name) == Some(rules) {
            continue;
        }
        if old.chains.contains_key(name) {
            let _ = writeln!(s, "flush chain ip {t} {name}");
        }
        for r in rules {
            let _ = writeln!(s, "add rule ip {t} {name} {r}");
        }
    }
    for (set, elems) in &new.elements {
        let before = old.elements.get(set);
        for e in before.into_iter().flatten().filter(|e| !elems.contains(*e)) {
            let key = e.split(" : ").next().unwrap_or(e);
            let _ = writeln!(s, "delete element ip {t} {set} {{ {key} }}");
        }
        for e in elems
            .iter()
            .filter(|e| !before.is_some_and(|b| b.contains(*e)))
        {
            let _ = writeln!(s, "add element ip {t} {set} {{ {e} }}");
        }
    }
    let stale: Vec<&String> = old
        .chains
        .keys()
        .filter(|c| !new.chains.contains_key(*c))
        .collect();
    for c in &stale {
        let _ = writeln!(s, "flush chain ip {t} {c}");
    }
    for c in &stale {
        let _ = writeln!(s, "delete chain ip {t} {c}");
    }
    for name in old.sets.keys().filter(|n| !new.sets.contains_key(*n)) {
        let _ = writeln!(s, "delete set ip {t} {name}");
    }
    s
}

/// Runs `script` in one `nft -f` transaction.
async fn nft(script: &str) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("nft", e))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(script.as_bytes())
        .await
        .map_err(|e| Error::io("nft", e))?;
    drop(stdin);
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::io("nft", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: "nft".into(),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

pub struct Nftables {
    table: String,
    applied: Option<Desired>,
}

/// The table of `node`.
pub fn table_name(node: &str) -> String {
    format!("rkube-proxy-{:08x}", super::hash(node) as u32)
}

impl Nftables {
    /// Checks that nft works here (root, nf_tables) before anything is relied on.
    pub async fn new(node: &str) -> Result<Self> {
        let table = table_name(node);
        nft(&format!("add table ip {table}\ndelete table ip {table}\n"))
            .await
            .map_err(|e| e.context("--proxy-mode nftables needs root and nf_tables"))?;
        Ok(Nftables {
            table,
            applied: None,
        })
    }

    pub async fn sync(&mut self, table: &BTreeMap<String, ServicePort>) {
        let want = desired(table);
        if self.applied.as_ref() == Some(&want) {
            return;
        }
        let s = script(&self.table, self.applied.as_ref(), &want);
        match nft(&s).await {
            Ok(()) => self.applied = Some(want),
            Err(e) => {
                tracing::warn!(error = %e, "proxy: nftables sync failed; the next one rewrites the table");
                self.applied = None;
            }
        }
    }

    pub async fn shutdown(&mut self) {
        let _ = nft(&format!("delete table ip {}\n", self.table)).await;
        self.applied = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::table::Protocol;
    use std::time::Duration;

    fn sp(eps: &[&str], affinity: bool) -> ServicePort {
        ServicePort {
            name: "default/web:".into(),
            cluster_ip: Some("10.96.0.10".parse().unwrap()),
            port: 80,
            node_port: Some(30080),
            protocol: Protocol::Tcp,
            affinity: affinity.then(|| Duration::from_secs(60)),
            endpoints: eps.iter().map(|e| e.parse().unwrap()).collect(),
            external_endpoints: eps.iter().map(|e| e.parse().unwrap()).collect(),
            local_external: false,
            health_check_node_port: None,
        }
    }

    fn table(s: ServicePort) -> BTreeMap<String, ServicePort> {
        [(s.name.clone(), s)].into()
    }

    #[test]
    fn a_sync_touches_only_what_changed() {
        let a = desired(&table(sp(&["10.244.0.2:8080", "10.244.0.3:8080"], false)));
        let first = script("t", None, &a);
        assert!(first.starts_with("add table ip t\ndelete table ip t\n"));
        assert!(first.contains("numgen random mod 2 vmap"));
        assert!(first.contains("dnat to 10.244.0.3:8080"));
        assert!(first.contains("add element ip t service-ips { 10.96.0.10 . tcp . 80 : goto svc-"));
        assert_eq!(
            script("t", Some(&a), &a),
            "",
            "nothing changed, nothing written"
        );

        // One endpoint goes: its chain is deleted and the Service chain rewritten; the
        // map elements and the other endpoint's chain stay.
        let b = desired(&table(sp(&["10.244.0.2:8080"], false)));
        let step = script("t", Some(&a), &b);
        assert!(!step.contains("element"), "{step}");
        assert!(step.contains("numgen random mod 1"), "{step}");
        assert_eq!(step.matches("delete chain").count(), 1, "{step}");
        assert!(!step.contains("10.244.0.2:8080"), "{step}");

        // No endpoints: the Service moves to the reject sets.
        let c = desired(&table(sp(&[], false)));
        let step = script("t", Some(&b), &c);
        assert!(step.contains("delete element ip t service-ips { 10.96.0.10 . tcp . 80 }"));
        assert!(step.contains("add element ip t no-endpoint-services { 10.96.0.10 . tcp . 80 }"));
        assert!(step.contains("add element ip t no-endpoint-nodeports { tcp . 30080 }"));
    }

    #[test]
    fn affinity_uses_a_timed_set_per_endpoint() {
        let a = desired(&table(sp(&["10.244.0.2:8080"], true)));
        let s = script("t", None, &a);
        assert!(s.contains("flags dynamic,timeout ; timeout 60s"), "{s}");
        assert!(s.contains("update @aff-"), "{s}");
        let b = desired(&table(sp(&["10.244.0.2:8080"], false)));
        let step = script("t", Some(&a), &b);
        assert!(step.contains("delete set ip t aff-"), "{step}");
    }

    #[test]
    fn local_external_traffic_is_not_masqueraded_and_keeps_to_local_endpoints() {
        let mut s = sp(&["10.244.0.2:8080", "10.244.1.2:8080"], false);
        s.external_endpoints = vec!["10.244.0.2:8080".parse().unwrap()];
        s.local_external = true;
        let d = desired(&table(s));
        let chain = |prefix: &str| {
            d.chains
                .iter()
                .find(|(k, _)| k.starts_with(prefix))
                .map(|(_, r)| r.join("\n"))
                .unwrap()
        };
        let ext = chain("ext-");
        assert!(!ext.contains("mark-for-masquerade"), "{ext}");
        assert!(ext.contains("numgen random mod 1"), "{ext}");
        let svc = chain("svc-");
        assert!(svc.contains("numgen random mod 2"), "{svc}");
    }

    #[test]
    fn nft_not_working_is_said_behind_the_flag() {
        let failed = Error::Command {
            command: "nft".into(),
            output: "Operation not permitted".into(),
        };
        assert_eq!(
            failed
                .context("--proxy-mode nftables needs root and nf_tables")
                .to_string(),
            "--proxy-mode nftables needs root and nf_tables: nft: Operation not permitted"
        );
        let missing = Error::io("nft", std::io::ErrorKind::NotFound.into());
        let e = missing.context("--proxy-mode nftables needs root and nf_tables");
        assert!(
            matches!(&e, Error::Context { source, .. } if matches!(**source, Error::Io { .. })),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("--proxy-mode nftables needs root and nf_tables: nft: "),
            "{e}"
        );
    }
}
