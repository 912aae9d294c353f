//! What every controller-manager controller shares: a work queue of object keys fed from
//! shared informers, and workers that reconcile one key at a time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use client::informer::{Change, Informer};
use client::reflector::ObjectKey;
use client::runtime::WorkQueue;
use client::ApiObject;
use tokio::sync::broadcast::error::RecvError;

pub type Queue<T = ObjectKey> = Arc<WorkQueue<T>>;

/// What a work queue holds: a key that names what to reconcile.
pub trait Key: std::hash::Hash + Eq + Clone + Send + Sync + std::fmt::Display + 'static {}
impl<T: std::hash::Hash + Eq + Clone + Send + Sync + std::fmt::Display + 'static> Key for T {}

pub fn queue<T: Key>() -> Queue<T> {
    WorkQueue::new(Duration::from_millis(5), Duration::from_secs(300))
}

/// Feeds `queue` with the keys `map` derives from every change of `informer`; on falling
/// behind the broadcast, with the keys of everything `resync` lists.
pub async fn feed<K, T, M, R>(informer: Arc<Informer<K>>, queue: Queue<T>, map: M, resync: R)
where
    K: ApiObject,
    T: Key,
    M: Fn(&Change<K>) -> Vec<T>,
    R: Fn() -> Vec<T>,
{
    let mut rx = informer.subscribe();
    informer.wait_ready().await;
    for k in resync() {
        queue.add(k);
    }
    loop {
        match rx.recv().await {
            Ok(change) => {
                for k in map(&change) {
                    queue.add(k);
                }
            }
            Err(RecvError::Lagged(_)) => {
                for k in resync() {
                    queue.add(k);
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// The key of the changed object itself.
pub fn own_key<K: ApiObject>(c: &Change<K>) -> Vec<ObjectKey> {
    vec![ObjectKey::of(c.object().as_ref())]
}

/// The key of the object's controller when it is of `kind` (the owner to reconcile when
/// the object changes).
pub fn controller_key<K: ApiObject>(c: &Change<K>, kind: &str) -> Vec<ObjectKey> {
    let m = c.object().metadata();
    match crate::pods::controller_ref(m) {
        Some(r) if r.kind == kind => vec![ObjectKey {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: r.name.clone(),
        }],
        _ => vec![],
    }
}

/// What a reconcile asks for next.
pub type Requeue = Option<Duration>;

/// Runs `workers` reconcilers over `queue` until dropped. A failed key is retried with
/// per-key exponential back-off; `Some(d)` reconciles the key again after `d`.
pub async fn run<T, F, Fut, E>(name: &'static str, queue: Queue<T>, workers: usize, reconcile: F)
where
    T: Key,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Requeue, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let reconcile = Arc::new(reconcile);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (queue, reconcile) = (queue.clone(), reconcile.clone());
        set.spawn(async move {
            loop {
                let key = queue.get().await;
                match reconcile(key.clone()).await {
                    Ok(None) => queue.forget(&key),
                    Ok(Some(d)) => {
                        queue.forget(&key);
                        queue.add_after(key.clone(), d);
                    }
                    Err(e) => {
                        tracing::debug!(controller = name, object = %key, error = %e, "reconcile failed");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while set.join_next().await.is_some() {}
}
