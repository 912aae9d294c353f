//! etcd's Watch service: many watchers multiplexed on one bidirectional stream.

use std::collections::HashMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use rkube_proto::etcd::watch_create_request::FilterType;
use rkube_proto::etcd::watch_request::RequestUnion;
use rkube_proto::etcd::watch_server::Watch;
use rkube_proto::etcd::*;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::EtcdService;
use crate::watch::{WatchItem, WatchOptions, Watcher};

type Out = mpsc::Sender<Result<WatchResponse, Status>>;
type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

struct Running {
    task: JoinHandle<()>,
    progress: mpsc::Sender<()>,
}

#[tonic::async_trait]
impl Watch for EtcdService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let input = req.into_inner();
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        tokio::spawn(async move { this.serve_stream(input, tx).await });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl EtcdService {
    fn resp(&self, watch_id: i64, revision: i64) -> WatchResponse {
        WatchResponse {
            header: self.header(Some(ResponseHeader {
                revision,
                ..Default::default()
            })),
            watch_id,
            ..Default::default()
        }
    }

    async fn serve_stream(&self, mut input: Streaming<WatchRequest>, tx: Out) {
        let mut running: HashMap<i64, Running> = HashMap::new();
        let mut next_id = 0i64;
        while let Some(Ok(msg)) = input.next().await {
            running.retain(|_, r| !r.task.is_finished());
            match msg.request_union {
                Some(RequestUnion::CreateRequest(c)) => {
                    let client_listens = self.create(c, &mut running, &mut next_id, &tx).await;
                    if !client_listens {
                        return;
                    }
                }
                Some(RequestUnion::CancelRequest(c)) => {
                    if let Some(r) = running.remove(&c.watch_id) {
                        r.task.abort();
                        let mut resp = self.resp(c.watch_id, self.store.revision());
                        resp.canceled = true;
                        let _ = tx.send(Ok(resp)).await;
                    }
                }
                Some(RequestUnion::ProgressRequest(_)) => {
                    for r in running.values() {
                        let _ = r.progress.try_send(());
                    }
                }
                None => {}
            }
        }
        for (_, r) in running {
            r.task.abort();
        }
    }

    /// Starts the watcher `c` asks for, under its own id or the next free one, and tells
    /// the client. False when the client has gone away.
    async fn create(
        &self,
        c: WatchCreateRequest,
        running: &mut HashMap<i64, Running>,
        next_id: &mut i64,
        tx: &Out,
    ) -> bool {
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while running.contains_key(next_id) {
                *next_id += 1;
            }
            *next_id
        };
        if running.contains_key(&id) {
            let mut r = self.resp(id, self.store.revision());
            r.canceled = true;
            r.cancel_reason = "etcdserver: duplicate watch ID".into();
            let _ = tx.send(Ok(r)).await;
            return true;
        }
        match self.store.watch(watch_options(&c)).await {
            Err(e) => {
                let mut created = self.resp(id, self.store.revision());
                created.created = true;
                created.canceled = true;
                created.cancel_reason = e.to_string();
                let _ = tx.send(Ok(created)).await;
            }
            Ok(w) => {
                // The header says which revision the watch starts after, never
                // older than what a linearizable read would have returned.
                let mut created = self.resp(id, self.store.revision().max(w.start_after()));
                created.created = true;
                if tx.send(Ok(created)).await.is_err() {
                    return false;
                }
                let (ptx, prx) = mpsc::channel(4);
                let this = self.clone();
                let out = tx.clone();
                let notify = c.progress_notify;
                let task =
                    tokio::spawn(async move { this.run_watcher(id, w, out, prx, notify).await });
                running.insert(
                    id,
                    Running {
                        task,
                        progress: ptx,
                    },
                );
            }
        }
        true
    }

    async fn run_watcher(
        &self,
        id: i64,
        mut w: Watcher,
        tx: Out,
        mut progress: mpsc::Receiver<()>,
        notify: bool,
    ) {
        let period = self.store.config().watch_progress_interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut idle = true;
        loop {
            let item = tokio::select! {
                item = w.next() => item,
                Some(()) = progress.recv() => { w.request_progress(); continue; }
                _ = ticker.tick(), if notify => {
                    if idle { w.request_progress(); }
                    idle = true;
                    continue;
                }
            };
            let Some(item) = item else { return };
            let mut resp = self.resp(id, 0);
            let end = match item {
                WatchItem::Events { revision, events } => {
                    idle = false;
                    resp.header.as_mut().expect("header set").revision = revision;
                    resp.events = events;
                    false
                }
                WatchItem::Progress { revision } => {
                    resp.header.as_mut().expect("header set").revision = revision;
                    false
                }
                WatchItem::Canceled {
                    reason,
                    last_revision,
                } => {
                    resp.header.as_mut().expect("header set").revision = last_revision;
                    resp.canceled = true;
                    resp.cancel_reason =
                        format!("{reason}; last revision delivered: {last_revision}");
                    true
                }
                WatchItem::Compacted { compact_revision } => {
                    resp.header.as_mut().expect("header set").revision = self.store.revision();
                    resp.canceled = true;
                    resp.compact_revision = compact_revision;
                    resp.cancel_reason = crate::Error::Compacted { compact_revision }.to_string();
                    true
                }
            };
            if tx.send(Ok(resp)).await.is_err() || end {
                return;
            }
        }
    }
}

fn watch_options(c: &WatchCreateRequest) -> WatchOptions {
    WatchOptions {
        key: c.key.clone(),
        range_end: c.range_end.clone(),
        start_revision: c.start_revision,
        prev_kv: c.prev_kv,
        no_put: c.filters.contains(&(FilterType::Noput as i32)),
        no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
    }
}
