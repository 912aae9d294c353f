//! Namespaces under PodSecurity: their level labels must name a level, and tightening the
//! enforced level warns about the namespace's existing pods that would be refused by it.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::checks::{evaluate, reasons};
use super::policy::{namespace_policy, Level};
use super::PodSecurity;
use crate::admission::{warn, AdmissionRequest, Operation};
use crate::error::{Error, Result};

/// At most this many existing pods are evaluated when the enforced level tightens.
pub(super) const MAX_PODS_TO_CHECK: usize = 3000;

pub(super) fn validate(ps: &PodSecurity, req: &AdmissionRequest<'_>, ns: &Value) -> Result<()> {
    let name = match req.name {
        "" => ns["metadata"]["name"].as_str().unwrap_or(""),
        name => name,
    };
    let old = match req.op {
        Operation::Update => req.old,
        _ => None,
    };
    let Some(level) = check_labels(name, ns, old, ps.default_level)? else {
        return Ok(());
    };
    let prefix = format!("/registry/core/pods/{name}/");
    let (_, cached) = ps.cache.list(&prefix, None);
    let pods: Vec<Value> = cached.iter().filter_map(|c| c.value().ok()).collect();
    for w in existing_pod_warnings(name, level, &pods, MAX_PODS_TO_CHECK) {
        warn(w);
    }
    Ok(())
}

/// Refuses level labels that name no level, unless an update leaves them as invalid as
/// they were. Returns the new enforced level when an update (`old` is the namespace
/// before it) makes it stricter.
pub(super) fn check_labels(
    name: &str,
    ns: &Value,
    old: Option<&Value>,
    default_level: Level,
) -> Result<Option<Level>> {
    let (policy, errs) = namespace_policy(name, &ns["metadata"]["labels"], default_level);
    let old = old.map(|o| namespace_policy(name, &o["metadata"]["labels"], default_level));
    let unchanged_errors = old
        .as_ref()
        .is_some_and(|(_, old_errs)| !old_errs.is_empty() && *old_errs == errs);
    if !errs.is_empty() && !unchanged_errors {
        return Err(Error::invalid("Namespace", name, errs));
    }
    // Only a stricter enforced level can newly refuse pods that already run.
    Ok(old
        .filter(|(old_policy, _)| policy.enforce > old_policy.enforce)
        .map(|_| policy.enforce))
}

/// Kubernetes' warnings about `pods` that violate `level`: one line per distinct set of
/// reasons, naming the lexically first pod and how many others share it. Pods of distinct
/// controllers are looked at first; at most `max` pods are evaluated.
pub(super) fn existing_pod_warnings(
    namespace: &str,
    level: Level,
    pods: &[Value],
    max: usize,
) -> Vec<String> {
    let prioritized = prioritize(pods);
    let total = prioritized.len();
    // Reasons → (first pod name, pod count).
    let mut groups: BTreeMap<String, (&str, usize)> = BTreeMap::new();
    for pod in prioritized.iter().take(max) {
        let violations = evaluate(level, &pod["metadata"], &pod["spec"]);
        if violations.is_empty() {
            continue;
        }
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let group = groups.entry(reasons(&violations)).or_insert((name, 0));
        if name < group.0 {
            group.0 = name;
        }
        group.1 += 1;
    }
    let mut warnings = Vec::new();
    if total > max {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {max} of {total} existing pods"
        ));
    }
    if !groups.is_empty() {
        warnings.push(format!(
            "existing pods in namespace {namespace:?} violate the new PodSecurity enforce level {:?}",
            level.versioned()
        ));
    }
    let mut lines: Vec<String> = groups
        .into_iter()
        .map(|(reasons, (pod, count))| match count {
            1 => format!("{pod}: {reasons}"),
            2 => format!("{pod} (and 1 other pod): {reasons}"),
            n => format!("{pod} (and {} other pods): {reasons}", n - 1),
        })
        .collect();
    lines.sort();
    warnings.extend(lines);
    warnings
}

