//! A container's security settings as the runtimes take them: the pod's and the
//! container's `securityContext` already merged by the kubelet (Kubernetes'
//! "effective security context"), plus the node paths the container must not see.
//! Both runtimes read this one type: the process runtime applies it itself, the CRI
//! runtime hands it to containerd.

use std::path::PathBuf;

use rustix::thread::CapabilitySet;
use serde::{Deserialize, Serialize};

/// The effective security context of one container.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecurityConfig {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: bool,
    /// The pod's supplementalGroups, and its fsGroup.
    pub supplemental_groups: Vec<i64>,
    /// The pod's fsGroup (volumes the kubelet creates belong to it).
    pub fs_group: Option<i64>,
    pub privileged: bool,
    /// `capabilities.add` / `.drop`, as written (`NET_ADMIN`, `CAP_NET_ADMIN`, `ALL`).
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    /// `allowPrivilegeEscalation: false`: the process and its children gain no
    /// privileges through setuid binaries or file capabilities.
    pub no_new_privs: bool,
    pub read_only_root_filesystem: bool,
    /// `seccompProfile`: (type, localhost profile), passed to CRI runtimes.
    pub seccomp: Option<(String, Option<String>)>,
    /// Node paths an unprivileged container must not see (the kubelet's data directory);
    /// the process runtime hides them, together with [`HOST_SECRETS`].
    pub masked_host_paths: Vec<PathBuf>,
}

/// Host files and directories that hold secrets of the node, hidden from unprivileged
/// containers of the process runtime (which otherwise see the host's filesystem).
pub const HOST_SECRETS: &[&str] = &[
    "/root",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
];

/// The paths container runtimes mask by default (Kubernetes' `procMount: Default`).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The paths container runtimes make read-only by default.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A capability name the kernel does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("capability {0:?} is not a Linux capability")]
pub struct UnknownCapability(pub String);

/// `NET_ADMIN` or `CAP_NET_ADMIN` (any case) as a set of one.
pub fn parse_capability(name: &str) -> Result<CapabilitySet, UnknownCapability> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CapabilitySet::from_name(bare)
        .filter(|c| c.bits().count_ones() == 1)
        .ok_or_else(|| UnknownCapability(name.to_string()))
}

impl SecurityConfig {
    /// The capabilities the process keeps, as containerd computes them from a default
    /// set: `add: [ALL]` takes every one, `drop: [ALL]` none, then the named ones are
    /// added, then the named ones dropped. The process runtime's default set is empty.
    /// `None`: privileged, every capability is kept.
    pub fn capabilities(
        &self,
        all: CapabilitySet,
    ) -> Result<Option<CapabilitySet>, UnknownCapability> {
        if self.privileged {
            return Ok(None);
        }
        let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
        let mut set = CapabilitySet::empty();
        if self.capabilities_add.iter().any(is_all) {
            set = all;
        }
        if self.capabilities_drop.iter().any(is_all) {
            set = CapabilitySet::empty();
        }
        for c in self.capabilities_add.iter().filter(|c| !is_all(c)) {
            set |= parse_capability(c)?;
        }
        for c in self.capabilities_drop.iter().filter(|c| !is_all(c)) {
            set -= parse_capability(c)?;
        }
        Ok(Some(set))
    }

    /// What this asks for that only a root runtime can give, given the runtime's own
    /// uid and gid: the fields named, for an error message. Empty when nothing is.
    pub fn needs_root(&self, uid: u32, gid: u32) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.run_as_user.is_some_and(|u| u != i64::from(uid)) {
            out.push("runAsUser");
        }
        if self.run_as_group.is_some_and(|g| g != i64::from(gid)) {
            out.push("runAsGroup");
        }
        if !self.supplemental_groups.is_empty() {
            out.push("supplementalGroups");
        }
        if self.fs_group.is_some() {
            out.push("fsGroup");
        }
        if self.privileged {
            out.push("privileged");
        }
        if !self.capabilities_add.is_empty() {
            out.push("capabilities.add");
        }
        if self.read_only_root_filesystem {
            out.push("readOnlyRootFilesystem");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(add: &[&str], drop: &[&str]) -> SecurityConfig {
        SecurityConfig {
            capabilities_add: add.iter().map(|s| s.to_string()).collect(),
            capabilities_drop: drop.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn capabilities_start_empty_and_follow_containerds_order() {
        let all = CapabilitySet::CHOWN | CapabilitySet::NET_ADMIN | CapabilitySet::KILL;
        let caps = |add, drop| sc(add, drop).capabilities(all).unwrap().unwrap();
        assert_eq!(caps(&[], &[]), CapabilitySet::empty());
        assert_eq!(
            caps(&["net_admin", "CAP_KILL"], &[]),
            CapabilitySet::NET_ADMIN | CapabilitySet::KILL
        );
        assert_eq!(caps(&["ALL"], &["CHOWN"]), all - CapabilitySet::CHOWN);
        assert_eq!(caps(&["ALL", "KILL"], &["ALL"]), CapabilitySet::KILL);
        assert_eq!(caps(&["KILL"], &["KILL"]), CapabilitySet::empty());
        let privileged = SecurityConfig {
            privileged: true,
            ..sc(&[], &["ALL"])
        };
        assert_eq!(privileged.capabilities(all).unwrap(), None);
        assert_eq!(
            sc(&["NET_FOO"], &[]).capabilities(all),
            Err(UnknownCapability("NET_FOO".into()))
        );
        assert!(parse_capability("_").is_err());
    }

    #[test]
    fn a_non_root_runtime_names_what_it_cannot_give() {
        assert!(SecurityConfig::default().needs_root(1000, 1000).is_empty());
        let own = SecurityConfig {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            no_new_privs: true,
            ..Default::default()
        };
        assert!(own.needs_root(1000, 1000).is_empty());
        let more = SecurityConfig {
            run_as_user: Some(0),
            read_only_root_filesystem: true,
            capabilities_add: vec!["KILL".into()],
            ..Default::default()
        };
        assert_eq!(
            more.needs_root(1000, 1000),
            ["runAsUser", "capabilities.add", "readOnlyRootFilesystem"]
        );
    }
}
