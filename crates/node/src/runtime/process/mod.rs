//! The process runtime: every container is a host process group, started and watched by
//! its own shim ([`super::shim`]), with state under one directory so a restarted kubelet
//! finds its pods again. Containers run the spec's `command` + `args` (there is no image
//! to take an entrypoint from), with host networking; volumes are bind-mounted in a
//! private mount namespace and cpu/memory limits applied through cgroup v1 when root.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rustix::process::{kill_process, kill_process_group, Pid, Signal};
use serde::{Deserialize, Serialize};

use super::cgroups::{proc_usage, Cgroups};
use super::cni::CniConfig;
use super::shim::{ExitInfo, ProcessId, ShimSpec};
use super::*;
use crate::host::now_secs;

mod network;

/// One container as recorded on disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    id: String,
    sandbox_id: String,
    config: ContainerConfig,
    created_at: i64,
    started_at: Option<i64>,
}

pub struct ProcessRuntime {
    root: PathBuf,
    /// The binary that runs `node-shim`.
    shim_exe: PathBuf,
    node_ip: String,
    /// cgroup v1 hierarchies (cpu, memory) when they can be written.
    cgroups: Option<Cgroups>,
    root_user: bool,
    /// Pod networking: the plugins and bridge, and the pod CIDR once the node has one.
    cni: Option<CniConfig>,
    pod_cidr: parking_lot::Mutex<Option<String>>,
    /// The cluster's pod CIDR: pod traffic to anywhere else is masqueraded ([`egress`]).
    cluster_cidr: Option<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn write_json<T: Serialize>(p: &Path, v: &T) -> Result<()> {
    let tmp = p.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(v).map_err(|e| Error::Io(e.to_string()))?,
    )?;
    std::fs::rename(tmp, p)?;
    Ok(())
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl ProcessRuntime {
    /// `cni`: pods get their own network namespace on this bridge (root only); `None`:
    /// every pod uses the host network.
    pub fn new(
        root: PathBuf,
        shim_exe: PathBuf,
        node_ip: String,
        cni: Option<(PathBuf, String)>,
    ) -> Result<Self> {
        std::fs::create_dir_all(root.join("sandboxes"))?;
        std::fs::create_dir_all(root.join("containers"))?;
        let root_user = rustix::process::geteuid().is_root();
        // The CIDR of the last run: pods it networked can be taken down before the kubelet
        // has talked to the apiserver.
        let last_cidr = std::fs::read_to_string(root.join("pod-cidr"))
            .ok()
            .map(|s| s.trim().to_string());
        let cgroups = Cgroups::detect(root_user);
        let cni = cni
            .filter(|_| root_user)
            .map(|(bin_dir, bridge)| CniConfig {
                bin_dir,
                bridge,
                subnet: String::new(),
                ipam_dir: root.join("cni-ipam"),
            });
        Ok(ProcessRuntime {
            root,
            shim_exe,
            node_ip,
            cgroups,
            root_user,
            cni,
            pod_cidr: parking_lot::Mutex::new(last_cidr),
            cluster_cidr: None,
        })
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.root.join("sandboxes").join(id)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn record(&self, id: &str) -> Result<Record> {
        read_json(&self.container_dir(id).join("record.json"))
            .ok_or_else(|| Error::NotFound(format!("container {id}")))
    }

    pub(super) fn shim_exe(&self) -> &Path {
        &self.shim_exe
    }

    pub(super) fn process(&self, id: &str) -> Option<ProcessId> {
        read_json(&self.container_dir(id).join("pid"))
    }

    fn exit_info(&self, id: &str) -> Option<ExitInfo> {
        read_json(&self.container_dir(id).join("exit.json"))
    }

    async fn wait_until(&self, deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done() {
                return true;
            }
            if start.elapsed() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn version(&self) -> String {
        format!("process://{}", env!("CARGO_PKG_VERSION"))
    }

    async fn run_pod_sandbox(&self, cfg: &SandboxConfig) -> Result<Sandbox> {
        let id = new_id();
        std::fs::create_dir_all(self.sandbox_dir(&id))?;
        std::fs::create_dir_all(&cfg.log_dir)?;
        let mut sb = Sandbox {
            id: id.clone(),
            config: cfg.clone(),
            ip: self.node_ip.clone(),
            ready: true,
            netns: None,
        };
        if let Some(net) = self.network().filter(|_| !cfg.host_network) {
            let name = format!("rkube-{}", &id[..12]);
            let ip = tokio::task::block_in_place(|| super::cni::add(&net, &id, &name));
            match ip {
                Ok(ip) => {
                    sb.ip = ip;
                    sb.netns = Some(name);
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(self.sandbox_dir(&id));
                    return Err(e);
                }
            }
        }
        if let Some(dns) = cfg.dns.as_ref().filter(|_| self.root_user) {
            std::fs::write(
                self.sandbox_dir(&id).join(network::RESOLV_CONF),
                dns.render(),
            )?;
        }
        write_json(&self.sandbox_dir(&id).join("sandbox.json"), &sb)?;
        Ok(sb)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        for c in self.list_containers(id).await? {
            if c.state == State::Running {
                self.stop_container(&c.id, Duration::ZERO).await?;
            }
        }
        let path = self.sandbox_dir(id).join("sandbox.json");
        if let Some(mut sb) = read_json::<Sandbox>(&path) {
            if let (Some(ns), Some(net)) = (&sb.netns, self.network()) {
                tokio::task::block_in_place(|| super::cni::del(&net, id, ns));
            }
            sb.ready = false;
            write_json(&path, &sb)?;
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.stop_pod_sandbox(id).await?;
        for c in self.list_containers(id).await? {
            self.remove_container(&c.id).await?;
        }
        let _ = std::fs::remove_dir_all(self.sandbox_dir(id));
        Ok(())
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.root.join("sandboxes"))?.flatten() {
            if let Some(sb) = read_json::<Sandbox>(&e.path().join("sandbox.json")) {
                out.push(sb);
            }
        }
        Ok(out)
    }

    async fn pull_image(&self, _image: &str) -> Result<()> {
        Ok(())
    }

    async fn list_images(&self) -> Result<Vec<String>> {
        Ok(vec![])
    }

    /// Containers are host processes: they run as the runtime does.
    async fn image_user(&self, _image: &str) -> Result<Option<i64>> {
        Ok(Some(i64::from(rustix::process::geteuid().as_raw())))
    }

    async fn create_container(&self, sandbox_id: &str, cfg: &ContainerConfig) -> Result<String> {
        if !self.sandbox_dir(sandbox_id).exists() {
            return Err(Error::NotFound(format!("sandbox {sandbox_id}")));
        }
        if cfg.command.is_empty() {
            return Err(Error::Unsupported(format!(
                "container {:?} has no command: the process runtime runs the spec's command and args, and cannot run an image's entrypoint",
                cfg.name
            )));
        }
        super::process_security::check(
            cfg,
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )?;
        let id = new_id();
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir)?;
        let rec = Record {
            id: id.clone(),
            sandbox_id: sandbox_id.to_string(),
            config: cfg.clone(),
            created_at: now_secs(),
            started_at: None,
        };
        write_json(&dir.join("record.json"), &rec)?;
        // The sandbox lists its containers, so listing them reads only theirs.
        let index = self.sandbox_dir(sandbox_id).join("containers");
        std::fs::create_dir_all(&index)?;
        std::fs::write(index.join(&id), b"")?;
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let mut rec = self.record(id)?;
        let dir = self.container_dir(id);
        let cfg = &rec.config;
        if !cfg.mounts.is_empty() && !self.root_user {
            tracing::warn!(container = %cfg.name, "volumes are not mounted: the process runtime mounts them only when running as root");
        }
        let mut security = cfg.security.clone();
        if self.root_user && !security.privileged {
            security.masked_host_paths.push(self.root.clone());
            security
                .masked_host_paths
                .extend(super::process_security::rkube_data_dirs(&self.shim_exe));
        }
        let spec = ShimSpec {
            argv: cfg.command.iter().chain(&cfg.args).cloned().collect(),
            env: cfg.env.clone(),
            working_dir: cfg.working_dir.clone(),
            mounts: if self.root_user {
                self.mounts_of(&rec.sandbox_id, cfg)
            } else {
                vec![]
            },
            log_path: cfg.log_path.clone(),
            cgroups: self
                .cgroups
                .as_ref()
                .map_or_else(Vec::new, |c| c.setup(id, cfg)),
            netns: self.netns_of(&rec.sandbox_id),
            security,
            isolate: self.root_user,
            stdin: cfg.stdin,
            stdin_once: cfg.stdin_once,
        };
        write_json(&dir.join("spec.json"), &spec)?;
        let mut child = tokio::process::Command::new(&self.shim_exe)
            .arg("node-shim")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Error::Io(format!(
                    "starting the shim {}: {e}",
                    self.shim_exe.display()
                ))
            })?;
        // Reap the shim when it ends (after a kubelet restart, init does).
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        rec.started_at = Some(now_secs());
        write_json(&dir.join("record.json"), &rec)?;
        let started = self
            .wait_until(Duration::from_secs(10), || {
                dir.join("pid").exists() || dir.join("exit.json").exists()
            })
            .await;
        if let Some(ExitInfo { error: Some(e), .. }) = self.exit_info(id) {
            return Err(Error::Unsupported(e));
        }
        if !started {
            return Err(Error::Io(format!(
                "container {id} did not start within 10 s"
            )));
        }
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let dir = self.container_dir(id);
        let Some(p) = self.process(id).filter(|p| p.alive()) else {
            return Ok(());
        };
        let pid = Pid::from_raw(p.pid).ok_or_else(|| Error::Io(format!("bad pid {}", p.pid)))?;
        if !grace.is_zero() {
            let _ = kill_process(pid, Signal::TERM);
            self.wait_until(grace, || !p.alive()).await;
        }
        // Whatever else runs in the container goes with it, now that its main process
        // has stopped or the grace period is over.
        let _ = kill_process_group(pid, Signal::KILL);
        let exited = self
            .wait_until(Duration::from_secs(5), || dir.join("exit.json").exists())
            .await;
        if !exited && !p.alive() {
            // The shim died with it: record the kill.
            write_json(
                &dir.join("exit.json"),
                &ExitInfo {
                    exit_code: 137,
                    finished_at: now_secs(),
                    signal: Some(9),
                    error: None,
                },
            )?;
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.stop_container(id, Duration::ZERO).await?;
        if let Ok(rec) = self.record(id) {
            let _ = std::fs::remove_file(
                self.sandbox_dir(&rec.sandbox_id)
                    .join("containers")
                    .join(id),
            );
        }
        for cg in self.cgroups.iter().flat_map(|c| c.dirs(id)) {
            // Busy until the killed processes are gone.
            self.wait_until(Duration::from_secs(2), || {
                !cg.exists() || std::fs::remove_dir(&cg).is_ok()
            })
            .await;
        }
        let _ = std::fs::remove_dir_all(self.container_dir(id));
        Ok(())
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let rec = self.record(id)?;
        let exit = self.exit_info(id);
        let proc_ = self.process(id);
        let state = match (&exit, &proc_, rec.started_at) {
            (Some(_), _, _) => State::Exited,
            (None, Some(p), _) if !p.alive() => State::Exited,
            (None, _, Some(_)) => State::Running,
            (None, _, None) => State::Created,
        };
        let (exit_code, finished_at, reason, message) = match (&exit, state) {
            (Some(e), _) => {
                let reason = if e.error.is_some() {
                    "StartError"
                } else if self.cgroups.as_ref().is_some_and(|c| c.oom_killed(id)) {
                    "OOMKilled"
                } else if e.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                (
                    Some(e.exit_code),
                    Some(e.finished_at),
                    reason,
                    e.error.clone().unwrap_or_default(),
                )
            }
            (None, State::Exited) => (
                Some(137),
                Some(now_secs()),
                "Error",
                "the container's shim is gone".into(),
            ),
            _ => (None, None, "", String::new()),
        };
        Ok(ContainerStatus {
            id: rec.id,
            sandbox_id: rec.sandbox_id,
            name: rec.config.name.clone(),
            attempt: rec.config.attempt,
            state,
            created_at: rec.created_at,
            started_at: rec.started_at,
            finished_at,
            exit_code,
            reason: reason.into(),
            message,
            log_path: rec.config.log_path,
        })
    }

    async fn list_containers(&self, sandbox_id: &str) -> Result<Vec<ContainerStatus>> {
        let mut out = Vec::new();
        let index = self.sandbox_dir(sandbox_id).join("containers");
        for e in std::fs::read_dir(index).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().to_string();
            if self.container_dir(&id).join("record.json").exists() {
                out.push(self.container_status(&id).await?);
            }
        }
        Ok(out)
    }

    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecResult> {
        self.record(id)?;
        self.exec_in(id, self.container_dir(id), cmd, timeout).await
    }

    async fn exec_interactive(
        &self,
        id: &str,
        cmd: &[String],
        stdin: bool,
        tty: bool,
    ) -> Result<interactive::Interactive> {
        self.spawn_exec(id, self.container_dir(id), cmd, stdin, tty)
    }

    async fn attach_stdin(&self, id: &str) -> Result<interactive::Writer> {
        let rec = self.record(id)?;
        let cfg = &rec.config;
        super::shim_stdin::open(&self.container_dir(id), &cfg.name, cfg.stdin).await
    }

    async fn update_pod_cidr(&self, cidr: &str) -> Result<()> {
        *self.pod_cidr.lock() = Some(cidr.to_string());
        std::fs::write(self.root.join("pod-cidr"), cidr)?;
        tokio::task::block_in_place(|| self.masquerade());
        Ok(())
    }

    async fn usage(&self, id: &str) -> Result<Usage> {
        if let Some(u) = self.cgroups.as_ref().and_then(|c| c.usage(id)) {
            return Ok(u);
        }
        let p = self
            .process(id)
            .filter(|p| p.alive())
            .ok_or_else(|| Error::NotFound(format!("running container {id}")))?;
        Ok(proc_usage(p.pid).unwrap_or_default())
    }
}
