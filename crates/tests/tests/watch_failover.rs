//! Watches across a leader change: ordered, no gaps, no duplicates; and a watch resumed on
//! another member never goes back in time (etcd #15271).

use std::time::Duration;

use bytes::Bytes;
use rkube_proto::etcd::watch_request::RequestUnion;
use rkube_proto::etcd::*;
use rkube_tests::{eventually, Clients, Cluster, Flavor};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Opens a watch on `prefix` from `start`; returns the request sender and the stream.
async fn watch(
    c: &mut Clients,
    prefix: &str,
    start: i64,
) -> (mpsc::Sender<WatchRequest>, tonic::Streaming<WatchResponse>) {
    let end = rkube_tests::prefix_end(prefix);
    let (tx, rx) = mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: Bytes::copy_from_slice(prefix.as_bytes()),
            range_end: end,
            start_revision: start,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let s = c
        .watch
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, s)
}

async fn put_anywhere(c: &Cluster, k: &str) -> i64 {
    eventually(
        Duration::from_secs(10),
        "a put to be acknowledged",
        || async {
            for i in (0..c.members.len()).filter(|i| c.is_running(*i)) {
                let req = PutRequest {
                    key: Bytes::copy_from_slice(k.as_bytes()),
                    value: "v".into(),
                    ..Default::default()
                };
                if let Ok(r) = c.clients(i).kv.put(req).await {
                    return Some(r.into_inner().header.unwrap().revision);
                }
            }
            None
        },
    )
    .await
}

/// Event revisions from a watch stream until `until` is reached.
async fn collect(s: &mut tonic::Streaming<WatchResponse>, until: i64) -> Vec<i64> {
    let mut revs = Vec::new();
    while revs.last().copied().unwrap_or(0) < until {
        let r = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .expect("watch events within 10 s")
            .expect("watch stream")
            .expect("watch stream open");
        assert!(!r.canceled, "watch cancelled: {}", r.cancel_reason);
        revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
    }
    revs
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_sees_every_revision_across_a_leader_kill_and_resumes_forward() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut c = Cluster::start(Flavor::Rkube, 3, &[]).await;
        let leader = c.wait_leader(Duration::from_secs(10)).await;
        let follower = (leader + 1) % 3;
        let (_keep, mut w) = watch(&mut c.clients(follower), "w/", 1).await;

        let mut acked = Vec::new();
        for j in 0..100 {
            if j == 40 {
                c.kill(leader);
            }
            acked.push(put_anywhere(&c, &format!("w/{j}")).await);
        }
        let last = *acked.iter().max().unwrap();
        let live = collect(&mut w, last).await;
        assert!(
            live.windows(2).all(|p| p[0] < p[1]),
            "strictly increasing: {live:?}"
        );
        for r in &acked {
            assert!(
                live.contains(r),
                "acknowledged revision {r} missing from the watch: {live:?}"
            );
        }
        // The same history, replayed from disk on the other surviving member.
        let other = (leader + 2) % 3;
        let (_keep2, mut replay) = watch(&mut c.clients(other), "w/", 1).await;
        assert_eq!(
            collect(&mut replay, last).await,
            live,
            "live and replayed histories differ"
        );

        // etcd #15271: a watch started "now" on any member after the failover starts at or
        // after the newest revision this client has seen acknowledged.
        for i in [follower, other] {
            let (_tx, mut s) = watch(&mut c.clients(i), "w/", 0).await;
            let created = s.message().await.unwrap().unwrap();
            assert!(created.created);
            let start = created.header.unwrap().revision;
            assert!(
                start >= last,
                "member {i} started a watch at {start}, before the seen revision {last}"
            );
            let next = put_anywhere(&c, "w/next").await;
            assert_eq!(collect(&mut s, next).await, vec![next]);
        }
    })
    .await
    .expect("scenario within 120 s");
}

/// A watch from an old revision on a member that is still catching up (it was down while
/// thousands of writes happened) replays history and then goes live: every revision once.
#[tokio::test(flavor = "multi_thread")]
async fn watch_on_a_catching_up_member_misses_nothing() {
    let mut c = Cluster::start(Flavor::Rkube, 3, &["--auto-compaction-retention", "0"]).await;
    let first = put_anywhere(&c, "/w/start").await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let lagging = (leader + 1) % 3;
    c.kill(lagging);
    let mut kv = c.clients(leader).kv;
    let mut writers = Vec::new();
    for w in 0..16 {
        let mut kv = kv.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..400 {
                let req = PutRequest {
                    key: Bytes::from(format!("/w/{w}/{i}")),
                    value: "v".into(),
                    ..Default::default()
                };
                kv.put(req).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let last = kv
        .put(PutRequest {
            key: "/w/end".into(),
            value: "v".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    c.spawn(lagging, "new");
    // Watch as soon as the member answers, while it applies what it missed; resume after
    // a cancellation from the last revision delivered, as a client does.
    let client = c.clients(lagging);
    let mut revs: Vec<i64> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while revs.last().copied().unwrap_or(0) < last {
        assert!(
            std::time::Instant::now() < deadline,
            "watch did not reach {last}"
        );
        let from = revs.last().map_or(first, |r| r + 1);
        let (tx, rx) = mpsc::channel(1);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: "/w/".into(),
                range_end: rkube_tests::prefix_end("/w/"),
                start_revision: from,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut w = client.watch.clone();
        let Ok(s) = w.watch(ReceiverStream::new(rx)).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut s = s.into_inner();
        while let Ok(Some(r)) = s.message().await {
            revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
            if r.canceled || revs.last().copied().unwrap_or(0) >= last {
                break;
            }
        }
        drop(tx);
    }
    let expected: Vec<i64> = (first..=last).collect();
    assert_eq!(
        revs.len(),
        expected.len(),
        "first missing: {:?}",
        expected.iter().find(|r| !revs.contains(r))
    );
    assert_eq!(revs, expected);
}
