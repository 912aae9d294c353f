//! What `rkube up` checks on the host before it plans a new cluster, so it never shares an
//! address range or a port with another cluster (or anything else) there:
//!
//! - the pod range must not overlap a route of the host (another cluster's node bridges,
//!   a bridge left by a killed one, a VPN), nor the Service range an address or route of
//!   the host (another cluster's ClusterIPs on `lo`); neither may overlap the ranges
//!   another running `rkube up` cluster holds ([`super::claims`]). Unless named by a flag, the first
//!   free one of a few ranges is taken; a named one that collides stops `rkube up` with
//!   a message naming the collision and the way out.
//! - the NodePort range must not overlap another `rkube up` cluster's.
//! - fixed ports (`--base-port`, `--balancer-port`) must be free.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;

/// An IPv4 network: its address and prefix length.
type Net = (u32, u8);

fn parse_net(s: &str) -> Option<Net> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, b)) => (ip, b.parse::<u8>().ok().filter(|b| *b <= 32)?),
        None => (s, 32),
    };
    let ip: Ipv4Addr = ip.parse().ok()?;
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Some((u32::from(ip) & mask, bits))
}

fn overlaps(a: Net, b: Net) -> bool {
    let bits = a.1.min(b.1);
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    a.0 & mask == b.0 & mask
}

/// The host's IPv4 routes and addresses (not the default route), each described by its
/// line.
pub fn host_networks() -> Vec<(String, String)> {
    let run = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for line in run(&["-4", "-o", "route", "show"]).lines() {
        if let Some(dst) = route_destination(line) {
            out.push((
                dst.to_string(),
                format!("the host's route {:?}", line.trim()),
            ));
        }
    }
    for line in run(&["-4", "-o", "addr", "show"]).lines() {
        let mut words = line.split_whitespace();
        if let Some(addr) = words.find(|w| *w == "inet").and_then(|_| words.next()) {
            let ip = addr.split('/').next().unwrap_or(addr);
            // Loopback's own 127.0.0.1/8 is no other cluster's.
            if ip != "127.0.0.1" {
                out.push((
                    format!("{ip}/32"),
                    format!("the host's address {:?}", line.trim()),
                ));
            }
        }
    }
    out
}

/// The destination of an `ip route` line (after its type, if it has one), unless it is
/// the default route.
fn route_destination(line: &str) -> Option<&str> {
    const TYPES: &[&str] = &[
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "throw",
        "unreachable",
        "prohibit",
        "blackhole",
        "nat",
        "anycast",
    ];
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let dst = if TYPES.contains(&first) {
        words.next()?
    } else {
        first
    };
    (dst != "default").then_some(dst)
}

/// What the first network of `host` that `cidr` overlaps is, if any.
pub fn collision<'a>(cidr: &str, host: &'a [(String, String)]) -> Option<&'a str> {
    let net = parse_net(cidr)?;
    host.iter()
        .find(|(n, _)| parse_net(n).is_some_and(|h| overlaps(net, h)))
        .map(|(_, line)| line.as_str())
}

/// The range to use for `flag`: `requested` if free (else an error naming the collision),
/// or the first free one of `candidates`.
pub fn pick(
    flag: &str,
    requested: Option<&str>,
    candidates: &[String],
    host: &[(String, String)],
) -> anyhow::Result<String> {
    if let Some(r) = requested {
        anyhow::ensure!(parse_net(r).is_some(), "{flag} {r:?}: not an IPv4 CIDR");
        if let Some(line) = collision(r, host) {
            anyhow::bail!(
                "{flag} {r} collides with {line}: its addresses would not be reachable. Pick \
                 another range ({flag} …), or remove that route if an earlier cluster left it \
                 (`rkube up --down --dir <its directory>`, or `ip link del` its bridge)"
            );
        }
        return Ok(r.to_string());
    }
    if let Some(c) = candidates.iter().find(|c| collision(c, host).is_none()) {
        if Some(c) != candidates.first() {
            println!(
                "{flag}: {} is in use on this host; taking {c}",
                candidates[0]
            );
        }
        return Ok(c.clone());
    }
    let (first, last) = (&candidates[0], &candidates[candidates.len() - 1]);
    anyhow::bail!(
        "{flag}: every range from {first} to {last} is in use on this host; name one with {flag}"
    )
}

/// The NodePort ranges `rkube up` chooses from: Kubernetes' default first, then ranges
/// below it (above it lie the host's ephemeral ports).
pub const NODE_PORTS: &[&str] = &[
    "30000-32767",
    "29000-29999",
    "28000-28999",
    "27000-27999",
    "26000-26999",
    "25000-25999",
];

