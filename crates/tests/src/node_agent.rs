//! `rkube node` processes for tests, with their data directories. Dropping one kills the
//! agent and every container process its runtime started (which, by design, outlive the
//! agent), so a test leaves nothing running.

use std::path::{Path, PathBuf};
use std::time::Duration;

use client::Client;
use k8s_openapi::api::core::v1::Node;

use crate::component::Component;

pub struct NodeAgent {
    pub name: String,
    dir: tempfile::TempDir,
    args: Vec<String>,
    agent: Option<Component>,
    /// The data directory is a tmpfs of its own (to fill it up on purpose).
    tmpfs: bool,
}

/// Test-speed intervals: heartbeats and pod syncs in fractions of a second, a 1 s
/// crash-loop back-off, usage every 500 ms.
pub const FAST_NODE: &[&str] = &[
    "--node-lease-renew-interval-ms",
    "500",
    "--node-status-update-frequency-ms",
    "500",
    "--sync-interval-ms",
    "200",
    "--crash-loop-backoff-ms",
    "1000",
    "--metrics-interval-ms",
    "500",
    "--listen",
    "127.0.0.1:0",
];

impl NodeAgent {
    /// Starts `rkube node --name NAME` against `servers`, with `extra` flags.
    pub fn start(servers: &str, name: &str, extra: &[&str]) -> NodeAgent {
        Self::start_with(servers, name, extra, None)
    }

    /// As [`start`](Self::start), with the data directory on a tmpfs of `size` (e.g.
    /// "64m"), so a test can fill the node's filesystem.
    pub fn start_with(servers: &str, name: &str, extra: &[&str], tmpfs: Option<&str>) -> NodeAgent {
        let dir = tempfile::Builder::new()
            .prefix("rkube-node-")
            .disable_cleanup(std::env::var_os("RKUBE_TEST_KEEP").is_some())
            .tempdir()
            .expect("temp dir");
        eprintln!("node {name} data and logs in {}", dir.path().display());
        let data = dir.path().join("data");
        if let Some(size) = tmpfs {
            std::fs::create_dir_all(&data).unwrap();
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&data)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "mounting a tmpfs on {}", data.display());
        }
        let mut args: Vec<String> = vec![
            "node".into(),
            "--name".into(),
            name.into(),
            crate::client_flags(servers)[0].clone(),
            servers.into(),
            "--data-dir".into(),
            data.to_string_lossy().into(),
        ];
        args.extend(FAST_NODE.iter().map(|s| s.to_string()));
        // Eviction follows the host's real disk and memory: off unless a test asks for it.
        if !extra.contains(&"--eviction-hard") {
            args.extend(["--eviction-hard".to_string(), String::new()]);
        }
        // Pod networking needs a bridge and pod CIDR of the test's own.
        if !extra.contains(&"--pod-network") {
            args.extend(["--pod-network".to_string(), "host".to_string()]);
        }
        // The service proxy only where a test asks for one.
        if !extra.contains(&"--proxy-mode") {
            args.extend(["--proxy-mode".to_string(), "none".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut n = NodeAgent {
            name: name.into(),
            dir,
            args,
            agent: None,
            tmpfs: tmpfs.is_some(),
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.agent = Some(Component::start(self.dir.path(), &self.name, &args));
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// kill -9 of the agent alone; its containers keep running.
    pub fn kill(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.kill();
        }
    }

    /// SIGTERM: the agent stops as on Ctrl-C (pods keep running).
    pub fn stop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.stop(Duration::from_secs(10));
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Waits until the node reports Ready.
    pub async fn wait_ready(&self, client: &Client) -> Node {
        let api = client::Api::<Node>::all(client.clone());
        crate::eventually(
            Duration::from_secs(30),
            &format!("node {} Ready", self.name),
            || async {
                let n = api.get(&self.name).await.ok()?;
                (crate::objects::node_ready(&n)? == "True").then_some(n)
            },
        )
        .await
    }

    /// The lines a container wrote, from its CRI log file (all attempts, in order).
    pub fn logs(&self, namespace: &str, pod: &str, uid: &str, container: &str) -> Vec<String> {
        let dir = self
            .data_dir()
            .join("logs")
            .join(format!("{namespace}_{pod}_{uid}"))
            .join(container);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The agent's resident set size, in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.agent.as_ref()?.rss_bytes()
    }

    /// The summed proportional set size (shared pages split among their users) of the
    /// process runtime's shims of this node.
    pub fn shims_pss_bytes(&self) -> u64 {
        let data = self.data_dir().to_string_lossy().to_string();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&cmd);
                if !(cmd.contains("node-shim") && cmd.contains(&data)) {
                    return None;
                }
                let status = std::fs::read_to_string(e.path().join("smaps_rollup")).ok()?;
                let kb: u64 = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Pss:"))?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()?;
                Some(kb * 1024)
            })
            .sum()
    }

    /// What the agent logged so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.name)))
            .unwrap_or_default()
    }

    /// Pids of the container processes the runtime records as started.
    pub fn container_pids(&self) -> Vec<(i32, u64)> {
        container_pids(&self.data_dir().join("runtime").join("containers"))
    }
}

fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The container processes recorded under a process runtime's `containers` directory.
pub fn container_pids(dir: &Path) -> Vec<(i32, u64)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path().join("pid")).ok()?).ok()?;
            Some((v["pid"].as_i64()? as i32, v["start_ticks"].as_u64()?))
        })
        .collect()
}

/// Whether process `pid` with start time `ticks` is alive.
pub fn alive(pid: i32, ticks: u64) -> bool {
    start_ticks(pid) == Some(ticks)
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        self.kill();
        let procs = self.container_pids();
        for (pid, ticks) in &procs {
            if alive(*pid, *ticks) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
        }
        // Their shims record the exits; let them finish before the directory goes.
        let start = std::time::Instant::now();
        while procs.iter().any(|(p, t)| alive(*p, *t)) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let containers = self.data_dir().join("runtime").join("containers");
        let recorded = || {
            std::fs::read_dir(&containers)
                .into_iter()
                .flatten()
                .flatten()
                .all(|e| !e.path().join("pid").exists() || e.path().join("exit.json").exists())
        };
        while !recorded() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Pod networks: namespaces, then the node's bridge.
        node::runtime::cni::remove_pod_networks(&self.data_dir().join("runtime"));
        if let Some(i) = self.args.iter().position(|a| a == "--cni-bridge") {
            if let Some(br) = self.args.get(i + 1) {
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", br])
                    .output();
            }
        }
        // What a proxy killed with -9 left: its dummy interface and nftables table.
        node::proxy::addrs::remove_all(&self.name);
        let table = node::proxy::nftables::table_name(&self.name);
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &table])
            .output();
        // Volumes of pods the killed agent never tore down (memory-medium emptyDirs are
        // tmpfs mounts), deepest first, then the data directory's own tmpfs: a mount left
        // behind would keep the directory from being removed.
        node::kubelet::unmount_under(&self.data_dir());
        if self.tmpfs {
            let _ = std::process::Command::new("umount")
                .args(["-l"])
                .arg(self.data_dir())
                .status();
        }
        for hier in ["cpu", "memory"] {
            let root = Path::new("/sys/fs/cgroup").join(hier).join("rkube");
            for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}
