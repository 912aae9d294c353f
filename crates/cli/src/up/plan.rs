//! What `rkube up` runs: the command line of every member and node, their ports and
//! directories, kept in `<dir>/up.json` so a second `rkube up` in the same directory comes
//! back on the same ports and `rkube up --down` finds the processes.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::claims::Claim;
use super::UpArgs;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proc {
    pub name: String,
    /// `member` or `node`.
    pub role: String,
    /// The `rkube` arguments it runs with.
    pub args: Vec<String>,
    /// Its API address (members).
    pub api: Option<SocketAddr>,
    pub pid: Option<u32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// The `rkube up` process, while it runs.
    pub pid: Option<u32>,
    pub members: Vec<Proc>,
    pub nodes: Vec<Proc>,
    /// The cloud provider's process, if the cluster has one.
    #[serde(default)]
    pub provider: Option<Proc>,
}

impl State {
    /// The value of `flag` in the first member's command line.
    pub fn member_flag(&self, flag: &str) -> Option<&str> {
        let args = &self.members.first()?.args;
        let i = args.iter().position(|a| a == flag)?;
        args.get(i + 1).map(String::as_str)
    }

    /// What the cluster holds on the host while `rkube up` (`pid`) runs it from `dir`.
    pub fn claim(&self, dir: &Path, pid: u32) -> Claim {
        let flag = |f: &str, default: &str| self.member_flag(f).unwrap_or(default).to_string();
        Claim {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            pid,
            cluster_cidr: flag("--cluster-cidr", ""),
            service_cidr: flag("--service-cluster-ip-range", ""),
            node_ports: flag("--service-node-port-range", "30000-32767"),
        }
    }
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("up.json")
}

pub fn load(dir: &Path) -> Option<State> {
    let b = std::fs::read(state_path(dir)).ok()?;
    serde_json::from_slice(&b).ok()
}

pub fn save(dir: &Path, s: &State) -> anyhow::Result<()> {
    let p = state_path(dir);
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(s)?)?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}

/// Whether `pid` is a live `rkube` process (a recycled pid is not ours).
pub fn alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("rkube"))
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The members' API and Raft addresses: BASE+10i and BASE+10i+1, or free ports for 0.
fn member_addrs(base: u16, n: usize) -> anyhow::Result<Vec<(SocketAddr, SocketAddr)>> {
    // Every free port is held until all are chosen: the kernel would otherwise hand a
    // port just released to the next request, and two members could share it.
    let mut held = Vec::new();
    let mut free_port = || -> anyhow::Result<u16> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        held.push(l);
        Ok(port)
    };
    (0..n)
        .map(|i| {
            let (api, peer) = if base == 0 {
                (free_port()?, free_port()?)
            } else {
                let p = base as usize + 10 * i;
                anyhow::ensure!(p < 65535, "--base-port {base}: too high for {n} members");
                (p as u16, p as u16 + 1)
            };
            Ok((
                SocketAddr::from(([127, 0, 0, 1], api)),
                SocketAddr::from(([127, 0, 0, 1], peer)),
            ))
        })
        .collect()
}

/// A short tag of the cluster directory, for host-wide names (bridges).
pub(super) fn tag(dir: &Path) -> String {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    format!(
        "{:06x}",
        node::proxy::hash(&abs.to_string_lossy()) & 0xff_ffff
    )
}

/// The bridge of node `name` in the cluster at `dir`.
pub fn bridge(dir: &Path, name: &str) -> String {
    format!("rk{}{name}", tag(dir))
}

/// Pods get their own network when root and the CNI plugins are there.
pub fn pod_network(requested: &str, root: bool) -> anyhow::Result<&'static str> {
    let cni = root && Path::new("/usr/lib/cni/bridge").exists();
    match requested {
        "auto" if cni => Ok("cni"),
        "auto" | "host" => Ok("host"),
        "cni" if cni => Ok("cni"),
        "cni" => anyhow::bail!("--pod-network cni needs root and the CNI plugins in /usr/lib/cni"),
        other => {
            anyhow::bail!("--pod-network {other:?}: supported values: \"auto\", \"cni\", \"host\"")
        }
    }
}

/// The pod and Service ranges and the NodePorts: as named, or the first of the defaults
/// that neither the host nor another running `rkube up` cluster uses yet (10.244.0.0/16
/// onwards for pods; 10.96.0.0/16 onwards for Services as root, else a loopback range, so
/// the userspace proxy needs no root).
fn ranges(a: &UpArgs, root: bool, others: &[Claim]) -> anyhow::Result<Ranges> {
    let mut host = super::conflicts::host_networks();
    host.extend(super::claims::networks(others));
    let pods: Vec<String> = (244..252).map(|i| format!("10.{i}.0.0/16")).collect();
    let cluster =
        super::conflicts::pick("--cluster-cidr", a.cluster_cidr.as_deref(), &pods, &host)?;
    let services: Vec<String> = if root {
        (96..104).map(|i| format!("10.{i}.0.0/16")).collect()
    } else {
        (96..104).map(|i| format!("127.{i}.0.0/16")).collect()
    };
    let service = super::conflicts::pick(
        "--service-cidr",
        a.service_cidr.as_deref(),
        &services,
        &host,
    )?;
    let held: Vec<(String, String)> = others
        .iter()
        .map(|c| (c.node_ports.clone(), c.holder()))
        .collect();
    let node_ports = super::conflicts::pick_ports(a.service_node_port_range.as_deref(), &held)?;
    Ok(Ranges {
        cluster,
        service,
        node_ports,
    })
}

