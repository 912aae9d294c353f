//! The controller: sources (shared informers, mapped to the keys they concern) feed one
//! work queue, and up to `concurrency` workers reconcile one key each at a time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::metrics::{ControllerMetrics, Metrics};
use super::queue::{Key, WorkQueue};
use super::Action;
use crate::informer::{Change, Informer};
use crate::reflector::ObjectKey;
use crate::ApiObject;

type Source = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A source, started once the controller's queue and metrics are final.
type SourceFn<T> = Box<dyn FnOnce(Feed<T>) -> Source + Send>;
type Resync<T> = Arc<dyn Fn() -> Vec<T> + Send + Sync>;

/// How long a first failure waits; each further one doubles it.
pub const BASE_BACKOFF: Duration = Duration::from_millis(5);
/// The longest a failing key waits.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A controller being assembled: its name, sources and limits. [`Controller::run`] runs
/// it.
pub struct Controller<T: Key = ObjectKey> {
    name: &'static str,
    queue: Arc<WorkQueue<T>>,
    sources: Vec<SourceFn<T>>,
    resync: Resync<T>,
    concurrency: usize,
    metrics: ControllerMetrics,
    shutdown: Option<CancellationToken>,
}

impl Controller<ObjectKey> {
    /// A controller of the objects in `primary`, each reconciled by its key.
    pub fn new<K: ApiObject>(name: &'static str, primary: Arc<Informer<K>>) -> Self {
        let keys = primary.clone();
        let resync: Resync<ObjectKey> = Arc::new(move || keys.keys());
        Controller::with_resync(name, resync).watches(primary, |c| vec![key_of(c)])
    }

    /// Also reconciles an object when something it controls changes: a `child` whose
    /// controller reference is of `owner_kind`.
    pub fn owns<C: ApiObject>(self, child: Arc<Informer<C>>, owner_kind: &'static str) -> Self {
        self.watches(child, move |c| controller_key(c, owner_kind))
    }
}

impl<T: Key> Controller<T> {
    /// A controller of keys of its own kind; `resync` lists every key (after a source fell
    /// behind its informer).
    pub fn with_resync(name: &'static str, resync: Resync<T>) -> Self {
        Controller {
            name,
            queue: WorkQueue::new(BASE_BACKOFF, MAX_BACKOFF),
            sources: Vec::new(),
            resync,
            concurrency: 1,
            metrics: Metrics::default().of(name),
            shutdown: None,
        }
    }

    /// Reconciles the keys `map` derives from every change of `informer`.
    pub fn watches<K, M>(mut self, informer: Arc<Informer<K>>, map: M) -> Self
    where
        K: ApiObject,
        M: Fn(&Change<K>) -> Vec<T> + Send + Sync + 'static,
    {
        self.sources.push(Box::new(move |feed: Feed<T>| {
            Box::pin(feed.run(informer, map))
        }));
        self
    }

    /// Reconciles up to `n` keys at once (never one key twice at once).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Counts this controller in `metrics`.
    pub fn metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = metrics.of(self.name);
        self
    }

    /// Stops taking keys once `token` is cancelled; reconciles under way finish first.
    pub fn graceful_shutdown_on(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// Runs until shut down or dropped; dropping it stops every source and worker.
    /// `reconcile` must be idempotent. A failed key goes to `error_policy`.
    pub async fn run<Ctx, E, R, Fut, P>(self, reconcile: R, error_policy: P, ctx: Arc<Ctx>)
    where
        Ctx: Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
        R: Fn(T, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(&T, &E, &Ctx) -> Action + Send + Sync + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        for source in self.sources {
            tasks.spawn(source(Feed {
                queue: self.queue.clone(),
                resync: self.resync.clone(),
                metrics: self.metrics.clone(),
            }));
        }
        let worker = Arc::new(Worker {
            name: self.name,
            queue: self.queue,
            reconcile,
            error_policy,
            ctx,
            metrics: self.metrics,
        });
        let shutdown = self.shutdown.unwrap_or_default();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency {
            let (w, stop) = (worker.clone(), shutdown.clone());
            workers.spawn(async move { w.work(stop).await });
        }
        tokio::select! {
            () = async { while workers.join_next().await.is_some() {} } => {}
            () = async { while tasks.join_next().await.is_some() {} } => {
                // Every source ended (its informers are gone): nothing more will come.
            }
        }
    }
}

