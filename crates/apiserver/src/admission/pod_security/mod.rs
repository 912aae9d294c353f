//! PodSecurity: Kubernetes' Pod Security admission. Each namespace enforces, audits and
//! warns about a Pod Security Standards level (its `pod-security.kubernetes.io/*` labels,
//! or the configured default); pods that violate the enforced level are refused, workloads
//! with pod templates only draw warnings, and namespace labels must name a level.
//!
//! - [`policy`]: levels and a namespace's policy;
//! - [`checks`]: the check table and [`evaluate`], with the checks in `baseline` and
//!   `restricted`;
//! - `namespace`: label validation and the warnings about existing pods when the enforced
//!   level tightens.

mod baseline;
mod checks;
mod namespace;
mod policy;
mod restricted;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use raft_store::Store;
use serde_json::Value;

use super::{warn, AdmissionRequest, Operation, ValidatingAdmission};
use crate::cache::WatchCache;
use crate::error::{Error, Result};
use crate::registry::ResourceType;
use checks::{describe, evaluate};
pub use policy::Level;
use policy::NamespacePolicy;

/// Pod subresources whose requests cannot change what a pod runs.
const IGNORED_POD_SUBRESOURCES: &[&str] = &[
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

pub struct PodSecurity {
    pub cache: Arc<WatchCache>,
    pub store: Store,
    /// The level enforced in namespaces without an enforce label (but the system ones).
    pub default_level: Level,
}

impl PodSecurity {
    /// The policy of `namespace`; a namespace missing even from a fresh cache has the
    /// defaults.
    async fn policy(&self, namespace: &str) -> Result<NamespacePolicy> {
        let key = super::namespace_lifecycle::namespace_key(namespace);
        let ns = match self.cache.get(&key) {
            Some(ns) => Some(ns),
            None => {
                // The namespace may be newer than this member's cache.
                self.cache.wait_fresh(&self.store).await?;
                self.cache.get(&key)
            }
        };
        let ns = match ns {
            Some(ns) => ns.value()?,
            None => Value::Null,
        };
        let (policy, errs) =
            policy::namespace_policy(namespace, &ns["metadata"]["labels"], self.default_level);
        if !errs.is_empty() {
            tracing::warn!(namespace, errors = ?errs, "PodSecurity: invalid namespace labels");
        }
        Ok(policy)
    }

    async fn validate_pod(&self, req: &AdmissionRequest<'_>, pod: &Value) -> Result<()> {
        if IGNORED_POD_SUBRESOURCES.contains(&req.subresource) {
            return Ok(());
        }
        if let (Operation::Update, Some(old)) = (req.op, req.old) {
            if !significant_update(pod, old) {
                return Ok(());
            }
        }
        let policy = self.policy(req.namespace).await?;
        if policy.all_privileged() {
            return Ok(());
        }
        let (meta, spec) = (&pod["metadata"], &pod["spec"]);
        let name = match req.name {
            "" => meta["name"].as_str().unwrap_or(""),
            name => name,
        };
        let warning = admit_pod(&policy, name, meta, spec)?;
        audit(req, policy.audit, meta, spec);
        if let Some(w) = warning {
            warn(w);
        }
        Ok(())
    }

    async fn validate_template(&self, req: &AdmissionRequest<'_>, template: &Value) -> Result<()> {
        if !req.subresource.is_empty() {
            return Ok(());
        }
        let policy = self.policy(req.namespace).await?;
        let (meta, spec) = (&template["metadata"], &template["spec"]);
        audit(req, policy.audit, meta, spec);
        if let Some(w) = template_warning(&policy, meta, spec) {
            warn(w);
        }
        Ok(())
    }
}

#[async_trait]
impl ValidatingAdmission for PodSecurity {
    fn name(&self) -> &'static str {
        "PodSecurity"
    }

    async fn validate(&self, req: &AdmissionRequest<'_>, obj: &Value) -> Result<()> {
        if !matches!(req.op, Operation::Create | Operation::Update) {
            return Ok(());
        }
        let rt = req.rt;
        if rt.group.is_empty() && rt.kind == "Namespace" {
            // Status and finalize updates cannot change labels.
            if !req.subresource.is_empty() {
                return Ok(());
            }
            return namespace::validate(self, req, obj);
        }
        if rt.group.is_empty() && rt.kind == "Pod" {
            return self.validate_pod(req, obj).await;
        }
        match pod_template(rt, obj) {
            Some(template) => self.validate_template(req, template).await,
            None => Ok(()),
        }
    }
}

