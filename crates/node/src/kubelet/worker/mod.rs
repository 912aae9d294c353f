//! Pod workers: one task and one state machine per pod, one file per state —
//! [`setup`] (sandbox and volumes) → [`init`] (init containers in order) → [`running`]
//! (containers, restarts with back-off, probes) → [`terminating`] (preStop, SIGTERM, grace,
//! SIGKILL) → [`terminated`] (final status, clean-up). Every step is followed by a status
//! sync, written only when it changed.

mod init;
mod lifecycle;
mod running;
mod setup;
pub mod status;
mod terminated;
mod terminating;

use client::state::{EventType, PodPhase};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::mpsc;

use super::probe::Prober;
use super::Shared;
use crate::runtime::{ContainerConfig, ContainerStatus, Sandbox, State};
use lifecycle::Move;
pub use lifecycle::{Lifecycle, Phase};

/// Why a container could not be started.
#[derive(Debug)]
pub enum StartError {
    /// Its configuration cannot be honoured (security context, volume paths, env):
    /// it waits with `CreateContainerConfigError` until the pod or the node changes.
    Config(String),
    /// The runtime failed; the caller names the reason.
    Runtime(String),
}

impl From<crate::runtime::Error> for StartError {
    fn from(e: crate::runtime::Error) -> Self {
        match e {
            crate::runtime::Error::Config(m) => StartError::Config(m),
            e => StartError::Runtime(e.to_string()),
        }
    }
}

/// One container of the pod, across its restarts.
#[derive(Default)]
pub struct Run {
    pub id: Option<String>,
    pub restarts: i32,
    /// The status of the current container, as last read.
    pub current: Option<ContainerStatus>,
    /// The previous container's end (`lastState`).
    pub last: Option<ContainerStatus>,
    /// Why it is not running: (reason, message).
    pub waiting: Option<(String, String)>,
    /// Not restarted before this.
    pub backoff_until: Option<Instant>,
    pub liveness: Option<Prober>,
    pub readiness: Option<Prober>,
    pub startup: Option<Prober>,
}

impl Run {
    pub fn running(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.state == State::Running)
    }

    pub fn exited(&self) -> Option<&ContainerStatus> {
        self.current.as_ref().filter(|c| c.state == State::Exited)
    }

    pub fn ready(&self) -> bool {
        self.running()
            && self.startup.as_ref().is_none_or(|p| p.ok)
            && self.readiness.as_ref().is_none_or(|p| p.ok)
    }
}

pub struct PodWorker {
    pub shared: Arc<Shared>,
    pub pod: Pod,
    pub uid: String,
    pub life: Lifecycle,
    pub sandbox: Option<Sandbox>,
    pub volumes: BTreeMap<String, PathBuf>,
    pub runs: BTreeMap<String, Run>,
    /// The pod's end, when it failed as a whole: (reason, message).
    pub failure: Option<(String, String)>,
    /// Unix seconds when the kubelet started the pod.
    pub started: Option<i64>,
    /// The phase the pod reached: Pending, Running, Succeeded, Failed.
    pub pod_phase: PodPhase,
    pub grace_deadline: Option<Instant>,
    pub last_status: Option<serde_json::Value>,
}

pub fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

impl PodWorker {
    pub fn spec(&self) -> k8s_openapi::api::core::v1::PodSpec {
        self.pod.spec.clone().unwrap_or_default()
    }

    pub fn pod_dir(&self) -> PathBuf {
        self.shared.cfg.data_dir.join("pods").join(&self.uid)
    }

    pub fn pod_ip(&self) -> String {
        self.sandbox
            .as_ref()
            .map(|s| s.ip.clone())
            .unwrap_or_default()
    }

    pub fn restart_policy(&self) -> String {
        self.spec()
            .restart_policy
            .unwrap_or_else(|| "Always".into())
    }

    pub fn event(&self, type_: EventType, reason: &str, message: String) {
        self.shared.events.record(&self.pod, type_, reason, message);
    }

    /// Refreshes every container's status from the runtime.
    pub async fn observe(&mut self) {
        let rt = self.shared.runtime.clone();
        for run in self.runs.values_mut() {
            if let Some(id) = &run.id {
                if let Ok(st) = rt.container_status(id).await {
                    run.current = Some(st);
                }
            }
        }
    }

