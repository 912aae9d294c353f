//! Usage: every interval, the cpu and memory of each running container, published as the
//! pod's `metrics.k8s.io` PodMetrics (what the HorizontalPodAutoscaler and
//! `rkube ctl top` read). cpu is the rate over the interval, from cumulative cpu time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use client::metrics::PodMetrics;
use client::{Api, PatchParams};
use serde_json::json;

use super::Shared;
use crate::runtime::State;

/// The last cumulative cpu time seen per container.
type Samples = HashMap<String, (Instant, u64)>;

async fn publish(shared: &Shared, samples: &mut Samples) {
    let rt = &shared.runtime;
    let Ok(sandboxes) = rt.list_pod_sandboxes().await else {
        return;
    };
    let mut seen = Vec::new();
    for sb in sandboxes.into_iter().filter(|s| s.ready) {
        let Ok(containers) = rt.list_containers(&sb.id).await else {
            continue;
        };
        let mut out = Vec::new();
        for c in containers.iter().filter(|c| c.state == State::Running) {
            let Ok(u) = rt.usage(&c.id).await else {
                continue;
            };
            let now = Instant::now();
            seen.push(c.id.clone());
            let milli = match samples.insert(c.id.clone(), (now, u.cpu_nanos)) {
                Some((t, prev)) if now > t && u.cpu_nanos >= prev => {
                    let secs = now.duration_since(t).as_secs_f64();
                    ((u.cpu_nanos - prev) as f64 / 1e6 / secs).round() as u64
                }
                // No rate from a single sample yet.
                _ => continue,
            };
            out.push(json!({"name": c.name, "usage": {
                "cpu": format!("{milli}m"),
                "memory": format!("{}Ki", u.memory_bytes / 1024),
            }}));
        }
        if out.is_empty() {
            continue;
        }
        let ns = &sb.config.namespace;
        let m = json!({"metadata": {"name": sb.config.name, "namespace": ns},
            "timestamp": client::events::now().to_string(),
            "window": format!("{}s", shared.cfg.metrics_interval.as_secs().max(1)),
            "containers": out});
        let api = Api::<PodMetrics>::namespaced(shared.client.clone(), ns);
        if api
            .patch(&sb.config.name, PatchParams::Merge, &m)
            .await
            .is_err()
        {
            if let Ok(pm) = serde_json::from_value::<PodMetrics>(m) {
                if let Err(e) = api.create(&pm).await {
                    tracing::debug!(pod = %sb.config.name, error = %e, "publishing pod metrics failed");
                }
            }
        }
    }
    samples.retain(|id, _| seen.contains(id));
}

pub async fn run(shared: Arc<Shared>) {
    let mut samples = Samples::new();
    let mut tick = tokio::time::interval(shared.cfg.metrics_interval);
    loop {
        tick.tick().await;
        publish(&shared, &mut samples).await;
    }
}

/// Removes the PodMetrics of a pod that is gone.
pub async fn forget(shared: &Shared, namespace: &str, name: &str) {
    let api = Api::<PodMetrics>::namespaced(shared.client.clone(), namespace);
    let _ = api.delete(name, Some(0)).await;
}
