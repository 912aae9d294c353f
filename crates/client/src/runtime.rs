//! A controller runtime: watcher → reflector → work queue → `reconcile`, with an error
//! policy and rate-limited requeues, in kube-runtime's shape.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::api::{Api, ApiObject};
use crate::reflector::{reflector, ObjectKey, Store, Writer};
use crate::watcher::{self, watcher, Event};

/// What to do after a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long, even without a change.
    Requeue(Duration),
    /// Reconcile again only when the object changes.
    AwaitChange,
}

impl Action {
    pub fn requeue(d: Duration) -> Self {
        Action::Requeue(d)
    }
    pub fn await_change() -> Self {
        Action::AwaitChange
    }
}

struct QueueInner<T> {
    queue: VecDeque<T>,
    /// Queued, or to be queued again when its processing ends.
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
}

/// A work queue as client-go's: a key is never processed twice at once, a key added while
/// queued is queued once, and failures back off exponentially per key.
pub struct WorkQueue<T> {
    inner: Mutex<QueueInner<T>>,
    notify: Notify,
    base_delay: Duration,
    max_delay: Duration,
}

impl<T: Hash + Eq + Clone + Send + Sync + 'static> WorkQueue<T> {
    pub fn new(base_delay: Duration, max_delay: Duration) -> Arc<Self> {
        Arc::new(WorkQueue {
            inner: Mutex::new(QueueInner {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
            }),
            notify: Notify::new(),
            base_delay,
            max_delay,
        })
    }

    pub fn add(&self, key: T) {
        let mut q = self.inner.lock();
        if !q.dirty.insert(key.clone()) {
            return;
        }
        if !q.processing.contains(&key) {
            q.queue.push_back(key);
            drop(q);
            self.notify.notify_one();
        }
    }

    pub fn add_after(self: &Arc<Self>, key: T, d: Duration) {
        if d.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            q.add(key);
        });
    }

    /// Requeues after the key's next back-off delay: base × 2^failures, capped.
    pub fn add_rate_limited(self: &Arc<Self>, key: T) -> Duration {
        let d = {
            let mut q = self.inner.lock();
            let n = q.failures.entry(key.clone()).or_insert(0);
            let d = self
                .base_delay
                .saturating_mul(1u32 << (*n).min(20))
                .min(self.max_delay);
            *n += 1;
            d
        };
        self.add_after(key, d);
        d
    }

    /// Clears the key's failure count.
    pub fn forget(&self, key: &T) {
        self.inner.lock().failures.remove(key);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next key to process; call [`WorkQueue::done`] after.
    pub async fn get(&self) -> T {
        loop {
            let notified = self.notify.notified();
            {
                let mut q = self.inner.lock();
                if let Some(k) = q.queue.pop_front() {
                    q.dirty.remove(&k);
                    q.processing.insert(k.clone());
                    return k;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &T) {
        let mut q = self.inner.lock();
        q.processing.remove(key);
        if q.dirty.contains(key) {
            q.queue.push_back(key.clone());
            drop(q);
            self.notify.notify_one();
        }
    }
}

/// Runs a reconciler over every object of a kind.
pub struct Controller<K> {
    api: Api<K>,
    config: watcher::Config,
    workers: usize,
}

impl<K> Controller<K>
where
    K: ApiObject,
{
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        Controller {
            api,
            config,
            workers: 4,
        }
    }

    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Runs until the returned future is dropped. `reconcile` must be idempotent;
    /// `error_policy` decides whether a failed key is retried (with per-key back-off).
    pub async fn run<Ctx, E, R, Fut, P>(self, reconcile: R, error_policy: P, ctx: Arc<Ctx>)
    where
        Ctx: Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
        R: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
    {
        let (writer, store): (Writer<K>, Store<K>) = Writer::new();
        let queue: Arc<WorkQueue<ObjectKey>> =
            WorkQueue::new(Duration::from_millis(5), Duration::from_secs(300));
        let q = queue.clone();
        let feed = tokio::spawn(async move {
            let mut s = Box::pin(reflector(writer, watcher(self.api, self.config)));
            while let Some(ev) = s.next().await {
                match &ev {
                    Event::Apply(k) | Event::InitApply(k) | Event::Delete(k) => {
                        q.add(ObjectKey::of(k))
                    }
                    Event::Init | Event::InitDone => {}
                }
            }
        });
        let reconcile = Arc::new(reconcile);
        let error_policy = Arc::new(error_policy);
        let mut workers = Vec::new();
        for _ in 0..self.workers {
            let (queue, store, ctx) = (queue.clone(), store.clone(), ctx.clone());
            let (reconcile, error_policy) = (reconcile.clone(), error_policy.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let key = queue.get().await;
                    if let Some(obj) = store.get(&key) {
                        match reconcile(obj.clone(), ctx.clone()).await {
                            Ok(Action::Requeue(d)) => {
                                queue.forget(&key);
                                queue.add_after(key.clone(), d);
                            }
                            Ok(Action::AwaitChange) => queue.forget(&key),
                            Err(e) => {
                                tracing::debug!(object = %key, error = %e, "reconcile failed");
                                if let Action::Requeue(_) = error_policy(obj, &e, ctx.clone()) {
                                    queue.add_rate_limited(key.clone());
                                }
                            }
                        }
                    }
                    queue.done(&key);
                }
            }));
        }
        struct AbortAll(Vec<tokio::task::JoinHandle<()>>);
        impl Drop for AbortAll {
            fn drop(&mut self) {
                for t in &self.0 {
                    t.abort();
                }
            }
        }
        workers.push(feed);
        let guard = AbortAll(workers);
        futures::future::pending::<()>().await;
        drop(guard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_never_processed_twice_at_once() {
        let q: Arc<WorkQueue<&str>> =
            WorkQueue::new(Duration::from_millis(1), Duration::from_millis(8));
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = tokio::time::timeout(Duration::from_secs(1), q.get())
            .await
            .unwrap();
        assert_eq!(k, "a");
        // Added while processing: queued again only after done.
        q.add("a");
        assert_eq!(q.len(), 1);
        q.done(&"a");
        assert_eq!(q.len(), 2);
    }

    #[tokio::test]
    async fn failures_back_off_exponentially_up_to_the_cap() {
        let q: Arc<WorkQueue<&str>> =
            WorkQueue::new(Duration::from_millis(1), Duration::from_millis(8));
        let delays: Vec<u128> = (0..6)
            .map(|_| q.add_rate_limited("k").as_millis())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
        q.forget(&"k");
        assert_eq!(q.add_rate_limited("k").as_millis(), 1);
    }
}
