//! Terminating: each running container gets its preStop hook, then SIGTERM, then SIGKILL
//! once the grace period (the deletion's, else `terminationGracePeriodSeconds`) is over.

use client::state::{EventType, PodPhase};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use super::lifecycle::Stopped;
use super::PodWorker;
use crate::runtime::Runtime;

async fn pre_stop(
    rt: &dyn Runtime,
    id: &str,
    ip: &str,
    c: &Container,
    h: &LifecycleHandler,
    limit: Duration,
) {
    let probe = k8s_openapi::api::core::v1::Probe {
        exec: h.exec.clone(),
        http_get: h.http_get.clone(),
        tcp_socket: h.tcp_socket.clone(),
        ..Default::default()
    };
    let probe = crate::kubelet::probe::resolve_named_ports(probe, c);
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(limit)).await;
        return;
    }
    if let Err(e) = crate::kubelet::probe::run(&probe, rt, id, ip, limit).await {
        tracing::debug!(container = id, error = %e, "preStop hook failed");
    }
}

pub async fn step(w: &mut PodWorker) -> Stopped {
    w.observe().await;
    let spec = w.spec();
    let grace = w
        .pod
        .metadata
        .deletion_grace_period_seconds
        .or(spec.termination_grace_period_seconds)
        .unwrap_or(30)
        .max(0) as u64;
    let deadline = *w
        .grace_deadline
        .get_or_insert_with(|| Instant::now() + Duration::from_secs(grace));
    let rt = w.shared.runtime.clone();
    let ip = w.pod_ip();
    let containers: Vec<Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .cloned()
        .collect();
    let stops = containers.iter().filter_map(|c| {
        let run = w.runs.get(&c.name).filter(|r| r.running())?;
        let id = run.id.clone()?;
        let hook = c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone());
        let (rt, ip) = (rt.clone(), ip.clone());
        Some(async move {
            if let Some(h) = hook {
                let left = deadline.saturating_duration_since(Instant::now());
                pre_stop(rt.as_ref(), &id, &ip, c, &h, left).await;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = rt.stop_container(&id, left).await {
                tracing::warn!(container = %id, error = %e, "stopping a container failed");
            }
        })
    });
    let n = containers
        .iter()
        .filter(|c| w.runs.get(&c.name).is_some_and(|r| r.running()))
        .count();
    if n > 0 {
        w.event(
            EventType::Normal,
            "Killing",
            format!("Stopping {n} container(s)"),
        );
    }
    futures::future::join_all(stops).await;
    w.observe().await;
    if w.failure.is_some() {
        w.pod_phase = PodPhase::Failed;
    } else if w.pod_phase != PodPhase::Succeeded {
        // A pod stopped before it finished did not succeed.
        let all_zero = w
            .runs
            .values()
            .all(|r| r.exited().is_some_and(|s| s.exit_code == Some(0)));
        w.pod_phase = if all_zero && !w.runs.is_empty() {
            PodPhase::Succeeded
        } else {
            PodPhase::Failed
        };
    }
    Stopped
}
