//! cgroup v1 for the process runtime: one cpu and one memory cgroup per container (under
//! `rkube/`), its limits, OOM kills and usage; and usage from /proc where there are none.

use std::path::{Path, PathBuf};

use super::{ContainerConfig, Usage};

/// The cpu and memory hierarchies' `rkube` directories.
pub struct Cgroups {
    cpu: PathBuf,
    mem: PathBuf,
}

impl Cgroups {
    /// The hierarchies, when the host has cgroup v1 and this process may write them.
    pub fn detect(root_user: bool) -> Option<Cgroups> {
        let cg = Path::new("/sys/fs/cgroup");
        (root_user
            && cg.join("cpu/cgroup.procs").exists()
            && cg.join("memory/cgroup.procs").exists())
        .then(|| Cgroups {
            cpu: cg.join("cpu/rkube"),
            mem: cg.join("memory/rkube"),
        })
    }

    pub fn dirs(&self, id: &str) -> [PathBuf; 2] {
        [self.cpu.join(id), self.mem.join(id)]
    }

    /// Creates the container's cgroups with its limits; returns the directories to join.
    pub fn setup(&self, id: &str, cfg: &ContainerConfig) -> Vec<PathBuf> {
        let [cpu, mem] = self.dirs(id);
        if std::fs::create_dir_all(&cpu).is_err() || std::fs::create_dir_all(&mem).is_err() {
            return vec![];
        }
        if let Some(m) = cfg.cpu_limit_millis.filter(|m| *m > 0) {
            // 100 ms periods: a millicore is 100 µs of each.
            let _ = std::fs::write(cpu.join("cpu.cfs_period_us"), "100000");
            let _ = std::fs::write(cpu.join("cpu.cfs_quota_us"), (m * 100).to_string());
        }
        if let Some(b) = cfg.memory_limit_bytes.filter(|b| *b > 0) {
            let _ = std::fs::write(mem.join("memory.limit_in_bytes"), b.to_string());
        }
        vec![cpu, mem]
    }

    pub fn oom_killed(&self, id: &str) -> bool {
        std::fs::read_to_string(self.mem.join(id).join("memory.oom_control"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("oom_kill ").map(|n| n.trim().to_string()))
            })
            .is_some_and(|n| n != "0")
    }

    /// cpu time (cpuacct, which may share the cpu hierarchy) and memory of the container.
    pub fn usage(&self, id: &str) -> Option<Usage> {
        let read =
            |p: PathBuf| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
        let cpuacct = self
            .cpu
            .parent()?
            .parent()?
            .join("cpuacct/rkube")
            .join(id)
            .join("cpuacct.usage");
        let cpu_nanos = read(cpuacct).or_else(|| read(self.cpu.join(id).join("cpuacct.usage")))?;
        let memory_bytes = read(self.mem.join(id).join("memory.usage_in_bytes"))?;
        Some(Usage {
            cpu_nanos,
            memory_bytes,
        })
    }
}

/// cpu time and resident memory of one process, from /proc.
pub fn proc_usage(pid: i32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Usage {
        cpu_nanos: ticks * 1_000_000_000 / hz,
        memory_bytes: rss_kb * 1024,
    })
}
