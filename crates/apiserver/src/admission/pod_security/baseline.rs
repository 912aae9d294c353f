//! The baseline checks of the Pod Security Standards: no host namespaces, privileged
//! containers, extra capabilities, hostPath volumes, host ports, probe or lifecycle hosts,
//! unconfined AppArmor or seccomp, custom SELinux options, unmasked /proc, unsafe sysctls
//! or Windows HostProcess. Reasons and details are Kubernetes' texts.

use serde_json::Value;

use super::checks::{
    containers_phrase, is_true, items, join_quote, pluralize, setters, text, Pod, Values, Violation,
};

/// Capabilities containers may add at baseline.
const ALLOWED_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls namespaced to the pod and isolated from other pods.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// `RuntimeDefault` or `Localhost`, the profile types AppArmor and seccomp allow.
pub(super) fn confined(profile: &Value) -> bool {
    matches!(
        profile["type"].as_str(),
        Some("RuntimeDefault" | "Localhost")
    )
}

pub(super) fn app_armor_profile(pod: &Pod<'_>) -> Option<Violation> {
    let mut values = Values::new();
    let mut bad = |profile: &Value| {
        let forbidden = !profile.is_null() && !confined(profile);
        if forbidden {
            values.insert(text(&profile["type"]));
        }
        forbidden
    };
    let pod_bad = bad(&pod.security_context()["appArmorProfile"]);
    let containers = pod.containers_where(|c| bad(&c.security_context()["appArmorProfile"]));
    let mut who = setters(pod_bad, &containers);
    let mut annotations: Vec<String> = pod
        .annotations()
        .filter(|(k, v)| {
            k.starts_with(APPARMOR_ANNOTATION_PREFIX)
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    annotations.sort();
    let mut bad_values: Vec<String> = values.into_iter().collect();
    if !annotations.is_empty() {
        who.push(pluralize("annotation", "annotations", annotations.len()).to_string());
        bad_values.extend(annotations);
    }
    if who.is_empty() {
        return None;
    }
    Some(Violation::new(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad_values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            who.join(" and "),
            join_quote(&bad_values)
        ),
    ))
}

pub(super) fn capabilities(pod: &Pod<'_>) -> Option<Violation> {
    let mut added = Values::new();
    let containers = pod.containers_where(|c| {
        let mut bad = false;
        for cap in items(&c.security_context()["capabilities"]["add"]) {
            let cap = text(cap);
            if !ALLOWED_CAPABILITIES.contains(&cap.as_str()) {
                bad = true;
                added.insert(cap);
            }
        }
        bad
    });
    (!containers.is_empty()).then(|| {
        Violation::new(
            "non-default capabilities",
            format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers_phrase(&containers),
                join_quote(&added)
            ),
        )
    })
}

pub(super) fn host_namespaces(pod: &Pod<'_>) -> Option<Violation> {
    let shared: Vec<&str> = ["hostIPC", "hostNetwork", "hostPID"]
        .into_iter()
        .filter(|f| is_true(&pod.spec[*f]))
        .collect();
    (!shared.is_empty()).then(|| Violation::new("host namespaces", shared.join(", ")))
}

pub(super) fn host_path_volumes(pod: &Pod<'_>) -> Option<Violation> {
    let volumes: Vec<&str> = items(&pod.spec["volumes"])
        .filter(|v| !v["hostPath"].is_null())
        .map(|v| v["name"].as_str().unwrap_or(""))
        .collect();
    (!volumes.is_empty()).then(|| {
        Violation::new(
            "hostPath volumes",
            format!(
                "{} {}",
                pluralize("volume", "volumes", volumes.len()),
                join_quote(&volumes)
            ),
        )
    })
}

