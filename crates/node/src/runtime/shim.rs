//! The container shim of the process runtime (`rkube node-shim DIR`), as conmon is to
//! CRI-O: it starts one container's process, writes its output to the log file in CRI
//! format, and records the exit status. It runs in its own process group, so a kubelet
//! restart leaves the container and its shim running.
//!
//! `DIR/spec.json` says what to run; the shim writes `DIR/pid` (the process and its start
//! time, so nobody signals a recycled pid) and, when the process ends, `DIR/exit.json`.
//! The container's process is started by the shim's second stage ([`super::isolation`]),
//! which isolates itself as the spec's security context says before it runs the command.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::isolation::STAGE_ENV;
use super::shim_stdin::Stdin;
use super::{Mount, SecurityConfig};

/// What the shim runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShimSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    pub log_path: PathBuf,
    /// cgroup directories the process joins (cgroup v1: one per controller).
    pub cgroups: Vec<PathBuf>,
    /// The pod's network namespace, when it has one.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    #[serde(default)]
    pub security: SecurityConfig,
    /// The runtime is root: the process gets a mount namespace, its credentials and
    /// capabilities as `security` says. Otherwise it runs as the runtime's user.
    #[serde(default)]
    pub isolate: bool,
    /// The container's stdin stays open for attach ([`super::shim_stdin`]).
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
}

/// How the process ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExitInfo {
    pub exit_code: i32,
    /// Unix seconds.
    pub finished_at: i64,
    pub signal: Option<i32>,
    /// Set when the process could not be started.
    pub error: Option<String>,
}

/// The container's process: its pid and its start time in clock ticks since boot
/// (`/proc/PID/stat` field 22), which together name one process for good.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProcessId {
    pub pid: i32,
    pub start_ticks: u64,
}

pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

impl ProcessId {
    /// Whether this very process is still alive (not a later one with the same pid).
    pub fn alive(&self) -> bool {
        start_ticks(self.pid) == Some(self.start_ticks)
    }
}

fn rfc3339_nano() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    k8s_openapi::jiff::Timestamp::from_nanosecond(ns)
        .map(|t| format!("{t:.9}"))
        .unwrap_or_default()
}

