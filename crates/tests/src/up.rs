//! A cluster started by `rkube up`, for end-to-end tests: the same code path a user runs.
//! The test reads `up.json` to find the members and nodes, kills them as chaos needs, and
//! starts killed members again with the exact command line `rkube up` gave them. Dropping
//! it stops `rkube up` (which stops nodes, pods and members), kills what the test started,
//! and removes the cluster with `rkube up --down`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use client::{Client, ClientConfig};
use serde_json::Value;

use crate::node_agent::{alive, container_pids};
use crate::rkube_bin;

pub struct UpCluster {
    pub dir: tempfile::TempDir,
    up: Option<Child>,
    /// Members the test started again, by name.
    restarted: Vec<(String, Child)>,
    /// What `rkube up` printed.
    pub output: Vec<String>,
}

/// `--server-arg=…` for each of `flags`.
pub fn server_args<S: AsRef<str>>(flags: &[S]) -> Vec<String> {
    flags
        .iter()
        .map(|f| format!("--server-arg={}", f.as_ref()))
        .collect()
}

/// `--node-arg=…` for each of `flags`.
pub fn node_args<S: AsRef<str>>(flags: &[S]) -> Vec<String> {
    flags
        .iter()
        .map(|f| format!("--node-arg={}", f.as_ref()))
        .collect()
}

impl UpCluster {
    /// Runs `rkube up --dir <temp> --base-port 0 <extra>` and waits until it reports the
    /// cluster up.
    pub fn start(extra: &[String]) -> UpCluster {
        let dir = tempfile::Builder::new()
            .prefix("rkube-up-")
            .disable_cleanup(std::env::var_os("RKUBE_TEST_KEEP").is_some())
            .tempdir()
            .expect("temp dir");
        eprintln!("rkube up in {}", dir.path().display());
        let mut child = Command::new(rkube_bin())
            .arg("up")
            .arg("--dir")
            .arg(dir.path().join("cluster"))
            .args(["--base-port", "0", "--write-config"])
            .arg(dir.path().join("client-config"))
            .arg("--kubeconfig")
            .arg(dir.path().join("kubeconfig"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rkube up");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("rkube up: {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut c = UpCluster {
            dir,
            up: Some(child),
            restarted: Vec::new(),
            output: Vec::new(),
        };
        let start = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => {
                    let done = l.starts_with("rkube is up");
                    c.output.push(l);
                    if done {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("rkube up ended before the cluster was up: {:?}", c.output)
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "rkube up did not finish: {:?}",
                c.output
            );
        }
        // Keep draining its output.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        c
    }

    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    /// The kubeconfig `rkube up` merged its `rkube` context into.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("client-config")
    }

    pub fn client(&self) -> Client {
        Client::new(ClientConfig::load(&self.config()).expect("client config")).expect("client")
    }

    /// `up.json`.
    pub fn state(&self) -> Value {
        let b = std::fs::read(self.cluster_dir().join("up.json")).expect("up.json");
        serde_json::from_slice(&b).expect("up.json")
    }

    fn proc(&self, name: &str) -> Value {
        let s = self.state();
        s["members"]
            .as_array()
            .into_iter()
            .chain(s["nodes"].as_array())
            .flatten()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no process {name} in up.json"))
    }

    /// The member's current pid: the one the test started, else the one `rkube up` did.
    pub fn pid(&self, name: &str) -> Option<u32> {
        if let Some((_, c)) = self.restarted.iter().find(|(n, _)| n == name) {
            return Some(c.id());
        }
        self.proc(name)["pid"].as_u64().map(|p| p as u32)
    }

    /// `rkube ctl <args>` against the cluster; its stdout, or a panic with its stderr.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(rkube_bin())
            .arg("ctl")
            .args(args)
            .env("RKUBE_CONFIG", self.config())
            .output()
            .expect("run rkube ctl");
        crate::pod_lifecycle::ctl_ok(args, out)
    }

    /// kill -9 of `rkube up` itself; its exit status.
    pub fn kill_up(&mut self) -> Option<std::process::ExitStatus> {
        let mut up = self.up.take()?;
        let _ = up.kill();
        up.wait().ok()
    }

    /// The pids `up.json` names, with their names: members, nodes and the provider.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let s = self.state();
        s["members"]
            .as_array()
            .into_iter()
            .chain(s["nodes"].as_array())
            .flatten()
            .chain(s.get("provider").filter(|p| !p.is_null()))
            .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["pid"].as_u64()? as u32)))
            .collect()
    }

    /// kill -9 of process `name` (a member or a node agent).
    pub fn kill(&mut self, name: &str) {
        if let Some(i) = self.restarted.iter().position(|(n, _)| n == name) {
            let (_, mut c) = self.restarted.remove(i);
            let _ = c.kill();
            let _ = c.wait();
            return;
        }
        if let Some(pid) = self.pid(name) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let start = Instant::now();
            while Path::new(&format!("/proc/{pid}/cmdline")).exists()
                && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| !s.contains(") Z"))
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Starts member `name` again with the command line `rkube up` gave it.
    pub fn restart_member(&mut self, name: &str) {
        let p = self.proc(name);
        let args: Vec<String> = p["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cluster_dir().join("logs").join(format!("{name}.log")))
            .expect("log");
        let child = Command::new(rkube_bin())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("restart member");
        self.restarted.push((name.to_string(), child));
    }

    /// The container processes (pid, start time) of node `name`.
    pub fn node_containers(&self, name: &str) -> Vec<(i32, u64)> {
        container_pids(
            &self
                .cluster_dir()
                .join(name)
                .join("runtime")
                .join("containers"),
        )
        .into_iter()
        .filter(|(p, t)| alive(*p, *t))
        .collect()
    }

    /// kill -9 of node `name`'s agent and of every container it ran.
    pub fn kill_node_and_pods(&mut self, name: &str) {
        self.kill(name);
        for (pid, _) in self.node_containers(name) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

impl Drop for UpCluster {
    fn drop(&mut self) {
        if let Some(mut up) = self.up.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &up.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(_)) = up.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = up.kill();
            let _ = up.wait();
        }
        for (_, mut c) in self.restarted.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Containers of nodes killed by the test.
        let state = self.state();
        for n in state["nodes"].as_array().into_iter().flatten() {
            for (pid, _) in self.node_containers(n["name"].as_str().unwrap_or("")) {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
        }
        if std::env::var_os("RKUBE_TEST_KEEP").is_none() {
            let _ = Command::new(rkube_bin())
                .args(["up", "--down", "--dir"])
                .arg(self.cluster_dir())
                .status();
        }
    }
}
