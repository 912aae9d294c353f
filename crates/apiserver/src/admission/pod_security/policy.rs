//! The Pod Security levels and a namespace's policy, read from its
//! `pod-security.kubernetes.io/{enforce,audit,warn}` labels as Kubernetes reads them.
//!
//! The `-version` labels are accepted with any value: rkube evaluates every level at
//! Kubernetes' `latest` policy version.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::error::FieldError;

pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const AUDIT_LABEL: &str = "pod-security.kubernetes.io/audit";
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";

/// Namespaces whose pods run the cluster itself: unlabeled, they enforce `privileged`.
pub const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

const LEVEL_VALUES: &str = "must be one of privileged, baseline, restricted";

/// A Pod Security Standards level, from the most to the least permissive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    /// The level and policy version as Kubernetes prints them: `restricted:latest`.
    pub fn versioned(self) -> String {
        format!("{}:latest", self.as_str())
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err(format!("invalid Pod Security level {s:?}: {LEVEL_VALUES}")),
        }
    }
}

/// The levels a namespace enforces, audits and warns about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespacePolicy {
    pub enforce: Level,
    pub audit: Level,
    pub warn: Level,
}

impl NamespacePolicy {
    pub fn all_privileged(&self) -> bool {
        self.enforce == Level::Privileged
            && self.audit == Level::Privileged
            && self.warn == Level::Privileged
    }
}

/// The policy of namespace `name` with `labels` (its `metadata.labels`), and one field
/// error per label whose value is not a level.
///
/// As in Kubernetes, an invalid enforce label enforces `restricted` (fail closed) and an
/// invalid audit or warn label is `privileged`; warn follows an explicitly labeled
/// enforce level that is stricter than it, unless warn is labeled too.
pub fn namespace_policy(
    name: &str,
    labels: &Value,
    default_level: Level,
) -> (NamespacePolicy, Vec<FieldError>) {
    let mut errs = Vec::new();
    let mut parse = |label: &str, invalid: Level| -> Option<(Level, bool)> {
        let v = labels.get(label)?;
        let text = v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        match text.parse::<Level>() {
            Ok(level) => Some((level, true)),
            Err(_) => {
                errs.push(FieldError::invalid(
                    format!("metadata.labels[{label}]"),
                    text,
                    LEVEL_VALUES,
                ));
                Some((invalid, false))
            }
        }
    };
    let default_enforce = if SYSTEM_NAMESPACES.contains(&name) {
        Level::Privileged
    } else {
        default_level
    };
    let enforce = parse(ENFORCE_LABEL, Level::Restricted);
    let audit = parse(AUDIT_LABEL, Level::Privileged);
    let warn = parse(WARN_LABEL, Level::Privileged);
    let mut policy = NamespacePolicy {
        enforce: enforce.map_or(default_enforce, |(l, _)| l),
        audit: audit.map_or(Level::Privileged, |(l, _)| l),
        warn: warn.map_or(Level::Privileged, |(l, _)| l),
    };
    let enforce_labeled = matches!(enforce, Some((_, true)));
    if warn.is_none() && enforce_labeled && policy.enforce > policy.warn {
        policy.warn = policy.enforce;
    }
    (policy, errs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(name: &str, labels: Value) -> (NamespacePolicy, Vec<String>) {
        let (p, errs) = namespace_policy(name, &labels, Level::Baseline);
        (p, errs.iter().map(|e| e.to_string()).collect())
    }

    fn levels(enforce: Level, audit: Level, warn: Level) -> NamespacePolicy {
        NamespacePolicy {
            enforce,
            audit,
            warn,
        }
    }

    #[test]
    fn parses_levels() {
        assert_eq!("privileged".parse(), Ok(Level::Privileged));
        assert_eq!("baseline".parse(), Ok(Level::Baseline));
        assert_eq!("restricted".parse(), Ok(Level::Restricted));
        for bad in ["", "Restricted", "strict", " baseline"] {
            let err = bad.parse::<Level>().unwrap_err();
            assert!(err.contains(LEVEL_VALUES), "{bad:?}: {err}");
        }
        assert!(Level::Privileged < Level::Baseline && Level::Baseline < Level::Restricted);
        assert_eq!(Level::Restricted.versioned(), "restricted:latest");
    }

    #[test]
    fn namespace_policies() {
        use Level::*;
        let cases = [
            (
                "plain",
                json!(null),
                levels(Baseline, Privileged, Privileged),
            ),
            ("plain", json!({}), levels(Baseline, Privileged, Privileged)),
            (
                "kube-system",
                json!({}),
                levels(Privileged, Privileged, Privileged),
            ),
            (
                "kube-public",
                json!(null),
                levels(Privileged, Privileged, Privileged),
            ),
            (
                "kube-node-lease",
                json!({}),
                levels(Privileged, Privileged, Privileged),
            ),
            (
                "kube-system",
                json!({ENFORCE_LABEL: "restricted"}),
                levels(Restricted, Privileged, Restricted),
            ),
            (
                "plain",
                json!({ENFORCE_LABEL: "privileged", WARN_LABEL: "restricted", AUDIT_LABEL: "baseline"}),
                levels(Privileged, Baseline, Restricted),
            ),
            // An explicit warn level is kept even when enforce is stricter.
            (
                "plain",
                json!({ENFORCE_LABEL: "restricted", WARN_LABEL: "baseline"}),
                levels(Restricted, Privileged, Baseline),
            ),
            (
                "plain",
                json!({ENFORCE_LABEL: "restricted", "pod-security.kubernetes.io/enforce-version": "v1.25"}),
                levels(Restricted, Privileged, Restricted),
            ),
        ];
        for (name, labels, want) in cases {
            let (got, errs) = policy(name, labels.clone());
            assert_eq!(got, want, "{name} {labels}");
            assert!(errs.is_empty(), "{name} {labels}: {errs:?}");
        }
    }

    #[test]
    fn invalid_labels_name_the_label_and_fail_closed_for_enforce_only() {
        let (p, errs) = policy(
            "plain",
            json!({ENFORCE_LABEL: "strict", WARN_LABEL: "loud", AUDIT_LABEL: 3}),
        );
        assert_eq!(
            p,
            levels(Level::Restricted, Level::Privileged, Level::Privileged)
        );
        assert_eq!(
            errs,
            vec![
                format!(
                    "metadata.labels[{ENFORCE_LABEL}]: Invalid value: \"strict\": {LEVEL_VALUES}"
                ),
                format!("metadata.labels[{AUDIT_LABEL}]: Invalid value: \"3\": {LEVEL_VALUES}"),
                format!("metadata.labels[{WARN_LABEL}]: Invalid value: \"loud\": {LEVEL_VALUES}"),
            ]
        );
        // An invalid enforce label is no explicit level for warn to follow.
        let (p, errs) = policy("kube-system", json!({ENFORCE_LABEL: "nope"}));
        assert_eq!(p.enforce, Level::Restricted);
        assert_eq!(p.warn, Level::Privileged);
        assert_eq!(errs.len(), 1);
    }
}
