//! Kubernetes' enumerated state as Rust enums, named as the API names them: pod phases,
//! condition statuses, event types and Job condition types. Compare these, not strings.

use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

macro_rules! api_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The name the API uses.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant)),+
                }
            }

            /// The variant the API names `s`, if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $(stringify!($variant) => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

api_enum!(
    /// `status.phase` of a Pod.
    PodPhase {
        Pending,
        Running,
        Succeeded,
        Failed,
        Unknown,
    }
);

impl PodPhase {
    /// The phase of `p`: Pending before the kubelet reports one, Unknown for a phase this
    /// version does not know.
    pub fn of(p: &Pod) -> PodPhase {
        match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
            None => PodPhase::Pending,
            Some(s) => PodPhase::parse(s).unwrap_or(PodPhase::Unknown),
        }
    }

    /// Succeeded or Failed: the pod's containers will not run again.
    pub fn is_finished(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

api_enum!(
    /// `status` of a condition.
    ConditionStatus { True, False, Unknown }
);

api_enum!(
    /// `type` of an Event.
    EventType { Normal, Warning }
);

api_enum!(
    /// `type` of a Job condition.
    JobConditionType {
        Complete,
        Failed,
        Suspended,
        FailureTarget,
        SuccessCriteriaMet,
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip_as_the_api_spells_them() {
        for p in [PodPhase::Pending, PodPhase::Succeeded, PodPhase::Unknown] {
            assert_eq!(PodPhase::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), json!(p.as_str()));
        }
        assert_eq!(EventType::Warning.to_string(), "Warning");
        assert_eq!(
            JobConditionType::parse("Complete"),
            Some(JobConditionType::Complete)
        );
        assert_eq!(
            ConditionStatus::parse("true"),
            None,
            "names are case-sensitive"
        );
    }

    #[test]
    fn a_pod_without_a_phase_is_pending_and_an_unknown_phase_is_unknown() {
        let pod = |phase: Option<&str>| -> Pod {
            serde_json::from_value(json!({"status": {"phase": phase}})).unwrap()
        };
        assert_eq!(PodPhase::of(&Pod::default()), PodPhase::Pending);
        assert_eq!(PodPhase::of(&pod(Some("Running"))), PodPhase::Running);
        assert_eq!(PodPhase::of(&pod(Some("Hibernating"))), PodPhase::Unknown);
        assert!(PodPhase::of(&pod(Some("Failed"))).is_finished());
    }
}