/// The pods with no controller or the first of their controller, then the other replicas.
fn prioritize(pods: &[Value]) -> Vec<&Value> {
    let mut seen = HashSet::new();
    let (mut first, mut replicas) = (Vec::new(), Vec::new());
    for pod in pods {
        let controller = pod["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["controller"] == Value::Bool(true))
            .map(|r| r["uid"].as_str().unwrap_or(""));
        match controller {
            Some(uid) if !seen.insert(uid) => replicas.push(pod),
            _ => first.push(pod),
        }
    }
    first.extend(replicas);
    first
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, privileged: bool, controller: Option<&str>) -> Value {
        let owners: Vec<Value> = controller
            .map(|uid| json!({"kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}))
            .into_iter()
            .collect();
        json!({
            "metadata": {"name": name, "ownerReferences": owners},
            "spec": {"containers": [{"name": "c", "securityContext": {"privileged": privileged}}]},
        })
    }

    fn ns(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    #[test]
    fn invalid_labels_are_refused_unless_unchanged() {
        let bad = ns(json!({"pod-security.kubernetes.io/warn": "loud"}));
        let err = check_labels("x", &bad, None, Level::Baseline).expect_err("invalid label");
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            r#"Namespace "x" is invalid: metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "loud": must be one of privileged, baseline, restricted"#
        );
        let relabeled = ns(json!({"pod-security.kubernetes.io/warn": "loud", "team": "a"}));
        assert_eq!(
            check_labels("x", &relabeled, Some(&bad), Level::Baseline).ok(),
            Some(None)
        );
        let worse = ns(json!({"pod-security.kubernetes.io/warn": "louder"}));
        assert!(check_labels("x", &worse, Some(&bad), Level::Baseline).is_err());
        let fixed = ns(json!({"pod-security.kubernetes.io/warn": "baseline"}));
        assert_eq!(
            check_labels("x", &fixed, Some(&bad), Level::Baseline).ok(),
            Some(None)
        );
    }

    #[test]
    fn only_a_stricter_enforce_level_checks_existing_pods() {
        let enforce = |level: &str| ns(json!({"pod-security.kubernetes.io/enforce": level}));
        let unlabeled = ns(json!({}));
        let cases = [
            (&unlabeled, enforce("restricted"), Some(Level::Restricted)),
            (&unlabeled, enforce("baseline"), None),
            (&unlabeled, enforce("privileged"), None),
        ];
        for (old, new, want) in cases {
            assert_eq!(
                check_labels("x", &new, Some(old), Level::Baseline).ok(),
                Some(want),
                "{new}"
            );
        }
        assert_eq!(
            check_labels("x", &enforce("restricted"), None, Level::Baseline).ok(),
            Some(None)
        );
        // kube-system defaults to privileged, so any level tightens it.
        let labeled =
            json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}});
        assert_eq!(
            check_labels("kube-system", &labeled, Some(&json!({})), Level::Restricted).ok(),
            Some(Some(Level::Baseline))
        );
    }

    #[test]
    fn groups_violating_pods_by_reasons() {
        let pods = vec![
            pod("web-b", true, Some("rs1")),
            pod("web-a", true, Some("rs1")),
            pod("web-c", true, Some("rs1")),
            pod("fine", false, None),
            pod("solo", false, None),
        ];
        let mut hostnet = pod("net", false, None);
        hostnet["spec"]["hostNetwork"] = json!(true);
        let mut all = pods.clone();
        all.push(hostnet);
        assert_eq!(
            existing_pod_warnings("x", Level::Baseline, &all, MAX_PODS_TO_CHECK),
            vec![
                r#"existing pods in namespace "x" violate the new PodSecurity enforce level "baseline:latest""#.to_string(),
                "net: host namespaces".to_string(),
                "web-a (and 2 other pods): privileged".to_string(),
            ]
        );
        let two = &all[..2];
        assert_eq!(
            existing_pod_warnings("x", Level::Baseline, two, MAX_PODS_TO_CHECK)[1],
            "web-a (and 1 other pod): privileged"
        );
        assert!(existing_pod_warnings("x", Level::Privileged, &all, MAX_PODS_TO_CHECK).is_empty());
        assert!(
            existing_pod_warnings("x", Level::Baseline, &all[3..5], MAX_PODS_TO_CHECK).is_empty()
        );
    }

    #[test]
    fn checks_a_bounded_number_of_pods_distinct_controllers_first() {
        // Three replicas of one controller, then a lone violating pod: with room for two,
        // the lone pod is still looked at.
        let pods = vec![
            pod("a", false, Some("rs1")),
            pod("b", false, Some("rs1")),
            pod("c", false, Some("rs1")),
            pod("z", true, None),
        ];
        let warnings = existing_pod_warnings("x", Level::Baseline, &pods, 2);
        assert_eq!(
            warnings,
            vec![
                "new PodSecurity enforce level only checked against the first 2 of 4 existing pods"
                    .to_string(),
                r#"existing pods in namespace "x" violate the new PodSecurity enforce level "baseline:latest""#.to_string(),
                "z: privileged".to_string(),
            ]
        );
    }
}