pub(super) fn host_ports(pod: &Pod<'_>) -> Option<Violation> {
    let mut ports = Values::new();
    let containers = pod.containers_where(|c| {
        let mut bad = false;
        for port in items(&c.value["ports"]) {
            let host_port = &port["hostPort"];
            if !host_port.is_null() && host_port.as_f64() != Some(0.0) {
                bad = true;
                ports.insert(text(host_port));
            }
        }
        bad
    });
    (!containers.is_empty()).then(|| {
        Violation::new(
            "hostPort",
            format!(
                "{} {} {} {}",
                containers_phrase(&containers),
                pluralize("uses", "use", containers.len()),
                pluralize("hostPort", "hostPorts", ports.len()),
                ports.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

pub(super) fn host_probes(pod: &Pod<'_>) -> Option<Violation> {
    let mut containers = Values::new();
    let mut hosts = Values::new();
    for c in pod.containers() {
        let lifecycle = &c.value["lifecycle"];
        let handlers = [
            &c.value["livenessProbe"],
            &c.value["readinessProbe"],
            &c.value["startupProbe"],
            &lifecycle["postStart"],
            &lifecycle["preStop"],
        ];
        for h in handlers {
            for host in [&h["httpGet"]["host"], &h["tcpSocket"]["host"]] {
                let host = text(host);
                if !host.is_empty() {
                    containers.insert(c.name.to_string());
                    hosts.insert(host);
                }
            }
        }
    }
    (!containers.is_empty()).then(|| {
        Violation::new(
            "probe or lifecycle host",
            format!(
                "{} {} {} {} {}",
                pluralize("container", "containers", containers.len()),
                join_quote(&containers),
                pluralize("uses", "use", containers.len()),
                pluralize(
                    "probe or lifecycle host",
                    "probe or lifecycle hosts",
                    hosts.len()
                ),
                join_quote(&hosts)
            ),
        )
    })
}

pub(super) fn privileged(pod: &Pod<'_>) -> Option<Violation> {
    let containers = pod.containers_where(|c| is_true(&c.security_context()["privileged"]));
    (!containers.is_empty()).then(|| {
        Violation::new(
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                containers_phrase(&containers)
            ),
        )
    })
}

/// Baseline allows any /proc mount type in a user namespace.
pub(super) fn proc_mount(pod: &Pod<'_>) -> Option<Violation> {
    if pod.in_user_namespace() {
        return None;
    }
    proc_mount_default_only(pod)
}

/// No container may set a /proc mount type other than `Default`.
pub(super) fn proc_mount_default_only(pod: &Pod<'_>) -> Option<Violation> {
    let mut types = Values::new();
    let containers = pod.containers_where(|c| {
        let mount = &c.security_context()["procMount"];
        let bad = !mount.is_null() && mount.as_str() != Some("Default");
        if bad {
            types.insert(text(mount));
        }
        bad
    });
    (!containers.is_empty()).then(|| {
        Violation::new(
            "procMount",
            format!(
                "{} must not set securityContext.procMount to {}",
                containers_phrase(&containers),
                join_quote(&types)
            ),
        )
    })
}

pub(super) fn se_linux_options(pod: &Pod<'_>) -> Option<Violation> {
    let mut types = Values::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut bad = |opts: &Value| {
        if opts.is_null() {
            return false;
        }
        let mut bad = false;
        let kind = text(&opts["type"]);
        if !SELINUX_TYPES.contains(&kind.as_str()) {
            bad = true;
            types.insert(kind);
        }
        if !text(&opts["user"]).is_empty() {
            bad = true;
            set_user = true;
        }
        if !text(&opts["role"]).is_empty() {
            bad = true;
            set_role = true;
        }
        bad
    };
    let pod_bad = bad(&pod.security_context()["seLinuxOptions"]);
    let containers = pod.containers_where(|c| bad(&c.security_context()["seLinuxOptions"]));
    let who = setters(pod_bad, &containers);
    if who.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    Some(Violation::new(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            who.join(" and "),
            data.join("; ")
        ),
    ))
}

/// Explicitly set seccomp profiles must be confined. Shared with restricted, which also
/// requires them to be set.
pub(super) fn seccomp_explicitly_bad(pod: &Pod<'_>) -> Option<Violation> {
    let mut values = Values::new();
    let mut bad = |profile: &Value| {
        let forbidden = !profile.is_null() && !confined(profile);
        if forbidden {
            values.insert(text(&profile["type"]));
        }
        forbidden
    };
    let pod_bad = bad(&pod.security_context()["seccompProfile"]);
    let containers = pod.containers_where(|c| bad(&c.security_context()["seccompProfile"]));
    let who = setters(pod_bad, &containers);
    (!who.is_empty()).then(|| {
        Violation::new(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                who.join(" and "),
                join_quote(&values)
            ),
        )
    })
}

pub(super) fn seccomp_profile(pod: &Pod<'_>) -> Option<Violation> {
    seccomp_explicitly_bad(pod)
}

pub(super) fn sysctls(pod: &Pod<'_>) -> Option<Violation> {
    let forbidden: Vec<String> = items(&pod.security_context()["sysctls"])
        .map(|s| text(&s["name"]))
        .filter(|name| !SAFE_SYSCTLS.contains(&name.as_str()))
        .collect();
    (!forbidden.is_empty()).then(|| Violation::new("forbidden sysctls", forbidden.join(", ")))
}

pub(super) fn windows_host_process(pod: &Pod<'_>) -> Option<Violation> {
    let host_process = |sc: &Value| is_true(&sc["windowsOptions"]["hostProcess"]);
    let pod_bad = host_process(pod.security_context());
    let containers = pod.containers_where(|c| host_process(c.security_context()));
    let who = setters(pod_bad, &containers);
    (!who.is_empty()).then(|| {
        Violation::new(
            "hostProcess",
            format!(
                "{} must not set securityContext.windowsOptions.hostProcess=true",
                who.join(" and ")
            ),
        )
    })
}