/// The pod template of a workload kind; `None` for other kinds, or when it has none.
fn pod_template<'a>(rt: &ResourceType, obj: &'a Value) -> Option<&'a Value> {
    let template = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet")
        | ("batch", "Job") => &obj["spec"]["template"],
        ("batch", "CronJob") => &obj["spec"]["jobTemplate"]["spec"]["template"],
        ("", "PodTemplate") => &obj["template"],
        _ => return None,
    };
    (!template.is_null()).then_some(template)
}

/// Whether a pod update can change what the pod runs, as Kubernetes decides it: its
/// containers, their images, seccomp annotations, or a new ephemeral container. Other pod
/// fields the update may change do not bear on the standards.
fn significant_update(pod: &Value, old: &Value) -> bool {
    fn annotation<'a>(p: &'a Value, key: &str) -> &'a Value {
        &p["metadata"]["annotations"][key]
    }
    fn list<'a>(p: &'a Value, l: &str) -> &'a [Value] {
        p["spec"][l].as_array().map_or(&[], Vec::as_slice)
    }
    if annotation(pod, "seccomp.security.alpha.kubernetes.io/pod")
        != annotation(old, "seccomp.security.alpha.kubernetes.io/pod")
    {
        return true;
    }
    let container_changed = |c: &Value, o: &Value| {
        let key = format!(
            "container.seccomp.security.alpha.kubernetes.io/{}",
            c["name"].as_str().unwrap_or("")
        );
        c["image"] != o["image"] || annotation(pod, &key) != annotation(old, &key)
    };
    for l in ["containers", "initContainers"] {
        let (new, prev) = (list(pod, l), list(old, l));
        if new.len() != prev.len() || new.iter().zip(prev).any(|(c, o)| container_changed(c, o)) {
            return true;
        }
    }
    let prev = list(old, "ephemeralContainers");
    list(pod, "ephemeralContainers").iter().any(|c| {
        match prev.iter().find(|o| o["name"] == c["name"]) {
            None => true,
            Some(o) => container_changed(c, o),
        }
    })
}

/// Records (in the log, for want of audit annotations) what violates the audited level.
fn audit(req: &AdmissionRequest<'_>, level: Level, meta: &Value, spec: &Value) {
    let violations = evaluate(level, meta, spec);
    if !violations.is_empty() {
        tracing::info!(
            namespace = req.namespace,
            name = req.name,
            kind = %req.rt.kind,
            "would violate PodSecurity {:?}: {}",
            level.versioned(),
            describe(&violations)
        );
    }
}

/// The pod `name` under `policy`: refused when it violates the enforced level, else the
/// warning about the warn level, if it violates that.
fn admit_pod(
    policy: &NamespacePolicy,
    name: &str,
    meta: &Value,
    spec: &Value,
) -> Result<Option<String>> {
    let violations = evaluate(policy.enforce, meta, spec);
    if !violations.is_empty() {
        return Err(Error::Forbidden(format!(
            "pods {name:?} is forbidden: violates PodSecurity {:?}: {}",
            policy.enforce.versioned(),
            describe(&violations)
        )));
    }
    // What passes the enforced level passes every level below it.
    if policy.warn <= policy.enforce {
        return Ok(None);
    }
    Ok(violation_warning(policy.warn, meta, spec))
}

/// Workloads are never refused: what their pods would be refused for, or warned about,
/// is a warning.
fn template_warning(policy: &NamespacePolicy, meta: &Value, spec: &Value) -> Option<String> {
    violation_warning(policy.warn.max(policy.enforce), meta, spec)
}

fn violation_warning(level: Level, meta: &Value, spec: &Value) -> Option<String> {
    let violations = evaluate(level, meta, spec);
    (!violations.is_empty()).then(|| {
        format!(
            "would violate PodSecurity {:?}: {}",
            level.versioned(),
            describe(&violations)
        )
    })
}

#[cfg(test)]
mod plugin_tests {
    use serde_json::json;

    use super::*;
    use crate::registry::Registry;

    fn policy(enforce: Level, warn: Level) -> NamespacePolicy {
        NamespacePolicy {
            enforce,
            audit: Level::Privileged,
            warn,
        }
    }

