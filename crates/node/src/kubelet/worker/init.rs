//! Init containers, in order: each must exit 0 before the next starts. A failed one is
//! restarted with back-off, unless the pod's restartPolicy is Never, which fails the pod.

use super::{Phase, PodWorker};
use crate::runtime::State;

pub async fn step(w: &mut PodWorker) -> Phase {
    w.observe().await;
    let spec = w.spec();
    let never = w.restart_policy() == "Never";
    for c in spec.init_containers.iter().flatten() {
        let run = w.runs.entry(c.name.clone()).or_default();
        let state = run
            .current
            .as_ref()
            .map(|s| (s.state, s.exit_code.unwrap_or(0)));
        match state {
            Some((State::Exited, 0)) => continue,
            Some((State::Running | State::Created, _)) => return Phase::Init,
            Some((State::Exited, code)) => {
                if never {
                    w.failure = Some((
                        "Init:Error".into(),
                        format!("init container {:?} exited with {code}", c.name),
                    ));
                    w.pod_phase = "Failed";
                    return Phase::Terminated;
                }
                if super::running::restart_due(w, &c.name) {
                    w.runs.entry(c.name.clone()).or_default().restarts += 1;
                    if let Err(e) = w.start(c).await {
                        w.start_failed(c, "RunContainerError", e);
                    }
                }
                return Phase::Init;
            }
            None => {
                if run.backoff_until.is_some() && !super::running::restart_due(w, &c.name) {
                    return Phase::Init;
                }
                if let Err(e) = w.start(c).await {
                    w.start_failed(c, "CreateContainerError", e);
                    super::running::arm_backoff(w, &c.name);
                }
                return Phase::Init;
            }
        }
    }
    Phase::Running
}
