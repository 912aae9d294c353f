//! A cluster whose members each run in their own network namespace, joined by a bridge,
//! so faults hit the network itself: nftables rules in a member's namespace drop traffic
//! from or to other members (a partition, a one-way drop, an isolated leader) while the
//! test process, on the bridge, can still reach every member. Needs root.
//!
//! Each member gets an address of its own, so every member runs the identical command but
//! for `--name`, with the same ports, as on separate machines.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::chaos::faults::Faults;
use crate::process::{open_log, MemberProcess};
use crate::rkube_bin;

pub const API_PORT: u16 = 6443;
pub const PEER_PORT: u16 = 2380;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct NetMember {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    child: MemberProcess,
}

pub struct NetCluster {
    pub members: Vec<NetMember>,
    pub dir: tempfile::TempDir,
    bridge: String,
    host_veths: Vec<String>,
    extra_args: Vec<String>,
    initial_cluster: String,
    subnet: (u8, u8),
}

/// Runs a command that must succeed.
pub(crate) fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command whose failure does not matter.
pub(crate) fn quiet(cmd: &str, args: &[&str]) {
    let _ = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl NetCluster {
    /// Sets up `n` namespaces and starts an `rkube server` in each; waits for a leader.
    pub async fn start(n: usize, extra_args: &[&str]) -> NetCluster {
        assert!(
            is_root(),
            "chaos tests put members in network namespaces and need root"
        );
        let seq = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{}", pid % 100_000, seq);
        let subnet = (100 + (pid % 100) as u8, (seq % 250) as u8 + 1);
        let dir = tempfile::Builder::new()
            .prefix("rkube-chaos-")
            .disable_cleanup(std::env::var_os("RKUBE_TEST_KEEP").is_some())
            .tempdir()
            .expect("temp dir");
        eprintln!("chaos cluster data and logs in {}", dir.path().display());
        let bridge = format!("rkb{tag}");
        // Leftovers of a run that was killed before it could clean up.
        quiet("ip", &["link", "del", &bridge]);
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        let mut c = NetCluster {
            members: Vec::new(),
            dir,
            bridge: bridge.clone(),
            host_veths: Vec::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            initial_cluster: String::new(),
            subnet,
        };
        let host_ip = format!("10.{}.{}.254/24", subnet.0, subnet.1);
        run("ip", &["addr", "add", &host_ip, "dev", &bridge]);
        run("ip", &["link", "set", &bridge, "up"]);
        for i in 1..=n {
            c.add_namespace(i, &tag);
        }
        c.initial_cluster = c
            .members
            .iter()
            .map(|m| format!("{}={}:{PEER_PORT}", m.name, m.ip))
            .collect::<Vec<_>>()
            .join(",");
        for i in 0..n {
            c.spawn(i, "new");
        }
        c.wait_leader(Duration::from_secs(30)).await;
        c
    }

    fn add_namespace(&mut self, i: usize, tag: &str) {
        let netns = format!("rk{tag}n{i}");
        let host = format!("rkv{tag}{i}");
        let ip = Ipv4Addr::new(10, self.subnet.0, self.subnet.1, i as u8);
        quiet("ip", &["netns", "del", &netns]);
        quiet("ip", &["link", "del", &host]);
        run("ip", &["netns", "add", &netns]);
        run(
            "ip",
            &[
                "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ],
        );
        run("ip", &["link", "set", &host, "master", &self.bridge]);
        run("ip", &["link", "set", &host, "up"]);
        let exec = |args: &[&str]| {
            let mut a = vec!["netns", "exec", &netns];
            a.extend_from_slice(args);
            run("ip", &a);
        };
        exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        exec(&["ip", "link", "set", "eth0", "up"]);
        exec(&["ip", "link", "set", "lo", "up"]);
        exec(&["nft", "add", "table", "inet", "chaos"]);
        for hook in ["input", "output"] {
            let spec = format!("{{ type filter hook {hook} priority 0; }}");
            exec(&["nft", "add", "chain", "inet", "chaos", hook, &spec]);
        }
        self.host_veths.push(host);
        self.members.push(NetMember {
            name: format!("n{i}"),
            netns,
            ip,
            data_dir: self.dir.path().join(format!("n{i}")),
            child: MemberProcess::default(),
        });
    }

    fn nft(&self, i: usize, args: &[&str]) {
        let mut a = vec!["netns", "exec", &self.members[i].netns, "nft"];
        a.extend_from_slice(args);
        run("ip", &a);
    }
}

impl Faults for NetCluster {
    fn size(&self) -> usize {
        self.members.len()
    }

    fn peer_addr(&self, i: usize) -> String {
        format!("{}:{PEER_PORT}", self.members[i].ip)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn api_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.members[i].ip, API_PORT))
    }

    fn process(&self, i: usize) -> &MemberProcess {
        &self.members[i].child
    }

    fn process_mut(&mut self, i: usize) -> &mut MemberProcess {
        &mut self.members[i].child
    }

    fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        let log = open_log(self.dir.path(), &m.name);
        let child = Command::new("ip")
            .args(["netns", "exec", &m.netns])
            .arg(rkube_bin())
            .arg("server")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen", &format!("{}:{API_PORT}", m.ip)])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--auto-compaction-retention", "0"])
            .args(["--token", &crate::chaos::access().token])
            .arg("--etcd-on-api-port")
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start rkube server in its namespace");
        self.members[i].child.started(child);
    }

    /// Keeps the data directories and logs when the cluster is dropped.
    fn keep(&mut self) {
        self.dir.disable_cleanup(true);
    }

    fn drop_one_way(&self, from: usize, to: usize) {
        let src = self.members[from].ip.to_string();
        self.nft(
            to,
            &[
                "add", "rule", "inet", "chaos", "input", "ip", "saddr", &src, "drop",
            ],
        );
    }

    /// Cuts member `i` off from every other member, both ways; clients on the bridge still
    /// reach it.
    fn isolate(&self, i: usize) {
        for j in 0..self.members.len() {
            if j != i {
                let other = self.members[j].ip.to_string();
                self.nft(
                    i,
                    &[
                        "add", "rule", "inet", "chaos", "input", "ip", "saddr", &other, "drop",
                    ],
                );
                self.nft(
                    i,
                    &[
                        "add", "rule", "inet", "chaos", "output", "ip", "daddr", &other, "drop",
                    ],
                );
            }
        }
    }

    /// Removes every fault rule.
    fn heal(&self) {
        for i in 0..self.members.len() {
            self.nft(i, &["flush", "chain", "inet", "chaos", "input"]);
            self.nft(i, &["flush", "chain", "inet", "chaos", "output"]);
        }
    }
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        for m in &self.members {
            let _ = Command::new("ip").args(["netns", "del", &m.netns]).status();
        }
        for v in &self.host_veths {
            let _ = Command::new("ip")
                .args(["link", "del", v])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
