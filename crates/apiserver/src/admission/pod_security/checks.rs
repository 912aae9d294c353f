//! The Pod Security Standards as a table of checks over a pod's metadata and spec (JSON),
//! each reporting Kubernetes' reason and detail texts, and [`evaluate`], which runs the
//! checks of a level in Kubernetes' order.
//!
//! The table follows Kubernetes' `latest` policy: baseline checks sorted by their ID, then
//! restricted ones; at restricted, a restricted check replaces the baseline checks it
//! overrides.

use std::collections::BTreeSet;

use serde_json::Value;

use super::policy::Level;
use super::{baseline, restricted};
use Level::{Baseline, Restricted};

/// One failed check: Kubernetes' forbidden reason (`privileged`) and detail
/// (`container "c" must not set securityContext.privileged=true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

impl Violation {
    pub(super) fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Violation {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

type CheckFn = fn(&Pod<'_>) -> Option<Violation>;

struct Check {
    id: &'static str,
    level: Level,
    /// Baseline checks this restricted check replaces at the restricted level.
    overrides: &'static [&'static str],
    run: CheckFn,
}

const fn check(id: &'static str, level: Level, run: CheckFn) -> Check {
    Check {
        id,
        level,
        overrides: &[],
        run,
    }
}

const fn overriding(id: &'static str, overrides: &'static [&'static str], run: CheckFn) -> Check {
    Check {
        id,
        level: Level::Restricted,
        overrides,
        run,
    }
}

const CHECKS: &[Check] = &[
    check("appArmorProfile", Baseline, baseline::app_armor_profile),
    check("capabilities_baseline", Baseline, baseline::capabilities),
    check("hostNamespaces", Baseline, baseline::host_namespaces),
    check("hostPathVolumes", Baseline, baseline::host_path_volumes),
    check("hostPorts", Baseline, baseline::host_ports),
    check(
        "hostProbesAndHostLifecycle",
        Baseline,
        baseline::host_probes,
    ),
    check("privileged", Baseline, baseline::privileged),
    check("procMount", Baseline, baseline::proc_mount),
    check("seLinuxOptions", Baseline, baseline::se_linux_options),
    check(
        "seccompProfile_baseline",
        Baseline,
        baseline::seccomp_profile,
    ),
    check("sysctls", Baseline, baseline::sysctls),
    check(
        "windowsHostProcess",
        Baseline,
        baseline::windows_host_process,
    ),
    check(
        "allowPrivilegeEscalation",
        Restricted,
        restricted::allow_privilege_escalation,
    ),
    overriding(
        "capabilities_restricted",
        &["capabilities_baseline"],
        restricted::capabilities,
    ),
    overriding(
        "procMount_restricted",
        &["procMount"],
        baseline::proc_mount_default_only,
    ),
    overriding(
        "restrictedVolumes",
        &["hostPathVolumes"],
        restricted::volumes,
    ),
    check("runAsNonRoot", Restricted, restricted::run_as_non_root),
    check("runAsUser", Restricted, restricted::run_as_user),
    overriding(
        "seccompProfile_restricted",
        &["seccompProfile_baseline"],
        restricted::seccomp_profile,
    ),
];

/// The violations of the pod with `meta` (its `metadata`) and `spec` against `level`,
/// in Kubernetes' order; empty when the pod satisfies the level. Odd JSON never panics:
/// a field of the wrong type reads as unset, or as its JSON text where a value is shown.
pub fn evaluate(level: Level, meta: &Value, spec: &Value) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let pod = Pod { meta, spec };
    let overridden: Vec<&str> = CHECKS
        .iter()
        .filter(|c| c.level <= level)
        .flat_map(|c| c.overrides.iter().copied())
        .collect();
    CHECKS
        .iter()
        .filter(|c| c.level <= level && !overridden.contains(&c.id))
        .filter_map(|c| (c.run)(&pod))
        .collect()
}

/// Kubernetes' forbidden detail: `reason (detail), reason (detail), ...`.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Kubernetes' forbidden reasons alone: `reason, reason, ...`.
pub fn reasons(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| v.reason.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pod, or pod template, under evaluation.
pub(super) struct Pod<'a> {
    pub meta: &'a Value,
    pub spec: &'a Value,
}

/// One container of any kind, with its name.
pub(super) struct Container<'a> {
    pub name: &'a str,
    pub value: &'a Value,
}

impl<'a> Container<'a> {
    pub fn security_context(&self) -> &'a Value {
        &self.value["securityContext"]
    }
}

