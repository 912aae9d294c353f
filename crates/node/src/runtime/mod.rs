//! The container runtime interface, in CRI's shape: pod sandboxes, containers, images,
//! exec and logs. The kubelet drives pods only through [`Runtime`]; [`process`] runs
//! containers as host processes, [`cri`] drives a CRI v1 runtime such as containerd.

pub mod beneath;
pub mod cgroups;
pub mod cni;
pub mod cri;
mod cri_convert;
mod cri_stream;
pub mod egress;
pub mod interactive;
mod isolation;
pub mod process;
mod process_security;
pub mod security;
pub mod shim;
pub(crate) mod shim_stdin;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
pub use security::SecurityConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    /// The container's spec cannot run on this runtime; the message says why.
    #[error("{0}")]
    Unsupported(String),
    /// The container's configuration cannot be honoured as asked (its security context):
    /// the kubelet reports `CreateContainerConfigError`. Not retryable until the pod
    /// or the node changes.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a pod sandbox is made from.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SandboxConfig {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub host_network: bool,
    /// Where the pod's container logs go: `<log_dir>/<container>/<attempt>.log`.
    pub log_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// The pod-level security context (CRI's sandbox security context).
    #[serde(default)]
    pub security: SecurityConfig,
    /// The pod's resolver settings, when they are not the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<crate::dns::resolv_conf::DnsSettings>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    pub config: SandboxConfig,
    /// The pod's IP (the node's, with host networking).
    pub ip: String,
    pub ready: bool,
    /// The pod's network namespace (process runtime, when not on the host network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

/// A volume mounted into a container.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
    /// The volume directory `host_path` lies in (a `subPath`): the runtime opens
    /// `host_path` from there without following a link out of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_root: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub name: String,
    /// How many times this container was created before in this pod.
    pub attempt: u32,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub log_path: PathBuf,
    /// cpu limit in millicores and memory limit in bytes, where the runtime applies them.
    pub cpu_limit_millis: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
    #[serde(default)]
    pub security: SecurityConfig,
    /// The container's stdin stays open for `attach` (`stdin: true` in the pod spec).
    #[serde(default)]
    pub stdin: bool,
    /// Its stdin closes when the first attached client lets go of it (`stdinOnce`).
    #[serde(default)]
    pub stdin_once: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Created,
    Running,
    Exited,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub state: State,
    /// Unix seconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    /// Why it exited ("Completed", "Error", "OOMKilled"…) or could not start.
    pub reason: String,
    pub message: String,
    pub log_path: PathBuf,
}

#[derive(Clone, Debug, Default)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Usage of one container.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Cumulative cpu time in nanoseconds.
    pub cpu_nanos: u64,
    pub memory_bytes: u64,
}

#[async_trait]
pub trait Runtime: Send + Sync {
    /// "process" or "cri".
    fn name(&self) -> &'static str;
    fn version(&self) -> String;

    async fn run_pod_sandbox(&self, cfg: &SandboxConfig) -> Result<Sandbox>;
    /// Stops every container of the sandbox (SIGKILL) and its network.
    async fn stop_pod_sandbox(&self, id: &str) -> Result<()>;
    async fn remove_pod_sandbox(&self, id: &str) -> Result<()>;
    async fn list_pod_sandboxes(&self) -> Result<Vec<Sandbox>>;

    async fn pull_image(&self, image: &str) -> Result<()>;
    async fn list_images(&self) -> Result<Vec<String>>;
    /// The uid `image`'s process runs as when the pod names none, where the runtime
    /// knows it (the kubelet's runAsNonRoot check); `None`: not known.
    async fn image_user(&self, _image: &str) -> Result<Option<i64>> {
        Ok(None)
    }

    async fn create_container(&self, sandbox_id: &str, cfg: &ContainerConfig) -> Result<String>;
    async fn start_container(&self, id: &str) -> Result<()>;
    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;
    async fn remove_container(&self, id: &str) -> Result<()>;
    async fn container_status(&self, id: &str) -> Result<ContainerStatus>;
    async fn list_containers(&self, sandbox_id: &str) -> Result<Vec<ContainerStatus>>;
    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecResult>;
    /// Starts `cmd` in container `id` with its standard streams connected to the caller:
    /// stdin only if asked, a pseudo-terminal with `tty`.
    async fn exec_interactive(
        &self,
        _id: &str,
        _cmd: &[String],
        _stdin: bool,
        _tty: bool,
    ) -> Result<interactive::Interactive> {
        Err(Error::Unsupported(format!(
            "interactive exec is not supported by the {} runtime",
            self.name()
        )))
    }
    /// Attaches to container `id`'s main process where the runtime streams it itself
    /// (CRI `Attach`): its output from now on, and its stdin if asked. `Unsupported`: the
    /// caller follows the container's log and writes through [`Runtime::attach_stdin`].
    async fn attach(
        &self,
        _id: &str,
        _stdin: bool,
        _tty: bool,
    ) -> Result<interactive::Interactive> {
        Err(Error::Unsupported(format!(
            "the {} runtime does not stream attach itself",
            self.name()
        )))
    }
    /// A writer into the stdin of container `id`, which must have been created with
    /// `stdin: true`. Closing it lets go of stdin (a `stdinOnce` container sees its end).
    async fn attach_stdin(&self, _id: &str) -> Result<interactive::Writer> {
        Err(Error::Unsupported(format!(
            "the {} runtime cannot write to a container's stdin",
            self.name()
        )))
    }
    async fn usage(&self, id: &str) -> Result<Usage>;
    /// The node's pod CIDR, once known (CRI's UpdateRuntimeConfig).
    async fn update_pod_cidr(&self, cidr: &str) -> Result<()>;
}