    /// Creates and starts container `c` (attempt = its restarts so far).
    pub async fn start(&mut self, c: &Container) -> Result<(), StartError> {
        let Some(sb) = self.sandbox.clone() else {
            return Err(StartError::Runtime("no sandbox".into()));
        };
        let cfg = self.container_config(c, &sb).await?;
        let rt = self.shared.runtime.clone();
        rt.pull_image(&cfg.image).await?;
        let id = rt.create_container(&sb.id, &cfg).await?;
        let started = rt.start_container(&id).await;
        let st = rt.container_status(&id).await.ok();
        self.track(c, id, st).await;
        started?;
        self.event(
            EventType::Normal,
            "Started",
            format!("Started container {}", c.name),
        );
        Ok(())
    }

    /// What the runtime needs to create container `c` in sandbox `sb`: its mounts,
    /// security, environment (expanded into its command and args) and limits.
    async fn container_config(
        &mut self,
        c: &Container,
        sb: &Sandbox,
    ) -> Result<ContainerConfig, StartError> {
        let mounts =
            super::volume_mounts::mounts_for(c, &self.volumes).map_err(StartError::Config)?;
        let security = super::security_context::effective(&self.pod, c, &self.shared.cfg.data_dir);
        let image = c.image.clone().unwrap_or_default();
        let image_uid = match security.run_as_non_root && security.run_as_user.is_none() {
            true => self.shared.runtime.image_user(&image).await?,
            false => None,
        };
        super::security_context::verify_run_as_non_root(&self.pod, c, &security, image_uid)
            .map_err(StartError::Config)?;
        let env = self.env(c, sb).await?;
        let vars: BTreeMap<String, String> = env.iter().cloned().collect();
        let expand = |v: &Option<Vec<String>>| -> Vec<String> {
            v.iter()
                .flatten()
                .map(|s| super::env::expand(s, &vars))
                .collect()
        };
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        let attempt = self.runs.entry(c.name.clone()).or_default().restarts as u32;
        Ok(ContainerConfig {
            name: c.name.clone(),
            attempt,
            image,
            command: expand(&c.command),
            args: expand(&c.args),
            working_dir: c.working_dir.clone(),
            env,
            mounts,
            log_path: sb
                .config
                .log_dir
                .join(&c.name)
                .join(format!("{attempt}.log")),
            cpu_limit_millis: limits
                .and_then(|l| l.get("cpu"))
                .and_then(|q| client::quantity::parse_milli(&q.0)),
            memory_limit_bytes: limits
                .and_then(|l| l.get("memory"))
                .and_then(|q| client::quantity::parse(&q.0)),
            security,
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
        })
    }

    /// The environment of container `c`: the Services' discovery variables (once the
    /// Services are known, as the kubelet waits for them), then its own.
    async fn env(&self, c: &Container, sb: &Sandbox) -> Result<Vec<(String, String)>, StartError> {
        let src = super::env::Sources {
            client: &self.shared.client,
            namespace: namespace(&self.pod),
        };
        self.shared.services.wait_ready().await;
        let links = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let service_env = super::service_env::service_env(
            &self.shared.services.list(),
            namespace(&self.pod),
            links,
        );
        super::env::resolve(
            &src,
            &self.pod,
            c,
            &service_env,
            &sb.ip,
            &self.shared.cfg.node_ip,
        )
        .await
        .map_err(StartError::Config)
    }

    /// Takes container `id` (status `st`) as the current one of `c`, with fresh probes;
    /// the previous one is kept for its status and logs, older ones are removed.
    async fn track(&mut self, c: &Container, id: String, st: Option<ContainerStatus>) {
        let rt = self.shared.runtime.clone();
        let run = self.runs.entry(c.name.clone()).or_default();
        if let Some(prev) = run.current.take().filter(|p| p.state == State::Exited) {
            if let Some(older) = run.last.replace(prev) {
                if let Err(e) = rt.remove_container(&older.id).await {
                    tracing::debug!(container = %older.id, error = %e, "removing an old container failed");
                }
            }
        }
        run.id = Some(id);
        run.current = st;
        run.waiting = None;
        let prober = |p: &Option<Probe>, initial: bool| {
            p.clone()
                .map(|p| Prober::new(super::probe::resolve_named_ports(p, c), initial))
        };
        run.liveness = prober(&c.liveness_probe, true);
        run.readiness = prober(&c.readiness_probe, false);
        run.startup = prober(&c.startup_probe, false);
    }