    #[test]
    fn pods_violating_the_enforced_level_are_refused_in_kubernetes_words() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "securityContext": {"privileged": true, "allowPrivilegeEscalation": false,
              "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}},
        ]}});
        let (meta, spec) = (&pod["metadata"], &pod["spec"]);
        let err = admit_pod(
            &policy(Level::Restricted, Level::Restricted),
            "p",
            meta,
            spec,
        )
        .expect_err("privileged is refused");
        assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            r#"pods "p" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true)"#
        );
        let warning = admit_pod(&policy(Level::Privileged, Level::Baseline), "p", meta, spec)
            .expect("privileged enforces nothing");
        assert_eq!(
            warning.as_deref(),
            Some(
                r#"would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#
            )
        );
        let plain = json!({"containers": [{"name": "c"}]});
        let ok = admit_pod(
            &policy(Level::Baseline, Level::Privileged),
            "p",
            &Value::Null,
            &plain,
        );
        assert_eq!(ok.ok(), Some(None));
    }

    #[test]
    fn workloads_draw_warnings_for_the_stricter_of_enforce_and_warn() {
        let spec = json!({"hostPID": true, "containers": [{"name": "c"}]});
        let warning = template_warning(
            &policy(Level::Baseline, Level::Privileged),
            &Value::Null,
            &spec,
        );
        assert_eq!(
            warning.as_deref(),
            Some(r#"would violate PodSecurity "baseline:latest": host namespaces (hostPID)"#)
        );
        let warning = template_warning(
            &policy(Level::Baseline, Level::Restricted),
            &Value::Null,
            &spec,
        );
        assert!(warning.is_some_and(|w| w.starts_with(
            r#"would violate PodSecurity "restricted:latest": host namespaces (hostPID), allowPrivilegeEscalation != false"#
        )));
        let none = template_warning(
            &policy(Level::Privileged, Level::Privileged),
            &Value::Null,
            &spec,
        );
        assert_eq!(none, None);
    }

    #[test]
    fn finds_the_pod_template_of_workload_kinds() {
        let registry = Registry::with_builtins();
        let template = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}});
        let with_template = json!({"spec": {"template": template}});
        for (api_version, kind) in [
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("apps/v1", "DaemonSet"),
            ("apps/v1", "StatefulSet"),
            ("batch/v1", "Job"),
            ("v1", "ReplicationController"),
        ] {
            let rt = registry.get(api_version, kind).expect("builtin kind");
            assert_eq!(pod_template(&rt, &with_template), Some(&template), "{kind}");
        }
        let rt = registry.get("batch/v1", "CronJob").expect("builtin kind");
        let cronjob = json!({"spec": {"jobTemplate": {"spec": {"template": template}}}});
        assert_eq!(pod_template(&rt, &cronjob), Some(&template));
        assert_eq!(pod_template(&rt, &with_template), None);
        let rt = registry.get("v1", "ConfigMap").expect("builtin kind");
        assert_eq!(pod_template(&rt, &with_template), None);
    }

    #[test]
    fn only_updates_that_change_what_runs_are_evaluated() {
        let old = json!({
            "metadata": {"name": "p", "labels": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "app:1"}], "ephemeralContainers": [{"name": "e", "image": "dbg:1"}]},
            "status": {"phase": "Pending"},
        });
        let changed = |patch: &dyn Fn(&mut Value)| {
            let mut pod = old.clone();
            patch(&mut pod);
            significant_update(&pod, &old)
        };
        assert!(!changed(&|_| {}));
        assert!(!changed(&|p| p["metadata"]["labels"]["a"] = json!("2")));
        assert!(!changed(&|p| p["status"]["phase"] = json!("Running")));
        assert!(!changed(&|p| p["spec"]["activeDeadlineSeconds"] = json!(5)));
        assert!(changed(
            &|p| p["spec"]["containers"][0]["image"] = json!("app:2")
        ));
        assert!(changed(
            &|p| p["spec"]["initContainers"] = json!([{"name": "i"}])
        ));
        assert!(changed(&|p| {
            p["spec"]["ephemeralContainers"] =
                json!([{"name": "e", "image": "dbg:1"}, {"name": "f"}])
        }));
        assert!(changed(&|p| {
            p["metadata"]["annotations"] =
                json!({"container.seccomp.security.alpha.kubernetes.io/c": "unconfined"})
        }));
    }
}
