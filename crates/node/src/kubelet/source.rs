//! Pod source: a watch on the pods bound to this node (`spec.nodeName=<node>`). Each pod
//! gets a worker; a newer version of the pod goes to its worker. Sandboxes the runtime
//! already runs (a kubelet restart) are adopted by the worker of their pod, and removed
//! when their pod no longer exists.

use std::collections::HashMap;
use std::sync::Arc;

use client::watcher::{self, watcher, Event};
use client::{Api, ListParams};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use super::worker::{self, Phase, PodWorker};
use super::Shared;
use crate::runtime::{Sandbox, State};

/// A worker for `pod`, taking over `existing` (a sandbox the runtime already runs for it).
async fn new_worker(shared: &Arc<Shared>, pod: Pod, existing: Option<Sandbox>) -> PodWorker {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut w = PodWorker {
        shared: shared.clone(),
        pod,
        uid,
        phase: Phase::Setup,
        sandbox: None,
        volumes: Default::default(),
        runs: Default::default(),
        failure: None,
        started: None,
        pod_phase: "Pending",
        grace_deadline: None,
        last_status: None,
    };
    if let Some(sb) = existing {
        if let Ok(cs) = shared.runtime.list_containers(&sb.id).await {
            for c in cs {
                let run = w.runs.entry(c.name.clone()).or_default();
                let newer = run
                    .current
                    .as_ref()
                    .is_none_or(|cur| cur.attempt < c.attempt);
                if newer {
                    run.restarts = c.attempt as i32;
                    run.id = Some(c.id.clone());
                    run.current = Some(c);
                }
            }
        }
        w.started = w
            .runs
            .values()
            .filter_map(|r| r.current.as_ref().map(|c| c.created_at))
            .min();
        if w.runs.values().any(|r| {
            r.current
                .as_ref()
                .is_some_and(|c| c.state == State::Running)
        }) {
            w.pod_phase = "Running";
        }
        tracing::info!(pod = %worker::name(&w.pod), containers = w.runs.len(), "adopted a running pod");
        w.sandbox = Some(sb);
    }
    w
}

pub async fn run(shared: Arc<Shared>) -> Result<(), String> {
    let api = Api::<Pod>::all(shared.client.clone());
    let cfg = watcher::Config {
        selectors: ListParams::default().fields(&format!("spec.nodeName={}", shared.cfg.node_name)),
        ..Default::default()
    };
    let mut existing: HashMap<String, Sandbox> = shared
        .runtime
        .list_pod_sandboxes()
        .await
        .map_err(|e| format!("listing the runtime's pods: {e}"))?
        .into_iter()
        .map(|sb| (sb.config.uid.clone(), sb))
        .collect();
    let mut workers: HashMap<String, mpsc::Sender<Option<Pod>>> = HashMap::new();
    let mut listed: Vec<String> = Vec::new();
    let mut first_list = true;
    let mut stream = watcher(api, cfg).boxed();
    while let Some(ev) = stream.next().await {
        workers.retain(|_, tx| !tx.is_closed());
        match ev {
            Event::Init => listed.clear(),
            Event::Apply(pod) | Event::InitApply(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                listed.push(uid.clone());
                if let Some(tx) = workers.get(&uid) {
                    let _ = tx.send(Some(pod)).await;
                    continue;
                }
                let terminal = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|p| p == "Succeeded" || p == "Failed");
                let sb = existing.remove(&uid);
                if terminal && sb.is_none() && pod.metadata.deletion_timestamp.is_none() {
                    // Finished before this kubelet started, with nothing left to run.
                    continue;
                }
                let w = new_worker(&shared, pod, sb).await;
                let (tx, rx) = mpsc::channel(16);
                workers.insert(uid, tx);
                tokio::spawn(worker::run(w, rx));
            }
            Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(tx) = workers.get(&uid) {
                    let _ = tx.send(None).await;
                }
            }
            Event::InitDone => {
                // Workers whose pods vanished while the watch was down stop now.
                for (uid, tx) in &workers {
                    if !listed.contains(uid) {
                        let _ = tx.send(None).await;
                    }
                }
                if first_list {
                    first_list = false;
                    for (uid, sb) in existing.drain() {
                        tracing::info!(pod = %sb.config.name, %uid, "removing a pod that no longer exists");
                        if let Err(e) = shared.runtime.remove_pod_sandbox(&sb.id).await {
                            tracing::warn!(error = %e, "removing an orphaned sandbox failed");
                        }
                        super::volumes::VolumeCtx::cleanup(
                            &shared.cfg.data_dir.join("pods").join(&uid),
                        );
                    }
                }
            }
        }
    }
    Err("the pod watch ended".into())
}