    /// Records a container that could not be started: it waits with `reason`
    /// (`CreateContainerConfigError` when its configuration is at fault).
    pub fn start_failed(&mut self, c: &Container, reason: &str, e: StartError) {
        let (reason, msg) = match e {
            StartError::Config(m) => ("CreateContainerConfigError", m),
            StartError::Runtime(m) => (reason, m),
        };
        self.event(EventType::Warning, "Failed", format!("Error: {msg}"));
        let run = self.runs.entry(c.name.clone()).or_default();
        run.waiting = Some((reason.into(), msg));
    }

    /// Whether a pod that must stop has been asked to: deleted, or past its deadline.
    fn must_stop(&mut self) -> bool {
        if self.pod.metadata.deletion_timestamp.is_some() {
            return true;
        }
        if let (Some(d), Some(start)) = (self.spec().active_deadline_seconds, self.started) {
            if crate::host::now_secs() >= start + d
                && self.failure.is_none()
                && matches!(self.life.phase(), Phase::Init | Phase::Running)
            {
                self.failure = Some((
                    "DeadlineExceeded".into(),
                    format!(
                        "Pod was active on the node longer than the specified deadline ({d} s)"
                    ),
                ));
                self.event(
                    EventType::Normal,
                    "DeadlineExceeded",
                    "Pod was active on the node longer than the specified deadline".into(),
                );
                return true;
            }
        }
        false
    }

    /// One step of the state machine.
    async fn step(&mut self) {
        if self.must_stop() {
            self.life.stop();
        }
        let m = match self.life.phase() {
            Phase::Setup => Move::Setup(setup::step(self).await),
            Phase::Init => Move::Init(init::step(self).await),
            Phase::Running => Move::Running(running::step(self).await),
            Phase::Terminating => Move::Terminating(terminating::step(self).await),
            Phase::Terminated => Move::Terminated(terminated::step(self).await),
            Phase::Done => return,
        };
        self.life.apply(m);
    }
}

/// What the pod source tells a worker.
pub enum Update {
    /// A newer version of the pod.
    Pod(Box<Pod>),
    /// The pod was removed (from the API, or its manifest): stop it at once.
    Gone,
    /// Write the status again even if unchanged (a new mirror pod has none).
    Resync,
    /// Evict the pod (node pressure): stop it now; it ends Failed, reason Evicted.
    Evict(String),
}

/// Runs a pod worker until its pod is gone.
pub async fn run(mut w: PodWorker, mut updates: mpsc::Receiver<Update>) {
    let tick = Duration::from_millis(w.shared.cfg.sync_interval_ms);
    loop {
        let before = w.life.phase();
        w.step().await;
        if w.life.phase() == Phase::Done {
            return;
        }
        status::sync(&mut w).await;
        if w.life.phase() != before {
            // The pod moved on (phases only go forward): take the next step at once.
            continue;
        }
        match tokio::time::timeout(tick, updates.recv()).await {
            Ok(Some(Update::Pod(p))) => w.pod = *p,
            Ok(Some(Update::Resync)) => w.last_status = None,
            Ok(Some(Update::Evict(msg))) => {
                if w.life.stop() {
                    w.event(EventType::Warning, "Evicted", msg.clone());
                    w.failure = Some(("Evicted".into(), msg));
                    w.grace_deadline = Some(Instant::now());
                }
            }
            Ok(Some(Update::Gone)) | Ok(None) => {
                // Removed from the API: stop everything now.
                w.grace_deadline = Some(Instant::now());
                w.life.stop();
                w.pod.metadata.deletion_timestamp = w.pod.metadata.deletion_timestamp.clone().or(
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                    )),
                );
                w.shared.gone.lock().insert(w.uid.clone());
            }
            Err(_) => {}
        }
    }
}
