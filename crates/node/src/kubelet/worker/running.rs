//! Running: every container is kept as the restartPolicy says — Always restarts any exit,
//! OnFailure a non-zero one, Never none — with exponential back-off (CrashLoopBackOff)
//! between restarts, and probed. When no container will run again, the pod has finished:
//! Succeeded if all exited 0, Failed otherwise.

use client::state::{EventType, PodPhase};
use std::time::{Duration, Instant};

use super::lifecycle::FromRunning;
use super::PodWorker;

/// The delay before restart number `n + 1`: none for the first, then `base · 2^(n-1)`,
/// at most five minutes.
pub fn backoff(n: i32, base: Duration) -> Duration {
    if n <= 0 {
        return Duration::ZERO;
    }
    base.saturating_mul(1u32 << (n - 1).min(20))
        .min(Duration::from_secs(300))
}

/// Starts the back-off clock of container `name`, if it is not running.
pub fn arm_backoff(w: &mut PodWorker, name: &str) {
    let base = w.shared.cfg.crash_backoff_base;
    let run = w.runs.entry(name.to_string()).or_default();
    if run.backoff_until.is_none() {
        run.backoff_until = Some(Instant::now() + backoff(run.restarts.max(1), base));
    }
}

/// Whether container `name` may be restarted now; if not, it waits in CrashLoopBackOff.
pub fn restart_due(w: &mut PodWorker, name: &str) -> bool {
    let base = w.shared.cfg.crash_backoff_base;
    let run = w.runs.entry(name.to_string()).or_default();
    let delay = backoff(run.restarts, base);
    let until = *run
        .backoff_until
        .get_or_insert_with(|| Instant::now() + delay);
    if Instant::now() >= until {
        run.backoff_until = None;
        return true;
    }
    if delay > Duration::ZERO && run.exited().is_some() {
        let pod = super::name(&w.pod).to_string();
        run.waiting = Some((
            "CrashLoopBackOff".into(),
            format!(
                "back-off {}s restarting failed container={name} pod={pod}",
                delay.as_secs()
            ),
        ));
    }
    false
}

async fn probe(w: &mut PodWorker, name: &str) {
    let rt = w.shared.runtime.clone();
    let ip = w.pod_ip();
    let grace = Duration::from_secs(
        w.spec()
            .termination_grace_period_seconds
            .unwrap_or(30)
            .max(0) as u64,
    );
    let now = Instant::now();
    let Some(run) = w.runs.get_mut(name) else {
        return;
    };
    let Some(id) = run.id.clone() else { return };
    let mut kill = None;
    if let Some(p) = run.startup.as_mut().filter(|p| !p.ok) {
        if p.due(now) {
            p.probe(rt.as_ref(), &id, &ip).await;
            if p.failing() {
                kill = Some("Startup probe failed");
            }
        }
    } else {
        if let Some(p) = run.liveness.as_mut() {
            if p.due(now) && p.probe(rt.as_ref(), &id, &ip).await && !p.ok {
                kill = Some("Liveness probe failed");
            }
        }
        if let Some(p) = run.readiness.as_mut() {
            if p.due(now) {
                p.probe(rt.as_ref(), &id, &ip).await;
            }
        }
    }
    if let Some(why) = kill {
        w.event(
            EventType::Warning,
            "Unhealthy",
            format!("{why}; container {name} will be restarted"),
        );
        w.event(
            EventType::Normal,
            "Killing",
            format!("Container {name} failed a probe, will be restarted"),
        );
        let _ = rt.stop_container(&id, grace).await;
    }
}

pub async fn step(w: &mut PodWorker) -> FromRunning {
    w.observe().await;
    w.pod_phase = PodPhase::Running;
    let spec = w.spec();
    let policy = w.restart_policy();
    let (mut finished, mut failed) = (true, false);
    for c in &spec.containers {
        let run = w.runs.entry(c.name.clone()).or_default();
        if run.id.is_none() {
            finished = false;
            if run.backoff_until.is_some() && !restart_due(w, &c.name) {
                continue;
            }
            if let Err(e) = w.start(c).await {
                w.start_failed(c, "CreateContainerError", e);
                arm_backoff(w, &c.name);
            }
            continue;
        }
        if run.running() {
            finished = false;
            probe(w, &c.name).await;
            continue;
        }
        let Some(code) = run.exited().map(|s| s.exit_code.unwrap_or(0)) else {
            finished = false;
            continue;
        };
        let restart = match policy.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if restart {
            finished = false;
            if restart_due(w, &c.name) {
                w.runs.entry(c.name.clone()).or_default().restarts += 1;
                if let Err(e) = w.start(c).await {
                    w.start_failed(c, "RunContainerError", e);
                    arm_backoff(w, &c.name);
                }
            }
        } else if code != 0 {
            failed = true;
        }
    }
    if finished {
        w.pod_phase = if failed {
            PodPhase::Failed
        } else {
            PodPhase::Succeeded
        };
        return FromRunning::Finished;
    }
    FromRunning::Stay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loop_backoff_doubles_from_ten_seconds_to_five_minutes() {
        let b = |n| backoff(n, Duration::from_secs(10)).as_secs();
        assert_eq!(
            [b(0), b(1), b(2), b(3), b(5), b(6), b(9)],
            [0, 10, 20, 40, 160, 300, 300]
        );
    }
}
