//! Watchers that record every event they receive, resuming on another member after any
//! failure from the revision after the last one they saw.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use rkube_proto::etcd::watch_client::WatchClient;
use rkube_proto::etcd::watch_request::RequestUnion;
use rkube_proto::etcd::{WatchCreateRequest, WatchRequest};
use tokio_stream::wrappers::ReceiverStream;

use super::workload::Recorder;

/// One received event: (revision, key, value; empty for a delete).
pub type Seen = (i64, Bytes, Bytes);

/// Everything the workloads touch lies in this range.
pub const WATCH_KEY: &[u8] = b"/";
pub const WATCH_END: &[u8] = b"0";

/// Watches from `start` until the recorder stops and the watch has reached `until`
/// (`until` is read when stopping).
pub async fn watcher(
    rec: Arc<Recorder>,
    members: Vec<String>,
    start: i64,
    until: Arc<Mutex<i64>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    first: usize,
) {
    let mut next = start;
    let mut m = first;
    loop {
        let target = *until.lock();
        if rec.stop.load(Ordering::Relaxed) && target > 0 && next > target {
            return;
        }
        let ch = super::channel(&members[m % members.len()]);
        m += 1;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let req = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: Bytes::from_static(WATCH_KEY),
                range_end: Bytes::from_static(WATCH_END),
                start_revision: next,
                progress_notify: true,
                ..Default::default()
            })),
        };
        let _ = tx.send(req).await;
        let stream = match tokio::time::timeout(
            Duration::from_secs(2),
            WatchClient::new(ch).watch(ReceiverStream::new(rx)),
        )
        .await
        {
            Ok(Ok(s)) => s.into_inner(),
            _ => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut stream = stream;
        loop {
            let item = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
            let resp = match item {
                Ok(Some(Ok(r))) => r,
                Ok(Some(Err(_))) | Ok(None) => break,
                Err(_) => {
                    // Quiet, or the member is gone: stop when done, else try elsewhere.
                    let target = *until.lock();
                    if rec.stop.load(Ordering::Relaxed) && target > 0 && next > target {
                        return;
                    }
                    break;
                }
            };
            if resp.canceled || resp.compact_revision > 0 {
                break;
            }
            for ev in resp.events {
                let Some(kv) = ev.kv else { continue };
                next = kv.mod_revision + 1;
                seen.lock().push((
                    kv.mod_revision,
                    kv.key,
                    if ev.r#type == 1 {
                        Bytes::new()
                    } else {
                        kv.value
                    },
                ));
            }
            let target = *until.lock();
            if rec.stop.load(Ordering::Relaxed) && target > 0 && next > target {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
