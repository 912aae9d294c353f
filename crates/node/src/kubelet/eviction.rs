//! Node-pressure eviction: hard thresholds on `memory.available` and `nodefs.available`
//! (kubelet's `--eviction-hard`, default `memory.available<100Mi,nodefs.available<10%`).
//! While one is crossed, the kubelet evicts one pod per interval, in Kubernetes' order:
//! pods using more than they requested first (so BestEffort pods before the rest), then
//! lower priority, then larger usage. An evicted pod is stopped and ends Failed with reason
//! Evicted; static pods are never evicted.

use std::sync::Arc;

use client::{Api, ListParams};
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use super::qos::qos_class;
use super::Shared;
use crate::host;
use crate::runtime::State;

/// The hard eviction thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// Bytes of memory that must stay available.
    pub memory_available: Option<u64>,
    /// Of the filesystem holding the data directory: bytes, or a percentage.
    pub nodefs_available: Option<Amount>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    Bytes(u64),
    Percent(f64),
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            memory_available: Some(100 * 1024 * 1024),
            nodefs_available: Some(Amount::Percent(10.0)),
        }
    }
}

impl Thresholds {
    /// Parses `memory.available<100Mi,nodefs.available<10%`; an empty string turns
    /// eviction off.
    pub fn parse(s: &str) -> crate::Result<Thresholds> {
        let mut t = Thresholds {
            memory_available: None,
            nodefs_available: None,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (signal, value) = part
                .split_once('<')
                .ok_or_else(|| invalid(format!("{part:?} is not SIGNAL<QUANTITY")))?;
            let amount = match value.strip_suffix('%') {
                Some(p) => Amount::Percent(
                    p.parse()
                        .map_err(|_| invalid(format!("{value:?} is not a percentage")))?,
                ),
                None => Amount::Bytes(
                    client::quantity::parse(value)
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| invalid(format!("{value:?} is not a quantity")))?
                        as u64,
                ),
            };
            match (signal, amount) {
                ("memory.available", Amount::Bytes(b)) => t.memory_available = Some(b),
                ("memory.available", Amount::Percent(p)) => {
                    t.memory_available =
                        Some((crate::host::memory_bytes() as f64 * p / 100.0) as u64)
                }
                ("nodefs.available", a) => t.nodefs_available = Some(a),
                (other, _) => {
                    return Err(invalid(format!(
                        "signal {other:?} is not supported (memory.available, nodefs.available)"
                    )))
                }
            }
        }
        Ok(t)
    }
}

fn invalid(reason: String) -> crate::Error {
    crate::Error::invalid("--eviction-hard", reason)
}

/// (memory pressure, disk pressure) as the thresholds see the node now.
pub fn pressure(shared: &Shared) -> (bool, bool) {
    let t = &shared.cfg.eviction;
    let mem = match (t.memory_available, host::meminfo("MemAvailable")) {
        (Some(min), Some(avail)) => avail < min,
        _ => false,
    };
    let disk = match (t.nodefs_available, host::filesystem(&shared.cfg.data_dir)) {
        (Some(a), Some(fs)) if fs.total > 0 => match a {
            Amount::Bytes(b) => fs.available < b,
            Amount::Percent(p) => (fs.available as f64) < fs.total as f64 * p / 100.0,
        },
        _ => false,
    };
    (mem, disk)
}

fn request_of(p: &Pod, resource: &str) -> i64 {
    p.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(resource))
        .filter_map(|q| client::quantity::parse(&q.0))
        .sum()
}

/// The pod to evict first: usage over request, then lower priority, then more usage
/// (memory for memory pressure; BestEffort pods request nothing, so they go first).
fn pick(pods: Vec<(Pod, u64)>, resource: &str) -> Option<Pod> {
    pods.into_iter()
        .min_by_key(|(p, usage)| {
            let over = *usage as i64 > request_of(p, resource);
            let prio = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
            let best_effort = qos_class(&p.spec.clone().unwrap_or_default()) == "BestEffort";
            (!over, prio, !best_effort, std::cmp::Reverse(*usage))
        })
        .map(|(p, _)| p)
}

/// Watches the thresholds; sends (uid, message) of the pod to evict.
pub async fn run(shared: Arc<Shared>, evict: mpsc::Sender<(String, String)>) {
    let mut tick = tokio::time::interval(shared.cfg.eviction_interval);
    let pods_api = Api::<Pod>::all(shared.client.clone());
    loop {
        tick.tick().await;
        let (mem, disk) = pressure(&shared);
        if !mem && !disk {
            continue;
        }
        let (resource, what) = if mem {
            ("memory", "memory")
        } else {
            ("ephemeral-storage", "ephemeral-storage")
        };
        let lp = ListParams::default().fields(&format!("spec.nodeName={}", shared.cfg.node_name));
        let Ok(list) = pods_api.list(&lp).await else {
            continue;
        };
        let sandboxes = shared
            .runtime
            .list_pod_sandboxes()
            .await
            .unwrap_or_default();
        let mut candidates = Vec::new();
        for p in list.items {
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("Pending");
            if phase != "Running"
                || super::static_pods::is_mirror(&p)
                || p.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let Some(sb) = sandboxes.iter().find(|s| s.config.uid == uid && s.ready) else {
                continue;
            };
            let mut usage = 0;
            for c in shared
                .runtime
                .list_containers(&sb.id)
                .await
                .unwrap_or_default()
            {
                if c.state == State::Running {
                    usage += shared
                        .runtime
                        .usage(&c.id)
                        .await
                        .map_or(0, |u| u.memory_bytes);
                }
            }
            candidates.push((p, usage));
        }
        if let Some(p) = pick(candidates, resource) {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let msg = format!("The node was low on resource: {what}.");
            tracing::warn!(pod = ?p.metadata.name, "{msg} Evicting the pod");
            let _ = evict.send((uid, msg)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thresholds_parse_and_name_bad_input() {
        let t = Thresholds::parse("memory.available<100Mi, nodefs.available<10%").unwrap();
        assert_eq!(t.memory_available, Some(100 << 20));
        assert_eq!(t.nodefs_available, Some(Amount::Percent(10.0)));
        assert_eq!(Thresholds::parse("").unwrap().memory_available, None);
        assert!(Thresholds::parse("memory.available>1")
            .unwrap_err()
            .to_string()
            .contains("SIGNAL<QUANTITY"));
        assert!(Thresholds::parse("pid.available<10")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }

    #[test]
    fn best_effort_pods_go_first_then_lower_priority() {
        let pod = |name: &str, req: Option<&str>, prio: i32| -> Pod {
            let res = req.map_or(
                json!({}),
                |r| json!({"requests": {"memory": r}, "limits": {"memory": r}}),
            );
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"priority": prio, "containers": [{"name": "c", "resources": res}]}}))
            .unwrap()
        };
        let pods = vec![
            (pod("guaranteed", Some("1Gi"), 0), 10 << 20),
            (pod("besteffort", None, 1000), 1 << 20),
            (pod("greedy", Some("1Mi"), 0), 50 << 20),
        ];
        // Both over their request; the lower priority one goes first.
        assert_eq!(
            pick(pods.clone(), "memory")
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("greedy")
        );
        let pods: Vec<_> = pods
            .into_iter()
            .filter(|(p, _)| p.metadata.name.as_deref() != Some("greedy"))
            .collect();
        assert_eq!(
            pick(pods, "memory").unwrap().metadata.name.as_deref(),
            Some("besteffort")
        );
    }
}
