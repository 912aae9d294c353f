//! Resource quantities as the scheduler counts them: cpu in millicores, everything else in
//! its base unit, and a pod's effective request (containers, init containers, overhead).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub(crate) const CPU: &str = "cpu";
pub(crate) const MEMORY: &str = "memory";
pub(crate) const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub(crate) const PODS: &str = "pods";

/// What a container without a cpu request counts as when scoring, as Kubernetes has it.
pub(crate) const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// What a container without a memory request counts as when scoring (200 MiB).
pub(crate) const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
    /// Extended resources (`example.com/gpu`), hugepages and the like.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    pub(crate) fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            r.set(name, q);
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            CPU => self.milli_cpu = parse_milli(&q.0).unwrap_or(0),
            MEMORY => self.memory = parse(&q.0).unwrap_or(0),
            EPHEMERAL_STORAGE => self.ephemeral_storage = parse(&q.0).unwrap_or(0),
            PODS => self.pods = parse(&q.0).unwrap_or(0),
            _ => {
                self.scalar
                    .insert(name.to_string(), parse(&q.0).unwrap_or(0));
            }
        }
    }

    pub(crate) fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.pods += o.pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub(crate) fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.pods -= o.pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each resource the larger of the two.
    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// A pod's effective request: the larger of its running containers (plus sidecars) and any
/// init container (plus the sidecars started before it), plus the pod overhead. `pods` is 1.
/// The second value counts unset cpu and memory requests at their scoring defaults.
pub(crate) fn pod_requests(spec: &PodSpec) -> (Resources, Resources) {
    let req = |c: &Container| {
        Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
    };
    let non_zero = |c: &Container| {
        let mut r = req(c);
        if r.milli_cpu == 0 {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if r.memory == 0 {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
        r
    };
    let total = |f: &dyn Fn(&Container) -> Resources| {
        let mut running = Resources::default();
        for c in &spec.containers {
            running.add(&f(c));
        }
        let mut sidecars = Resources::default();
        let mut init_peak = Resources::default();
        for c in spec.init_containers.iter().flatten() {
            let r = f(c);
            if c.restart_policy.as_deref() == Some("Always") {
                sidecars.add(&r);
                init_peak.max_with(&sidecars);
            } else {
                let mut during = sidecars.clone();
                during.add(&r);
                init_peak.max_with(&during);
            }
        }
        running.add(&sidecars);
        running.max_with(&init_peak);
        running.add(&Resources::from_list(spec.overhead.as_ref()));
        running.pods = 1;
        running
    };
    (total(&req), total(&non_zero))
}

pub(crate) use client::quantity::{parse, parse_milli};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for (s, base, milli) in [
            ("1", Some(1), Some(1000)),
            ("100m", Some(1), Some(100)),
            ("1.5", Some(2), Some(1500)),
            ("1Gi", Some(1 << 30), Some(1000 << 30)),
            ("500M", Some(500_000_000), Some(500_000_000_000)),
            ("1e3", Some(1000), Some(1_000_000)),
            ("12x", None, None),
            ("", None, None),
        ] {
            assert_eq!(parse(s), base, "{s}");
            assert_eq!(parse_milli(s), milli, "{s}");
        }
    }

    #[test]
    fn init_containers_and_sidecars_count_at_their_peak() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}},
            ],
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}},
                {"name": "side", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "50m"}}},
            ],
            "overhead": {"cpu": "10m"},
        }))
        .unwrap();
        let (r, nz) = pod_requests(&spec);
        assert_eq!(r.milli_cpu, 1000 + 10);
        assert_eq!(r.memory, 1 << 30);
        assert_eq!(r.pods, 1);
        // b has no memory request: it counts 200 MiB when scoring.
        assert_eq!(
            nz.memory,
            (1 << 30) + DEFAULT_MEMORY_REQUEST + DEFAULT_MEMORY_REQUEST
        );
    }
}