/// The address ranges and ports of a cluster.
struct Ranges {
    cluster: String,
    service: String,
    node_ports: String,
}

/// With fixed ports, each must be free: the members' and the kubeconfig balancer's.
fn check_ports(a: &UpArgs, addrs: &[(SocketAddr, SocketAddr)]) -> anyhow::Result<()> {
    if a.base_port == 0 {
        return Ok(());
    }
    let mut ports = Vec::new();
    for (i, (api, peer)) in addrs.iter().enumerate() {
        ports.push((*api, format!("member n{}'s API", i + 1)));
        ports.push((*peer, format!("member n{}'s Raft port", i + 1)));
    }
    let balancer = SocketAddr::from(([127, 0, 0, 1], a.balancer_port));
    ports.push((
        balancer,
        "the kubeconfig's balancer (--balancer-port)".into(),
    ));
    super::conflicts::ports_free(&ports)
}

/// Member `n{i+1}`: an `rkube server` serving its API on `api`, one of the
/// `initial` cluster, with `cloud` flags for its cloud-controller-manager.
fn member_proc(
    a: &UpArgs,
    i: usize,
    (api, initial): (SocketAddr, &str),
    ranges: &Ranges,
    cloud: &[String],
) -> Proc {
    let dir = &a.dir;
    let name = format!("n{}", i + 1);
    let mut args = strings(&[
        "server",
        "--name",
        &name,
        "--data-dir",
        &dir.join(&name).to_string_lossy(),
        "--listen",
        &api.to_string(),
        "--initial-cluster",
        initial,
        "--cluster-cidr",
        &ranges.cluster,
        "--service-cluster-ip-range",
        &ranges.service,
        "--service-node-port-range",
        &ranges.node_ports,
        "--token-file",
        &super::creds::token_path(dir).to_string_lossy(),
        "--encryption-provider-config",
        &super::creds::encryption_config_path(dir).to_string_lossy(),
    ]);
    args.extend(cloud.iter().cloned());
    args.extend(a.server_args.iter().cloned());
    Proc {
        name,
        role: "member".into(),
        args,
        api: Some(api),
        pid: None,
    }
}

/// Node `w{i}`: an `rkube node` joining the members at `servers`; initialized by the
/// cloud-controller-manager when the cluster has a `cloud`.
fn node_proc(
    a: &UpArgs,
    i: usize,
    (servers, cluster_cidr): (&str, &str),
    network: &str,
    cloud: bool,
) -> Proc {
    let dir = &a.dir;
    let name = format!("w{i}");
    let mut args = strings(&[
        "node",
        "--name",
        &name,
        "--server",
        servers,
        "--token-file",
        &super::creds::join_token_path(dir).to_string_lossy(),
        "--data-dir",
        &dir.join(&name).to_string_lossy(),
        "--listen",
        "127.0.0.1:0",
        "--runtime",
        "process",
        "--pod-network",
        network,
        "--cni-bridge",
        &bridge(dir, &name),
        "--cluster-cidr",
        cluster_cidr,
        "--proxy-mode",
        "userspace",
        "--stop-pods-on-exit",
    ]);
    if cloud {
        args.extend(strings(&["--cloud-provider", "external"]));
    }
    args.extend(a.node_args.iter().cloned());
    Proc {
        name,
        role: "node".into(),
        args,
        api: None,
        pid: None,
    }
}

/// The processes of a new cluster.
pub fn plan(a: &UpArgs, root: bool, others: &[Claim]) -> anyhow::Result<State> {
    anyhow::ensure!(a.members >= 1, "--members must be at least 1");
    let addrs = member_addrs(a.base_port, a.members)?;
    let initial: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("n{}={peer}", i + 1))
        .collect();
    let initial = initial.join(",");
    check_ports(a, &addrs)?;
    let ranges = ranges(a, root, others)?;
    let provider = super::cloud::provider_proc(a)?;
    let cloud = match provider {
        Some(_) => super::cloud::member_flags(&a.dir),
        None => Vec::new(),
    };
    let members: Vec<Proc> = addrs
        .iter()
        .enumerate()
        .map(|(i, (api, _))| member_proc(a, i, (*api, &initial), &ranges, &cloud))
        .collect();
    let network = pod_network(&a.pod_network, root)?;
    let servers = members
        .iter()
        .filter_map(|m| m.api.map(|a| format!("https://{a}")))
        .collect::<Vec<_>>()
        .join(",");
    let nodes = (1..=a.nodes)
        .map(|i| {
            node_proc(
                a,
                i,
                (&servers, &ranges.cluster),
                network,
                provider.is_some(),
            )
        })
        .collect();
    Ok(State {
        pid: None,
        members,
        nodes,
        provider,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_member_ports_are_all_different() {
        let addrs = member_addrs(0, 200).unwrap();
        let ports: std::collections::HashSet<u16> = addrs
            .iter()
            .flat_map(|(api, peer)| [api.port(), peer.port()])
            .collect();
        assert_eq!(ports.len(), 400);
    }

    #[test]
    fn base_ports_step_by_ten() {
        let addrs = member_addrs(7000, 3).unwrap();
        assert_eq!(addrs[2].0.port(), 7020);
        assert_eq!(addrs[2].1.port(), 7021);
        assert!(member_addrs(65530, 3).is_err());
    }
}