pub fn parse_ports(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// The NodePort range: `requested` unless another cluster holds part of it (an error
/// naming it), or the first of [`NODE_PORTS`] no other cluster holds. `held` are the
/// other clusters' ranges, each with who holds it.
pub fn pick_ports(requested: Option<&str>, held: &[(String, String)]) -> anyhow::Result<String> {
    const FLAG: &str = "--service-node-port-range";
    let taken = |r: (u16, u16)| {
        held.iter()
            .find(|(h, _)| parse_ports(h).is_some_and(|(first, last)| r.0 <= last && first <= r.1))
    };
    if let Some(r) = requested {
        let Some(range) = parse_ports(r) else {
            anyhow::bail!("{FLAG} {r:?}: not a range like 30000-32767");
        };
        if let Some((h, who)) = taken(range) {
            anyhow::bail!("{FLAG} {r} overlaps {h}, the NodePorts of {who}; pick another");
        }
        return Ok(r.to_string());
    }
    let free = NODE_PORTS
        .iter()
        .find(|c| parse_ports(c).is_some_and(|r| taken(r).is_none()));
    match free {
        Some(c) => {
            if *c != NODE_PORTS[0] {
                println!(
                    "{FLAG}: {} is in use on this host; taking {c}",
                    NODE_PORTS[0]
                );
            }
            Ok(c.to_string())
        }
        None => anyhow::bail!(
            "{FLAG}: every range from {} to {} is held by another cluster; name one with {FLAG}",
            NODE_PORTS[0],
            NODE_PORTS[NODE_PORTS.len() - 1]
        ),
    }
}

/// Fails naming the first of `ports` (each with what it is for) that something holds.
pub fn ports_free(ports: &[(SocketAddr, String)]) -> anyhow::Result<()> {
    for (addr, what) in ports {
        if let Err(e) = TcpListener::bind(addr) {
            anyhow::bail!(
                "{addr} ({what}) is taken: {e}. Another cluster or program listens there; \
                 `--base-port 0` picks free ports (or stop the other: `rkube up --status` \
                 and `rkube up --down` in its directory)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(nets: &[&str]) -> Vec<(String, String)> {
        nets.iter()
            .map(|n| (n.to_string(), format!("the host's route \"{n} dev x\"")))
            .collect()
    }

    fn candidates() -> Vec<String> {
        (244..247).map(|i| format!("10.{i}.0.0/16")).collect()
    }

    #[test]
    fn ranges_overlap_by_their_shorter_prefix() {
        let n = |s| parse_net(s).unwrap();
        assert!(overlaps(n("10.244.0.0/16"), n("10.244.3.0/24")));
        assert!(overlaps(n("10.0.0.0/8"), n("10.244.0.0/16")));
        assert!(!overlaps(n("10.244.0.0/16"), n("10.245.0.0/24")));
        assert!(overlaps(n("10.96.0.10"), n("10.96.0.0/16")));
        assert!(parse_net("10.0.0.0/33").is_none() && parse_net("x/8").is_none());
    }

    #[test]
    fn route_lines_give_their_destination() {
        let d = route_destination;
        assert_eq!(
            d("10.244.0.0/24 dev rk0 proto kernel scope link src 10.244.0.1"),
            Some("10.244.0.0/24")
        );
        assert_eq!(d("blackhole 10.244.0.0/16"), Some("10.244.0.0/16"));
        assert_eq!(d("unreachable 10.9.0.0/16 metric 5"), Some("10.9.0.0/16"));
        assert_eq!(d("default via 10.0.0.1 dev eth0"), None);
        assert_eq!(d("192.0.2.7 via 10.0.0.1 dev eth0"), Some("192.0.2.7"));
    }

    #[test]
    fn a_default_range_in_use_gives_way_to_the_next_free_one() {
        let h = host(&["10.244.0.0/24", "10.245.7.0/24", "192.168.1.0/24"]);
        assert_eq!(
            pick("--cluster-cidr", None, &candidates(), &h).unwrap(),
            "10.246.0.0/16"
        );
        assert_eq!(
            pick("--cluster-cidr", None, &candidates(), &host(&[])).unwrap(),
            "10.244.0.0/16"
        );
        let all = host(&["10.0.0.0/8"]);
        let e = pick("--cluster-cidr", None, &candidates(), &all)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("every range from 10.244.0.0/16 to 10.246.0.0/16"),
            "{e}"
        );
    }

    #[test]
    fn a_named_range_in_use_is_refused_naming_the_route() {
        let h = host(&["10.244.0.0/24"]);
        let e = pick("--cluster-cidr", Some("10.244.0.0/16"), &candidates(), &h)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "--cluster-cidr 10.244.0.0/16 collides with the host's route \"10.244.0.0/24 dev x\""
            ),
            "{e}"
        );
        assert_eq!(
            pick("--cluster-cidr", Some("10.250.0.0/16"), &candidates(), &h).unwrap(),
            "10.250.0.0/16"
        );
        let bad = pick("--cluster-cidr", Some("10.250.0.0"), &candidates(), &h);
        assert!(bad.is_ok(), "a single address is a /32");
        let e = pick("--service-cidr", Some("ten/8"), &candidates(), &h).unwrap_err();
        assert!(e
            .to_string()
            .contains("--service-cidr \"ten/8\": not an IPv4 CIDR"));
    }

    #[test]
    fn a_taken_port_is_named() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let e = ports_free(&[(addr, "member n1's API".into())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{addr} (member n1's API) is taken")),
            "{e}"
        );
        drop(l);
    }

    #[test]
    fn node_ports_another_cluster_holds_are_left_to_it() {
        let held = |r: &str| vec![(r.to_string(), "the cluster in /a (pid 1)".to_string())];
        assert_eq!(pick_ports(None, &[]).unwrap(), "30000-32767");
        assert_eq!(
            pick_ports(None, &held("30000-32767")).unwrap(),
            "29000-29999"
        );
        assert_eq!(
            pick_ports(None, &held("29500-30100")).unwrap(),
            "28000-28999"
        );
        let e = pick_ports(Some("32000-32100"), &held("30000-32767"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("32000-32100 overlaps 30000-32767, the NodePorts of the cluster in /a"),
            "{e}"
        );
        assert_eq!(
            pick_ports(Some("40000-40010"), &held("30000-32767")).unwrap(),
            "40000-40010"
        );
        let e = pick_ports(Some("9-1"), &[]).unwrap_err().to_string();
        assert!(e.contains("\"9-1\": not a range"), "{e}");
        let all: Vec<(String, String)> = held("1-65535");
        assert!(pick_ports(None, &all)
            .unwrap_err()
            .to_string()
            .contains("every range"));
    }
}