/// Copies `from` into the log, one CRI log line per line of output:
/// `<time> <stream> <F|P> <text>` (P: a partial line, cut at 16 KiB or at the end).
fn pump(from: impl Read, stream: &'static str, log: Arc<Mutex<File>>) {
    let mut r = BufReader::with_capacity(16 * 1024, from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.by_ref().take(16 * 1024).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (tag, text) = match buf.strip_suffix(b"\n") {
            Some(t) => ("F", t),
            None => ("P", &buf[..]),
        };
        let mut line = format!("{} {stream} {tag} ", rfc3339_nano()).into_bytes();
        line.extend_from_slice(text);
        line.push(b'\n');
        if let Ok(mut f) = log.lock() {
            let _ = f.write_all(&line);
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Why the container's process did not start; its text is the container's error in
/// `exit.json`. Not retryable as it is: the container is created again.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// Opening the pod's network namespace, or the pipe the second stage reports on.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("joining {}: {source}", netns.display())]
    Network {
        netns: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("starting the container's process: {0}")]
    Spawn(#[source] std::io::Error),
    /// What the second stage reported ([`super::isolation`]).
    #[error("{0}")]
    Isolation(String),
}

/// Puts the shim — and so the container it starts — into the pod's network namespace.
/// The shim is single-threaded here, so the namespace it joins is the one its child
/// inherits.
fn enter_network(spec: &ShimSpec) -> Result<(), StartError> {
    use nix::sched::{setns, CloneFlags};
    if let Some(ns) = &spec.netns {
        let f = File::open(ns)?;
        setns(&f, CloneFlags::CLONE_NEWNET).map_err(|source| StartError::Network {
            netns: ns.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Starts the second stage, which becomes the container's process; returns it once it
/// runs the container's command, or why it could not.
fn spawn_container(dir: &Path, stdin: Option<&Stdin>) -> Result<std::process::Child, StartError> {
    let (mut report, report_tx) = std::io::pipe()?;
    let mut cmd = Command::new("/proc/self/exe");
    if let Some(s) = stdin {
        cmd.env(super::shim_stdin::STDIN_PATH_ENV, s.path());
    }
    cmd.arg("node-shim")
        .arg(dir)
        .env(STAGE_ENV, "init")
        .stdin(report_tx)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(StartError::Spawn)?;
    // The only writer left is the child's, closed by its exec.
    drop(cmd);
    let mut why = String::new();
    report.read_to_string(&mut why)?;
    if why.is_empty() {
        return Ok(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(StartError::Isolation(why))
}

/// Runs the container described in `dir`; returns when it has exited. The same binary
/// runs the second stage and `exec`s when [`STAGE_ENV`] says so.
pub fn run(dir: &Path) -> std::io::Result<()> {
    match std::env::var(STAGE_ENV).as_deref() {
        Ok("init") => return super::isolation::init(dir),
        Ok("exec") => return super::isolation::exec(dir),
        _ => {}
    }
    let spec: ShimSpec = serde_json::from_slice(&std::fs::read(dir.join("spec.json"))?)
        .map_err(std::io::Error::other)?;
    let home = join_cgroups(&spec.cgroups);
    let log = open_log(&spec.log_path)?;
    let stdin = match spec.stdin {
        true => Some(Stdin::new(dir)?),
        false => None,
    };
    let started = enter_network(&spec).and_then(|()| spawn_container(dir, stdin.as_ref()));
    let child = match started {
        Ok(c) => c,
        Err(e) => {
            return write_exit(
                dir,
                ExitInfo {
                    exit_code: 128,
                    finished_at: crate::host::now_secs(),
                    signal: None,
                    error: Some(e.to_string()),
                },
            );
        }
    };
    if let Some(s) = stdin {
        s.relay(spec.stdin_once);
    }
    for cg in &home {
        let _ = std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string());
    }
    let status = supervise(dir, child, &log)?;
    let (code, signal) = match (status.code(), status.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(s)) => (128 + s, Some(s)),
        _ => (255, None),
    };
    write_exit(
        dir,
        ExitInfo {
            exit_code: code,
            finished_at: crate::host::now_secs(),
            signal,
            error: None,
        },
    )
}

/// Joins the container's `cgroups`, so the process starts in them; returns the cgroups
/// the shim was in, to go back to once it has started, so the cgroups hold the container
/// alone.
fn join_cgroups(cgroups: &[PathBuf]) -> Vec<PathBuf> {
    let home: Vec<PathBuf> = cgroups.iter().filter_map(|cg| own_cgroup(cg)).collect();
    for cg in cgroups {
        if let Err(e) = std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string()) {
            tracing::warn!(cgroup = %cg.display(), error = %e, "joining the cgroup failed");
        }
    }
    home
}

/// The container's log file, opened to append to.
fn open_log(path: &Path) -> std::io::Result<Arc<Mutex<File>>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(Arc::new(Mutex::new(file)))
}

/// Records the started `child` in `DIR/pid`, copies its output into `log` and waits
/// for it to end; then ends what it left behind in its process group.
fn supervise(
    dir: &Path,
    mut child: std::process::Child,
    log: &Arc<Mutex<File>>,
) -> std::io::Result<std::process::ExitStatus> {
    let pid = child.id() as i32;
    let id = ProcessId {
        pid,
        start_ticks: start_ticks(pid).unwrap_or(0),
    };
    write_atomic(
        &dir.join("pid"),
        &serde_json::to_vec(&id).unwrap_or_default(),
    )?;
    let out = child.stdout.take().map(|o| {
        let log = Arc::clone(log);
        std::thread::spawn(move || pump(o, "stdout", log))
    });
    let err = child.stderr.take().map(|e| {
        let log = Arc::clone(log);
        std::thread::spawn(move || pump(e, "stderr", log))
    });
    let status = child.wait()?;
    // The container ends with its main process: what it left behind in its process group
    // goes too (and lets go of the log pipes).
    if let Some(pg) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(pg, rustix::process::Signal::KILL);
    }
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    Ok(status)
}

/// Writes how the container ended to `DIR/exit.json`.
fn write_exit(dir: &Path, info: ExitInfo) -> std::io::Result<()> {
    write_atomic(
        &dir.join("exit.json"),
        &serde_json::to_vec(&info).unwrap_or_default(),
    )
}

/// The cgroup this process is in, in the hierarchy of the container cgroup `cg`
/// (`/sys/fs/cgroup/<hierarchy>/rkube/<id>`).
fn own_cgroup(cg: &Path) -> Option<PathBuf> {
    let root = cg.parent()?.parent()?;
    let hier = root.file_name()?.to_str()?;
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls
            .split(',')
            .any(|c| c == hier)
            .then(|| root.join(path.trim_start_matches('/')))
    })
}

/// The PATH the container asked for, or a standard one.
pub(crate) fn path_of(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_read_as_the_containers_error() {
        let cases = [
            (
                StartError::Network {
                    netns: "/run/netns/p".into(),
                    source: nix::Error::EPERM,
                },
                "joining /run/netns/p: EPERM: Operation not permitted",
            ),
            (
                StartError::Spawn(std::io::Error::from_raw_os_error(2)),
                "starting the container's process: No such file or directory (os error 2)",
            ),
            (
                StartError::Isolation("the container has no command".into()),
                "the container has no command",
            ),
            (
                std::io::Error::from_raw_os_error(2).into(),
                "No such file or directory (os error 2)",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
