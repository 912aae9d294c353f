//! The scheduling queue, as kube-scheduler's: an active heap ordered by priority, then
//! age; a back-off area for pods that failed recently; and an unschedulable area whose
//! pods return when the cluster changes (a node added or updated, a pod deleted) or after
//! five minutes. A pod whose cycle overlapped such a change goes to back-off instead, so a
//! change that happened while it was being scheduled is not missed.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::reflector::ObjectKey;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::pod_info::PodInfo;

pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An unschedulable pod is retried at least this often, change or not.
pub(crate) const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Area {
    Active,
    Backoff,
    Unschedulable,
}

#[derive(Clone, Debug)]
pub(crate) struct QueuedPod {
    pub info: Arc<PodInfo>,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When it last entered the queue or failed.
    pub since: Instant,
}

impl QueuedPod {
    fn backoff_until(&self) -> Instant {
        let exp = self.attempts.saturating_sub(1).min(16);
        let d = (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF);
        self.since + d
    }
}

struct Entry {
    priority: i32,
    created: i64,
    seq: u64,
    key: ObjectKey,
}

impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.priority, Reverse(self.created), Reverse(self.seq)).cmp(&(
            o.priority,
            Reverse(o.created),
            Reverse(o.seq),
        ))
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}

#[derive(Default)]
struct Inner {
    pods: HashMap<ObjectKey, (QueuedPod, Area, u64)>,
    /// Lazily cleaned: an entry whose seq no longer matches its pod's is skipped.
    active: BinaryHeap<Entry>,
    /// Pods being scheduled, with the newest version seen meanwhile.
    in_flight: HashMap<ObjectKey, Option<Arc<PodInfo>>>,
    deleted_in_flight: HashSet<ObjectKey>,
    seq: u64,
    cycle: u64,
    move_request_cycle: u64,
}

impl Inner {
    fn put(&mut self, qp: QueuedPod, area: Area) {
        self.seq += 1;
        let key = qp.info.key.clone();
        if area == Area::Active {
            self.active.push(Entry {
                priority: qp.info.priority,
                created: qp.info.created,
                seq: self.seq,
                key: key.clone(),
            });
        }
        self.pods.insert(key, (qp, area, self.seq));
    }
}

