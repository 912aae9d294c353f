//! The scheduling loop: pop a pod, decide, assume, bind — binds run concurrently (the store
//! commits concurrent writes in shared Raft entries), so the loop never waits for one.

use client::state::EventType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::reflector::ObjectKey;
use client::{Api, Client, PatchParams};
use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use rkube_proto::api::BindRequest;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::algorithm::{Algorithm, Decision, FitError};
use super::informer::Shared;
use super::pod_info::PodInfo;
use super::preemption::{self, Candidate};
use super::queue::QueuedPod;
use super::recorder::Recorder;
use crate::volume::plan::SELECTED_NODE;

/// Counters a running scheduler keeps; read by `rkube scheduler` logs and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub scheduled: AtomicU64,
    pub unschedulable: AtomicU64,
    pub bind_errors: AtomicU64,
    pub preemptions: AtomicU64,
}

/// Writes that follow a decision; best effort, off the scheduling path.
pub(crate) enum Write {
    Scheduled(Arc<PodInfo>, String),
    Unschedulable {
        pod: Arc<PodInfo>,
        message: String,
        nominated: Option<String>,
    },
    Preempt {
        victim: Arc<PodInfo>,
        by: Arc<PodInfo>,
        node: String,
    },
    DeadlineExceeded(Arc<PodInfo>),
}

pub(crate) struct Bind {
    pub qp: QueuedPod,
    pub cycle: u64,
    pub node: String,
}

/// Whether a pending pod's activeDeadlineSeconds, counted from its creation, has passed.
pub(crate) fn deadline_passed(pod: &PodInfo) -> bool {
    pod.spec()
        .active_deadline_seconds
        .is_some_and(|d| pod.created + d <= super::recorder::now().as_second())
}

pub(crate) async fn run_writes(rx: mpsc::Receiver<Write>, recorder: Recorder) {
    ReceiverStream::new(rx)
        .for_each_concurrent(32, |w| {
            let r = recorder.clone();
            async move {
                match w {
                    Write::Scheduled(p, node) => {
                        let msg = format!(
                            "Successfully assigned {}/{} to {node}",
                            p.namespace, p.key.name
                        );
                        r.event(&p, EventType::Normal, "Scheduled", &msg).await;
                    }
                    Write::Unschedulable {
                        pod,
                        message,
                        nominated,
                    } => r.unschedulable(&pod, &message, nominated.as_deref()).await,
                    Write::Preempt { victim, by, node } => r.preempt(&victim, &by, &node).await,
                    Write::DeadlineExceeded(p) => r.deadline_exceeded(&p).await,
                }
            }
        })
        .await;
}

/// Sends binds, `concurrency` at a time; a failed bind un-assumes the pod and requeues it.
pub(crate) async fn run_binder(
    shared: Arc<Shared>,
    client: Client,
    rx: mpsc::UnboundedReceiver<Bind>,
    concurrency: usize,
    writes: mpsc::Sender<Write>,
    stats: Arc<Stats>,
    scheduled_events: bool,
) {
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
        .for_each_concurrent(concurrency, |b| {
            let (shared, client, writes, stats) = (
                shared.clone(),
                client.clone(),
                writes.clone(),
                stats.clone(),
            );
            async move {
                let p = b.qp.info.clone();
                let req = BindRequest {
                    namespace: p.namespace.clone(),
                    name: p.key.name.clone(),
                    node_name: b.node.clone(),
                    uid: p.uid.clone(),
                };
                let delayed = {
                    let c = shared.cache.lock();
                    super::plugins::volume_binding::delayed_claims(&p, &c)
                };
                let bound = match select_node(&client, &delayed, &b.node).await {
                    Ok(()) => client.bind(req).await.map(drop),
                    Err(e) => Err(e),
                };
                match bound {
                    Ok(_) => {
                        shared.queue.done(&p.key);
                        stats.scheduled.fetch_add(1, Ordering::Relaxed);
                        if scheduled_events {
                            // Dropped when the event queue is full, as Kubernetes does.
                            let _ = writes.try_send(Write::Scheduled(p, b.node));
                        }
                    }
                    Err(e) => {
                        stats.bind_errors.fetch_add(1, Ordering::Relaxed);
                        {
                            let mut c = shared.cache.lock();
                            if c.is_assumed(&p.key) {
                                c.remove_pod(&p.key);
                            }
                        }
                        // Gone, or bound already (by an earlier leader): nothing to retry.
                        if e.is_not_found()
                            || e.is_conflict()
                            || e.code() == tonic::Code::FailedPrecondition
                        {
                            tracing::debug!(pod = %p.key, error = %e, "bind refused");
                            shared.queue.done(&p.key);
                        } else {
                            tracing::warn!(pod = %p.key, error = %e, "bind failed; retrying");
                            let message = format!("Binding rejected: {e}");
                            shared.queue.requeue(b.qp, b.cycle, true);
                            let _ = writes
                                .send(Write::Unschedulable {
                                    pod: p,
                                    message,
                                    nominated: None,
                                })
                                .await;
                        }
                    }
                }
            }
        })
        .await;
}

