//! Machines on one host: each a network namespace on a shared bridge, with one pod (a
//! namespace of its own behind a veth, in the machine's pod CIDR). Nothing routes between
//! the machines' pod CIDRs until something installs routes, as on separate machines on one
//! LAN. The test process reaches every machine through the bridge. Needs root.
//!
//! Dropping [`Machines`] kills every process started in them and removes the namespaces,
//! veths and the bridge.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::netns::{quiet, run};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One machine: its namespace and address, and its pod's.
pub struct Machine {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub pod_netns: String,
    pub pod_cidr: String,
    pub pod_ip: Ipv4Addr,
}

pub struct Machines {
    pub machines: Vec<Machine>,
    /// The host's address on the bridge, which every machine reaches.
    pub host_ip: Ipv4Addr,
    bridge: String,
    veths: Vec<String>,
    children: Vec<Child>,
}

impl Machines {
    /// `n` machines `m1`…: machine i has pod CIDR 10.244.i.0/24, and its pod 10.244.i.2.
    pub fn new(n: u8) -> Machines {
        assert!(
            crate::netns::is_root(),
            "machines are network namespaces: root is needed"
        );
        let seq = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{}", pid % 100_000, seq);
        let net = (200 + (pid % 50) as u8, (seq % 250) as u8 + 1);
        let bridge = format!("rkmb{tag}");
        quiet("ip", &["link", "del", &bridge]);
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        let host_ip = Ipv4Addr::new(10, net.0, net.1, 254);
        let mut m = Machines {
            machines: Vec::new(),
            host_ip,
            bridge: bridge.clone(),
            veths: Vec::new(),
            children: Vec::new(),
        };
        run(
            "ip",
            &["addr", "add", &format!("{host_ip}/24"), "dev", &bridge],
        );
        run("ip", &["link", "set", &bridge, "up"]);
        for i in 1..=n {
            let ip = Ipv4Addr::new(10, net.0, net.1, i);
            m.add(i, &tag, ip);
        }
        m
    }

    fn add(&mut self, i: u8, tag: &str, ip: Ipv4Addr) {
        let netns = format!("rkm{tag}m{i}");
        let pod_netns = format!("rkm{tag}p{i}");
        let host = format!("rkmv{tag}{i}");
        for ns in [&netns, &pod_netns] {
            quiet("ip", &["netns", "del", ns]);
            run("ip", &["netns", "add", ns]);
        }
        quiet("ip", &["link", "del", &host]);
        run(
            "ip",
            &[
                "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ],
        );
        self.veths.push(host.clone());
        run("ip", &["link", "set", &host, "master", &self.bridge]);
        run("ip", &["link", "set", &host, "up"]);
        let in_ns = |ns: &str, args: &[&str]| {
            let mut a = vec!["netns", "exec", ns];
            a.extend_from_slice(args);
            run("ip", &a);
        };
        in_ns(
            &netns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        in_ns(&netns, &["ip", "link", "set", "eth0", "up"]);
        in_ns(&netns, &["ip", "link", "set", "lo", "up"]);
        in_ns(&netns, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        // The pod: a veth from the machine into its own namespace.
        let gw = Ipv4Addr::new(10, 244, i, 1);
        let pod_ip = Ipv4Addr::new(10, 244, i, 2);
        in_ns(
            &netns,
            &[
                "ip", "link", "add", "pod", "type", "veth", "peer", "name", "eth0", "netns",
                &pod_netns,
            ],
        );
        in_ns(
            &netns,
            &["ip", "addr", "add", &format!("{gw}/24"), "dev", "pod"],
        );
        in_ns(&netns, &["ip", "link", "set", "pod", "up"]);
        in_ns(
            &pod_netns,
            &["ip", "addr", "add", &format!("{pod_ip}/24"), "dev", "eth0"],
        );
        in_ns(&pod_netns, &["ip", "link", "set", "eth0", "up"]);
        in_ns(&pod_netns, &["ip", "link", "set", "lo", "up"]);
        in_ns(
            &pod_netns,
            &["ip", "route", "add", "default", "via", &gw.to_string()],
        );
        self.machines.push(Machine {
            name: format!("m{i}"),
            netns,
            ip,
            pod_netns,
            pod_cidr: format!("10.244.{i}.0/24"),
            pod_ip,
        });
    }

    /// Starts `program args…` in namespace `netns`, logging to `<log_dir>/<name>.log`; it
    /// is killed when the machines are dropped.
    pub fn spawn(
        &mut self,
        netns: &str,
        log_dir: &Path,
        name: &str,
        program: &Path,
        args: &[&str],
    ) {
        let log = crate::process::open_log(log_dir, name);
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} in {netns}: {e}"));
        self.children.push(child);
    }

    /// The machines that have `addr` (as a /32) on an interface.
    pub fn holding(&self, addr: &str) -> Vec<usize> {
        (0..self.machines.len())
            .filter(|i| {
                Machines::exec(
                    &self.machines[*i].netns,
                    &["ip", "-4", "-o", "addr", "show"],
                )
                .is_ok_and(|out| out.contains(&format!(" {addr}/32 ")))
            })
            .collect()
    }

    /// Runs `args` in namespace `netns` and returns its output, or why it failed.
    pub fn exec(netns: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", netns])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in &self.machines {
            quiet("ip", &["netns", "del", &m.netns]);
            quiet("ip", &["netns", "del", &m.pod_netns]);
        }
        for v in &self.veths {
            quiet("ip", &["link", "del", v]);
        }
        quiet("ip", &["link", "del", &self.bridge]);
    }
}
