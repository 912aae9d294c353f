//! A pod as the scheduler sees it: parsed once when it enters the cache or the queue.

use std::collections::BTreeSet;
use std::sync::Arc;

use client::reflector::ObjectKey;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rustc_hash::FxHashMap as HashMap;

use super::resources::{pod_requests, Resources};
use client::selectors::{selector_matches, Labels};

/// A host port a container asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct HostPort {
    pub protocol: String,
    /// "0.0.0.0" when unset.
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    pub(crate) fn conflicts(&self, o: &HostPort) -> bool {
        let any = |ip: &str| ip == "0.0.0.0" || ip.is_empty();
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || any(&self.ip) || any(&o.ip))
    }
}

/// A pod (anti-)affinity term, with the namespaces it selects resolved.
#[derive(Clone, Debug)]
pub(crate) struct AffinityTerm {
    /// `None` selects no pod.
    pub selector: Option<LabelSelector>,
    pub namespaces: BTreeSet<String>,
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
    /// Equal for equal terms, so the cache can count them once.
    pub identity: Arc<str>,
}

impl AffinityTerm {
    fn new(t: &PodAffinityTerm, own_namespace: &str) -> Self {
        let mut namespaces: BTreeSet<String> = t.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.insert(own_namespace.to_string());
        }
        AffinityTerm::from_parts(
            t.label_selector.clone(),
            namespaces,
            t.namespace_selector.clone(),
            t.topology_key.clone(),
        )
    }

    pub(crate) fn from_parts(
        selector: Option<LabelSelector>,
        namespaces: BTreeSet<String>,
        namespace_selector: Option<LabelSelector>,
        topology_key: String,
    ) -> Self {
        let identity =
            serde_json::to_string(&(&selector, &namespaces, &namespace_selector, &topology_key))
                .unwrap_or_default();
        AffinityTerm {
            selector,
            namespaces,
            namespace_selector,
            topology_key,
            identity: identity.into(),
        }
    }

    /// Whether the term selects `pod`; `namespaces` holds every namespace's labels.
    pub(crate) fn matches(&self, pod: &PodInfo, namespaces: &HashMap<String, Labels>) -> bool {
        let Some(sel) = &self.selector else {
            return false;
        };
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                namespaces
                    .get(&pod.namespace)
                    .is_some_and(|l| selector_matches(s, l))
            });
        ns_ok && selector_matches(sel, &pod.labels)
    }

    /// A label pair every pod this term selects carries, if its selector names one.
    pub(crate) fn required_label(&self) -> Option<(&String, &String)> {
        self.selector.as_ref()?.match_labels.as_ref()?.iter().next()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct WeightedTerm {
    pub weight: i32,
    pub term: AffinityTerm,
}

#[derive(Clone, Debug)]
pub(crate) struct PodInfo {
    pub pod: Arc<Pod>,
    pub key: ObjectKey,
    pub uid: String,
    pub namespace: String,
    pub labels: Labels,
    pub node_name: String,
    pub priority: i32,
    pub requests: Resources,
    /// Requests with unset cpu and memory counted at their defaults; for scoring.
    pub non_zero: Resources,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedTerm>,
    pub preferred_anti_affinity: Vec<WeightedTerm>,
    /// Seconds since the epoch; orders pods of equal priority.
    pub created: i64,
    pub terminating: bool,
}

impl PodInfo {
    /// `priority` is the resolved priority (from `spec.priority` or its PriorityClass).
    pub(crate) fn new(pod: Arc<Pod>, priority: i32) -> Self {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let (requests, non_zero) = pod_requests(&spec);
        let mut host_ports = Vec::new();
        for c in &spec.containers {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|hp| *hp > 0) {
                    host_ports.push(HostPort {
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        ip: p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                        port: hp,
                    });
                }
            }
        }
        let terms = |ts: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            ts.into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(t, &namespace))
                .collect()
        };
        let weighted = |ts: Option<&Vec<WeightedPodAffinityTerm>>| -> Vec<WeightedTerm> {
            ts.into_iter()
                .flatten()
                .map(|t| WeightedTerm {
                    weight: t.weight,
                    term: AffinityTerm::new(&t.pod_affinity_term, &namespace),
                })
                .collect()
        };
        let aff = spec.affinity.as_ref();
        let pa = aff.and_then(|a| a.pod_affinity.as_ref());
        let paa = aff.and_then(|a| a.pod_anti_affinity.as_ref());
        PodInfo {
            key: ObjectKey {
                namespace: namespace.clone(),
                name: meta.name.clone().unwrap_or_default(),
            },
            uid: meta.uid.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().unwrap_or_default(),
            priority,
            requests,
            non_zero,
            host_ports,
            required_affinity: terms(pa.and_then(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: terms(paa.and_then(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: weighted(pa.and_then(|p| {
                p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: weighted(paa.and_then(|p| {
                p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
            terminating: meta.deletion_timestamp.is_some(),
            namespace,
            pod,
        }
    }

    pub(crate) fn spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        static EMPTY: std::sync::OnceLock<k8s_openapi::api::core::v1::PodSpec> =
            std::sync::OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }
}
