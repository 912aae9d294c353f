//! Setup: the pod's sandbox (adopted when the runtime already has one for this pod, as
//! after a kubelet restart) and its volumes. A failure is retried on the next sync; a
//! volume path that would leave its volume also holds every container in
//! `CreateContainerConfigError`, naming the path.

use super::lifecycle::FromSetup;
use super::{name, namespace, PodWorker};
use crate::kubelet::volumes::{VolumeCtx, VolumeError};
use crate::runtime::SandboxConfig;
use client::state::EventType;

pub async fn step(w: &mut PodWorker) -> FromSetup {
    if w.started.is_none() {
        w.started = Some(crate::host::now_secs());
    }
    let rt = w.shared.runtime.clone();
    if w.sandbox.is_none() {
        let ns = namespace(&w.pod).to_string();
        let n = name(&w.pod).to_string();
        let cfg = SandboxConfig {
            uid: w.uid.clone(),
            namespace: ns.clone(),
            name: n.clone(),
            host_network: w.spec().host_network.unwrap_or(false),
            log_dir: w
                .shared
                .cfg
                .data_dir
                .join("logs")
                .join(format!("{ns}_{n}_{}", w.uid)),
            labels: w.pod.metadata.labels.clone().unwrap_or_default(),
            security: crate::kubelet::security_context::sandbox(&w.pod),
            dns: w.shared.pod_dns(&w.pod),
        };
        match rt.run_pod_sandbox(&cfg).await {
            Ok(sb) => w.sandbox = Some(sb),
            Err(e) => {
                w.event(
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e}"),
                );
                return FromSetup::Stay;
            }
        }
    }
    let spec = w.spec();
    let pod_dir = w.pod_dir();
    for v in spec.volumes.iter().flatten() {
        if w.volumes.contains_key(&v.name) {
            continue;
        }
        let vctx = VolumeCtx {
            client: &w.shared.client,
            pod: &w.pod,
            pod_dir: &pod_dir,
            data_dir: &w.shared.cfg.data_dir,
            root: w.shared.root,
        };
        match vctx.prepare(v).await {
            Ok(p) => {
                w.volumes.insert(v.name.clone(), p);
            }
            Err(e) => {
                w.event(
                    EventType::Warning,
                    "FailedMount",
                    format!("MountVolume.SetUp failed for volume {:?}: {e}", v.name),
                );
                if let VolumeError::UnsafePath { .. } = e {
                    hold_containers(w, Some(e.to_string()));
                }
                return FromSetup::Stay;
            }
        }
    }
    hold_containers(w, None);
    FromSetup::Ready
}

const CONFIG_ERROR: &str = "CreateContainerConfigError";

/// Every container waits with `CreateContainerConfigError` and `msg`; `None`: the
/// volumes are fine again, and containers held so wait no more.
fn hold_containers(w: &mut PodWorker, msg: Option<String>) {
    let spec = w.spec();
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for c in all {
        match &msg {
            Some(m) => {
                let run = w.runs.entry(c.name.clone()).or_default();
                run.waiting = Some((CONFIG_ERROR.into(), m.clone()));
            }
            None => {
                if let Some(run) = w.runs.get_mut(&c.name).filter(|r| r.id.is_none()) {
                    run.waiting.take_if(|(r, _)| r == CONFIG_ERROR);
                }
            }
        }
    }
}