struct Feed<T: Key> {
    queue: Arc<WorkQueue<T>>,
    resync: Resync<T>,
    metrics: ControllerMetrics,
}

impl<T: Key> Feed<T> {
    fn add(&self, keys: Vec<T>) {
        for k in keys {
            self.metrics.adds.inc();
            self.queue.add(k);
        }
        self.metrics.depth.set(self.queue.len() as i64);
    }

    /// Queues the keys of every change of `informer`; after falling behind it, every key.
    async fn run<K, M>(self, informer: Arc<Informer<K>>, map: M)
    where
        K: ApiObject,
        M: Fn(&Change<K>) -> Vec<T>,
    {
        let mut rx = informer.subscribe();
        informer.wait_ready().await;
        self.add((self.resync)());
        loop {
            match rx.recv().await {
                Ok(change) => self.add(map(&change)),
                Err(RecvError::Lagged(_)) => self.add((self.resync)()),
                Err(RecvError::Closed) => return,
            }
        }
    }
}

struct Worker<T: Key, R, P, Ctx> {
    name: &'static str,
    queue: Arc<WorkQueue<T>>,
    reconcile: R,
    error_policy: P,
    ctx: Arc<Ctx>,
    metrics: ControllerMetrics,
}

impl<T, R, P, Ctx, E, Fut> Worker<T, R, P, Ctx>
where
    T: Key,
    Ctx: Send + Sync + 'static,
    E: std::fmt::Display + Send + 'static,
    R: Fn(T, Arc<Ctx>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    P: Fn(&T, &E, &Ctx) -> Action + Send + Sync + 'static,
{
    async fn work(&self, stop: CancellationToken) {
        loop {
            let key = tokio::select! {
                k = self.queue.get() => k,
                () = stop.cancelled() => return,
            };
            self.metrics.depth.set(self.queue.len() as i64);
            let start = Instant::now();
            let result = (self.reconcile)(key.clone(), self.ctx.clone()).await;
            self.metrics.seconds.observe(start.elapsed().as_secs_f64());
            let action = match result {
                Ok(a) => {
                    self.queue.forget(&key);
                    match a {
                        Action::AwaitChange => self.metrics.success.inc(),
                        Action::Requeue(_) => self.metrics.requeue_after.inc(),
                        Action::Backoff => self.metrics.requeue.inc(),
                    };
                    a
                }
                Err(e) => {
                    tracing::debug!(controller = self.name, object = %key, error = %e, "reconcile failed");
                    self.metrics.errors.inc();
                    self.metrics.error.inc();
                    (self.error_policy)(&key, &e, &self.ctx)
                }
            };
            self.follow(&key, action);
            self.queue.done(&key);
        }
    }

    /// Queues `key` again as `action` says.
    fn follow(&self, key: &T, action: Action) {
        match action {
            Action::AwaitChange => {}
            Action::Requeue(d) => self.queue.add_after(key.clone(), d),
            Action::Backoff => {
                self.metrics.retries.inc();
                self.queue.add_rate_limited(key.clone());
            }
        }
    }
}

/// The key of the changed object itself.
pub fn key_of<K: ApiObject>(c: &Change<K>) -> ObjectKey {
    ObjectKey::of(c.object().as_ref())
}

/// The key of the changed object's controller when it is of `kind` (the owner to
/// reconcile when the object changes).
pub fn controller_key<K: ApiObject>(c: &Change<K>, kind: &str) -> Vec<ObjectKey> {
    let m = c.object().metadata();
    let owner = m
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match owner {
        Some(r) if r.kind == kind => vec![ObjectKey {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: r.name.clone(),
        }],
        _ => vec![],
    }
}

/// The error policy of most controllers: retry the key with exponential back-off.
pub fn backoff<T, E, Ctx>(_: &T, _: &E, _: &Ctx) -> Action {
    Action::Backoff
}
