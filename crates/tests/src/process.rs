//! A member process as the chaos harnesses drive it: started, killed, paused, resumed.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command};

/// One member's process, if it runs.
#[derive(Default)]
pub struct MemberProcess(Option<Child>);

impl MemberProcess {
    pub fn started(&mut self, child: Child) {
        self.0 = Some(child);
    }

    pub fn is_running(&self) -> bool {
        self.0.is_some()
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.0 {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// SIGSTOP: the process freezes as in a long pause.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// kill -9 (a paused process too), and reap it.
    pub fn kill(&mut self) {
        self.resume();
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The log file of member `name` in `dir`, appended to across restarts.
pub fn open_log(dir: &Path, name: &str) -> File {
    File::options()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("log file")
}

/// Whether process `pid` has exited (a zombie not yet reaped, or gone).
pub fn has_exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        // The state follows the command name, which is in parentheses.
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X")
    })
}

/// The last `n` lines of member `name`'s log in `dir`.
pub fn log_tail(dir: &Path, name: &str, n: usize) -> String {
    let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