#[derive(Default)]
pub(crate) struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl SchedulingQueue {
    /// A new pending pod, or a newer version of one.
    pub(crate) fn add(&self, info: Arc<PodInfo>) {
        let mut q = self.inner.lock();
        if let Some(slot) = q.in_flight.get_mut(&info.key) {
            *slot = Some(info);
            return;
        }
        let qp = match q.pods.remove(&info.key) {
            Some((mut qp, area, _)) => {
                qp.info = info;
                // An update may make an unschedulable pod fit; let it try again.
                let area = if area == Area::Unschedulable {
                    Area::Backoff
                } else {
                    area
                };
                q.put(qp, area);
                drop(q);
                self.notify.notify_one();
                return;
            }
            None => QueuedPod {
                info,
                attempts: 0,
                since: Instant::now(),
            },
        };
        q.put(qp, Area::Active);
        drop(q);
        self.notify.notify_one();
    }

    pub(crate) fn delete(&self, key: &ObjectKey) {
        let mut q = self.inner.lock();
        q.pods.remove(key);
        if q.in_flight.contains_key(key) {
            q.deleted_in_flight.insert(key.clone());
        }
    }

    /// The next pod to schedule, and the cycle number it is scheduled in.
    pub(crate) async fn pop(&self) -> (QueuedPod, u64) {
        loop {
            let notified = self.notify.notified();
            {
                let mut q = self.inner.lock();
                while let Some(e) = q.active.pop() {
                    let current =
                        matches!(q.pods.get(&e.key), Some((_, Area::Active, s)) if *s == e.seq);
                    if !current {
                        continue;
                    }
                    let (qp, _, _) = q.pods.remove(&e.key).expect("present");
                    q.in_flight.insert(e.key.clone(), None);
                    q.cycle += 1;
                    return (qp, q.cycle);
                }
            }
            notified.await;
        }
    }

    /// The pod left the scheduler (bound, or given up); forgets it.
    pub(crate) fn done(&self, key: &ObjectKey) {
        let mut q = self.inner.lock();
        q.in_flight.remove(key);
        q.deleted_in_flight.remove(key);
    }

    /// Puts a pod that found no node back: to back-off when the cluster changed during its
    /// cycle (or `backoff` is set, for errors), else to the unschedulable area.
    pub(crate) fn requeue(&self, mut qp: QueuedPod, cycle: u64, backoff: bool) {
        let mut q = self.inner.lock();
        let newer = q.in_flight.remove(&qp.info.key).flatten();
        if q.deleted_in_flight.remove(&qp.info.key) {
            return;
        }
        if let Some(info) = newer {
            qp.info = info;
        }
        qp.attempts += 1;
        qp.since = Instant::now();
        let area = if backoff || q.move_request_cycle >= cycle {
            Area::Backoff
        } else {
            Area::Unschedulable
        };
        q.put(qp, area);
    }

    /// The cluster changed in a way that may let unschedulable pods fit.
    pub(crate) fn move_all_to_active_or_backoff(&self) {
        let mut q = self.inner.lock();
        q.move_request_cycle = q.cycle;
        let stuck: Vec<ObjectKey> = q
            .pods
            .iter()
            .filter(|(_, (_, a, _))| *a == Area::Unschedulable)
            .map(|(k, _)| k.clone())
            .collect();
        if stuck.is_empty() {
            return;
        }
        let now = Instant::now();
        for k in stuck {
            let (qp, _, _) = q.pods.remove(&k).expect("present");
            let area = if qp.backoff_until() > now {
                Area::Backoff
            } else {
                Area::Active
            };
            q.put(qp, area);
        }
        drop(q);
        self.notify.notify_one();
    }

    /// Moves pods whose back-off ended, that waited too long as unschedulable, or whose
    /// `due` says so (a deadline passed), to the active heap. Call it about once a second.
    pub(crate) fn flush(&self, due: impl Fn(&PodInfo) -> bool) {
        let mut q = self.inner.lock();
        let now = Instant::now();
        let ready: Vec<ObjectKey> = q
            .pods
            .iter()
            .filter(|(_, (qp, area, _))| match area {
                Area::Active => false,
                Area::Backoff => qp.backoff_until() <= now || due(&qp.info),
                Area::Unschedulable => now - qp.since >= MAX_UNSCHEDULABLE || due(&qp.info),
            })
            .map(|(k, _)| k.clone())
            .collect();
        if ready.is_empty() {
            return;
        }
        for k in ready {
            let (qp, _, _) = q.pods.remove(&k).expect("present");
            q.put(qp, Area::Active);
        }
        drop(q);
        self.notify.notify_one();
    }

    /// Pending pods (all areas), for metrics and tests.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().pods.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::testing::pod;

    fn pending(name: &str, priority: i32, created: &str) -> Arc<PodInfo> {
        Arc::new(pod(
            name,
            json!({"creationTimestamp": created}),
            json!({"containers": [], "priority": priority}),
        ))
    }

    async fn pop_name(q: &SchedulingQueue) -> (String, u64) {
        let (qp, c) = tokio::time::timeout(Duration::from_secs(5), q.pop())
            .await
            .expect("a pod within 5 s");
        (qp.info.key.name.clone(), c)
    }

    #[tokio::test]
    async fn priority_then_age() {
        let q = SchedulingQueue::default();
        q.add(pending("low-old", 0, "2026-01-01T00:00:00Z"));
        q.add(pending("high-new", 100, "2026-01-03T00:00:00Z"));
        q.add(pending("low-new", 0, "2026-01-02T00:00:00Z"));
        q.add(pending("high-old", 100, "2026-01-01T00:00:00Z"));
        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(pop_name(&q).await.0);
        }
        assert_eq!(order, ["high-old", "high-new", "low-old", "low-new"]);
    }

    #[tokio::test]
    async fn unschedulable_pods_return_on_cluster_changes() {
        let q = SchedulingQueue::default();
        q.add(pending("p", 0, "2026-01-01T00:00:00Z"));
        let (qp, cycle) = q.pop().await;
        q.requeue(qp, cycle, false);
        q.flush(|_| false);
        let waited = tokio::time::timeout(Duration::from_millis(200), q.pop()).await;
        assert!(waited.is_err(), "an unschedulable pod waits for a change");
        q.move_all_to_active_or_backoff();
        // Its one-second back-off is still running: it is in back-off, and flush frees it.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            q.flush(|_| false);
            if let Ok((qp, _)) = tokio::time::timeout(Duration::from_millis(100), q.pop()).await {
                assert_eq!(qp.info.key.name, "p");
                assert_eq!(qp.attempts, 1);
                break;
            }
            assert!(Instant::now() < deadline, "pod never came back");
        }
    }

    #[tokio::test]
    async fn a_change_during_the_cycle_sends_the_pod_to_backoff() {
        let q = SchedulingQueue::default();
        q.add(pending("p", 0, "2026-01-01T00:00:00Z"));
        let (qp, cycle) = q.pop().await;
        q.move_all_to_active_or_backoff();
        q.requeue(qp, cycle, false);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            q.flush(|_| false);
            if tokio::time::timeout(Duration::from_millis(100), q.pop())
                .await
                .is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "pod stuck as unschedulable");
        }
    }

    #[tokio::test]
    async fn a_pod_deleted_while_scheduled_is_not_requeued() {
        let q = SchedulingQueue::default();
        q.add(pending("p", 0, "2026-01-01T00:00:00Z"));
        let (qp, cycle) = q.pop().await;
        q.delete(&qp.info.key.clone());
        q.requeue(qp, cycle, true);
        assert!(q.is_empty());
    }
}
