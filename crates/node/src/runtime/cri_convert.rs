//! Conversions between the runtime trait's types and CRI v1 messages.

use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;

use super::{ContainerConfig, ContainerStatus, SandboxConfig, State};

pub const ANN_LOG_DIR: &str = "rkube.io/log-directory";
pub const ANN_HOST_NETWORK: &str = "rkube.io/host-network";

fn secs(ns: i64) -> Option<i64> {
    (ns > 0).then_some(ns / 1_000_000_000)
}

pub fn sandbox_config(cfg: &SandboxConfig) -> cri::PodSandboxConfig {
    let mode = if cfg.host_network {
        cri::NamespaceMode::Node
    } else {
        cri::NamespaceMode::Pod
    };
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: cfg.name.clone(),
            uid: cfg.uid.clone(),
            namespace: cfg.namespace.clone(),
            attempt: 0,
        }),
        hostname: cfg.name.clone(),
        log_directory: cfg.log_dir.to_string_lossy().to_string(),
        labels: cfg
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        annotations: [
            (
                ANN_LOG_DIR.to_string(),
                cfg.log_dir.to_string_lossy().to_string(),
            ),
            (ANN_HOST_NETWORK.to_string(), cfg.host_network.to_string()),
        ]
        .into_iter()
        .collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: mode as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container's CRI config; `log_path` is relative to the sandbox's log directory.
pub fn container_config(cfg: &ContainerConfig, log_path: &Path) -> cri::ContainerConfig {
    let resources = cri::LinuxContainerResources {
        cpu_period: if cfg.cpu_limit_millis.is_some() {
            100_000
        } else {
            0
        },
        cpu_quota: cfg.cpu_limit_millis.map_or(0, |m| m * 100),
        memory_limit_in_bytes: cfg.memory_limit_bytes.unwrap_or(0),
        ..Default::default()
    };
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: cfg.name.clone(),
            attempt: cfg.attempt,
        }),
        image: Some(cri::ImageSpec {
            image: cfg.image.clone(),
            ..Default::default()
        }),
        command: cfg.command.clone(),
        args: cfg.args.clone(),
        working_dir: cfg.working_dir.clone().unwrap_or_default(),
        envs: cfg
            .env
            .iter()
            .map(|(k, v)| cri::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts: cfg
            .mounts
            .iter()
            .map(|m| cri::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.to_string_lossy().to_string(),
                readonly: m.read_only,
                ..Default::default()
            })
            .collect(),
        log_path: log_path.to_string_lossy().to_string(),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn status(st: cri::ContainerStatus) -> ContainerStatus {
    let state = match cri::ContainerState::try_from(st.state) {
        Ok(cri::ContainerState::ContainerRunning) => State::Running,
        Ok(cri::ContainerState::ContainerCreated) => State::Created,
        _ => State::Exited,
    };
    let md = st.metadata.clone().unwrap_or_default();
    let sandbox_id = st
        .labels
        .get("io.kubernetes.sandbox.id")
        .cloned()
        .unwrap_or_default();
    let exited = state == State::Exited;
    ContainerStatus {
        id: st.id,
        sandbox_id,
        name: md.name,
        attempt: md.attempt,
        state,
        created_at: secs(st.created_at).unwrap_or(0),
        started_at: secs(st.started_at),
        finished_at: if exited { secs(st.finished_at) } else { None },
        exit_code: exited.then_some(st.exit_code),
        reason: if st.reason.is_empty() && exited {
            if st.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .into()
        } else {
            st.reason
        },
        message: st.message,
        log_path: PathBuf::from(st.log_path),
    }
}