/// Annotates the pod's WaitForFirstConsumer claims with the node it is bound to, so that
/// the binder or the provisioner give them a volume reachable from there.
async fn select_node(client: &Client, claims: &[ObjectKey], node: &str) -> client::Result<()> {
    for key in claims {
        let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &key.namespace);
        let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
        api.patch(&key.name, PatchParams::Merge, &patch).await?;
    }
    Ok(())
}

/// Moves back-off and long-unschedulable pods to the active heap, once a second.
pub(crate) async fn run_flusher(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        shared.queue.flush(deadline_passed);
    }
}

/// Pops pods and decides for each, one at a time: a fit is assumed and handed to the
/// binder; a pod that fits nowhere is requeued, after nominating it where preemption would
/// make room.
pub(crate) async fn run_loop(
    shared: Arc<Shared>,
    mut alg: Algorithm,
    binds: mpsc::UnboundedSender<Bind>,
    writes: mpsc::Sender<Write>,
    stats: Arc<Stats>,
) {
    for n in 0u64.. {
        if n % 64 == 63 {
            // The loop is CPU-bound while pods wait; let the binder and the watches in.
            tokio::task::yield_now().await;
        }
        let (qp, cycle) = shared.queue.pop().await;
        let pod = qp.info.clone();
        if deadline_passed(&pod) {
            shared.queue.done(&pod.key);
            let _ = writes.send(Write::DeadlineExceeded(pod)).await;
            continue;
        }
        let Some(decision) = decide(&shared, &mut alg, &pod) else {
            // Assigned meanwhile (the watch raced the queue).
            shared.queue.done(&pod.key);
            continue;
        };
        match decision {
            Ok(node) => {
                let _ = binds.send(Bind { qp, cycle, node });
            }
            Err((err, candidate)) => {
                stats.unschedulable.fetch_add(1, Ordering::Relaxed);
                let mut message = err.message();
                let nominated = candidate.as_ref().map(|c| c.node.clone());
                if let Some(c) = candidate {
                    preempt(&pod, c, &writes, &stats, &mut message).await;
                }
                tracing::debug!(pod = %pod.key, %message, "unschedulable");
                shared.queue.requeue(qp, cycle, false);
                let _ = writes
                    .send(Write::Unschedulable {
                        pod,
                        message,
                        nominated,
                    })
                    .await;
            }
        }
    }
}

/// Decides for `pod` under the cache lock: the node it is assumed on, or why it fits
/// nowhere with the preemption that would make room (the pod is nominated there). `None`
/// when the pod is in the cache already.
fn decide(
    shared: &Shared,
    alg: &mut Algorithm,
    pod: &Arc<PodInfo>,
) -> Option<Result<String, (FitError, Option<Candidate>)>> {
    let mut cache = shared.cache.lock();
    if cache.pod(&pod.key).is_some() {
        return None;
    }
    Some(match alg.schedule(&cache, pod) {
        Decision::Fit { node } => {
            let mut assumed = (**pod).clone();
            assumed.node_name = node.clone();
            cache.unnominate(&pod.key);
            cache.add_pod(Arc::new(assumed), true);
            Ok(node)
        }
        Decision::NoFit(err) => {
            let c = preemption::find(alg, &cache, pod, &err);
            if let Some(c) = &c {
                cache.nominate(pod.clone(), &c.node);
            }
            Err((err, c))
        }
    })
}

/// Evicts the victims of `c` to make room for `by`, and says so in `message`.
async fn preempt(
    by: &Arc<PodInfo>,
    c: Candidate,
    writes: &mpsc::Sender<Write>,
    stats: &Stats,
    message: &mut String,
) {
    stats.preemptions.fetch_add(1, Ordering::Relaxed);
    message.push_str(&format!(
        " preemption: {} victim(s) on node {}.",
        c.victims.len(),
        c.node
    ));
    for v in c.victims {
        let _ = writes
            .send(Write::Preempt {
                victim: v,
                by: by.clone(),
                node: c.node.clone(),
            })
            .await;
    }
}