impl<'a> Pod<'a> {
    pub fn security_context(&self) -> &'a Value {
        &self.spec["securityContext"]
    }

    /// Init containers, containers, then ephemeral containers, as Kubernetes visits them.
    pub fn containers(&self) -> impl Iterator<Item = Container<'a>> {
        let spec = self.spec;
        ["initContainers", "containers", "ephemeralContainers"]
            .into_iter()
            .flat_map(move |list| items(&spec[list]))
            .map(|c| Container {
                name: c["name"].as_str().unwrap_or(""),
                value: c,
            })
    }

    /// The names of the containers `bad` holds for, in visiting order.
    pub fn containers_where(&self, mut bad: impl FnMut(&Container<'a>) -> bool) -> Vec<&'a str> {
        self.containers()
            .filter(|c| bad(c))
            .map(|c| c.name)
            .collect()
    }

    pub fn annotations(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.meta["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
    }

    /// Windows pods are exempt from the Linux-only restricted checks.
    pub fn is_windows(&self) -> bool {
        self.spec["os"]["name"].as_str() == Some("windows")
    }

    /// `hostUsers: false`: the pod runs in a user namespace.
    pub fn in_user_namespace(&self) -> bool {
        self.spec["hostUsers"] == Value::Bool(false)
    }
}

/// The elements of a JSON array; nothing for anything else.
pub(super) fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// A value as shown in a message: a string as is, null as empty, anything else as JSON.
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true)
}

pub(super) fn pluralize<'s>(singular: &'s str, plural: &'s str, count: usize) -> &'s str {
    if count == 1 {
        singular
    } else {
        plural
    }
}

/// `"a", "b"`, as Kubernetes' `joinQuote` (no escaping).
pub(super) fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `container "a"` or `containers "a", "b"`.
pub(super) fn containers_phrase<S: AsRef<str>>(names: &[S]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Who set a forbidden value: `pod`, the containers, or both (`pod and container "a"`).
pub(super) fn setters(pod: bool, containers: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    if pod {
        out.push("pod".to_string());
    }
    if !containers.is_empty() {
        out.push(containers_phrase(containers));
    }
    out
}

/// Sorted, deduplicated texts of values.
pub(super) type Values = BTreeSet<String>;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use Level::Privileged;

    #[test]
    fn checks_run_in_kubernetes_order() {
        for level in [Baseline, Restricted] {
            let ids: Vec<&str> = CHECKS
                .iter()
                .filter(|c| c.level == level)
                .map(|c| c.id)
                .collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            assert_eq!(ids, sorted, "{level} checks are sorted by ID");
        }
        let first_restricted = CHECKS.iter().position(|c| c.level == Restricted);
        assert!(CHECKS[first_restricted.unwrap_or(0)..]
            .iter()
            .all(|c| c.level == Restricted));
        for c in CHECKS {
            for o in c.overrides {
                assert!(
                    CHECKS.iter().any(|b| b.id == *o && b.level == Baseline),
                    "{} overrides unknown baseline check {o}",
                    c.id
                );
            }
        }
    }

    #[test]
    fn helpers_format_like_kubernetes() {
        assert_eq!(join_quote(["a", "b"]), r#""a", "b""#);
        assert_eq!(containers_phrase(&["a"]), r#"container "a""#);
        assert_eq!(containers_phrase(&["a", "b"]), r#"containers "a", "b""#);
        assert_eq!(
            setters(true, &["a"]).join(" and "),
            r#"pod and container "a""#
        );
        let v = [
            Violation::new("r1", "d1"),
            Violation::new("r2", ""),
            Violation::new("r3", "d3"),
        ];
        assert_eq!(describe(&v), "r1 (d1), r2, r3 (d3)");
        assert_eq!(reasons(&v), "r1, r2, r3");
    }

    #[test]
    fn odd_json_never_panics() {
        let odd = [
            json!(null),
            json!("pod"),
            json!({"spec": []}),
            json!({"metadata": {"annotations": ["x"]}, "spec": {"containers": {"name": "c"}}}),
            json!({"spec": {"containers": [null, 3, {"name": 7, "securityContext": [1], "ports": "80"}]}}),
            json!({"spec": {"securityContext": "x", "volumes": [null, {"name": ["v"]}], "hostUsers": "no"}}),
            json!({"spec": {"containers": [{"name": "c", "securityContext": {
                "capabilities": {"add": [1, null], "drop": "ALL"}, "procMount": 5,
                "seLinuxOptions": {"type": 3}, "runAsUser": "0", "privileged": "true",
            }}], "securityContext": {"sysctls": [{"name": 1}, "x"]}}}),
        ];
        for pod in odd {
            for level in [Privileged, Baseline, Restricted] {
                let _ = describe(&evaluate(level, &pod["metadata"], &pod["spec"]));
            }
        }
        // Values of the wrong type are shown as their JSON text.
        let pod =
            json!({"spec": {"containers": [{"name": "c", "securityContext": {"procMount": 5}}]}});
        assert_eq!(
            describe(&evaluate(Baseline, &pod["metadata"], &pod["spec"])),
            r#"procMount (container "c" must not set securityContext.procMount to "5")"#
        );
    }
}
