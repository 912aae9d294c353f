//! The restricted checks of the Pod Security Standards, on top of baseline: no privilege
//! escalation, all capabilities dropped, only ephemeral-style volume types, non-root users,
//! and a confined seccomp profile on every container. Reasons and details are Kubernetes'
//! texts, including its exemptions (Windows pods, user-namespace pods).

use serde_json::Value;

use super::baseline::{confined, seccomp_explicitly_bad};
use super::checks::{containers_phrase, items, join_quote, pluralize, setters, text, Pod};
use super::checks::{Values, Violation};

/// Volume sources restricted pods may use.
const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The volume sources Kubernetes names when refusing one, in the order it looks.
const NAMED_VOLUMES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

pub(super) fn allow_privilege_escalation(pod: &Pod<'_>) -> Option<Violation> {
    if pod.is_windows() {
        return None;
    }
    let containers = pod.containers_where(|c| {
        c.security_context()["allowPrivilegeEscalation"] != Value::Bool(false)
    });
    (!containers.is_empty()).then(|| {
        Violation::new(
            "allowPrivilegeEscalation != false",
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                containers_phrase(&containers)
            ),
        )
    })
}

pub(super) fn capabilities(pod: &Pod<'_>) -> Option<Violation> {
    if pod.is_windows() {
        return None;
    }
    let (mut missing_drop_all, mut adding) = (Vec::new(), Vec::new());
    let mut forbidden = Values::new();
    for c in pod.containers() {
        let caps = &c.security_context()["capabilities"];
        if caps.is_null() {
            missing_drop_all.push(c.name);
            continue;
        }
        if !items(&caps["drop"]).any(|d| d.as_str() == Some("ALL")) {
            missing_drop_all.push(c.name);
        }
        let mut bad = false;
        for cap in items(&caps["add"]) {
            if cap.as_str() != Some("NET_BIND_SERVICE") {
                bad = true;
                forbidden.insert(text(cap));
            }
        }
        if bad {
            adding.push(c.name);
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop_all)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&forbidden)
        ));
    }
    (!details.is_empty()).then(|| Violation::new("unrestricted capabilities", details.join("; ")))
}

pub(super) fn volumes(pod: &Pod<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut kinds = Values::new();
    for v in items(&pod.spec["volumes"]) {
        if ALLOWED_VOLUMES.iter().any(|k| !v[*k].is_null()) {
            continue;
        }
        names.push(v["name"].as_str().unwrap_or(""));
        let kind = NAMED_VOLUMES.iter().find(|k| !v[**k].is_null());
        kinds.insert(kind.copied().unwrap_or("unknown").to_string());
    }
    (!names.is_empty()).then(|| {
        Violation::new(
            "restricted volume types",
            format!(
                "{} {} {} {} {}",
                pluralize("volume", "volumes", names.len()),
                join_quote(&names),
                pluralize("uses", "use", names.len()),
                pluralize(
                    "restricted volume type",
                    "restricted volume types",
                    kinds.len()
                ),
                join_quote(&kinds)
            ),
        )
    })
}

pub(super) fn run_as_non_root(pod: &Pod<'_>) -> Option<Violation> {
    if pod.in_user_namespace() {
        return None;
    }
    let pod_value = &pod.security_context()["runAsNonRoot"];
    let pod_bad = !pod_value.is_null() && pod_value.as_bool() != Some(true);
    let pod_non_root = pod_value.as_bool() == Some(true);
    let mut implicit = Vec::new();
    let explicit = pod.containers_where(|c| {
        let v = &c.security_context()["runAsNonRoot"];
        if v.is_null() {
            if !pod_non_root {
                implicit.push(c.name);
            }
            return false;
        }
        v.as_bool() != Some(true)
    });
    let who = setters(pod_bad, &explicit);
    if !who.is_empty() {
        return Some(Violation::new(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                who.join(" and ")
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        Violation::new(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicit)
            ),
        )
    })
}

pub(super) fn run_as_user(pod: &Pod<'_>) -> Option<Violation> {
    if pod.in_user_namespace() {
        return None;
    }
    let root = |sc: &Value| sc["runAsUser"].as_f64() == Some(0.0);
    let pod_bad = root(pod.security_context());
    let containers = pod.containers_where(|c| root(c.security_context()));
    let who = setters(pod_bad, &containers);
    (!who.is_empty()).then(|| {
        Violation::new(
            "runAsUser=0",
            format!("{} must not set runAsUser=0", who.join(" and ")),
        )
    })
}

pub(super) fn seccomp_profile(pod: &Pod<'_>) -> Option<Violation> {
    if pod.is_windows() {
        return None;
    }
    if let Some(v) = seccomp_explicitly_bad(pod) {
        return Some(v);
    }
    // Only containers that leave it unset remain; a confined pod-level profile covers them.
    if confined(&pod.security_context()["seccompProfile"]) {
        return None;
    }
    let unset = pod.containers_where(|c| c.security_context()["seccompProfile"].is_null());
    (!unset.is_empty()).then(|| {
        Violation::new(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&unset)
            ),
        )
    })
}
