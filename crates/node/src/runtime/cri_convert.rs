//! Conversions between the runtime trait's types and CRI v1 messages.

use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;

use super::security::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
use super::{ContainerConfig, ContainerStatus, SandboxConfig, SecurityConfig, State};

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
        dns_config: cfg.dns.as_ref().map(|d| cri::DnsConfig {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        }),
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
                run_as_user: int64(cfg.security.run_as_user),
                run_as_group: int64(cfg.security.run_as_group),
                supplemental_groups: cfg.security.supplemental_groups.clone(),
                privileged: cfg.security.privileged,
                seccomp: cfg.security.seccomp.as_ref().map(seccomp),
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
            security_context: Some(container_security(&cfg.security)),
        }),
        stdin: cfg.stdin,
        stdin_once: cfg.stdin_once,
        ..Default::default()
    }
}

fn int64(v: Option<i64>) -> Option<cri::Int64Value> {
    v.map(|value| cri::Int64Value { value })
}

fn seccomp((kind, localhost): &(String, Option<String>)) -> cri::SecurityProfile {
    let profile_type = match kind.as_str() {
        "RuntimeDefault" => cri::security_profile::ProfileType::RuntimeDefault,
        "Localhost" => cri::security_profile::ProfileType::Localhost,
        _ => cri::security_profile::ProfileType::Unconfined,
    };
    cri::SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: localhost.clone().unwrap_or_default(),
    }
}

/// A container's CRI security context, as the kubelet fills it: the runtime's default
/// masked and read-only paths unless privileged, and capabilities as written.
pub fn container_security(sc: &SecurityConfig) -> cri::LinuxContainerSecurityContext {
    let paths = |p: &[&str]| match sc.privileged {
        true => vec![],
        false => p.iter().map(|s| s.to_string()).collect(),
    };
    let caps = !(sc.capabilities_add.is_empty() && sc.capabilities_drop.is_empty());
    cri::LinuxContainerSecurityContext {
        capabilities: caps.then(|| cri::Capability {
            add_capabilities: sc.capabilities_add.clone(),
            drop_capabilities: sc.capabilities_drop.clone(),
            add_ambient_capabilities: vec![],
        }),
        privileged: sc.privileged,
        namespace_options: None,
        run_as_user: int64(sc.run_as_user),
        run_as_group: int64(sc.run_as_group),
        readonly_rootfs: sc.read_only_root_filesystem,
        supplemental_groups: sc.supplemental_groups.clone(),
        no_new_privs: sc.no_new_privs,
        masked_paths: paths(DEFAULT_MASKED_PATHS),
        readonly_paths: paths(DEFAULT_READONLY_PATHS),
        seccomp: sc.seccomp.as_ref().map(seccomp),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_reaches_the_container_and_the_sandbox() {
        let sc = SecurityConfig {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            supplemental_groups: vec![4000, 2000],
            capabilities_add: vec!["NET_ADMIN".into()],
            capabilities_drop: vec!["ALL".into()],
            no_new_privs: true,
            read_only_root_filesystem: true,
            seccomp: Some(("RuntimeDefault".into(), None)),
            ..Default::default()
        };
        let cfg = ContainerConfig {
            name: "c".into(),
            security: sc.clone(),
            ..Default::default()
        };
        let c = container_config(&cfg, Path::new("c/0.log"));
        let csc = c.linux.unwrap().security_context.unwrap();
        assert_eq!(csc.run_as_user.map(|v| v.value), Some(1000));
        assert_eq!(csc.run_as_group.map(|v| v.value), Some(3000));
        assert_eq!(csc.supplemental_groups, [4000, 2000]);
        assert!(csc.readonly_rootfs && csc.no_new_privs && !csc.privileged);
        let caps = csc.capabilities.unwrap();
        assert_eq!(caps.add_capabilities, ["NET_ADMIN"]);
        assert_eq!(caps.drop_capabilities, ["ALL"]);
        assert!(csc.masked_paths.iter().any(|p| p == "/proc/kcore"));
        assert!(csc.readonly_paths.iter().any(|p| p == "/proc/sys"));
        let profile = csc.seccomp.unwrap();
        assert_eq!(
            profile.profile_type,
            cri::security_profile::ProfileType::RuntimeDefault as i32
        );

        let privileged = container_security(&SecurityConfig {
            privileged: true,
            ..Default::default()
        });
        assert!(privileged.privileged);
        assert!(privileged.masked_paths.is_empty() && privileged.readonly_paths.is_empty());
        assert!(privileged.capabilities.is_none() && privileged.run_as_user.is_none());

        let sb = sandbox_config(&SandboxConfig {
            security: SecurityConfig {
                seccomp: Some(("Localhost".into(), Some("profiles/a.json".into()))),
                ..sc
            },
            ..Default::default()
        });
        let ssc = sb.linux.unwrap().security_context.unwrap();
        assert_eq!(ssc.run_as_user.map(|v| v.value), Some(1000));
        assert_eq!(ssc.supplemental_groups, [4000, 2000]);
        assert!(ssc.namespace_options.is_some());
        let profile = ssc.seccomp.unwrap();
        assert_eq!(profile.localhost_ref, "profiles/a.json");
    }
}
