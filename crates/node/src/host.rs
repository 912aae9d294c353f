//! What the node agent reads from the machine it runs on: memory and process counts from
//! /proc, filesystem sizes from statvfs, the host's identity, and the clock. The rest of
//! the crate asks here rather than reading the host itself.

use std::path::Path;

/// A /proc/meminfo field (`MemTotal`, `MemAvailable`), in bytes.
pub fn meminfo(key: &str) -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?, key)
}

fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    })
}

/// Bytes of physical memory.
pub fn memory_bytes() -> u64 {
    meminfo("MemTotal").unwrap_or(0)
}

/// The size of the filesystem holding a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsUsage {
    /// Bytes in all.
    pub total: u64,
    /// Bytes an unprivileged writer can still use.
    pub available: u64,
}

/// The filesystem holding `dir`, or `None` when it cannot be read.
pub fn filesystem(dir: &Path) -> Option<FsUsage> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(FsUsage {
        total: s.f_blocks * s.f_frsize,
        available: s.f_bavail * s.f_frsize,
    })
}

/// The number of processes on the host, and the kernel's limit (`pid_max`).
pub fn processes() -> (u64, u64) {
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u64>().is_ok())
                .count() as u64
        })
        .unwrap_or(0);
    (procs, pid_max)
}

/// The CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The host's name, kernel release, OS name, machine ID and boot ID.
pub struct Identity {
    pub hostname: String,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
}

pub fn identity() -> Identity {
    let uname = rustix::system::uname();
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    Identity {
        hostname: uname.nodename().to_string_lossy().to_string(),
        kernel: uname.release().to_string_lossy().to_string(),
        os_image: std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| "Linux".into()),
        machine_id: read("/etc/machine-id"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
    }
}

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_are_read_in_bytes() {
        let text = "MemTotal:       16318480 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_meminfo(text, "MemTotal"), Some(16318480 * 1024));
        assert_eq!(parse_meminfo(text, "MemAvailable"), Some(2048 * 1024));
        // A key that is only a prefix of another is not confused with it.
        assert_eq!(parse_meminfo(text, "Mem"), None);
        assert_eq!(parse_meminfo(text, "SwapTotal"), None);
    }

    #[test]
    fn the_host_is_readable() {
        assert!(memory_bytes() > 0);
        let fs = filesystem(Path::new("/")).unwrap();
        assert!(fs.total >= fs.available && fs.total > 0);
        let (procs, max) = processes();
        assert!(procs > 0 && procs < max);
    }
}
