//! Control-plane components (`rkube scheduler`, …) as separate processes, killed when
//! dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::rkube_bin;

pub struct Component {
    child: Option<Child>,
    pub name: String,
}

impl Component {
    /// Starts `rkube <args…>`, logging to `<log_dir>/<name>.log`.
    pub fn start(log_dir: &Path, name: &str, args: &[&str]) -> Component {
        let log = crate::process::open_log(log_dir, name);
        let child = Command::new(rkube_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start rkube {args:?}: {e}"));
        Component {
            child: Some(child),
            name: name.to_string(),
        }
    }

    /// Whether the process has not exited yet.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Resident set size in bytes, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// SIGTERM, then kill -9 if it has not exited within `grace`; reaped either way.
    pub fn stop(&mut self, grace: std::time::Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let start = std::time::Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// kill -9, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `rkube <args…> --bind-address 127.0.0.1 --secure-port <a free port>` and waits
/// until its log says its secure port listens. Returns the component and the port's
/// address.
pub async fn start_with_secure_port(
    log_dir: &Path,
    name: &str,
    args: &[&str],
) -> (Component, std::net::SocketAddr) {
    let addr = crate::free_addr();
    let port = addr.port().to_string();
    let mut all = args.to_vec();
    all.extend(["--bind-address", "127.0.0.1", "--secure-port", &port]);
    let mut c = Component::start(log_dir, name, &all);
    let log = log_dir.join(format!("{name}.log"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("secure port listening") {
            return (c, addr);
        }
        assert!(
            c.running(),
            "{name} exited before its secure port listened:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{name}: the secure port did not listen within 30 s");
}
