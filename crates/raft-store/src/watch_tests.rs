//! Watch semantics: replay then live with no gap or duplicate, filters, prev_kv, explicit
//! compaction and slow-watcher cancellation, progress.

use std::time::Duration;

use rkube_proto::etcd::*;
use rkube_proto::mvccpb::event::EventType;
use rkube_proto::raft::store_request::Op;

use crate::mvcc::tests::{b, put_op};
use crate::testing::TestStores;
use crate::watch::{WatchItem, WatchOptions, Watcher};

fn opts(key: &str, end: &str, start: i64) -> WatchOptions {
    WatchOptions {
        key: b(key),
        range_end: b(end),
        start_revision: start,
        ..Default::default()
    }
}

async fn next(w: &mut Watcher) -> WatchItem {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("a watch item within 5 s")
        .expect("the watch is still open")
}

/// Collects event revisions until `n` events arrived.
async fn revisions(w: &mut Watcher, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < n {
        match next(w).await {
            WatchItem::Events { revision, events } => {
                for e in events {
                    assert_eq!(e.kv.as_ref().unwrap().mod_revision, revision);
                    out.push(revision);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

#[tokio::test]
async fn replays_history_then_goes_live_without_gap_or_duplicate() {
    let mut t = TestStores::new();
    // More than one replay chunk of history.
    for i in 0..2500 {
        t.apply(put_op(&format!("w/{}", i % 7), "v")).await;
    }
    let mut w = Watcher::start(t.shared(), opts("w/", "w0", 1), 10_000);
    for i in 0..100 {
        t.apply(put_op(&format!("w/{}", i % 7), "v")).await;
    }
    let got = revisions(&mut w, 2600).await;
    assert_eq!(got, (1..=2600).collect::<Vec<i64>>());
}

#[tokio::test]
async fn prefix_filters_and_prev_kv() {
    let mut t = TestStores::new();
    t.apply(put_op("x/a", "1")).await;
    let mut w = Watcher::start(
        t.shared(),
        WatchOptions {
            prev_kv: true,
            no_put: false,
            no_delete: false,
            ..opts("x/", "x0", 0)
        },
        100,
    );
    let mut dels = Watcher::start(
        t.shared(),
        WatchOptions {
            no_put: true,
            ..opts("x/", "x0", 0)
        },
        100,
    );
    t.apply(put_op("y", "outside")).await;
    t.apply(put_op("x/a", "2")).await;
    t.apply(Op::DeleteRange(DeleteRangeRequest {
        key: b("x/a"),
        ..Default::default()
    }))
    .await;
    let WatchItem::Events {
        revision: 3,
        events,
    } = next(&mut w).await
    else {
        panic!()
    };
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b("1"));
    let WatchItem::Events {
        revision: 4,
        events,
    } = next(&mut w).await
    else {
        panic!()
    };
    assert_eq!(events[0].r#type, EventType::Delete as i32);
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b("2"));
    let WatchItem::Events {
        revision: 4,
        events,
    } = next(&mut dels).await
    else {
        panic!("NOPUT skips the put")
    };
    assert!(events[0].prev_kv.is_none());
}

#[tokio::test]
async fn compacted_start_revision_is_an_explicit_error() {
    let mut t = TestStores::new();
    for _ in 0..5 {
        t.apply(put_op("c", "v")).await;
    }
    t.apply(Op::Compact(CompactionRequest {
        revision: 4,
        physical: true,
    }))
    .await;
    let mut w = Watcher::start(t.shared(), opts("c", "", 2), 100);
    assert_eq!(
        next(&mut w).await,
        WatchItem::Compacted {
            compact_revision: 4
        }
    );
    assert!(w.next().await.is_none());
    let mut at = Watcher::start(t.shared(), opts("c", "", 4), 100);
    assert_eq!(revisions(&mut at, 2).await, vec![4, 5]);
}

/// etcd #18089: compacting at the revision of a delete must not lose that delete for a
/// watch that starts at the compaction revision.
#[tokio::test]
async fn watch_from_compaction_revision_still_sees_the_compacted_delete() {
    let mut t = TestStores::new();
    t.apply(put_op("k", "v")).await; // 1
    t.apply(Op::DeleteRange(DeleteRangeRequest {
        key: b("k"),
        ..Default::default()
    }))
    .await; // 2
    t.apply(put_op("other", "v")).await; // 3
    t.apply(Op::Compact(CompactionRequest {
        revision: 2,
        physical: true,
    }))
    .await;
    let mut w = Watcher::start(t.shared(), opts("k", "", 2), 100);
    let WatchItem::Events {
        revision: 2,
        events,
    } = next(&mut w).await
    else {
        panic!()
    };
    assert_eq!(events[0].r#type, EventType::Delete as i32);
}

#[tokio::test]
async fn slow_watcher_is_cancelled_with_its_last_revision() {
    let mut t = TestStores::new();
    let mut w = Watcher::start(t.shared(), opts("s", "", 0), 2);
    for _ in 0..5 {
        t.apply(put_op("s", "v")).await;
    }
    assert_eq!(revisions(&mut w, 2).await, vec![1, 2]);
    match next(&mut w).await {
        WatchItem::Canceled {
            last_revision,
            reason,
        } => {
            assert_eq!(last_revision, 2);
            assert!(reason.contains("too slow"), "{reason}");
        }
        other => panic!("expected a cancellation, got {other:?}"),
    }
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn progress_reports_the_current_revision_and_future_start_waits() {
    let mut t = TestStores::new();
    t.apply(put_op("a", "v")).await;
    t.apply(put_op("b", "v")).await;
    let mut w = Watcher::start(t.shared(), opts("a", "", 0), 10);
    w.request_progress();
    assert_eq!(next(&mut w).await, WatchItem::Progress { revision: 2 });
    let mut future = Watcher::start(t.shared(), opts("f", "", 5), 10);
    for _ in 0..4 {
        t.apply(put_op("f", "v")).await;
    }
    assert_eq!(revisions(&mut future, 2).await, vec![5, 6]);
}
