//! Pod source: a watch on the pods bound to this node (`spec.nodeName=<node>`). Each pod
//! gets a worker; a newer version of the pod goes to its worker. Sandboxes the runtime
//! already runs (a kubelet restart) are adopted by the worker of their pod, and removed
//! when their pod no longer exists.

use std::collections::HashMap;
use std::sync::Arc;

use client::state::PodPhase;
use client::watcher::{self, watcher, Event};
use client::{Api, ListParams};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::static_pods;
use super::worker::{self, PodWorker, Update};
use super::Shared;
use crate::runtime::{Sandbox, State};

/// A worker for `pod`, taking over `existing` (a sandbox the runtime already runs for it).
async fn new_worker(shared: &Arc<Shared>, pod: Pod, existing: Option<Sandbox>) -> PodWorker {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut w = PodWorker {
        shared: shared.clone(),
        pod,
        uid,
        life: Default::default(),
        sandbox: None,
        volumes: Default::default(),
        runs: Default::default(),
        failure: None,
        started: None,
        pod_phase: PodPhase::Pending,
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
            w.pod_phase = PodPhase::Running;
        }
        tracing::info!(pod = %worker::name(&w.pod), containers = w.runs.len(), "adopted a running pod");
        w.sandbox = Some(sb);
    }
    w
}

struct Source {
    shared: Arc<Shared>,
    /// Sandboxes found at start that no worker has taken yet.
    existing: HashMap<String, Sandbox>,
    workers: HashMap<String, mpsc::Sender<Update>>,
    /// The workers' tasks: dropping the source stops them.
    tasks: JoinSet<()>,
    /// The static pods running, by uid.
    statics: HashMap<String, Pod>,
}

impl Source {
    async fn spawn(&mut self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let sb = self.existing.remove(&uid);
        let w = new_worker(&self.shared, pod, sb).await;
        let (tx, rx) = mpsc::channel(16);
        self.workers.insert(uid, tx);
        self.tasks.spawn(worker::run(w, rx));
    }

    /// Forgets the workers that ended.
    fn reap(&mut self) {
        self.workers.retain(|_, tx| !tx.is_closed());
        while let Some(r) = self.tasks.try_join_next() {
            if let Err(e) = r {
                tracing::error!(error = %e, "a pod worker panicked");
            }
        }
    }

    async fn send(&self, uid: &str, u: Update) {
        if let Some(tx) = self.workers.get(uid) {
            let _ = tx.send(u).await;
        }
    }

    /// A pod from the API, added or changed.
    async fn apply(&mut self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if self.workers.contains_key(&uid) {
            return self.send(&uid, Update::Pod(Box::new(pod))).await;
        }
        if PodPhase::of(&pod).is_finished()
            && !self.existing.contains_key(&uid)
            && pod.metadata.deletion_timestamp.is_none()
        {
            // Finished before this kubelet started, with nothing left to run.
            return;
        }
        self.spawn(pod).await;
    }

    /// Re-reads the manifests: new static pods start, removed ones stop, and every one has
    /// its mirror pod.
    async fn sync_static(&mut self) {
        let Some(dir) = self.shared.cfg.pod_manifest_path.clone() else {
            return;
        };
        let now = static_pods::read(&dir, &self.shared.cfg.node_name);
        let removed: Vec<(String, Pod)> = self
            .statics
            .iter()
            .filter(|(uid, _)| !now.contains_key(*uid))
            .map(|(u, p)| (u.clone(), p.clone()))
            .collect();
        for (uid, pod) in removed {
            tracing::info!(pod = %worker::name(&pod), "static pod manifest removed");
            self.send(&uid, Update::Gone).await;
            static_pods::remove_mirror(&self.shared, &pod).await;
        }
        for (uid, pod) in &now {
            if !self.statics.contains_key(uid) {
                self.spawn(pod.clone()).await;
            }
            if static_pods::ensure_mirror(&self.shared, pod).await {
                self.send(uid, Update::Resync).await;
            }
        }
        self.statics = now;
    }

    /// The first list after a (re)connect is complete: workers whose pods vanished while
    /// the watch was down stop, and at the very first, sandboxes no pod owns are removed.
    async fn listed(&mut self, listed: &[String], first: bool) {
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|uid| !listed.contains(uid) && !self.statics.contains_key(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.send(&uid, Update::Gone).await;
        }
        if !first {
            return;
        }
        for (uid, sb) in self.existing.drain() {
            tracing::info!(pod = %sb.config.name, %uid, "removing a pod that no longer exists");
            if let Err(e) = self.shared.runtime.remove_pod_sandbox(&sb.id).await {
                tracing::warn!(error = %e, "removing an orphaned sandbox failed");
            }
            super::volumes::VolumeCtx::cleanup(&self.shared.cfg.data_dir.join("pods").join(&uid));
        }
    }
}

/// Runs a worker for every pod bound to the node, and for every static pod, until the pod
/// watch ends; dropping the future stops the workers.
pub async fn run(
    shared: Arc<Shared>,
    mut evictions: mpsc::Receiver<(String, String)>,
) -> crate::Result<()> {
    let api = Api::<Pod>::all(shared.client.clone());
    let cfg = watcher::Config {
        selectors: ListParams::default().fields(&format!("spec.nodeName={}", shared.cfg.node_name)),
        ..Default::default()
    };
    let existing: HashMap<String, Sandbox> = shared
        .runtime
        .list_pod_sandboxes()
        .await?
        .into_iter()
        .map(|sb| (sb.config.uid.clone(), sb))
        .collect();
    let mut src = Source {
        shared: shared.clone(),
        existing,
        workers: HashMap::new(),
        tasks: JoinSet::new(),
        statics: HashMap::new(),
    };
    // Static pods first: they take their sandboxes before orphans are cleaned up.
    src.sync_static().await;
    let mut file_tick = tokio::time::interval(shared.cfg.file_check_interval);
    let mut listed: Vec<String> = Vec::new();
    let mut first_list = true;
    let mut stream = watcher(api, cfg).boxed();
    loop {
        let ev = tokio::select! {
            ev = stream.next() => match ev {
                Some(ev) => ev,
                None => return Err(crate::Error::Ended("the pod watch")),
            },
            _ = file_tick.tick() => {
                src.sync_static().await;
                continue;
            }
            Some((uid, msg)) = evictions.recv() => {
                src.send(&uid, Update::Evict(msg)).await;
                continue;
            }
        };
        src.reap();
        match ev {
            Event::Init => listed.clear(),
            Event::Apply(pod) | Event::InitApply(pod) => {
                if static_pods::is_mirror(&pod) {
                    continue;
                }
                listed.push(pod.metadata.uid.clone().unwrap_or_default());
                src.apply(pod).await;
            }
            Event::Delete(pod) => {
                if !static_pods::is_mirror(&pod) {
                    src.send(
                        pod.metadata.uid.as_deref().unwrap_or_default(),
                        Update::Gone,
                    )
                    .await;
                }
            }
            Event::InitDone => {
                src.listed(&listed, first_list).await;
                first_list = false;
            }
        }
    }
}
