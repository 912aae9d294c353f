//! The work queue of a controller, as client-go's rate-limited delaying queue: a key is
//! never processed twice at once, a key added while queued is queued once, a key can wait
//! a while before it is queued, and failures back off exponentially per key. Delayed keys
//! live in the queue itself, so nothing outlives it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a work queue holds: a key that names what to reconcile.
pub trait Key: Hash + Eq + Clone + Send + Sync + std::fmt::Display + 'static {}
impl<T: Hash + Eq + Clone + Send + Sync + std::fmt::Display + 'static> Key for T {}

struct Inner<T> {
    queue: VecDeque<T>,
    /// Queued, or to be queued again when its processing ends.
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    /// Keys waiting to be queued, by when (and the order they were added in).
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    delayed_keys: HashMap<u64, T>,
    seq: u64,
}

pub struct WorkQueue<T> {
    inner: Mutex<Inner<T>>,
    notify: Notify,
    base_delay: Duration,
    max_delay: Duration,
}

impl<T: Key> WorkQueue<T> {
    /// A queue whose failed keys wait `base_delay × 2^failures`, up to `max_delay`.
    pub fn new(base_delay: Duration, max_delay: Duration) -> Arc<Self> {
        Arc::new(WorkQueue {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                delayed: BinaryHeap::new(),
                delayed_keys: HashMap::new(),
                seq: 0,
            }),
            notify: Notify::new(),
            base_delay,
            max_delay,
        })
    }

    pub fn add(&self, key: T) {
        if Self::push(&mut self.inner.lock(), key) {
            self.notify.notify_one();
        }
    }

    /// Queues `key` unless it is already; whether a waiting worker should wake.
    fn push(q: &mut Inner<T>, key: T) -> bool {
        if !q.dirty.insert(key.clone()) || q.processing.contains(&key) {
            return false;
        }
        q.queue.push_back(key);
        true
    }

    /// Queues `key` once `d` has passed.
    pub fn add_after(&self, key: T, d: Duration) {
        if d.is_zero() {
            return self.add(key);
        }
        let mut q = self.inner.lock();
        q.seq += 1;
        let seq = q.seq;
        q.delayed.push(Reverse((Instant::now() + d, seq)));
        q.delayed_keys.insert(seq, key);
        drop(q);
        // A worker waiting on an earlier deadline (or none) must look again.
        self.notify.notify_waiters();
    }

    /// Requeues after the key's next back-off delay: base × 2^failures, capped.
    pub fn add_rate_limited(&self, key: T) -> Duration {
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

    /// Keys ready to process (not counting delayed ones).
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
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut q = self.inner.lock();
                Self::promote_due(&mut q);
                if let Some(k) = q.queue.pop_front() {
                    q.dirty.remove(&k);
                    q.processing.insert(k.clone());
                    return k;
                }
                q.delayed.peek().map(|Reverse((at, _))| *at)
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Moves the delayed keys whose time has come into the queue.
    fn promote_due(q: &mut Inner<T>) {
        let now = Instant::now();
        while let Some(Reverse((at, seq))) = q.delayed.peek().copied() {
            if at > now {
                break;
            }
            q.delayed.pop();
            if let Some(key) = q.delayed_keys.remove(&seq) {
                Self::push(q, key);
            }
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

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_in_order_of_their_time_and_not_before() {
        let q: Arc<WorkQueue<&str>> =
            WorkQueue::new(Duration::from_millis(1), Duration::from_millis(8));
        q.add_after("late", Duration::from_secs(20));
        q.add_after("soon", Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(q.get().await, "soon");
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(q.get().await, "late");
        assert_eq!(start.elapsed(), Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_worker_sees_a_key_delayed_less_than_what_it_waits_for() {
        let q: Arc<WorkQueue<&str>> =
            WorkQueue::new(Duration::from_millis(1), Duration::from_millis(8));
        q.add_after("late", Duration::from_secs(60));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        q.add_after("soon", Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(waiter.await.unwrap(), "soon");
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
