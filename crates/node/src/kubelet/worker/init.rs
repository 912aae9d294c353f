//! Init containers, in order: each must exit 0 before the next starts. A failed one is
//! restarted with back-off, unless the pod's restartPolicy is Never, which fails the pod.

use client::state::PodPhase;

use super::lifecycle::FromInit;
use super::PodWorker;
use crate::runtime::State;

pub async fn step(w: &mut PodWorker) -> FromInit {
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
            Some((State::Running | State::Created, _)) => return FromInit::Stay,
            Some((State::Exited, code)) => {
                if never {
                    w.failure = Some((
                        "Init:Error".into(),
                        format!("init container {:?} exited with {code}", c.name),
                    ));
                    w.pod_phase = PodPhase::Failed;
                    return FromInit::Failed;
                }
                if super::running::restart_due(w, &c.name) {
                    w.runs.entry(c.name.clone()).or_default().restarts += 1;
                    if let Err(e) = w.start(c).await {
                        w.start_failed(c, "RunContainerError", e);
                    }
                }
                return FromInit::Stay;
            }
            None => {
                if run.backoff_until.is_some() && !super::running::restart_due(w, &c.name) {
                    return FromInit::Stay;
                }
                if let Err(e) = w.start(c).await {
                    w.start_failed(c, "CreateContainerError", e);
                    super::running::arm_backoff(w, &c.name);
                }
                return FromInit::Stay;
            }
        }
    }
    FromInit::Done
}
