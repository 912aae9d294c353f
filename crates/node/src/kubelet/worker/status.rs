//! The pod's status as the kubelet reports it through the status subresource: phase,
//! conditions, container statuses (state, lastState, ready, restartCount), IPs and start
//! time. Written only when it changed; condition times move only on a transition.

use client::state::PodPhase;
use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use super::{name, namespace, PodWorker, Run};
use crate::kubelet::qos::qos_class;
use crate::runtime::{ContainerStatus, State};

pub fn rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn terminated(s: &ContainerStatus, runtime: &str) -> Value {
    let mut t = json!({
        "exitCode": s.exit_code.unwrap_or(0),
        "reason": s.reason,
        "containerID": format!("{runtime}://{}", s.id),
    });
    if !s.message.is_empty() {
        t["message"] = s.message.clone().into();
    }
    if let Some(st) = s.started_at {
        t["startedAt"] = rfc3339(st).into();
    }
    if let Some(f) = s.finished_at {
        t["finishedAt"] = rfc3339(f).into();
    }
    json!({ "terminated": t })
}

fn container_status(c: &Container, run: Option<&Run>, runtime: &str) -> Value {
    let image = c.image.clone().unwrap_or_default();
    let Some(run) = run else {
        return json!({"name": c.name, "image": image, "imageID": "", "ready": false,
            "restartCount": 0, "started": false,
            "state": {"waiting": {"reason": "ContainerCreating"}}});
    };
    let cur = run.current.as_ref();
    let (state, last) = match (cur, &run.waiting) {
        (Some(s), _) if s.state == State::Running => {
            let st =
                json!({"running": {"startedAt": rfc3339(s.started_at.unwrap_or(s.created_at))}});
            (st, run.last.as_ref())
        }
        (cur, Some((reason, msg))) => {
            let st = json!({"waiting": {"reason": reason, "message": msg}});
            (
                st,
                cur.filter(|s| s.state == State::Exited)
                    .or(run.last.as_ref()),
            )
        }
        (Some(s), None) if s.state == State::Exited => (terminated(s, runtime), run.last.as_ref()),
        _ => (
            json!({"waiting": {"reason": "ContainerCreating"}}),
            run.last.as_ref(),
        ),
    };
    let mut v = json!({
        "name": c.name,
        "image": image,
        "imageID": "",
        "ready": run.ready(),
        "started": run.running() && run.startup.as_ref().is_none_or(|p| p.ok),
        "restartCount": run.restarts,
        "state": state,
        "lastState": last.map_or(json!({}), |l| terminated(l, runtime)),
    });
    if let Some(id) = &run.id {
        v["containerID"] = format!("{runtime}://{id}").into();
    }
    v
}

/// Keeps the previous transition time of a condition whose status did not change.
fn condition(
    prev: Option<&Value>,
    type_: &str,
    ok: bool,
    now: &str,
    reason: Option<&str>,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = prev
        .and_then(|p| p["conditions"].as_array())
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .filter(|c| c["status"] == status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now)
        .to_string();
    let mut c = json!({"type": type_, "status": status, "lastTransitionTime": since});
    if let Some(r) = reason.filter(|_| !ok) {
        c["reason"] = r.into();
    }
    c
}

pub fn build(w: &PodWorker) -> Value {
    let spec = w.spec();
    let rt = w.shared.runtime.name();
    let prev = w.last_status.as_ref();
    let now = rfc3339(crate::host::now_secs());
    let init_done = spec.init_containers.iter().flatten().all(|c| {
        w.runs
            .get(&c.name)
            .and_then(|r| r.current.as_ref())
            .is_some_and(|s| s.state == State::Exited && s.exit_code == Some(0))
    });
    let all_ready = spec
        .containers
        .iter()
        .all(|c| w.runs.get(&c.name).is_some_and(Run::ready));
    let stopping = !w.life.starting_or_running();
    let ready = all_ready && !stopping && w.pod_phase == PodPhase::Running;
    let mut st = json!({
        "phase": w.pod_phase.as_str(),
        "conditions": [
            condition(prev, "PodReadyToStartContainers", w.sandbox.is_some(), &now, None),
            condition(prev, "Initialized", init_done, &now, Some("ContainersNotInitialized")),
            condition(prev, "ContainersReady", ready, &now, Some("ContainersNotReady")),
            condition(prev, "Ready", ready, &now, Some("ContainersNotReady")),
            condition(prev, "PodScheduled", true, &now, None),
        ],
        "hostIP": w.shared.cfg.node_ip,
        "hostIPs": [{"ip": w.shared.cfg.node_ip}],
        "containerStatuses": spec.containers.iter()
            .map(|c| container_status(c, w.runs.get(&c.name), rt)).collect::<Vec<_>>(),
        "qosClass": qos_class(&spec),
    });
    if let Some(inits) = &spec.init_containers {
        st["initContainerStatuses"] = inits
            .iter()
            .map(|c| container_status(c, w.runs.get(&c.name), rt))
            .collect::<Vec<_>>()
            .into();
    }
    let ip = w.pod_ip();
    if !ip.is_empty() {
        st["podIP"] = ip.clone().into();
        st["podIPs"] = json!([{ "ip": ip }]);
    }
    if let Some(s) = w.started {
        st["startTime"] = rfc3339(s).into();
    }
    if let Some((reason, msg)) = &w.failure {
        st["reason"] = reason.clone().into();
        st["message"] = msg.clone().into();
    }
    st
}

/// Writes the status when it changed since the last write.
pub async fn sync(w: &mut PodWorker) {
    let st = build(w);
    if w.last_status.as_ref() == Some(&st) {
        return;
    }
    let api = Api::<Pod>::namespaced(w.shared.client.clone(), namespace(&w.pod));
    match api
        .patch_status(name(&w.pod), PatchParams::Merge, &json!({ "status": st }))
        .await
    {
        Ok(p) => {
            w.last_status = Some(st);
            // Keep the newer object (deletion marks, resourceVersion) for the next step.
            if p.metadata.uid == w.pod.metadata.uid {
                w.pod = p;
            }
        }
        Err(e) => tracing::debug!(pod = %name(&w.pod), error = %e, "pod status not written"),
    }
}
